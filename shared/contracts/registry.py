"""Events of a registered business, published by the registry on `registry.business.v1` (key = business id).

They carry what downstream services need (region, KBLI, scale, derived youth/women flags, NIB status,
a contact phone for the notifier) and never the owner's NIK.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, Field

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import EventPayload, RecordRefused, Rupiah

Scale = Literal["micro", "small", "medium"]
ScaleBasis = Literal["capital", "annual_sales"]
NibStatus = Literal["none", "applied", "issued", "rejected"]
BusinessStatus = Literal["active", "closed"]

NIB_PATTERN = r"^\d{13}$"
KBLI_PATTERN = r"^\d{5}$"
E164_ID_MOBILE = r"^\+628\d{8,11}$"


def _digits_0_to_9(value: str) -> str:
    # The published schemas' \d means 0-9 to JSON Schema, but any script's digits to pydantic's regex: this holds
    # every reader here to what the schema says, without changing the schema partners have.
    if not value.isascii():
        raise ValueError("digits must be 0-9")
    return value


Digits0To9 = AfterValidator(_digits_0_to_9)


class BusinessEvent(EventPayload):
    aggregate_type: ClassVar[str] = "business"

    business_id: uuid.UUID
    business_version: int = Field(ge=1, description="Increases by one with every change of the business.")

    def aggregate_key(self) -> str:
        return str(self.business_id)

    def aggregate_version(self) -> int:
        return self.business_version


class MissedVersion(RecordRefused):
    """A change of a business that is not a whole snapshot arrived with an earlier change missing, most likely
    dead-lettered. Applied, it would move the view past the missing change, which would then be older than the view
    and change nothing even once re-driven: the business would stay as it was before it for good. Refused, not
    retried: retrying can't bring the missing change, only a re-drive can."""


def never_registered(event: BusinessEvent) -> MissedVersion:
    """The refusal of a single change for a business a view has never heard of: its registration is the change
    missing. Ignored, the event counted as handled, and the business stayed without it for good once its registration
    came: after a failed publish, the relay sends a registration again behind later events Kafka had already taken."""
    return MissedVersion(
        f"business {event.business_id}: {type(event).__name__} is version {event.business_version}, but this view has "
        f"never heard of the business; its registration never arrived here (dead-lettered, or sent again after this "
        f"event, which then follows it and applies: a re-drive skips it). Re-drive this consumer's dead letters of "
        f"registry.business.v1, oldest first: `berdaya dlq redrive registry.business.v1 --consumer <consumer>` "
        f"(`berdaya dlq list registry.business.v1` names it)"
    )


def require_next(held: int | None, event: BusinessEvent) -> None:
    """A single change (an NIB applied for, issued or refused; a closure) applies only on top of the version before
    it; a snapshot carries the whole state and applies over any older version. `held` is None for a business the
    view has never heard of (`never_registered`)."""
    if held is None:
        raise never_registered(event)
    if event.business_version > held + 1:
        raise MissedVersion(
            f"business {event.business_id}: {type(event).__name__} is version {event.business_version}, but this view "
            f"holds version {held}; version {held + 1} never arrived here (dead-lettered, most likely). Re-drive this "
            f"consumer's dead letters of registry.business.v1, oldest first: `berdaya dlq redrive "
            f"registry.business.v1 --consumer <consumer>` (`berdaya dlq list registry.business.v1` names it)"
        )


class BusinessSnapshot(BusinessEvent):
    """The whole public state of a business, so a consumer's view can be rebuilt from any one event."""

    business_name: str
    kbli_code: Annotated[str, Digits0To9] = Field(pattern=KBLI_PATTERN)
    kbli_version: Literal[2020, 2025]
    kecamatan: str
    kecamatan_code: str = Field(description="Kemendagri code, e.g. 53.71.04 (Oebobo)")
    kecamatan_bps: str = Field(description="BPS statistical code, e.g. 5371030 (Oebobo)")
    kelurahan: str
    kelurahan_code: str = Field(description="Kemendagri code, e.g. 53.71.04.1001")
    scale: Scale
    scale_basis: ScaleBasis
    capital_rupiah: Rupiah | None = None
    annual_sales_rupiah: Rupiah | None = None
    youth_owned: bool = Field(
        description="Owner within the youth age range on the first day of the event's month (WITA). The registry "
        "publishes a BusinessUpdated on the first of a month in which the flag changes, so no consumer needs a "
        "birth date."
    )
    women_owned: bool
    nib_status: NibStatus
    nib: Annotated[str, Field(pattern=NIB_PATTERN), Digits0To9] | None = None
    contact_phone: Annotated[str, Digits0To9] = Field(pattern=E164_ID_MOBILE, description="Owner's mobile, for the notifier only.")
    status: BusinessStatus
    registered_at: AwareDatetime


@CATALOG.register
class BusinessRegistered(BusinessSnapshot):
    event_type: ClassVar[str] = "BusinessRegistered"
    event_version: ClassVar[int] = 2

    source: Literal["officer", "import"]


@CATALOG.register
class BusinessUpdated(BusinessSnapshot):
    event_type: ClassVar[str] = "BusinessUpdated"
    event_version: ClassVar[int] = 2

    changed_fields: tuple[str, ...]


@CATALOG.register
class NIBApplied(BusinessEvent):
    event_type: ClassVar[str] = "NIBApplied"
    event_version: ClassVar[int] = 1

    application_id: uuid.UUID
    applied_at: AwareDatetime
    kecamatan_code: str


@CATALOG.register
class NIBIssued(BusinessEvent):
    event_type: ClassVar[str] = "NIBIssued"
    event_version: ClassVar[int] = 1

    application_id: uuid.UUID | None
    nib: Annotated[str, Digits0To9] = Field(pattern=NIB_PATTERN)
    issued_on: date
    kecamatan_code: str


@CATALOG.register
class NIBRejected(BusinessEvent):
    event_type: ClassVar[str] = "NIBRejected"
    event_version: ClassVar[int] = 1

    application_id: uuid.UUID
    reason: str
    kecamatan_code: str


@CATALOG.register
class BusinessClosed(BusinessEvent):
    event_type: ClassVar[str] = "BusinessClosed"
    event_version: ClassVar[int] = 1

    reason: str
    closed_at: AwareDatetime
    kecamatan_code: str


@CATALOG.upcaster("BusinessRegistered", from_version=1)
@CATALOG.upcaster("BusinessUpdated", from_version=1)
def _without_youth_until(v1: dict) -> dict:
    """v1 carried `youth_until` (birth date + 31 years - 1 day), which gives the birth date away; v2 drops it."""
    v1.pop("youth_until", None)
    return v1


REGISTRY_EVENTS: tuple[type[BusinessEvent], ...] = (
    BusinessRegistered,
    BusinessUpdated,
    NIBApplied,
    NIBIssued,
    NIBRejected,
    BusinessClosed,
)



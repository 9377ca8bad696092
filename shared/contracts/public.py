"""What partners may read: redacted events on the public.* topics, and the consented referrals on a partner's own.

Public payloads are built from an allow-list of fields (PUBLIC_FIELDS): never a NIK, a phone number, a person's
name (nor a business name, which often is one), a birth date or anything from which one can be rebuilt. A business
is named by a stable pseudonym, a keyed HMAC of its id, so partners can follow it across public topics without
learning who it is. A referral reaches a partner only with the owner's recorded consent, on that partner's topic.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import EventPayload, Rupiah
from shared.contracts.funding import AmountMode, Earmarks, Instrument, PledgeTotals, SponsorKind
from shared.contracts.registry import E164_ID_MOBILE, NIB_PATTERN, BusinessStatus, Digits0To9, NibStatus, Scale
from shared.contracts.topics import PUBLIC_BUSINESS, PUBLIC_FIGURES, PUBLIC_PLEDGE, PUBLIC_TRAINING
from shared.contracts.training import TrainingTopic

PUBLIC_TOPICS = (PUBLIC_BUSINESS, PUBLIC_PLEDGE, PUBLIC_TRAINING, PUBLIC_FIGURES)
PARTNER_ID_PATTERN = r"^[a-z][a-z0-9-]{1,39}$"


def pseudonym(business_id: uuid.UUID, key: bytes) -> uuid.UUID:
    """The business's stable public name: the same for every event and topic, and not reversible without the key."""
    return uuid.UUID(bytes=hmac.digest(key, b"business:" + business_id.bytes, "sha256")[:16], version=4)


def nik_link(nik: str, partner_key: bytes) -> str:
    """A keyed HMAC of the NIK with the partner's own key: lets one partner link its records, and no one else
    (a plain hash of a NIK is reversible in minutes, 12 of its 16 digits being region and birth date)."""
    return hmac.digest(partner_key, b"nik:" + nik.encode(), "sha256").hex()


# ---------------------------------------------------------------------------------------------------------------
# public.registry.business.v1 (key = the business's pseudonym)
# ---------------------------------------------------------------------------------------------------------------


class PublicBusinessEvent(EventPayload):
    aggregate_type: ClassVar[str] = "public_business"

    business_ref: uuid.UUID = Field(description="The business's stable pseudonym")

    def aggregate_key(self) -> str:
        return str(self.business_ref)


@CATALOG.register
class BusinessListed(PublicBusinessEvent):
    """What the public may know of a business, after every change: region, sector, scale, derived flags."""

    event_type: ClassVar[str] = "BusinessListed"
    event_version: ClassVar[int] = 1

    version: int = Field(ge=1)
    change: Literal["registered", "updated", "nib_applied", "nib_issued", "nib_rejected", "closed"]
    kecamatan_code: str
    kecamatan: str
    kelurahan_code: str
    kelurahan: str
    kbli_code: str
    kbli_version: int
    scale: Scale
    youth_owned: bool = Field(description="As of the first day of the event's month")
    women_owned: bool
    nib_status: NibStatus
    status: BusinessStatus
    registered_on: date

    def aggregate_version(self) -> int:
        return self.version


# ---------------------------------------------------------------------------------------------------------------
# public.funding.pledge.v1 (key = pledge id)
# ---------------------------------------------------------------------------------------------------------------


class PublicPledgeEvent(EventPayload):
    aggregate_type: ClassVar[str] = "public_pledge"

    pledge_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.pledge_id)


@CATALOG.register
class PledgeAnnounced(PublicPledgeEvent):
    event_type: ClassVar[str] = "PledgeAnnounced"
    event_version: ClassVar[int] = 1

    sponsor_name: str
    sponsor_kind: SponsorKind
    title: str
    instrument: Instrument
    financing_programme: str | None = None
    total_rupiah: Rupiah
    amount_mode: AmountMode
    amount_per_business_rupiah: Rupiah
    valid_from: date
    valid_until: date
    earmarks: Earmarks


@CATALOG.register
class PledgeProgressed(PublicPledgeEvent):
    """The pledge's money after an offer was made, answered or paid, or the pledge ran out or closed."""

    event_type: ClassVar[str] = "PledgeProgressed"
    event_version: ClassVar[int] = 1

    change: Literal["offered", "accepted", "declined", "expired", "withdrawn", "disbursed", "exhausted", "closed"]
    business_ref: uuid.UUID | None = Field(default=None, description="The business's pseudonym, for an offer's change")
    kecamatan_code: str | None = None
    amount_rupiah: Rupiah | None = None
    totals: PledgeTotals | None = Field(default=None, description="When the pledge ran out or closed")
    at: AwareDatetime


# ---------------------------------------------------------------------------------------------------------------
# public.training.v1 (key = cohort id)
# ---------------------------------------------------------------------------------------------------------------


class PublicTrainingEvent(EventPayload):
    aggregate_type: ClassVar[str] = "public_training"

    cohort_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.cohort_id)


@CATALOG.register
class CohortListed(PublicTrainingEvent):
    event_type: ClassVar[str] = "CohortListed"
    event_version: ClassVar[int] = 1

    change: Literal["opened", "completed", "cancelled"]
    topic: TrainingTopic
    title: str
    capacity: int = Field(ge=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    kecamatan_code: str | None = None
    enrolled: int | None = Field(default=None, ge=0)
    completed: int | None = Field(default=None, ge=0)


@CATALOG.register
class GraduateListed(PublicTrainingEvent):
    event_type: ClassVar[str] = "GraduateListed"
    event_version: ClassVar[int] = 1

    business_ref: uuid.UUID
    topic: TrainingTopic
    completed_on: date
    kecamatan_code: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# public.figures.v1 (key = the figure and its region)
# ---------------------------------------------------------------------------------------------------------------


@CATALOG.register
class NibCoverageReported(EventPayload):
    """The programme's headline figure, per kecamatan and for the city ('53.71')."""

    event_type: ClassVar[str] = "NibCoverageReported"
    event_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = "public_figures"

    region_code: str
    region: str
    registered: int = Field(ge=0)
    with_nib: int = Field(ge=0)
    as_of: AwareDatetime

    def aggregate_key(self) -> str:
        return f"nib-coverage:{self.region_code}"


# ---------------------------------------------------------------------------------------------------------------
# partner.<id>.referral.v1: consented referrals, for that partner only (key = consent id)
# ---------------------------------------------------------------------------------------------------------------


class ReferralEvent(EventPayload):
    aggregate_type: ClassVar[str] = "referral"

    consent_id: uuid.UUID
    partner_id: str = Field(pattern=PARTNER_ID_PATTERN)

    def aggregate_key(self) -> str:
        return str(self.consent_id)


@CATALOG.register
class ReferralConsented(ReferralEvent):
    """Exactly what the partner needs to serve the owner, shared because the owner consented, for a stated purpose."""

    event_type: ClassVar[str] = "ReferralConsented"
    event_version: ClassVar[int] = 1

    purpose: str
    owner_name: str
    owner_phone: Annotated[str, Digits0To9] = Field(pattern=E164_ID_MOBILE)
    owner_nik_link: str = Field(description="Keyed HMAC of the owner's identity number with this partner's own key, to link its own records")
    business_name: str
    nib: Annotated[str, Field(pattern=NIB_PATTERN), Digits0To9] | None = None
    kecamatan_code: str
    financing_programme: str | None = None
    amount_sought_rupiah: Rupiah | None = None
    offer_id: uuid.UUID | None = Field(default=None, description="Funding's offer this referral answers, if any")
    consented_at: AwareDatetime
    recorded_by: str = Field(description="The officer who recorded the owner's consent")


@CATALOG.register
class ReferralConsentWithdrawn(ReferralEvent):
    """The owner withdrew consent: the partner must stop using what the referral shared (UU PDP 27/2022)."""

    event_type: ClassVar[str] = "ReferralConsentWithdrawn"
    event_version: ClassVar[int] = 1

    withdrawn_at: AwareDatetime


# ---------------------------------------------------------------------------------------------------------------
# partner.<id>.outcomes.v1: what happened on the partner's side, written by that partner (key = consent id)
# ---------------------------------------------------------------------------------------------------------------


class PartnerOutcome(EventPayload):
    aggregate_type: ClassVar[str] = "partner_outcome"

    partner_id: str = Field(pattern=PARTNER_ID_PATTERN)
    consent_id: uuid.UUID
    offer_id: uuid.UUID | None = None

    def aggregate_key(self) -> str:
        return str(self.consent_id)


@CATALOG.register
class FinancingApproved(PartnerOutcome):
    event_type: ClassVar[str] = "FinancingApproved"
    event_version: ClassVar[int] = 1

    amount_rupiah: Rupiah
    approved_on: date


@CATALOG.register
class FinancingDisbursed(PartnerOutcome):
    event_type: ClassVar[str] = "FinancingDisbursed"
    event_version: ClassVar[int] = 1

    amount_rupiah: Rupiah
    disbursed_on: date


@CATALOG.register
class FinancingDeclined(PartnerOutcome):
    event_type: ClassVar[str] = "FinancingDeclined"
    event_version: ClassVar[int] = 1

    reason: str = Field(max_length=500)
    declined_on: date


# The fields a partner-facing payload may carry, by event type: a new field reaches partners only by being added
# here on purpose (and a test checks every public schema against this list).
PUBLIC_FIELDS: dict[str, frozenset[str]] = {
    "BusinessListed": frozenset({
        "business_ref", "version", "change", "kecamatan_code", "kecamatan", "kelurahan_code", "kelurahan", "kbli_code",
        "kbli_version", "scale", "youth_owned", "women_owned", "nib_status", "status", "registered_on"}),
    "PledgeAnnounced": frozenset({
        "pledge_id", "sponsor_name", "sponsor_kind", "title", "instrument", "financing_programme", "total_rupiah",
        "amount_mode", "amount_per_business_rupiah", "valid_from", "valid_until", "earmarks"}),
    "PledgeProgressed": frozenset({
        "pledge_id", "change", "business_ref", "kecamatan_code", "amount_rupiah", "totals", "at"}),
    "CohortListed": frozenset({
        "cohort_id", "change", "topic", "title", "capacity", "starts_at", "ends_at", "kecamatan_code", "enrolled",
        "completed"}),
    "GraduateListed": frozenset({"cohort_id", "business_ref", "topic", "completed_on", "kecamatan_code"}),
    "NibCoverageReported": frozenset({"region_code", "region", "registered", "with_nib", "as_of"}),
}  # fmt: skip
# A referral carries personal data by design, to one partner, with consent: these and nothing else.
REFERRAL_FIELDS: dict[str, frozenset[str]] = {
    "ReferralConsented": frozenset({
        "consent_id", "partner_id", "purpose", "owner_name", "owner_phone", "owner_nik_link", "business_name", "nib",
        "kecamatan_code", "financing_programme", "amount_sought_rupiah", "offer_id", "consented_at", "recorded_by"}),
    "ReferralConsentWithdrawn": frozenset({"consent_id", "partner_id", "withdrawn_at"}),
}  # fmt: skip

"""Events of a sponsor's pledge, published by funding on `funding.pledge.v1` (key = pledge id).

Offers belong to their pledge: a pledge and its offers are one consistency boundary (never over-allocated), so
their events share one key and stay in order.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import EventPayload, Rupiah
from shared.contracts.registry import E164_ID_MOBILE, Digits0To9, Scale
from shared.contracts.training import TrainingTopic

Instrument = Literal["grant", "equipment", "soft_loan", "financing_referral"]
AmountMode = Literal["fixed", "capped"]
SponsorKind = Literal["bank", "state_owned", "pos_indonesia", "insurer", "company", "government", "other"]


class Earmarks(BaseModel):
    """Who a pledge is for. Every earmark left empty or false admits everyone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The pledge form bounds these lists, so no pledge's events come anywhere near the broker's record size limit.
    kecamatan_codes: tuple[str, ...] = Field(default=(), description="Kemendagri codes, e.g. 53.71.04")
    kbli_prefixes: tuple[str, ...] = Field(default=(), description="KBLI codes or prefixes, e.g. 10, 11, 56")
    scales: tuple[Scale, ...] = ()
    youth_owned_only: bool = False
    women_owned_only: bool = False
    nib_required: bool = False
    trainings_completed: tuple[TrainingTopic, ...] = Field(
        default=(), description="Training topics the business must have completed, all of them"
    )
    min_readiness: int = Field(default=0, ge=0, le=100)


class PledgeEvent(EventPayload):
    aggregate_type: ClassVar[str] = "pledge"

    pledge_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.pledge_id)


class OfferEvent(PledgeEvent):
    offer_id: uuid.UUID
    business_id: uuid.UUID
    amount_rupiah: Rupiah


@CATALOG.register
class CSRPledged(PledgeEvent):
    event_type: ClassVar[str] = "CSRPledged"
    event_version: ClassVar[int] = 2

    sponsor_id: uuid.UUID
    sponsor_name: str
    sponsor_kind: SponsorKind
    title: str
    instrument: Instrument
    financing_programme: str | None = Field(default=None, description="e.g. KUR, for a financing referral")
    total_rupiah: Rupiah
    amount_mode: AmountMode
    amount_per_business_rupiah: Rupiah
    min_offer_rupiah: Rupiah
    valid_from: date
    valid_until: date
    earmarks: Earmarks
    pledged_at: AwareDatetime


@CATALOG.upcaster("CSRPledged", from_version=1)
def _topics_are_open(v1: dict) -> dict:
    """v1 allowed four training programmes by name; v2 any training topic, of which those four still are."""
    return v1


@CATALOG.register
class FundingMatched(OfferEvent):
    event_type: ClassVar[str] = "FundingMatched"
    event_version: ClassVar[int] = 1

    business_name: str
    contact_phone: Annotated[str, Digits0To9] = Field(pattern=E164_ID_MOBILE, description="Owner's mobile, for the notifier only.")
    kecamatan_code: str
    sponsor_name: str
    instrument: Instrument
    financing_programme: str | None = None
    readiness: int
    rank: int | None = Field(description="Position among the candidates ranked when matched; None when it was the only one")
    offered_at: AwareDatetime
    expires_at: AwareDatetime


@CATALOG.register
class FundingAccepted(OfferEvent):
    event_type: ClassVar[str] = "FundingAccepted"
    event_version: ClassVar[int] = 1

    accepted_at: AwareDatetime


@CATALOG.register
class FundingDeclined(OfferEvent):
    event_type: ClassVar[str] = "FundingDeclined"
    event_version: ClassVar[int] = 1

    reason: str
    declined_at: AwareDatetime


@CATALOG.register
class FundingExpired(OfferEvent):
    event_type: ClassVar[str] = "FundingExpired"
    event_version: ClassVar[int] = 1

    expired_at: AwareDatetime


@CATALOG.register
class FundingWithdrawn(OfferEvent):
    """An offer taken back before disbursement, e.g. because the business closed or the pledge was closed."""

    event_type: ClassVar[str] = "FundingWithdrawn"
    event_version: ClassVar[int] = 1

    reason: str
    withdrawn_at: AwareDatetime


@CATALOG.register
class FundsDisbursed(OfferEvent):
    event_type: ClassVar[str] = "FundsDisbursed"
    event_version: ClassVar[int] = 1

    reference: str
    disbursed_at: AwareDatetime
    business_name: str
    contact_phone: Annotated[str, Digits0To9] = Field(pattern=E164_ID_MOBILE)
    sponsor_name: str


class PledgeTotals(BaseModel):
    """pledged = reserved + accepted + disbursed + remaining, always."""

    model_config = ConfigDict(frozen=True)

    pledged_rupiah: Rupiah
    reserved_rupiah: Rupiah
    accepted_rupiah: Rupiah
    disbursed_rupiah: Rupiah
    remaining_rupiah: Rupiah


@CATALOG.register
class PledgeExhausted(PledgeEvent):
    event_type: ClassVar[str] = "PledgeExhausted"
    event_version: ClassVar[int] = 1

    totals: PledgeTotals
    exhausted_at: AwareDatetime


@CATALOG.register
class PledgeClosed(PledgeEvent):
    event_type: ClassVar[str] = "PledgeClosed"
    event_version: ClassVar[int] = 1

    reason: str
    totals: PledgeTotals
    closed_at: AwareDatetime

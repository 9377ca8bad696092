"""Turning funding's domain objects into the shared integration contracts, at the service boundary."""

from __future__ import annotations

from datetime import datetime

from services.funding.domain import BusinessView, Offer, Pledge
from shared.contracts.funding import (
    CSRPledged,
    FundingAccepted,
    FundingDeclined,
    FundingExpired,
    FundingMatched,
    FundingWithdrawn,
    FundsDisbursed,
    PledgeClosed,
    PledgeExhausted,
    PledgeTotals,
)


def totals(p: Pledge) -> PledgeTotals:
    return PledgeTotals(pledged_rupiah=p.total_rupiah, reserved_rupiah=p.reserved_rupiah,
                        accepted_rupiah=p.accepted_rupiah, disbursed_rupiah=p.disbursed_rupiah,
                        remaining_rupiah=p.remaining_rupiah)  # fmt: skip


def pledged(p: Pledge) -> CSRPledged:
    assert p.created_at is not None
    return CSRPledged(
        pledge_id=p.id, sponsor_id=p.sponsor_id, sponsor_name=p.sponsor_name, sponsor_kind=p.sponsor_kind,  # type: ignore[arg-type]
        title=p.title, instrument=p.instrument, financing_programme=p.financing_programme,  # type: ignore[arg-type]
        total_rupiah=p.total_rupiah, amount_mode=p.amount_mode, amount_per_business_rupiah=p.amount_per_business_rupiah,  # type: ignore[arg-type]
        min_offer_rupiah=p.min_offer_rupiah, valid_from=p.valid_from, valid_until=p.valid_until, earmarks=p.earmarks,
        pledged_at=p.created_at,
    )  # fmt: skip


def matched(o: Offer, b: BusinessView, p: Pledge) -> FundingMatched:
    return FundingMatched(
        pledge_id=p.id, offer_id=o.id, business_id=b.business_id, amount_rupiah=o.amount_rupiah,
        business_name=b.business_name, contact_phone=b.contact_phone, kecamatan_code=b.kecamatan_code,
        sponsor_name=p.sponsor_name, instrument=p.instrument, financing_programme=p.financing_programme,  # type: ignore[arg-type]
        readiness=o.readiness, rank=o.rank, offered_at=o.offered_at, expires_at=o.expires_at,
    )  # fmt: skip


def decided(o: Offer) -> FundingAccepted | FundingDeclined | FundingExpired | FundingWithdrawn:
    assert o.decided_at is not None
    common = dict(pledge_id=o.pledge_id, offer_id=o.id, business_id=o.business_id, amount_rupiah=o.amount_rupiah)
    match o.status:
        case "accepted":
            return FundingAccepted(**common, accepted_at=o.decided_at)
        case "declined":
            return FundingDeclined(**common, reason=o.reason or "", declined_at=o.decided_at)
        case "expired":
            return FundingExpired(**common, expired_at=o.decided_at)
        case "withdrawn":
            return FundingWithdrawn(**common, reason=o.reason or "", withdrawn_at=o.decided_at)
    raise ValueError(f"offer {o.id} is {o.status}, not a decision")


def disbursed(o: Offer, b: BusinessView, p: Pledge) -> FundsDisbursed:
    assert o.disbursed_at is not None and o.reference is not None
    return FundsDisbursed(
        pledge_id=p.id, offer_id=o.id, business_id=o.business_id, amount_rupiah=o.amount_rupiah, reference=o.reference,
        disbursed_at=o.disbursed_at, business_name=b.business_name, contact_phone=b.contact_phone,
        sponsor_name=p.sponsor_name,
    )  # fmt: skip


def exhausted(p: Pledge, at: datetime) -> PledgeExhausted:
    return PledgeExhausted(pledge_id=p.id, totals=totals(p), exhausted_at=at)


def closed(p: Pledge) -> PledgeClosed:
    assert p.closed_at is not None
    return PledgeClosed(pledge_id=p.id, reason=p.close_reason or "", totals=totals(p), closed_at=p.closed_at)

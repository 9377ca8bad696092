"""Turning funding's domain events into the shared integration contracts, at the service boundary."""

from __future__ import annotations

from services.funding.domain import events
from services.funding.domain.offers import Offer
from services.funding.domain.reports import totals_of
from shared.contracts import EventPayload
from shared.contracts.public import PledgeAnnounced, PledgeProgressed, pseudonym
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
)


def translate(event: events.DomainEvent, pseudonym_key: bytes) -> list[EventPayload]:
    """The internal event for the services, and its redacted copy for partners (no business name or phone; the
    business by its pseudonym)."""
    return [_internal(event), _public(event, pseudonym_key)]


def _public(event: events.DomainEvent, key: bytes) -> EventPayload:
    match event:
        case events.PledgeMade(pledge=p):
            return PledgeAnnounced(
                pledge_id=p.id, sponsor_name=p.sponsor_name, sponsor_kind=p.sponsor_kind, title=p.title,  # type: ignore[arg-type]
                instrument=p.instrument, financing_programme=p.financing_programme, total_rupiah=p.total_rupiah,  # type: ignore[arg-type]
                amount_mode=p.amount_mode, amount_per_business_rupiah=p.amount_per_business_rupiah,  # type: ignore[arg-type]
                valid_from=p.valid_from, valid_until=p.valid_until, earmarks=p.earmarks,
            )  # fmt: skip
        case events.OfferMade(offer=o, business=b):
            return PledgeProgressed(pledge_id=o.pledge_id, change="offered", business_ref=pseudonym(o.business_id, key),
                                    kecamatan_code=b.kecamatan_code, amount_rupiah=o.amount_rupiah, at=o.offered_at)  # fmt: skip
        case events.OfferDecided(offer=o):
            assert o.decided_at is not None
            return PledgeProgressed(pledge_id=o.pledge_id, change=o.status, business_ref=pseudonym(o.business_id, key),  # type: ignore[arg-type]
                                    amount_rupiah=o.amount_rupiah, at=o.decided_at)  # fmt: skip
        case events.OfferPaid(offer=o, business=b):
            assert o.disbursed_at is not None
            return PledgeProgressed(pledge_id=o.pledge_id, change="disbursed", business_ref=pseudonym(o.business_id, key),
                                    kecamatan_code=b.kecamatan_code, amount_rupiah=o.amount_rupiah, at=o.disbursed_at)  # fmt: skip
        case events.PledgeRanOut(pledge=p, at=at):
            return PledgeProgressed(pledge_id=p.id, change="exhausted", totals=totals_of([p]), at=at)
        case events.PledgeEnded(pledge=p):
            assert p.closed_at is not None
            return PledgeProgressed(pledge_id=p.id, change="closed", totals=totals_of([p]), at=p.closed_at)
    raise TypeError(f"no public contract for {event!r}")


def _internal(event: events.DomainEvent) -> EventPayload:
    match event:
        case events.PledgeMade(pledge=p):
            assert p.created_at is not None
            return CSRPledged(
                pledge_id=p.id, sponsor_id=p.sponsor_id, sponsor_name=p.sponsor_name, sponsor_kind=p.sponsor_kind,  # type: ignore[arg-type]
                title=p.title, instrument=p.instrument, financing_programme=p.financing_programme,  # type: ignore[arg-type]
                total_rupiah=p.total_rupiah, amount_mode=p.amount_mode,  # type: ignore[arg-type]
                amount_per_business_rupiah=p.amount_per_business_rupiah, min_offer_rupiah=p.min_offer_rupiah,
                valid_from=p.valid_from, valid_until=p.valid_until, earmarks=p.earmarks, pledged_at=p.created_at,
            )  # fmt: skip
        case events.OfferMade(offer=o, business=b, pledge=p):
            return FundingMatched(
                pledge_id=p.id, offer_id=o.id, business_id=b.business_id, amount_rupiah=o.amount_rupiah,
                business_name=b.business_name, contact_phone=b.contact_phone, kecamatan_code=b.kecamatan_code,
                sponsor_name=p.sponsor_name, instrument=p.instrument, financing_programme=p.financing_programme,  # type: ignore[arg-type]
                readiness=o.readiness, rank=o.rank, offered_at=o.offered_at, expires_at=o.expires_at,
            )  # fmt: skip
        case events.OfferDecided(offer=o):
            return _decision(o)
        case events.OfferPaid(offer=o, business=b, pledge=p):
            assert o.disbursed_at is not None and o.reference is not None
            return FundsDisbursed(
                pledge_id=p.id, offer_id=o.id, business_id=o.business_id, amount_rupiah=o.amount_rupiah,
                reference=o.reference, disbursed_at=o.disbursed_at, business_name=b.business_name,
                contact_phone=b.contact_phone, sponsor_name=p.sponsor_name,
            )  # fmt: skip
        case events.PledgeRanOut(pledge=p, at=at):
            return PledgeExhausted(pledge_id=p.id, totals=totals_of([p]), exhausted_at=at)
        case events.PledgeEnded(pledge=p):
            assert p.closed_at is not None
            return PledgeClosed(pledge_id=p.id, reason=p.close_reason or "", totals=totals_of([p]), closed_at=p.closed_at)
    raise TypeError(f"no contract for {event!r}")


def _decision(o: Offer) -> EventPayload:
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

"""Matching and an offer's life: ranking candidates, allocating a pledge's money to offers without ever
over-allocating, and accepting, declining, expiring, withdrawing and paying out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.funding.domain.earmarks import eligible, evaluate
from services.funding.domain.pledges import Pledge
from services.funding.domain.view import BusinessView, Readiness, rank_key, readiness
from shared.contracts.funding import Earmarks
from shared.errors import Conflict, InvalidInput
from shared.reference.wita import WITA, today_in_kupang


@dataclass(frozen=True, slots=True)
class Offer:
    id: uuid.UUID
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    amount_rupiah: int
    status: str  # offered | accepted | declined | expired | withdrawn | disbursed
    offered_at: datetime
    expires_at: datetime
    readiness: int
    rank: int | None
    ranking: dict[str, Any] = field(default_factory=dict)
    decided_at: datetime | None = None
    reason: str | None = None
    disbursed_at: datetime | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    business: BusinessView
    readiness: Readiness
    rank: int


def rank_candidates(earmarks: Earmarks, businesses: Iterable[BusinessView], today: date) -> list[Candidate]:
    scored = [(b, readiness(b, today)) for b in businesses if eligible(earmarks, b, today)]
    scored.sort(key=lambda pair: rank_key(pair[0], pair[1].score))
    return [Candidate(b, r, i + 1) for i, (b, r) in enumerate(scored)]


def ranking_inputs(candidate: Candidate, today: date) -> dict[str, Any]:
    """What decided the candidate's place, kept with the offer so 'why' can be answered later."""
    b = candidate.business
    return {
        "rank": candidate.rank,
        "funded_before": b.funded_count > 0,
        "readiness": candidate.readiness.score,
        "readiness_parts": candidate.readiness.parts,
        "registered_at": b.registered_at.isoformat(),
        "evaluated_on": today.isoformat(),
    }


def offer_deadline(pledge: Pledge, now: datetime, offer_days: int) -> datetime:
    """`offer_days` from now, but never past the end (midnight, Kupang time) of the pledge's last valid day: an offer
    can't be accepted after it, and the owner is told the deadline."""
    window_ends = datetime.combine(pledge.valid_until + timedelta(days=1), time(0), tzinfo=WITA).astimezone(UTC)
    return min(now + timedelta(days=offer_days), window_ends)


def allocate(
    pledge: Pledge, candidates: Sequence[Candidate], now: datetime, offer_days: int, new_id: Any = uuid.uuid4
) -> tuple[Pledge, list[Offer]]:
    """Offer to candidates in rank order while the pledge can afford the next offer. Never over-allocates."""
    offers = []
    today = today_in_kupang(now)
    expires_at = offer_deadline(pledge, now, offer_days)
    reserving = 0  # the pledge is copied once at the end, not once per offer (a pledge may make tens of thousands)
    for candidate in candidates:
        amount = pledge.next_offer_amount(reserving)
        if amount is None or not pledge.open_on(today):
            break
        offers.append(Offer(new_id(), pledge.id, candidate.business.business_id, amount, "offered", now, expires_at,
                            candidate.readiness.score, candidate.rank if len(candidates) > 1 else None,
                            ranking_inputs(candidate, today)))  # fmt: skip
        reserving += amount
    return settle_status(replace(pledge, reserved_rupiah=pledge.reserved_rupiah + reserving)), offers


def settle_status(pledge: Pledge) -> Pledge:
    if pledge.status == "closed":
        return pledge
    status = "exhausted" if pledge.next_offer_amount() is None else "open"
    # Copying a pledge costs more than the rest of an offer; a batch of registry events makes hundreds of them.
    return pledge if status == pledge.status else replace(pledge, status=status)


# ---------------------------------------------------------------------------------------------------------------
# An offer's life
# ---------------------------------------------------------------------------------------------------------------


def repeated(offer: Offer, status: str, recorded: str | None = None) -> bool:
    """A request retried after its answer was lost finds the offer as the first one left it: answered again, not
    refused. Only the same request: another reason or reference conflicts with the one recorded."""
    if offer.status != status:
        return False
    return recorded is None or recorded == (offer.reference if status == "disbursed" else offer.reason)


def decline_reason(reason: str) -> str:
    return reason.strip() or "declined by the business"


def _as_recorded(offer: Offer) -> str:
    return f"{offer.status} ({offer.reason})" if offer.reason else offer.status


def _require_offered(offer: Offer, action: str) -> None:
    if offer.status != "offered":
        raise Conflict(f"offer {offer.id} is {_as_recorded(offer)}; it can't be {action}", "offer_not_open",
                       {"offer_status": offer.status})  # fmt: skip


def accept(pledge: Pledge, offer: Offer, business: BusinessView | None, now: datetime) -> tuple[Pledge, Offer]:
    """Everything is checked again at acceptance: the window, the offer's expiry, the cap and every earmark."""
    _require_offered(offer, "accepted")
    today = today_in_kupang(now)
    problems = []
    if not pledge.open_on(today):
        problems.append(f"the pledge is {pledge.status} or outside its window {pledge.valid_from} to {pledge.valid_until}")
    if now >= offer.expires_at:
        problems.append(f"the offer expired at {offer.expires_at.isoformat()}")
    if offer.amount_rupiah > pledge.amount_per_business_rupiah:
        problems.append("the amount is above the pledge's per-business cap")
    failed = [c for c in evaluate(pledge.earmarks, business, today) if not c.passed] if business else []
    if business is None:
        problems.append("funding no longer knows this business")
    problems += [f"earmark {c.earmark} not met: needs {c.required}, is {c.value}" for c in failed]
    if problems:
        raise Conflict("the offer can't be accepted: " + "; ".join(problems), "offer_not_acceptable",
                       {"problems": problems})  # fmt: skip
    return (
        replace(pledge, reserved_rupiah=pledge.reserved_rupiah - offer.amount_rupiah,
                accepted_rupiah=pledge.accepted_rupiah + offer.amount_rupiah),
        replace(offer, status="accepted", decided_at=now),
    )  # fmt: skip


def release(pledge: Pledge, offer: Offer, status: str, now: datetime, reason: str | None = None) -> tuple[Pledge, Offer]:
    """Decline, expiry or withdrawal: the offer's money goes back to the pledge."""
    if offer.status == "offered":
        pledge = replace(pledge, reserved_rupiah=pledge.reserved_rupiah - offer.amount_rupiah)
    elif offer.status == "accepted" and status == "withdrawn":
        pledge = replace(pledge, accepted_rupiah=pledge.accepted_rupiah - offer.amount_rupiah)
    else:
        _require_offered(offer, status)
    return settle_status(pledge), replace(offer, status=status, decided_at=now, reason=reason)


def decline(pledge: Pledge, offer: Offer, reason: str, now: datetime) -> tuple[Pledge, Offer]:
    _require_offered(offer, "declined")
    return release(pledge, offer, "declined", now, decline_reason(reason))


def withdraw_accepted(pledge: Pledge, offer: Offer, reason: str, now: datetime) -> tuple[Pledge, Offer]:
    """The sponsor will not pay an accepted offer (its business closed, say): the money goes back to the pledge."""
    if offer.status != "accepted":
        raise Conflict(f"offer {offer.id} is {_as_recorded(offer)}; only an accepted offer not yet paid is withdrawn "
                       "by its sponsor", "offer_not_accepted", {"offer_status": offer.status})  # fmt: skip
    if not reason.strip():
        raise InvalidInput.one("reason", "reason.missing", "say why the sponsor will not pay it")
    return release(pledge, offer, "withdrawn", now, reason.strip())


def lapsed(offer: Offer, now: datetime) -> bool:
    """Unanswered past its expiry: expired, whether or not the sweep has reached it yet."""
    return offer.status == "offered" and now >= offer.expires_at


def expire(pledge: Pledge, offer: Offer, now: datetime) -> tuple[Pledge, Offer]:
    _require_offered(offer, "expired")
    if now < offer.expires_at:
        raise Conflict(f"offer {offer.id} runs until {offer.expires_at.isoformat()}", "offer_not_due")
    return release(pledge, offer, "expired", now)


def disburse(pledge: Pledge, offer: Offer, reference: str, now: datetime) -> tuple[Pledge, Offer]:
    if offer.status == "disbursed":
        raise Conflict(f"offer {offer.id} was paid already, with reference {offer.reference!r}; a payment is recorded "
                       "once", "offer_not_accepted", {"offer_status": offer.status, "reference": offer.reference})  # fmt: skip
    if offer.status != "accepted":
        raise Conflict(f"offer {offer.id} is {offer.status}; only an accepted offer is disbursed", "offer_not_accepted")
    if not reference.strip():
        raise InvalidInput.one("reference", "reference.missing", "give the transfer or handover reference")
    return (
        replace(pledge, accepted_rupiah=pledge.accepted_rupiah - offer.amount_rupiah,
                disbursed_rupiah=pledge.disbursed_rupiah + offer.amount_rupiah),
        replace(offer, status="disbursed", disbursed_at=now, reference=reference.strip()),
    )  # fmt: skip


def simulate(pledge: Pledge, candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[int], int]:
    """Who a pledge would fund now and with how much, committing nothing: (funded, amounts, remaining)."""
    funded, amounts = [], []
    for candidate in candidates:
        amount = pledge.next_offer_amount()
        if amount is None:
            break
        funded.append(candidate)
        amounts.append(amount)
        pledge = replace(pledge, reserved_rupiah=pledge.reserved_rupiah + amount)
    return funded, amounts, pledge.remaining_rupiah

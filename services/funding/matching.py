"""Matching: offering a pledge's money to eligible businesses in rank order, and giving it back when offers end.

Everything here runs inside a unit of work whose pledges are already locked; the callers take the locks, always
business view rows first, then the ranking lock (see `FundingStore.hold_ranking`), then pledges in id order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from services.funding.domain import events, offers
from services.funding.domain.earmarks import eligible
from services.funding.domain.offers import Candidate, Offer
from services.funding.domain.pledges import Pledge
from services.funding.domain.view import BusinessView, readiness
from services.funding.store import FundingUnitOfWork
from shared.reference.wilayah import Wilayah
from shared.reference.wita import today_in_kupang
from shared.unit_of_work import Cause


@dataclass(frozen=True)
class Deps:
    wilayah: Wilayah
    clock: Callable[[], datetime]
    offer_days: int = 14
    new_id: Callable[[], uuid.UUID] = uuid.uuid4
    # Told of every match once it is committed, with when the business became eligible for it, for the metric.
    matched: Callable[[Offer, Pledge, datetime | None], None] = field(default=lambda *_: None)


async def offer(pledge: Pledge, candidates: Sequence[Candidate], uow: FundingUnitOfWork, deps: Deps, now: datetime,
                was: str | None = None) -> Pledge:  # fmt: skip
    """Offer to the candidates in order while the pledge can afford it. `was`: the pledge's status when the unit of
    work began, so a decline refilled at once is not a new exhaustion."""
    pledge, made = _allocate(pledge, candidates, uow, deps, now, was)
    await uow.store.add_offers(made)
    await uow.store.save_pledge(pledge)
    return pledge


def _allocate(pledge: Pledge, candidates: Sequence[Candidate], uow: FundingUnitOfWork, deps: Deps, now: datetime,
              was: str | None) -> tuple[Pledge, list[Offer]]:  # fmt: skip
    """`offer` without the writes: the offers and their events, for the caller to write (with others, at once)."""
    before = was or pledge.status
    pledge, made = offers.allocate(pledge, candidates, now, deps.offer_days, deps.new_id)
    by_id = {c.business.business_id: c.business for c in candidates}
    for o in made:
        uow.emit(events.OfferMade(o, by_id[o.business_id], pledge))
        # Eligible since the change that led here (a registry or training event), else since the registry's last.
        since = uow.cause.occurred_at or by_id[o.business_id].eligible_since
        uow.after_commit(lambda o=o, p=pledge, since=since: deps.matched(o, p, since))
    if pledge.status == "exhausted" and before != "exhausted":
        uow.emit(events.PledgeRanOut(pledge, now))
    return pledge, made


async def refill(pledge: Pledge, uow: FundingUnitOfWork, deps: Deps, now: datetime, was: str | None = None) -> Pledge:
    """Offer what the pledge can afford to the best-ranked eligible businesses that have no offer from it yet."""
    today = today_in_kupang(now)
    # Ranked on a view still reading history, the money would go to the best of the businesses read so far, as they
    # were; it is offered once the view has caught up (`handlers.rank_after_catch_up`).
    if not pledge.open_on(today) or await uow.store.view_catching_up():
        await uow.store.save_pledge(pledge)
        return pledge
    pledge = replace(pledge, matched_at=now)
    if pledge.next_offer_amount() is None:
        await uow.store.save_pledge(pledge)
        return pledge
    # Ranking a city's businesses takes a second of CPU per 100,000; on the event loop it held the service's HTTP,
    # consumers and relay at every decline, withdrawal and expiry.
    views = await uow.store.candidates(pledge)
    ranked = await asyncio.to_thread(offers.rank_candidates, pledge.earmarks, views, today)
    return await offer(pledge, ranked, uow, deps, now, was)


def _may_offer(pledges: Sequence[Pledge], day: date) -> list[Pledge]:
    """From a first look without pledge locks (held under the ranking lock, shared), the pledges that may offer to a
    newly eligible business: open and ranked in their window.

    Once a pledge has been matched in its window, while it can afford an offer every eligible business already has
    one (pledges fill greedily in rank order), so a newly eligible business is the next in line and needs no
    re-ranking. A pledge not ranked yet is left to its own ranked matching, so no one jumps the queue; the ranking
    lock makes sure that ranking sees this business. Whether the pledge can still afford an offer is left to the
    look under its lock: a decline may give money back meanwhile, refilled by a transaction that could not see this
    business yet.
    """
    return [p for p in pledges if p.open_on(day) and p.matched_in_window]


def _in_kecamatan(pledges: Sequence[Pledge]) -> Callable[[str], list[Pledge]]:
    """The pledges, in their order, that may want a business in a kecamatan: those earmarked for it and those for
    every kecamatan. Most pledges are for a few kecamatan, and checking every open pledge against every business of a
    batch took a tenth of the batch's time."""
    found: dict[str, list[Pledge]] = {}

    def of(code: str) -> list[Pledge]:
        if code not in found:
            found[code] = [p for p in pledges if not p.earmarks.kecamatan_codes or code in p.earmarks.kecamatan_codes]
        return found[code]

    return of


async def settle(changed: Sequence[tuple[BusinessView, Cause]], uow: FundingUnitOfWork, deps: Deps,
                 before: Mapping[uuid.UUID, BusinessView] | None = None) -> None:  # fmt: skip
    """After what funding knows of these businesses changed: withdraw the unanswered offers of those that closed (and
    offer the money to the next in line), and offer open pledges to those that became eligible. An accepted offer
    stays: its sponsor may have paid already, and records the payment, or withdraws the offer (`withdraw_offer`).

    `before`: the views as they were before the change. A pledge a closing business qualified for may be refilling
    right now (a decline, an expiry) from views that still show it active, so it is locked too and the business's
    offers read again under the lock.

    All the pledges this may touch are locked first, in id order, so two batches never deadlock.
    """
    now = deps.clock()
    before = before or {}
    closed = [(b, c) for b, c in changed if b.status == "closed"]
    active = [(b, c) for b, c in changed if b.status == "active"]
    if not closed and not active:
        return
    # Before the first look at offers and pledges: a ranking that read a business as active while this batch closes
    # it must have committed its offer before the look, or else see the business closed.
    await uow.store.hold_ranking(alone=False)
    withdrawable = await uow.store.unanswered_offers_of([b.business_id for b, _ in closed]) if closed else []
    pledges = await uow.store.unclosed_pledges()
    today = today_in_kupang(now)
    offering = _may_offer(pledges, today)  # the pledges' part done once for the batch
    in_kecamatan = _in_kecamatan(offering)
    wanted = {b.business_id: [p.id for p in in_kecamatan(b.kecamatan_code) if eligible(p.earmarks, b, today)]
              for b, _ in active}  # fmt: skip
    was_eligible = {p.id for b, _ in closed if (old := before.get(b.business_id)) is not None
                    for p in offering if eligible(p.earmarks, old, today)}  # fmt: skip
    locked = {p.id: p for p in await uow.store.lock_pledges(sorted(
        {o.pledge_id for o in withdrawable} | {i for ids in wanted.values() for i in ids} | was_eligible))}  # fmt: skip
    if was_eligible - {o.pledge_id for o in withdrawable}:
        # Only a pledge locked here can have offered meanwhile: ranking waits for the ranking lock this batch holds.
        again = await uow.store.unanswered_offers_of([b.business_id for b, _ in closed])
        withdrawable = [o for o in again if o.pledge_id in locked]
    was = {i: p.status for i, p in locked.items()}

    # Every closure's offers are withdrawn before any pledge is refilled, each once: refilled between two closures, a
    # pledge could run out, then have money back, and its PledgeExhausted would speak of a state never committed.
    refilling: dict[uuid.UUID, Cause] = {}  # each pledge given money back, and the last closure that gave it
    for business, cause in closed:
        with uow.caused_by(cause):
            seen = [o for o in withdrawable if o.business_id == business.business_id]
            for pledge_id in await _withdraw(business, seen, locked, uow, now):
                refilling[pledge_id] = cause
    for pledge_id, cause in refilling.items():
        with uow.caused_by(cause):
            locked[pledge_id] = await refill(locked[pledge_id], uow, deps, now, was[pledge_id])
    # Those that became eligible: one look (under the pledge locks, after any refill above) for the offers they
    # already have, then the offers made in memory, pledge by pledge as before, and written together at the end.
    pairs = [(pledge_id, b.business_id) for b, _ in active for pledge_id in wanted[b.business_id]]
    offered = await uow.store.offered_pairs(pairs) if pairs else set()
    made: list[Offer] = []
    moved: dict[uuid.UUID, None] = {}  # pledges whose counters changed, in the order they first did
    for business, cause in active:
        with uow.caused_by(cause):
            for pledge_id in wanted[business.business_id]:
                pledge = locked[pledge_id]  # as it is now, under the lock: another process may have moved first
                if (not pledge.open_on(today) or not pledge.matched_in_window or pledge.next_offer_amount() is None
                        or (pledge_id, business.business_id) in offered):  # fmt: skip
                    continue
                candidate = Candidate(business, readiness(business, today), 1)
                locked[pledge_id], new = _allocate(pledge, [candidate], uow, deps, now, was[pledge_id])
                made += new
                moved[pledge_id] = None
    await uow.store.add_offers(made)
    await uow.store.save_pledges([locked[i] for i in moved])


async def _withdraw(business: BusinessView, seen: Sequence[Offer], locked: dict[uuid.UUID, Pledge],
                    uow: FundingUnitOfWork, now: datetime) -> list[uuid.UUID]:  # fmt: skip
    """Withdraw the business's unanswered offers; returns the pledges whose money came back."""
    touched = []
    for first_look in seen:
        # Read again under the pledge lock: a decline or an acceptance may have committed since the first look.
        current = await uow.store.offer(first_look.id, for_update=True)
        if current is None or current.status != "offered":
            continue
        pledge, withdrawn = offers.release(locked[current.pledge_id], current, "withdrawn", now, "the business closed")
        locked[pledge.id] = pledge
        await uow.store.save_offer(withdrawn)
        uow.emit(events.OfferDecided(withdrawn))
        if pledge.id not in touched:
            touched.append(pledge.id)
    return touched

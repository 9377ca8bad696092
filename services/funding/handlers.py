"""Funding's use cases: keep the business view, record sponsors and pledges, match, and take offers through their
life. Each runs in one unit of work; money moves only with its pledge locked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.funding import domain, events
from services.funding.domain import BusinessView, Candidate, Offer, Pledge, PledgeForm, SponsorForm
from services.funding.store import FundingStore, FundingUnitOfWork
from shared.contracts import EventPayload
from shared.contracts.registry import (
    BusinessClosed,
    BusinessSnapshot,
    NIBApplied,
    NIBIssued,
    NIBRejected,
)
from shared.contracts.training import TrainingCompleted
from shared.errors import Conflict, InvalidInput, NotFound
from shared.reference.wilayah import Wilayah
from shared.reference.wita import today_in_kupang


@dataclass(frozen=True)
class Deps:
    wilayah: Wilayah
    clock: Callable[[], datetime]
    offer_days: int = 14
    new_id: Callable[[], uuid.UUID] = uuid.uuid4
    # Told of every match, for the eligibility-to-match metric.
    matched: Callable[[Offer, BusinessView, Pledge], None] = field(default=lambda *_: None)


# ---------------------------------------------------------------------------------------------------------------
# The business view, from registry and training events
# ---------------------------------------------------------------------------------------------------------------


def updated_view(current: BusinessView | None, event: EventPayload, occurred_at: datetime) -> BusinessView | None:
    """The view after a registry or training event; None when the event changes nothing (stale or unknown)."""
    if isinstance(event, BusinessSnapshot):
        if current is not None and current.version >= event.business_version:
            return None
        return BusinessView(
            business_id=event.business_id, version=event.business_version, business_name=event.business_name,
            contact_phone=event.contact_phone, kecamatan_code=event.kecamatan_code, kbli_code=event.kbli_code,
            scale=event.scale, youth_owned=event.youth_owned, youth_until=event.youth_until,
            women_owned=event.women_owned, nib_status=event.nib_status, status=event.status,
            annual_sales_rupiah=event.annual_sales_rupiah, registered_at=event.registered_at,
            trainings=current.trainings if current else frozenset(),
            funded_count=current.funded_count if current else 0, eligible_since=occurred_at,
        )  # fmt: skip
    if current is None:
        return None  # registration always comes first on the same partition; nothing to attach this to
    if isinstance(event, TrainingCompleted):
        if event.programme in current.trainings:
            return None
        return replace(current, trainings=current.trainings | {event.programme}, eligible_since=occurred_at)
    if current.version >= event.business_version:  # type: ignore[attr-defined]
        return None
    version = event.business_version  # type: ignore[attr-defined]
    match event:
        case NIBApplied():
            return replace(current, version=version, nib_status="applied")
        case NIBIssued():
            return replace(current, version=version, nib_status="issued", eligible_since=occurred_at)
        case NIBRejected():
            return replace(current, version=version, nib_status="rejected")
        case BusinessClosed():
            return replace(current, version=version, status="closed")
    return None


async def business_changed(event: EventPayload, occurred_at: datetime, business_id: uuid.UUID,
                           uow: FundingUnitOfWork, deps: Deps) -> None:  # fmt: skip
    """Apply a registry or training event to the view, then match or withdraw as the change requires."""
    store = uow.store
    # No lock on the view row: one business's events come in order from one partition, and the only other
    # writer (funded_count on acceptance) updates atomically.
    current = await store.business(business_id)
    view = updated_view(current, event, occurred_at)
    if view is None:
        return
    await store.save_business(view)
    if view.status == "closed":
        await _withdraw_offers_of(view, "the business closed", uow, deps)
    else:
        await _match_one(view, uow, deps)


async def _match_one(business: BusinessView, uow: FundingUnitOfWork, deps: Deps) -> None:
    """Offer from every open pledge this business now qualifies for and that can still afford an offer.

    Once a pledge has been matched in its window, while it can afford an offer every eligible business already has
    one (pledges fill greedily in rank order), so a newly eligible business is the next in line and needs no
    re-ranking. A pledge not matched yet is left to its own ranked matching, so no one jumps the queue.
    """
    now = deps.clock()
    today = today_in_kupang(now)
    store = uow.store
    wanted = [
        p.id for p in await store.unclosed_pledges()
        if p.open_on(today) and p.matched_in_window and p.next_offer_amount() is not None
        and domain.eligible(p.earmarks, business, today)
    ]  # fmt: skip
    for pledge in await store.lock_pledges(wanted):  # re-read under the lock: another process may have moved first
        if (not pledge.matched_in_window or pledge.next_offer_amount() is None
                or await store.has_offer(pledge.id, business.business_id)):  # fmt: skip
            continue
        candidate = Candidate(business, domain.readiness(business, today), 1)
        await _offer(pledge, [candidate], uow, deps, now)


async def _offer(pledge: Pledge, candidates: list[Candidate], uow: FundingUnitOfWork, deps: Deps, now: datetime,
                 was: str | None = None) -> Pledge:  # fmt: skip
    """`was`: the pledge's status when the transaction began, so a decline refilled at once is not a new exhaustion."""
    before = was or pledge.status
    pledge, offers = domain.allocate(pledge, candidates, now, deps.offer_days, deps.new_id)
    await uow.store.add_offers(offers)
    by_id = {c.business.business_id: c.business for c in candidates}
    for offer in offers:
        uow.emit(events.matched(offer, by_id[offer.business_id], pledge))
        deps.matched(offer, by_id[offer.business_id], pledge)
    if pledge.status == "exhausted" and before != "exhausted":
        uow.emit(events.exhausted(pledge, now))
    await uow.store.save_pledge(pledge)
    return pledge


async def _withdraw_offers_of(business: BusinessView, reason: str, uow: FundingUnitOfWork, deps: Deps) -> None:
    now = deps.clock()
    store = uow.store
    offers = await store.open_offers_of(business.business_id)
    for pledge in await store.lock_pledges(sorted({o.pledge_id for o in offers})):
        was = pledge.status
        for seen in [o for o in offers if o.pledge_id == pledge.id]:
            # Read again under the pledge lock: a decline may have committed since the first look.
            offer = await store.offer(seen.id, for_update=True)
            if offer is None or offer.status not in ("offered", "accepted"):
                continue
            if offer.status == "accepted":
                await store.add_funded(business.business_id, -1)
            pledge, offer = domain.release(pledge, offer, "withdrawn", now, reason)
            await store.save_offer(offer)
            uow.emit(events.decided(offer))
        await _refill(pledge, uow, deps, now, was)


async def _refill(pledge: Pledge, uow: FundingUnitOfWork, deps: Deps, now: datetime, was: str | None = None) -> Pledge:
    """Offer what the pledge can afford to the best-ranked eligible businesses that have no offer from it yet."""
    today = today_in_kupang(now)
    if not pledge.open_on(today):
        await uow.store.save_pledge(pledge)
        return pledge
    pledge = replace(pledge, matched_at=now)
    if pledge.next_offer_amount() is None:
        await uow.store.save_pledge(pledge)
        return pledge
    ranked = domain.rank_candidates(pledge.earmarks, await uow.store.candidates(pledge), today)
    return await _offer(pledge, ranked, uow, deps, now, was)


# ---------------------------------------------------------------------------------------------------------------
# Sponsors and pledges
# ---------------------------------------------------------------------------------------------------------------


async def register_sponsor(form: SponsorForm, uow: FundingUnitOfWork, deps: Deps) -> uuid.UUID:
    sponsor_id = deps.new_id()
    async with uow:
        existing = await uow.store.add_sponsor(sponsor_id, form.name, form.kind, deps.clock())
        if existing:
            raise Conflict(f"a sponsor named {form.name!r} already exists", "sponsor_exists",
                           {"existing_sponsor_id": str(existing)})  # fmt: skip
        await uow.commit()
    return sponsor_id


async def make_pledge(form: PledgeForm, uow: FundingUnitOfWork, deps: Deps) -> Pledge:
    now = deps.clock()
    earmarks, minimum = domain.validate_pledge(form, deps.wilayah, today_in_kupang(now))
    async with uow:
        sponsor = await uow.store.sponsor(form.sponsor_id)
        if sponsor is None:
            raise InvalidInput.one("sponsor_id", "sponsor.unknown", "no such sponsor; register it first (POST /sponsors)")
        pledge = Pledge(
            id=deps.new_id(), sponsor_id=form.sponsor_id, sponsor_name=sponsor[0], sponsor_kind=sponsor[1],
            title=form.title, instrument=form.instrument, financing_programme=form.financing_programme,
            total_rupiah=form.total_rupiah, amount_mode=form.amount_mode,
            amount_per_business_rupiah=form.amount_per_business_rupiah, min_offer_rupiah=minimum,
            valid_from=form.valid_from, valid_until=form.valid_until, earmarks=earmarks, status="open", created_at=now,
        )  # fmt: skip
        await uow.store.add_pledge(pledge)
        # Matching happens when this event comes back from Kafka: the request stays fast, and a crash after the
        # commit still gets the pledge matched.
        uow.emit(events.pledged(pledge))
        await uow.commit()
    return pledge


async def match_pledge(pledge_id: uuid.UUID, uow: FundingUnitOfWork, deps: Deps) -> None:
    """Match a new pledge against every eligible business already known (the CSRPledged consumer)."""
    await _refill(await _locked_pledge(uow.store, pledge_id), uow, deps, deps.clock())


async def close_pledge(pledge_id: uuid.UUID, reason: str, uow: FundingUnitOfWork, deps: Deps) -> Pledge:
    """No more offers; unanswered offers are withdrawn, accepted ones stay to be disbursed."""
    now = deps.clock()
    async with uow:
        pledge = await _locked_pledge(uow.store, pledge_id)
        pledge = await _close(pledge, reason, uow, now)
        await uow.commit()
    return pledge


async def _close(pledge: Pledge, reason: str, uow: FundingUnitOfWork, now: datetime) -> Pledge:
    for offer in await uow.store.unanswered_offers(pledge.id):
        pledge, offer = domain.release(pledge, offer, "withdrawn", now, "the pledge was closed")
        await uow.store.save_offer(offer)
        uow.emit(events.decided(offer))
    pledge = domain.close_pledge(pledge, reason, now)
    await uow.store.save_pledge(pledge)
    uow.emit(events.closed(pledge))
    return pledge


async def _locked_pledge(store: FundingStore, pledge_id: uuid.UUID) -> Pledge:
    pledges = await store.lock_pledges([pledge_id])
    if not pledges:
        raise NotFound(f"no pledge {pledge_id}")
    return pledges[0]


# ---------------------------------------------------------------------------------------------------------------
# An offer's life, over HTTP
# ---------------------------------------------------------------------------------------------------------------


async def _offer_and_pledge(uow: FundingUnitOfWork, offer_id: uuid.UUID) -> tuple[Offer, Pledge]:
    """Pledge first, then offer: the lock order every path follows."""
    found = await uow.store.offer(offer_id)
    if found is None:
        raise NotFound(f"no offer {offer_id}")
    pledge = await _locked_pledge(uow.store, found.pledge_id)
    offer = await uow.store.offer(offer_id, for_update=True)
    assert offer is not None
    return offer, pledge


async def accept_offer(offer_id: uuid.UUID, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    now = deps.clock()
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, offer_id)
        business = await uow.store.business(offer.business_id)
        pledge, offer = domain.accept(pledge, offer, business, now)
        await uow.store.add_funded(offer.business_id, +1)
        await uow.store.save_offer(offer)
        await uow.store.save_pledge(pledge)
        uow.emit(events.decided(offer))
        await uow.commit()
    return offer


async def decline_offer(offer_id: uuid.UUID, reason: str, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    now = deps.clock()
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, offer_id)
        was = pledge.status
        pledge, offer = domain.decline(pledge, offer, reason, now)
        await uow.store.save_offer(offer)
        uow.emit(events.decided(offer))
        await _refill(pledge, uow, deps, now, was)
        await uow.commit()
    return offer


async def disburse_offer(offer_id: uuid.UUID, reference: str, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    now = deps.clock()
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, offer_id)
        pledge, offer = domain.disburse(pledge, offer, reference, now)
        business = await uow.store.business(offer.business_id)
        assert business is not None, "an offer is only ever made to a business in the view"
        await uow.store.save_offer(offer)
        await uow.store.save_pledge(pledge)
        uow.emit(events.disbursed(offer, business, pledge))
        await uow.commit()
    return offer


# ---------------------------------------------------------------------------------------------------------------
# Time passing: offers expire, windows open and close
# ---------------------------------------------------------------------------------------------------------------


async def expire_due_offers(uow_factory: Callable[[], FundingUnitOfWork], deps: Deps, batch: int = 50) -> int:
    """Expire unanswered offers past their date, one pledge per transaction, and offer the money to the next in line."""
    now = deps.clock()
    async with uow_factory() as uow:
        pledge_ids = await uow.store.pledges_with_due_offers(now, batch)
    expired = 0
    for pledge_id in pledge_ids:
        async with uow_factory() as uow:
            pledge = await _locked_pledge(uow.store, pledge_id)
            was = pledge.status
            for offer in await uow.store.due_offers(pledge_id, now):
                pledge, offer = domain.expire(pledge, offer, now)
                await uow.store.save_offer(offer)
                uow.emit(events.decided(offer))
                expired += 1
            await _refill(pledge, uow, deps, now, was)
            await uow.commit()
    return expired


async def follow_pledge_windows(uow_factory: Callable[[], FundingUnitOfWork], deps: Deps) -> None:
    """Match pledges whose window has just opened; close those whose window has ended."""
    now = deps.clock()
    today = today_in_kupang(now)
    async with uow_factory() as uow:
        starting = await uow.store.pledges_to_start(today)
        ending = await uow.store.pledges_past_window(today)
    for pledge_id in starting:
        async with uow_factory() as uow:
            await _refill(await _locked_pledge(uow.store, pledge_id), uow, deps, now)
            await uow.commit()
    for pledge_id in ending:
        async with uow_factory() as uow:
            pledge = await _locked_pledge(uow.store, pledge_id)
            if pledge.status != "closed":
                await _close(pledge, "the validity window ended", uow, now)
            await uow.commit()

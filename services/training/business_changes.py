"""What training does when registry or funding tell of a business: the view kept, seats freed, cohorts filled.

Each consumer's batch runs in one unit of work, joined to the consumer's transaction; seats change only with their
cohorts locked (see seating.py for the lock order).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from services.training.domain import cohorts as cohort_rules
from services.training.domain import enrolment, events, pathway as halal
from services.training.domain.needs import cannot_self_declare, needs_of
from services.training.domain.view import BusinessView, updated_view
from services.training.seating import Deps, Seating
from services.training.store import TrainingUnitOfWork
from shared.contracts.funding import FundingAccepted
from shared.contracts.registry import BusinessEvent
from shared.messaging.consumer import Delivery
from shared.unit_of_work import Cause

# ---------------------------------------------------------------------------------------------------------------
# The view of businesses, and what funding tells
# ---------------------------------------------------------------------------------------------------------------


async def apply_registry_events(batch: Sequence[Delivery], uow: TrainingUnitOfWork, deps: Deps) -> None:
    """A batch of registry events: the businesses locked in id order and each event applied in turn (older versions
    change nothing); then, for the businesses whose facts changed, a closed business gives up its seats, a medium
    food business is recorded as unable to self-declare, and open cohorts serving their needs are filled.

    A business whose last event here is history read again after a rebuild only has its view rebuilt: read in
    batches, that history shows it as it was (medium, then corrected to small three batches on), and acting on it
    would withdraw it from its cohort and tell its owner again. It is settled once the view has caught up."""
    now = deps.clock()
    async with uow:
        views = await uow.store.lock_views([d.payload.business_id for d in batch])  # type: ignore[attr-defined]
        changed: dict[uuid.UUID, Cause] = {}
        replayed: dict[uuid.UUID, bool] = {}
        for delivery in batch:
            event: BusinessEvent = delivery.payload  # type: ignore[assignment]
            view = updated_view(views.get(event.business_id), event)
            if view is not None:
                views[event.business_id] = view
                changed[event.business_id] = Cause.delivery(delivery)
            replayed[event.business_id] = delivery.replayed
        # Once for the batch, each business as its last event left it: one round trip, not one per event.
        await uow.store.save_views([views[b] for b in changed])
        live = {b: c for b, c in changed.items() if not replayed[b]}
        await _business_changed({b: views[b] for b in live}, live, uow, deps, now)
        await uow.commit()


async def settle_caught_up(business_ids: Sequence[uuid.UUID], uow: TrainingUnitOfWork, deps: Deps) -> None:
    """Once a rebuilt view has caught up: what its history would have set off for these businesses, done once, on
    the view as it now stands (a closed one leaves its cohorts, a medium food one is marked, cohorts are filled)."""
    now = deps.clock()
    async with uow:
        views = await uow.store.lock_views(sorted(business_ids))
        await _business_changed(views, {b: uow.cause for b in views}, uow, deps, now)
        await uow.commit()


async def apply_funding_events(batch: Sequence[Delivery], uow: TrainingUnitOfWork, deps: Deps) -> None:
    """A batch of FundingAccepted: recorded in training's own table (even for a business training has not heard of
    yet), then open cohorts serving the businesses' new need (bookkeeping) are filled."""
    now = deps.clock()
    async with uow:
        # Locked as the registry's consumer locks them, so neither reads the other's write as not there yet.
        known = await uow.store.lock_views([d.payload.business_id for d in batch])  # type: ignore[attr-defined]
        changed: dict[uuid.UUID, Cause] = {}
        for delivery in batch:
            event: FundingAccepted = delivery.payload  # type: ignore[assignment]
            if await uow.store.add_funding_accepted(event.business_id, event.offer_id, event.pledge_id, event.accepted_at):
                changed[event.business_id] = Cause.delivery(delivery)
        views = {b: known[b] for b in changed if b in known}
        await _business_changed(views, {b: c for b, c in changed.items() if b in views}, uow, deps, now)
        await uow.commit()


async def _business_changed(views: dict[uuid.UUID, BusinessView], causes: dict[uuid.UUID, Cause],
                            uow: TrainingUnitOfWork, deps: Deps, now: datetime) -> None:  # fmt: skip
    if not views:
        return
    closed = [b for b, v in views.items() if not v.active]
    facts = await uow.store.facts(views)
    # A mark the registry's facts made goes once they no longer say so (a scale corrected back to micro or small), so
    # a mistaken update does not shut a business out of halal help for good.
    to_lift = {b for b, v in views.items() if v.active and facts[b].halal_not_eligible == halal.REGISTRY_MARK
               and cannot_self_declare(v) is None}  # fmt: skip
    facts = {b: replace(f, halal_not_eligible=None) if b in to_lift else f for b, f in facts.items()}
    needs = {n for b, v in views.items() for n in needs_of(v, facts[b])}
    # Not the certified: they are never marked (below), and need not hold the seating lock alone at every event.
    to_mark = sorted((b for b, v in views.items() if v.active and cannot_self_declare(v)
                      and facts[b].halal_not_eligible is None and not facts[b].halal_certified), key=str)  # fmt: skip
    # Before the first look at seats and cohorts; alone when closing a business or finding one unable to self-declare,
    # which both take it out of cohorts (see TrainingStore.hold_seating).
    await uow.store.hold_seating(alone=bool(closed or to_mark))
    leaving = [*closed, *to_mark]
    holding = await uow.store.cohorts_holding(leaving) if leaving else []
    # Every open cohort serving the needs, full ones too: whether one has room is read under its lock (gather), since
    # a withdrawal committing meanwhile refills from prospects that can't include this batch's businesses yet.
    wanting = await uow.store.open_cohorts_for(needs) if needs else []
    seating = Seating(uow, deps, now)
    await seating.lock({*holding, *wanting})
    trigger: dict[uuid.UUID, Cause] = {}
    for cohort_id, cohort in seating.cohorts.items():
        for business_id in closed:
            seat = seating.seat(cohort_id, business_id)
            if seat is not None and seat.status in enrolment.ACTIVE and cohort.state in cohort_rules.TAKING_TRAINEES:
                seating.withdraw(seat, "withdrew", causes[business_id])
                trigger.setdefault(cohort_id, causes[business_id])
    # The kecamatan as the view now has it: this very event may have moved the business.
    pathways = [replace(await uow.store.lock_pathway(b, views[b].kecamatan_code), kecamatan_code=views[b].kecamatan_code)
                for b in sorted({*to_mark, *to_lift}, key=str)]  # fmt: skip
    for p in pathways:
        if p.business_id in to_lift and (lifted := halal.lift_registry_mark(p)) != p:
            # Before the prospects are gathered, which read the mark in SQL. An officer's record since stays.
            await uow.store.save_pathway(lifted, causes[p.business_id].actor, now)
    marked = [p for p in pathways if p.business_id not in to_lift and p.not_eligible is None and not p.certified]
    for p in marked:
        for cohort_id in seating.leave_halal_cohorts(p.business_id, causes[p.business_id]):
            trigger.setdefault(cohort_id, causes[p.business_id])
    await seating.gather()
    # A first look: the end is written under the business's lock, which a visit being recorded takes too.
    mentored = [b for b in closed if await uow.store.assignment(b) is not None]
    await seating.lock_participants(also=[*(p.business_id for p in marked), *mentored])
    await _end_mentoring(mentored, causes, uow, now)
    for p in marked:
        reason = cannot_self_declare(views[p.business_id])
        assert reason is not None
        p = halal.mark_not_eligible(p, reason)
        await uow.store.save_pathway(p, causes[p.business_id].actor, now)
        seating.later(p.business_id, lambda v, p=p: events.NotEligible(p.business_id, v, p.not_eligible,  # type: ignore[arg-type]
                                                                       bool(p.regular_route_possible), p.kecamatan_code),
                      causes[p.business_id])  # fmt: skip
    seating.flush()
    first = next(iter(causes.values()))
    for cohort_id in seating.cohorts:
        with uow.caused_by(trigger.get(cohort_id, first)):
            await seating.refill(cohort_id)
    await seating.save()


async def _end_mentoring(closed: Sequence[uuid.UUID], causes: dict[uuid.UUID, Cause], uow: TrainingUnitOfWork,
                         now: datetime) -> None:  # fmt: skip
    """A closed business is mentored no more: its mentor gets the room back for another graduate."""
    for business_id in closed:
        if await uow.store.end_assignment(business_id, now):
            with uow.caused_by(causes[business_id]):
                uow.audit("MentoringEnded", "participant", business_id)

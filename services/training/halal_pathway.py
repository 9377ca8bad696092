"""The halal self-declare pathway: its steps recorded in order, who can't self-declare, and the stalls found.

An officer whose token names kecamatan acts only for businesses there (handlers.require_scope).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from services.training.domain import events, pathway as halal
from services.training.domain.pathway import NotEligibleForm, Pathway, StepForm
from services.training.domain.view import BusinessView
from services.training.handlers import _known, require_scope
from services.training.seating import Deps, Seating
from services.training.store import TrainingUnitOfWork
from shared.auth import Principal
from shared.reference.wita import today_in_kupang

# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordStep:
    business_id: uuid.UUID
    form: StepForm
    by: Principal


@dataclass(frozen=True)
class RecordNotEligible:
    business_id: uuid.UUID
    form: NotEligibleForm
    by: Principal


# ---------------------------------------------------------------------------------------------------------------
# The halal pathway
# ---------------------------------------------------------------------------------------------------------------


async def record_step(cmd: RecordStep, uow: TrainingUnitOfWork, deps: Deps) -> Pathway:
    """The next step of the business's pathway, with its date (PathwayStepRecorded); steps in order."""
    now = deps.clock()
    async with uow:
        business = await _known(uow, cmd.business_id)
        require_scope(cmd.by, business)
        halal.require_self_declare_possible(business)
        current = await uow.store.lock_pathway(business.business_id, business.kecamatan_code)
        pathway = halal.record_step(replace(current, kecamatan_code=business.kecamatan_code), cmd.form.step,
                                    cmd.form.done_on, today_in_kupang(now))  # fmt: skip
        versions = events.Versions(await uow.store.lock_participants([business.business_id]))
        uow.emit(events.StepRecorded(business.business_id, versions.next(business.business_id), cmd.form.step,
                                     cmd.form.done_on, business.kecamatan_code))  # fmt: skip
        await uow.store.save_pathway(pathway, cmd.by.actor, now)
        await uow.store.save_participants(versions.changed())
        await uow.commit()
    return pathway


async def record_not_eligible(cmd: RecordNotEligible, uow: TrainingUnitOfWork, deps: Deps) -> Pathway:
    """The business can't self-declare (pork, slaughtered meat without a certified abattoir, another reason):
    PathwayNotEligible says whether the regular route is open, and it leaves the halal cohorts that have not begun."""
    now = deps.clock()
    async with uow:
        # Who may, and of which business, before a lock that holds up every seat change in the city: a refused caller
        # must not queue for it.
        _may_mark(await _known(uow, cmd.business_id), cmd.by)
        # Alone: a refill running meanwhile read the business as eligible, and would seat it after this looked for
        # its seats (see TrainingStore.hold_seating).
        await uow.store.hold_seating(alone=True)
        business = await _known(uow, cmd.business_id)  # again: it may have moved or closed meanwhile
        _may_mark(business, cmd.by)
        seating = Seating(uow, deps, now)
        await seating.lock(await uow.store.cohorts_holding([business.business_id]))
        current = await uow.store.lock_pathway(business.business_id, business.kecamatan_code)
        pathway = halal.mark_not_eligible(replace(current, kecamatan_code=business.kecamatan_code), cmd.form.reason,
                                          cmd.form.note)  # fmt: skip
        await uow.store.save_pathway(pathway, cmd.by.actor, now)
        seating.later(business.business_id, lambda v: events.NotEligible(
            business.business_id, v, cmd.form.reason, bool(pathway.regular_route_possible), business.kecamatan_code))  # fmt: skip
        seating.leave_halal_cohorts(business.business_id)
        await seating.gather()
        await seating.lock_participants()
        seating.flush()
        for cohort_id in seating.cohorts:
            await seating.refill(cohort_id)
        await seating.save()
        await uow.commit()
    return pathway


def _may_mark(business: BusinessView, by: Principal) -> None:
    require_scope(by, business)
    halal.require_on_pathway(business)


async def flag_stalled_pathways(uow_factory: Callable[[], TrainingUnitOfWork], deps: Deps) -> int:
    """PathwayStalled, once per stall, for every pathway whose next step is overdue. Each batch locks its rows and
    skips those another process holds, so two processes never report one stall twice. Nothing while the view is
    rebuilt: it would chase businesses that closed, as it has not read their closing yet."""
    limits = halal.stall_limits(deps.stall_days)
    reported = 0
    while True:
        before = reported
        now = deps.clock()
        today = today_in_kupang(now)
        async with uow_factory() as uow:
            if await uow.store.view_catching_up():
                # The view is being refilled: a business not read again yet looks open, and in its old kecamatan.
                # Its stall is reported once the view has caught up.
                return reported
            due = await uow.store.lock_due_stalls(limits, today, deps.stall_batch)
            versions = events.Versions(await uow.store.lock_participants([p.business_id for p in due]))
            for p in due:
                found = halal.stall(p, today, limits)
                if found is None:
                    continue
                uow.emit(events.Stalled(p.business_id, versions.next(p.business_id), found, p.kecamatan_code))
                await uow.store.save_pathway(replace(p, stalled_for=found.waiting_for), uow.cause.actor, now)
                reported += 1
            await uow.store.save_participants(versions.changed())
            await uow.commit()
        if len(due) < deps.stall_batch or reported == before:
            return reported  # nothing more is due (or nothing due could be reported: never loop on it)

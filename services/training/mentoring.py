"""Mentoring after training: the mentor pool, visits to a business by its mentor, and the end of its mentoring.

Mentors are assigned when a cohort completes (handlers.py); here the pool grows and the follow-up is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from functools import partial

from services.training.domain import cohorts as cohort_rules
from services.training.domain import events
from services.training.domain.mentors import Assignment, Mentor, MentorForm, VisitForm
from services.training.seating import Deps
from services.training.store import TrainingUnitOfWork
from shared import idempotency
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.reference.wita import today_in_kupang

# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddMentor:
    form: MentorForm
    by: Principal
    # The client's Idempotency-Key: the same mentor sent again under it gets the mentor added the first time.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RecordVisit:
    business_id: uuid.UUID
    form: VisitForm
    by: Principal


@dataclass(frozen=True)
class EndMentoring:
    business_id: uuid.UUID
    by: Principal


# ---------------------------------------------------------------------------------------------------------------
# Mentors
# ---------------------------------------------------------------------------------------------------------------


async def add_mentor(cmd: AddMentor, uow: TrainingUnitOfWork, deps: Deps) -> Mentor:
    codes = []
    for i, text in enumerate(cmd.form.kecamatan):
        codes.append(cohort_rules.kecamatan_code(text, deps.wilayah, f"kecamatan.{i}"))
    mentor = Mentor(deps.new_id(), cmd.form.name, cmd.form.organisation, tuple(cmd.form.kbli_prefixes),
                    tuple(sorted({c for c in codes if c})), cmd.form.max_load, True)  # fmt: skip
    async with uow:
        if earlier := await idempotency.made_before(partial(uow.store.claim_request, "mentor"), uow.store.mentor,
                                                    cmd.by.actor, cmd.idempotency_key, cmd.form, mentor.id,
                                                    "mentor"):  # fmt: skip
            return earlier
        await uow.store.add_mentor(mentor, cmd.by.actor, deps.clock())
        uow.audit("MentorAdded", "mentor", mentor.id)
        await uow.commit()
    return mentor


async def record_visit(cmd: RecordVisit, uow: TrainingUnitOfWork, deps: Deps) -> Assignment:
    """A mentoring visit after training, by the business's mentor (MentoringVisitRecorded). One visit a day by its
    mentor: the same visit sent again (a retry after a lost answer) is recorded once, and another that day is 409."""
    now = deps.clock()
    today = today_in_kupang(now)
    async with uow:
        await _require_active(cmd.business_id, uow)
        assignment = _with_mentor(await uow.store.assignment(cmd.business_id), cmd.business_id)
        await _require_followed_up_by(assignment, cmd.by, uow)
        versions = events.Versions(await uow.store.lock_participants([cmd.business_id]))
        # Read again under the business's lock, which an end of its mentoring takes too: ended meanwhile, there
        # is no mentoring to record a visit of (and a new one is another trainer's to follow up, maybe).
        if await uow.store.assignment(cmd.business_id) != assignment:
            raise Conflict(f"the mentoring of business {cmd.business_id} ended while this visit was being recorded; "
                           "look at its mentoring again before recording it", "no_mentor")  # fmt: skip
        if cmd.form.visited_on > today:
            raise InvalidInput.one("visited_on", "visit.future", f"{cmd.form.visited_on.isoformat()} is after today")
        began = await _mentoring_began(assignment, uow)
        if cmd.form.visited_on < began:
            raise InvalidInput.one("visited_on", "visit.before_training",
                                   f"this mentoring began on {began.isoformat()}; a visit of it can't be earlier")
        recorded = await uow.store.visits_on(cmd.business_id, assignment.mentor_id, cmd.form.visited_on)
        if recorded:
            if recorded == [cmd.form.notes]:
                return assignment  # sent again: already recorded and told
            raise Conflict(f"a visit of business {cmd.business_id} on {cmd.form.visited_on.isoformat()} by its mentor "
                           "is already recorded, with other notes; one visit a day is recorded", "visit_recorded")
        await uow.store.add_visit(cmd.business_id, assignment.mentor_id, cmd.form.visited_on, cmd.form.notes,
                                  cmd.by.actor, now)  # fmt: skip
        uow.emit(events.VisitRecorded(cmd.business_id, versions.next(cmd.business_id), assignment.mentor_id,
                                      cmd.form.visited_on))  # fmt: skip
        await uow.store.save_participants(versions.changed())
        await uow.commit()
    return assignment


async def _mentoring_began(assignment: Assignment, uow: TrainingUnitOfWork) -> date:
    """The day the mentoring began: the day it was assigned, or the end of the business's last training if that was
    earlier (a mentor assigned a while after the training follows that training). Not that training's end alone: a
    mentor kept through a later training still follows up the first, visits between the two included."""
    began = today_in_kupang(assignment.assigned_at)
    completed = await uow.store.last_completion(assignment.business_id)
    return min(began, completed) if completed is not None else began


async def end_mentoring(cmd: EndMentoring, uow: TrainingUnitOfWork, deps: Deps) -> None:
    """The mentoring of a business ends; its mentor has room for another."""
    async with uow:
        assignment = await uow.store.assignment(cmd.business_id)
        if assignment is None:
            raise NotFound(f"business {cmd.business_id} has no mentor")
        await _require_followed_up_by(assignment, cmd.by, uow)
        await uow.store.lock_participants([cmd.business_id])  # a visit being recorded finishes first, or sees it end
        # Read again under the lock: the caller may follow up the mentoring read before it, not a newer one that
        # another trainer's cohort gave the business meanwhile.
        current = await uow.store.assignment(cmd.business_id)
        if current is None:
            raise NotFound(f"business {cmd.business_id} has no mentor")
        if current != assignment:
            raise Conflict(f"the mentoring of business {cmd.business_id} changed while it was being ended; look at "
                           "its mentoring again before ending it", "mentoring_changed")  # fmt: skip
        await uow.store.end_assignment(cmd.business_id, deps.clock())
        uow.audit("MentoringEnded", "participant", cmd.business_id)
        await uow.commit()


async def _require_active(business_id: uuid.UUID, uow: TrainingUnitOfWork) -> None:
    """A closed business is mentored no more (its mentoring ended when it closed): a visit to it never happened, or
    should not be counted as follow-up. One closing meanwhile ends the mentoring, which the visit reads again."""
    view = (await uow.store.businesses([business_id])).get(business_id)
    if view is not None and not view.active:
        raise Conflict(f"business {business_id} is closed; a visit to it is not recorded", "business_closed")


def _with_mentor(assignment: Assignment | None, business_id: uuid.UUID) -> Assignment:
    if assignment is None:
        raise Conflict(f"business {business_id} has no mentor; one is assigned when it completes a training", "no_mentor")
    return assignment


async def _require_followed_up_by(assignment: Assignment, by: Principal, uow: TrainingUnitOfWork) -> None:
    """A business's mentoring is followed up by the trainer who ran the cohort it graduated from, or an admin: any
    other trainer's token could end the city's mentoring, or record visits that never happened."""
    if "admin" in by.roles:
        return
    # Locked like every path that reads a cohort to act on it, before the participant (the one lock order).
    cohorts = await uow.store.lock_cohorts([assignment.cohort_id]) if assignment.cohort_id is not None else []
    if not cohorts or cohorts[0].created_by != by.actor:
        raise Forbidden(f"the mentoring of business {assignment.business_id} is followed up by the trainer who ran "
                        "its cohort; ask them, or an admin, to do this")  # fmt: skip

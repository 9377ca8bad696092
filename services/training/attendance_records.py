"""Recording a running cohort's attendance (a no-show frees the seat) and the trainer's assessments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence, Set
from dataclasses import dataclass

from services.training.domain import attendance as rules
from services.training.domain import cohorts as cohort_rules
from services.training.domain import events
from services.training.domain.attendance import AssessmentForm, AttendanceForm
from services.training.domain.cohorts import Cohort
from services.training.domain.enrolment import Seat
from services.training.seating import Deps, Seating
from services.training.store import Mark, TrainingUnitOfWork
from shared.auth import Principal
from shared.errors import Conflict, FieldError, InvalidInput, NotFound
from shared.reference.wita import WITA

# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordAttendance:
    cohort_id: uuid.UUID
    session: int
    form: AttendanceForm
    by: Principal


@dataclass(frozen=True)
class RecordAssessments:
    cohort_id: uuid.UUID
    form: AssessmentForm
    by: Principal


# ---------------------------------------------------------------------------------------------------------------
# Attendance and assessment
# ---------------------------------------------------------------------------------------------------------------


def _enrolled_only(seating: Seating, cohort: Cohort, ids: Sequence[uuid.UUID],
                   unchanged: Set[uuid.UUID] = frozenset()) -> None:  # fmt: skip
    errors = []
    for i, business_id in enumerate(ids):
        seat = seating.seat(cohort.id, business_id)
        if business_id not in unchanged and (seat is None or seat.status != "enrolled"):
            status = seat.status if seat else "not in the cohort"
            errors.append(FieldError(f"records.{i}.business_id", "trainee.not_enrolled",
                                     f"business {business_id} is {status}, not enrolled in cohort {cohort.id}"))  # fmt: skip
    if len(set(ids)) != len(ids):
        errors.append(FieldError("records", "records.duplicate", "name each business once"))
    if errors:
        raise InvalidInput(errors)


async def record_attendance(cmd: RecordAttendance, uow: TrainingUnitOfWork, deps: Deps) -> list[Seat]:
    """Marks for one session of a running cohort (AttendanceRecorded for each mark that changed); a trainee absent
    without excuse from the first session is a no-show, withdrawn, and the waitlist promoted. A PUT: sent again, the
    same sheet changes nothing, a no-show's mark included."""
    now = deps.clock()
    async with uow:
        await uow.store.hold_seating(alone=False)  # a no-show's seat goes to the waitlist
        seating = Seating(uow, deps, now)
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        cohort_rules.require_state(cohort, "running", "attendance is recorded")
        session = cohort.session(cmd.session)
        if session is None:
            raise NotFound(f"cohort {cohort.id} has sessions 1 to {len(cohort.sessions)}, not {cmd.session}")
        if session.starts_at > now:
            raise Conflict(f"session {cmd.session} starts {session.starts_at.astimezone(WITA):%Y-%m-%d %H:%M} WITA; "
                           "attendance is recorded once it has begun", "session_not_started")  # fmt: skip
        before = await uow.store.marks(cohort.id)
        # The same sheet sent again (its answer lost) names those it made no-shows: as they were, nothing changes.
        unchanged = {r.business_id for r in cmd.form.records
                     if _no_show_marked(seating.seat(cohort.id, r.business_id), before, cmd.session, r.attendance)}
        _enrolled_only(seating, cohort, [r.business_id for r in cmd.form.records], unchanged)
        records = [r for r in cmd.form.records if r.business_id not in unchanged]
        await uow.store.save_marks(cohort.id, [Mark(r.business_id, cmd.session, r.attendance, r.reason) for r in records],
                                   cmd.by.actor, now)  # fmt: skip
        for r in records:
            if before.get(r.business_id, {}).get(cmd.session) != r.attendance:
                seating.later(r.business_id, lambda v, r=r: events.AttendanceMarked(r.business_id, v, cohort.id,
                                                                                    cmd.session, r.attendance))  # fmt: skip
            if rules.is_no_show(cmd.session, r.attendance):
                seating.withdraw(seating.seats[cohort.id][r.business_id], "no_show")
        await seating.gather()
        await seating.lock_participants()
        seating.flush()
        await seating.refill(cohort.id)
        await seating.save()
        await uow.commit()
    return [seating.seats[cohort.id][r.business_id] for r in cmd.form.records]


def _no_show_marked(seat: Seat | None, marks: dict[uuid.UUID, dict[int, str]], session: int, mark: str) -> bool:
    """Withdrawn as a no-show, with this very mark for the session: the mark that withdrew it, sent again."""
    return (seat is not None and seat.status == "withdrawn" and seat.withdraw_reason == "no_show"
            and marks.get(seat.business_id, {}).get(session) == mark)  # fmt: skip


async def record_assessments(cmd: RecordAssessments, uow: TrainingUnitOfWork, deps: Deps) -> None:
    """The trainer's scores for enrolled trainees of a running cohort; they travel in TrainingCompleted."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        cohort_rules.require_state(cohort, "running", "assessments are recorded")
        if not seating.programme(cohort.id).gives_assessment:
            raise Conflict(f"the programme of cohort {cohort.id} gives no assessment", "no_assessment")
        _enrolled_only(seating, cohort, [r.business_id for r in cmd.form.records])
        await uow.store.save_assessments(cohort.id, {r.business_id: r.assessment() for r in cmd.form.records},
                                         cmd.by.actor, now)  # fmt: skip
        for r in cmd.form.records:
            uow.audit("AssessmentRecorded", "participant", r.business_id)
        await uow.commit()

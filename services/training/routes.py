"""Training's HTTP API: each route turns a request into a command or a query, and the answer into a response.

Trainers define programmes (officers may too), plan and run cohorts, record attendance and assessments, keep the
mentor pool and record mentoring visits; officers enrol and withdraw by hand and record the halal pathway (an
officer whose token names kecamatan, only for businesses there); trainers, officers and operators read.

This module holds what every route shares and the routes of programmes and cohorts (enrolment and attendance too);
routes_mentoring.py, routes_pathway.py and routes_reports.py hold the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.training import attendance_records, handlers
from services.training.domain.attendance import AssessmentForm, AttendanceForm
from services.training.domain.cohorts import Cohort, CohortChanges, CohortForm
from services.training.domain.enrolment import WAITLIST_ORDER, Seat
from services.training.domain.programmes import Programme, ProgrammeForm
from services.training.queries import TrainingQueries
from services.training.seating import Deps
from services.training.store import TrainingUnitOfWork
from shared import idempotency
from shared.auth import Principal
from shared.reference.wita import WITA
from shared.unit_of_work import Cause
from shared.web import PROBLEM_RESPONSES, correlation_id, require_role


@dataclass
class TrainingContext:
    deps: Deps
    queries: TrainingQueries
    unit_of_work: Callable[[Cause], TrainingUnitOfWork]


async def context(request: Request) -> TrainingContext:
    return request.app.state.service


Ctx = Annotated[TrainingContext, Depends(context)]
Correlation = Annotated[uuid.UUID, Depends(correlation_id)]
Trainer = Annotated[Principal, Depends(require_role("trainer"))]
ProgrammeWriter = Annotated[Principal, Depends(require_role("trainer", "officer"))]
Officer = Annotated[Principal, Depends(require_role("officer"))]
Watcher = Annotated[Principal, Depends(require_role("trainer", "officer", "operator"))]
SessionNumber = Annotated[int, Path(ge=1, le=100, description="1 is the first session")]
KecamatanQuery = Annotated[str | None, Query(max_length=100, description="Name or Kemendagri code, e.g. Oebobo or 53.71.04")]

router = APIRouter()
_404 = {404: PROBLEM_RESPONSES[404]}
_409 = {409: PROBLEM_RESPONSES[409]}
_404_409 = {404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]}
CohortKey = idempotency.header("cohort")


def _uow(ctx: TrainingContext, who: Principal, correlation: uuid.UUID) -> TrainingUnitOfWork:
    return ctx.unit_of_work(Cause.request(correlation, who.actor))


def _wita(t: datetime | None) -> datetime | None:
    return t.astimezone(WITA) if t else None


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class ProgrammeOut(BaseModel):
    id: uuid.UUID
    topic: str
    title: str
    needs: list[str]
    requires_nib: bool
    required_attendance_percent: int
    sessions: int
    hours: int
    gives_assessment: bool
    defined_at: datetime = Field(description="WITA")
    defined_by: str


def programme_out(p: Programme) -> ProgrammeOut:
    return ProgrammeOut(**{**asdict(p), "needs": list(p.needs), "defined_at": _wita(p.defined_at)})


class SessionOut(BaseModel):
    number: int
    starts_at: datetime = Field(description="WITA")
    ends_at: datetime = Field(description="WITA")


class CohortOut(BaseModel):
    id: uuid.UUID
    programme_id: uuid.UUID
    topic: str
    title: str
    state: Literal["planned", "open", "running", "completed", "cancelled"]
    capacity: int
    enrolled: int
    waitlisted: int
    starts_on: date
    ends_on: date
    sessions: list[SessionOut]
    venue: str
    kecamatan_code: str | None
    mentor_id: uuid.UUID | None
    created_at: datetime = Field(description="WITA")
    opened_at: datetime | None
    started_at: datetime | None
    closed_at: datetime | None


def cohort_out(c: Cohort) -> CohortOut:
    return CohortOut(
        id=c.id, programme_id=c.programme_id, topic=c.topic, title=c.title, state=c.state, capacity=c.capacity,  # type: ignore[arg-type]
        enrolled=c.enrolled, waitlisted=c.waitlisted, starts_on=c.starts_on, ends_on=c.ends_on,
        sessions=[SessionOut(number=s.number, starts_at=_wita(s.starts_at), ends_at=_wita(s.ends_at)) for s in c.sessions],  # type: ignore[arg-type]
        venue=c.venue, kecamatan_code=c.kecamatan_code, mentor_id=c.mentor_id, created_at=_wita(c.created_at),  # type: ignore[arg-type]
        opened_at=_wita(c.opened_at), started_at=_wita(c.started_at), closed_at=_wita(c.closed_at),
    )  # fmt: skip


class SeatOut(BaseModel):
    cohort_id: uuid.UUID
    business_id: uuid.UUID
    status: Literal["enrolled", "waitlisted", "withdrawn", "completed", "not_completed", "released"]
    need: str = Field(description="Why it was invited: a need, or officer for a hand enrolment")
    from_waitlist: bool
    withdraw_reason: str | None
    changed_at: datetime = Field(description="WITA")


def seat_out(s: Seat) -> SeatOut:
    return SeatOut(cohort_id=s.cohort_id, business_id=s.business_id, status=s.status, need=s.need,  # type: ignore[arg-type]
                   from_waitlist=s.from_waitlist, withdraw_reason=s.withdraw_reason, changed_at=_wita(s.changed_at))  # type: ignore[arg-type]  # fmt: skip


class TraineeOut(SeatOut):
    business_name: str | None
    kecamatan_code: str | None
    position: int | None = Field(description="On the waitlist: 1 is the next to get a seat")
    attendance: dict[int, str] = Field(description="Session number -> present, absent or excused")
    assessed: bool


class EnrolmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    business_id: uuid.UUID


class WithdrawalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["withdrew", "officer"] = Field("withdrew", description="withdrew: the business asked; officer: "
                                                   "the officer decided")  # fmt: skip


class RecordedOut(BaseModel):
    recorded: int


# ---------------------------------------------------------------------------------------------------------------
# Programmes
# ---------------------------------------------------------------------------------------------------------------


@router.post("/programmes", status_code=201, tags=["programmes"], responses=_409,
             summary="Define a programme: topic, the needs it serves, prerequisites, attendance, assessment (ProgrammeDefined)")
async def define_programme(form: ProgrammeForm, who: ProgrammeWriter, ctx: Ctx, correlation: Correlation) -> ProgrammeOut:
    command = handlers.DefineProgramme(form, who)
    return programme_out(await handlers.define_programme(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/programmes", tags=["programmes"], summary="Programmes, optionally of one topic")
async def programmes(_: Watcher, ctx: Ctx, topic: Annotated[str | None, Query(max_length=40)] = None) -> list[ProgrammeOut]:
    return [programme_out(p) for p in await ctx.queries.programmes(topic)]


@router.get("/programmes/{programme_id}", tags=["programmes"], summary="One programme", responses=_404)
async def programme(programme_id: uuid.UUID, _: Watcher, ctx: Ctx) -> ProgrammeOut:
    return programme_out(await ctx.queries.programme(programme_id))


# ---------------------------------------------------------------------------------------------------------------
# Cohorts
# ---------------------------------------------------------------------------------------------------------------


@router.post("/cohorts", status_code=201, tags=["cohorts"], responses=_409,
             summary="Plan a cohort: seats, sessions (WITA unless an offset is given) inside its dates, venue, mentor")
async def plan_cohort(form: CohortForm, who: Trainer, ctx: Ctx, correlation: Correlation,
                      idempotency_key: CohortKey = None) -> CohortOut:  # fmt: skip
    command = handlers.PlanCohort(form, who, idempotency_key)
    return cohort_out(await handlers.plan_cohort(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/cohorts", tags=["cohorts"], summary="Cohorts, optionally of one programme or in one state")
async def cohorts(
    _: Watcher, ctx: Ctx, programme_id: uuid.UUID | None = None,
    state: Literal["planned", "open", "running", "completed", "cancelled"] | None = None,
) -> list[CohortOut]:  # fmt: skip
    return [cohort_out(c) for c in await ctx.queries.cohorts(programme_id, state)]


@router.get("/cohorts/{cohort_id}", tags=["cohorts"], summary="One cohort with its seat counts", responses=_404)
async def cohort(cohort_id: uuid.UUID, _: Watcher, ctx: Ctx) -> CohortOut:
    return cohort_out(await ctx.queries.cohort(cohort_id))


@router.patch("/cohorts/{cohort_id}", tags=["cohorts"], responses=_404_409,
              summary="Change seats (never below those enrolled), venue or mentor; more seats go to the waitlist at once")
async def change_cohort(cohort_id: uuid.UUID, changes: CohortChanges, who: Trainer, ctx: Ctx,
                        correlation: Correlation) -> CohortOut:  # fmt: skip
    command = handlers.ChangeCohort(cohort_id, changes, who)
    return cohort_out(await handlers.change_cohort(command, _uow(ctx, who, correlation), ctx.deps))


async def _move(cohort_id: uuid.UUID, to: str, who: Principal, ctx: TrainingContext, correlation: uuid.UUID) -> CohortOut:
    command = handlers.MoveCohort(cohort_id, to, who)
    return cohort_out(await handlers.move_cohort(command, _uow(ctx, who, correlation), ctx.deps))


@router.post("/cohorts/{cohort_id}/open", tags=["cohorts"], responses=_404_409,
             summary="Open a planned cohort (CohortOpened): its seats are offered by need, beyond them a waitlist")
async def open_cohort(cohort_id: uuid.UUID, who: Trainer, ctx: Ctx, correlation: Correlation) -> CohortOut:
    return await _move(cohort_id, "open", who, ctx, correlation)


@router.post("/cohorts/{cohort_id}/start", tags=["cohorts"], responses=_404_409,
             summary="Start an open cohort: no more invitations; the waitlist still fills freed seats")
async def start_cohort(cohort_id: uuid.UUID, who: Trainer, ctx: Ctx, correlation: Correlation) -> CohortOut:
    return await _move(cohort_id, "running", who, ctx, correlation)


@router.post("/cohorts/{cohort_id}/complete", tags=["cohorts"], responses=_404_409,
             summary="Complete a running cohort: TrainingCompleted for those who met the rule, mentors assigned, "
             "CohortClosed")  # fmt: skip
async def complete_cohort(cohort_id: uuid.UUID, who: Trainer, ctx: Ctx, correlation: Correlation) -> CohortOut:
    return await _move(cohort_id, "completed", who, ctx, correlation)


@router.post("/cohorts/{cohort_id}/cancel", tags=["cohorts"], responses=_404_409,
             summary="Cancel a cohort before it completes: everyone withdrawn (cohort_cancelled), CohortClosed")
async def cancel_cohort(cohort_id: uuid.UUID, who: Trainer, ctx: Ctx, correlation: Correlation) -> CohortOut:
    return await _move(cohort_id, "cancelled", who, ctx, correlation)


@router.get("/cohorts/{cohort_id}/trainees", tags=["cohorts"], responses=_404,
            summary=f"Who is enrolled and who waits (in order: {WAITLIST_ORDER}), with attendance")
async def trainees(cohort_id: uuid.UUID, _: Watcher, ctx: Ctx) -> list[TraineeOut]:
    return [TraineeOut(**seat_out(t.seat).model_dump(), business_name=t.business_name, kecamatan_code=t.kecamatan_code,
                       position=t.position, attendance=t.marks, assessed=t.assessed)
            for t in await ctx.queries.roster(cohort_id)]  # fmt: skip


@router.post("/cohorts/{cohort_id}/enrolments", status_code=201, tags=["enrolment"], responses=_404_409,
             summary="Enrol a business by hand (an officer, of its kecamatan if the token names any); a free seat is needed")
async def enrol(cohort_id: uuid.UUID, body: EnrolmentBody, who: Officer, ctx: Ctx, correlation: Correlation) -> SeatOut:
    command = handlers.EnrolByHand(cohort_id, body.business_id, who)
    return seat_out(await handlers.enrol_by_hand(command, _uow(ctx, who, correlation), ctx.deps))


@router.post("/cohorts/{cohort_id}/enrolments/{business_id}/withdraw", tags=["enrolment"], responses=_404_409,
             summary="Withdraw a business (TraineeWithdrew); the first on the waitlist takes the seat")
async def withdraw(cohort_id: uuid.UUID, business_id: uuid.UUID, who: Officer, ctx: Ctx, correlation: Correlation,
                   body: WithdrawalBody | None = None) -> SeatOut:  # fmt: skip
    command = handlers.Withdraw(cohort_id, business_id, (body or WithdrawalBody()).reason, who)
    return seat_out(await handlers.withdraw(command, _uow(ctx, who, correlation), ctx.deps))


@router.put("/cohorts/{cohort_id}/sessions/{session}/attendance", tags=["attendance"], responses=_404_409,
            summary="Attendance of one session (present, absent, or excused with a reason); absent from the first "
            "session without excuse is a no-show and frees the seat")  # fmt: skip
async def attendance(cohort_id: uuid.UUID, session: SessionNumber, form: AttendanceForm, who: Trainer, ctx: Ctx,
                     correlation: Correlation) -> list[SeatOut]:  # fmt: skip
    command = attendance_records.RecordAttendance(cohort_id, session, form, who)
    return [seat_out(s) for s in await attendance_records.record_attendance(command, _uow(ctx, who, correlation), ctx.deps)]


@router.put("/cohorts/{cohort_id}/assessments", tags=["attendance"], responses=_404_409,
            summary="The trainer's assessment (management, leadership, business prospects: 0 to 100 each)")
async def assessments(cohort_id: uuid.UUID, form: AssessmentForm, who: Trainer, ctx: Ctx,
                      correlation: Correlation) -> RecordedOut:  # fmt: skip
    await attendance_records.record_assessments(attendance_records.RecordAssessments(cohort_id, form, who), _uow(ctx, who, correlation), ctx.deps)
    return RecordedOut(recorded=len(form.records))

"""Training's HTTP API for mentoring: the mentor pool, visits after training, and who was followed up."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.training import mentoring
from services.training.domain.mentors import ASSIGNMENT_RULE, Mentor, MentorForm, VisitForm
from services.training.routes import Correlation, Ctx, Trainer, Watcher, _404, _409, _uow, _wita
from shared import idempotency
from shared.web import Page, PageSize

router = APIRouter()
MentorKey = idempotency.header("mentor")


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class MentorOut(BaseModel):
    id: uuid.UUID
    name: str
    organisation: str | None
    kbli_prefixes: list[str]
    kecamatan_codes: list[str]
    max_load: int
    active: bool
    load: int


def mentor_out(m: Mentor) -> MentorOut:
    return MentorOut(**{**asdict(m), "kbli_prefixes": list(m.kbli_prefixes), "kecamatan_codes": list(m.kecamatan_codes)})


class AssignmentOut(BaseModel):
    business_id: uuid.UUID
    mentor_id: uuid.UUID
    cohort_id: uuid.UUID | None
    assigned_at: datetime = Field(description="WITA")


class FollowUpOut(BaseModel):
    business_id: uuid.UUID
    business_name: str | None
    kecamatan_code: str | None
    mentor_id: uuid.UUID
    mentor_name: str
    assigned_at: datetime = Field(description="WITA")
    visits: int = Field(description="Visits since the mentor was assigned")
    last_visit: date | None


class MentoringReportOut(BaseModel):
    by_kecamatan: list[dict[str, str | int | None]]
    businesses: list[FollowUpOut]


# ---------------------------------------------------------------------------------------------------------------
# Mentors
# ---------------------------------------------------------------------------------------------------------------


@router.post("/mentors", status_code=201, tags=["mentoring"], responses=_409, summary="Add a mentor to the pool")
async def add_mentor(form: MentorForm, who: Trainer, ctx: Ctx, correlation: Correlation,
                     idempotency_key: MentorKey = None) -> MentorOut:  # fmt: skip
    command = mentoring.AddMentor(form, who, idempotency_key)
    return mentor_out(await mentoring.add_mentor(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/mentors", tags=["mentoring"], summary=f"The mentor pool with loads (assignment: {ASSIGNMENT_RULE})")
async def mentors(_: Watcher, ctx: Ctx) -> list[MentorOut]:
    return [mentor_out(m) for m in await ctx.queries.mentors()]


@router.post("/mentoring/{business_id}/visits", status_code=201, tags=["mentoring"], responses=_409,
             summary="A mentoring visit after training (MentoringVisitRecorded)")
async def visit(business_id: uuid.UUID, form: VisitForm, who: Trainer, ctx: Ctx, correlation: Correlation) -> AssignmentOut:
    assignment = await mentoring.record_visit(mentoring.RecordVisit(business_id, form, who), _uow(ctx, who, correlation), ctx.deps)
    return AssignmentOut(business_id=assignment.business_id, mentor_id=assignment.mentor_id,
                         cohort_id=assignment.cohort_id, assigned_at=_wita(assignment.assigned_at))  # type: ignore[arg-type]  # fmt: skip


@router.post("/mentoring/{business_id}/end", status_code=204, tags=["mentoring"], responses=_404,
             summary="End a business's mentoring; its mentor has room for another")
async def end_mentoring(business_id: uuid.UUID, who: Trainer, ctx: Ctx, correlation: Correlation) -> None:
    await mentoring.end_mentoring(mentoring.EndMentoring(business_id, who), _uow(ctx, who, correlation), ctx.deps)


@router.get("/reports/mentoring", tags=["reports"], summary="Who was followed up after training and who wasn't")
async def mentoring_report(_: Watcher, ctx: Ctx, followed_up: bool | None = None, page: Page = 1,
                           page_size: PageSize = 100) -> MentoringReportOut:  # fmt: skip
    found = await ctx.queries.mentoring(followed_up=followed_up, page=page, page_size=page_size)
    return MentoringReportOut(by_kecamatan=found.by_kecamatan,  # type: ignore[arg-type]
                              businesses=[FollowUpOut(**{**asdict(f), "assigned_at": _wita(f.assigned_at)})
                                          for f in found.businesses])  # fmt: skip

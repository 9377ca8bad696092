"""Training's HTTP API for what training knows of a business and why, and the cohort and halal coverage reports.

The mentoring report (who was followed up after training) is with the mentoring routes, in routes_mentoring.py.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.training.domain.attendance import COMPLETION_RULE
from services.training.domain.cohorts import kecamatan_code
from services.training.domain.enrolment import WAITLIST_ORDER
from services.training.domain.needs import NEED_RULES
from services.training.domain.reports import CoverageRow, Row
from services.training.routes import Ctx, KecamatanQuery, SeatOut, Watcher, _404, _wita, seat_out
from services.training.routes_pathway import PathwayOut, pathway_out

router = APIRouter()


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class BusinessSeatOut(SeatOut):
    topic: str


class BusinessOut(BaseModel):
    business_id: uuid.UUID
    version: int
    business_name: str
    kbli_code: str
    kecamatan_code: str
    scale: str
    youth_owned: bool
    women_owned: bool
    nib_status: str
    status: str
    registered_at: datetime = Field(description="WITA")
    needs: list[str]
    need_rules: list[dict[str, str]]
    halal_certified: bool
    halal_not_eligible: str | None
    funding_accepted: bool
    seats: list[BusinessSeatOut]
    pathway: PathwayOut | None
    mentor_id: uuid.UUID | None


class ReportRowOut(BaseModel):
    group: str
    cohorts: int
    capacity: int
    enrolled: int | None = Field(description="None when fewer than 5 (suppressed)")
    fill_percent: int | None
    waitlisted: int | None
    attendance_percent: int | None = Field(description="present / (present + absent); excused absences left out")
    completed: int | None
    completion_percent: int | None
    assessment_bands: dict[str, dict[str, int | None]] = Field(
        description="Per dimension (management, leadership, business_prospects), completed trainees per score band"
    )


class CohortReportOut(BaseModel):
    rules: dict[str, str]
    by_programme: list[ReportRowOut]
    by_kecamatan: list[ReportRowOut]


class CoverageRowOut(BaseModel):
    kecamatan: str
    food_businesses: int | None = Field(description="Active food or drink businesses; None when fewer than 5")
    self_declare: int | None = Field(description="Of which micro or small, and not recorded as unable to self-declare")
    certified: int | None
    in_pathway: int | None
    stalled: int | None
    not_eligible: int | None
    coverage_percent: int | None = Field(description="certified / food businesses")


# ---------------------------------------------------------------------------------------------------------------
# What training knows, and reports
# ---------------------------------------------------------------------------------------------------------------


@router.get("/businesses/{business_id}", tags=["why"], responses=_404,
            summary="What training knows of a business: its needs (and the rules), seats, pathway and mentor")
async def business(business_id: uuid.UUID, _: Watcher, ctx: Ctx) -> BusinessOut:
    found = await ctx.queries.business(business_id)
    v = found.view
    return BusinessOut(
        **{k: getattr(v, k) for k in ("business_id", "version", "business_name", "kbli_code", "kecamatan_code", "scale",
                                      "youth_owned", "women_owned", "nib_status", "status")},
        registered_at=_wita(v.registered_at), needs=list(found.needs),  # type: ignore[arg-type]
        need_rules=[{"need": n, "rule": r} for n, r in NEED_RULES], halal_certified=found.facts.halal_certified,
        halal_not_eligible=found.facts.halal_not_eligible, funding_accepted=found.facts.funding_accepted,
        seats=[BusinessSeatOut(**seat_out(s).model_dump(), topic=t) for s, t in found.seats],
        pathway=pathway_out(found.pathway) if found.pathway and (found.pathway.steps or found.pathway.not_eligible) else None,
        mentor_id=found.mentor_id,
    )  # fmt: skip


def _row(r: Row) -> ReportRowOut:
    return ReportRowOut(**asdict(r))


@router.get("/reports/cohorts", tags=["reports"],
            summary="Cohort fill, attendance, completion and assessments, per programme and per kecamatan (counts "
            "under 5 suppressed)")  # fmt: skip
async def cohort_report(_: Watcher, ctx: Ctx, programme_id: uuid.UUID | None = None,
                        kecamatan: KecamatanQuery = None) -> CohortReportOut:  # fmt: skip
    code = kecamatan_code(kecamatan, ctx.deps.wilayah)
    by_programme, by_kecamatan = await ctx.queries.cohort_report(programme_id=programme_id, kecamatan_code=code)
    return CohortReportOut(rules={"completion": COMPLETION_RULE, "waitlist": WAITLIST_ORDER,
                                  "suppression": "counts of businesses from 1 to 4, and rates computed from them, are "
                                  "not shown"},
                           by_programme=[_row(r) for r in by_programme], by_kecamatan=[_row(r) for r in by_kecamatan])  # fmt: skip


@router.get("/reports/halal-coverage", tags=["reports"],
            summary="Food and drink businesses with a halal certificate, per kecamatan (counts under 5 suppressed)")
async def halal_coverage(_: Watcher, ctx: Ctx) -> list[CoverageRowOut]:
    rows: list[CoverageRow] = await ctx.queries.halal_coverage()
    return [CoverageRowOut(**asdict(r)) for r in rows]

"""Training's HTTP API for the halal self-declare pathway: its steps, who can't self-declare, and reading it."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter
from pydantic import BaseModel

from services.training import halal_pathway
from services.training.domain.cohorts import kecamatan_code
from services.training.domain.pathway import STEPS, NotEligibleForm, Pathway, StepForm
from services.training.routes import Correlation, Ctx, KecamatanQuery, Officer, Watcher, _404, _404_409, _uow
from shared.web import Page, PageSize

router = APIRouter()


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class StepOut(BaseModel):
    step: str
    done_on: date


class PathwayOut(BaseModel):
    business_id: uuid.UUID
    kecamatan_code: str
    steps: list[StepOut]
    next_step: str | None
    certified: bool
    not_eligible: str | None
    regular_route_possible: bool | None
    stalled_waiting_for: str | None


def pathway_out(p: Pathway) -> PathwayOut:
    stalled = p.stalled_for if p.not_eligible is None and not p.certified else None
    return PathwayOut(business_id=p.business_id, kecamatan_code=p.kecamatan_code,
                      steps=[StepOut(step=s, done_on=d) for s, d in p.steps],
                      next_step=p.next_step if p.not_eligible is None else None, certified=p.certified,
                      not_eligible=p.not_eligible, regular_route_possible=p.regular_route_possible,
                      stalled_waiting_for=stalled)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The halal pathway
# ---------------------------------------------------------------------------------------------------------------


@router.post("/pathways/{business_id}/steps", status_code=201, tags=["halal pathway"], responses=_404_409,
             summary=f"Record the next step of the halal self-declare pathway ({' -> '.join(STEPS)}), with its date")
async def record_step(business_id: uuid.UUID, form: StepForm, who: Officer, ctx: Ctx, correlation: Correlation) -> PathwayOut:
    command = halal_pathway.RecordStep(business_id, form, who)
    return pathway_out(await halal_pathway.record_step(command, _uow(ctx, who, correlation), ctx.deps))


@router.post("/pathways/{business_id}/not-eligible", tags=["halal pathway"], responses=_404_409,
             summary="Record that the business can't self-declare (PathwayNotEligible); it leaves halal cohorts not begun")
async def not_eligible(business_id: uuid.UUID, form: NotEligibleForm, who: Officer, ctx: Ctx,
                       correlation: Correlation) -> PathwayOut:  # fmt: skip
    command = halal_pathway.RecordNotEligible(business_id, form, who)
    return pathway_out(await halal_pathway.record_not_eligible(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/pathways/{business_id}", tags=["halal pathway"], summary="A business's halal pathway", responses=_404)
async def pathway(business_id: uuid.UUID, _: Watcher, ctx: Ctx) -> PathwayOut:
    return pathway_out(await ctx.queries.pathway(business_id))


@router.get("/pathways", tags=["halal pathway"], summary="Halal pathways, optionally of one kecamatan or only stalled")
async def pathways(_: Watcher, ctx: Ctx, kecamatan: KecamatanQuery = None, stalled: bool | None = None, page: Page = 1,
                   page_size: PageSize = 100) -> list[PathwayOut]:  # fmt: skip
    code = kecamatan_code(kecamatan, ctx.deps.wilayah)
    return [pathway_out(p) for p in await ctx.queries.pathways(kecamatan_code=code, stalled=stalled, page=page,
                                                               page_size=page_size)]  # fmt: skip

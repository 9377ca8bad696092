"""Funding's HTTP API: sponsors and pledges, offers on behalf of businesses, 'why', simulations and reports."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.funding import domain, handlers
from services.funding.domain import Offer, Pledge, PledgeForm, SponsorForm
from services.funding.handlers import Deps
from services.funding.store import FundingQueries, FundingUnitOfWork
from shared.auth import Principal
from shared.errors import NotFound
from shared.reference.wilayah import Wilayah
from shared.reference.wita import WITA, today_in_kupang
from shared.web import correlation_id, principal, require_role


@dataclass
class FundingContext:
    deps: Deps
    queries: FundingQueries
    wilayah: Wilayah
    unit_of_work: Callable[[uuid.UUID], FundingUnitOfWork]


def context(request: Request) -> FundingContext:
    return request.app.state.funding


Ctx = Annotated[FundingContext, Depends(context)]
Correlation = Annotated[uuid.UUID, Depends(correlation_id)]
Anyone = Annotated[Principal, Depends(principal)]
Sponsor = Annotated[Principal, Depends(require_role("sponsor"))]
Officer = Annotated[Principal, Depends(require_role("officer"))]
Watcher = Annotated[Principal, Depends(require_role("sponsor", "officer", "operator"))]

router = APIRouter()


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class Totals(BaseModel):
    pledged_rupiah: int
    reserved_rupiah: int
    accepted_rupiah: int
    disbursed_rupiah: int
    remaining_rupiah: int


class PledgeOut(BaseModel):
    id: uuid.UUID
    sponsor_id: uuid.UUID
    sponsor_name: str
    title: str
    instrument: str
    financing_programme: str | None
    amount_mode: str
    amount_per_business_rupiah: int
    min_offer_rupiah: int
    valid_from: date
    valid_until: date
    earmarks: dict[str, Any]
    status: str
    totals: Totals
    created_at: datetime | None = Field(description="WITA")


def totals_of(p: Pledge) -> Totals:
    return Totals(pledged_rupiah=p.total_rupiah, reserved_rupiah=p.reserved_rupiah, accepted_rupiah=p.accepted_rupiah,
                  disbursed_rupiah=p.disbursed_rupiah, remaining_rupiah=p.remaining_rupiah)  # fmt: skip


def pledge_out(p: Pledge) -> PledgeOut:
    return PledgeOut(
        id=p.id, sponsor_id=p.sponsor_id, sponsor_name=p.sponsor_name, title=p.title, instrument=p.instrument,
        financing_programme=p.financing_programme, amount_mode=p.amount_mode,
        amount_per_business_rupiah=p.amount_per_business_rupiah, min_offer_rupiah=p.min_offer_rupiah,
        valid_from=p.valid_from, valid_until=p.valid_until, earmarks=p.earmarks.model_dump(), status=p.status,
        totals=totals_of(p), created_at=p.created_at.astimezone(WITA) if p.created_at else None,
    )  # fmt: skip


class OfferOut(BaseModel):
    id: uuid.UUID
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    amount_rupiah: int
    status: str
    readiness: int
    rank: int | None
    offered_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    reason: str | None
    disbursed_at: datetime | None
    reference: str | None


def offer_out(o: Offer) -> OfferOut:
    def wita(t: datetime | None) -> datetime | None:
        return t.astimezone(WITA) if t else None

    return OfferOut(
        id=o.id, pledge_id=o.pledge_id, business_id=o.business_id, amount_rupiah=o.amount_rupiah, status=o.status,
        readiness=o.readiness, rank=o.rank, offered_at=wita(o.offered_at), expires_at=wita(o.expires_at),
        decided_at=wita(o.decided_at), reason=o.reason, disbursed_at=wita(o.disbursed_at), reference=o.reference,
    )  # fmt: skip


class ReasonBody(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class DisbursementBody(BaseModel):
    reference: str = Field(min_length=3, max_length=200, examples=["TRF-BANKNTT-2026-000123"])


class GroupRow(BaseModel):
    group: str
    businesses: int | None = Field(description="None when fewer than 5 (suppressed)")
    amount_rupiah: int | None
    suppressed: bool


class Simulation(BaseModel):
    businesses_funded: int
    amount_committed_rupiah: int
    remaining_rupiah: int
    eligible_businesses: int
    by_kecamatan: list[GroupRow]
    by_sector: list[GroupRow]


class CheckOut(BaseModel):
    earmark: str
    required: str
    value: str
    passed: bool


class Explanation(BaseModel):
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    eligible_now: bool
    checks: list[CheckOut]
    readiness: int
    readiness_parts: dict[str, int]
    readiness_rules: list[dict[str, Any]]
    offer: OfferOut | None
    ranking_at_match: dict[str, Any] | None = Field(description="The ranking inputs recorded when the offer was made")


class StateRow(BaseModel):
    group: str
    suppressed: bool
    businesses: int | None
    reserved_rupiah: int | None
    accepted_rupiah: int | None
    disbursed_rupiah: int | None


class Report(BaseModel):
    subject: str
    pledges: list[uuid.UUID]
    totals: Totals
    reconciles: bool = Field(description="pledged = reserved + accepted + disbursed + remaining, and matches the offers")
    by_kecamatan: list[StateRow]
    by_scale: list[StateRow]


# ---------------------------------------------------------------------------------------------------------------
# Sponsors and pledges
# ---------------------------------------------------------------------------------------------------------------


@router.post("/sponsors", status_code=201, tags=["sponsors"], summary="Record a sponsor")
async def add_sponsor(form: SponsorForm, _: Sponsor, ctx: Ctx, correlation: Correlation) -> dict[str, Any]:
    sponsor_id = await handlers.register_sponsor(form, ctx.unit_of_work(correlation), ctx.deps)
    return {"id": str(sponsor_id), "name": form.name, "kind": form.kind}


@router.get("/sponsors", tags=["sponsors"], summary="Sponsors")
async def sponsors(_: Anyone, ctx: Ctx) -> list[dict[str, Any]]:
    return [{"id": str(r["id"]), "name": r["name"], "kind": r["kind"]} for r in await ctx.queries.sponsors()]


@router.post("/pledges", status_code=201, tags=["pledges"], summary="Make a pledge (CSRPledged); matching starts at once")
async def make_pledge(form: PledgeForm, _: Sponsor, ctx: Ctx, correlation: Correlation) -> PledgeOut:
    return pledge_out(await handlers.make_pledge(form, ctx.unit_of_work(correlation), ctx.deps))


@router.get("/pledges", tags=["pledges"], summary="Pledges, optionally of one sponsor")
async def pledges(_: Anyone, ctx: Ctx, sponsor_id: uuid.UUID | None = None) -> list[PledgeOut]:
    return [pledge_out(p) for p in await ctx.queries.pledges(sponsor_id)]


@router.get("/pledges/{pledge_id}", tags=["pledges"], summary="One pledge with its totals")
async def pledge(pledge_id: uuid.UUID, _: Anyone, ctx: Ctx) -> PledgeOut:
    found = await ctx.queries.pledge(pledge_id)
    if found is None:
        raise NotFound(f"no pledge {pledge_id}")
    return pledge_out(found)


@router.post("/pledges/simulate", tags=["pledges"], summary="What a pledge would fund now, committing nothing")
async def simulate(form: PledgeForm, _: Sponsor, ctx: Ctx) -> Simulation:
    now = ctx.deps.clock()
    today = today_in_kupang(now)
    earmarks, minimum = domain.validate_pledge(form, ctx.wilayah, today)
    draft = Pledge(
        id=uuid.uuid4(), sponsor_id=form.sponsor_id, sponsor_name="", sponsor_kind="", title=form.title,
        instrument=form.instrument, financing_programme=form.financing_programme, total_rupiah=form.total_rupiah,
        amount_mode=form.amount_mode, amount_per_business_rupiah=form.amount_per_business_rupiah,
        min_offer_rupiah=minimum, valid_from=form.valid_from, valid_until=form.valid_until, earmarks=earmarks,
        status="open",
    )  # fmt: skip
    ranked = domain.rank_candidates(earmarks, await ctx.queries.candidates(draft), today)
    funded, amounts, remaining = domain.simulate(draft, ranked)
    names = {k.code: k.name for k in ctx.wilayah.kecamatan}
    by_kec: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    by_sector: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for candidate, amount in zip(funded, amounts, strict=True):
        for groups, key in ((by_kec, names.get(candidate.business.kecamatan_code, candidate.business.kecamatan_code)),
                            (by_sector, domain.sector_of(candidate.business.kbli_code))):  # fmt: skip
            count, total = groups[key]
            groups[key] = (count + 1, total + amount)
    return Simulation(
        businesses_funded=len(funded), amount_committed_rupiah=sum(amounts), remaining_rupiah=remaining,
        eligible_businesses=len(ranked),
        by_kecamatan=[GroupRow(**asdict(r)) for r in domain.suppressed_rows(dict(by_kec))],
        by_sector=[GroupRow(**asdict(r)) for r in domain.suppressed_rows(dict(by_sector))],
    )  # fmt: skip


@router.post("/pledges/{pledge_id}/close", tags=["pledges"], summary="Close a pledge: no more offers (PledgeClosed)")
async def close(pledge_id: uuid.UUID, body: ReasonBody, _: Sponsor, ctx: Ctx, correlation: Correlation) -> PledgeOut:
    return pledge_out(await handlers.close_pledge(pledge_id, body.reason, ctx.unit_of_work(correlation), ctx.deps))


@router.get("/pledges/{pledge_id}/offers", tags=["offers"], summary="A pledge's offers, in the order they were made")
async def pledge_offers(pledge_id: uuid.UUID, _: Watcher, ctx: Ctx, status: str | None = None) -> list[OfferOut]:
    return [offer_out(o) for o in await ctx.queries.offers(pledge_id=pledge_id, status=status)]


# ---------------------------------------------------------------------------------------------------------------
# Offers
# ---------------------------------------------------------------------------------------------------------------


@router.get("/offers", tags=["offers"], summary="Offers to one business")
async def business_offers(business_id: uuid.UUID, _: Watcher, ctx: Ctx) -> list[OfferOut]:
    return [offer_out(o) for o in await ctx.queries.offers(business_id=business_id)]


@router.post("/offers/{offer_id}/accept", tags=["offers"], summary="The business accepts (recorded by an officer)")
async def accept(offer_id: uuid.UUID, _: Officer, ctx: Ctx, correlation: Correlation) -> OfferOut:
    return offer_out(await handlers.accept_offer(offer_id, ctx.unit_of_work(correlation), ctx.deps))


@router.post("/offers/{offer_id}/decline", tags=["offers"], summary="The business declines; the next in line is offered")
async def decline(offer_id: uuid.UUID, body: ReasonBody, _: Officer, ctx: Ctx, correlation: Correlation) -> OfferOut:
    return offer_out(await handlers.decline_offer(offer_id, body.reason, ctx.unit_of_work(correlation), ctx.deps))


@router.post("/offers/{offer_id}/disburse", tags=["offers"], summary="The sponsor paid out or handed over (FundsDisbursed)")
async def disburse(offer_id: uuid.UUID, body: DisbursementBody, _: Sponsor, ctx: Ctx, correlation: Correlation) -> OfferOut:
    return offer_out(await handlers.disburse_offer(offer_id, body.reference, ctx.unit_of_work(correlation), ctx.deps))


# ---------------------------------------------------------------------------------------------------------------
# Why, and reports
# ---------------------------------------------------------------------------------------------------------------


@router.get("/explain", tags=["why"], summary="Why a business does or doesn't match a pledge")
async def explain(pledge_id: uuid.UUID, business_id: uuid.UUID, _: Watcher, ctx: Ctx) -> Explanation:
    found = await ctx.queries.pledge(pledge_id)
    business = await ctx.queries.business(business_id)
    if found is None:
        raise NotFound(f"no pledge {pledge_id}")
    if business is None:
        raise NotFound(f"funding has heard of no business {business_id} (it learns of businesses from registry events)")
    today = today_in_kupang(ctx.deps.clock())
    checks = domain.evaluate(found.earmarks, business, today)
    score = domain.readiness(business, today)
    offers = await ctx.queries.offers(pledge_id=pledge_id, business_id=business_id)
    return Explanation(
        pledge_id=pledge_id, business_id=business_id, eligible_now=all(c.passed for c in checks),
        checks=[CheckOut(**asdict(c)) for c in checks], readiness=score.score, readiness_parts=score.parts,
        readiness_rules=[{"part": p, "points": n, "why": w} for p, n, w in domain.READINESS_RULES],
        offer=offer_out(offers[0]) if offers else None, ranking_at_match=offers[0].ranking if offers else None,
    )  # fmt: skip


async def _report(subject: str, pledges: list[Pledge], ctx: FundingContext) -> Report:
    ids = [p.id for p in pledges]
    totals = Totals(
        pledged_rupiah=sum(p.total_rupiah for p in pledges), reserved_rupiah=sum(p.reserved_rupiah for p in pledges),
        accepted_rupiah=sum(p.accepted_rupiah for p in pledges), disbursed_rupiah=sum(p.disbursed_rupiah for p in pledges),
        remaining_rupiah=sum(p.remaining_rupiah for p in pledges),
    )  # fmt: skip
    rows = await ctx.queries.breakdown(ids)
    sums = Counter()
    for r in rows:
        sums[r["status"]] += int(r["amount"])
    reconciles = (
        totals.pledged_rupiah == totals.reserved_rupiah + totals.accepted_rupiah + totals.disbursed_rupiah + totals.remaining_rupiah
        and (sums["offered"], sums["accepted"], sums["disbursed"]) == (totals.reserved_rupiah, totals.accepted_rupiah, totals.disbursed_rupiah)
    )  # fmt: skip
    names = {k.code: k.name for k in ctx.wilayah.kecamatan}
    return Report(subject=subject, pledges=ids, totals=totals, reconciles=reconciles,
                  by_kecamatan=_state_rows(rows, "kecamatan_code", names), by_scale=_state_rows(rows, "scale", {}))  # fmt: skip


def _state_rows(rows: list, column: str, names: dict[str, str]) -> list[StateRow]:  # noqa: ANN001
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if r["status"] not in ("offered", "accepted", "disbursed"):
            continue
        g = groups[names.get(r[column], r[column])]
        g["businesses"] += r["businesses"]
        g[{"offered": "reserved", "accepted": "accepted", "disbursed": "disbursed"}[r["status"]]] += int(r["amount"])
    out = []
    for name, g in sorted(groups.items()):
        hidden = 0 < g["businesses"] < domain.SUPPRESS_BELOW
        out.append(StateRow(group=name, suppressed=hidden, businesses=None if hidden else g["businesses"],
                            reserved_rupiah=None if hidden else g["reserved"], accepted_rupiah=None if hidden else g["accepted"],
                            disbursed_rupiah=None if hidden else g["disbursed"]))  # fmt: skip
    return out


@router.get("/reports/pledges/{pledge_id}", tags=["reports"], summary="Where a pledge's money is, by kecamatan and scale")
async def pledge_report(pledge_id: uuid.UUID, _: Watcher, ctx: Ctx) -> Report:
    found = await ctx.queries.pledge(pledge_id)
    if found is None:
        raise NotFound(f"no pledge {pledge_id}")
    return await _report(found.title, [found], ctx)


@router.get("/reports/sponsors/{sponsor_id}", tags=["reports"], summary="Where a sponsor's money is, over all its pledges")
async def sponsor_report(sponsor_id: uuid.UUID, _: Watcher, ctx: Ctx) -> Report:
    pledges = await ctx.queries.pledges(sponsor_id)
    if not pledges:
        raise NotFound(f"sponsor {sponsor_id} has no pledges")
    return await _report(pledges[0].sponsor_name, pledges, ctx)


@router.get("/businesses/{business_id}", tags=["why"], summary="What funding knows of a business")
async def business(business_id: uuid.UUID, _: Watcher, ctx: Ctx) -> dict[str, Any]:
    view = await ctx.queries.business(business_id)
    if view is None:
        raise NotFound(f"funding has heard of no business {business_id}")
    data = asdict(view)
    data.pop("contact_phone")
    data["trainings"] = sorted(view.trainings)
    data["youth_now"] = view.youth_on(today_in_kupang(ctx.deps.clock()))
    return data

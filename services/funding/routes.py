"""Funding's HTTP API: each route turns a request into a command or a query, and the answer into a response."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from services.funding import handlers
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge, PledgeForm, SponsorForm
from services.funding.domain.reports import GroupRow, OutcomeRow, StateRow, totals_of
from services.funding.matching import Deps
from services.funding.queries import FundingQueries
from services.funding.store import FundingUnitOfWork
from shared import idempotency
from shared.auth import Principal
from shared.contracts.funding import PledgeTotals
from shared.errors import Forbidden, NotFound
from shared.reference.wita import WITA, today_in_kupang
from shared.unit_of_work import Cause
from shared.web import PROBLEM_RESPONSES, Page, correlation_id, principal, require_role


@dataclass
class FundingContext:
    deps: Deps
    queries: FundingQueries
    unit_of_work: Callable[[Cause], FundingUnitOfWork]


async def context(request: Request) -> FundingContext:
    return request.app.state.service


Ctx = Annotated[FundingContext, Depends(context)]
Correlation = Annotated[uuid.UUID, Depends(correlation_id)]
Anyone = Annotated[Principal, Depends(principal)]
Sponsor = Annotated[Principal, Depends(require_role("sponsor"))]
Officer = Annotated[Principal, Depends(require_role("officer"))]
Watcher = Annotated[Principal, Depends(require_role("sponsor", "officer", "operator"))]

router = APIRouter()
_404 = {404: PROBLEM_RESPONSES[404]}
_404_409 = {404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]}
PledgeKey = idempotency.header("pledge")


def _uow(ctx: FundingContext, who: Principal, correlation: uuid.UUID) -> FundingUnitOfWork:
    return ctx.unit_of_work(Cause.request(correlation, who.actor))


def _may_watch(who: Principal, sponsor_id: uuid.UUID) -> None:
    """Officers and operators watch every pledge; a sponsor watches its own."""
    if not who.has_any({"officer", "operator"}):
        handlers.require_sponsor(who, sponsor_id)


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class SponsorOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: str


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
    totals: PledgeTotals
    created_at: datetime | None = Field(description="WITA")


def pledge_out(p: Pledge) -> PledgeOut:
    return PledgeOut(
        id=p.id, sponsor_id=p.sponsor_id, sponsor_name=p.sponsor_name, title=p.title, instrument=p.instrument,
        financing_programme=p.financing_programme, amount_mode=p.amount_mode,
        amount_per_business_rupiah=p.amount_per_business_rupiah, min_offer_rupiah=p.min_offer_rupiah,
        valid_from=p.valid_from, valid_until=p.valid_until, earmarks=p.earmarks.model_dump(), status=p.status,
        totals=totals_of([p]), created_at=p.created_at.astimezone(WITA) if p.created_at else None,
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


def sees_ranking(who: Principal) -> bool:
    """Officers and operators see where each business ranked. A sponsor does not: never funded before ranks first,
    so a business of higher readiness ranked after one of lower shows it was funded by another sponsor."""
    return who.has_any({"officer", "operator"})


def sees_reason(o: Offer, who: Principal) -> bool:
    """Why a business declined is an officer's words about the owner (moved away, fell ill): the registry shows an
    officer's words only to officers who may see the owner's personal data there. Funding's lists span kecamatan,
    so here only a city-wide officer does; a sponsor, an operator, an admin and an officer of some kecamatan see
    that it was declined."""
    return o.status != "declined" or (who.may_see_personal_data and not who.limited_to_kecamatan)


def offer_out(o: Offer, who: Principal) -> OfferOut:
    def wita(t: datetime | None) -> datetime | None:
        return t.astimezone(WITA) if t else None

    return OfferOut(
        id=o.id, pledge_id=o.pledge_id, business_id=o.business_id, amount_rupiah=o.amount_rupiah, status=o.status,
        readiness=o.readiness, rank=o.rank if sees_ranking(who) else None, offered_at=wita(o.offered_at), expires_at=wita(o.expires_at),
        decided_at=wita(o.decided_at), reason=o.reason if sees_reason(o, who) else None,
        disbursed_at=wita(o.disbursed_at), reference=o.reference,
    )  # fmt: skip


class ReasonBody(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class DisbursementBody(BaseModel):
    reference: str = Field(min_length=3, max_length=200, examples=["TRF-BANKNTT-2026-000123"])


class GroupRowOut(BaseModel):
    group: str
    businesses: int | None = Field(description="None when fewer than 5 (suppressed)")
    amount_rupiah: int | None
    suppressed: bool


class SimulationOut(BaseModel):
    businesses_funded: int | None = Field(description="None when fewer than 5 businesses are eligible (suppressed)")
    amount_committed_rupiah: int | None
    remaining_rupiah: int | None
    eligible_businesses: int | None
    by_kecamatan: list[GroupRowOut] = Field(description="Groups of fewer than 5 businesses are merged into one row")
    by_sector: list[GroupRowOut]
    suppressed: bool = Field(description="Fewer than 5 businesses are eligible: no figure is shown, since with so few "
                             "they would tell who ranks first and why")


class CheckOut(BaseModel):
    earmark: str
    required: str
    value: str
    passed: bool


class ExplanationOut(BaseModel):
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    eligible_now: bool
    checks: list[CheckOut]
    readiness: int
    readiness_parts: dict[str, int]
    readiness_rules: list[dict[str, Any]]
    offer: OfferOut | None
    ranking_at_match: dict[str, Any] | None = Field(description="The ranking inputs recorded when the offer was made")


class StateRowOut(BaseModel):
    group: str
    suppressed: bool
    businesses: int | None
    reserved_rupiah: int | None
    accepted_rupiah: int | None
    disbursed_rupiah: int | None


class OutcomeRowOut(BaseModel):
    partner_id: str
    kind: str = Field(description="approved, disbursed or declined, as the partner reported it")
    businesses: int | None = Field(description="None when fewer than 5 (suppressed)")
    amount_rupiah: int | None
    suppressed: bool


class ReportOut(BaseModel):
    subject: str
    pledges: list[uuid.UUID]
    totals: PledgeTotals
    reconciles: bool = Field(description="pledged = reserved + accepted + disbursed + remaining, and matches the offers")
    by_kecamatan: list[StateRowOut]
    by_scale: list[StateRowOut]
    partner_outcomes: list[OutcomeRowOut] = Field(description="What partners reported on the referrals made")


def _rows(rows: list[GroupRow] | list[StateRow] | list[OutcomeRow], model: type[BaseModel]) -> list[Any]:
    return [model(**asdict(r)) for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# Sponsors and pledges
# ---------------------------------------------------------------------------------------------------------------


@router.post("/sponsors", status_code=201, tags=["sponsors"], responses={409: PROBLEM_RESPONSES[409]},
             summary="Record a sponsor (the programme office does; its officers then get tokens naming it)")
async def add_sponsor(form: SponsorForm, who: Officer, ctx: Ctx, correlation: Correlation) -> SponsorOut:
    sponsor_id = await handlers.register_sponsor(handlers.RegisterSponsor(form, who), _uow(ctx, who, correlation), ctx.deps)
    return SponsorOut(id=sponsor_id, name=form.name, kind=form.kind)


@router.get("/sponsors", tags=["sponsors"], summary="Sponsors")
async def sponsors(_: Anyone, ctx: Ctx) -> list[SponsorOut]:
    return [SponsorOut(**dict(r)) for r in await ctx.queries.sponsors()]


@router.post("/pledges", status_code=201, tags=["pledges"], responses=_404_409,
             summary="Make a pledge for your sponsor (CSRPledged); matching starts at once")
async def make_pledge(
    form: PledgeForm, who: Sponsor, ctx: Ctx, correlation: Correlation,
    idempotency_key: PledgeKey = None,
) -> PledgeOut:  # fmt: skip
    command = handlers.MakePledge(form, who, idempotency_key)
    return pledge_out(await handlers.make_pledge(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/pledges", tags=["pledges"], summary="Pledges, optionally of one sponsor")
async def pledges(_: Anyone, ctx: Ctx, sponsor_id: uuid.UUID | None = None) -> list[PledgeOut]:
    return [pledge_out(p) for p in await ctx.queries.pledges(sponsor_id)]


@router.get("/pledges/{pledge_id}", tags=["pledges"], summary="One pledge with its totals", responses=_404)
async def pledge(pledge_id: uuid.UUID, _: Anyone, ctx: Ctx) -> PledgeOut:
    return pledge_out(await ctx.queries.pledge(pledge_id))


@router.post("/pledges/simulate", tags=["pledges"], summary="What a pledge would fund now, committing nothing",
             responses=_404)
async def simulate(form: PledgeForm, who: Watcher, ctx: Ctx) -> SimulationOut:
    _may_watch(who, form.sponsor_id)
    simulation = await ctx.queries.simulate(form, ("", ""), today_in_kupang(ctx.deps.clock()))
    return SimulationOut(
        businesses_funded=simulation.businesses_funded, amount_committed_rupiah=simulation.amount_committed_rupiah,
        remaining_rupiah=simulation.remaining_rupiah, eligible_businesses=simulation.eligible_businesses,
        by_kecamatan=_rows(simulation.by_kecamatan, GroupRowOut), by_sector=_rows(simulation.by_sector, GroupRowOut),
        suppressed=simulation.suppressed,
    )  # fmt: skip


@router.post("/pledges/{pledge_id}/close", tags=["pledges"], summary="Close a pledge: no more offers (PledgeClosed)",
             responses=_404_409)
async def close(pledge_id: uuid.UUID, body: ReasonBody, who: Sponsor, ctx: Ctx, correlation: Correlation) -> PledgeOut:
    command = handlers.ClosePledge(pledge_id, body.reason, who)
    return pledge_out(await handlers.close_pledge(command, _uow(ctx, who, correlation), ctx.deps))


_PAGED = {200: {"headers": {
    "X-Total-Count": {"description": "How many offers match, on every page", "schema": {"type": "integer"}},
    "Link": {"description": 'The next page, `<url>; rel="next"`, while there is one', "schema": {"type": "string"}},
}}}  # fmt: skip


@router.get("/pledges/{pledge_id}/offers", tags=["offers"], responses={**_404, **_PAGED},
            summary="A pledge's offers, in the order they were made, a page at a time")  # fmt: skip
async def pledge_offers(
    pledge_id: uuid.UUID, who: Watcher, ctx: Ctx, request: Request, response: Response,
    status: Literal["offered", "accepted", "declined", "expired", "withdrawn", "disbursed"] | None = None,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[OfferOut]:  # fmt: skip
    """A page of offers; a pledge for a whole city has tens of thousands. `X-Total-Count` says how many match and
    `Link` gives the next page while there is one."""
    _may_watch(who, (await ctx.queries.pledge(pledge_id)).sponsor_id)
    total, offers = await ctx.queries.offers_page(pledge_id, status, page=page, page_size=page_size,
                                                  by_rank=sees_ranking(who))  # fmt: skip
    response.headers["X-Total-Count"] = str(total)
    if page * page_size < total:
        response.headers["Link"] = f'<{request.url.include_query_params(page=page + 1, page_size=page_size)}>; rel="next"'
    return [offer_out(o, who) for o in offers]


# ---------------------------------------------------------------------------------------------------------------
# Offers
# ---------------------------------------------------------------------------------------------------------------


@router.get("/offers", tags=["offers"], summary="Offers to one business (a sponsor sees only its own pledges' offers)")
async def business_offers(business_id: uuid.UUID, who: Watcher, ctx: Ctx) -> list[OfferOut]:
    own = None if who.has_any({"officer", "operator"}) else who.sponsor_id or uuid.UUID(int=0)
    return [offer_out(o, who) for o in await ctx.queries.offers(business_id=business_id, sponsor_id=own)]


@router.post("/offers/{offer_id}/accept", tags=["offers"], summary="The business accepts (recorded by an officer)",
             responses=_404_409)
async def accept(offer_id: uuid.UUID, who: Officer, ctx: Ctx, correlation: Correlation) -> OfferOut:
    accepted = await handlers.accept_offer(handlers.AcceptOffer(offer_id, who), _uow(ctx, who, correlation), ctx.deps)
    return offer_out(accepted, who)


@router.post("/offers/{offer_id}/decline", tags=["offers"], summary="The business declines; the next in line is offered",
             responses=_404_409)
async def decline(offer_id: uuid.UUID, body: ReasonBody, who: Officer, ctx: Ctx, correlation: Correlation) -> OfferOut:
    command = handlers.DeclineOffer(offer_id, body.reason, who)
    return offer_out(await handlers.decline_offer(command, _uow(ctx, who, correlation), ctx.deps), who)


@router.post("/offers/{offer_id}/disburse", tags=["offers"], responses=_404_409,
             summary="Your sponsor paid out or handed over (FundsDisbursed)")
async def disburse(offer_id: uuid.UUID, body: DisbursementBody, who: Sponsor, ctx: Ctx, correlation: Correlation) -> OfferOut:
    command = handlers.DisburseOffer(offer_id, body.reference, who)
    return offer_out(await handlers.disburse_offer(command, _uow(ctx, who, correlation), ctx.deps), who)


@router.post("/offers/{offer_id}/withdraw", tags=["offers"], responses=_404_409,
             summary="Your sponsor will not pay an accepted offer (its business closed, say): the money goes to the "
             "next in line (FundingWithdrawn)")  # fmt: skip
async def withdraw(offer_id: uuid.UUID, body: ReasonBody, who: Sponsor, ctx: Ctx, correlation: Correlation) -> OfferOut:
    command = handlers.WithdrawOffer(offer_id, body.reason, who)
    return offer_out(await handlers.withdraw_offer(command, _uow(ctx, who, correlation), ctx.deps), who)


# ---------------------------------------------------------------------------------------------------------------
# Why, and reports
# ---------------------------------------------------------------------------------------------------------------


@router.get("/explain", tags=["why"], summary="Why a business does or doesn't match a pledge", responses=_404)
async def explain(pledge_id: uuid.UUID, business_id: uuid.UUID, who: Watcher, ctx: Ctx) -> ExplanationOut:
    _may_watch(who, (await ctx.queries.pledge(pledge_id)).sponsor_id)
    # Every earmark's value, the trainings and the trainer's assessment, of any business in the city. Asked before
    # the business is looked up, so a sponsor gets the same answer whether or not a business has that id.
    if not sees_ranking(who) and not await ctx.queries.offers(pledge_id=pledge_id, business_id=business_id):
        raise Forbidden(f"your pledge made no offer to business {business_id}; why another business does or doesn't "
                        "match is for the programme's officers to answer")  # fmt: skip
    why = await ctx.queries.explain(pledge_id, business_id, today_in_kupang(ctx.deps.clock()))
    return ExplanationOut(
        pledge_id=why.pledge_id, business_id=why.business_id, eligible_now=why.eligible_now,
        checks=[CheckOut(**asdict(c)) for c in why.checks], readiness=why.readiness,
        readiness_parts=why.readiness_parts, readiness_rules=why.readiness_rules,
        offer=offer_out(why.offer, who) if why.offer else None,
        ranking_at_match=_ranking_seen_by(who, why.offer.ranking) if why.offer else None,
    )  # fmt: skip


def _ranking_seen_by(who: Principal, ranking: dict[str, Any]) -> dict[str, Any]:
    # Whether the business was funded before counts every sponsor's offers, which a sponsor is not told of.
    return ranking if sees_ranking(who) else {**ranking, "funded_before": None, "rank": None}


def report_out(report: Any) -> ReportOut:
    return ReportOut(subject=report.subject, pledges=report.pledges, totals=report.totals, reconciles=report.reconciles,
                     by_kecamatan=_rows(report.by_kecamatan, StateRowOut), by_scale=_rows(report.by_scale, StateRowOut),
                     partner_outcomes=_rows(report.partner_outcomes, OutcomeRowOut))  # fmt: skip


@router.get("/reports/pledges/{pledge_id}", tags=["reports"], summary="Where a pledge's money is, by kecamatan and scale",
            responses=_404)
async def pledge_report(pledge_id: uuid.UUID, who: Watcher, ctx: Ctx) -> ReportOut:
    found = await ctx.queries.pledge(pledge_id)
    _may_watch(who, found.sponsor_id)
    return report_out(await ctx.queries.report(found.title, [found]))


@router.get("/reports/sponsors/{sponsor_id}", tags=["reports"], summary="Where a sponsor's money is, over all its pledges",
            responses=_404)
async def sponsor_report(sponsor_id: uuid.UUID, who: Watcher, ctx: Ctx) -> ReportOut:
    _may_watch(who, sponsor_id)
    found = await ctx.queries.pledges(sponsor_id)
    if not found:
        raise NotFound(f"sponsor {sponsor_id} has no pledges")
    return report_out(await ctx.queries.report(found[0].sponsor_name, found))


class BusinessViewOut(BaseModel):
    business_id: uuid.UUID
    version: int
    business_name: str
    kecamatan_code: str
    kbli_code: str
    scale: str
    youth_owned: bool
    women_owned: bool
    nib_status: str
    status: str
    annual_sales_rupiah: int | None
    registered_at: datetime
    trainings: list[str]
    funded_count: int | None = Field(description="Offers accepted or disbursed, over every sponsor's pledges; not "
                                     "shown to a sponsor, who sees only its own offers")


@router.get("/businesses/{business_id}", tags=["why"], responses=_404,
            summary="What funding knows of a business (a sponsor: of a business its pledges made an offer to)")
async def business(business_id: uuid.UUID, who: Watcher, ctx: Ctx) -> BusinessViewOut:
    sponsor_only = not who.has_any({"officer", "operator"})
    # Checked before the business is looked up, so the answer doesn't tell a sponsor which ids are businesses.
    own = who.sponsor_id or uuid.UUID(int=0)
    if sponsor_only and not await ctx.queries.offers(business_id=business_id, sponsor_id=own):
        # Its trainings and readiness inputs, of any business in the city, as `/explain` refuses them.
        raise Forbidden(f"your pledges made no offer to business {business_id}; what funding knows of another business "
                        "is for the programme's officers to answer")  # fmt: skip
    view = await ctx.queries.business(business_id)
    data = {k: v for k, v in asdict(view).items() if k in BusinessViewOut.model_fields}
    if sponsor_only:
        data["funded_count"] = None  # it would tell a sponsor of other sponsors' money to this business
    return BusinessViewOut(**{**data, "trainings": sorted(view.trainings)})

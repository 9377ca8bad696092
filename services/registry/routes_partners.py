"""The registry's HTTP API for partners and owners' consents: setting up who referrals may go to, and recording
an owner's consent (or its withdrawal), which sends the referral to that partner alone."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.specification.asyncapi.site import get_asyncapi_html
from pydantic import BaseModel, Field

from services.registry import handlers
from services.registry.domain.consent import Consent, ConsentForm
from services.registry.routes import Correlation, Ctx, Officer, _404, _404_409, _uow
from shared.auth import Principal
from shared.contracts.partner_asyncapi import partner_document, partner_specification
from shared.contracts.public import PARTNER_ID_PATTERN
from shared.errors import Conflict, InvalidInput, NotFound
from shared.reference.wita import WITA
from shared.web import PROBLEM_RESPONSES, require_role

router = APIRouter()

Admin = Annotated[Principal, Depends(require_role("admin"))]
Staff = Annotated[Principal, Depends(require_role("officer", "operator"))]
_409 = {409: PROBLEM_RESPONSES[409]}


class PartnerIn(BaseModel):
    id: str = Field(pattern=PARTNER_ID_PATTERN, examples=["bri"])
    name: str = Field(min_length=2, max_length=150, examples=["Bank Rakyat Indonesia"])


class PartnerOut(BaseModel):
    id: str
    name: str
    active: bool


class ConsentOut(BaseModel):
    id: uuid.UUID
    business_id: uuid.UUID
    partner_id: str
    purpose: str
    financing_programme: str | None
    amount_sought_rupiah: int | None
    offer_id: uuid.UUID | None
    given_at: datetime = Field(description="WITA")
    given_by: str
    withdrawn_at: datetime | None
    withdrawn_by: str | None


def consent_out(c: Consent) -> ConsentOut:
    return ConsentOut(**{**asdict(c), "given_at": c.given_at.astimezone(WITA),
                         "withdrawn_at": c.withdrawn_at.astimezone(WITA) if c.withdrawn_at else None})  # fmt: skip


@router.get("/partners/asyncapi.json", tags=["partners"],
            summary="AsyncAPI 3.0 document of what partner systems may read and write (no token needed)")
async def partner_asyncapi_json() -> JSONResponse:
    return JSONResponse(partner_document())


@router.get("/partners/asyncapi", response_class=HTMLResponse, include_in_schema=False)
async def partner_asyncapi_html() -> HTMLResponse:
    return HTMLResponse(get_asyncapi_html(partner_specification(), try_it_out_path=None))


@router.put("/partners/{partner_id}", tags=["partners"], responses=_409,
            summary="Set up a partner referrals may go to (admin). Answers once the referral events to it committed "
            "before are on its topic (409 `referrals_waiting` if they are not within 20 s): a partner admitted again "
            "is told first of the consents withdrawn while it was revoked")
async def set_up_partner(partner_id: str, body: PartnerIn, who: Admin, ctx: Ctx, correlation: Correlation) -> PartnerOut:
    if body.id != partner_id:
        raise InvalidInput.one("id", "partner.id_mismatch", "the body's id must be the id in the path")
    command = handlers.SetUpPartner(partner_id, body.name)
    partner = await handlers.set_up_partner(command, _uow(ctx, who, correlation), ctx.deps)
    # `berdaya partner add` gives the partner its grant to read once this answers: by then no referral is on its
    # topic without the withdrawal that supersedes it.
    await _referrals_published(ctx, partner_id, f"partner {partner_id} is admitted", "run `berdaya partner add` again "
                               "once they are published; the partner is given no access to Kafka until then")  # fmt: skip
    return PartnerOut(**asdict(partner))


# How long a revoke or an admission waits for the referral events committed before it to reach the partner's topic.
REVOKE_DRAIN_SECONDS = 20.0


async def _referrals_published(ctx: Ctx, partner_id: str, done: str, then: str) -> None:
    deadline = asyncio.get_running_loop().time() + REVOKE_DRAIN_SECONDS
    while (waiting := await ctx.queries.referrals_waiting(partner_id)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    if waiting:
        raise Conflict(f"{done}, but {waiting} referral event(s) to it are still waiting for Kafka "
                       "(berdaya_outbox_failing_rows and the outbox's last_error say why); " + then,
                       "referrals_waiting", {"waiting": waiting})  # fmt: skip


@router.post("/partners/{partner_id}/revoke", tags=["partners"], responses=_404_409,
             summary="Revoke a partner: no more referrals go to it (admin). Answers once the referral events "
             "committed before are on its topic (409 `referrals_waiting` if they are not within 20 s)")
async def revoke_partner(partner_id: str, who: Admin, ctx: Ctx, correlation: Correlation) -> PartnerOut:
    known = {p.id: p for p in await ctx.queries.partners()}
    if partner_id not in known:
        raise NotFound(f"no partner {partner_id}")
    command = handlers.SetUpPartner(partner_id, known[partner_id].name, active=False)
    revoked = await handlers.set_up_partner(command, _uow(ctx, who, correlation), ctx.deps)
    # Nothing more is written for it; what was committed before goes out before `berdaya partner revoke` takes the
    # registry's grant to write its topic away (a withdrawal left behind would never supersede its referral).
    await _referrals_published(ctx, partner_id, f"partner {partner_id} is revoked and no more referrals go to it",
                               "the registry keeps its grant to write them: run the revoke again once they are "
                               "published")  # fmt: skip
    return PartnerOut(**asdict(revoked))


@router.get("/partners", tags=["partners"], summary="Partners referrals may go to")
async def partners(_: Staff, ctx: Ctx) -> list[PartnerOut]:
    return [PartnerOut(**asdict(p)) for p in await ctx.queries.partners()]


@router.post("/businesses/{business_id}/consents", status_code=201, tags=["partners"], responses=_404_409,
             summary="Record the owner's consent to share their contact with a partner, for a purpose: the partner "
             "receives the referral on its own topic",
             description="The same consent sent again within 15 minutes while it is active (the same partner, "
             "purpose, programme, amount and offer: a retry) answers with the one recorded; the partner gets one "
             "referral. Later, the same form is the owner applying again: a new consent and referral.")
async def give_consent(business_id: uuid.UUID, form: ConsentForm, who: Officer, ctx: Ctx, correlation: Correlation) -> ConsentOut:
    command = handlers.GiveConsent(business_id, form, who)
    return consent_out(await handlers.give_consent(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/businesses/{business_id}/consents", tags=["partners"], responses=_404,
            summary="The owner's consents, given and withdrawn")
async def list_consents(business_id: uuid.UUID, who: Officer, ctx: Ctx) -> list[ConsentOut]:
    handlers.must_see_personal_data(who, "see an owner's consents to partners")
    business = await ctx.queries.get(business_id)
    if business is None:
        raise NotFound(f"no business {business_id}")
    handlers.require_scope(who, business)
    return [consent_out(c) for c in await ctx.queries.consents(business_id)]


@router.post("/businesses/{business_id}/consents/{consent_id}/withdraw", tags=["partners"], responses=_404_409,
             summary="The owner withdraws consent: the partner is told at once")
async def withdraw_consent(business_id: uuid.UUID, consent_id: uuid.UUID, who: Officer, ctx: Ctx,
                           correlation: Correlation) -> ConsentOut:  # fmt: skip
    command = handlers.WithdrawConsent(business_id, consent_id, who)
    return consent_out(await handlers.withdraw_consent(command, _uow(ctx, who, correlation), ctx.deps))

"""The notifier's HTTP API: what was said to whom, for officers and operators."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.notifier.queries import MessageQueries
from shared.auth import Principal
from shared.reference.wita import WITA
from shared.web import Page, PageSize, require_role

Template = Literal[
    "welcome", "nib_issued", "nib_rejected", "funding_offer", "funds_disbursed", "training_invitation", "training_seat",
    "training_waitlisted", "training_cancelled", "training_completed", "halal_stalled", "halal_stalled_officer",
    "halal_not_eligible",
]


@dataclass
class NotifierContext:
    queries: MessageQueries


def context(request: Request) -> NotifierContext:
    return request.app.state.service


Ctx = Annotated[NotifierContext, Depends(context)]
Reader = Annotated[Principal, Depends(require_role("officer", "operator"))]

router = APIRouter()


class MessageOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    business_id: uuid.UUID
    template: str
    channel: str
    recipient_phone: str | None = Field(
        description="In full for officers; others see only its last three digits. None while the owner's contact "
        "has not reached the notifier yet, and for messages to officers"
    )
    audience: str = Field(description="owner, or officers (of kecamatan_code)")
    kecamatan_code: str | None
    language: str
    body: str
    status: str
    created_at: datetime


class MessagePage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[MessageOut]


def masked(phone: str) -> str:
    """Enough for an operator to tell two numbers apart, not to call either."""
    return "*" * (len(phone) - 3) + phone[-3:]


@router.get("/messages", tags=["messages"], summary="Messages recorded for owners, newest first")
async def list_messages(
    who: Reader, ctx: Ctx, business_id: uuid.UUID | None = None, template: Template | None = None,
    page: Page = 1, page_size: PageSize = 50,
) -> MessagePage:  # fmt: skip
    total, rows = await ctx.queries.search(business_id=business_id, template=template, page=page, page_size=page_size)
    items = []
    for row in rows:
        item = dict(row)
        item["created_at"] = item["created_at"].astimezone(WITA)
        if not who.may_see_personal_data and item["recipient_phone"]:
            item["recipient_phone"] = masked(item["recipient_phone"])
        items.append(MessageOut(**item))
    return MessagePage(total=total, page=page, page_size=page_size, items=items)


@router.get("/stats/messages", tags=["figures"], summary="Messages recorded, by template")
async def message_counts(ctx: Ctx) -> dict[str, int]:
    return await ctx.queries.counts_by_template()

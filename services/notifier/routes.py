"""The notifier's HTTP API: what was said to whom, for officers and operators."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.notifier.store import MessageQueries
from shared.auth import Principal
from shared.reference.wita import WITA
from shared.web import require_role

router = APIRouter()
Reader = Annotated[Principal, Depends(require_role("officer", "operator"))]


def queries(request: Request) -> MessageQueries:
    return request.app.state.notifier_queries


class MessageOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    business_id: uuid.UUID
    template: str
    channel: str
    recipient_phone: str
    language: str
    body: str
    status: str
    created_at: datetime


class MessagePage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[MessageOut]


def _mask(phone: str) -> str:
    return phone[:5] + "*" * (len(phone) - 8) + phone[-3:]


@router.get("/messages", tags=["messages"], summary="Messages recorded for owners, newest first")
async def list_messages(
    who: Reader,
    q: Annotated[MessageQueries, Depends(queries)],
    business_id: uuid.UUID | None = None,
    template: str | None = Query(None, description="welcome, nib_issued, nib_rejected"),
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=500),
) -> MessagePage:
    total, rows = await q.search(business_id=business_id, template=template, page=page, page_size=page_size)
    items = []
    for row in rows:
        item = dict(row)
        item["created_at"] = item["created_at"].astimezone(WITA)
        if not who.may_see_personal_data:
            item["recipient_phone"] = _mask(item["recipient_phone"])
        items.append(MessageOut(**item))
    return MessagePage(total=total, page=page, page_size=page_size, items=items)


@router.get("/stats/messages", tags=["figures"], summary="Messages recorded, by template")
async def message_counts(q: Annotated[MessageQueries, Depends(queries)]) -> dict[str, int]:
    return await q.counts_by_template()

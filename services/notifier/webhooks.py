"""What gateways call: WhatsApp's verification handshake and its signed webhooks (statuses of our messages, owners'
replies), and the SMS gateway's inbound callback (owners' replies). No bearer token here: a WhatsApp call proves
itself with `X-Hub-Signature-256`, an SMS callback with the token in its URL. Anything that does not is refused
with 403 and counted; a well-proven call always gets 200 (a gateway retries anything else for days), whatever is
in it: a status for a message we do not know is recorded and ignored.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from services.notifier import delivery_outcomes
from services.notifier.channels import sms as sms_channel
from services.notifier.channels import whatsapp
from services.notifier.domain.channels import SMS, WHATSAPP
from services.notifier.routes import Ctx, NotifierContext
from shared.unit_of_work import Cause
from shared.web import PROBLEM_RESPONSES, problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])
_403 = {403: PROBLEM_RESPONSES[403]}
_NAMESPACE = uuid.UUID("6f1c2b7e-5d0a-4c59-9a43-0d2f1e9b7c31")  # reply ids: uuid5 in this namespace
_BODY = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}


class Received(BaseModel):
    statuses: int = 0
    matched: int = 0
    replies: int = 0


def _uow(ctx: NotifierContext, source: str):  # noqa: ANN202 - the context's unit of work
    return ctx.unit_of_work(Cause.request(uuid.uuid4(), source))


def _refuse(ctx: NotifierContext, source: str, why: str) -> Any:
    ctx.figures.webhooks_refused.labels(source).inc()
    log.warning("refused a %s webhook call: %s", source, why)
    return problem(403, "webhook.refused", why)


@router.get("/webhooks/whatsapp", response_class=PlainTextResponse, responses=_403,
            summary="WhatsApp's verification handshake: echoes hub.challenge when hub.verify_token matches")  # fmt: skip
async def verify_whatsapp(
    ctx: Ctx,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=50)] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=500)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=500)] = None,
) -> Any:
    expected = ctx.whatsapp_verify_token
    if not expected:
        return _refuse(ctx, WHATSAPP, "WhatsApp webhooks are not configured (NOTIFIER_WHATSAPP_VERIFY_TOKEN)")
    if mode != "subscribe" or token is None or challenge is None:
        return _refuse(ctx, WHATSAPP, "expected hub.mode=subscribe with hub.verify_token and hub.challenge")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return _refuse(ctx, WHATSAPP, "hub.verify_token does not match")
    return PlainTextResponse(challenge)


@router.post("/webhooks/whatsapp", responses=_403, openapi_extra=_BODY,
             summary="WhatsApp's statuses and owners' replies, signed with X-Hub-Signature-256")  # fmt: skip
async def whatsapp_webhook(request: Request, ctx: Ctx) -> Any:
    body = await request.body()
    if ctx.whatsapp_app_secret is None:
        return _refuse(ctx, WHATSAPP, "WhatsApp is not configured (NOTIFIER_WHATSAPP_APP_SECRET)")
    if not whatsapp.signed_by(ctx.whatsapp_app_secret, body, request.headers.get("x-hub-signature-256")):
        return _refuse(ctx, WHATSAPP, "X-Hub-Signature-256 is missing or is not the HMAC-SHA256 of this body with the "
                       "app secret")  # fmt: skip
    try:
        payload = json.loads(body)
    except ValueError:
        log.warning("a signed WhatsApp webhook whose body is not JSON was ignored")
        return Received()
    statuses, replies = whatsapp.parse_webhook(payload)
    received = Received(statuses=len(statuses), replies=len(replies))
    for report in statuses:
        status = delivery_outcomes.GatewayStatus(WHATSAPP, report.provider_id, report.status, report.error,
                                                 report.no_whatsapp, report.delivery_id)  # fmt: skip
        matched = await delivery_outcomes.record_status(status, _uow(ctx, "whatsapp"), ctx.deps)
        ctx.figures.status_reports.labels(WHATSAPP, "yes" if matched else "no").inc()
        received.matched += matched
        if not matched:
            log.info("a WhatsApp status %r for a message this notifier does not know was recorded and ignored",
                     report.status)  # fmt: skip
    for reply in replies:
        reply_id = uuid.uuid5(_NAMESPACE, f"whatsapp:{reply.provider_id or (reply.phone, reply.text)}")
        await _reply(ctx, delivery_outcomes.Reply(WHATSAPP, reply.phone, reply.text, reply_id))
    return received


@router.post("/webhooks/sms", responses=_403, openapi_extra=_BODY,
             summary="The SMS gateway's inbound callback (owners' replies); the token in the URL proves the caller")  # fmt: skip
async def sms_webhook(request: Request, ctx: Ctx, token: Annotated[str | None, Query(max_length=500)] = None) -> Any:
    expected = ctx.sms_inbound_token
    if not expected:
        return _refuse(ctx, SMS, "SMS replies are not configured (NOTIFIER_SMS_INBOUND_TOKEN)")
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        return _refuse(ctx, SMS, "the token in the URL does not match")
    fields: dict[str, Any] = {}
    if "json" in request.headers.get("content-type", ""):
        try:
            value = json.loads(await request.body())
            fields = value if isinstance(value, dict) else {}
        except ValueError:
            fields = {}
    else:
        try:
            form = await request.form(max_files=0, max_fields=50)
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        except Exception:  # noqa: BLE001 - an unreadable form is no reply
            fields = {}
    reply = sms_channel.parse_inbound(fields)
    if reply is None:
        return Received()
    # A gateway retrying its callback sends the same reply again: one confirmation. Without the gateway's id, the
    # same words from the same number within the hour are taken as that retry.
    hour = ctx.deps.clock().strftime("%Y-%m-%dT%H")
    reply_id = uuid.uuid5(_NAMESPACE, f"sms:{fields.get('id') or fields.get('messageId') or (reply.phone, reply.text, hour)}")
    await _reply(ctx, delivery_outcomes.Reply(SMS, reply.phone, reply.text, reply_id))
    return Received(replies=1)


async def _reply(ctx: NotifierContext, reply: delivery_outcomes.Reply) -> None:
    intent = await delivery_outcomes.owner_replied(reply, _uow(ctx, reply.channel), ctx.deps)
    ctx.figures.replies.labels(reply.channel, intent or "other").inc()
    if intent is None:
        log.info("an owner's %s reply that is not STOP or MULAI (or not from an Indonesian mobile) was not acted on",
                 reply.channel)  # fmt: skip

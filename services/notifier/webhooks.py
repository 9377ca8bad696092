"""What gateways and Alertmanager call: WhatsApp's verification handshake and its signed webhooks (statuses of our
messages, owners' replies), the SMS gateway's inbound callback (owners' replies), and Alertmanager's webhook (alerts
for the operators and the programme office). No user's JWT here: a WhatsApp call proves itself with
`X-Hub-Signature-256`, an SMS callback with the token in its URL, Alertmanager with its own bearer token
(`NOTIFIER_ALERTMANAGER_TOKEN`, compared in constant time). Anything that does not is refused (403; 401 when
Alertmanager's call has no bearer token at all) and counted in `berdaya_notifier_webhooks_refused_total{source}`;
a well-proven gateway call always gets 200 (a gateway retries anything else for days), whatever is in it: a status
for a message we do not know is recorded and ignored; what is not ours (a WhatsApp change for another phone number of
the Meta app, a message from a number that is not an Indonesian mobile) is skipped and counted in
`berdaya_notifier_webhook_skipped_total{source,reason}`. Alertmanager's body is checked (422 naming the field) because
it is ours to get right: its alerts are recorded in one transaction (a database outage answers 503, which
Alertmanager retries).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from services.notifier import alerts, delivery_outcomes
from services.notifier.channels import sms as sms_channel
from services.notifier.channels import whatsapp
from services.notifier.domain.alerts import MAX_ALERTS, MAX_BODY_BYTES, Alert
from services.notifier.domain.channels import SMS, WHATSAPP
from services.notifier.routes import Ctx, NotifierContext
from shared.errors import FieldError, InvalidInput
from shared.unit_of_work import Cause
from shared.web import PROBLEM_RESPONSES, problem, storable

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])
_403 = {403: PROBLEM_RESPONSES[403]}
_NAMESPACE = uuid.UUID("6f1c2b7e-5d0a-4c59-9a43-0d2f1e9b7c31")  # reply ids: uuid5 in this namespace
_BODY = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}
# Why a well-proven webhook's content was not acted on (berdaya_notifier_webhook_skipped_total{reason}).
OTHER_NUMBER, FOREIGN_SENDER = "other_phone_number", "sender_not_indonesian_mobile"


class Received(BaseModel):
    statuses: int = 0
    matched: int = 0
    replies: int = 0
    skipped: int = Field(0, description="Changes for another phone number of the Meta app, and messages from a number "
                         "that is not an Indonesian mobile: not acted on")  # fmt: skip


def _uow(ctx: NotifierContext, source: str):  # noqa: ANN202 - the context's unit of work
    return ctx.unit_of_work(Cause.request(uuid.uuid4(), source))


class RefusalLog:
    """At most one warning a minute for each source's refused calls: anyone on the internet may call the webhooks,
    and a line per refused call let them fill the disk. `berdaya_notifier_webhooks_refused_total` counts every one."""

    def __init__(self, every_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every_seconds
        self._clock = clock
        self._since: dict[str, tuple[float, int]] = {}  # source -> (when last logged, refusals not logged since)

    def refused(self, source: str, why: str) -> None:
        now = self._clock()
        logged, unlogged = self._since.get(source, (None, 0))
        if logged is not None and now - logged < self._every:
            self._since[source] = (logged, unlogged + 1)
            return
        more = f" ({unlogged} more refused since the last such line)" if unlogged else ""
        log.warning("refused a %s webhook call: %s%s", source, why, more)
        self._since[source] = (now, 0)


_REFUSALS = RefusalLog()


def _refuse(ctx: NotifierContext, source: str, why: str, status: int = 403) -> Any:
    ctx.figures.webhooks_refused.labels(source).inc()
    _REFUSALS.refused(source, why)
    return problem(status, "webhook.refused" if status == 403 else "webhook.unauthenticated", why)


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
    if ctx.whatsapp_app_secret is None or ctx.whatsapp_phone_number_id is None:
        return _refuse(ctx, WHATSAPP, "WhatsApp is not configured (NOTIFIER_WHATSAPP_APP_SECRET and "
                       "NOTIFIER_WHATSAPP_PHONE_NUMBER_ID)")  # fmt: skip
    if not whatsapp.signed_by(ctx.whatsapp_app_secret, body, request.headers.get("x-hub-signature-256")):
        return _refuse(ctx, WHATSAPP, "X-Hub-Signature-256 is missing or is not the HMAC-SHA256 of this body with the "
                       "app secret")  # fmt: skip
    try:
        payload = storable(json.loads(body))
    except (ValueError, RecursionError):  # nested deeper than any of Meta's
        log.warning("a signed WhatsApp webhook whose body is not JSON, or is nested too deeply, was ignored")
        return Received()
    # One Meta app may serve other numbers (another agency's, a test number): their events come here too.
    content = whatsapp.parse_webhook(payload, ctx.whatsapp_phone_number_id)
    received = Received(statuses=len(content.statuses), replies=len(content.replies),
                        skipped=content.other_number + content.foreign_sender)  # fmt: skip
    if content.other_number:
        _skipped(ctx, WHATSAPP, OTHER_NUMBER, content.other_number)
    if content.foreign_sender:
        _skipped(ctx, WHATSAPP, FOREIGN_SENDER, content.foreign_sender)
    for report in content.statuses:
        status = delivery_outcomes.GatewayStatus(WHATSAPP, report.provider_id, report.status, report.error,
                                                 report.no_whatsapp, report.delivery_id)  # fmt: skip
        matched = await delivery_outcomes.record_status(status, _uow(ctx, "whatsapp"), ctx.deps)
        ctx.figures.status_reports.labels(WHATSAPP, "yes" if matched else "no").inc()
        received.matched += matched
        if not matched:
            log.info("a WhatsApp status %r for a message this notifier does not know was recorded and ignored",
                     report.status)  # fmt: skip
    for reply in content.replies:
        if reply.provider_id is not None:
            reply_id = uuid.uuid5(_NAMESPACE, f"whatsapp:{reply.provider_id}")
            await _reply(ctx, delivery_outcomes.Reply(WHATSAPP, reply.phone, reply.text, reply_id,
                                                      written_at=reply.written_at))  # fmt: skip
        else:
            await _reply(ctx, _unidentified(ctx, WHATSAPP, reply))
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
            value = storable(json.loads(await request.body()))
            fields = value if isinstance(value, dict) else {}
        except (ValueError, RecursionError):  # not JSON, or nested deeper than any gateway's: no reply
            fields = {}
    else:
        try:
            form = await request.form(max_files=0, max_fields=50)
            fields = {storable(k): storable(v) for k, v in form.items() if isinstance(v, str)}
        except Exception:  # noqa: BLE001 - an unreadable form is no reply
            fields = {}
    reply = sms_channel.parse_inbound(fields)
    if reply is None:
        return Received()
    if reply.phone is None:
        _skipped(ctx, SMS, FOREIGN_SENDER)
        return Received(skipped=1)
    # A gateway retrying its callback sends the same reply again: one confirmation, and a retry never undoes what
    # the owner said since.
    gateway_id = fields.get("id") or fields.get("messageId")
    if gateway_id:
        reply_id = uuid.uuid5(_NAMESPACE, sms_channel.text_as_sent(f"sms:{gateway_id}"))
        await _reply(ctx, delivery_outcomes.Reply(SMS, reply.phone, reply.text, reply_id))
    else:
        await _reply(ctx, _unidentified(ctx, SMS, reply))
    return Received(replies=1)


def _unidentified(ctx: NotifierContext, channel: str, reply: whatsapp.InboundText) -> delivery_outcomes.Reply:
    """A reply the gateway forwarded without its own id is known by its number and words alone. Its id is theirs in
    the current window of REPEAT_WINDOW, and it carries the id the same words had in the window before: the same
    words from the same number seen in either, less than REPEAT_WINDOW ago, may be a retry (owner_replied)."""
    window = int(ctx.deps.clock().timestamp() // delivery_outcomes.REPEAT_WINDOW.total_seconds())
    # Keyed by the secret that proved the webhook: the id becomes the confirmation's event_id, which operators see
    # next to the masked number; a plain hash of (number, window, words) would give the number back in seconds.
    key = (ctx.sms_inbound_token or "").encode() if channel == SMS else (ctx.whatsapp_app_secret or b"")
    current, earlier = (_keyed_id(key, f"{channel}:{reply.phone}:{w}:{reply.text}") for w in (window, window - 1))
    return delivery_outcomes.Reply(channel, reply.phone, reply.text, current, earlier_id=earlier,
                                   written_at=reply.written_at)  # fmt: skip


def _keyed_id(key: bytes, what: str) -> uuid.UUID:
    return uuid.UUID(bytes=hmac.new(key, what.encode(), hashlib.sha256).digest()[:16], version=4)


async def _reply(ctx: NotifierContext, reply: delivery_outcomes.Reply) -> None:
    intent = await delivery_outcomes.owner_replied(reply, _uow(ctx, reply.channel), ctx.deps)
    ctx.figures.replies.labels(reply.channel, intent or "other").inc()
    if intent is None:
        log.info("an owner's %s reply that is not STOP or MULAI was not acted on", reply.channel)


def _skipped(ctx: NotifierContext, source: str, reason: str, count: int = 1) -> None:
    ctx.figures.webhook_skipped.labels(source, reason).inc(count)
    log.info("skipped %d item(s) of a %s webhook: %s", count, source, reason.replace("_", " "))


# ---------------------------------------------------------------------------------------------------------------
# Alertmanager: alerts for the operators and the programme office (deploy/prometheus/alertmanager.yml)
# ---------------------------------------------------------------------------------------------------------------

ALERTMANAGER = "alertmanager"
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LabelValue = Annotated[str, StringConstraints(max_length=4096)]
AnnotationValue = Annotated[str, StringConstraints(max_length=16384)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=100)]
Annotations = Annotated[dict[LabelName, AnnotationValue], Field(max_length=100)]
AlertStatus = Literal["firing", "resolved"]


class AlertIn(BaseModel):
    """One alert as Alertmanager's webhook sends it. Fields Alertmanager may add later are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: AlertStatus
    labels: Labels = Field(description="alertname, severity, audience and the alert's own (job, consumer, ...)")
    annotations: Annotations = Field({}, description="summary, description, runbook (or runbook_url)")
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(None, alias="endsAt", description="Year 1 while it fires")
    generator_url: str = Field("", alias="generatorURL", max_length=16384)
    fingerprint: str | None = Field(None, pattern=r"^[0-9A-Za-z]{1,64}$",
                                    description="Alertmanager's hash of the labels; derived from them when absent")  # fmt: skip

    # Times far from now are refused (or, for endsAt, read as Alertmanager's zero time): every instant kept can then
    # be shown in WITA and compared, whatever offset it was written with.
    @field_validator("starts_at")
    @classmethod
    def _plausible_start(cls, value: datetime) -> datetime:
        if not 2000 <= value.year <= 9000:
            raise ValueError("startsAt must be a time between the years 2000 and 9000")
        return value

    @field_validator("ends_at")
    @classmethod
    def _zero_or_plausible_end(cls, value: datetime | None) -> datetime | None:
        if value is None or value.year < 2000:
            return None  # "0001-01-01T00:00:00Z": Alertmanager's way of saying it has not ended
        if value.year > 9000:
            raise ValueError("endsAt must be a time before the year 9000, or Alertmanager's zero time")
        return value


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook JSON, version 4: one call per alert group and receiver, at most max_alerts alerts."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field("", alias="groupKey", max_length=16384)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0, le=10**9)
    status: AlertStatus
    receiver: str = Field(min_length=1, max_length=200, description="operators or officers")
    group_labels: Labels = Field({}, alias="groupLabels")
    common_labels: Labels = Field({}, alias="commonLabels")
    common_annotations: Annotations = Field({}, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL", max_length=2048)
    alerts: list[AlertIn] = Field(max_length=MAX_ALERTS)

    def command(self) -> alerts.AlertsReceived:
        found = tuple(Alert(a.status, a.labels, a.annotations, a.starts_at, a.ends_at, a.fingerprint) for a in self.alerts)
        return alerts.AlertsReceived(self.receiver, found, self.truncated_alerts)


class AlertsOut(BaseModel):
    audience: str = Field(description="operators or officers (the programme office), from the receiver")
    alerts: int = Field(description="Alerts in the call")
    recorded: int = Field(description="New messages: one per alert not told before")
    repeated: int = Field(description="Alerts already told in that state since that start (Alertmanager's retries and "
                          "repeat notifications): nothing new recorded")  # fmt: skip
    deliveries: int = Field(description="Deliveries planned: one per recipient of each new message")
    recipients: int = Field(description="The audience's contacts; 0: kept in the local outbox (set NOTIFIER_OPERATOR_"
                            "CONTACTS or NOTIFIER_OFFICER_CONTACTS)")  # fmt: skip


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON Schema with its $defs written in place, for the operation's requestBody."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_ALERTMANAGER_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": _inline(AlertmanagerPayload.model_json_schema(by_alias=True))}}}}  # fmt: skip
_ALERTMANAGER_ANSWERS = {status: PROBLEM_RESPONSES[status] for status in (401, 403, 413, 422, 503)}


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _field_errors(invalid: ValidationError) -> list[FieldError]:
    errors = []
    for error in invalid.errors(include_url=False, include_input=False, include_context=False)[:50]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        errors.append(FieldError(where if len(where) <= 200 else where[:199] + "…", error["type"], error["msg"]))
    return errors


@router.post("/webhooks/alertmanager", response_model=AlertsOut, responses=_ALERTMANAGER_ANSWERS,
             openapi_extra=_ALERTMANAGER_BODY,
             summary="Alertmanager's alerts (webhook JSON version 4), with Alertmanager's bearer token: one message "
             "per alert to the receiver's audience, once")  # fmt: skip
async def alertmanager_webhook(request: Request, ctx: Ctx) -> Any:
    expected = ctx.alertmanager_token
    if not expected:  # never accepted without a token: 503, and Alertmanager keeps them until one is set
        ctx.figures.webhooks_refused.labels(ALERTMANAGER).inc()
        log.warning("refused an Alertmanager webhook call: NOTIFIER_ALERTMANAGER_TOKEN is not set")
        return problem(503, "webhook.not_configured",
                       "alertmanager webhook not configured: set NOTIFIER_ALERTMANAGER_TOKEN")  # fmt: skip
    token = _bearer(request.headers.get("authorization"))
    if token is None:
        return _refuse(ctx, ALERTMANAGER, "missing bearer token: Alertmanager sends 'Authorization: Bearer <token>' "
                       "from its credentials_file (deploy/prometheus/alertmanager.yml)", status=401)  # fmt: skip
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return _refuse(ctx, ALERTMANAGER, "the bearer token is not the one set in NOTIFIER_ALERTMANAGER_TOKEN")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return problem(413, "body_too_large", f"the body is over {MAX_BODY_BYTES:,} bytes; Alertmanager sends at most "
                       "max_alerts (50) alerts a call: check its webhook_config")  # fmt: skip
    try:
        payload = await asyncio.to_thread(AlertmanagerPayload.model_validate_json, body)
    except ValidationError as invalid:
        raise InvalidInput(_field_errors(invalid)) from None
    recorded = await alerts.record_alerts(payload.command(), _uow(ctx, ALERTMANAGER), ctx.deps, ctx.alert_recipients)
    for (status, outcome), count in recorded.counts.items():
        ctx.figures.alerts.labels(recorded.audience, status, outcome).inc(count)
    return AlertsOut(audience=recorded.audience, alerts=recorded.alerts, recorded=recorded.recorded,
                     repeated=recorded.repeated, deliveries=recorded.deliveries, recipients=recorded.recipients)  # fmt: skip

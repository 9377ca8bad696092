"""WhatsApp through the official WhatsApp Business Cloud API.

Sending: `POST {base}/{version}/{phone-number-id}/messages` with `Authorization: Bearer <token>`. Every message the
notifier starts is business-initiated, so outside the 24-hour customer-service window WhatsApp accepts only approved
templates: the notifier sends every message as one approved template (`NOTIFIER_WHATSAPP_TEMPLATE`, default
`berdaya_pesan`, in Bahasa Indonesia) whose body is a single parameter `{{1}}` holding the whole text. Register that
template once in WhatsApp Manager (category UTILITY, language `id`, body `{{1}}`). A parameter holds no line break,
so the text is sent on one line.

The request carries `biz_opaque_callback_data` = `berdaya:<delivery id>`; WhatsApp echoes it in every status webhook,
so a status that arrives before the notifier recorded the message id (or after a crash lost it) still finds its
delivery. The Cloud API has no idempotency key: a resend is a second message.

Answers: 200 with `messages[0].id` (a "wamid") is accepted. An error is `{"error": {"code", "message",
"error_data": {"details"}}}`: 131026 (message undeliverable: the number has no WhatsApp) is rejected with a
fallback to SMS; rate limits (130429, 131048, 131056, 4, 80007), service errors (1, 2, 131000, 131016, 133004) and
our own credentials (190, HTTP 401/403) are transient; any other 4xx is rejected with WhatsApp's reason.

Webhooks: WhatsApp verifies the URL with `GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...` (we echo
the challenge when the token matches `NOTIFIER_WHATSAPP_VERIFY_TOKEN`), then POSTs statuses (sent, delivered, read,
failed with errors) and owners' messages, signed: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with
the app secret>`. A body whose signature does not match is refused. One Meta app may serve several business numbers,
and every number's events reach every webhook of the app: a change whose `value.metadata.phone_number_id` is not
ours (`NOTIFIER_WHATSAPP_PHONE_NUMBER_ID`) is skipped. A message's `from` is the sender's number with its country code
and no plus: only a number starting with 62 (an Indonesian mobile) can be an owner's; any other is skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.domain import phones
from services.notifier.domain.channels import (
    WHATSAPP,
    Accepted,
    Guarantee,
    Rejected,
    SendResult,
    Transient,
    classify_http,
)
from services.notifier.domain.ratelimit import RateLimit

NO_WHATSAPP = frozenset({131026, 1013})  # "Message undeliverable" (not on WhatsApp); 1013 "User is not valid" (old API)
TRANSIENT = frozenset({1, 2, 4, 190, 80007, 130429, 131000, 131016, 131048, 131056, 133004})
CALLBACK_PREFIX = "berdaya:"


class WhatsAppCloud(Gateway):
    channel = WHATSAPP
    idempotency = "none (the Cloud API has no idempotency key); biz_opaque_callback_data carries the delivery id"

    def __init__(self, *, token: SecretStr, phone_number_id: str, base_url: str, api_version: str, template: str,
                 language: str, timeout: float, guarantee: Guarantee, rate: RateLimit,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self._token = token
        self._phone_number_id = phone_number_id
        self._path = f"/{api_version}/{phone_number_id}/messages"
        self._base_url = base_url.rstrip("/")
        self._template = template
        self._language = language
        self.guarantee = guarantee
        self.rate = rate
        self._http = httpx.AsyncClient(base_url=self._base_url, transport=transport,
                                       timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))  # fmt: skip

    def describe(self) -> str:
        return (f"WhatsApp Cloud API at {self._base_url}, phone number id {phones.mask(self._phone_number_id)}, "
                f"template {self._template!r} ({self._language})")  # fmt: skip

    def request_body(self, message: OutgoingMessage) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": phones.wa_id(message.recipient),
            "type": "template",
            "template": {
                "name": self._template,
                "language": {"code": self._language},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": one_line(message.body)}]}],
            },
            "biz_opaque_callback_data": f"{CALLBACK_PREFIX}{message.delivery_id}",
        }

    async def send(self, message: OutgoingMessage) -> SendResult:
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        try:
            response = await self._http.post(self._path, json=self.request_body(message), headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Transient(f"cannot reach the Cloud API: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            return Transient(f"no answer from the Cloud API in time: {type(exc).__name__}", ambiguous=True)
        except httpx.HTTPError as exc:
            return Transient(f"the connection to the Cloud API broke: {type(exc).__name__}", ambiguous=True)
        return interpret(response.status_code, _json(response), _retry_after(response))

    async def close(self) -> None:
        await self._http.aclose()


def interpret(status: int, body: dict[str, Any], retry_after: float | None = None) -> SendResult:
    """The Cloud API's answer to one send."""
    if 200 <= status < 300:
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        wamid = messages[0].get("id") if messages and isinstance(messages[0], dict) else None
        if not isinstance(wamid, str) or not wamid:
            return Transient("the Cloud API accepted the request but named no message", ambiguous=True)
        return Accepted(wamid[:300])
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = error.get("code")
    details = error.get("error_data", {}).get("details") if isinstance(error.get("error_data"), dict) else None
    reason = phones.redact(" - ".join(str(p) for p in (code, error.get("message"), details) if p) or "no reason given")[:500]
    if code in NO_WHATSAPP:
        return Rejected(f"WhatsApp: {reason}", str(code), no_whatsapp=True)
    if code in TRANSIENT or status >= 500:
        return Transient(f"WhatsApp HTTP {status}: {reason}", retry_after)
    return classify_http(status, f"WhatsApp: {reason}", retry_after)


def one_line(text: str) -> str:
    """A template parameter may hold no newline or tab, nor more than four spaces in a row."""
    return " ".join(text.split())


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------------------------


def signature(app_secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


def signed_by(app_secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `X-Hub-Signature-256` is the HMAC-SHA256 of the raw body with the app secret (compared in constant time)."""
    if not header or not app_secret:
        return False
    return hmac.compare_digest(signature(app_secret, body).encode(), header.strip().encode("ascii", "replace"))


@dataclass(frozen=True, slots=True)
class StatusReport:
    provider_id: str
    status: str  # sent | delivered | read | failed | anything newer WhatsApp adds
    error: str | None = None
    error_code: int | None = None
    delivery_id: uuid.UUID | None = None  # from biz_opaque_callback_data

    @property
    def no_whatsapp(self) -> bool:
        return self.error_code in NO_WHATSAPP


@dataclass(frozen=True, slots=True)
class InboundText:
    phone: str | None  # +62..., None when it is not an Indonesian mobile
    text: str
    provider_id: str | None = None
    written_at: datetime | None = None  # when the owner sent it, where the gateway says


@dataclass(slots=True)
class WebhookContent:
    """What a webhook holds for us, and how much of it was skipped as not ours."""

    statuses: list[StatusReport] = field(default_factory=list)
    replies: list[InboundText] = field(default_factory=list)
    other_number: int = 0  # changes for another phone number of the Meta app
    foreign_sender: int = 0  # text messages from a number that is not an Indonesian mobile


def parse_webhook(payload: Any, phone_number_id: str | None = None) -> WebhookContent:
    """Statuses and owners' text messages in a `whatsapp_business_account` webhook; anything else is skipped. Given
    our phone number id, a change for another number (or naming none) is skipped and counted."""
    found = WebhookContent()
    if not isinstance(payload, dict):
        return found
    for entry in _list(payload.get("entry")):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            if phone_number_id is not None and _phone_number_id(value) != phone_number_id:
                found.other_number += 1
                continue
            for status in _list(value.get("statuses")):
                report = _status(status)
                if report:
                    found.statuses.append(report)
            for message in _list(value.get("messages")):
                text = _inbound(message)
                if text is None:
                    continue
                if text.phone is None:
                    found.foreign_sender += 1
                else:
                    found.replies.append(text)
    return found


def _phone_number_id(value: dict[str, Any]) -> str | None:
    metadata = value.get("metadata")
    found = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return found if isinstance(found, str) else None


def _list(value: Any) -> list[Any]:
    return value[:1000] if isinstance(value, list) else []


def _status(raw: Any) -> StatusReport | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("status"), str):
        return None
    errors = [e for e in _list(raw.get("errors")) if isinstance(e, dict)]
    error, code = None, None
    if errors:
        first = errors[0]
        code = first.get("code") if isinstance(first.get("code"), int) else None
        details = first.get("error_data", {}).get("details") if isinstance(first.get("error_data"), dict) else None
        error = phones.redact(" - ".join(str(p) for p in (code, first.get("title") or first.get("message"), details) if p))[:500]
    return StatusReport(raw["id"][:300], raw["status"][:40], error, code, _our_delivery(raw.get("biz_opaque_callback_data")))


def _our_delivery(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str) or not value.startswith(CALLBACK_PREFIX):
        return None
    try:
        return uuid.UUID(value[len(CALLBACK_PREFIX):])
    except ValueError:
        return None


def _inbound(raw: Any) -> InboundText | None:
    if not isinstance(raw, dict) or raw.get("type") != "text" or not isinstance(raw.get("from"), str):
        return None
    text = raw.get("text", {}).get("body") if isinstance(raw.get("text"), dict) else None
    if not isinstance(text, str):
        return None
    message_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    return InboundText(phones.from_wa_id(raw["from"]), text[:1000], message_id, _sent_at(raw.get("timestamp")))


def _sent_at(value: Any) -> datetime | None:
    """WhatsApp's `timestamp`: Unix seconds, as a string. Anything else (or a time no phone could have sent at) is
    no time at all: the reply then counts from when it was received."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None

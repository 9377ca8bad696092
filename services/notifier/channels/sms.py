"""SMS through an Indonesian HTTP gateway: Zenziva's documented API.

Zenziva (https://www.zenziva.id, console API): `POST https://console.zenziva.net/reguler/api/sendsms/` with the form
fields `userkey`, `passkey`, `to` (08... or 62...) and `message`. It reaches Indonesian numbers: a recipient that is
not an Indonesian mobile (+62...) is rejected before any call, with that reason. It answers HTTP 200 with JSON
`{"messageId": "...", "to": "...", "status": "1", "text": "Success"}`, or `"status": "0"` and the reason in `text`
(a wrong userkey/passkey, no balance left, an invalid destination number). Zenziva offers no idempotency key and no
delivery report on this API, so an SMS stays `sent` once the gateway took it.

How the notifier reads an answer: status "1" is accepted; status "0" about our account (key, balance, quota) is
transient (the operator must act; the message is kept and retried with backoff, never lost); status "0" about the
number or the text is rejected with Zenziva's reason; 5xx, timeouts and a refused connection are transient.

Replies (STOP / BERHENTI, MULAI / START) reach the notifier when the operator configures the gateway's inbound
forwarding to `POST /webhooks/sms?token=<NOTIFIER_SMS_INBOUND_TOKEN>` with the sender and the text as form or JSON
fields (`from`/`nohp`/`sender` and `message`/`pesan`/`text`). SMS gateways do not sign their callbacks, so the
shared token in the URL is what proves the caller. The sender counts as an owner's number only written as 08...,
62... or +62...; any other (another country's, or digits that merely start with 8) is no one's.

A second gateway is one more `SmsGateway`: its request in `send` and its answer read into Accepted / Rejected /
Transient; nothing else in the notifier changes (see `build_sms_gateway` in services/notifier/bootstrap.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.channels.whatsapp import InboundText
from services.notifier.domain import phones
from services.notifier.domain.channels import SMS, Accepted, Guarantee, Rejected, SendResult, Transient, classify_http
from services.notifier.domain.ratelimit import RateLimit

# A status "0" whose text names our account, not the message: retried, for the operator to fix.
_ACCOUNT_TROUBLE = re.compile(r"userkey|passkey|saldo|balance|kuota|quota|expired|kadaluarsa|kedaluwarsa|suspend|"
                              r"ip address|akses|access", re.IGNORECASE)  # fmt: skip


class SmsGateway(Gateway):
    channel = SMS


class Zenziva(SmsGateway):
    idempotency = "none (Zenziva has no idempotency key)"

    def __init__(self, *, userkey: SecretStr, passkey: SecretStr, base_url: str, timeout: float, guarantee: Guarantee,
                 rate: RateLimit, transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self._userkey = userkey
        self._passkey = passkey
        self._base_url = base_url.rstrip("/")
        self.guarantee = guarantee
        self.rate = rate
        self._http = httpx.AsyncClient(base_url=self._base_url, transport=transport,
                                       timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))  # fmt: skip

    def describe(self) -> str:
        return f"Zenziva SMS at {self._base_url}"

    async def send(self, message: OutgoingMessage) -> SendResult:
        to = phones.sms_number(message.recipient)
        if to is None:
            return Rejected(f"SMS reaches Indonesian mobiles (+62...) only, and {phones.mask(message.recipient)} "
                            "is not one: reach it by WhatsApp or give an email address instead",
                            "not_indonesian")  # fmt: skip
        form = {"userkey": self._userkey.get_secret_value(), "passkey": self._passkey.get_secret_value(),
                "to": to, "message": message.body}  # fmt: skip
        try:
            response = await self._http.post("/reguler/api/sendsms/", data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Transient(f"cannot reach Zenziva: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            return Transient(f"no answer from Zenziva in time: {type(exc).__name__}", ambiguous=True)
        except httpx.HTTPError as exc:
            return Transient(f"the connection to Zenziva broke: {type(exc).__name__}", ambiguous=True)
        try:
            body = response.json()
        except ValueError:
            body = None
        return interpret(response.status_code, body if isinstance(body, dict) else None)

    async def close(self) -> None:
        await self._http.aclose()


def interpret(status: int, body: dict[str, Any] | None) -> SendResult:
    if status >= 300:
        return classify_http(status, "Zenziva") if status < 500 else Transient(f"Zenziva HTTP {status}")
    if body is None:
        return Transient("Zenziva answered without JSON", ambiguous=True)
    text = phones.redact(str(body.get("text") or "no reason given"))[:300]
    if str(body.get("status")) == "1":
        message_id = body.get("messageId")
        return Accepted(str(message_id)[:300] if message_id not in (None, "") else None)
    if _ACCOUNT_TROUBLE.search(text):
        return Transient(f"Zenziva refused our account: {text}")
    return Rejected(f"Zenziva: {text}", str(body.get("status")))


_FROM = ("from", "nohp", "sender", "msisdn", "phone")
_TEXT = ("message", "pesan", "text", "body")


def parse_inbound(fields: Mapping[str, Any]) -> InboundText | None:
    """An owner's SMS reply, as the gateway forwards it; its phone is None unless the sender is written as an
    Indonesian mobile (08..., 62..., +62...). A sender sent as a JSON number (6281234567890) is read as its digits."""
    sender = next((str(v) for k in _FROM if isinstance(v := fields.get(k), str | int) and not isinstance(v, bool)),
                  None)  # fmt: skip
    text = next((fields[k] for k in _TEXT if isinstance(fields.get(k), str)), None)
    if sender is None or text is None:
        return None
    return InboundText(phones.normalise(sender), text_as_sent(text[:1000]))


def text_as_sent(text: str) -> str:
    """The text with any half of a surrogate pair (a long UCS-2 SMS split inside an emoji, sent as JSON's \\ud83d)
    as U+FFFD: Python could not encode it, nor PostgreSQL store it, and the gateway would retry the reply for ever."""
    return _HALF_A_PAIR.sub("\ufffd", text)


_HALF_A_PAIR = re.compile("[\ud800-\udfff]")

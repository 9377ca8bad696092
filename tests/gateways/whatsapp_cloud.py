"""A local WhatsApp Business Cloud API: `POST /{version}/{phone-number-id}/messages` as Meta documents it (bearer
token, template messages, `{"messages": [{"id": "wamid..."}]}` or `{"error": {...}}`), and the webhooks it posts back
to the business, signed with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret): message
statuses (sent, delivered, read, failed with errors) and users' text messages.

Behaviour per recipient (the `to` digits, e.g. "6281234567890"):
- `no_whatsapp`: accepted, then a `failed` status with error 131026 (message undeliverable), as the real API does for
  a number that has no WhatsApp;
- `refused`: answered 400 with error 131009 (parameter value is not valid) and WhatsApp's details;
- `failing[to] = n`: answered 500 with error 131000 (something went wrong) n times, then accepted;
- `slow[to] = seconds`: the answer waits that long (past the client's timeout) and is then accepted.
`auto_statuses` (e.g. ["sent", "delivered"]) are posted to `webhook_url` after each accepted message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class SentMessage:
    to: str
    template: str
    language: str
    text: str
    callback: str | None
    wamid: str
    phone_number_id: str


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _error(status: int, code: int, message: str, details: str | None = None, kind: str = "OAuthException") -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": uuid.uuid4().hex[:20]}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return JSONResponse({"error": error}, status_code=status)


@dataclass
class CloudApi:
    token: str = "test-access-token"
    phone_number_id: str = "106540352242922"
    app_secret: str = "test-app-secret"
    waba_id: str = "102290129340398"
    webhook_url: str | None = None
    auto_statuses: list[str] = field(default_factory=list)
    no_whatsapp: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    failing: dict[str, int] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    # Numbers whose send the API takes and reports at once, then answers only this many seconds later.
    answers_late: dict[str, float] = field(default_factory=dict)
    sent: list[SentMessage] = field(default_factory=list)
    requests: int = 0
    webhook_answers: list[int] = field(default_factory=list)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{version}/{phone_number_id}/messages", self._send, methods=["POST"])])

    def to(self, wa_id: str) -> list[SentMessage]:
        return [m for m in self.sent if m.to == wa_id]

    async def _send(self, request: Request) -> JSONResponse:
        self.requests += 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.path_params["phone_number_id"] != self.phone_number_id:
            return _error(400, 100, f"Unsupported post request. Object with ID '{request.path_params['phone_number_id']}'"
                          " does not exist", kind="GraphMethodException")  # fmt: skip
        try:
            body = json.loads(await request.body())
            to = body["to"]
            template = body["template"]
            assert body["messaging_product"] == "whatsapp" and body["type"] == "template" and to.isdigit()
            text = template["components"][0]["parameters"][0]["text"]
            assert "\n" not in text and "\t" not in text
            name, language = template["name"], template["language"]["code"]
        except (ValueError, KeyError, IndexError, TypeError, AssertionError, AttributeError):
            return _error(400, 100, "(#100) Invalid parameter")
        if to in self.slow:
            await asyncio.sleep(self.slow[to])
        if self.failing.get(to, 0) > 0:
            self.failing[to] -= 1
            return _error(500, 131000, "Something went wrong", "Message failed to send because of an unknown error.")
        if to in self.refused:
            return _error(400, 131009, "(#131009) Parameter value is not valid",
                          f"Recipient {to} is not a valid WhatsApp user phone number")  # fmt: skip
        wamid = f"wamid.{uuid.uuid4().hex.upper()}"
        self.sent.append(SentMessage(to, name, language, text, body.get("biz_opaque_callback_data"), wamid,
                                     self.phone_number_id))  # fmt: skip
        statuses = [("failed", [{"code": 131026, "title": "Message undeliverable",
                                 "message": "Message undeliverable",
                                 "error_data": {"details": "Message Undeliverable."}}])] if to in self.no_whatsapp \
            else [(s, None) for s in self.auto_statuses]  # fmt: skip
        if statuses and self.webhook_url and to in self.answers_late:
            await self._report(wamid, to, body.get("biz_opaque_callback_data"), statuses)
            await asyncio.sleep(self.answers_late[to])
        elif statuses and self.webhook_url:
            task = asyncio.create_task(self._report(wamid, to, body.get("biz_opaque_callback_data"), statuses))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": wamid, "message_status": "accepted"}]})  # fmt: skip

    async def _report(self, wamid: str, to: str, callback: str | None, statuses: list[tuple[str, Any]]) -> None:
        await asyncio.sleep(0.05)  # the real API answers first, reports after
        for status, errors in statuses:
            await self.post_status(wamid, to, status, errors=errors, callback=callback)

    # --- webhooks ------------------------------------------------------------------------------------------

    def status_payload(self, wamid: str, to: str, status: str, *, errors: Any = None, callback: str | None = None) -> dict:
        entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())), "recipient_id": to}
        if callback:
            entry["biz_opaque_callback_data"] = callback
        if errors:
            entry["errors"] = errors
        elif status in ("sent", "delivered", "read"):
            entry["conversation"] = {"id": uuid.uuid4().hex, "origin": {"type": "utility"}}
            entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
        return self._envelope({"statuses": [entry]})

    def reply_payload(self, from_wa_id: str, text: str, *, message_id: str | None = None) -> dict:
        return self._envelope({
            "contacts": [{"profile": {"name": "Pemilik Usaha"}, "wa_id": from_wa_id}],
            "messages": [{"from": from_wa_id, "id": message_id or f"wamid.{uuid.uuid4().hex.upper()}",
                          "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}],
        })  # fmt: skip

    def _envelope(self, value: dict) -> dict:
        value = {"messaging_product": "whatsapp",
                 "metadata": {"display_phone_number": "6281100000000", "phone_number_id": self.phone_number_id},
                 **value}  # fmt: skip
        return {"object": "whatsapp_business_account",
                "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": "messages"}]}]}  # fmt: skip

    async def post(self, payload: dict, *, secret: str | None = None, url: str | None = None) -> httpx.Response:
        """POST a webhook as Meta does: the raw JSON body, signed with the app secret (or `secret`, to forge one)."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret or self.app_secret, body)}
        target = url or self.webhook_url
        assert target, "set webhook_url first"
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(target, content=body, headers=headers)
        self.webhook_answers.append(response.status_code)
        return response

    async def post_status(self, wamid: str, to: str, status: str, *, errors: Any = None, callback: str | None = None,
                          secret: str | None = None) -> httpx.Response:  # fmt: skip
        return await self.post(self.status_payload(wamid, to, status, errors=errors, callback=callback), secret=secret)

    async def post_reply(self, from_wa_id: str, text: str) -> httpx.Response:
        return await self.post(self.reply_payload(from_wa_id, text))

    async def settle(self) -> None:
        """Wait until every automatic status webhook has been posted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

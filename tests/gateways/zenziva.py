"""A local Zenziva SMS API: `POST /reguler/api/sendsms/` with the form fields userkey, passkey, to and message,
answered HTTP 200 with `{"messageId", "to", "status": "1", "text": "Success"}` or `"status": "0"` and the reason, as
Zenziva's console API does; and the inbound-reply callback a gateway forwards to the notifier.

Behaviour per recipient (`to` as sent, e.g. "081234567890"): `invalid` numbers get status "0" "Nomor tujuan tidak
valid"; `failing[to] = n` answers HTTP 503 n times; `slow[to] = seconds` delays the answer. `no_balance` makes every
send answer "Saldo tidak mencukupi".
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class SentSms:
    to: str
    message: str
    message_id: str


@dataclass
class ZenzivaApi:
    userkey: str = "test-userkey"
    passkey: str = "test-passkey"
    invalid: set[str] = field(default_factory=set)
    failing: dict[str, int] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    no_balance: bool = False
    sent: list[SentSms] = field(default_factory=list)
    requests: int = 0

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/reguler/api/sendsms/", self._send, methods=["POST"])])

    def to(self, number: str) -> list[SentSms]:
        return [s for s in self.sent if s.to == number]

    async def _send(self, request: Request) -> Response:
        self.requests += 1
        form = await request.form()
        to, message = str(form.get("to", "")), str(form.get("message", ""))
        if to in self.slow:
            await asyncio.sleep(self.slow[to])
        if self.failing.get(to, 0) > 0:
            self.failing[to] -= 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        if form.get("userkey") != self.userkey or form.get("passkey") != self.passkey:
            return JSONResponse({"status": "0", "text": "Userkey / Passkey Salah"})
        if self.no_balance:
            return JSONResponse({"status": "0", "text": "Saldo tidak mencukupi"})
        if not to.isdigit() or to in self.invalid:
            return JSONResponse({"to": to, "status": "0", "text": "Nomor tujuan tidak valid"})
        if not message:
            return JSONResponse({"to": to, "status": "0", "text": "Pesan tidak boleh kosong"})
        message_id = str(uuid.uuid4().int)[:10]
        self.sent.append(SentSms(to, message, message_id))
        return JSONResponse({"messageId": message_id, "to": to, "status": "1", "text": "Success"})

    @staticmethod
    async def forward_reply(url: str, sender: str, text: str) -> httpx.Response:
        """What the gateway's inbound forwarding posts when an owner replies by SMS."""
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(url, data={"from": sender, "message": text})

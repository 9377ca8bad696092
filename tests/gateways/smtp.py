"""A local SMTP server (aiosmtpd) that keeps every message it accepts, and refuses the recipients it is told to:
`rejected` addresses get 550 (no such mailbox), `deferred` ones 451 (try again later)."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from berdaya.stack.process import free_port


@dataclass
class SmtpReceived:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    rejected: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    received: list[SmtpReceived] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:  # noqa: N802
        if address in self.rejected:
            return "550 5.1.1 No such mailbox here"
        if address in self.deferred:
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(SmtpReceived(envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[SmtpReceived]:
        return [r for r in self.received if address in r.recipients]


class LocalSmtp:
    """The sink on a free port of 127.0.0.1, in a thread of its own (aiosmtpd's Controller)."""

    def __init__(self, sink: SmtpSink | None = None) -> None:
        self.sink = sink or SmtpSink()
        self.port = free_port()
        self._controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> LocalSmtp:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

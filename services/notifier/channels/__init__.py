"""The gateways behind one interface: each takes one delivery and answers Accepted, Rejected or Transient
(domain/channels.py); none ever raises for what a gateway says or for the network.

- whatsapp.py: the WhatsApp Business Cloud API (Graph API), its signed webhooks;
- sms.py: Zenziva's SMS API (a second Indonesian SMS gateway is one more `SmsGateway` subclass);
- email.py: SMTP with aiosmtplib;
- local.py: the local outbox's files (the local channel itself is a table, written in the worker's transaction).

A gateway's settings are secrets (SecretStr); `describe()` says what it is without them, for the start-up log and
`GET /channels`.
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass

from services.notifier.domain.channels import AT_MOST_ONCE, Guarantee, SendResult
from services.notifier.domain.ratelimit import RateLimit


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    delivery_id: uuid.UUID
    attempt: int
    recipient: str  # +62... for phones, an address for email
    body: str
    subject: str | None = None
    template: str = ""


class Gateway(abc.ABC):
    channel: str
    guarantee: Guarantee = AT_MOST_ONCE
    rate: RateLimit = RateLimit(rate=10, burst=10)
    idempotency: str = "none"  # what the gateway offers to recognise a resend

    @abc.abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """One attempt; never raises for a gateway's answer or a network failure."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What this gateway is, without any secret."""

    async def close(self) -> None:
        """Release connections."""

"""Who the notifier writes to and what it recorded: contacts kept from registry events, and messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Contact:
    business_id: uuid.UUID
    business_version: int
    business_name: str
    phone: str
    kecamatan: str
    kelurahan: str
    status: str


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    event_id: uuid.UUID
    business_id: uuid.UUID
    template: str
    channel: str
    recipient_phone: str | None  # None while an owner's contact has not reached the notifier yet
    body: str
    created_at: datetime
    audience: str = "owner"  # owner | officers
    kecamatan_code: str | None = None  # the officers' kecamatan


def compose(
    template: str, body: str, business_id: uuid.UUID, phone: str | None, event_id: uuid.UUID, message_id: uuid.UUID,
    now: datetime,
) -> Message:
    return Message(message_id, event_id, business_id, template, "whatsapp", phone, body, now)


def to_officers(template: str, body: str, business_id: uuid.UUID, kecamatan_code: str, event_id: uuid.UUID,
                message_id: uuid.UUID, now: datetime) -> Message:  # fmt: skip
    return Message(message_id, event_id, business_id, template, "officers", None, body, now, "officers", kecamatan_code)

"""Who the notifier writes to and what it recorded: contacts kept from registry events, and messages.

A message is what one event (or a sweep, for reminders and digests) says to one audience: an owner, the officers of
a kecamatan, or a sponsor; or what one of Alertmanager's alerts says to the operators or the programme office's
officers (domain/alerts.py). It is recorded once per (event, template), in the transaction that consumes the event;
each of its deliveries (domain/delivery.py) is one recipient on one channel.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

OWNER, OFFICERS, SPONSOR, OPERATORS = "owner", "officers", "sponsor", "operators"


@dataclass(frozen=True, slots=True)
class Contact:
    business_id: uuid.UUID
    business_version: int
    business_name: str
    phone: str
    kecamatan: str
    kelurahan: str
    status: str
    kecamatan_code: str | None = None  # Kemendagri code; None for contacts kept before it was


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    event_id: uuid.UUID
    business_id: uuid.UUID | None  # None for a sponsor's digest
    template: str
    channel: str  # the channel of its deliveries once planned; "none" while it waits for the owner's contact
    recipient_phone: str | None  # None while an owner's contact has not reached the notifier yet
    body: str
    created_at: datetime
    audience: str = OWNER  # owner | officers | sponsor | operators
    kecamatan_code: str | None = None  # the officers' kecamatan
    sponsor_id: uuid.UUID | None = None  # the sponsor a digest goes to
    offer_id: uuid.UUID | None = None  # the funding offer it is about: its reminders stop once it is answered
    deadline: datetime | None = None  # when what it announces stops being useful (an offer's expiry)
    subject: str | None = None  # for email


def compose(
    template: str, body: str, business_id: uuid.UUID, phone: str | None, event_id: uuid.UUID, message_id: uuid.UUID,
    now: datetime, *, offer_id: uuid.UUID | None = None, deadline: datetime | None = None,
) -> Message:  # fmt: skip
    return Message(message_id, event_id, business_id, template, "none", phone, body, now, offer_id=offer_id,
                   deadline=deadline)  # fmt: skip


def to_officers(template: str, body: str, business_id: uuid.UUID | None, kecamatan_code: str, event_id: uuid.UUID,
                message_id: uuid.UUID, now: datetime, *, subject: str | None = None,
                offer_id: uuid.UUID | None = None) -> Message:  # fmt: skip
    return Message(message_id, event_id, business_id, template, "none", None, body, now, OFFICERS, kecamatan_code,
                   offer_id=offer_id, subject=subject)  # fmt: skip


def to_sponsor(template: str, body: str, sponsor_id: uuid.UUID, event_id: uuid.UUID, message_id: uuid.UUID,
               now: datetime, *, subject: str) -> Message:  # fmt: skip
    return Message(message_id, event_id, None, template, "none", None, body, now, SPONSOR, sponsor_id=sponsor_id,
                   subject=subject)  # fmt: skip

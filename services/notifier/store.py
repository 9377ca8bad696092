"""The notifier's SQL for changes: contacts kept from registry events, the messages recorded, and the unit of work."""

from __future__ import annotations

import abc
import uuid

import asyncpg

from services.notifier.domain.messages import Contact, Message
from shared.unit_of_work import PgUnitOfWork, UnitOfWork


class NotifierStore(abc.ABC):
    @abc.abstractmethod
    async def contact(self, business_id: uuid.UUID) -> Contact | None: ...

    @abc.abstractmethod
    async def save_contact(self, contact: Contact) -> None:
        """Keep the newest version only: an older snapshot arriving late never overwrites a newer one."""

    @abc.abstractmethod
    async def add_message(self, message: Message) -> bool:
        """False if this event already produced this message."""

    @abc.abstractmethod
    async def address_waiting(self, contact: Contact) -> int:
        """Give the owner's phone to messages that were waiting for it; returns how many."""


class NotifierUnitOfWork(UnitOfWork[object]):
    """The notifier publishes no events; its unit of work is the transaction its handlers write in."""

    store: NotifierStore


class PgNotifierStore(NotifierStore):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def contact(self, business_id: uuid.UUID) -> Contact | None:
        row = await self._conn.fetchrow(
            "SELECT business_id, business_version, business_name, phone, kecamatan, kelurahan, status"
            " FROM contact WHERE business_id = $1",
            business_id,
        )
        return Contact(**dict(row)) if row else None

    async def save_contact(self, contact: Contact) -> None:
        await self._conn.execute(
            """INSERT INTO contact (business_id, business_version, business_name, phone, kecamatan, kelurahan, status)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (business_id) DO UPDATE SET
                   business_version = excluded.business_version, business_name = excluded.business_name,
                   phone = excluded.phone, kecamatan = excluded.kecamatan, kelurahan = excluded.kelurahan,
                   status = excluded.status, updated_at = now()
               WHERE contact.business_version < excluded.business_version""",
            contact.business_id, contact.business_version, contact.business_name, contact.phone, contact.kecamatan,
            contact.kelurahan, contact.status,
        )  # fmt: skip

    async def add_message(self, message: Message) -> bool:
        status = await self._conn.execute(
            """INSERT INTO message (id, event_id, business_id, template, channel, recipient_phone, body, created_at,
                   audience, kecamatan_code)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id, template) DO NOTHING""",
            message.id, message.event_id, message.business_id, message.template, message.channel,
            message.recipient_phone, message.body, message.created_at, message.audience, message.kecamatan_code,
        )  # fmt: skip
        return status == "INSERT 0 1"

    async def address_waiting(self, contact: Contact) -> int:
        status = await self._conn.execute(
            "UPDATE message SET recipient_phone = $2 WHERE business_id = $1 AND recipient_phone IS NULL"
            " AND audience = 'owner'",
            contact.business_id, contact.phone,
        )  # fmt: skip
        return int(status.split()[-1])


class PgNotifierUnitOfWork(PgUnitOfWork[object], NotifierUnitOfWork):
    def bind(self, conn: asyncpg.Connection) -> None:
        self.store = PgNotifierStore(conn)

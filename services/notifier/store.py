"""The notifier's SQL: contacts kept from registry events, and the messages recorded for owners."""

from __future__ import annotations

import abc
import uuid

import asyncpg

from services.notifier.domain import Contact, Message


class NotifierStore(abc.ABC):
    @abc.abstractmethod
    async def contact(self, business_id: uuid.UUID) -> Contact | None: ...

    @abc.abstractmethod
    async def save_contact(self, contact: Contact) -> None:
        """Keep the newest version only: an older snapshot arriving late never overwrites a newer one."""

    @abc.abstractmethod
    async def add_message(self, message: Message) -> bool:
        """False if this event already produced this message."""


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
            """INSERT INTO message (id, event_id, business_id, template, channel, recipient_phone, body, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id, template) DO NOTHING""",
            message.id, message.event_id, message.business_id, message.template, message.channel,
            message.recipient_phone, message.body, message.created_at,
        )  # fmt: skip
        return status == "INSERT 0 1"


class MessageQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def search(
        self, *, business_id: uuid.UUID | None, template: str | None, page: int, page_size: int
    ) -> tuple[int, list[asyncpg.Record]]:
        clauses, args = [], []
        if business_id:
            args.append(business_id)
            clauses.append(f"business_id = ${len(args)}")
        if template:
            args.append(template)
            clauses.append(f"template = ${len(args)}")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        async with self._pool.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM message" + where, *args)
            rows = await conn.fetch(
                "SELECT id, event_id, business_id, template, channel, recipient_phone, language, body, status, created_at"
                f" FROM message{where} ORDER BY created_at DESC, id LIMIT {page_size} OFFSET {(page - 1) * page_size}",
                *args,
            )
        return total, rows

    async def counts_by_template(self) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT template, count(*) FROM message GROUP BY template")
        return {r[0]: r[1] for r in rows}

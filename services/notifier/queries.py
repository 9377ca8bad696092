"""The notifier's read side: what was said to whom, how each delivery went, counts, and the directories."""

from __future__ import annotations

import uuid
from collections import defaultdict

import asyncpg

from shared.db import Database, Where

MESSAGE_COLUMNS = ("id, event_id, business_id, template, channel, recipient_phone, language, body, status, created_at,"
                   " audience, kecamatan_code, sponsor_id, offer_id, subject, updated_at,"
                   # Where the business is: an owner's message names no kecamatan; who may see its phone depends on it.
                   " (SELECT c.kecamatan_code FROM contact c WHERE c.business_id = message.business_id)"
                   " AS business_kecamatan")  # fmt: skip
DELIVERY_COLUMNS = ("id, message_id, channel, recipient, status, not_before, attempts, provider_id, reason, fallback_of,"
                    " created_at, updated_at, sent_at, delivered_at, read_at")  # fmt: skip


class MessageQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(
        self, *, business_id: uuid.UUID | None, template: str | None, status: str | None = None,
        channel: str | None = None, audience: str | None = None, page: int, page_size: int,
    ) -> tuple[int, list[asyncpg.Record], dict[uuid.UUID, list[asyncpg.Record]]]:  # fmt: skip
        where = (Where().add_if(business_id, "business_id = {}").add_if(template, "template = {}")
                 .add_if(status, "status = {}").add_if(audience, "audience = {}"))  # fmt: skip
        if channel is not None:
            where.add("id IN (SELECT message_id FROM delivery WHERE channel = {})", channel)
        async with self._db.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM message" + where.sql, *where.args)
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM message{where.sql} ORDER BY created_at DESC, id"
                f" LIMIT {page_size} OFFSET {(page - 1) * page_size}",
                *where.args,
            )
            deliveries = await self._deliveries(conn, [r["id"] for r in rows])
        return total, rows, deliveries

    async def message(self, message_id: uuid.UUID) -> tuple[asyncpg.Record | None, list[asyncpg.Record], list[asyncpg.Record]]:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM message WHERE id = $1", message_id)
            if row is None:
                return None, [], []
            deliveries = (await self._deliveries(conn, [message_id])).get(message_id, [])
            attempts = await conn.fetch(
                "SELECT delivery_id, attempt, holder, started_at, finished_at, outcome, detail FROM send_attempt"
                " WHERE delivery_id = ANY($1::uuid[]) ORDER BY started_at, attempt",
                [d["id"] for d in deliveries],
            )  # fmt: skip
        return row, deliveries, attempts

    @staticmethod
    async def _deliveries(conn: asyncpg.Connection, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[asyncpg.Record]]:
        found: dict[uuid.UUID, list[asyncpg.Record]] = defaultdict(list)
        if message_ids:
            for row in await conn.fetch(
                f"SELECT {DELIVERY_COLUMNS} FROM delivery WHERE message_id = ANY($1::uuid[]) ORDER BY created_at, id",
                message_ids,
            ):
                found[row["message_id"]].append(row)
        return found

    async def counts_by_template(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT template, count(*) FROM message GROUP BY template")
        return {r[0]: r[1] for r in rows}

    async def delivery_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for row in await self._db.fetch("SELECT channel, status, count(*) AS n FROM delivery GROUP BY 1, 2 ORDER BY 1, 2"):
            counts[row["channel"]][row["status"]] = row["n"]
        return dict(counts)

    async def preference(self, phone: str) -> asyncpg.Record | None:
        return await self._db.fetchrow(
            "SELECT channel, language, opted_out_at, no_whatsapp_since, updated_at FROM recipient WHERE phone = $1", phone
        )

    async def contact_of(self, business_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._db.fetchrow("SELECT phone, kecamatan_code FROM contact WHERE business_id = $1", business_id)

    async def officers(self, page: int, page_size: int) -> tuple[int, list[asyncpg.Record]]:
        total = await self._db.fetchval("SELECT count(*) FROM officer")
        rows = await self._db.fetch(
            f"SELECT id, email, name, kecamatan_codes, updated_at FROM officer ORDER BY email"
            f" LIMIT {page_size} OFFSET {(page - 1) * page_size}"
        )
        return total, rows

    async def sponsor_contacts(self, page: int, page_size: int) -> tuple[int, list[asyncpg.Record]]:
        total = await self._db.fetchval("SELECT count(*) FROM sponsor_contact")
        rows = await self._db.fetch(
            f"SELECT sponsor_id, email, name, updated_at FROM sponsor_contact ORDER BY sponsor_id"
            f" LIMIT {page_size} OFFSET {(page - 1) * page_size}"
        )
        return total, rows

    async def prune_status_reports(self, older_than_days: float) -> int:
        status = await self._db.execute(
            "DELETE FROM status_report WHERE received_at < now() - make_interval(secs => $1)", older_than_days * 86400
        )
        return int(status.split()[-1])

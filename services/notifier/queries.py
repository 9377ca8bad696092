"""The notifier's read side: what was said to whom, and counts."""

from __future__ import annotations

import uuid

import asyncpg

from shared.db import Database, Where


class MessageQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(
        self, *, business_id: uuid.UUID | None, template: str | None, page: int, page_size: int
    ) -> tuple[int, list[asyncpg.Record]]:
        where = Where().add_if(business_id, "business_id = {}").add_if(template, "template = {}")
        async with self._db.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM message" + where.sql, *where.args)
            rows = await conn.fetch(
                "SELECT id, event_id, business_id, template, channel, recipient_phone, language, body, status, created_at,"
                " audience, kecamatan_code"
                f" FROM message{where.sql} ORDER BY created_at DESC, id LIMIT {page_size} OFFSET {(page - 1) * page_size}",
                *where.args,
            )
        return total, rows

    async def counts_by_template(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT template, count(*) FROM message GROUP BY template")
        return {r[0]: r[1] for r in rows}

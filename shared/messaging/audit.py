"""The audit trail: who made each change (the token's subject, or the service for work done by time)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.contracts.envelope import Envelope
from shared.db import Database, Where

_COLUMNS = ("actor", "action", "aggregate_type", "aggregate_id", "event_id", "correlation_id")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Something done that is not an event, but that someone must be able to account for (e.g. revealing a NIK)."""

    actor: str
    action: str
    aggregate_type: str
    aggregate_id: str
    correlation_id: uuid.UUID | None = None


def rows_of(envelopes: Sequence[Envelope], entries: Sequence[AuditEntry] = ()) -> list[tuple]:
    """The audit rows, in the order of `_COLUMNS`, for events written and for what changed nothing."""
    return [
        (e.actor or e.producer, e.event_type, e.aggregate_type, e.aggregate_id, e.event_id, e.correlation_id)
        for e in envelopes
    ] + [(a.actor, a.action, a.aggregate_type, a.aggregate_id, None, a.correlation_id) for a in entries]


async def record(conn: asyncpg.Connection, envelopes: Sequence[Envelope], entries: Sequence[AuditEntry] = ()) -> None:
    """In the caller's transaction: the audit trail commits with the change it describes, or not at all."""
    await add_rows(conn, rows_of(envelopes, entries))


async def add_rows(conn: asyncpg.Connection, rows: Sequence[tuple]) -> None:
    if len(rows) > 32:
        await conn.copy_records_to_table("audit", records=rows, columns=_COLUMNS)
    elif rows:
        await conn.executemany(
            "INSERT INTO audit (actor, action, aggregate_type, aggregate_id, event_id, correlation_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            rows,
        )


async def audit_trail(
    db: Database, *, aggregate_id: str | None, actor: str | None, page: int, page_size: int
) -> list[dict[str, Any]]:
    where = Where().add_if(aggregate_id, "aggregate_id = {}").add_if(actor, "actor = {}")
    rows = await db.fetch(
        "SELECT at, actor, action, aggregate_type, aggregate_id, event_id, correlation_id FROM audit"
        f"{where.sql} ORDER BY id DESC LIMIT {page_size} OFFSET {(page - 1) * page_size}",
        *where.args,
    )
    return [{**dict(r), "at": r["at"].isoformat()} for r in rows]

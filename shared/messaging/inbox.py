"""Idempotent consumers: an inbox row per (consumer, event_id), written in the same transaction as the effects."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from shared.contracts.envelope import Envelope
from shared.db import Database, delete_in_batches


async def first_deliveries(conn: asyncpg.Connection, consumer: str, envelopes: Sequence[Envelope]) -> set[uuid.UUID]:
    """Record the events as applied by `consumer`; returns the ids that were new, so the caller applies only those.

    Deduplicates on the envelope's event_id, never on Kafka offsets: a relay re-publish has new offsets.
    """
    if not envelopes:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id, event_type, aggregate_id)"
        " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        [e.event_id for e in envelopes],
        [e.event_type for e in envelopes],
        [e.aggregate_id for e in envelopes],
    )
    return {r["event_id"] for r in rows}


async def forget(conn: asyncpg.Connection, consumers: Sequence[str]) -> int:
    """Drop what these consumers have applied, so a replay of their topics applies everything again."""
    status = await conn.execute("DELETE FROM inbox WHERE consumer = ANY($1::text[])", list(consumers))
    return int(status.split()[-1])


async def prune(db: Database, older_than: timedelta, batch: int = 5000) -> int:
    """Delete inbox rows older than the retention: by then no redelivery of their events can happen any more."""
    return await delete_in_batches(
        db, "SELECT ctid FROM inbox WHERE processed_at < now() - $1::interval LIMIT $2", older_than,
        table="inbox", key="ctid", batch=batch,
    )  # fmt: skip

"""Idempotent consumers: an inbox row per (consumer, event_id), written in the same transaction as the effects."""

from __future__ import annotations

import asyncpg

from shared.contracts.envelope import Envelope


async def first_delivery(conn: asyncpg.Connection, consumer: str, envelope: Envelope) -> bool:
    """Record the event as applied by `consumer`; False if it already was, so the caller must do nothing.

    Deduplicates on the envelope's event_id, never on Kafka offsets: a relay re-publish has new offsets.
    """
    status = await conn.execute(
        "INSERT INTO inbox (consumer, event_id, event_type, aggregate_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        consumer,
        envelope.event_id,
        envelope.event_type,
        envelope.aggregate_id,
    )
    return status == "INSERT 0 1"

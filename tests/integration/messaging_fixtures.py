"""A minimal aggregate for exercising the outbox and inbox on their own, outside any service."""

from __future__ import annotations

import uuid
from typing import ClassVar

import asyncpg
from prometheus_client import CollectorRegistry

from shared.contracts import EventCatalog, EventPayload, new_envelope
from shared.contracts.envelope import Envelope
from shared.db import load_migrations, migrate
from shared.messaging.kafka import safe_producer
from shared.messaging.outbox import OutboxRelay
from shared.observability import MessagingMetrics


class Ticked(EventPayload):
    """A counter of one key went up: `seq` is that key's version, so per-key order can be checked."""

    event_type: ClassVar[str] = "Ticked"
    event_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = "counter"

    key: str
    seq: int

    def aggregate_key(self) -> str:
        return self.key


CATALOG = EventCatalog()
CATALOG.register(Ticked)


def ticked(key: str, seq: int) -> Envelope:
    return new_envelope(Ticked(key=key, seq=seq), producer="test", correlation_id=uuid.uuid4())


async def prepare(database_url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=20)
    async with pool.acquire() as conn:
        await migrate(conn, load_migrations("shared.messaging.migrations", "messaging"))
        await conn.execute("CREATE TABLE counter (id text PRIMARY KEY, version integer NOT NULL DEFAULT 0)")
        # No unique constraint on purpose: only the inbox stands between a duplicate delivery and a second effect.
        await conn.execute("CREATE TABLE effect (event_id uuid NOT NULL, key text NOT NULL, seq integer NOT NULL)")
    return pool


def relay(pool: asyncpg.Pool, database_url: str, bootstrap: str, *, cls: type[OutboxRelay] = OutboxRelay,
          batch_size: int = 50) -> OutboxRelay:  # fmt: skip
    return cls(
        pool=pool,
        dsn=database_url,
        producer_factory=lambda: safe_producer(bootstrap, "test-relay"),
        metrics=MessagingMetrics(CollectorRegistry()),
        batch_size=batch_size,
        idle_wait=0.2,
    )

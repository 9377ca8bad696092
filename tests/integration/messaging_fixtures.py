"""A minimal aggregate for exercising the outbox and inbox on their own, outside any service."""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import RequestTimedOutError
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from shared.contracts import EventCatalog, EventPayload, new_envelope
from shared.contracts.envelope import Envelope
from shared.db import Database, load_migrations, migrate, open_database
from shared.messaging.consumer import Apply, BatchTransaction, Delivery, EventConsumer, RetryPolicy
from shared.messaging.dead_letters import DeadLetters
from shared.messaging.kafka import KafkaAccess, safe_producer
from shared.messaging.outbox import add_to_outbox
from shared.messaging.relay import OutboxRelay
from shared.messaging.subscriptions import GRACEFUL_STOP_SECONDS, MAX_POLL_INTERVAL_MS, Consumers, Subscription, declare
from shared.observability import MessagingMetrics
from tests.support import read_topic


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


async def prepare(database_url: str) -> Database:
    db = await open_database(database_url, max_size=20)
    async with db.acquire() as conn:
        await migrate(conn, load_migrations("shared.messaging.migrations", "messaging"))
        await conn.execute("CREATE TABLE counter (id text PRIMARY KEY, version integer NOT NULL DEFAULT 0)")
        # No unique constraint on purpose: only the inbox stands between a duplicate delivery and a second effect.
        await conn.execute("CREATE TABLE effect (event_id uuid NOT NULL, key text NOT NULL, seq integer NOT NULL)")
    return db


def relay(db: Database, database_url: str, bootstrap: KafkaAccess | str, *, cls: type[OutboxRelay] = OutboxRelay,
          batch_size: int = 50, producer: type[AIOKafkaProducer] = AIOKafkaProducer,
          **options: object) -> OutboxRelay:  # fmt: skip
    return cls(
        db=db,
        dsn=database_url,
        producer_factory=lambda: safe_producer(bootstrap, "test-relay", cls=producer),
        metrics=MessagingMetrics(CollectorRegistry()),
        batch_size=batch_size,
        idle_wait=0.2,
        **options,  # type: ignore[arg-type]
    )


async def record_effects(tx: BatchTransaction, batch: Sequence[Delivery]) -> None:
    """The effect of a Ticked: one row, with nothing but the inbox to stop a second one."""
    await tx.conn.executemany(
        "INSERT INTO effect (event_id, key, seq) VALUES ($1, $2, $3)",
        [(d.envelope.event_id, d.payload.key, d.payload.seq) for d in batch],  # type: ignore[attr-defined]
    )


async def consume(bootstrap: KafkaAccess | str, topic: str, db: Database, dead_letters: DeadLetters, metrics: MessagingMetrics, *,
                  apply: Apply = record_effects, name: str = "test-consumer", policy: RetryPolicy = RetryPolicy(),
                  max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS) -> KafkaBroker:  # fmt: skip
    """A started broker whose consumer group `name` applies Ticked events from `topic`; stop it when done."""
    consumers = Consumers(metrics)
    consumers.by_name[name] = EventConsumer(name=name, db=db, apply=apply, event_types={"Ticked"},
                                            dead_letters=dead_letters, metrics=metrics, policy=policy, catalog=CATALOG)  # fmt: skip
    access = KafkaAccess.of(bootstrap)
    broker = KafkaBroker(access.bootstrap_servers, security=access.faststream(),
                         graceful_timeout=GRACEFUL_STOP_SECONDS)  # as the services' (shared/service.py)
    declare(broker, Subscription(topic, name, (Ticked,)), consumers, max_poll_interval_ms=max_poll_interval_ms)
    await broker.start()
    return broker


async def publish_overtaken(database_url: str, bootstrap: KafkaAccess | str, topic: str,
                            envelopes: Sequence[Envelope]) -> list:  # fmt: skip
    """`envelopes` (an event and the one after it, of one aggregate) published by the real relay with the first
    produce request lost: the relay hands the second over before it knows, then sends both again in order. Returns
    the topic's records (event 2, event 1, event 2), in partition and offset order."""
    lost: list[tuple[str, int]] = []

    class LosesItsFirstRequest(AIOKafkaProducer):
        async def send_batch(self, batch, topic, *, partition):  # noqa: ANN001, ANN201
            if lost:
                return await super().send_batch(batch, topic, partition=partition)
            lost.append((topic, partition))
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(RequestTimedOutError())
            return failed

    outbox = await prepare(database_url)
    async with outbox.acquire() as conn:
        await add_to_outbox(conn, envelopes, route=lambda _: topic)
    # One row a batch, so the second is handed over before the first's failure is known.
    publishing = relay(outbox, database_url, bootstrap, batch_size=1, producer=LosesItsFirstRequest)
    stop = asyncio.Event()
    running = asyncio.create_task(publishing.run(stop))
    try:
        sent = await read_topic(bootstrap, topic, expect=len(envelopes) + 1)
    finally:
        stop.set()
        await running
        await outbox.close()
    return sorted(sent, key=lambda r: (r.partition, r.offset))

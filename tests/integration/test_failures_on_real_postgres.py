"""How the shared mechanisms fail, on real PostgreSQL and Kafka: a failed COMMIT gives its connection back, a
wait for a connection is bounded, the database's own failures are retried and never dead-lettered while a record
that always times out is, one oversized event holds back only its own aggregate, and old inbox and outbox rows are
pruned."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from shared.db import Database, DatabaseBusy, DatabaseMetrics, open_database
from shared.messaging import inbox
from shared.messaging.consumer import RetryPolicy
from shared.messaging.dead_letters import KafkaDeadLetters
from shared.messaging.kafka import MAX_EVENT_BYTES, KafkaAccess, safe_producer
from shared.messaging.outbox import add_to_outbox, prune_published
from shared.messaging.relay import OutboxRelay
from shared.observability import MessagingMetrics
from shared.unit_of_work import Cause, PgUnitOfWork, Publisher
from tests.integration.messaging_fixtures import Ticked, consume, prepare, relay, ticked
from tests.support import eventually, new_topic, read_topic

pytestmark = pytest.mark.integration


class InsertsTwice(PgUnitOfWork):
    """A unit of work whose change breaks a constraint checked only at COMMIT."""

    def bind(self, conn: asyncpg.Connection) -> None:
        self.conn = conn


async def test_every_pooled_connection_ends_runaway_statements_and_idle_transactions_and_compiles_no_query(database_url):
    db = await open_database(database_url, statement_timeout_ms=1234)
    try:
        async with db.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1234ms"
            assert await conn.fetchval("SHOW jit") == "off"
    finally:
        await db.close()


async def test_a_failed_commit_gives_its_connection_back_so_the_pool_never_runs_dry(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    db = Database(pool, acquire_timeout=2)
    await db.execute("CREATE TABLE once (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)")
    publisher = Publisher("test", lambda _: [], lambda _: "unused")
    for _ in range(10):  # five times the pool's size
        uow = InsertsTwice(db, publisher, Cause.timer("test"))
        with pytest.raises(asyncpg.UniqueViolationError):
            async with uow:
                await uow.conn.execute("INSERT INTO once VALUES (1), (1)")
                await uow.commit()
    assert await db.fetchval("SELECT 1") == 1
    await db.close()


async def test_an_event_that_cannot_be_made_midway_through_a_large_commit_leaves_nothing_and_the_connection_works(
    database_url,
):
    # A large commit copies its envelopes into the outbox while making them: a failure on the 2,500th must abort the
    # COPY already under way (over 512 kB of rows sent by then), keep none of the commit, and leave the pooled
    # connection fit for the next one.
    db = await prepare(database_url)

    def translate(n: int) -> list[Ticked]:
        if n == 2500:
            raise TypeError("no contract for this event")
        return [Ticked(key=f"k{n % 7}", seq=n + 1)]

    publisher = Publisher("test", translate, lambda _: "counter.v1")
    pool_size = db.pool.get_max_size()
    for _ in range(pool_size + 1):  # a connection left broken would run the pool dry
        uow = InsertsTwice(db, publisher, Cause.timer("test"))
        with pytest.raises(TypeError, match="no contract"):
            async with uow:
                await uow.conn.execute("INSERT INTO counter (id, version) VALUES ('made', 1)")
                uow.emit(*range(3000))
                await uow.commit()
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert await db.fetchval("SELECT count(*) FROM counter") == 0
    assert await db.fetchval("SELECT count(*) FROM audit") == 0

    fine = Publisher("test", lambda n: [Ticked(key=f"k{n % 7}", seq=n + 1)], lambda _: "counter.v1")
    uow = InsertsTwice(db, fine, Cause.timer("test"))
    async with uow:
        uow.emit(*range(400))
        await uow.commit()
    assert await db.fetchval("SELECT count(*) FROM outbox") == 400
    assert await db.fetchval("SELECT count(*) FROM audit") == 400
    await db.close()


async def test_waiting_for_a_connection_gives_up_with_a_clear_error_and_counts_it(database_url):
    registry = CollectorRegistry()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    db = Database(pool, acquire_timeout=0.3, metrics=DatabaseMetrics(registry))
    async with db.acquire():
        with pytest.raises(DatabaseBusy, match="no database connection free"):
            await db.fetchval("SELECT 1")
    assert registry.get_sample_value("berdaya_db_pool_acquire_timeouts_total") == 1
    assert await db.fetchval("SELECT 1") == 1
    await db.close()


# SQLSTATEs raised by the server itself, as a failover, a password rotation, a deadlock or a conflict would.
TRANSIENT = {"read-only after a failover": "25006", "rotated password": "28P01", "deadlock": "40P01",
             "serialization failure": "40001"}  # fmt: skip


@pytest.mark.parametrize("cause", sorted(TRANSIENT))
async def test_a_database_failure_is_retried_until_it_passes_and_never_dead_lettered(infra, database_url, cause):
    topic = await new_topic(infra.kafka, partitions=1)
    db = await prepare(database_url)
    failures = {"left": 3}

    async def apply(tx, batch) -> None:  # noqa: ANN001
        if failures["left"]:
            failures["left"] -= 1
            await tx.conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{TRANSIENT[cause]}'; END $$")
        for d in batch:
            await tx.conn.execute("INSERT INTO effect VALUES ($1, $2, $3)", d.envelope.event_id, d.payload.key, d.payload.seq)

    metrics, producer = MessagingMetrics(CollectorRegistry()), safe_producer(infra.kafka, "t")
    await producer.start()
    broker = await consume(infra.kafka, topic, db, KafkaDeadLetters(producer), metrics, apply=apply,
                           policy=RetryPolicy(max_attempts=2, backoff=0.01, transient_backoff=0.05))  # fmt: skip
    try:
        async with db.transaction() as conn:
            await add_to_outbox(conn, [ticked("k", 1)], route=lambda _: topic)
        running = relay(db, database_url, infra.kafka)
        stop = asyncio.Event()
        relaying = asyncio.create_task(running.run(stop))
        assert await eventually(lambda: _effects(db, 1), timeout=60)
        stop.set()
        await relaying
        assert metrics.transient_failures.labels("test-consumer")._value.get() == 3
        assert metrics.dead_lettered.labels("test-consumer", topic)._value.get() == 0
    finally:
        await broker.stop()
        await producer.stop()
        await db.close()


async def _effects(db: Database, n: int) -> bool:
    return await db.fetchval("SELECT count(*) FROM effect") >= n


async def test_a_record_whose_handler_always_times_out_is_dead_lettered_and_the_partition_moves_on(infra, database_url):
    topic = await new_topic(infra.kafka, partitions=1)
    db = await prepare(database_url)

    async def apply(tx, batch) -> None:  # noqa: ANN001
        for d in batch:
            if d.payload.seq == 1:
                await tx.conn.execute("SET LOCAL statement_timeout = '50ms'")
                await tx.conn.execute("SELECT pg_sleep(5)")  # the server cancels it, every time
            await tx.conn.execute("INSERT INTO effect VALUES ($1, $2, $3)", d.envelope.event_id, d.payload.key, d.payload.seq)

    metrics, producer = MessagingMetrics(CollectorRegistry()), safe_producer(infra.kafka, "t")
    await producer.start()
    producer_of_records = safe_producer(infra.kafka, "t2")
    await producer_of_records.start()
    for seq in (1, 2):
        await producer_of_records.send_and_wait(topic, ticked("k", seq).to_json_bytes(), key=b"k")
    await producer_of_records.stop()
    broker = await consume(infra.kafka, topic, db, KafkaDeadLetters(producer), metrics, apply=apply,
                           policy=RetryPolicy(max_attempts=3, backoff=0.01))  # fmt: skip
    try:
        assert await eventually(lambda: _effects(db, 1), timeout=60)
        [dead] = await read_topic(infra.kafka, f"{topic}.dlq", expect=1)
        headers = {k: v.decode() for k, v in dead.headers}
        assert json.loads(dead.value)["payload"]["seq"] == 1
        assert headers["dlq.error_type"] == "QueryCanceledError" and headers["dlq.attempts"] == "3"
        assert [r["seq"] for r in await db.fetch("SELECT seq FROM effect")] == [2]
    finally:
        await broker.stop()
        await producer.stop()
        await db.close()


async def test_a_record_waiting_past_its_handler_time_on_a_row_another_transaction_holds_is_retried_not_dead_lettered(
    infra, database_url
):
    # The wait ran into the handler's timeout, which counts as the record's fault (the database still answered), and
    # a healthy record went to the dead-letter topic: the events after it of its aggregate then followed it there.
    topic = await new_topic(infra.kafka, partitions=1)
    db = await prepare(database_url)
    await db.execute("INSERT INTO counter (id) VALUES ('k')")

    async def apply(tx, batch) -> None:  # noqa: ANN001
        for d in batch:
            await tx.conn.execute("UPDATE counter SET version = $2 WHERE id = $1", d.payload.key, d.payload.seq)
            await tx.conn.execute("INSERT INTO effect VALUES ($1, $2, $3)", d.envelope.event_id, d.payload.key, d.payload.seq)

    metrics, producer = MessagingMetrics(CollectorRegistry()), safe_producer(infra.kafka, "t")
    await producer.start()
    holder = await db.connect()
    broker = None
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM counter WHERE id = 'k' FOR UPDATE")  # an officer's long transaction, say
        await producer.send_and_wait(topic, ticked("k", 1).to_json_bytes(), key=b"k")
        broker = await consume(infra.kafka, topic, db, KafkaDeadLetters(producer), metrics, apply=apply,
                               policy=RetryPolicy(max_attempts=2, backoff=0.01, handler_timeout=1.0,
                                                  transient_backoff=0.05))  # fmt: skip
        assert await eventually(lambda: metrics.transient_failures.labels("test-consumer")._value.get() >= 2, 30)
        await held.rollback()
        assert await eventually(lambda: _effects(db, 1), timeout=30)
        assert metrics.dead_lettered.labels("test-consumer", topic)._value.get() == 0
        assert await db.fetchval("SELECT version FROM counter WHERE id = 'k'") == 1
    finally:
        if broker is not None:
            await broker.stop()
        await db.release(holder)
        await producer.stop()
        await db.close()


@contextlib.asynccontextmanager
async def consuming_one_partition(infra, database_url: str) -> AsyncIterator[tuple[str, Database, AIOKafkaProducer]]:  # noqa: ANN001
    """A one-partition topic consumed into a fresh database, dead letters going through `producer`, which the test
    also writes the topic with."""
    topic = await new_topic(infra.kafka, partitions=1)
    db = await prepare(database_url)
    producer = safe_producer(infra.kafka, "t")
    await producer.start()
    broker = await consume(infra.kafka, topic, db, KafkaDeadLetters(producer), MessagingMetrics(CollectorRegistry()))
    try:
        yield topic, db, producer
    finally:
        await broker.stop()
        await producer.stop()
        await db.close()


async def test_a_record_too_large_to_dead_letter_whole_is_dead_lettered_cut_short_and_the_partition_moves_on(
    infra, database_url
):
    async with consuming_one_partition(infra, database_url) as (topic, db, producer):
        # Another system's record just under the request limit, and not an envelope: refused at once, and with the
        # dead-letter headers added over the limit.
        near_limit = b"x" * 1_048_400
        await producer.send_and_wait(topic, near_limit, key=b"k")
        await producer.send_and_wait(topic, ticked("k", 1).to_json_bytes(), key=b"k")

        [dead] = await read_topic(infra.kafka, f"{topic}.dlq", expect=1)
        headers = dict(dead.headers)
        assert headers["dlq.value_truncated_from"] == b"1048400"
        assert headers["dlq.value_sha256"] == hashlib.sha256(near_limit).hexdigest().encode()
        assert dead.value == near_limit[:MAX_EVENT_BYTES] and headers["dlq.original_offset"] == b"0"
        assert await eventually(lambda: _effects(db, 1), timeout=60)  # the record behind it was applied


@pytest.mark.parametrize("where", ["key", "headers"])
async def test_a_record_whose_key_or_headers_fill_it_is_dead_lettered_without_them_and_the_partition_moves_on(
    infra, database_url, where
):
    async with consuming_one_partition(infra, database_url) as (topic, db, producer):
        # Another system's record whose key (or headers) take all but a few bytes of a request: cutting its value
        # short left its dead-letter copy over the limit, and the partition stopped for good.
        key = b"k" * 1_048_300 if where == "key" else b"k"
        headers = [(f"h{i}", b"v" * 1000) for i in range(1040)] if where == "headers" else []
        value = b"x" if where == "key" else b"x" * 1200
        await producer.send_and_wait(topic, value, key=key, headers=headers)
        await producer.send_and_wait(topic, ticked("k", 1).to_json_bytes(), key=b"k")

        [dead] = await read_topic(infra.kafka, f"{topic}.dlq", expect=1, timeout=60)
        kept = dict(dead.headers)
        assert dead.value == value and kept["dlq.original_offset"] == b"0"
        if where == "key":
            assert kept["dlq.key_sha256"] == hashlib.sha256(key).hexdigest().encode() and len(dead.key) <= 1024
        else:
            assert kept["dlq.headers_dropped"] == b"1040" and not any(k.startswith("h") for k in kept)
        assert await eventually(lambda: _effects(db, 1), timeout=60)  # the record behind it was applied


async def test_an_oversized_event_holds_back_only_its_own_aggregate_and_operators_see_it(infra, database_url):
    topic = await new_topic(infra.kafka, partitions=2)
    db = await prepare(database_url)
    huge = ticked("big", 1).model_copy(update={"payload": {"key": "big", "seq": 1, "blob": "x" * 2_000_000}})
    async with db.transaction() as conn:
        await add_to_outbox(conn, [huge, ticked("big", 2), ticked("small", 1), ticked("small", 2)], route=lambda _: topic)
    running = relay(db, database_url, infra.kafka)
    stop = asyncio.Event()
    relaying = asyncio.create_task(running.run(stop))
    try:
        records = await read_topic(infra.kafka, topic, expect=2)
        assert sorted((r.key, json.loads(r.value)["payload"]["seq"]) for r in records) == [(b"small", 1), (b"small", 2)]
        assert await eventually(lambda: _stuck(db), timeout=30)
        await running.refresh_backlog()
        assert running._metrics.outbox_failing._value.get() == 2  # the big one and the one waiting behind it
        assert "MessageSizeTooLarge" in (await db.fetchval("SELECT last_error FROM outbox_pending WHERE aggregateid = 'big' ORDER BY id LIMIT 1"))
    finally:
        stop.set()
        await relaying
        await db.close()


async def test_an_event_for_a_topic_kafka_does_not_know_holds_back_only_its_own_aggregate(infra, database_url):
    # Topics are never created on first use here: a row routed to a missing one (a partner's topic removed, say)
    # must not stop the relay for everyone.
    topic, missing = await new_topic(infra.kafka, partitions=2), f"missing.{uuid.uuid4().hex[:8]}"
    db = await prepare(database_url)
    rows = [(ticked("lost", 1), missing), (ticked("lost", 2), topic), (ticked("fine", 1), topic), (ticked("fine", 2), topic)]
    route = {e.event_id: t for e, t in rows}
    async with db.transaction() as conn:
        await add_to_outbox(conn, [e for e, _ in rows], route=lambda e: route[e.event_id])
    # A short metadata wait, so the test need not wait the producer's usual 30 s for the missing topic.
    running = OutboxRelay(db=db, dsn=database_url, metrics=MessagingMetrics(CollectorRegistry()), idle_wait=0.2,
                          producer_factory=lambda: _quick_producer(infra.kafka))  # fmt: skip
    stop = asyncio.Event()
    relaying = asyncio.create_task(running.run(stop))
    try:
        records = await read_topic(infra.kafka, topic, expect=2)
        assert sorted((r.key, json.loads(r.value)["payload"]["seq"]) for r in records) == [(b"fine", 1), (b"fine", 2)]
        assert await eventually(lambda: _stuck(db), timeout=60)  # the lost one and the one waiting behind it
    finally:
        stop.set()
        await relaying
        await db.close()


def _quick_producer(kafka: KafkaAccess | str) -> AIOKafkaProducer:
    """The relay's producer settings, but waiting 2 s for a topic's metadata rather than 30."""
    return AIOKafkaProducer(**KafkaAccess.of(kafka).aiokafka(), acks="all", enable_idempotence=True,
                            request_timeout_ms=2_000)  # fmt: skip


async def _stuck(db: Database) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox_pending WHERE last_error IS NOT NULL") == 2


async def test_inbox_and_published_outbox_rows_are_pruned_after_their_retention_and_the_rest_kept(database_url):
    db = await prepare(database_url)
    old, new, waiting, stuck = ticked("k", 1), ticked("k", 2), ticked("k", 3), ticked("j", 1)
    async with db.transaction() as conn:
        await add_to_outbox(conn, [old, new, waiting, stuck], route=lambda _: "t")
        await conn.execute("UPDATE outbox SET created_at = now() - interval '10 days' WHERE event_id = ANY($1::uuid[])",
                           [old.event_id, stuck.event_id])  # fmt: skip
        await conn.execute("DELETE FROM outbox_pending WHERE id IN (SELECT id FROM outbox WHERE event_id = ANY($1::uuid[]))",
                           [old.event_id, new.event_id])  # published  # fmt: skip
        await inbox.first_deliveries(conn, "c", [old, new])
        await conn.execute("UPDATE inbox SET processed_at = now() - interval '40 days' WHERE event_id = $1", old.event_id)
    assert await prune_published(db, timedelta(days=7), batch=1) == 1
    assert await inbox.prune(db, timedelta(days=30), batch=1) == 1
    remaining = {r["event_id"] for r in await db.fetch("SELECT event_id FROM outbox")}
    # The published old row goes; the published new one stays, and so do unpublished rows, however old.
    assert remaining == {new.event_id, waiting.event_id, stuck.event_id}
    assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 2
    assert [r["event_id"] for r in await db.fetch("SELECT event_id FROM inbox")] == [new.event_id]
    await db.close()

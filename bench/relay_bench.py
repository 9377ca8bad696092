"""Outbox relay throughput: committed outbox rows to acknowledged Kafka records, against raw aiokafka producing the
same payloads, keys and headers with the same safety settings (acks=all, idempotence) to the same broker."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg
from prometheus_client import CollectorRegistry

from bench import raw_produce, table
from bench.cpu import CpuMeter, kafka_pids, postgres_pids
from bench.system_bench import read_topic
from berdaya.stack.throwaway import Throwaway
from berdaya.stack.postgres import ensure_database
from shared.contracts import new_envelope
from shared.contracts.envelope import event_headers
from shared.contracts.registry import NIBApplied
from shared.db import Database, load_migrations, migrate
from shared.messaging.kafka import TopicSpec, ensure_topics, safe_producer
from shared.messaging.outbox import add_to_outbox
from shared.messaging.relay import OutboxRelay
from shared.observability import MessagingMetrics
from shared.service import tune_gc


def _envelopes(count: int) -> list:
    businesses = [uuid.uuid4() for _ in range(max(1, count // 5))]
    return [
        new_envelope(
            NIBApplied(business_id=businesses[i % len(businesses)], business_version=i // len(businesses) + 1,
                       application_id=uuid.uuid4(), applied_at="2026-11-23T03:00:00Z", kecamatan_code="53.71.04"),
            producer="bench", correlation_id=uuid.uuid4(),
        )  # fmt: skip
        for i in range(count)
    ]


async def _relay(infra: Throwaway, envelopes: list, topic: str, batch_size: int) -> tuple[float, CpuMeter]:
    """From the commit of the whole backlog to the relay's count of rows published and marked. The relay is already
    running (lease held, producer started), as the raw producer is already started: both are timed warm. Its own
    counter is read, not the outbox, so the benchmark adds no queries of its own to PostgreSQL's work."""
    url = await ensure_database(infra.postgres_url, f"bench_relay_{uuid.uuid4().hex[:6]}")
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn, load_migrations("shared.messaging.migrations", "messaging"))
    metrics = MessagingMetrics(CollectorRegistry())
    relay = OutboxRelay(db=Database(pool), dsn=url, producer_factory=lambda: safe_producer(infra.kafka, "bench"),
                        metrics=metrics, batch_size=batch_size, idle_wait=0.05)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    while relay._producer is None or not metrics.relay_leader._value.get():
        await asyncio.sleep(0.01)
    meter = CpuMeter({"relay (this process)": [os.getpid()], "PostgreSQL": lambda: postgres_pids(infra),
                      "Kafka": kafka_pids(infra)})  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, envelopes, route=lambda _: topic)
    meter.start()
    started = time.perf_counter()
    while metrics.outbox_published._value.get() < len(envelopes):
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    meter.stop()
    stop.set()
    await task
    await pool.close()
    return elapsed, meter


async def _raw(infra: Throwaway, envelopes: list, topic: str) -> float:
    producer = safe_producer(infra.kafka, "bench-raw")
    await producer.start()
    records = [(topic, None, e.aggregate_id.encode(), e.model_dump_json().encode(),
                event_headers(e.event_type, e.event_version, e.event_id)) for e in envelopes]  # fmt: skip
    try:
        started = time.perf_counter()
        await raw_produce.produce(producer, records)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _warm(infra: Throwaway, topics: list[str]) -> None:
    producer = safe_producer(infra.kafka, "bench-warm")
    await producer.start()
    try:
        await raw_produce.warm(producer, topics)
    finally:
        await producer.stop()


async def bench_relay(infra: Throwaway, count: int, batch_size: int = 500) -> dict[str, float]:
    envelopes = _envelopes(count)
    # The relay runs in a service's process, whose collector skips what start-up made and runs less often
    # (`tune_gc`); here the same goes for the benchmark's own events, which no service holds. Without it, two full
    # collections walking 200,000 envelopes took 0.73 s of the relay's 4.1 s (and the raw producer's run too).
    tune_gc()
    relay_topic, raw_topic = f"bench.relay.{uuid.uuid4().hex[:6]}", f"bench.raw.{uuid.uuid4().hex[:6]}"
    await ensure_topics(infra.kafka, [TopicSpec(relay_topic, 6, 1), TopicSpec(raw_topic, 6, 1)])
    await _warm(infra, [relay_topic, raw_topic])  # both clocks start on topics whose leaders are elected
    # Raw before and after the relay, the faster kept: neither side gains from going first or from a quiet moment.
    raw_before = await _raw(infra, envelopes, raw_topic)
    relay_seconds, meter = await _relay(infra, envelopes, relay_topic, batch_size)
    raw_seconds = min(raw_before, await _raw(infra, envelopes, raw_topic))
    published = [r.value for r in await read_topic(infra.kafka, relay_topic) if r.value != b"warm-up"]
    assert len(published) == len(set(published)) == count, (
        f"the relay's topic holds {len(published)} events ({len(set(published))} different), not {count}")
    raw = [r.value for r in await read_topic(infra.kafka, raw_topic) if r.value != b"warm-up"]
    assert len(raw) == 2 * count and len(set(raw)) == count, f"the raw topic holds {len(raw)} events, not 2 x {count}"
    print(f"  batch {batch_size}: {meter.summary(relay_seconds)}", flush=True)
    return {"events": count, "relay_s": relay_seconds, "raw_s": raw_seconds, "batch": batch_size}


def report(results: list[dict[str, float]]) -> None:
    print()
    table.header()
    for r in results:
        n, ratio = r["events"], r["raw_s"] / r["relay_s"]
        table.row(f"relay, {n:,.0f} events, batch {r['batch']:.0f}", f"{n / r['relay_s']:,.0f} ev/s",
                  f"raw {n / r['raw_s']:,.0f} ev/s", f"{ratio:.1%}", ">= 80%", ratio >= 0.8)  # fmt: skip
    print("relay: a committed backlog claimed in id order -> produced -> acknowledged -> marked published,"
          " timed from the commit to the relay's count of rows marked; the relay already running")
    print("raw: the same records produced straight from memory with the same producer settings (acks=all, idempotence),"
          " the producer already started, in record batches of one partition each as the relay sends them (one future"
          " per batch); run before and after the relay, the faster kept; every topic warmed first")

"""Funding's matching speed, on a real funding process, PostgreSQL and Kafka.

1. A new pledge against 100,000 known businesses: seconds from POST /pledges to the last FundingMatched on Kafka,
   against the floor the issue names, measured in the same run: a plain SQL query selecting the same eligible set,
   plus raw aiokafka publishing the pledge's events again (the same records, with the relay's producer settings).
2. A stream of NIBIssued events against 50 open pledges: events per second through funding's view consumer (inbox,
   view update, matching, outbox), against raw aiokafka reading the same records from the same broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from bench import raw_produce, table
from bench.cpu import CpuMeter, kafka_pids, postgres_pids
from bench.system_bench import outbox_published, partitions_of, read_topic
from berdaya.stack.local import run_service, throwaway_env
from berdaya.stack.postgres import ensure_database
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.auth import TokenService
from shared.contracts import new_envelope
from shared.contracts.registry import BusinessRegistered, NIBIssued
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, namespaced
from shared.reference.wilayah import kota_kupang
from shared.messaging.kafka import KafkaAccess, TopicSpec, ensure_topics, safe_producer
from shared.messaging.subscriptions import FETCH_MAX_WAIT_MS

SECRET = "benchmark-secret-benchmark-secret-benchmark"
KBLI = ("10130", "10792", "56102", "56103", "47112", "13122", "96112", "45405")
VIEW_COLUMNS = ("business_id", "version", "business_name", "contact_phone", "kecamatan_code", "kbli_code", "scale",
                "youth_owned", "women_owned", "nib_status", "status", "annual_sales_rupiah", "registered_at",
                "eligible_since")  # fmt: skip


def _views(count: int, rng: random.Random) -> list[tuple]:
    kecamatan = [k.code for k in kota_kupang().kecamatan]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        youth = rng.random() < 0.3
        rows.append((uuid.uuid4(), 2, f"Usaha {i}", f"+62812{i:08d}", rng.choice(kecamatan), rng.choice(KBLI),
                     "micro", youth, rng.random() < 0.55, "issued" if rng.random() < 0.7 else "none", "active",
                     rng.randrange(10, 900) * 1_000_000, start + timedelta(minutes=i), start))  # fmt: skip
    return rows


class Funding:
    def __init__(self, infra: Throwaway, label: str) -> None:
        self.infra, self.namespace = infra, f"bench-{label}-{uuid.uuid4().hex[:6]}"
        self.env = throwaway_env(infra.kafka, self.namespace, SECRET)
        self.officer = {"Authorization": f"Bearer {TokenService(SECRET).mint('bench', ['officer'])}"}

    async def start(self) -> None:
        self.database = await ensure_database(self.infra.postgres_url, f"bench_funding_{uuid.uuid4().hex[:6]}")
        self.process = run_service("funding", self.env, self.database, self.infra.base / f"{self.namespace}.log")
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{self.process.url}/sponsors", json={"name": "Bank NTT", "kind": "bank"},
                                       headers=self.officer)  # fmt: skip
            response.raise_for_status()
            self.sponsor = response.json()["id"]
        token = TokenService(SECRET).mint("bench", ["sponsor"], sponsor_id=uuid.UUID(self.sponsor))
        self.auth = {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        stop_pid(self.process.pid)

    def topic(self, name: str) -> str:
        return namespaced(name, self.namespace)

    async def pledge(self, http: httpx.AsyncClient, total: int, amount: int, **earmarks) -> dict:  # noqa: ANN003
        today = date.today()
        body = {"sponsor_id": self.sponsor, "title": f"bench {uuid.uuid4().hex[:6]}", "instrument": "grant",
                "total_rupiah": total, "amount_mode": "fixed", "amount_per_business_rupiah": amount,
                "valid_from": today.isoformat(), "valid_until": (today + timedelta(days=30)).isoformat(),
                "earmarks": earmarks}  # fmt: skip
        response = await http.post(f"{self.process.url}/pledges", json=body, headers=self.auth)
        response.raise_for_status()
        return response.json()


async def _count_matched(bootstrap: KafkaAccess | str, topic: str, expect: int, timeout: float = 600) -> float:
    """Wait for `expect` FundingMatched records; returns when the last arrived (perf_counter)."""
    consumer = AIOKafkaConsumer(topic, **KafkaAccess.of(bootstrap).aiokafka(), auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen, last = 0, time.perf_counter()
    deadline = time.perf_counter() + timeout
    try:
        while seen < expect and time.perf_counter() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if dict(record.headers).get("event_type") == b"FundingMatched":
                        seen += 1
                        last = time.perf_counter()
    finally:
        await consumer.stop()
    if seen < expect:
        raise RuntimeError(f"only {seen} of {expect} FundingMatched arrived")
    return last


# When the pledge's matching began (funding's clock when its CSRPledged came back) and when its offers committed (the
# bench's PostgreSQL keeps commit times), both as Unix time.
_MATCH_TIMES = """
SELECT extract(epoch FROM p.matched_at)::float8 AS began,
       (SELECT extract(epoch FROM pg_xact_commit_timestamp(o.xmin))::float8 FROM offer o WHERE o.pledge_id = p.id
         LIMIT 1) AS committed
  FROM pledge p WHERE p.id = $1
"""


async def _match_times(database: str, pledge_id: str) -> tuple[float, float]:
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow(_MATCH_TIMES, uuid.UUID(pledge_id))
        return row["began"], row["committed"]
    finally:
        await conn.close()


async def _outbox_topics(database: str) -> list[str]:
    conn = await asyncpg.connect(database)
    try:
        return [r["topic"] for r in await conn.fetch("SELECT DISTINCT topic FROM outbox ORDER BY topic")]
    finally:
        await conn.close()


async def _raw_publish(kafka: KafkaAccess, topics: list[str]) -> tuple[int, float]:
    """Every record funding's relay put on these topics, produced again byte for byte and to the same partitions onto
    fresh topics, with the relay's own producer settings and a warm producer: the least time publishing them takes."""
    copy_of = {topic: f"{topic}.raw-copy" for topic in topics}
    copies: list[tuple[str, ConsumerRecord]] = []
    for topic, copy in copy_of.items():
        await ensure_topics(kafka, [TopicSpec(copy, len(await partitions_of(kafka, [topic])), 1)])
        copies += [(copy, r) for r in await read_topic(kafka, topic)]
    producer = safe_producer(kafka, "bench-raw")
    await producer.start()
    try:
        await raw_produce.warm(producer, list(copy_of.values()))
        records = [(copy, r.partition, r.key, r.value, list(r.headers)) for copy, r in copies]
        started = time.perf_counter()
        await raw_produce.produce(producer, records)
        return len(copies), time.perf_counter() - started
    finally:
        await producer.stop()


async def bench_new_pledge(infra: Throwaway, businesses: int = 100_000) -> dict[str, float]:
    funding = Funding(infra, "pledge")
    await funding.start()
    try:
        conn = await asyncpg.connect(funding.database)
        try:
            await conn.copy_records_to_table("business_view", records=_views(businesses, random.Random(1)),
                                             columns=VIEW_COLUMNS)  # fmt: skip
            await conn.execute("ANALYZE business_view")
            started = time.perf_counter()
            eligible = await conn.fetch(
                "SELECT * FROM business_view WHERE status = 'active' AND nib_status = 'issued'"
                " AND kbli_code LIKE ANY($1::text[])", ["10%", "11%", "56%"],
            )  # fmt: skip
            sql_seconds = time.perf_counter() - started
        finally:
            await conn.close()
        offers = len(eligible)
        async with httpx.AsyncClient(timeout=60) as http:
            # A pledge nobody qualifies for first: once it is matched, funding's matcher has joined its group, so the
            # figure is matching and not the consumer group's start.
            await funding.pledge(http, total=1_000_000, amount=1_000_000, kbli=["01"], nib_required=True)
            conn = await asyncpg.connect(funding.database)
            try:
                while await conn.fetchval("SELECT count(*) FROM pledge WHERE matched_at IS NULL"):
                    await asyncio.sleep(0.1)
            finally:
                await conn.close()
            meter = CpuMeter({"funding": [funding.process.pid], "PostgreSQL": lambda: postgres_pids(infra),
                              "Kafka": lambda: kafka_pids(infra), "benchmark": [os.getpid()]})  # fmt: skip
            meter.start()
            started, started_unix = time.perf_counter(), time.time()
            # Enough money for every eligible business, so the run ends with one offer each.
            pledge = await funding.pledge(http, total=offers * 1_000_000, amount=1_000_000, kbli=["10", "11", "56"],
                                          nib_required=True)  # fmt: skip
        last = await _count_matched(infra.kafka, funding.topic(FUNDING_PLEDGE), offers)
        meter.stop()
        began_unix, committed_unix = await _match_times(funding.database, pledge["id"])
        # PledgeProgressed trails the offers: the floor counts every event the pledge caused.
        await outbox_published(funding.database, timeout=600, what="funding's outbox relay")
        events, publish_seconds = await _raw_publish(infra.kafka, await _outbox_topics(funding.database))
        return {"businesses": businesses, "eligible": offers, "match_s": last - started, "sql_s": sql_seconds,
                "events": events, "raw_publish_s": publish_seconds,
                "began_s": began_unix - started_unix, "matched_s": committed_unix - began_unix,
                "relayed_s": last - started - (committed_unix - started_unix),
                "cpu": meter.summary(last - started)}  # fmt: skip
    finally:
        funding.stop()


NO_MATCH_KBLI = ("13122", "96112", "45405")  # no bench pledge wants these: the view consumer's work without matching


def business_stream(rng: random.Random, events: int, kbli: tuple[str, ...], first: int) -> tuple[list, list]:
    kecamatan_codes = [k.code for k in kota_kupang().kecamatan]
    registered, issued = [], []
    for n in range(events):
        i = first + n
        b = BusinessRegistered(
            business_id=uuid.uuid4(), business_version=1, business_name=f"Usaha {i}", kbli_code=rng.choice(kbli),
            kbli_version=2020, kecamatan="Oebobo", kecamatan_code=rng.choice(kecamatan_codes),
            kecamatan_bps="5371030", kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro",
            scale_basis="annual_sales", annual_sales_rupiah=100_000_000, youth_owned=False, women_owned=True,
            nib_status="none", contact_phone=f"+62813{i:08d}", status="active", registered_at=datetime.now(UTC),
            source="import",
        )  # fmt: skip
        registered.append(b)
        issued.append(NIBIssued(business_id=b.business_id, business_version=2, application_id=None,
                                nib=f"{9200000000000 + i}", issued_on=date.today(), kecamatan_code=b.kecamatan_code))  # fmt: skip
    return registered, issued


async def _issued_through_view(conn: asyncpg.Connection, bootstrap: str, topic: str, issued: list, expect_total: int) -> float:
    """Produce the NIBIssued events; seconds funding's view takes to hold all of them as issued, from the first
    applied to the last (the raw consumer reads records already there: neither figure holds the producer's time)."""
    query = "SELECT count(*) FROM business_view WHERE nib_status = 'issued'"
    before = await conn.fetchval(query)
    producing = asyncio.create_task(produce(bootstrap, topic, issued))
    first: tuple[float, int] | None = None
    while (done := await conn.fetchval(query)) < expect_total:
        if done > before and first is None:
            first = (time.perf_counter(), done - before)
        await asyncio.sleep(0.05)
    finished = time.perf_counter()
    await producing
    started, applied_first = first or (finished, 0)
    return max(1e-3, (finished - started) * len(issued) / max(1, len(issued) - applied_first))


async def bench_nib_stream(infra: Throwaway, events: int = 5_000, pledges: int = 50) -> dict[str, Any]:
    """Two phases on one funding: `events` NIBIssued that no pledge wants (inbox, view, eligibility checks, no
    offers), then `events` NIBIssued of the issue's mix (about half make offers). Then the raw consumer baseline
    on the second phase's records."""
    funding = Funding(infra, "stream")
    await funding.start()
    try:
        rng = random.Random(2)
        async with httpx.AsyncClient(timeout=60) as http:
            kecamatan = [k.name for k in kota_kupang().kecamatan]
            for _ in range(pledges):
                await funding.pledge(http, total=1_000_000_000, amount=1_000_000, kecamatan=[rng.choice(kecamatan)],
                                     kbli=[rng.choice(["10", "56", "47"])], nib_required=True)  # fmt: skip
        topic = funding.topic(REGISTRY_BUSINESS)
        registered_a, issued_a = business_stream(rng, events, NO_MATCH_KBLI, 0)
        registered_b, issued_b = business_stream(rng, events, KBLI, events)
        conn = await asyncpg.connect(funding.database)
        try:
            await produce(infra.kafka, topic, registered_a + registered_b)
            while await conn.fetchval("SELECT count(*) FROM business_view") < 2 * events:
                await asyncio.sleep(0.2)
            # The pledges must have been matched (CSRPledged back from Kafka) before the stream, else nothing matches.
            while await conn.fetchval("SELECT count(*) FROM pledge WHERE matched_at IS NULL"):
                await asyncio.sleep(0.2)
            no_match_seconds = await _issued_through_view(conn, infra.kafka, topic, issued_a, events)
            offers_before = await conn.fetchval("SELECT count(*) FROM offer")
            phase_b_ms = int(time.time() * 1000) - 1
            meter = CpuMeter({"funding": [funding.process.pid], "PostgreSQL": lambda: postgres_pids(infra),
                              "Kafka": lambda: kafka_pids(infra), "benchmark": [os.getpid()]})  # fmt: skip
            meter.start()
            started = time.perf_counter()
            stream_seconds = await _issued_through_view(conn, infra.kafka, topic, issued_b, 2 * events)
            meter.stop()
            cpu = meter.summary(time.perf_counter() - started)
            offers = await conn.fetchval("SELECT count(*) FROM offer") - offers_before
        finally:
            await conn.close()
        raw_events, raw_consumer_seconds = await raw_consumer(infra, topic, phase_b_ms)
        raw_seconds = await _raw_read(infra.kafka, topic, 4 * events)
        return {"events": events, "pledges": pledges, "offers": offers, "stream_s": stream_seconds,
                "no_match_s": no_match_seconds, "raw_consumer_s": raw_consumer_seconds * events / raw_events,
                "raw_read_s": raw_seconds / 4, "cpu": cpu}  # fmt: skip
    finally:
        funding.stop()


RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (consumer text NOT NULL, event_id uuid NOT NULL, event_type text NOT NULL,
    aggregate_id text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id));
CREATE TABLE IF NOT EXISTS effect (event_id uuid PRIMARY KEY, business_id uuid NOT NULL, nib text, version int NOT NULL);
"""


async def raw_consumer(infra: Throwaway, topic: str, since_ms: int) -> tuple[int, float]:
    """The least work any correct consumer must do, on the same broker and database server: aiokafka reading the
    same records (a consumer group, batches of up to 200 like the services'), one PostgreSQL transaction per batch
    writing the inbox rows and one row of effect per event with executemany, then committing the offsets. It fetches
    as the services do: at aiokafka's default wait, a stream on one partition (a pledge's offers) stalled the baseline
    itself in some runs (2,500-3,400 against 11,000 records/s), and a ratio against it flattered the services."""
    url = await ensure_database(infra.postgres_url, f"bench_raw_{uuid.uuid4().hex[:6]}")
    conn = await asyncpg.connect(url)
    await conn.execute(RAW_SCHEMA)
    access = KafkaAccess.of(infra.kafka).aiokafka()
    consumer = AIOKafkaConsumer(topic, **access, group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=200,
                                fetch_max_wait_ms=FETCH_MAX_WAIT_MS)  # fmt: skip
    await consumer.start()
    try:
        deadline = time.monotonic() + 120
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)  # joins the group; what it fetched is dropped by the seeks below
        partitions = sorted(consumer.assignment())
        if not partitions:
            raise RuntimeError(f"the raw consumer got no partition of {topic}")
        starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp].offset if starts[tp] is not None else ends[tp])
        expect = sum(ends[tp] - (starts[tp].offset if starts[tp] is not None else ends[tp]) for tp in partitions)
        seen = 0
        started = time.perf_counter()
        while seen < expect:
            if time.monotonic() > deadline + 600:
                raise RuntimeError(f"the raw consumer read {seen} of {expect}")
            batch = await consumer.getmany(timeout_ms=500, max_records=200)
            inbox, effects = [], []
            for records in batch.values():
                for record in records:
                    envelope = json.loads(record.value)
                    payload = envelope["payload"]
                    inbox.append(("raw", uuid.UUID(envelope["event_id"]), envelope["event_type"], envelope["aggregate_id"]))
                    effects.append((uuid.UUID(envelope["event_id"]), uuid.UUID(payload["business_id"]),
                                     payload.get("nib"), payload.get("business_version", 0)))  # fmt: skip
            if not inbox:
                continue
            async with conn.transaction():
                await conn.executemany("INSERT INTO inbox (consumer, event_id, event_type, aggregate_id)"
                                       " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", inbox)  # fmt: skip
                await conn.executemany("INSERT INTO effect (event_id, business_id, nib, version) VALUES ($1, $2, $3, $4)",
                                       effects)  # fmt: skip
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items() if records})
            seen += len(inbox)
        return seen, time.perf_counter() - started
    finally:
        await consumer.stop()
        await conn.close()


async def produce(bootstrap: KafkaAccess | str, topic: str, payloads: list, producer_name: str = "registry") -> None:
    """The events as their service would publish them, handed to the producer a record batch at a time as the relay
    does (`raw_produce`): one `send` per record costs the producer about three times the work, and that work ran on
    the two cores the consumer is measured on. (Building the 5,000 envelopes themselves takes about 0.06 s.)"""
    records = []
    for payload in payloads:
        envelope = new_envelope(payload, producer=producer_name, correlation_id=uuid.uuid4())
        records.append((topic, None, envelope.aggregate_id.encode(), envelope.to_json_bytes(), []))
    producer = AIOKafkaProducer(**KafkaAccess.of(bootstrap).aiokafka(), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        await raw_produce.produce(producer, records)
    finally:
        await producer.stop()


async def _raw_read(bootstrap: KafkaAccess | str, topic: str, expect: int) -> float:
    consumer = AIOKafkaConsumer(topic, **KafkaAccess.of(bootstrap).aiokafka(), auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen = 0
    try:
        started = time.perf_counter()
        while seen < expect:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    json.loads(record.value)  # a consumer must at least parse what it reads
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def report(pledge: dict[str, float], stream: dict[str, Any]) -> None:
    print()
    print(f"Funding: new pledge against {pledge['businesses']:,.0f} businesses ({pledge['eligible']:,.0f} eligible, one "
          f"offer each); NIBIssued stream of {stream['events']:,.0f} against {stream['pledges']:.0f} open pledges "
          f"({stream['offers']:,.0f} offers made)")  # fmt: skip
    table.header()
    floor = pledge["sql_s"] + pledge["raw_publish_s"]
    table.row("new pledge -> last FundingMatched on Kafka", f"{pledge['match_s']:.2f} s", f"floor {floor:.2f} s",
         f"{pledge['match_s'] / floor:.1f}x", "<= 3x", pledge["match_s"] <= 3 * floor)  # fmt: skip
    table.row("  the same, in seconds", f"{pledge['match_s']:.2f} s", "", "", "<= 2 s", pledge["match_s"] <= 2.0)
    print(f"  (floor: the SQL selecting the eligible set, {pledge['sql_s']:.3f} s, plus raw aiokafka publishing the "
          f"{pledge['events']:,.0f} events funding published with the relay's settings, {pledge['raw_publish_s']:.2f} s)")
    print(f"  (where the {pledge['match_s']:.2f} s went: the pledge's CSRPledged back from Kafka and taken by the "
          f"matcher {pledge['began_s']:.2f} s; matching, one transaction writing the offers and their "
          f"{pledge['events']:,.0f} outbox rows {pledge['matched_s']:.2f} s; the relay publishing them after the "
          f"commit {pledge['relayed_s']:.2f} s)")  # fmt: skip
    print(f"    {pledge['cpu']}")
    view = stream["events"] / stream["stream_s"]
    raw = stream["events"] / stream["raw_consumer_s"]
    table.row("view consumer, NIBIssued (issue's mix)", f"{view:,.0f} ev/s", f"raw cons. {raw:,.0f}/s",
         f"{view / raw:.1%}", ">= 25%", view / raw >= 0.25)  # fmt: skip
    print(f"    {stream['cpu']} (from producing the events)")
    no_match = stream["events"] / stream["no_match_s"]
    table.row("view consumer, NIBIssued no pledge wants", f"{no_match:,.0f} ev/s", f"raw cons. {raw:,.0f}/s",
         f"{no_match / raw:.1%}", "", None)  # fmt: skip
    share = max(0.0, stream["stream_s"] - stream["no_match_s"]) / stream["stream_s"]
    print(f"  matching (offers made, {stream['offers'] / stream['events']:.2f} per event) takes {share:.0%} of the "
          f"stream's time; raw aiokafka read + parse alone: {stream['events'] / stream['raw_read_s']:,.0f} ev/s")  # fmt: skip

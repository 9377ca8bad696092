"""Funding's matching speed, on a real funding process, PostgreSQL and Kafka.

1. A new pledge against 100,000 known businesses: seconds from POST /pledges to the last FundingMatched on Kafka,
   against a plain SQL query selecting the same eligible set, in the same run.
2. A stream of NIBIssued events against 50 open pledges: events per second through funding's view consumer (inbox,
   view update, matching, outbox), against raw aiokafka reading the same records from the same broker.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from berdaya.stack.local import run_service, throwaway_env
from berdaya.stack.postgres import ensure_database
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.auth import TokenService
from shared.contracts import new_envelope
from shared.contracts.registry import BusinessRegistered, NIBIssued
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, namespaced
from shared.reference.wilayah import kota_kupang
from shared.messaging.kafka import KafkaAccess

SECRET = "benchmark-secret-benchmark-secret-benchmark"
KBLI = ("10130", "10792", "56102", "56103", "47112", "13122", "96112", "45405")
VIEW_COLUMNS = ("business_id", "version", "business_name", "contact_phone", "kecamatan_code", "kbli_code", "scale",
                "youth_owned", "youth_until", "women_owned", "nib_status", "status", "annual_sales_rupiah",
                "registered_at", "trainings", "funded_count", "eligible_since")  # fmt: skip


def _views(count: int, rng: random.Random) -> list[tuple]:
    kecamatan = [k.code for k in kota_kupang().kecamatan]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        youth = rng.random() < 0.3
        rows.append((uuid.uuid4(), 2, f"Usaha {i}", f"+62812{i:08d}", rng.choice(kecamatan), rng.choice(KBLI),
                     "micro", youth, date(2040, 1, 1) if youth else None, rng.random() < 0.55,
                     "issued" if rng.random() < 0.7 else "none", "active", rng.randrange(10, 900) * 1_000_000,
                     start + timedelta(minutes=i), [], 0, start))  # fmt: skip
    return rows


class Funding:
    def __init__(self, infra: Throwaway, label: str) -> None:
        self.infra, self.namespace = infra, f"bench-{label}-{uuid.uuid4().hex[:6]}"
        self.env = throwaway_env(infra.kafka, self.namespace, SECRET)
        self.auth = {"Authorization": f"Bearer {TokenService(SECRET).mint('bench', ['sponsor'])}"}

    async def start(self) -> None:
        self.database = await ensure_database(self.infra.postgres_url, f"bench_funding_{uuid.uuid4().hex[:6]}")
        self.process = run_service("funding", self.env, self.database, self.infra.base / f"{self.namespace}.log")
        async with httpx.AsyncClient(timeout=30) as http:
            self.sponsor = (await http.post(f"{self.process.url}/sponsors", json={"name": "Bank NTT", "kind": "bank"},
                                            headers=self.auth)).json()["id"]  # fmt: skip

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
            started = time.perf_counter()
            # Enough money for every eligible business, so the run ends with one offer each.
            await funding.pledge(http, total=offers * 1_000_000, amount=1_000_000, kbli=["10", "11", "56"], nib_required=True)
        last = await _count_matched(infra.kafka, funding.topic(FUNDING_PLEDGE), offers)
        return {"businesses": businesses, "eligible": offers, "match_s": last - started, "sql_s": sql_seconds}
    finally:
        funding.stop()


async def bench_nib_stream(infra: Throwaway, events: int = 5_000, pledges: int = 50) -> dict[str, float]:
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
        registered, issued = [], []
        for i in range(events):
            b = BusinessRegistered(
                business_id=uuid.uuid4(), business_version=1, business_name=f"Usaha {i}", kbli_code=rng.choice(KBLI),
                kbli_version=2020, kecamatan="Oebobo", kecamatan_code=rng.choice([k.code for k in kota_kupang().kecamatan]),
                kecamatan_bps="5371030", kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro",
                scale_basis="annual_sales", annual_sales_rupiah=100_000_000, youth_owned=False, women_owned=True,
                nib_status="none", contact_phone=f"+62813{i:08d}", status="active", registered_at=datetime.now(UTC),
                source="import",
            )  # fmt: skip
            registered.append(b)
            issued.append(NIBIssued(business_id=b.business_id, business_version=2, application_id=None,
                                    nib=f"{9200000000000 + i}", issued_on=date.today(), kecamatan_code=b.kecamatan_code))  # fmt: skip
        conn = await asyncpg.connect(funding.database)
        try:
            await _produce(infra.kafka, topic, registered)
            while await conn.fetchval("SELECT count(*) FROM business_view") < events:
                await asyncio.sleep(0.2)
            matched_before = await conn.fetchval("SELECT count(*) FROM offer")
            started = time.perf_counter()
            await _produce(infra.kafka, topic, issued)
            while await conn.fetchval("SELECT count(*) FROM business_view WHERE nib_status = 'issued'") < events:
                await asyncio.sleep(0.1)
            stream_seconds = time.perf_counter() - started
            offers = await conn.fetchval("SELECT count(*) FROM offer") - matched_before
        finally:
            await conn.close()
        raw_seconds = await _raw_read(infra.kafka, topic, 2 * events)
        return {"events": events, "pledges": pledges, "offers": offers, "stream_s": stream_seconds,
                "raw_read_s": raw_seconds * events / (2 * events)}  # fmt: skip
    finally:
        funding.stop()


async def _produce(bootstrap: KafkaAccess | str, topic: str, payloads: list) -> None:  # noqa: ANN001
    producer = AIOKafkaProducer(**KafkaAccess.of(bootstrap).aiokafka(), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for payload in payloads:
            envelope = new_envelope(payload, producer="registry", correlation_id=uuid.uuid4())
            futures.append(await producer.send(topic, envelope.to_json_bytes(), key=envelope.aggregate_id.encode()))
        await asyncio.gather(*futures)
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


def report(pledge: dict[str, float], stream: dict[str, float]) -> None:
    print()
    print(f"A new pledge against {pledge['businesses']:,.0f} known businesses ({pledge['eligible']:,.0f} eligible, one offer each):")
    print(f"  last FundingMatched on Kafka after {pledge['match_s']:.2f}s "
          f"({pledge['eligible'] / pledge['match_s']:,.0f} offers/s); plain SQL selecting the same set: {pledge['sql_s']:.3f}s")  # fmt: skip
    print(f"NIBIssued stream of {stream['events']:,.0f} events against {stream['pledges']:.0f} open pledges "
          f"({stream['offers']:,.0f} offers made):")  # fmt: skip
    print(f"  funding view + matching: {stream['events'] / stream['stream_s']:,.0f} events/s; "
          f"raw aiokafka reading and parsing the same records: {stream['events'] / stream['raw_read_s']:,.0f} events/s")

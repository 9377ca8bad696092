"""Funding on real PostgreSQL and Kafka under contention: two funding processes consume different partitions
while HTTP accepts and declines race them, and still no pledge is over-allocated and no business gets two offers
from one pledge. Also: replaying the registry topic into an empty database rebuilds the same view, and duplicate
deliveries change nothing."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from shared.contracts import Envelope, new_envelope
from shared.contracts.registry import BusinessClosed, BusinessRegistered, NIBIssued
from shared.contracts.topics import REGISTRY_BUSINESS, namespaced
from shared.messaging.kafka import ensure_topics, forget_consumer_group, with_dead_letters
from tests.integration.funding_events import envelopes, nib_issued, produce, registered
from tests.support import TEST_SECRET, drop_database, eventually, fresh_database, service_env, start_service

pytestmark = pytest.mark.integration

def pledge_body(sponsor_id: str, title: str, total: int, amount: int, mode: str = "fixed", **earmarks) -> dict:  # noqa: ANN003
    today = date.today()
    return {"sponsor_id": sponsor_id, "title": title, "instrument": "grant", "total_rupiah": total, "amount_mode": mode,
            "amount_per_business_rupiah": amount, "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=30)).isoformat(),
            "earmarks": {"kecamatan": ["Oebobo"], "kbli": ["56"], "youth_owned_only": True, "nib_required": True,
                         **earmarks}}  # fmt: skip


async def test_two_funding_processes_and_racing_http_calls_never_over_allocate_or_offer_twice(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_TOPIC_PARTITIONS": "6"}
    database = await fresh_database(infra.postgres_url)
    processes = [start_service("funding", env, database, tmp_path / f"funding-{i}.log") for i in range(2)]
    tokens = TokenService(TEST_SECRET)
    officer = {"Authorization": f"Bearer {tokens.mint('it-officer', ['officer'])}"}
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            a, b = (p.url for p in processes)
            sponsor_id = (await http.post(f"{a}/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=officer)).json()["id"]
            sponsor = {"Authorization": f"Bearer {tokens.mint('it-sponsor', ['sponsor'], sponsor_id=uuid.UUID(sponsor_id))}"}
            pledges = []
            for body in (pledge_body(sponsor_id, "fixed 10 x 5jt", 50_000_000, 5_000_000),
                         pledge_body(sponsor_id, "capped 23jt at 5jt", 23_000_000, 5_000_000, "capped"),
                         pledge_body(sponsor_id, "fixed 60 x 1jt", 60_000_000, 1_000_000)):  # fmt: skip
                response = await http.post(f"{a}/pledges", json=body, headers=sponsor)
                assert response.status_code == 201, response.text
                pledges.append(response.json()["id"])

            businesses = [registered(i) for i in range(150)] + [registered(i, youth=False) for i in range(150, 170)]
            topic = namespaced(REGISTRY_BUSINESS, namespace)
            await produce(infra.kafka, topic, businesses)
            await produce(infra.kafka, topic, [nib_issued(x) for x in businesses])

            rng = random.Random(4)
            decided: set[str] = set()

            async def race() -> None:
                # Both processes take HTTP calls while both consume; each answer is sent twice in parallel, one to
                # each process, as a client retrying would: it is recorded once, and both calls are told so, unless
                # the other racer answered the offer otherwise first, which is refused cleanly.
                for _ in range(40):
                    pledge_id = rng.choice(pledges)
                    offers = (await http.get(f"{rng.choice([a, b])}/pledges/{pledge_id}/offers",
                                             params={"status": "offered"}, headers=sponsor)).json()  # fmt: skip
                    if not offers:
                        await asyncio.sleep(0.05)
                        continue
                    offer = rng.choice(offers)
                    verb = rng.choice(["accept", "decline"])
                    body = {"reason": "pemilik menolak"} if verb == "decline" else None
                    calls = [http.post(f"{url}/offers/{offer['id']}/{verb}", json=body, headers=officer) for url in (a, b)]
                    answers = await asyncio.gather(*calls)
                    codes = sorted(r.status_code for r in answers)
                    assert codes in ([200, 200], [200, 409], [409, 409]), [r.text for r in answers]
                    told = [r.json() for r in answers if r.status_code == 200]
                    assert all(t == told[0] for t in told), told  # the same offer, as the first call left it
                    decided.add(offer["id"])

            await asyncio.gather(race(), race())

            conn = await asyncpg.connect(database)
            try:
                async def view_complete() -> bool:
                    return await conn.fetchval("SELECT count(*) FROM business_view WHERE nib_status = 'issued'") == 170

                assert await eventually(view_complete, timeout=90)
                await asyncio.sleep(1)  # let the last matches commit
                pledge_rows = await conn.fetch("SELECT * FROM pledge")
                for p in pledge_rows:
                    sums = {r["status"]: r["amount"] for r in await conn.fetch(
                        "SELECT status, sum(amount_rupiah) AS amount FROM offer WHERE pledge_id = $1 GROUP BY 1", p["id"])}  # fmt: skip
                    assert p["reserved_rupiah"] + p["accepted_rupiah"] + p["disbursed_rupiah"] <= p["total_rupiah"]
                    assert (sums.get("offered", 0), sums.get("accepted", 0)) == (p["reserved_rupiah"], p["accepted_rupiah"])
                    # 150 eligible businesses are more than any pledge can pay for: each must be exhausted.
                    assert p["status"] == "exhausted", dict(p)
                doubles = await conn.fetchval(
                    "SELECT count(*) FROM (SELECT 1 FROM offer GROUP BY pledge_id, business_id HAVING count(*) > 1) d")
                assert doubles == 0
                non_youth = await conn.fetchval(
                    "SELECT count(*) FROM offer o JOIN business_view b USING (business_id) WHERE NOT b.youth_owned")
                assert non_youth == 0
                capped = next(p for p in pledge_rows if p["title"].startswith("capped"))
                amounts = sorted(r["amount_rupiah"] for r in await conn.fetch(
                    "SELECT amount_rupiah FROM offer WHERE pledge_id = $1 AND status IN ('offered', 'accepted')", capped["id"]))  # fmt: skip
                assert sum(amounts) <= 23_000_000 and all(x >= 2_500_000 for x in amounts)
                assert decided, "the race never found an offer to answer"
            finally:
                await conn.close()
    finally:
        for p in processes:
            stop_pid(p.pid)
        await drop_database(infra.postgres_url, database)


async def test_replaying_the_registry_topic_into_an_empty_database_rebuilds_the_same_view(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    topic = namespaced(REGISTRY_BUSINESS, namespace)
    businesses = [registered(i, kec=i % 2, kbli="10130" if i % 3 else "47112") for i in range(60)]
    events = envelopes([*businesses, *[nib_issued(b) for b in businesses[:40]], BusinessClosed(
        business_id=businesses[5].business_id, business_version=3, reason="tutup", closed_at=datetime.now(UTC),
        kecamatan_code=businesses[5].kecamatan_code)])  # fmt: skip
    await ensure_topics(infra.kafka, with_dead_letters([topic], 3, 1))
    await produce(infra.kafka, topic, events)
    await produce(infra.kafka, topic, events[:30])  # duplicates on the wire, as after a relay restart

    async def build_view(log: str) -> list[dict]:
        database = await fresh_database(infra.postgres_url)
        service = start_service("funding", env, database, tmp_path / log)
        conn = await asyncpg.connect(database)
        try:
            async def complete() -> bool:
                return await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'funding-view'") == len(events)

            assert await eventually(complete, timeout=60)
            await asyncio.sleep(1.5)  # had the duplicates made extra rows, they would be here by now
            assert await conn.fetchval("SELECT count(*) FROM inbox") == len(events)
            rows = await conn.fetch("SELECT * FROM business_view ORDER BY business_id")
            return [dict(r) for r in rows]
        finally:
            await conn.close()
            stop_pid(service.pid)
            await drop_database(infra.postgres_url, database)

    first = await build_view("first.log")
    assert len(first) == 60
    assert sum(r["nib_status"] == "issued" for r in first) == 40
    assert [r["status"] for r in first].count("closed") == 1
    forget_consumer_group(infra.kafka, namespaced("funding-view", namespace))
    assert await build_view("replayed.log") == first

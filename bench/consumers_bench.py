"""The notifier's and training's consumers against the raw consumer baseline: the same records read from the same
broker by the least work any correct consumer must do, in the same run.

The notifier records a welcome message in Bahasa Indonesia per registration (contact, message row, outbox), and an
offer's message per FundingMatched, as a pledge matched against a city makes them by the thousand (offer kept,
message, delivery planned); training keeps the business in its view for cohorts and pathways. Funding's consumer has
its own, richer benchmark (funding_bench), because matching work depends on the pledges open.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import table
from bench.cpu import CpuMeter, postgres_pids
from bench.funding_bench import KBLI, SECRET, business_stream, produce, raw_consumer
from berdaya.stack.local import run_service, throwaway_env
from berdaya.stack.postgres import ensure_database
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.contracts.funding import FundingMatched
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, namespaced

# (service, the contract it is sent)
STREAMS = (("notifier", "BusinessRegistered"), ("notifier", "FundingMatched"), ("training", "BusinessRegistered"))


def offers_stream(events: int, first: int) -> list[FundingMatched]:
    """One pledge's offers to `events` businesses: all on the pledge's partition, in order, as funding publishes them."""
    pledge_id, now = uuid.uuid4(), datetime.now(UTC)
    return [FundingMatched(pledge_id=pledge_id, offer_id=uuid.uuid4(), business_id=uuid.uuid4(), amount_rupiah=5_000_000,
                           business_name=f"Usaha {first + n}", contact_phone=f"+62813{first + n:08d}",
                           kecamatan_code="53.71.04", sponsor_name="Bank NTT", instrument="grant",
                           financing_programme=None, readiness=70, rank=n + 1, offered_at=now,
                           expires_at=now + timedelta(days=14)) for n in range(events)]  # fmt: skip


async def bench_consumer(infra: Throwaway, service: str, events: int, contract: str = "BusinessRegistered",
                         ) -> dict[str, object]:  # fmt: skip
    """Seconds from producing `events` records of the contract to the service's inbox holding all of them; then the
    raw consumer on the same records."""
    namespace = f"bench-{service}-{uuid.uuid4().hex[:6]}"
    database = await ensure_database(infra.postgres_url, f"bench_{service}_{uuid.uuid4().hex[:6]}")
    process = run_service(service, throwaway_env(infra.kafka, namespace, SECRET), database,
                          infra.base / f"{namespace}.log")  # fmt: skip
    if contract == "FundingMatched":
        topic, producer_name = namespaced(FUNDING_PLEDGE, namespace), "funding"
        warm_up, registered = offers_stream(1, events), offers_stream(events, 0)
    else:
        topic, producer_name = namespaced(REGISTRY_BUSINESS, namespace), "registry"
        warm_up, _ = business_stream(random.Random(2), 1, KBLI, events)
        registered, _ = business_stream(random.Random(3), events, KBLI, 0)
    conn = await asyncpg.connect(database)
    meter = CpuMeter({service: [process.pid], "PostgreSQL": lambda: postgres_pids(infra)})
    try:
        # One event first, so that joining the consumer group is not counted (the raw consumer's is not either).
        await produce(infra.kafka, topic, warm_up, producer_name)
        while not await conn.fetchval("SELECT count(*) FROM inbox"):
            await asyncio.sleep(0.05)
        since_ms = int(time.time() * 1000) - 1
        meter.start()
        started = time.perf_counter()
        producing = asyncio.create_task(produce(infra.kafka, topic, registered, producer_name))
        # From the first batch applied to the last: the consumer's own pace, not the producer's (the raw consumer
        # reads records already there, so its figure holds no producing either).
        first: tuple[float, int] | None = None
        last_report = started
        while (done := await conn.fetchval("SELECT count(*) FROM inbox") - 1) < events:
            if done and first is None:
                first = (time.perf_counter(), done)
            if time.perf_counter() - last_report > 10:
                print(f"  {service}: {done:,} of {events:,} applied", flush=True)
                last_report = time.perf_counter()
            await asyncio.sleep(0.01)
        finished = time.perf_counter()
        await producing
        meter.stop()
        first = first or (started, 0)
        seconds = max(1e-3, (finished - first[0]) * events / max(1, events - first[1]))
    finally:
        await conn.close()
        stop_pid(process.pid)
    raw_events, raw_seconds = await raw_consumer(infra, topic, since_ms)
    return {"service": service, "contract": contract, "events": events, "seconds": seconds, "raw_s": raw_seconds * events / raw_events,
            "cpu": meter.summary(finished - started)}  # fmt: skip


def report(results: list[dict[str, object]]) -> None:
    print()
    table.header()
    for r in results:
        events, seconds, raw = int(r["events"]), float(r["seconds"]), float(r["raw_s"])  # type: ignore[arg-type]
        ratio = raw / seconds
        table.row(f"{r['service']} consumer, {r['contract']}", f"{events / seconds:,.0f} ev/s",
                  f"raw cons. {events / raw:,.0f}/s", f"{ratio:.1%}", ">= 25%", ratio >= 0.25)  # fmt: skip
        print(f"    {r['cpu']}")
    print("raw consumer: aiokafka group reading the same records, one transaction per batch of 200 writing the inbox")
    print("rows and one effect row per event with executemany, then committing the offsets")

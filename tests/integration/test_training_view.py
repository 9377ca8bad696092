"""Training's view of businesses on real PostgreSQL and Kafka: replaying the registry topic (the mechanism of
`berdaya replay training-view`) rebuilds the same view and invites nobody again, and duplicate deliveries of
registry and funding events change nothing."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from berdaya.stack.process import stop_pid
from services.training.replay import TRAINING_VIEW
from shared.contracts import Envelope
from shared.contracts.funding import FundingAccepted
from shared.contracts.registry import BusinessRegistered, BusinessUpdated
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, namespaced
from shared.messaging.kafka import topic_extent
from shared.messaging.replay import StillRunning, rebuild, still_held
from tests.integration.funding_events import closed, envelopes, nib_issued, produce, registered
from tests.integration.test_training_fill import TRAINER, define_programme, food, plan_cohort
from tests.support import drop_database, eventually, fresh_database, service_env, start_service

pytestmark = pytest.mark.integration


def registry_history() -> list[Envelope]:
    """20 food businesses given NIBs, some renamed, two closed, and a medium one; each in its own envelope."""
    businesses = [food(i) for i in range(20)]
    events: list = [*businesses, *(nib_issued(b) for b in businesses)]
    for b in businesses[:5]:
        fields = {k: v for k, v in b.model_dump().items() if k not in ("source", "business_version", "business_name")}
        events.append(BusinessUpdated(**{**fields, "nib_status": "issued", "nib": "8120000000009"}, business_version=3,
                                      business_name=f"{b.business_name} Baru", changed_fields=("business_name",)))  # fmt: skip
    events += [closed(businesses[6], 3), closed(businesses[7], 3)]
    events.append(registered(500, kbli="10792").model_copy(update={"scale": "medium"}))
    return envelopes(events)


async def snapshot(database: str) -> dict[str, list]:
    conn = await asyncpg.connect(database)
    try:
        return {
            "view": [dict(r) for r in await conn.fetch("SELECT * FROM business_view ORDER BY business_id")],
            "seats": [dict(r) for r in await conn.fetch(
                "SELECT cohort_id, business_id, status, need, queue_no FROM seat ORDER BY cohort_id, business_id")],
            "participants": [dict(r) for r in await conn.fetch("SELECT * FROM participant ORDER BY business_id")],
            "pathways": [dict(r) for r in await conn.fetch(
                "SELECT business_id, not_eligible, steps_done FROM pathway ORDER BY business_id")],
            "funding": [dict(r) for r in await conn.fetch("SELECT * FROM funding_accepted ORDER BY business_id, offer_id")],
            "outbox": [dict(r) for r in await conn.fetch("SELECT event_id, type, aggregateid FROM outbox ORDER BY id")],
        }  # fmt: skip
    finally:
        await conn.close()


async def inbox_count(database: str, consumer: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", consumer)
    finally:
        await conn.close()


async def open_halal_cohort(url: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        programme = await define_programme(http, url)
        cohort = await plan_cohort(http, url, programme["id"], capacity=3)
        assert (await http.post(f"{url}/cohorts/{cohort['id']}/open", headers=TRAINER)).status_code == 200


def all_read(database: str, history: list[Envelope]) -> Callable[[], Awaitable[bool]]:
    """Whether training's view consumer has applied every event of `history`."""

    async def consumed() -> bool:
        return await inbox_count(database, "training-view") == len(history)

    return consumed


async def test_replaying_the_registry_topic_rebuilds_the_same_view_and_invites_nobody_again(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", env, database, tmp_path / "training.log")
    history = registry_history()
    try:
        await open_halal_cohort(training.url)
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace), history)
        consumed = all_read(database, history)

        assert await eventually(consumed, timeout=60)
        await asyncio.sleep(1)
        before = await snapshot(database)
        assert len(before["view"]) == 21
        assert sum(s["status"] == "enrolled" for s in before["seats"]) == 3
        assert sum(s["status"] == "waitlisted" for s in before["seats"]) == 3
        assert [p["not_eligible"] for p in before["pathways"]] == ["not_micro_or_small"]

        with pytest.raises(StillRunning):
            await rebuild(TRAINING_VIEW, database_url=database, kafka=infra.kafka, namespace=namespace)
        stop_pid(training.pid)
        removed = await rebuild(TRAINING_VIEW, database_url=database, kafka=infra.kafka,
                                namespace=namespace)  # fmt: skip
        assert removed == {"business_view": 21, "inbox": len(history)}
        emptied = await snapshot(database)
        assert emptied["view"] == [] and emptied["seats"] == before["seats"] and emptied["outbox"] == before["outbox"]

        training = start_service("training", env, database, tmp_path / "training-again.log")
        assert await eventually(consumed, timeout=60)
        await asyncio.sleep(1.5)  # had the replay invited anyone, it would be in the outbox by now
        assert await snapshot(database) == before
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)


def corrected_history(filler: int) -> tuple[BusinessRegistered, list[Envelope]]:
    """A food business given an NIB, typed in as medium, then corrected to small; `filler` other businesses'
    registrations between each step, so that read again the steps come in different batches."""
    b = food(900)
    fields = {k: v for k, v in b.model_dump().items() if k not in ("source", "business_version")}
    fields |= {"nib_status": "issued", "nib": "8120000000900"}

    def others(start: int) -> list:
        return [registered(start + i, kbli="47111") for i in range(filler)]  # retail: no need a halal cohort serves

    events = [b, nib_issued(b), *others(1000),
              BusinessUpdated(**{**fields, "scale": "medium"}, business_version=3, changed_fields=("scale",)),
              *others(5000),
              BusinessUpdated(**{**fields, "scale": "small"}, business_version=4, changed_fields=("scale",))]
    return b, envelopes(events)


async def test_history_read_again_neither_withdraws_nor_tells_anyone_again_and_the_catch_up_is_settled(
    infra, tmp_path: Path
):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", env, database, tmp_path / "training.log")
    business, history = corrected_history(filler=1300)
    try:
        await open_halal_cohort(training.url)
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace), history)
        consumed = all_read(database, history)

        assert await eventually(consumed, timeout=120)
        await asyncio.sleep(1)
        before = await snapshot(database)
        told = [r["type"] for r in before["outbox"] if r["aggregateid"] == str(business.business_id)]
        assert told.count("PathwayNotEligible") == 1 and "TraineeWithdrew" in told  # live, once, when marked medium

        stop_pid(training.pid)
        await rebuild(TRAINING_VIEW, database_url=database, kafka=infra.kafka, namespace=namespace)
        conn = await asyncpg.connect(database)
        try:
            ends = await conn.fetch("SELECT consumer, topic, end_offset FROM catch_up")
        finally:
            await conn.close()
        # Where each partition's end was when the rebuild looked: a fresh topic's ends add up to its records.
        registry_topic = namespaced(REGISTRY_BUSINESS, namespace)
        assert {(r["consumer"], r["topic"]) for r in ends} == {("training-view", registry_topic)}
        assert sum(r["end_offset"] for r in ends) == len(history)

        training = start_service("training", env, database, tmp_path / "training-again.log")
        assert await eventually(consumed, timeout=120)

        async def settled() -> bool:
            return await still_held(TRAINING_VIEW, database) == 0

        assert await eventually(settled, timeout=60)
        await asyncio.sleep(1.5)  # had the replay or its settling set anything off, it would be in the outbox by now
        assert await snapshot(database) == before
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)


async def test_a_cohort_opened_while_the_view_reads_history_is_filled_by_need_only_once_it_has_caught_up(
    infra, tmp_path: Path
):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", service_env(infra.kafka, namespace), database, tmp_path / "training.log")
    topic = namespaced(REGISTRY_BUSINESS, namespace)
    later = [food(i, day=20 + i) for i in range(3)]  # read first
    earlier = [food(10 + i, day=1 + i) for i in range(3)]  # registered first, read last
    conn = await asyncpg.connect(database)

    async def held(n: int) -> bool:
        return await conn.fetchval("SELECT count(*) FROM catch_up_held") == n

    try:
        # As `berdaya replay training-view` leaves it: every partition of the registry's topic still to be read far.
        await conn.executemany("INSERT INTO catch_up (consumer, topic, partition, end_offset) VALUES ($1, $2, $3, $4)",
                               [("training-view", topic, p, 1_000_000)
                                for _, p in topic_extent(infra.kafka, [topic])])  # fmt: skip
        await produce(infra.kafka, topic, [*later, *(nib_issued(b) for b in later)])
        assert await eventually(lambda: held(3), timeout=60)
        await open_halal_cohort(training.url)  # capacity 3
        await produce(infra.kafka, topic, [*earlier, *(nib_issued(b) for b in earlier)])
        assert await eventually(lambda: held(6), timeout=60)
        await asyncio.sleep(2.5)  # a catch-up job's round: had it filled the cohort meanwhile, the seats would be there
        assert await conn.fetchval("SELECT count(*) FROM seat") == 0

        await conn.execute("DELETE FROM catch_up")  # what the consumer does once it has read that far
        assert await eventually(lambda: conn.fetchval("SELECT count(*) = 6 FROM seat"), timeout=60)
        seats = {r["business_id"]: r["status"] for r in await conn.fetch("SELECT business_id, status FROM seat")}
        assert {b.business_id for b in earlier} == {b for b, status in seats.items() if status == "enrolled"}
    finally:
        await conn.close()
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)


async def test_duplicate_deliveries_of_registry_and_funding_events_change_nothing(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", env, database, tmp_path / "training.log")
    history = registry_history()
    weavers = [registered(600 + i, kbli="13122", youth=False) for i in range(8)]
    registry_events = [*history, *envelopes(weavers)]
    accepted = envelopes([FundingAccepted(pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=w.business_id,
                                          amount_rupiah=5_000_000, accepted_at=datetime.now(UTC)) for w in weavers],
                         producer="funding")  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            for programme in (await define_programme(http, training.url),
                              await define_programme(http, training.url, topic="financial_bookkeeping", requires_nib=False,
                                                     needs=["funded_bookkeeping"], title="Pembukuan dengan SI APIK")):  # fmt: skip
                cohort = await plan_cohort(http, training.url, programme["id"], capacity=4)
                assert (await http.post(f"{training.url}/cohorts/{cohort['id']}/open", headers=TRAINER)).status_code == 200
            registry_topic = namespaced(REGISTRY_BUSINESS, namespace)
            funding_topic = namespaced(FUNDING_PLEDGE, namespace)
            await produce(infra.kafka, registry_topic, registry_events)
            await produce(infra.kafka, funding_topic, accepted)

            async def consumed() -> bool:
                return (await inbox_count(database, "training-view") == len(registry_events)
                        and await inbox_count(database, "training-funding") == len(accepted))  # fmt: skip

            assert await eventually(consumed, timeout=60)
            await asyncio.sleep(1)
            before = await snapshot(database)
            assert sum(s["need"] == "funded_bookkeeping" and s["status"] == "enrolled" for s in before["seats"]) == 4

            # Every event again, as a relay restarted after publishing would send them: new offsets, same event ids.
            await produce(infra.kafka, registry_topic, registry_events)
            await produce(infra.kafka, funding_topic, accepted)

            async def absorbed() -> bool:
                text = (await http.get(f"{training.url}/metrics")).text
                return (_counter(text, "berdaya_inbox_duplicates_total", "training-view") == len(registry_events)
                        and _counter(text, "berdaya_inbox_duplicates_total", "training-funding") == len(accepted))  # fmt: skip

            assert await eventually(absorbed, timeout=60)
            await asyncio.sleep(1)
            assert await snapshot(database) == before
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)


def _counter(metrics: str, name: str, consumer: str) -> float:
    found = re.search(rf'^{name}\{{consumer="{re.escape(consumer)}"\}} (\S+)$', metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


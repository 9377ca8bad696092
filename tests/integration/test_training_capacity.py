"""Training under contention on real PostgreSQL and Kafka: two training processes consume the registry's events
(each its own partitions) and both take racing HTTP enrolments and withdrawals for the same cohort, while the cohort
is opened; capacity is never exceeded, nobody holds two seats of one cohort, and each business's events on Kafka
still follow one another."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from berdaya.stack.process import stop_pid
from shared.contracts.topics import REGISTRY_BUSINESS, TRAINING_PARTICIPANT, namespaced
from tests.integration.funding_events import produce, registered
from tests.integration.test_training_fill import (
    OFFICER,
    TRAINER,
    assert_consecutive,
    by_business,
    define_programme,
    plan_cohort,
)
from tests.support import drop_database, eventually, fresh_database, read_topic, service_env, start_service

pytestmark = pytest.mark.integration

CAPACITY = 8


async def test_two_processes_and_racing_http_enrolments_never_exceed_capacity_or_seat_anyone_twice(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_TOPIC_PARTITIONS": "4"}
    database = await fresh_database(infra.postgres_url)
    processes = [start_service("training", env, database, tmp_path / f"training-{i}.log") for i in range(2)]
    rng = random.Random(8)
    topic = namespaced(REGISTRY_BUSINESS, namespace)
    try:
        # Weavers the programme has no need-based invitation for, enrolled by hand on both processes at once while
        # youth-owned businesses arrive and both processes' consumers invite them by need into the same seats.
        weavers = [registered(i, kbli="13122", kec=i % 2, youth=False) for i in range(30)]
        await produce(infra.kafka, topic, weavers)
        conn = await asyncpg.connect(database)
        try:
            assert await eventually(lambda: _equals(conn, "SELECT count(*) FROM business_view", 30), timeout=60)
            async with httpx.AsyncClient(timeout=60) as http:
                a, b = (p.url for p in processes)
                programme = await define_programme(http, a, needs=["youth_digital"], requires_nib=False,
                                                   topic="digital_marketing", title="Pemasaran di Instagram dan TikTok")  # fmt: skip
                cohort = await plan_cohort(http, b, programme["id"], capacity=CAPACITY)
                cohort_url = f"/cohorts/{cohort['id']}"
                answers: list[tuple[str, int, str]] = []

                async def enrol_twice(business_id: str) -> None:
                    # The same enrolment sent to both processes at once: one may win, the other must be refused.
                    await asyncio.sleep(rng.random() * 0.5)
                    calls = [http.post(f"{url}{cohort_url}/enrolments", json={"business_id": business_id},
                                       headers=OFFICER) for url in (a, b)]  # fmt: skip
                    for r in await asyncio.gather(*calls):
                        answers.append(("enrol", r.status_code, r.text))

                async def withdraw_someone() -> None:
                    await asyncio.sleep(rng.random() * 0.3)
                    target = str(rng.choice(weavers).business_id)
                    r = await http.post(f"{rng.choice([a, b])}{cohort_url}/enrolments/{target}/withdraw", headers=OFFICER)
                    answers.append(("withdraw", r.status_code, r.text))

                async def youth_food_arrives() -> None:
                    await produce(infra.kafka, topic, [registered(100 + i, youth=True) for i in range(25)])

                opened = http.post(f"{a}{cohort_url}/open", headers=TRAINER)
                racing = [enrol_twice(str(w.business_id)) for w in weavers]
                results = await asyncio.gather(opened, youth_food_arrives(), *racing,
                                               *[withdraw_someone() for _ in range(10)])  # fmt: skip
                assert results[0].status_code == 200, results[0].text
                for kind, status, text in answers:
                    assert status in (200, 201, 409), (kind, status, text)
                assert any(status == 201 for kind, status, _ in answers if kind == "enrol"), "no enrolment ever won"
                assert await eventually(lambda: _equals(conn, "SELECT count(*) FROM inbox WHERE consumer = 'training-view'",
                                                        55), timeout=90)  # fmt: skip
                await asyncio.sleep(1)  # the last refills commit

            row = await conn.fetchrow("SELECT capacity, enrolled, waitlisted FROM cohort WHERE id = $1",
                                      uuid.UUID(cohort["id"]))  # fmt: skip
            seats = await conn.fetch("SELECT business_id, status FROM seat WHERE cohort_id = $1", uuid.UUID(cohort["id"]))
            enrolled = [s["business_id"] for s in seats if s["status"] == "enrolled"]
            waiting = [s["business_id"] for s in seats if s["status"] == "waitlisted"]
            assert len(enrolled) == row["enrolled"] == CAPACITY  # full: more wanted a seat than there were
            assert len(waiting) == row["waitlisted"] <= CAPACITY
            assert len({s["business_id"] for s in seats}) == len(seats)
            full_answers = [text for kind, status, text in answers if status == 409 and kind == "enrol"]
            assert full_answers and all(json.loads(t)["code"] in ("cohort_full", "already_enrolled", "cohort_state")
                                        for t in full_answers)  # fmt: skip

            # On Kafka: each business's versions follow one another, and it is enrolled at most once at a time.
            expected = await conn.fetchval("SELECT count(*) FROM outbox WHERE aggregatetype = 'participant'")
            records = await read_topic(infra.kafka, namespaced(TRAINING_PARTICIPANT, namespace), expect=expected)
            events = by_business(records)
            assert_consecutive(events)
            final = {b: _seat_after(es) for b, es in events.items()}
            assert {b for b, state in final.items() if state == "enrolled"} == {str(b) for b in enrolled}
            assert {b for b, state in final.items() if state == "waitlisted"} == {str(b) for b in waiting}
        finally:
            await conn.close()
    finally:
        for p in processes:
            stop_pid(p.pid)
        await drop_database(infra.postgres_url, database)


async def _equals(conn: asyncpg.Connection, sql: str, expected: int) -> bool:
    return await conn.fetchval(sql) == expected


def _seat_after(envelopes: list[dict]) -> str | None:
    """Where a business's events leave it in the one cohort, checking each step is one a seat can take."""
    state = None
    for e in envelopes:
        kind = e["event_type"]
        if kind == "TraineeInvited":
            assert state is None, [x["event_type"] for x in envelopes]
            state = "invited"
        elif kind == "TraineeWaitlisted":
            assert state == "invited", [x["event_type"] for x in envelopes]
            state = "waitlisted"
        elif kind == "TraineeEnrolled":
            assert state in ("invited", "waitlisted"), [x["event_type"] for x in envelopes]
            assert e["payload"]["from_waitlist"] == (state == "waitlisted")
            state = "enrolled"
        elif kind == "TraineeWithdrew":
            assert state in ("waitlisted", "enrolled"), [x["event_type"] for x in envelopes]
            state = None
    return state

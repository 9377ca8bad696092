"""Training's creating requests sent again on a real training process and PostgreSQL: a cohort or a mentor sent
several times at once under one Idempotency-Key is made once, another form under the key is a 409, and a key is
checked as the header it is."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from shared.reference.wita import WITA
from tests.integration.test_training_fill import define_programme
from tests.support import TEST_SECRET, drop_database, fresh_database, service_env, start_service

pytestmark = pytest.mark.integration

TRAINER = {"Authorization": f"Bearer {TokenService(TEST_SECRET).mint('it-trainer', ['trainer'])}"}
OTHER_TRAINER = {"Authorization": f"Bearer {TokenService(TEST_SECRET).mint('it-trainer-2', ['trainer'])}"}


def cohort_body(programme_id: str, capacity: int = 10) -> dict:
    day = (datetime.now(WITA) + timedelta(days=14)).date().isoformat()
    return {"programme_id": programme_id, "starts_on": day, "ends_on": day, "capacity": capacity,
            "sessions": [{"starts_at": f"{day}T09:00:00", "ends_at": f"{day}T12:00:00"}],
            "venue": "Aula Kantor Camat Oebobo", "kecamatan": "Oebobo"}  # fmt: skip


async def rows(database: str, table: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - our names
    finally:
        await conn.close()


async def test_a_cohort_and_a_mentor_each_sent_five_times_at_once_under_one_key_are_made_once(infra, tmp_path: Path):
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", service_env(infra.kafka, f"it-{uuid.uuid4().hex[:8]}"), database,
                             tmp_path / "training.log")  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=training.url, timeout=60) as http:
            programme = await define_programme(http, training.url)
            keyed = {**TRAINER, "Idempotency-Key": "kohort-oebobo-2026-12"}
            cohorts = await asyncio.gather(*(http.post("/cohorts", json=cohort_body(programme["id"]), headers=keyed)
                                             for _ in range(5)))  # fmt: skip
            mentor = {"name": "Dr. Yohanes Bria", "kbli_prefixes": ["10"], "kecamatan": ["Oebobo"], "max_load": 5}
            mentors = await asyncio.gather(*(http.post("/mentors", json=mentor, headers={
                **TRAINER, "Idempotency-Key": "mentor-yohanes"}) for _ in range(5)))  # fmt: skip

            assert [a.status_code for a in cohorts + mentors] == [201] * 10, [a.text for a in cohorts + mentors]
            assert len({a.json()["id"] for a in cohorts}) == 1 and len({a.json()["id"] for a in mentors}) == 1
            assert (await rows(database, "cohort"), await rows(database, "mentor")) == (1, 1)

            other = await http.post("/cohorts", json=cohort_body(programme["id"], capacity=20), headers=keyed)
            assert other.status_code == 409, other.text
            assert other.json()["code"] == "idempotency_key_reused"
            assert other.json()["cohort_id"] == cohorts[0].json()["id"]
            unprintable = await http.post("/mentors", json=mentor, headers={**TRAINER, "Idempotency-Key": "a\tb"})
            assert unprintable.status_code == 422, unprintable.text
            assert unprintable.json()["errors"][0]["field"] == "Idempotency-Key"
            other_mentor = await http.post("/mentors", json={**mentor, "max_load": 6},
                                           headers={**TRAINER, "Idempotency-Key": "mentor-yohanes"})  # fmt: skip
            assert other_mentor.status_code == 409 and other_mentor.json()["mentor_id"] == mentors[0].json()["id"]

            # Refused forms under a key, at once with the right one: a refusal that claimed it first rolls the claim
            # back, so the right one is made whichever comes first (the refused ones then meet it: 409).
            second = {**TRAINER, "Idempotency-Key": "kohort-2"}
            unknown = cohort_body(str(uuid.uuid4()))
            answers = await asyncio.gather(*(http.post("/cohorts", json=unknown, headers=second) for _ in range(3)),
                                           http.post("/cohorts", json=cohort_body(programme["id"]), headers=second))
            assert answers[-1].status_code == 201, answers[-1].text
            assert {a.status_code for a in answers[:-1]} <= {409, 422}, [a.text for a in answers]

            # A key is the trainer's own; and the cohort sent again later is the cohort as it is now.
            theirs = await http.post("/cohorts", json=cohort_body(programme["id"]), headers={
                **OTHER_TRAINER, "Idempotency-Key": "kohort-oebobo-2026-12"})  # fmt: skip
            assert theirs.status_code == 201 and theirs.json()["id"] != cohorts[0].json()["id"]
            cancelled = await http.post(f"/cohorts/{cohorts[0].json()['id']}/cancel", headers=TRAINER)
            assert cancelled.status_code == 200, cancelled.text
            late = await http.post("/cohorts", json=cohort_body(programme["id"]), headers=keyed)
            assert (late.status_code, late.json()["id"], late.json()["state"]) == (201, cohorts[0].json()["id"],
                                                                                  "cancelled")  # fmt: skip
            assert [await rows(database, t) for t in ("cohort", "cohort_request", "mentor", "mentor_request")] == [
                3, 3, 1, 1]  # fmt: skip
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)

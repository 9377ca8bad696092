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
            refused = await http.post("/cohorts", json=cohort_body(str(uuid.uuid4())),
                                      headers={**TRAINER, "Idempotency-Key": "kohort-2"})  # fmt: skip
            assert refused.status_code == 422, refused.text
            made = await http.post("/cohorts", json=cohort_body(programme["id"]),
                                   headers={**TRAINER, "Idempotency-Key": "kohort-2"})  # fmt: skip
            assert made.status_code == 201, made.text  # the refusal left the key free
            assert (await rows(database, "cohort"), await rows(database, "mentor")) == (2, 1)
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)

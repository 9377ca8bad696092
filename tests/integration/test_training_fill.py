"""Training on real PostgreSQL and Kafka: opening a cohort fills it by need from the register (the registry's events,
produced as the registry would), and every event of a business's participation reaches Kafka in order, with
consecutive versions; a cohort runs to completion over HTTP (a no-show, an excused absence, the assessment, a
mentor, a visit); two training processes sweeping for stalled halal pathways report each stall once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from shared.contracts.registry import BusinessRegistered
from shared.contracts.topics import REGISTRY_BUSINESS, TRAINING_COHORT, TRAINING_PARTICIPANT, TRAINING_PROGRAMME, namespaced
from shared.reference.wita import WITA
from tests.integration.funding_events import nib_issued, produce, registered
from tests.support import TEST_SECRET, drop_database, eventually, fresh_database, read_topic, service_env, start_service

pytestmark = pytest.mark.integration

_TOKENS = TokenService(TEST_SECRET)
TRAINER = {"Authorization": f"Bearer {_TOKENS.mint('it-trainer', ['trainer'])}"}
OFFICER = {"Authorization": f"Bearer {_TOKENS.mint('it-officer', ['officer'])}"}


def food(i: int, *, day: int | None = None, **fields: object) -> BusinessRegistered:
    """A micro food business (KBLI 56102) registered on day `day` (default i) of 2026."""
    event = registered(i, **fields)  # type: ignore[arg-type]
    return event.model_copy(update={"registered_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day or i)})


async def define_programme(http: httpx.AsyncClient, url: str, **overrides: object) -> dict:
    body = {"topic": "halal_certification", "title": f"Halal self-declare {uuid.uuid4().hex[:6]}",
            "needs": ["halal_uncertified"], "requires_nib": True, "sessions": 1, "hours": 3, "gives_assessment": False,
            **overrides}  # fmt: skip
    response = await http.post(f"{url}/programmes", json=body, headers=TRAINER)
    assert response.status_code == 201, response.text
    return response.json()


async def plan_cohort(http: httpx.AsyncClient, url: str, programme_id: str, capacity: int) -> dict:
    day = (datetime.now(WITA) + timedelta(days=7)).date()
    body = {"programme_id": programme_id, "starts_on": day.isoformat(), "ends_on": day.isoformat(), "capacity": capacity,
            "sessions": [{"starts_at": f"{day.isoformat()}T09:00:00", "ends_at": f"{day.isoformat()}T12:00:00"}],
            "venue": "Taman Nostalgia", "kecamatan": "Kota Raja"}  # fmt: skip
    response = await http.post(f"{url}/cohorts", json=body, headers=TRAINER)
    assert response.status_code == 201, response.text
    return response.json()


async def view_count(database: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetchval("SELECT count(*) FROM business_view")
    finally:
        await conn.close()


def by_business(records: list) -> dict[str, list[dict]]:  # noqa: ANN001
    """Each business's participation events, in the order Kafka holds them (one partition per key)."""
    found: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(r.value)
        assert r.key.decode() == envelope["aggregate_id"]
        found[envelope["aggregate_id"]].append(envelope)
    return found


def assert_consecutive(events: dict[str, list[dict]]) -> None:
    for business, envelopes in events.items():
        versions = [e["payload"]["participant_version"] for e in envelopes]
        assert versions == list(range(1, len(versions) + 1)), (business, [(e["event_type"], v) for e, v in
                                                                           zip(envelopes, versions, strict=True)])  # fmt: skip
        assert [e["aggregate_version"] for e in envelopes] == versions


async def test_opening_a_cohort_fills_it_by_need_and_publishes_each_business_s_events_in_order(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_TOPIC_PARTITIONS": "3"}
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", env, database, tmp_path / "training.log")
    try:
        with_nib = [food(i) for i in range(12)]
        without_nib = [food(100 + i, day=0) for i in range(3)]  # registered first, but the programme needs an NIB
        weavers = [registered(200 + i, kbli="13122") for i in range(3)]  # no halal need
        medium = [registered(300, kbli="10792").model_copy(update={"scale": "medium"})]
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace),
                      [*with_nib, *without_nib, *weavers, *medium, *[nib_issued(b) for b in with_nib]])  # fmt: skip
        assert await eventually(lambda: _count(database, "SELECT count(*) FROM business_view WHERE nib_status = 'issued'", 12),
                                timeout=60)  # fmt: skip
        async with httpx.AsyncClient(timeout=60) as http:
            programme = await define_programme(http, training.url)
            cohort = await plan_cohort(http, training.url, programme["id"], capacity=5)
            opened = await http.post(f"{training.url}/cohorts/{cohort['id']}/open", headers=TRAINER)
            assert opened.status_code == 200, opened.text
            assert (opened.json()["enrolled"], opened.json()["waitlisted"]) == (5, 5)
            again = await http.post(f"{training.url}/cohorts/{cohort['id']}/open", headers=TRAINER)
            assert again.status_code == 409 and again.json()["state"] == "open"
            roster = (await http.get(f"{training.url}/cohorts/{cohort['id']}/trainees", headers=TRAINER)).json()
            metrics = (await http.get(f"{training.url}/metrics")).text
            assert 'berdaya_training_cohort_enrolled{topic="halal_certification"} 5.0' in metrics
            assert 'berdaya_training_waitlist_length{topic="halal_certification"} 5.0' in metrics
            assert 'berdaya_training_cohort_fill_ratio{topic="halal_certification"} 1.0' in metrics
            audit = (await http.get(f"{training.url}/audit", params={"aggregate_id": cohort["id"]}, headers=OFFICER)).json()
            assert {(a["action"], a["actor"]) for a in audit} == {
                ("CohortPlanned", "it-trainer"), ("CohortOpened", "it-trainer"), ("CohortListed", "it-trainer")}  # fmt: skip
            report = (await http.get(f"{training.url}/reports/cohorts", headers=TRAINER)).json()
            [row] = report["by_programme"]
            assert (row["cohorts"], row["capacity"], row["enrolled"], row["fill_percent"], row["waitlisted"]) == (
                1, 5, 5, 100, 5)
            assert [(k["group"], k["enrolled"]) for k in report["by_kecamatan"]] == [("Oebobo", 5)]
            coverage = {r["kecamatan"]: r for r in (await http.get(f"{training.url}/reports/halal-coverage",
                                                                     headers=OFFICER)).json()}  # fmt: skip
            assert (coverage["Oebobo"]["food_businesses"], coverage["Oebobo"]["certified"]) == (16, 0)
            assert coverage["Oebobo"]["not_eligible"] is None  # one medium business: suppressed
            assert coverage["Kota Kupang"]["coverage_percent"] == 0
            asyncapi = (await http.get(f"{training.url}/asyncapi.json")).json()
            assert any("training.participant.v1" in name for name in asyncapi["channels"])
        ordered = [str(b.business_id) for b in with_nib]  # never trained, then earlier registration
        assert [t["business_id"] for t in roster if t["status"] == "enrolled"] == ordered[:5]
        assert [(t["business_id"], t["position"]) for t in roster if t["status"] == "waitlisted"] == [
            (b, i) for i, b in enumerate(ordered[5:10], start=1)]

        participant = by_business(await read_topic(infra.kafka, namespaced(TRAINING_PARTICIPANT, namespace),
                                                   expect=21))  # fmt: skip
        assert_consecutive(participant)
        for business in ordered[:5]:
            assert [e["event_type"] for e in participant[business]] == ["TraineeInvited", "TraineeEnrolled"]
            assert participant[business][0]["payload"]["need"] == "halal_uncertified"
            assert participant[business][0]["actor"] == "it-trainer"
        for i, business in enumerate(ordered[5:10], start=1):
            assert [e["event_type"] for e in participant[business]] == ["TraineeInvited", "TraineeWaitlisted"]
            assert participant[business][1]["payload"]["position"] == i
        [not_eligible] = participant[str(medium[0].business_id)]
        assert not_eligible["event_type"] == "PathwayNotEligible"
        assert not_eligible["payload"]["reason"] == "not_micro_or_small"
        uninvited = [*ordered[10:], *(str(b.business_id) for b in [*without_nib, *weavers])]
        assert not any(participant.get(b) for b in uninvited)
        cohorts = await read_topic(infra.kafka, namespaced(TRAINING_COHORT, namespace), expect=1)
        assert [json.loads(r.value)["event_type"] for r in cohorts] == ["CohortOpened"]
        programmes = await read_topic(infra.kafka, namespaced(TRAINING_PROGRAMME, namespace), expect=1)
        assert json.loads(programmes[0].value)["payload"]["needs"] == ["halal_uncertified"]

        # A second cohort of the same topic takes only those the first has not: nobody is in two at once.
        async with httpx.AsyncClient(timeout=60) as http:
            second = await plan_cohort(http, training.url, programme["id"], capacity=5)
            opened = await http.post(f"{training.url}/cohorts/{second['id']}/open", headers=TRAINER)
            assert (opened.json()["enrolled"], opened.json()["waitlisted"]) == (2, 0)
            roster = (await http.get(f"{training.url}/cohorts/{second['id']}/trainees", headers=TRAINER)).json()
        assert [t["business_id"] for t in roster] == ordered[10:]
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)


async def test_businesses_that_cannot_self_declare_ahead_in_the_order_leave_no_seat_of_a_halal_cohort_empty(
        infra, tmp_path: Path):  # fmt: skip
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_TOPIC_PARTITIONS": "3"}
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", env, database, tmp_path / "training.log")
    try:
        # Medium food businesses without an NIB: the programme also serves `no_nib`, but a halal programme never
        # takes a business that can't self-declare. Registered first, they lead the order.
        medium = [food(i, day=1).model_copy(update={"scale": "medium"}) for i in range(30)]
        micro = [food(100 + i, day=2 + i) for i in range(2)]
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace), [*medium, *micro])
        assert await eventually(lambda: _count(database, "SELECT count(*) FROM business_view", 32), timeout=60)
        async with httpx.AsyncClient(timeout=60) as http:
            programme = await define_programme(http, training.url, needs=["halal_uncertified", "no_nib"],
                                               requires_nib=False)  # fmt: skip
            cohort = await plan_cohort(http, training.url, programme["id"], capacity=2)
            opened = await http.post(f"{training.url}/cohorts/{cohort['id']}/open", headers=TRAINER)
            assert opened.status_code == 200, opened.text
            roster = (await http.get(f"{training.url}/cohorts/{cohort['id']}/trainees", headers=TRAINER)).json()

        assert opened.json()["enrolled"] == 2
        assert {t["business_id"] for t in roster if t["status"] == "enrolled"} == {str(b.business_id) for b in micro}
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)


async def _count(database: str, sql: str, expected: int) -> bool:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetchval(sql) == expected
    finally:
        await conn.close()


async def test_two_training_processes_report_each_stalled_pathway_once(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "TRAINING_SWEEP_INTERVAL_SECONDS": "0.3",
           "TRAINING_STALL_DAYS": json.dumps({"sihalal_account": 3})}  # fmt: skip
    database = await fresh_database(infra.postgres_url)
    processes = [start_service("training", env, database, tmp_path / f"training-{i}.log") for i in range(2)]
    try:
        businesses = [food(i) for i in range(30)]
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace), businesses)
        assert await eventually(lambda: _count(database, "SELECT count(*) FROM business_view", 30), timeout=60)
        today = datetime.now(WITA).date()
        async with httpx.AsyncClient(timeout=60) as http:
            for i, b in enumerate(businesses):
                done_on = today - timedelta(days=10 if i % 3 else 1)  # two in three are overdue for their SIHALAL account
                url = processes[i % 2].url
                response = await http.post(f"{url}/pathways/{b.business_id}/steps", headers=OFFICER,
                                           json={"step": "nib", "done_on": done_on.isoformat()})  # fmt: skip
                assert response.status_code == 201, response.text
            overdue = {str(b.business_id) for i, b in enumerate(businesses) if i % 3}
            topic = namespaced(TRAINING_PARTICIPANT, namespace)

            async def all_reported() -> bool:
                events = by_business(await read_topic(infra.kafka, topic, expect=30 + len(overdue), timeout=5))
                return {b for b, e in events.items() if any(x["event_type"] == "PathwayStalled" for x in e)} == overdue

            assert await eventually(all_reported, timeout=60)
            stalled = (await http.get(f"{processes[0].url}/pathways", params={"stalled": "true"}, headers=OFFICER)).json()
            assert {p["business_id"] for p in stalled} == overdue
            assert {p["stalled_waiting_for"] for p in stalled} == {"sihalal_account"}
        await _settle_sweeps()
        events = by_business(await read_topic(infra.kafka, topic, expect=30 + len(overdue)))
        assert_consecutive(events)
        for business, envelopes in events.items():
            kinds = [e["event_type"] for e in envelopes]
            assert kinds == (["PathwayStepRecorded", "PathwayStalled"] if business in overdue else ["PathwayStepRecorded"])
        assert {e["actor"] for es in events.values() for e in es if e["event_type"] == "PathwayStalled"} == {"training"}
    finally:
        for p in processes:
            stop_pid(p.pid)
        await drop_database(infra.postgres_url, database)


async def _settle_sweeps() -> None:
    """Several more sweeps of both processes: had either reported a stall twice, it would be on Kafka by now."""
    await asyncio.sleep(2)


async def test_a_cohort_run_to_completion_over_http_publishes_training_completed_and_follows_up(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    database = await fresh_database(infra.postgres_url)
    training = start_service("training", service_env(infra.kafka, namespace), database, tmp_path / "t.log")
    try:
        businesses = [food(i) for i in range(4)]
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace),
                      [*businesses, *(nib_issued(b) for b in businesses)])  # fmt: skip
        assert await eventually(lambda: _count(database, "SELECT count(*) FROM business_view WHERE nib_status = 'issued'", 4),
                                timeout=60)  # fmt: skip
        a, b, c, d = (str(x.business_id) for x in businesses)
        async with httpx.AsyncClient(timeout=60) as http:
            mentor = await http.post(f"{training.url}/mentors", headers=TRAINER, json={
                "name": "Ibu Maria Lay (praktisi kuliner)", "kbli_prefixes": ["56"], "kecamatan": ["Oebobo"], "max_load": 5})  # fmt: skip
            assert mentor.status_code == 201, mentor.text
            programme = await define_programme(http, training.url, sessions=2, hours=6, gives_assessment=True)
            yesterday = (datetime.now(WITA) - timedelta(days=1)).date()
            body = {"programme_id": programme["id"], "starts_on": yesterday.isoformat(), "ends_on": yesterday.isoformat(),
                    "capacity": 3, "venue": "Kantor Kelurahan Fatululi", "kecamatan": "Oebobo",
                    "sessions": [{"starts_at": f"{yesterday}T08:00:00", "ends_at": f"{yesterday}T10:00:00"},
                                 {"starts_at": f"{yesterday}T13:00:00+08:00", "ends_at": f"{yesterday}T15:00:00+08:00"}]}  # fmt: skip
            cohort = (await http.post(f"{training.url}/cohorts", json=body, headers=TRAINER)).json()
            url = f"{training.url}/cohorts/{cohort['id']}"
            for step in ("open", "start"):
                assert (await http.post(f"{url}/{step}", headers=TRAINER)).status_code == 200
            first = await http.put(f"{url}/sessions/1/attendance", headers=TRAINER, json={"records": [
                {"business_id": a, "attendance": "present"}, {"business_id": b, "attendance": "absent"},
                {"business_id": c, "attendance": "excused", "reason": "ke rumah sakit"}]})  # fmt: skip
            assert [s["status"] for s in first.json()] == ["enrolled", "withdrawn", "enrolled"]  # b: a no-show
            stranger = await http.put(f"{url}/sessions/2/attendance", headers=TRAINER,
                                      json={"records": [{"business_id": b, "attendance": "present"}]})  # fmt: skip
            assert stranger.status_code == 422 and stranger.json()["errors"][0]["field"] == "records.0.business_id"
            second = await http.put(f"{url}/sessions/2/attendance", headers=TRAINER, json={"records": [
                {"business_id": x, "attendance": "present"} for x in (a, c, d)]})  # fmt: skip
            assert second.status_code == 200, second.text
            bad = await http.put(f"{url}/assessments", headers=TRAINER, json={"records": [
                {"business_id": a, "management": 101, "leadership": 50, "business_prospects": 50}]})  # fmt: skip
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "records.0.management"
            early = await http.post(f"{url}/complete", headers=TRAINER)
            assert early.status_code == 409 and early.json()["code"] == "assessments_missing"
            scores = await http.put(f"{url}/assessments", headers=TRAINER, json={"records": [
                {"business_id": x, "management": 70, "leadership": 75, "business_prospects": 80} for x in (a, c)]})  # fmt: skip
            assert scores.status_code == 200, scores.text
            done = await http.post(f"{url}/complete", headers=TRAINER)
            assert done.status_code == 200, done.text
            assert done.json()["state"] == "completed"
            visit = await http.post(f"{training.url}/mentoring/{a}/visits", headers=TRAINER,
                                    json={"visited_on": datetime.now(WITA).date().isoformat(), "notes": "label kemasan"})  # fmt: skip
            assert visit.status_code == 201, visit.text
            follow_up = (await http.get(f"{training.url}/reports/mentoring", headers=OFFICER)).json()
            today = datetime.now(WITA).date().isoformat()
            assert {(f["business_id"], f["visits"], f["last_visit"]) for f in follow_up["businesses"]} == {
                (a, 1, today), (c, 0, None)}  # fmt: skip
        # a: invited, enrolled, two marks, completed, mentor, visit; b: invited, enrolled, absent, withdrawn (no-show);
        # c: invited, enrolled, two marks, completed, mentor; d: invited, waitlisted, promoted, one mark.
        events = by_business(await read_topic(infra.kafka, namespaced(TRAINING_PARTICIPANT, namespace),
                                              expect=7 + 4 + 6 + 4))  # fmt: skip
        assert {x: len(es) for x, es in events.items()} == {a: 7, b: 4, c: 6, d: 4}
        assert_consecutive(events)
        completed = {x: [e for e in es if e["event_type"] == "TrainingCompleted"] for x, es in events.items()}
        assert {x for x, es in completed.items() if es} == {a, c}
        [payload] = [e["payload"] for e in completed[a]]
        assert payload["assessment"] == {"management": 70, "leadership": 75, "business_prospects": 80}
        assert (payload["topic"], payload["programme_id"], payload["attendance_percent"]) == (
            "halal_certification", programme["id"], 100)
        assert [e["payload"]["attendance_percent"] for e in completed[c]] == [100]  # the excused session left out
        assert [e["event_type"] for e in events[a]][-3:] == ["TrainingCompleted", "MentorAssigned", "MentoringVisitRecorded"]
        assert "ke rumah sakit" not in json.dumps(events[c])
        assert [e["event_type"] for e in events[d]][:3] == ["TraineeInvited", "TraineeWaitlisted", "TraineeEnrolled"]
    finally:
        stop_pid(training.pid)
        await drop_database(infra.postgres_url, database)

"""Funding's view of businesses on real PostgreSQL and Kafka: whatever order registry and training events race in,
across two funding processes, the view equals what those services said; rebuilding it the way the README says
gives the same view back; and a dead-lettered event re-driven after newer ones never rolls the view back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from berdaya.stack.access import access_env
from berdaya.stack.process import stop_pid
from services.funding.replay import FUNDING_VIEW
from shared.auth import TokenService
from shared.contracts.registry import BusinessUpdated
from shared.contracts.topics import REGISTRY_BUSINESS, TRAINING_PARTICIPANT, namespaced
from shared.messaging.kafka import KafkaAccess, ensure_topics, topic_extent, with_dead_letters
from shared.messaging.replay import rebuild, still_held
from tests.integration.funding_events import KECAMATAN, closed, completed, envelopes, nib_issued, produce, registered
from tests.integration.messaging_fixtures import publish_overtaken
from tests.support import TEST_SECRET, drop_database, eventually, fresh_database, service_env, start_service

pytestmark = pytest.mark.integration

TOPICS = ("packaging", "halal_certification", "digital_marketing")


async def _open_pledge_for_everyone(http: httpx.AsyncClient, url: str, earmarks: dict | None = None) -> str:
    tokens = TokenService(TEST_SECRET)
    officer = {"Authorization": f"Bearer {tokens.mint('it-officer', ['officer'])}"}
    sponsor_id = (await http.post(f"{url}/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=officer)).json()["id"]
    sponsor = {"Authorization": f"Bearer {tokens.mint('it-sponsor', ['sponsor'], sponsor_id=uuid.UUID(sponsor_id))}"}
    today = date.today()
    body = {"sponsor_id": sponsor_id, "title": "untuk semua", "instrument": "grant", "total_rupiah": 10_000_000,
            "amount_mode": "fixed", "amount_per_business_rupiah": 100_000, "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=30)).isoformat(),
            "earmarks": earmarks or {"nib_required": True}}  # fmt: skip
    response = await http.post(f"{url}/pledges", json=body, headers=sponsor)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_racing_registry_and_training_events_across_two_processes_leave_the_view_equal_to_the_truth(
    infra, tmp_path: Path
):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_TOPIC_PARTITIONS": "4"}
    database = await fresh_database(infra.postgres_url)
    processes = [start_service("funding", env, database, tmp_path / f"funding-{i}.log") for i in range(2)]
    rng = random.Random(11)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await _open_pledge_for_everyone(http, processes[0].url)
        businesses = [registered(i, kec=i % 2) for i in range(60)]
        truth: dict[uuid.UUID, dict] = {}
        registry_events, training_events = [], []
        for b in businesses:
            registry_events.append([b, nib_issued(b)])
            state = {"version": 2, "status": "active", "nib_status": "issued", "trainings": set()}
            if rng.random() < 0.4:
                registry_events[-1].append(closed(b, 3))
                state.update(version=3, status="closed")
            for version, topic in enumerate(rng.sample(TOPICS, rng.randrange(0, 3)), start=1):
                training_events.append(completed(b, topic, version))
                state["trainings"].add(topic)
            truth[b.business_id] = state
        registry_topic = namespaced(REGISTRY_BUSINESS, namespace)
        training_topic = namespaced(TRAINING_PARTICIPANT, namespace)

        async def send_registry() -> None:
            # One business's events in order (as the registry's relay publishes them), businesses interleaved.
            queues = [list(events) for events in registry_events]
            while any(queues):
                queue = rng.choice([q for q in queues if q])
                await produce(infra.kafka, registry_topic, [queue.pop(0)])

        async def send_training() -> None:
            for event in training_events:
                await produce(infra.kafka, training_topic, [event])
                await asyncio.sleep(rng.random() * 0.01)

        await asyncio.gather(send_registry(), send_training())

        conn = await asyncpg.connect(database)
        try:
            async def view() -> dict[uuid.UUID, dict]:
                rows = await conn.fetch(
                    "SELECT b.business_id, b.version, b.status, b.nib_status,"
                    " coalesce((SELECT array_agg(topic) FROM business_training t WHERE t.business_id = b.business_id),"
                    " '{}') AS trainings FROM business_view b")
                return {r["business_id"]: {"version": r["version"], "status": r["status"], "nib_status": r["nib_status"],
                                           "trainings": set(r["trainings"])} for r in rows}  # fmt: skip

            async def settled() -> bool:
                return await view() == truth

            assert await eventually(settled, timeout=120), {k: (v, truth[k]) for k, v in (await view()).items() if v != truth[k]}
            await asyncio.sleep(2)  # let any last match commit
            open_offers_of_closed = await conn.fetchval(
                "SELECT count(*) FROM offer o JOIN business_view b USING (business_id)"
                " WHERE b.status = 'closed' AND o.status = 'offered'")
            assert open_offers_of_closed == 0
            active_without_offer = await conn.fetchval(
                "SELECT count(*) FROM business_view b WHERE b.status = 'active'"
                " AND NOT EXISTS (SELECT 1 FROM offer o WHERE o.business_id = b.business_id AND o.status = 'offered')")
            assert active_without_offer == 0
        finally:
            await conn.close()
    finally:
        for p in processes:
            stop_pid(p.pid)
        await drop_database(infra.postgres_url, database)


def berdaya(*args: str, bootstrap: KafkaAccess | str, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """The command line as an operator runs it, against the test's broker; wide, so its tables don't wrap. `input` is
    what the operator types at its prompts."""
    env = {**os.environ, **access_env(KafkaAccess.of(bootstrap)), "COLUMNS": "250", **(env or {})}
    return subprocess.run([sys.executable, "-m", "berdaya", *args], env=env, input=input, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


async def first_dead_letter_shown(bootstrap: KafkaAccess | str, topic: str, event_type: str) -> str:
    """`berdaya dlq show` of the topic's first dead letter, once it is there and holds an `event_type`."""
    shown = ""
    for _ in range(120):
        shown = berdaya("dlq", "show", topic, "0", bootstrap=bootstrap).stdout
        if event_type in shown:
            break
        await asyncio.sleep(0.5)
    return shown


async def _snapshot(database: str) -> dict[str, list]:
    conn = await asyncpg.connect(database)
    try:
        return {
            "view": [dict(r) for r in await conn.fetch("SELECT * FROM business_view ORDER BY business_id")],
            "trainings": [dict(r) for r in await conn.fetch("SELECT * FROM business_training ORDER BY business_id, topic")],
            "offers": [dict(r) for r in await conn.fetch("SELECT id, business_id, status FROM offer ORDER BY id")],
        }
    finally:
        await conn.close()


async def test_rebuilding_the_view_as_the_readme_says_gives_the_same_view_and_keeps_the_offers(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    database = await fresh_database(infra.postgres_url)
    funding = start_service("funding", env, database, tmp_path / "funding.log")
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await _open_pledge_for_everyone(http, funding.url)
        businesses = [registered(i, kec=i % 2) for i in range(30)]
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace),
                      [*businesses, *[nib_issued(b) for b in businesses], closed(businesses[0], 3)])  # fmt: skip
        await produce(infra.kafka, namespaced(TRAINING_PARTICIPANT, namespace),
                      [completed(b, "packaging", 1) for b in businesses[:10]])  # fmt: skip

        async def unsettled() -> str:
            """What still differs from the settled view; empty once it is settled."""
            state = await _snapshot(database)
            offered = {o["business_id"] for o in state["offers"] if o["status"] == "offered"}
            active = {v["business_id"] for v in state["view"] if v["status"] == "active"}
            differences = {"views": (len(state["view"]), 30), "trainings": (len(state["trainings"]), 10),
                           "active": (len(active), 29), "active without an offer": (len(active - offered), 0),
                           "offers to businesses not active": (len(offered - active), 0)}  # fmt: skip
            return ", ".join(f"{what} {got} (expected {want})"
                             for what, (got, want) in differences.items() if got != want)  # fmt: skip

        async def settled() -> bool:
            return not await unsettled()

        assert await eventually(settled, timeout=90), await unsettled()
        before = await _snapshot(database)
        # The README: stop funding, `berdaya replay funding-view --no-restart ...` against its database, start it.
        stop_pid(funding.pid)
        replay = berdaya("replay", "funding-view", "--no-restart", "--database-url", database, "--namespace", namespace,
                         bootstrap=infra.kafka)  # fmt: skip
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "business_view (30 rows)" in replay.stdout and "business_training (10 rows)" in replay.stdout
        emptied = await _snapshot(database)
        assert emptied["view"] == [] and emptied["trainings"] == [] and emptied["offers"] == before["offers"]
        funding = start_service("funding", env, database, tmp_path / "funding-again.log")

        async def rebuilt() -> bool:
            return await _snapshot(database) == before

        assert await eventually(rebuilt, timeout=90), "the rebuilt view differs from the one before"
    finally:
        stop_pid(funding.pid)
        await drop_database(infra.postgres_url, database)


async def test_history_read_again_offers_nothing_to_a_business_that_has_since_moved_and_the_catch_up_is_settled(
    infra, tmp_path: Path
):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    database = await fresh_database(infra.postgres_url)
    funding = start_service("funding", env, database, tmp_path / "funding.log")
    # A business with an NIB in Oebobo moves to Alak; 1,300 other registrations (in Alak, without NIB) between each
    # step, so that read again the steps come in different batches.
    b = registered(900, kec=0)
    name, code, bps, kel, kel_code = KECAMATAN[1]
    fields = {k: v for k, v in b.model_dump().items() if k not in ("source", "business_version")}
    moved = BusinessUpdated(**{**fields, "kecamatan": name, "kecamatan_code": code, "kecamatan_bps": bps,
                               "kelurahan": kel, "kelurahan_code": kel_code, "nib_status": "issued",
                               "nib": "9100000000900"}, business_version=3, changed_fields=("kecamatan",))  # fmt: skip
    history = envelopes([b, nib_issued(b), *(registered(1000 + i, kec=1) for i in range(1300)), moved,
                         *(registered(3000 + i, kec=1) for i in range(1300))])  # fmt: skip
    trainings = envelopes([completed(b, "packaging", 1)], producer="training")
    conn = await asyncpg.connect(database)

    async def read_all() -> bool:
        return await conn.fetchval("SELECT count(*) FILTER (WHERE consumer = 'funding-view') = $1"
                                   " AND count(*) FILTER (WHERE consumer = 'funding-training') = 1 FROM inbox",
                                   len(history))  # fmt: skip

    try:
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace), history)
        await produce(infra.kafka, namespaced(TRAINING_PARTICIPANT, namespace), trainings)
        assert await eventually(read_all, timeout=120)
        async with httpx.AsyncClient(timeout=60) as http:
            await _open_pledge_for_everyone(http, funding.url, {"nib_required": True, "kecamatan": ["Oebobo"]})
        assert await eventually(lambda: conn.fetchval("SELECT matched_at IS NOT NULL FROM pledge"), timeout=60)
        await asyncio.sleep(1)
        before = {**await _snapshot(database), "outbox": await conn.fetch("SELECT event_id, type FROM outbox ORDER BY id")}
        assert before["offers"] == [], "opened after the move: nobody in Oebobo has an NIB"

        stop_pid(funding.pid)
        await rebuild(FUNDING_VIEW, database_url=database, kafka=infra.kafka, namespace=namespace)
        ends = await conn.fetch("SELECT consumer, sum(end_offset) AS records FROM catch_up GROUP BY consumer")
        assert {r["consumer"]: r["records"] for r in ends} == {"funding-view": len(history), "funding-training": 1}
        funding = start_service("funding", env, database, tmp_path / "funding-again.log")
        assert await eventually(read_all, timeout=120)
        assert await eventually(lambda: _equals(lambda: still_held(FUNDING_VIEW, database), 0), timeout=60)
        await asyncio.sleep(1.5)  # had the replay or its settling offered anything, it would be in the outbox by now
        after = {**await _snapshot(database), "outbox": await conn.fetch("SELECT event_id, type FROM outbox ORDER BY id")}
        assert after == before
    finally:
        await conn.close()
        stop_pid(funding.pid)
        await drop_database(infra.postgres_url, database)


async def test_a_pledge_made_while_the_view_reads_history_is_matched_only_once_it_has_caught_up(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    database = await fresh_database(infra.postgres_url)
    funding = start_service("funding", service_env(infra.kafka, namespace), database, tmp_path / "funding.log")
    topic = namespaced(REGISTRY_BUSINESS, namespace)
    conn = await asyncpg.connect(database)
    try:
        # As `berdaya replay funding-view` leaves it: every partition of the registry's topic still to be read far.
        partitions = [p for t, p in topic_extent(infra.kafka, [topic])]
        await conn.executemany("INSERT INTO catch_up (consumer, topic, partition, end_offset) VALUES ($1, $2, $3, $4)",
                               [("funding-view", topic, p, 1_000_000) for p in partitions])  # fmt: skip
        async with httpx.AsyncClient(timeout=60) as http:
            pledge_id = await _open_pledge_for_everyone(http, funding.url)
        businesses = [registered(i) for i in range(3)]
        await produce(infra.kafka, topic, [*businesses, *(nib_issued(b) for b in businesses)])
        assert await eventually(lambda: conn.fetchval("SELECT count(*) = 3 FROM catch_up_held"), timeout=60)
        assert await eventually(lambda: conn.fetchval(
            "SELECT count(*) = 1 FROM inbox WHERE consumer = 'funding-matcher'"), timeout=60)  # fmt: skip
        await asyncio.sleep(2.5)  # a catch-up job's round: had it matched meanwhile, the offers would be there
        assert await conn.fetchval("SELECT count(*) FROM offer") == 0
        assert await conn.fetchval("SELECT matched_at FROM pledge WHERE id = $1", uuid.UUID(pledge_id)) is None

        await conn.execute("DELETE FROM catch_up")  # what the consumer does once it has read that far
        assert await eventually(lambda: conn.fetchval("SELECT count(*) = 3 FROM offer"), timeout=60)
        assert await eventually(lambda: _equals(lambda: still_held(FUNDING_VIEW, database), 0), timeout=30)
        await asyncio.sleep(1.5)
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE type = 'FundingMatched'") == 3
    finally:
        await conn.close()
        stop_pid(funding.pid)
        await drop_database(infra.postgres_url, database)


async def test_a_replay_refuses_while_funding_is_running(infra, tmp_path: Path):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    database = await fresh_database(infra.postgres_url)
    funding = start_service("funding", service_env(infra.kafka, namespace), database, tmp_path / "f.log")
    try:
        await produce(infra.kafka, namespaced(REGISTRY_BUSINESS, namespace), [registered(1)])
        conn = await asyncpg.connect(database)
        try:
            assert await eventually(lambda: conn.fetchval("SELECT count(*) = 1 FROM business_view"), timeout=60)
        finally:
            await conn.close()
        replay = berdaya("replay", "funding-view", "--no-restart", "--database-url", database, "--namespace", namespace,
                         bootstrap=infra.kafka)  # fmt: skip
        assert replay.returncode != 0
        assert "still consuming" in replay.stdout and "Traceback" not in replay.stdout + replay.stderr
        assert (await _snapshot(database))["view"], "a refused replay must not empty the view"
    finally:
        stop_pid(funding.pid)
        await drop_database(infra.postgres_url, database)


async def test_a_dead_lettered_event_redriven_after_newer_ones_never_rolls_the_view_back(infra, tmp_path: Path):
    async with _funding_refusing_a_defect(infra, tmp_path) as (topic, conn):
        # A defect the operator will fix: the view refuses one name.
        await conn.execute("ALTER TABLE business_view ADD CONSTRAINT defect CHECK (business_name <> 'Racun')")
        b = registered(1)
        fields = {k: v for k, v in b.model_dump().items() if k not in ("source", "business_version", "business_name")}
        poisoned = BusinessUpdated(**fields, business_version=2, business_name="Racun", changed_fields=("business_name",))
        later = BusinessUpdated(**fields, business_version=3, business_name="Sehat", changed_fields=("business_name",))
        await produce(infra.kafka, topic, envelopes([b, poisoned, later]))

        async def name() -> str | None:
            return await conn.fetchval("SELECT business_name FROM business_view WHERE business_id = $1", b.business_id)

        assert await eventually(lambda: _equals(name, "Sehat"), timeout=60)
        await conn.execute("ALTER TABLE business_view DROP CONSTRAINT defect")  # fixed
        listed = berdaya("dlq", "list", topic, bootstrap=infra.kafka)
        assert "funding-view" in listed.stdout and "BusinessUpdated v2" in listed.stdout, listed.stdout
        redriven = berdaya("dlq", "redrive", topic, "--yes", bootstrap=infra.kafka)
        assert redriven.returncode == 0, redriven.stdout + redriven.stderr
        assert await eventually(
            lambda: conn.fetchval("SELECT count(*) = 3 FROM inbox WHERE consumer = 'funding-view'"), timeout=60)
        assert await name() == "Sehat"
        assert await conn.fetchval("SELECT version FROM business_view WHERE business_id = $1", b.business_id) == 3


async def _equals(read, expected: object) -> bool:  # noqa: ANN001
    return await read() == expected


async def test_an_nib_arriving_after_its_dead_lettered_predecessor_waits_for_it_and_both_apply_once_redriven(
    infra, tmp_path: Path
):
    # Applied over the gap, the NIB moved the view to version 3, and the move re-driven later was "older": the
    # business stayed in its old kecamatan for good, and pledges earmarked for its new one never found it.
    async with _funding_refusing_a_defect(infra, tmp_path) as (topic, conn):
        alak = KECAMATAN[1]
        # A defect the operator will fix: the view refuses Alak.
        await conn.execute(f"ALTER TABLE business_view ADD CONSTRAINT defect CHECK (kecamatan_code <> '{alak[1]}')")
        b = registered(1, kec=0)
        fields = {k: v for k, v in b.model_dump().items() if k not in ("source", "business_version")}
        fields.update(kecamatan=alak[0], kecamatan_code=alak[1], kecamatan_bps=alak[2], kelurahan=alak[3],
                      kelurahan_code=alak[4])  # fmt: skip
        moved = BusinessUpdated(**fields, business_version=2, changed_fields=("kecamatan_code",))
        await produce(infra.kafka, topic, envelopes([b, moved, nib_issued(b, version=3)]))

        async def view() -> tuple | None:
            row = await conn.fetchrow("SELECT version, kecamatan_code, nib_status FROM business_view"
                                      " WHERE business_id = $1", b.business_id)  # fmt: skip
            return None if row is None else tuple(row)

        listed = None
        for _ in range(120):  # both dead-lettered, the NIB with what to do
            listed = berdaya("dlq", "list", topic, bootstrap=infra.kafka)
            if "NIBIssued v3" in listed.stdout:
                break
            await asyncio.sleep(0.5)
        assert "BusinessUpdated v2" in listed.stdout and "NIBIssued v3" in listed.stdout, listed.stdout
        shown = berdaya("dlq", "show", topic, "1", bootstrap=infra.kafka)  # the second dead letter: the NIB
        assert "version 2 never arrived" in shown.stdout and "dlq redrive" in shown.stdout, shown.stdout
        assert await view() == (1, KECAMATAN[0][1], "none")
        await conn.execute("ALTER TABLE business_view DROP CONSTRAINT defect")  # fixed
        redriven = berdaya("dlq", "redrive", topic, "--yes", bootstrap=infra.kafka)
        assert redriven.returncode == 0, redriven.stdout + redriven.stderr
        assert await eventually(lambda: _equals(view, (3, alak[1], "issued")), timeout=60), await view()


async def test_a_registration_the_relay_sends_again_behind_its_nib_still_leaves_the_view_with_the_nib(
    infra, database_url, tmp_path: Path
):
    # Kafka lost the request carrying a new business's registration, and took the next one, carrying its NIB: the
    # relay sends both again, in order, behind the NIB. The NIB arriving first was ignored and counted as handled, the
    # one sent again was skipped as a duplicate, and the business stayed without its NIB in funding's view for good.
    async with _funding_refusing_a_defect(infra, tmp_path) as (topic, conn):
        b = registered(1)
        sent = await publish_overtaken(database_url, infra.kafka, topic, envelopes([b, nib_issued(b)]))
        assert [dict(r.headers)["event_type"] for r in sent] == [b"NIBIssued", b"BusinessRegistered", b"NIBIssued"]

        async def view() -> tuple | None:
            row = await conn.fetchrow("SELECT version, nib_status FROM business_view WHERE business_id = $1",
                                      b.business_id)  # fmt: skip
            return None if row is None else tuple(row)

        assert await eventually(lambda: _equals(view, (2, "issued")), timeout=60), await view()
        shown = await first_dead_letter_shown(infra.kafka, topic, "NIBIssued")  # the NIB that came first
        assert "never heard of the business" in shown and "dlq redrive" in shown, shown


@contextlib.asynccontextmanager
async def _funding_refusing_a_defect(
    infra, tmp_path: Path  # noqa: ANN001
) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """Funding on a fresh database, giving a record two attempts before dead-lettering it: the registry's topic (with
    its dead letters) and a connection to the database, where the test puts the defect it then fixes."""
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_CONSUMER_MAX_ATTEMPTS": "2"}
    database = await fresh_database(infra.postgres_url)
    topic = namespaced(REGISTRY_BUSINESS, namespace)
    await ensure_topics(infra.kafka, with_dead_letters([topic], 2, 1))
    funding = start_service("funding", env, database, tmp_path / "funding.log")
    conn = await asyncpg.connect(database)
    try:
        yield topic, conn
    finally:
        await conn.close()
        stop_pid(funding.pid)
        await drop_database(infra.postgres_url, database)

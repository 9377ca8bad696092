"""One relay per database, even when its connection dies or its host freezes or dies: on real PostgreSQL and Kafka,
two relays fighting over one outbox never put one aggregate's events out of order, and a dead or frozen holder is
replaced by a standby."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys

import asyncpg
import pytest

from berdaya.stack.access import access_env
from shared.db import Database
from shared.messaging.outbox import add_to_outbox
from tests.integration.messaging_fixtures import prepare, relay, ticked
from tests.support import eventually, new_topic, read_topic
from shared.messaging.kafka import KafkaAccess

pytestmark = pytest.mark.integration


def first_appearances_in_order(records: list) -> dict[str, list[int]]:  # noqa: ANN001
    """Per key, the versions in the order each first reached Kafka (a re-sent duplicate repeats an event id only)."""
    seen: set[str] = set()
    order: dict[str, list[int]] = collections.defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(record.value)
        if envelope["event_id"] not in seen:
            seen.add(envelope["event_id"])
            order[envelope["aggregate_id"]].append(envelope["payload"]["seq"])
    return order


async def _write(db: Database, topic: str, keys: list[str], versions: int, rng: random.Random) -> int:
    """Each key's versions 1..n, committed in order per key, keys interleaved; returns events written."""
    written = 0
    next_seq = dict.fromkeys(keys, 1)
    while any(v <= versions for v in next_seq.values()):
        key = rng.choice([k for k, v in next_seq.items() if v <= versions])
        async with db.transaction() as conn:
            await add_to_outbox(conn, [ticked(key, next_seq[key])], route=lambda _: topic)
        next_seq[key] += 1
        written += 1
        if written % 20 == 0:
            await asyncio.sleep(0.01)
    return written


async def _relay_pool(database_url: str, name: str) -> Database:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={"application_name": name})
    return Database(pool, acquire_timeout=5)


async def test_two_relays_whose_connections_keep_dying_never_reorder_an_aggregates_events(infra, database_url):
    topic = await new_topic(infra.kafka, partitions=3)
    db = await prepare(database_url)
    relays = {name: relay(await _relay_pool(database_url, name), database_url, infra.kafka,
                          holder=name, lease_seconds=2, batch_size=7) for name in ("relay-a", "relay-b")}  # fmt: skip
    stop = asyncio.Event()
    running = [asyncio.create_task(r.run(stop)) for r in relays.values()]
    killer = await asyncpg.connect(database_url)
    rng = random.Random(7)

    async def keep_killing() -> int:
        # Cut the connections of whichever relay holds the lease, as a failover or a network cut would.
        kills = 0
        for _ in range(12):
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            holder = await killer.fetchval("SELECT holder FROM relay_lease WHERE name = 'outbox'")
            if holder:
                kills += await killer.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", holder)
        return kills

    killing = asyncio.create_task(keep_killing())
    keys = [f"k{i}" for i in range(15)]
    written = await _write(db, topic, keys, versions=30, rng=rng)
    kills = await killing
    assert await eventually(lambda: _drained(db), timeout=120), "the relays never published everything"
    stop.set()
    await asyncio.gather(*running)
    await killer.close()

    records = await read_topic(infra.kafka, topic, expect=written)
    order = first_appearances_in_order(records)
    assert kills >= 5, "the test never cut a relay's connection"
    assert {k: order[k] for k in keys} == {k: list(range(1, 31)) for k in keys}
    await db.close()


async def _drained(db: Database) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox_pending") == 0


def _start_relay(database_url: str, bootstrap: KafkaAccess | str, holder: str, lease_seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.relay_process", database_url, holder,
                             str(lease_seconds)], env={**os.environ, **access_env(KafkaAccess.of(bootstrap))})  # fmt: skip


async def test_a_frozen_or_dead_relay_is_replaced_by_a_standby_and_a_woken_one_publishes_nothing_out_of_order(
    infra, database_url
):
    topic = await new_topic(infra.kafka, partitions=2)
    db = await prepare(database_url)
    first = _start_relay(database_url, infra.kafka, "first", 2)
    second = None
    try:
        async def holder() -> str | None:
            return await db.fetchval("SELECT holder FROM relay_lease WHERE name = 'outbox' AND expires_at > now()")

        assert await eventually(lambda: _is(holder, "first"), timeout=30)
        second = _start_relay(database_url, infra.kafka, "second", 2)
        rng = random.Random(3)
        keys = [f"k{i}" for i in range(8)]
        writing = asyncio.create_task(_write(db, topic, keys, versions=40, rng=rng))
        await asyncio.sleep(0.5)
        os.kill(first.pid, signal.SIGSTOP)  # frozen: holds its lease row lock, renews nothing
        assert await eventually(lambda: _is(holder, "second"), timeout=60), "no standby took over from a frozen relay"
        os.kill(first.pid, signal.SIGCONT)  # wakes up having lost the lease
        await asyncio.sleep(1)
        second.send_signal(signal.SIGKILL)  # now the new holder dies outright
        second.wait()
        assert await eventually(lambda: _is(holder, "first"), timeout=60), "no standby took over from a dead relay"
        written = await writing
        assert await eventually(lambda: _drained(db), timeout=120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
                process.wait(timeout=30)
    records = await read_topic(infra.kafka, topic, expect=written)
    order = first_appearances_in_order(records)
    assert {k: order[k] for k in keys} == {k: list(range(1, 41)) for k in keys}
    await db.close()


async def _is(holder, name: str) -> bool:  # noqa: ANN001
    return await holder() == name


async def test_a_standby_claims_nothing_while_the_holders_round_is_open_even_past_its_lease(infra, database_url):
    # The relay's claim locks no outbox row: the lease row's lock, held by an open round, is what keeps a standby out.
    topic = await new_topic(infra.kafka, partitions=2)
    db = await prepare(database_url)
    await db.execute("INSERT INTO relay_lease (name, holder, epoch, expires_at) VALUES ('outbox', 'frozen', 1, now())")
    frozen_round = await asyncpg.connect(database_url)
    tx = frozen_round.transaction()
    await tx.start()
    # The holder renewed inside its round, then froze until its lease ran out, its transaction still open.
    await frozen_round.execute("UPDATE relay_lease SET expires_at = now() - interval '1 second' WHERE name = 'outbox'")
    async with db.transaction() as conn:
        await add_to_outbox(conn, [ticked(f"k{i}", 1) for i in range(20)], route=lambda _: topic)
    standby_db = await _relay_pool(database_url, "standby")
    standby = relay(standby_db, database_url, infra.kafka, holder="standby", lease_seconds=2)
    stop = asyncio.Event()
    running = asyncio.create_task(standby.run(stop))
    try:
        await asyncio.sleep(4)  # two of the standby's lock timeouts
        assert standby.epoch is None, "the standby took the lease while the holder's round held its row"
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 20
        assert await read_topic(infra.kafka, topic, expect=1, timeout=2) == []
        await tx.rollback()  # the holder's session ends, as the server ends one idle in a round past the lease
        assert await eventually(lambda: _drained(db), timeout=30), "the standby never took over"
        assert await eventually(lambda: _is(lambda: db.fetchval("SELECT holder FROM relay_lease"), "standby"))
    finally:
        stop.set()
        await running
        await frozen_round.close()
        await standby_db.close()
    records = await read_topic(infra.kafka, topic, expect=20)
    assert sorted(json.loads(r.value)["aggregate_id"] for r in records) == sorted(f"k{i}" for i in range(20))
    await db.close()

"""The outbox relay on real PostgreSQL and Kafka: nothing committed is lost, nothing is published twice in normal
operation, per-key order holds, and a relay killed between publishing and marking republishes."""

from __future__ import annotations

import asyncio
import os
import collections
import json
import random
import subprocess
import sys

import pytest
from aiokafka.partitioner import DefaultPartitioner
from berdaya.stack.access import access_env
from prometheus_client import CollectorRegistry

from shared.messaging.dead_letters import KafkaDeadLetters
from shared.messaging.kafka import KafkaAccess, safe_producer
from shared.messaging.outbox import RelayError, add_to_outbox
from shared.messaging.relay import OutboxRelay
from shared.observability import MessagingMetrics
from tests.integration import relay_killed_after_publish
from tests.integration.messaging_fixtures import consume, prepare, relay, ticked
from tests.support import eventually, new_topic, read_topic

pytestmark = pytest.mark.integration


async def test_every_committed_row_is_published_exactly_once_in_per_key_order_under_concurrent_writers(infra, database_url):
    topic = await new_topic(infra.kafka, partitions=4)
    db = await prepare(database_url)
    keys = [f"counter-{i}" for i in range(12)]
    async with db.acquire() as conn:
        await conn.executemany("INSERT INTO counter (id) VALUES ($1)", [(k,) for k in keys])
    committed, rolled_back = [], []
    stop = asyncio.Event()
    running = asyncio.create_task(relay(db, database_url, infra.kafka).run(stop))

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            async with db.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                key = rng.choice(keys)
                # Locking the counter row orders this key's writers; their transactions still commit out of id order
                # with respect to other keys because they are held open for random times.
                seq = await conn.fetchval("UPDATE counter SET version = version + 1 WHERE id = $1 RETURNING version", key)
                await asyncio.sleep(rng.random() * 0.03)
                envelope = ticked(key, seq)
                await add_to_outbox(conn, [envelope], route=lambda _: topic)
                await asyncio.sleep(rng.random() * 0.03)
                if rng.random() < 0.1:
                    await tx.rollback()
                    rolled_back.append(envelope)
                else:
                    await tx.commit()
                    committed.append(envelope)

    await asyncio.gather(*(writer(seed) for seed in range(8)))
    assert await eventually(lambda: _backlog_is_empty(db), timeout=60), "relay did not drain the outbox"
    stop.set()
    await running

    records = await read_topic(infra.kafka, topic, expect=len(committed))
    published = collections.Counter(json.loads(r.value)["event_id"] for r in records)
    assert len(committed) > 250 and rolled_back
    assert published == collections.Counter(str(e.event_id) for e in committed)  # each exactly once, nothing else
    assert not {str(e.event_id) for e in rolled_back} & set(published)
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(record.value)
        assert record.key.decode() == envelope["aggregate_id"]
        by_key[envelope["aggregate_id"]].append(envelope["payload"]["seq"])
    for key, seqs in by_key.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{key} out of order: {seqs}"
    await db.close()


async def _backlog_is_empty(db) -> bool:  # noqa: ANN001
    return await db.fetchval("SELECT count(*) FROM outbox_pending") == 0


async def test_a_backlog_is_published_in_batches_each_key_on_kafka_s_own_partition_in_order_with_its_headers(
        infra, database_url):  # fmt: skip
    # The relay builds one record batch per partition itself, so it also picks the partition: it must be the one
    # Kafka's default partitioner gives the key, or a partner's own producer would split an aggregate over two.
    topic = await new_topic(infra.kafka, partitions=5)
    db = await prepare(database_url)
    keys = [f"usaha-{i}" for i in range(40)]
    envelopes = [ticked(key, seq) for seq in range(1, 31) for key in keys]
    async with db.transaction() as conn:
        await add_to_outbox(conn, envelopes, route=lambda _: topic)
    stop = asyncio.Event()
    running = asyncio.create_task(relay(db, database_url, infra.kafka, batch_size=170).run(stop))
    try:
        records = await read_topic(infra.kafka, topic, expect=len(envelopes))
    finally:
        stop.set()
        await running
        await db.close()

    assert len(records) == len(envelopes)
    kafka_rule = DefaultPartitioner()
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(record.value)
        headers = dict(record.headers)
        assert record.partition == kafka_rule(record.key, list(range(5)), list(range(5)))
        assert (headers["event_type"], headers["event_id"]) == (b"Ticked", envelope["event_id"].encode())
        by_key[record.key.decode()].append(envelope["payload"]["seq"])
    assert by_key == {key: list(range(1, 31)) for key in keys}


async def test_a_row_that_commits_after_later_rows_were_published_is_still_published(infra, database_url):
    topic = await new_topic(infra.kafka)
    db = await prepare(database_url)
    stop = asyncio.Event()
    running = asyncio.create_task(relay(db, database_url, infra.kafka).run(stop))
    slow = await db.connect()
    tx = slow.transaction()
    await tx.start()
    early = ticked("slow", 1)
    await add_to_outbox(slow, [early], route=lambda _: topic)  # takes the lower id, commits last
    later = [ticked(f"fast-{i}", 1) for i in range(5)]
    async with db.acquire() as conn:
        await add_to_outbox(conn, later, route=lambda _: topic)
    await read_topic(infra.kafka, topic, expect=5)
    await tx.commit()
    await db.release(slow)
    records = await read_topic(infra.kafka, topic, expect=6)
    stop.set()
    await running
    assert {json.loads(r.value)["event_id"] for r in records} == {str(e.event_id) for e in [early, *later]}
    await db.close()


async def test_a_relay_killed_between_publish_and_mark_republishes_and_the_consumer_applies_each_event_once(
    infra, database_url
):
    topic = await new_topic(infra.kafka)
    db = await prepare(database_url)
    events = [ticked(f"k{i % 3}", i // 3 + 1) for i in range(9)]
    async with db.acquire() as conn:
        await add_to_outbox(conn, events, route=lambda _: topic)

    died = subprocess.run(
        [sys.executable, "-m", "tests.integration.relay_killed_after_publish", database_url],
        env={**os.environ, **access_env(infra.kafka)},
        timeout=120,
    )
    assert died.returncode == relay_killed_after_publish.EXIT_CODE
    assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 9
    assert len(await read_topic(infra.kafka, topic, expect=9)) == 9  # on Kafka, but not marked

    stop = asyncio.Event()
    restarted = asyncio.create_task(relay(db, database_url, infra.kafka).run(stop))
    assert await eventually(lambda: _backlog_is_empty(db))
    stop.set()
    await restarted
    records = await read_topic(infra.kafka, topic, expect=18)
    assert collections.Counter(json.loads(r.value)["event_id"] for r in records) == {str(e.event_id): 2 for e in events}

    metrics = MessagingMetrics(CollectorRegistry())
    consumed = await _consume(infra.kafka, topic, db, metrics, until=18)
    assert consumed
    effects = await db.fetch("SELECT event_id, count(*) AS n FROM effect GROUP BY event_id")
    assert {str(r["event_id"]): r["n"] for r in effects} == {str(e.event_id): 1 for e in events}
    assert metrics.inbox_duplicates.labels("test-consumer")._value.get() == 9
    await db.close()


async def _consume(bootstrap: KafkaAccess | str, topic: str, db, metrics: MessagingMetrics, *, until: int) -> bool:  # noqa: ANN001
    producer = safe_producer(bootstrap, "test-dlq")
    await producer.start()
    broker = await consume(bootstrap, topic, db, KafkaDeadLetters(producer), metrics)
    try:
        return await eventually(
            lambda: sum(metrics.consumed.labels("test-consumer", o)._value.get() for o in ("processed", "duplicate")) >= until,
            timeout=60,
        )
    finally:
        await broker.stop()
        await producer.stop()


async def test_a_row_for_a_topic_kafka_does_not_have_fails_alone_and_the_rest_of_the_outbox_goes(infra, database_url):
    # A partner recorded in the registry but never given its topics: the lookup of the topic waited for Kafka's
    # request timeout, past the round's lease, and every round rolled back, so nothing else was published either.
    topic, missing = await new_topic(infra.kafka, partitions=1), f"test.never-made-{random.randrange(10**9)}.v1"
    db = await prepare(database_url)
    async with db.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, [ticked("partner", 1)], route=lambda _: missing)
        await add_to_outbox(conn, [ticked(f"k{i}", 1) for i in range(5)], route=lambda _: topic)
    stop = asyncio.Event()
    running = asyncio.create_task(relay(db, database_url, infra.kafka).run(stop))
    try:
        records = await read_topic(infra.kafka, topic, expect=5, timeout=20)
        assert len(records) == 5

        async def failed_alone() -> bool:
            rows = await db.fetch("SELECT attempts, last_error FROM outbox_pending")
            return len(rows) == 1 and rows[0]["attempts"] >= 1 and bool(rows[0]["last_error"])

        assert await eventually(failed_alone, timeout=20)
    finally:
        stop.set()
        await running
        await db.close()


async def test_a_failing_aggregates_later_rows_filling_a_whole_claim_hold_back_only_that_aggregate(infra, database_url):
    # A pledge's FundingMatched events queued behind its failing first one: every claim of a round looked at the same
    # first batch of them, found nothing it could publish and ended the round, so the whole outbox waited.
    topic = await new_topic(infra.kafka, partitions=2)
    db = await prepare(database_url)
    async with db.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, [ticked("pledge", seq) for seq in range(1, 152)], route=lambda _: topic)
        await add_to_outbox(conn, [ticked(f"k{i}", 1) for i in range(20)], route=lambda _: topic)
        await conn.execute("UPDATE outbox_pending SET attempts = 1, last_error = 'stalled',"
                           " next_attempt_at = now() + interval '5 minutes' WHERE id = (SELECT min(id) FROM outbox)")
    held = relay(db, database_url, infra.kafka, batch_size=100)
    assert await held.try_take_lease()
    try:
        assert await held.publish_batch() == 20
        records = await read_topic(infra.kafka, topic, expect=20)
        assert sorted(json.loads(r.value)["aggregate_id"] for r in records) == sorted(f"k{i}" for i in range(20))
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 151  # the pledge's, in order, later
    finally:
        await held.release_lease()
        await held._drop_producer()
        await db.close()


class _FailsOnSecondBatch(OutboxRelay):
    """A relay whose round fails as it hands over its second batch: by then the third batch's claim is already out
    on the round's connection."""

    handed = 0

    async def _enqueue(self, producer, rows, refused, *deadlines):  # noqa: ANN001, ANN202
        self.handed += 1
        if self.handed == 2:
            raise RelayError("the round fails here")
        return await super()._enqueue(producer, rows, refused, *deadlines)


async def test_a_round_that_fails_while_its_next_claim_is_out_rolls_back_whole_and_the_next_round_publishes_it(
    infra, database_url
):
    topic = await new_topic(infra.kafka, partitions=3)
    db = await prepare(database_url)
    envelopes = [ticked(f"k{i % 7}", i // 7 + 1) for i in range(210)]
    async with db.transaction() as conn:
        await add_to_outbox(conn, envelopes, route=lambda _: topic)
    failing = relay(db, database_url, infra.kafka, cls=_FailsOnSecondBatch, batch_size=50)
    assert await failing.try_take_lease()
    try:
        with pytest.raises(RelayError, match="the round fails here"):
            await failing.publish_batch()
        # Nothing of the round was marked, and its connection went back to the pool fit for the next round.
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == len(envelopes)
        while await failing.publish_batch():
            pass
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 0
    finally:
        await failing.release_lease()
        await failing._drop_producer()
    # The first batch went out in the failed round and again in the next: duplicates for inboxes, never out of order.
    records = await read_topic(infra.kafka, topic, expect=len(envelopes) + 50)
    first_seen: dict[str, list[int]] = collections.defaultdict(list)
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(record.value)
        if envelope["event_id"] not in seen:
            seen.add(envelope["event_id"])
            first_seen[envelope["aggregate_id"]].append(envelope["payload"]["seq"])
    assert seen == {str(e.event_id) for e in envelopes}
    assert first_seen == {f"k{k}": list(range(1, 31)) for k in range(7)}
    await db.close()


class _LateCommitDuringRound(OutboxRelay):
    """A relay whose first hand-over of a round is the moment a slow transaction commits the first event of "late"
    (its row has the lowest id) and another then commits the second: both become visible while the round's later
    claims are still to come."""

    handed = 0
    on_first_hand_over = None

    async def _enqueue(self, producer, rows, refused, *deadlines):  # noqa: ANN001, ANN202
        self.handed += 1
        if self.handed == 1 and self.on_first_hand_over is not None:
            await self.on_first_hand_over()
        return await super()._enqueue(producer, rows, refused, *deadlines)


async def _late_in_the_order_published(db, database_url: str, infra, topic: str, slow,  # noqa: ANN001
                                       on_first_hand_over) -> list[int]:  # noqa: ANN001  # fmt: skip
    """Relay round by round, batches of one, with `on_first_hand_over` run as the first batch is handed over, until
    the outbox is empty; the seqs of the events of "late" in the order Kafka holds them. Closes the database."""
    relaying = relay(db, database_url, infra.kafka, cls=_LateCommitDuringRound, batch_size=1)
    relaying.on_first_hand_over = on_first_hand_over
    assert await relaying.try_take_lease()
    try:
        while await relaying.publish_batch():
            pass
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 0
    finally:
        await relaying.release_lease()
        await relaying._drop_producer()
        await db.release(slow)
        await db.close()
    records = await read_topic(infra.kafka, topic, expect=8)
    return [json.loads(r.value)["payload"]["seq"] for r in sorted(records, key=lambda r: r.offset)
            if json.loads(r.value)["aggregate_id"] == "late"]


async def test_a_row_that_commits_during_a_round_is_not_overtaken_by_a_later_row_of_its_aggregate(infra, database_url):
    """The round's later claims start above the rows it claimed before; a row below them that committed meanwhile
    must still go out before any later row of its aggregate."""
    topic = await new_topic(infra.kafka, partitions=1)
    db = await prepare(database_url)
    slow = await db.connect()
    tx = slow.transaction()
    await tx.start()
    await add_to_outbox(slow, [ticked("late", 1)], route=lambda _: topic)  # the lowest id, committed last
    async with db.transaction() as conn:
        await add_to_outbox(conn, [ticked(f"other-{i}", 1) for i in range(6)], route=lambda _: topic)

    async def commit_late_and_its_next() -> None:
        await tx.commit()
        async with db.transaction() as conn:
            await add_to_outbox(conn, [ticked("late", 2)], route=lambda _: topic)

    assert await _late_in_the_order_published(db, database_url, infra, topic, slow, commit_late_and_its_next) == [1, 2]


async def test_two_events_of_one_transaction_that_commits_during_a_round_go_out_in_order(infra, database_url):
    """Ids are taken as rows are written: another transaction's row can fall between two of this one's, and commit
    first. The round's claims must not pass the first of the two and then take the second."""
    topic = await new_topic(infra.kafka, partitions=1)
    db = await prepare(database_url)
    slow = await db.connect()
    tx = slow.transaction()
    await tx.start()

    async def committed(*keys: str) -> None:
        async with db.transaction() as conn:
            await add_to_outbox(conn, [ticked(k, 1) for k in keys], route=lambda _: topic)

    await committed("before")
    await add_to_outbox(slow, [ticked("late", 1)], route=lambda _: topic)
    await committed("between")
    await add_to_outbox(slow, [ticked("late", 2)], route=lambda _: topic)
    await committed(*(f"after-{i}" for i in range(4)))

    async def commit_once_the_next_claim_ran() -> None:
        await asyncio.sleep(0.3)  # the claim sent ahead of this hand-over runs meanwhile, and passes "late" 1
        await tx.commit()

    assert await _late_in_the_order_published(db, database_url, infra, topic, slow,
                                              commit_once_the_next_claim_ran) == [1, 2]  # fmt: skip

"""The outbox relay when Kafka stops answering for one partition (its leader gone or cut off) or for all of them, on
real PostgreSQL and Kafka: the other partitions' events go out once each, and an outage leaves the outbox as it was."""

from __future__ import annotations

import asyncio
import collections
import json

import pytest
from aiokafka import AIOKafkaProducer

from shared.messaging.kafka import safe_producer
from shared.messaging.outbox import RelayError, add_to_outbox
from shared.messaging.partitioner import partition_for
from tests.integration.messaging_fixtures import prepare, relay, ticked
from tests.support import eventually, new_topic, read_topic

pytestmark = pytest.mark.integration

_PARTITIONS = [0, 1, 2]


class _SilentProducer(AIOKafkaProducer):
    """A producer whose partitions in `silent` behave as aiokafka's do with no leader to send to: the first batch is
    taken and never acknowledged, and the next one waits for room behind it."""

    silent: frozenset[int] = frozenset({0})
    taken: collections.Counter[int]

    async def send_batch(self, batch, topic, *, partition):  # noqa: ANN001, ANN201
        if partition not in self.silent:
            return await super().send_batch(batch, topic, partition=partition)
        self.taken = getattr(self, "taken", collections.Counter())
        self.taken[partition] += 1
        if self.taken[partition] > 1:
            await asyncio.Event().wait()
        return asyncio.get_running_loop().create_future()


def _silent_relay(db, database_url, kafka, silent: frozenset[int]):  # noqa: ANN001, ANN202
    producers: list[_SilentProducer] = []

    def factory() -> AIOKafkaProducer:
        producer = safe_producer(kafka, "test-relay", cls=_SilentProducer)
        producer.silent = silent
        producers.append(producer)
        return producer

    relaying = relay(db, database_url, kafka, lease_seconds=6.0, batch_size=20)
    relaying._producer_factory = factory
    return relaying, producers


def _on(partition: int, key: str) -> bool:
    return partition_for(key.encode(), _PARTITIONS, ()) == partition


async def test_a_partition_kafka_never_acknowledges_holds_back_only_its_own_events_and_the_rest_go_out_once(
    infra, database_url
):
    # Waiting for the silent partition's acknowledgements outlasted the round's transaction (PostgreSQL ends it after
    # the lease's idle time): every round rolled back, nothing was marked, and the healthy partitions' events went
    # out again round after round.
    topic = await new_topic(infra.kafka, partitions=len(_PARTITIONS))
    db = await prepare(database_url)
    keys = [f"k{i}" for i in range(30)]
    stuck = {k for k in keys if _on(0, k)}
    assert stuck and len(stuck) < len(keys)
    async with db.transaction() as conn:
        await add_to_outbox(conn, [ticked(k, seq) for seq in (1, 2) for k in keys], route=lambda _: topic)
    relaying, producers = _silent_relay(db, database_url, infra.kafka, frozenset({0}))
    stop = asyncio.Event()
    running = asyncio.create_task(relaying.run(stop))
    try:

        async def only_the_silent_partition_waits() -> bool:
            waiting = await db.fetch("SELECT DISTINCT o.aggregateid FROM outbox_pending p JOIN outbox o USING (id)")
            return {r["aggregateid"] for r in waiting} == stuck

        assert await eventually(only_the_silent_partition_waits, timeout=30)
        errors = [r["last_error"] for r in await db.fetch("SELECT last_error FROM outbox_pending")]
        assert any("acknowledge" in e and "partition 0 " in e for e in errors if e)
        # New events of healthy aggregates still go out, and the silent partition is not waited for again: its
        # events are held back without being handed over while it stays stalled.
        taken = sum(p.taken[0] for p in producers if hasattr(p, "taken"))
        async with db.transaction() as conn:
            await add_to_outbox(conn, [ticked(k, 3) for k in keys], route=lambda _: topic)

        async def the_new_healthy_events_went_out() -> bool:
            waiting = await db.fetch("SELECT DISTINCT o.aggregateid FROM outbox_pending p JOIN outbox o USING (id)")
            return {r["aggregateid"] for r in waiting} == stuck

        assert await eventually(the_new_healthy_events_went_out, timeout=30)
        assert sum(p.taken[0] for p in producers if hasattr(p, "taken")) == taken
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        await db.close()
    healthy = [k for k in keys if k not in stuck]
    records = await read_topic(infra.kafka, topic, expect=3 * len(healthy), timeout=20)
    seqs: dict[str, list[int]] = collections.defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(record.value)
        seqs[envelope["aggregate_id"]].append(envelope["payload"]["seq"])
    assert seqs == {k: [1, 2, 3] for k in healthy}  # once each, in order, and nothing from the silent partition


async def test_a_round_kafka_acknowledges_nothing_of_rolls_back_whole_and_marks_no_event_failed(infra, database_url):
    # A broker down is an outage, not a fault of these events: they keep no error and no backoff of their own, and
    # the relay backs off as a whole. Before, the round waited on Kafka for as long as it took.
    topic = await new_topic(infra.kafka, partitions=len(_PARTITIONS))
    db = await prepare(database_url)
    async with db.transaction() as conn:
        await add_to_outbox(conn, [ticked(f"k{i}", 1) for i in range(30)], route=lambda _: topic)
    relaying, _ = _silent_relay(db, database_url, infra.kafka, frozenset(_PARTITIONS))
    assert await relaying.try_take_lease()
    try:
        with pytest.raises(RelayError, match="acknowledged none"):
            await asyncio.wait_for(relaying.publish_batch(), timeout=20)
        waiting = await db.fetch("SELECT attempts, last_error FROM outbox_pending")
        assert len(waiting) == 30 and all(r["attempts"] == 0 and r["last_error"] is None for r in waiting)
    finally:
        await relaying.release_lease()
        await relaying._drop_producer()
        await db.close()

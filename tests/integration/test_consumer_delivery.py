"""Consuming on a real broker: a duplicate delivery changes nothing, a poison record goes to the dead-letter topic
with its reason and the partition moves on, an infrastructure failure is retried by redelivery, and offsets are
committed only after the work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from shared.db import Database
from shared.messaging.consumer import RetryPolicy
from shared.messaging.dead_letters import KafkaDeadLetters
from shared.messaging.kafka import KafkaAccess, consumer_lag, safe_producer
from shared.messaging.subscriptions import MAX_POLL_INTERVAL_MS
from shared.observability import MessagingMetrics
from tests.integration.messaging_fixtures import consume, prepare, ticked
from tests.support import eventually, new_topic, read_topic

pytestmark = pytest.mark.integration

NAME = "test-consumer"


class Harness:
    """A consumer group on one topic, with a plain producer to put records on it."""

    def __init__(self, bootstrap: KafkaAccess | str, topic: str, db: Database) -> None:
        self.bootstrap, self.topic, self.db = bootstrap, topic, db
        self.metrics = MessagingMetrics(CollectorRegistry())
        self.fail_on: dict[int, type[BaseException]] = {}  # seq -> error raised while applying it
        self.failures_left: dict[int, int] = {}
        self._broker: KafkaBroker | None = None
        self.slow = 0.0  # seconds each batch takes to apply
        self.applying = asyncio.Event()
        self.producer = safe_producer(bootstrap, "test-producer")

    async def apply(self, tx, batch) -> None:  # noqa: ANN001
        self.applying.set()
        await asyncio.sleep(self.slow)
        for delivery in batch:
            payload = delivery.payload
            left = self.failures_left.get(payload.seq)  # None: fails every time
            if payload.seq in self.fail_on and (left is None or left > 0):
                if left is not None:
                    self.failures_left[payload.seq] = left - 1
                raise self.fail_on[payload.seq](f"cannot apply seq {payload.seq} (owner NIK 5371045708900001)")
            await tx.conn.execute("INSERT INTO effect (event_id, key, seq) VALUES ($1, $2, $3)",
                                  delivery.envelope.event_id, payload.key, payload.seq)  # fmt: skip

    async def start(self, policy: RetryPolicy = RetryPolicy(max_attempts=3, backoff=0.01, transient_backoff=0.05),
                    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS) -> None:  # fmt: skip
        self._broker = await consume(self.bootstrap, self.topic, self.db, KafkaDeadLetters(self.producer), self.metrics,
                                     apply=self.apply, name=NAME, policy=policy,
                                     max_poll_interval_ms=max_poll_interval_ms)  # fmt: skip

    async def stop(self) -> None:
        if self._broker:
            await self._broker.stop()
            self._broker = None

    async def send(self, value: bytes, key: str = "k", headers: list[tuple[str, bytes | None]] | None = None) -> None:
        await self.producer.send_and_wait(self.topic, value=value, key=key.encode(), headers=headers)

    def handled(self, outcome: str) -> float:
        return self.metrics.consumed.labels(NAME, outcome)._value.get()

    async def effects(self) -> list[int]:
        return [r["seq"] for r in await self.db.fetch("SELECT seq FROM effect ORDER BY seq")]


@pytest.fixture
async def harness(infra, database_url) -> AsyncIterator[Harness]:
    db = await prepare(database_url)
    h = Harness(infra.kafka, await new_topic(infra.kafka, partitions=1), db)
    await h.producer.start()
    yield h
    await h.stop()
    await h.producer.stop()
    await db.close()


async def test_the_same_event_delivered_twice_has_one_effect(harness):
    event = ticked("k", 1).to_json_bytes()
    await harness.send(event)
    await harness.send(event)
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") + harness.handled("duplicate") == 2)
    assert await harness.effects() == [1]
    assert harness.metrics.inbox_duplicates.labels(NAME)._value.get() == 1


async def test_a_poison_record_goes_to_the_dead_letter_topic_with_its_reason_and_the_next_record_is_processed(harness):
    await harness.send(b"{not an event")
    await harness.send(ticked("k", 2).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 1)
    assert await harness.effects() == [2]
    [dead] = await read_topic(harness.bootstrap, f"{harness.topic}.dlq", expect=1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b"{not an event"
    assert headers["dlq.consumer"] == NAME
    assert headers["dlq.original_topic"] == harness.topic
    assert headers["dlq.original_offset"] == "0"
    assert "not a Berdaya envelope" in headers["dlq.error"]


async def test_a_record_with_headers_that_are_not_text_is_dead_lettered_not_stuck(harness):
    await harness.send(ticked("k", 1).to_json_bytes(), headers=[("trace", b"\xff\xfe\x00")])
    await harness.send(ticked("k", 2).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 2)
    assert await harness.effects() == [1, 2]  # the event itself is fine: only its header was not text


async def test_a_record_with_a_header_without_a_value_is_applied_and_nothing_after_it_is_skipped(harness):
    # Kafka allows a header with no value; FastStream decoded it as text and failed the whole batch, which was then
    # neither applied nor redelivered: the next batch's commit went past it.
    await harness.send(ticked("k", 1).to_json_bytes(), headers=[("event_type", None), ("trace", None)])
    await harness.send(ticked("k", 2).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 2)
    await harness.send(b"{not an event", headers=[("trace", None)])  # dead-lettered as it came, header and all
    await harness.send(ticked("k", 3).to_json_bytes())
    assert await eventually(lambda: harness.handled("processed") == 3)
    assert await harness.effects() == [1, 2, 3]
    [dead] = await read_topic(harness.bootstrap, f"{harness.topic}.dlq", expect=1)
    assert dead.value == b"{not an event" and ("trace", None) in dead.headers


@pytest.mark.parametrize("occurred_at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
async def test_an_event_dated_past_the_calendars_ends_is_dead_lettered_and_the_partition_moves_on(harness, occurred_at):
    envelope = json.loads(ticked("k", 1).to_json_bytes())
    await harness.send(json.dumps({**envelope, "occurred_at": occurred_at}).encode())
    await harness.send(ticked("k", 2).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 1)
    assert await harness.effects() == [2]
    [dead] = await read_topic(harness.bootstrap, f"{harness.topic}.dlq", expect=1)
    assert occurred_at.encode() in dead.value


async def test_a_batch_with_one_failing_record_applies_the_others_and_dead_letters_only_that_one(harness):
    harness.fail_on[3] = ValueError
    for seq in range(1, 7):
        await harness.send(ticked("k", seq).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 5)
    assert await harness.effects() == [1, 2, 4, 5, 6]
    [dead] = await read_topic(harness.bootstrap, f"{harness.topic}.dlq", expect=1)
    assert json.loads(dead.value)["payload"]["seq"] == 3


async def test_a_record_that_keeps_failing_is_retried_a_bounded_number_of_times_then_dead_lettered(harness):
    harness.fail_on[1] = ValueError
    await harness.send(ticked("k", 1).to_json_bytes())
    await harness.send(ticked("k", 2).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 1)
    assert await harness.effects() == [2]
    assert harness.metrics.retries.labels(NAME)._value.get() == 3
    [dead] = await read_topic(harness.bootstrap, f"{harness.topic}.dlq", expect=1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert json.loads(dead.value)["payload"]["seq"] == 1
    assert headers["dlq.attempts"] == "3"
    assert headers["dlq.error_type"] == "ValueError"
    assert "5371045708900001" not in headers["dlq.error"]  # a NIK in an error message never reaches the DLQ


async def test_an_infrastructure_failure_is_retried_by_redelivery_not_dead_lettered(harness):
    harness.fail_on[1] = ConnectionResetError
    harness.failures_left[1] = 1
    await harness.send(ticked("k", 1).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 1, timeout=45)
    assert await harness.effects() == [1]
    assert harness.handled("dead_lettered") == 0


async def test_offsets_are_committed_after_the_work_so_a_restart_does_not_reprocess(harness):
    for seq in (1, 2, 3):
        await harness.send(ticked("k", seq).to_json_bytes())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 3)
    await harness.stop()
    await harness.send(ticked("k", 4).to_json_bytes())
    harness.metrics = MessagingMetrics(CollectorRegistry())
    await harness.start()
    assert await eventually(lambda: harness.handled("processed") == 1)
    assert harness.handled("duplicate") == 0  # 1-3 were committed, so only 4 was delivered again
    assert await harness.effects() == [1, 2, 3, 4]


async def test_a_batch_being_applied_when_its_consumer_stops_is_finished_and_not_read_again(harness):
    """A deploy or a scale-down stops a replica mid-batch: the batch is finished and its offsets reach Kafka before
    the consumer leaves its group, so whoever takes the partition goes on from there instead of reading it again."""
    for seq in (1, 2, 3):
        await harness.send(ticked("k", seq).to_json_bytes())
    harness.slow = 1.0
    await harness.start()
    await asyncio.wait_for(harness.applying.wait(), timeout=45)
    await harness.stop()
    assert harness.handled("processed") >= 1  # the batch being applied was finished, not cancelled
    harness.slow = 0.0
    await harness.send(ticked("k", 4).to_json_bytes())
    harness.metrics = MessagingMetrics(CollectorRegistry())
    await harness.start()

    async def all_applied() -> bool:
        return await harness.effects() == [1, 2, 3, 4]

    assert await eventually(all_applied)
    assert harness.handled("duplicate") == 0


async def test_failing_records_that_each_take_long_are_split_across_deliveries_that_end_within_the_poll_interval(
    harness,
):
    """Each delivery retries for its window, dead-letters the record it was on and leaves the rest to be read again.
    One delivery giving every record an attempt ran past Kafka's poll interval: Kafka handed the partition on, the
    offsets were not committed, and the records were read and dead-lettered again, round after round."""
    for seq in range(1, 11):
        if seq <= 6:
            harness.fail_on[seq] = ValueError
        await harness.send(ticked("k", seq).to_json_bytes())
    harness.slow = 0.5  # every attempt, as a handler running long before it fails
    # Ten attempts of 0.5 s in one delivery would take 5 s, past this poll interval; a window of 1 s keeps each
    # delivery to about 1 s.
    await harness.start(RetryPolicy(max_attempts=3, backoff=0.01, retry_window=1.0), max_poll_interval_ms=4_000)

    assert await eventually(lambda: harness.handled("processed") == 4, timeout=60)
    assert await harness.effects() == [7, 8, 9, 10]
    dead = await read_topic(harness.bootstrap, f"{harness.topic}.dlq", expect=6)
    assert [json.loads(d.value)["payload"]["seq"] for d in dead] == [1, 2, 3, 4, 5, 6]  # each once, in order
    assert await eventually(lambda: consumer_lag(harness.bootstrap, NAME, [harness.topic]) == {(harness.topic, 0): 0})

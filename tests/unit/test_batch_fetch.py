"""Tests how a subscriber fetches its next batch: records are handed over as soon as they come, and an empty fetch is
followed by no pause unless aiokafka came back before its timeout."""

from __future__ import annotations

import sys
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError
from faststream.kafka import KafkaBroker

from shared.contracts.registry import NIBIssued
from shared.messaging.subscriptions import BATCH_TIMEOUT_MS, Consumers, Subscription, declare, next_batch


def record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord("registry.business.v1", partition, offset, 0, 0, None, b"{}", None, 0, 2, [])


class Clock:
    """The monotonic clock, moved only by the fake consumer's fetches."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class FetchingConsumer(AIOKafkaConsumer):
    """A consumer that is never started: each getmany takes `took` seconds of the clock and returns what it is
    given (or raises it), and it records what it was asked and by which function."""

    def __init__(self, clock: Clock, took: float,
                 fetched: dict[TopicPartition, list[ConsumerRecord]] | BaseException) -> None:  # fmt: skip
        super().__init__()
        self.clock, self.took, self.fetched = clock, took, fetched
        self.asked: list[dict[str, Any]] = []
        self.callers: list[str] = []

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,  # type: ignore[override]
                      max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:  # fmt: skip
        self.callers.append(sys._getframe(1).f_code.co_name)
        self.asked.append({"timeout_ms": timeout_ms, "max_records": max_records})
        self.clock.now += self.took
        if isinstance(self.fetched, BaseException):
            raise self.fetched
        return self.fetched


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_the_records_of_every_partition_fetched_are_handed_over_at_once_in_one_batch() -> None:
    clock, sleeps = Clock(), Sleeps()
    first, second, third = record(0, 7), record(0, 8), record(3, 2)
    consumer = FetchingConsumer(clock, 0.002, {TopicPartition("registry.business.v1", 0): [first, second],
                                               TopicPartition("registry.business.v1", 3): [third]})  # fmt: skip

    batch = await next_batch(consumer, timeout_ms=100, max_records=200, clock=clock, sleep=sleeps)

    assert batch == (first, second, third)
    assert consumer.asked == [{"timeout_ms": 100, "max_records": 200}]
    assert sleeps.seconds == []


async def test_a_fetch_that_waited_its_whole_timeout_for_nothing_is_followed_by_the_next_without_a_pause() -> None:
    clock, sleeps = Clock(), Sleeps()
    consumer = FetchingConsumer(clock, 0.1, {})

    assert await next_batch(consumer, timeout_ms=100, max_records=200, clock=clock, sleep=sleeps) == ()
    assert sleeps.seconds == []


async def test_a_fetch_that_came_back_empty_before_its_timeout_sleeps_the_rest_so_the_loop_cannot_spin() -> None:
    clock, sleeps = Clock(), Sleeps()
    consumer = FetchingConsumer(clock, 0.03, {})

    assert await next_batch(consumer, timeout_ms=100, max_records=200, clock=clock, sleep=sleeps) == ()
    assert [round(s, 6) for s in sleeps.seconds] == [0.07]


async def test_faststreams_consume_loop_fetches_a_declared_subscriptions_batches_through_next_batch() -> None:
    """Pins the override to FastStream's loop: were `get_msg` renamed, the subscription would silently fetch through
    FastStream's own, which pauses after every empty fetch."""
    broker = KafkaBroker()
    declare(broker, Subscription("registry.business.v1", "funding-view", (NIBIssued,)), Consumers(), max_records=50)
    [subscriber] = broker.subscribers
    consumer = FetchingConsumer(Clock(), 0, ConsumerStoppedError())  # stopped under it: the loop ends there
    subscriber.running = True

    await subscriber._run_consume_loop(consumer)  # type: ignore[attr-defined]

    assert consumer.callers == ["next_batch"]
    assert consumer.asked == [{"timeout_ms": BATCH_TIMEOUT_MS, "max_records": 50}]

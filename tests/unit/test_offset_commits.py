"""Tests how a subscriber's batch is committed: applied first, then its offsets committed while the next batch is
applied (CommitBehind), taken from the batch itself, one commit at a time; a commit that fails or hangs is logged and
given up rather than failing or holding the next batch; a batch that fails is rewound and never committed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, UnknownMemberIdError

from shared.messaging.consumer import EventConsumer, Outcome
from shared.messaging.subscriptions import CommitBehind, apply_batch


class Rec(NamedTuple):
    topic: str
    partition: int
    offset: int


class FakeKafkaConsumer(AIOKafkaConsumer):
    """A consumer that is never started: it records the commits asked of it, and each waits until released."""

    def __init__(self, assigned: Iterable[TopicPartition], steps: list[str] | None = None) -> None:
        super().__init__()
        self.steps = steps if steps is not None else []
        self.assigned = set(assigned)
        self.commits: list[dict[TopicPartition, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None
        self.seek_fails_with: Exception | None = None

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {partition}")
        if self.seek_fails_with is not None:
            raise self.seek_fails_with
        self.steps.append(f"seek {partition.partition}@{offset}")

    async def commit(self, offsets: Any = None) -> None:
        self.steps.append("commit")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
            if self.fail_with is not None:
                raise self.fail_with
            self.commits.append(dict(offsets))
        finally:
            self.in_flight -= 1


A0, A1 = TopicPartition("t", 0), TopicPartition("t", 1)


@pytest.fixture
async def kafka() -> Any:
    made: list[FakeKafkaConsumer] = []

    def make(assigned: Iterable[TopicPartition] = (A0, A1), steps: list[str] | None = None) -> FakeKafkaConsumer:
        made.append(FakeKafkaConsumer(assigned, steps))
        return made[-1]

    yield make
    for consumer in made:
        consumer.release.set()
        await consumer.stop()


async def test_the_commit_covers_the_batch_one_past_its_last_record_of_each_partition_and_no_further(
    kafka: Any,
) -> None:
    consumer = kafka([A0, A1])
    consumer.release.set()
    commits = CommitBehind("funding-view")
    await commits.after(consumer, [Rec("t", 0, 7), Rec("t", 1, 3), Rec("t", 0, 9), Rec("t", 0, 8)])
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 10, A1: 4}]


async def test_a_batch_returns_before_its_commit_reaches_kafka_so_the_next_batch_is_applied_meanwhile(
    kafka: Any,
) -> None:
    consumer = kafka([A0])
    commits = CommitBehind("notifier")
    await asyncio.wait_for(commits.after(consumer, [Rec("t", 0, 0)]), 1)
    await asyncio.sleep(0)
    assert consumer.in_flight == 1 and consumer.commits == []
    consumer.release.set()
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 1}]


async def test_the_next_commit_waits_for_the_one_in_flight_so_commits_reach_kafka_in_order(kafka: Any) -> None:
    consumer = kafka([A0])
    commits = CommitBehind("notifier")
    await commits.after(consumer, [Rec("t", 0, 0)])
    second = asyncio.create_task(commits.after(consumer, [Rec("t", 0, 1)]))
    await asyncio.sleep(0.01)
    assert not second.done(), "a second commit was started while the first was in flight"
    consumer.release.set()
    await second
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 1}, {A0: 2}]
    assert consumer.most_in_flight == 1


async def test_a_partition_taken_away_by_a_rebalance_is_left_to_its_new_owner(kafka: Any) -> None:
    consumer = kafka([A0, A1])
    consumer.release.set()
    commits = CommitBehind("training")
    consumer.assigned = {A1}
    await commits.after(consumer, [Rec("t", 0, 5), Rec("t", 1, 6)])
    await commits.settled(consumer)
    assert consumer.commits == [{A1: 7}]


async def test_a_batch_whose_partitions_all_went_elsewhere_commits_nothing(kafka: Any) -> None:
    consumer = kafka([])
    consumer.release.set()
    commits = CommitBehind("training")
    await commits.after(consumer, [Rec("t", 0, 5)])
    await commits.settled(consumer)
    assert consumer.commits == []


async def test_a_failed_commit_is_logged_with_its_offsets_and_the_next_batch_commits_as_usual(
    kafka: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = kafka([A0])
    consumer.release.set()
    # As aiokafka raises it: its own text advises on max_poll_interval_ms; the error under it tells what happened.
    rebalanced = CommitFailedError()
    rebalanced.__cause__ = UnknownMemberIdError()
    consumer.fail_with = rebalanced
    commits = CommitBehind("funding-view")
    with caplog.at_level(logging.WARNING, logger="shared.messaging.subscriptions"):
        await commits.after(consumer, [Rec("t", 0, 41)])
        await commits.settled(consumer)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "funding-view: offsets t[0]@42 not committed: the group rebalanced (UnknownMemberIdError)" in caplog.text
    assert "the inbox skips them" in caplog.text
    assert "max_poll_interval_ms" not in caplog.text
    consumer.fail_with = None
    await commits.after(consumer, [Rec("t", 0, 42)])
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 43}]


async def test_waiting_for_a_commit_that_is_cancelled_does_not_cancel_the_commit(kafka: Any) -> None:
    consumer = kafka([A0])
    commits = CommitBehind("notifier")
    await commits.after(consumer, [Rec("t", 0, 0)])
    waiter = asyncio.create_task(commits.after(consumer, [Rec("t", 0, 1)]))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    consumer.release.set()
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 1}]


async def test_a_commit_that_never_returns_is_given_up_with_an_error_and_the_next_batch_commits(
    kafka: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = kafka([A0])
    commits = CommitBehind("notifier", timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="shared.messaging.subscriptions"):
        await commits.after(consumer, [Rec("t", 0, 0)])
        await asyncio.wait_for(commits.settled(consumer), 1)
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "notifier: offsets t[0]@1 not committed" in caplog.text
    consumer.release.set()
    await commits.after(consumer, [Rec("t", 0, 1)])
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 2}]


async def test_a_refused_commit_other_than_a_rebalance_is_an_error_that_says_what_to_check(
    kafka: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = kafka([A0])
    consumer.release.set()
    consumer.fail_with = KafkaError("group authorization failed")
    commits = CommitBehind("funding-view")
    with caplog.at_level(logging.WARNING, logger="shared.messaging.subscriptions"):
        await commits.after(consumer, [Rec("t", 0, 0)])
        await commits.settled(consumer)
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "check the consumer's access to Kafka" in caplog.text


async def test_a_restarted_subscriber_does_not_wait_for_the_commit_of_the_consumer_it_replaced(kafka: Any) -> None:
    old, new = kafka([A0]), kafka([A0])
    new.release.set()
    commits = CommitBehind("notifier")
    await commits.after(old, [Rec("t", 0, 0)])
    await asyncio.wait_for(commits.after(new, [Rec("t", 0, 0)]), 1)
    await commits.settled(new)
    assert new.commits == [{A0: 1}]
    assert old.commits == [] and old.in_flight == 0


async def test_a_commit_task_cancelled_from_outside_does_not_jam_the_next_batch(kafka: Any) -> None:
    consumer = kafka([A0])
    commits = CommitBehind("notifier")
    await commits.after(consumer, [Rec("t", 0, 0)])
    await asyncio.sleep(0)
    (commit,) = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "CommitBehind._commit"]
    commit.cancel()
    consumer.release.set()
    await asyncio.wait_for(commits.after(consumer, [Rec("t", 0, 1)]), 1)
    await commits.settled(consumer)
    assert consumer.commits == [{A0: 2}]


class FakeEventConsumer(EventConsumer):
    """Records the batches it is handed, or fails them; `defer`: for each batch in turn, the offsets it leaves for
    the next delivery."""

    def __init__(self, steps: list[str], fail: bool = False, defer: list[set[int]] | None = None) -> None:
        self.steps, self.fail, self.defer = steps, fail, defer or []

    async def handle_batch(self, records: Any) -> list[Outcome]:
        await asyncio.sleep(0)
        self.steps.append(f"applied {[r.offset for r in records]}")
        if self.fail:
            raise ConnectionResetError("the database went away")
        deferred = self.defer.pop(0) if self.defer else set()
        return [Outcome.DEFERRED if r.offset in deferred else Outcome.PROCESSED for r in records]


class FakeMessage:
    """What FastStream hands the subscriber: the raw records, their consumer, and ack/nack."""

    def __init__(self, records: list[Rec], consumer: Any, steps: list[str]) -> None:
        self.raw_message = tuple(records)
        self.consumer = consumer
        self.steps = steps

    async def nack(self) -> None:
        self.steps.append("rewound")

    async def ack(self) -> None:
        self.steps.append("acked")


def records(*offsets: int) -> list[Rec]:
    return [Rec("t", 0, o) for o in offsets]


def batch(recs: list[Rec], consumer: Any, steps: list[str]) -> tuple[FakeMessage, tuple[Rec, ...]]:
    """A message and its records, as the subscriber hands them to `apply_batch`."""
    message = FakeMessage(recs, consumer, steps)
    return message, message.raw_message


async def test_a_batch_is_applied_before_its_offsets_are_committed(kafka: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps: list[str] = []
    consumer = kafka([A0], steps)
    consumer.release.set()
    commits = CommitBehind("notifier")
    await apply_batch(*batch(records(3, 4), consumer, steps), FakeEventConsumer(steps), commits, "notifier")
    await commits.settled(consumer)
    assert steps == ["applied [3, 4]", "commit"]
    assert consumer.commits == [{A0: 5}]


async def test_a_batch_that_fails_is_rewound_and_nothing_is_committed(
    kafka: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps: list[str] = []
    consumer = kafka([A0], steps)
    consumer.release.set()
    commits = CommitBehind("notifier")
    with pytest.raises(ConnectionResetError):
        await apply_batch(*batch(records(3), consumer, steps), FakeEventConsumer(steps, fail=True), commits,
                          "notifier")  # fmt: skip
    await commits.settled(consumer)
    assert steps == ["applied [3]", "rewound"]
    assert consumer.commits == []


async def test_records_arriving_before_the_consumer_is_started_are_rewound(kafka: Any) -> None:
    steps: list[str] = []
    consumer = kafka([A0], steps)
    with pytest.raises(RuntimeError, match="notifier received records before it was started"):
        await apply_batch(*batch(records(0), consumer, steps), None, CommitBehind("notifier"), "notifier")
    assert steps == ["rewound"]


async def test_on_the_in_memory_test_broker_the_batch_is_acknowledged_through_faststream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps: list[str] = []
    await apply_batch(*batch(records(0), object(), steps), FakeEventConsumer(steps), CommitBehind("n"), "n")
    assert steps == ["applied [0]", "acked"]


async def applied_deferring(kafka: Any, recs: list[Rec], deferred: set[int]) -> tuple[list[str], Any, dict]:
    """A batch of `recs` on partitions 0 and 1, applied by a consumer that defers the offsets `deferred`, and its
    commit settled: the steps taken, the Kafka consumer, and where each partition is read from next."""
    steps: list[str] = []
    consumer = kafka([A0, A1], steps)
    consumer.release.set()
    commits = CommitBehind("notifier")
    applying = FakeEventConsumer(steps, defer=[deferred])
    next_offsets = await apply_batch(*batch(recs, consumer, steps), applying, commits, "notifier")
    await commits.settled(consumer)
    return steps, consumer, next_offsets


async def test_records_a_batch_deferred_are_read_again_from_each_partition_s_first_and_only_those_before_committed(
    kafka: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    recs = [Rec("t", 0, 3), Rec("t", 0, 4), Rec("t", 0, 5), Rec("t", 1, 7), Rec("t", 1, 8)]
    steps, consumer, next_offsets = await applied_deferring(kafka, recs, {5, 7, 8})
    assert steps == ["applied [3, 4, 5, 7, 8]", "seek 0@5", "seek 1@7", "commit"]
    assert consumer.commits == [{A0: 5}]
    assert next_offsets == {A0: 5, A1: 7}  # the lag is counted from there


async def test_a_partition_handled_whole_is_committed_past_its_last_while_another_is_read_again(
    kafka: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    recs = [Rec("t", 0, 3), Rec("t", 0, 4), Rec("t", 1, 7), Rec("t", 1, 8), Rec("t", 1, 9)]
    steps, consumer, next_offsets = await applied_deferring(kafka, recs, {8, 9})
    assert steps == ["applied [3, 4, 7, 8, 9]", "seek 1@8", "commit"]
    assert consumer.commits == [{A0: 5, A1: 8}]
    assert next_offsets == {A0: 5, A1: 8}


async def test_a_batch_that_deferred_its_first_record_commits_nothing_and_reads_it_again(
    kafka: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps, consumer, _ = await applied_deferring(kafka, records(3, 4), {3, 4})
    assert steps == ["applied [3, 4]", "seek 0@3"]
    assert consumer.commits == []


async def test_deferred_records_of_a_partition_reassigned_meanwhile_are_left_to_its_new_owner_with_a_warning(
    kafka: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps: list[str] = []
    consumer = kafka([A0, A1], steps)
    consumer.release.set()
    commits = CommitBehind("training")
    recs = [Rec("t", 0, 3), Rec("t", 1, 7), Rec("t", 1, 8)]
    consumer.assigned = {A1}
    with caplog.at_level(logging.WARNING, logger="shared.messaging.subscriptions"):
        await apply_batch(*batch(recs, consumer, steps), FakeEventConsumer(steps, defer=[{3, 7, 8}]), commits,
                          "training")  # fmt: skip
        await commits.settled(consumer)
    assert steps == ["applied [3, 7, 8]", "seek 1@7"]
    assert "training: t[0] was reassigned before its deferred records were read again" in caplog.text


async def test_a_seek_that_fails_as_aiokafka_does_with_no_assignment_still_lets_the_handled_records_commit(
    kafka: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A pattern subscription that finds a new topic, or a consumer stopping, leaves aiokafka with no assignment
    for a moment: its seek then fails an assertion rather than raising IllegalStateError."""
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps: list[str] = []
    consumer = kafka([A0], steps)
    consumer.release.set()
    consumer.seek_fails_with = AssertionError()
    commits = CommitBehind("funding-partners")
    with caplog.at_level(logging.WARNING, logger="shared.messaging.subscriptions"):
        await apply_batch(*batch(records(3, 4), consumer, steps), FakeEventConsumer(steps, defer=[{4}]), commits,
                          "funding-partners")  # fmt: skip
        await commits.settled(consumer)
    assert consumer.commits == [{A0: 4}]
    assert "funding-partners: t[0] was reassigned" in caplog.text


async def test_on_the_in_memory_test_broker_deferred_records_are_applied_before_the_batch_is_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.messaging.subscriptions.Record.from_kafka", lambda r: r)
    steps: list[str] = []
    applying = FakeEventConsumer(steps, defer=[{1, 2}, {2}])
    await apply_batch(*batch(records(0, 1, 2), object(), steps), applying, CommitBehind("n"), "n")
    assert steps == ["applied [0, 1, 2]", "applied [1, 2]", "applied [2]", "acked"]

"""Consumer lag measured on a real broker (shared/messaging/lag.py with KafkaLagProbe): records from committed offsets
against end offsets, seconds from the Kafka timestamp of the oldest record a group has not consumed, for the
service's own groups and its peers', and nothing stale once a group is gone. Records are produced with timestamps of
our choosing and the monitor reads a clock of ours, so ages are exact without waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from shared.messaging.kafka import TopicSpec, active_group_members, consumer_lag, ensure_topics, forget_consumer_group
from shared.messaging.lag import KafkaLagProbe, LagMonitor, Watched
from shared.observability import LagMetrics
from shared.messaging.kafka import KafkaAccess

pytestmark = pytest.mark.integration

T0 = 1_750_000_000.0  # when the test's first record was "produced"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def namespace(infra) -> str:  # noqa: ANN001
    return f"lag-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def topic(infra, namespace) -> str:  # noqa: ANN001
    name = f"{namespace}.registry.business.v1"
    await ensure_topics(infra.kafka, [TopicSpec(name, 2, 1)])
    return name


@pytest.fixture
async def producer(infra) -> AsyncIterator[AIOKafkaProducer]:  # noqa: ANN001
    producer = AIOKafkaProducer(**KafkaAccess.of(infra.kafka).aiokafka(), acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def produce(producer: AIOKafkaProducer, topic: str, partition: int, at: list[float]) -> None:
    for t in at:
        await producer.send_and_wait(topic, b"{}", partition=partition, timestamp_ms=int(t * 1000))


async def commit(bootstrap: KafkaAccess | str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """What a consumer of `group` does after its work: commit the next offset to read."""
    consumer = AIOKafkaConsumer(**KafkaAccess.of(bootstrap).aiokafka(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


def new_monitor(bootstrap: KafkaAccess | str, namespace: str, own: list[Watched], clock: Clock) -> tuple[LagMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    probe = KafkaLagProbe(bootstrap, client_id="test-lag", timeout=10)
    return LagMonitor(probe, LagMetrics(registry), own=own, namespace=namespace, clock=clock), registry


def sample(registry: CollectorRegistry, name: str, consumer: str, topic: str, partition: int) -> float | None:
    return registry.get_sample_value(name, {"consumer": consumer, "topic": topic, "partition": str(partition)})


async def test_a_group_behind_on_a_real_broker_is_measured_in_records_and_in_the_age_of_its_oldest_unconsumed_record(
    infra, namespace, topic, producer  # noqa: ANN001
):
    await produce(producer, topic, 0, [T0, T0 + 10, T0 + 20, T0 + 30])  # offsets 0..3
    await produce(producer, topic, 1, [T0 + 5])
    group = f"{namespace}.funding-view"
    await commit(infra.kafka, group, {TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 1})
    monitor, registry = new_monitor(infra.kafka, namespace, [Watched("funding-view", group, topic)],
                                    Clock(T0 + 100))  # fmt: skip
    try:
        await monitor.measure()
    finally:
        await monitor.close()

    assert sample(registry, "berdaya_consumer_group_lag_records", "funding-view", topic, 0) == 2
    assert sample(registry, "berdaya_consumer_group_lag_seconds", "funding-view", topic, 0) == 100 - 20
    assert sample(registry, "berdaya_consumer_group_lag_records", "funding-view", topic, 1) == 0
    assert sample(registry, "berdaya_consumer_group_lag_seconds", "funding-view", topic, 1) == 0


async def test_a_group_that_never_committed_is_behind_by_everything_since_the_first_record(
    infra, namespace, topic, producer  # noqa: ANN001
):
    await produce(producer, topic, 1, [T0 + 1, T0 + 2, T0 + 3])
    group = f"{namespace}.training-view"
    monitor, registry = new_monitor(infra.kafka, namespace, [Watched("training-view", group, topic)],
                                    Clock(T0 + 61))  # fmt: skip
    try:
        await monitor.measure()
    finally:
        await monitor.close()

    assert sample(registry, "berdaya_consumer_group_lag_records", "training-view", topic, 1) == 3
    assert sample(registry, "berdaya_consumer_group_lag_seconds", "training-view", topic, 1) == 60


async def test_a_stopped_peers_group_is_measured_by_another_service_and_forgetting_it_removes_its_figures(
    infra, namespace, topic, producer  # noqa: ANN001
):
    await produce(producer, topic, 0, [T0, T0 + 50])
    peer = f"{namespace}.funding-view"
    await commit(infra.kafka, peer, {TopicPartition(topic, 0): 1})
    elsewhere = f"other-{namespace}.funding-view"  # another deployment on the same cluster
    await commit(infra.kafka, elsewhere, {TopicPartition(topic, 0): 0})
    clock = Clock(T0 + 80)
    # The notifier measures: its own group has never consumed; funding's group is found on the cluster.
    monitor, registry = new_monitor(infra.kafka, namespace,
                                    [Watched("notifier", f"{namespace}.notifier", topic)], clock)  # fmt: skip
    try:
        measured = await monitor.measure()
        assert {m.group for m in measured} == {f"{namespace}.notifier", peer}
        assert sample(registry, "berdaya_consumer_group_lag_seconds", "funding-view", topic, 0) == 30

        clock.now += 45  # still stopped: its oldest unconsumed event is 45 seconds older
        await monitor.measure()
        assert sample(registry, "berdaya_consumer_group_lag_seconds", "funding-view", topic, 0) == 75

        forget_consumer_group(infra.kafka, peer)
        await monitor.measure()
        assert sample(registry, "berdaya_consumer_group_lag_records", "funding-view", topic, 0) is None
    finally:
        await monitor.close()
        forget_consumer_group(infra.kafka, elsewhere)


async def test_a_group_that_catches_up_shows_no_lag(infra, namespace, topic, producer):  # noqa: ANN001
    await produce(producer, topic, 0, [T0, T0 + 1])
    group = f"{namespace}.notifier"
    monitor, registry = new_monitor(infra.kafka, namespace, [Watched("notifier", group, topic)], Clock(T0 + 9))
    try:
        await monitor.measure()
        assert sample(registry, "berdaya_consumer_group_lag_seconds", "notifier", topic, 0) == 9
        await commit(infra.kafka, group, {TopicPartition(topic, 0): 2})
        await monitor.measure()
    finally:
        await monitor.close()

    assert sample(registry, "berdaya_consumer_group_lag_records", "notifier", topic, 0) == 0
    assert sample(registry, "berdaya_consumer_group_lag_seconds", "notifier", topic, 0) == 0


async def test_the_lag_an_operator_or_checker_asks_for_counts_from_the_committed_offset_and_prints_no_client_noise(
    infra, namespace, topic, producer, capfd  # noqa: ANN001
):
    await produce(producer, topic, 0, [T0, T0 + 1, T0 + 2])
    await produce(producer, topic, 1, [T0, T0 + 1])
    group = f"{namespace}.notifier"
    await commit(infra.kafka, group, {TopicPartition(topic, 0): 1})

    # Asked again and again, as `berdaya replay` and the chaos checker do while they wait for lag 0.
    answers = [await asyncio.to_thread(consumer_lag, infra.kafka, group, [topic]) for _ in range(10)]

    assert answers == [{(topic, 0): 2, (topic, 1): 2}] * 10
    assert capfd.readouterr().err == ""


async def test_the_lag_asked_with_a_refused_login_ends_with_an_error_that_says_the_login_was_refused(
    infra, topic  # noqa: ANN001
):
    wrong = infra.kafka.as_user(infra.kafka.username, "not-the-password")

    with pytest.raises(TimeoutError, match="SASL authentication error") as refused:
        await asyncio.to_thread(consumer_lag, wrong, "lag-any.notifier", [topic], 3)

    assert "lag-any.notifier" in str(refused.value)


async def test_asking_kafka_about_groups_again_and_again_prints_no_notice_an_operator_could_take_for_a_fault(
    infra, namespace, capfd  # noqa: ANN001
):
    for n in range(30):  # about one admin client in ten used to print a notice as it was destroyed
        assert await asyncio.to_thread(active_group_members, infra.kafka, f"{namespace}.nobody-{n}") == 0

    assert capfd.readouterr().err == ""

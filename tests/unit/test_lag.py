"""Tests LagMonitor (shared/messaging/lag.py): consumer lag per group and partition, in records and in seconds, from
committed offsets against end offsets, for the service's own groups and its peers'. On a fake Kafka (a subclass of
the probe the services use, answering from dictionaries) and a fake clock: no broker, no waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import CollectorRegistry

from shared.messaging.lag import TP, KafkaLagProbe, LagMonitor, LagSettings, Watched, consumer_of, lag_job
from shared.observability import LagMetrics

NS = "kupang"
BUSINESS = f"{NS}.registry.business.v1"
TRAINING = f"{NS}.training.participant.v1"
NOW = 1_750_000_000.0


class FakeKafka(KafkaLagProbe):
    """The real probe's interface, answered from what the test put in; counts the records it was asked to read."""

    def __init__(self) -> None:
        super().__init__("fake:9092")
        self.topics: dict[str, int] = {BUSINESS: 3, TRAINING: 2}
        self.committed_offsets: dict[str, dict[TP, int]] = {}
        self.starts: dict[TP, int] = {}
        self.ends: dict[TP, int] = {}
        self.record_times: dict[tuple[str, int, int], float] = {}  # (topic, partition, offset) -> Kafka timestamp
        self.reads: list[tuple[str, int, int]] = []
        self.failing: Exception | None = None
        self.closed = 0

    async def groups(self) -> list[str]:
        if self.failing:
            raise self.failing
        return sorted(self.committed_offsets)

    async def committed(self, group: str) -> dict[TP, int]:
        return dict(self.committed_offsets.get(group, {}))

    async def partitions(self) -> dict[str, list[int]]:
        return {t: list(range(n)) for t, n in self.topics.items()}

    async def offsets(self, tps: Sequence[TP]) -> tuple[dict[TP, int], dict[TP, int]]:
        return {tp: self.starts.get(tp, 0) for tp in tps}, {tp: self.ends.get(tp, 0) for tp in tps}

    async def timestamps(self, wanted: Mapping[TP, Sequence[int]]) -> dict[tuple[str, int, int], float]:
        found = {}
        for (topic, partition), offsets in wanted.items():
            for offset in offsets:
                self.reads.append((topic, partition, offset))
                # the first record at or after the offset
                later = sorted(o for (t, p, o) in self.record_times if (t, p) == (topic, partition) and o >= offset)
                if later:
                    found[(topic, partition, offset)] = self.record_times[(topic, partition, later[0])]
        return found

    async def close(self) -> None:
        self.closed += 1


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def monitor(kafka: FakeKafka, own: Sequence[Watched] = (), clock: Clock | None = None) -> tuple[LagMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return LagMonitor(kafka, LagMetrics(registry), own=own, namespace=NS, clock=clock or Clock()), registry


def gauge(registry: CollectorRegistry, name: str, consumer: str, topic: str, partition: int) -> float | None:
    return registry.get_sample_value(name, {"consumer": consumer, "topic": topic, "partition": str(partition)})


FUNDING_VIEW = Watched("funding-view", f"{NS}.funding-view", BUSINESS)


async def test_lag_in_records_is_the_end_offset_less_the_committed_one_on_every_partition():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 40, (BUSINESS, 1): 10, (BUSINESS, 2): 7}
    kafka.ends.update({(BUSINESS, 0): 40, (BUSINESS, 1): 25, (BUSINESS, 2): 7})
    kafka.record_times[(BUSINESS, 1, 10)] = NOW - 90
    lag, registry = monitor(kafka, [FUNDING_VIEW])

    await lag.measure()

    assert [gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, p) for p in (0, 1, 2)] == [0, 15, 0]


async def test_lag_in_seconds_is_the_age_of_the_oldest_record_the_group_has_not_consumed():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 40, (BUSINESS, 1): 10}
    kafka.ends.update({(BUSINESS, 0): 40, (BUSINESS, 1): 25})
    kafka.record_times.update({(BUSINESS, 1, 10): NOW - 90, (BUSINESS, 1, 11): NOW - 5})
    lag, registry = monitor(kafka, [FUNDING_VIEW])

    await lag.measure()

    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 1) == 90
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0) == 0


async def test_a_stopped_consumer_falls_further_behind_in_seconds_at_every_measurement_while_its_records_stay():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 3}
    kafka.ends[(BUSINESS, 0)] = 4
    kafka.record_times[(BUSINESS, 0, 3)] = NOW
    clock = Clock()
    lag, registry = monitor(kafka, [FUNDING_VIEW], clock)

    seen = []
    for _ in range(3):
        clock.now += 60
        await lag.measure()
        seen.append(gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0))

    assert seen == [60, 120, 180]
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 0) == 1
    assert kafka.reads == [(BUSINESS, 0, 3)], "a record's timestamp is read once, then remembered"


async def test_a_partition_its_group_never_committed_on_counts_from_the_start_of_the_log():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 5}
    kafka.starts[(BUSINESS, 2)] = 100  # retention deleted the first hundred
    kafka.ends.update({(BUSINESS, 0): 5, (BUSINESS, 1): 12, (BUSINESS, 2): 130})
    kafka.record_times.update({(BUSINESS, 1, 0): NOW - 30, (BUSINESS, 2, 100): NOW - 20})
    lag, registry = monitor(kafka, [FUNDING_VIEW])

    await lag.measure()

    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 1) == 12
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 2) == 30
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 2) == 20


async def test_a_committed_offset_deleted_by_retention_counts_from_the_start_of_the_log():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 50}
    kafka.starts[(BUSINESS, 0)] = 80
    kafka.ends[(BUSINESS, 0)] = 90
    kafka.record_times[(BUSINESS, 0, 80)] = NOW - 7
    lag, registry = monitor(kafka, [FUNDING_VIEW])

    await lag.measure()

    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 0) == 10
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0) == 7


async def test_peers_groups_of_the_deployment_are_measured_too_so_a_stopped_service_is_still_seen():
    kafka = FakeKafka()
    kafka.committed_offsets.update({
        f"{NS}.notifier": {(BUSINESS, 0): 2},  # this service's own
        f"{NS}.funding-view": {(BUSINESS, 0): 1},  # a peer's: funding is down
        "kupang-test.funding-view": {("kupang-test.registry.business.v1", 0): 0},  # another deployment's
        "partner.bank-ntt.public": {(f"{NS}.public.registry.business.v1", 0): 0},  # a partner's
        "funding-view": {("registry.business.v1", 0): 0},  # the deployment without a namespace
    })  # fmt: skip
    kafka.ends[(BUSINESS, 0)] = 3
    kafka.record_times.update({(BUSINESS, 0, 1): NOW - 400, (BUSINESS, 0, 2): NOW - 10})
    lag, registry = monitor(kafka, [Watched("notifier", f"{NS}.notifier", BUSINESS)])

    measured = await lag.measure()

    assert {(m.consumer, m.partition) for m in measured if m.topic == BUSINESS} == {
        ("notifier", 0), ("notifier", 1), ("notifier", 2), ("funding-view", 0), ("funding-view", 1), ("funding-view", 2)}
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0) == 400
    assert {m.group for m in measured} == {f"{NS}.notifier", f"{NS}.funding-view"}


def test_only_a_dotless_name_under_the_namespace_is_one_of_the_deployments_consumers():
    assert consumer_of("kupang.funding-view", "kupang") == "funding-view"
    assert consumer_of("funding-view", "kupang") is None
    assert consumer_of("kupang.partner.x", "kupang") is None
    assert consumer_of("funding-view", "") == "funding-view"
    assert consumer_of("kupang.funding-view", "") is None


async def test_a_pattern_subscription_is_measured_on_every_topic_it_matches():
    kafka = FakeKafka()
    kafka.topics.update({f"{NS}.partner.bank-ntt.outcomes.v1": 1, f"{NS}.partner.pos.outcomes.v1": 1,
                         f"{NS}.partner.pos.referral.v1": 1})  # fmt: skip
    kafka.ends.update({(f"{NS}.partner.bank-ntt.outcomes.v1", 0): 2, (f"{NS}.partner.pos.outcomes.v1", 0): 0})
    kafka.record_times[(f"{NS}.partner.bank-ntt.outcomes.v1", 0, 0)] = NOW - 3
    pattern = r"kupang\.partner\.[a-z][a-z0-9-]*\.outcomes\.v1"
    partners = Watched("funding-partners", f"{NS}.funding-partners", pattern, pattern=True)
    lag, registry = monitor(kafka, [partners])

    measured = await lag.measure()

    assert sorted(m.topic for m in measured) == [f"{NS}.partner.bank-ntt.outcomes.v1", f"{NS}.partner.pos.outcomes.v1"]
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-partners", f"{NS}.partner.bank-ntt.outcomes.v1", 0) == 2


async def test_a_group_that_is_forgotten_leaves_no_stale_figure_behind():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.training-view"] = {(BUSINESS, 0): 1}
    kafka.ends[(BUSINESS, 0)] = 1
    lag, registry = monitor(kafka)
    await lag.measure()
    assert gauge(registry, "berdaya_consumer_group_lag_records", "training-view", BUSINESS, 0) == 0

    del kafka.committed_offsets[f"{NS}.training-view"]  # `berdaya replay` deletes the group's offsets
    await lag.measure()

    assert gauge(registry, "berdaya_consumer_group_lag_records", "training-view", BUSINESS, 0) is None
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "training-view", BUSINESS, 0) is None


async def test_a_record_that_cannot_be_read_is_at_least_as_old_as_the_monitor_has_known_of_it():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 0}
    kafka.ends[(BUSINESS, 0)] = 2  # no record time known to the fake: the read timed out or was not allowed
    clock = Clock()
    lag, registry = monitor(kafka, [FUNDING_VIEW], clock)

    [first] = [m for m in await lag.measure() if m.partition == 0]
    clock.now += 30
    [later] = [m for m in await lag.measure() if m.partition == 0]

    assert (first.records, first.seconds) == (2, 0)
    assert (later.records, later.seconds) == (2, 30)


async def test_each_successful_measurement_is_timestamped_and_each_failure_counted():
    kafka = FakeKafka()
    clock = Clock()
    lag, registry = monitor(kafka, [FUNDING_VIEW], clock)
    await lag.measure()
    assert registry.get_sample_value("berdaya_consumer_lag_measured_timestamp_seconds") == NOW

    kafka.failing = PermissionError("GROUP_AUTHORIZATION_FAILED")
    clock.now += 60
    with pytest.raises(PermissionError):
        await lag.measure()

    assert registry.get_sample_value("berdaya_consumer_lag_measurement_errors_total") == 1
    assert registry.get_sample_value("berdaya_consumer_lag_measured_timestamp_seconds") == NOW


async def test_a_process_that_cannot_measure_for_two_minutes_takes_its_figures_away_but_not_at_one_failure():
    kafka = FakeKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 0}
    kafka.ends[(BUSINESS, 0)] = 2
    kafka.record_times[(BUSINESS, 0, 0)] = NOW - 400  # lagging: the figure the lag alert takes the max of
    clock = Clock()
    lag, registry = monitor(kafka, [FUNDING_VIEW], clock)
    await lag.measure()
    kafka.failing = PermissionError("GROUP_AUTHORIZATION_FAILED")  # then the lag is mended, unseen by this process

    clock.now += 60
    with pytest.raises(PermissionError):
        await lag.measure()
    kept = gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0)
    clock.now += 61
    with pytest.raises(PermissionError):
        await lag.measure()

    assert kept == 400  # one failed measurement: the figure stays, a lag alert's `for` is not reset by a blip
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0) is None
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 0) is None
    kafka.failing = None
    await lag.measure()
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 0) == 2


async def test_a_kafka_that_hangs_rather_than_refuses_also_takes_a_stale_figure_away():
    kafka = HangingKafka()
    kafka.committed_offsets[f"{NS}.funding-view"] = {(BUSINESS, 0): 0}
    kafka.ends[(BUSINESS, 0)] = 2
    kafka.record_times[(BUSINESS, 0, 0)] = NOW - 400
    clock = Clock()
    lag, registry = monitor(kafka, [FUNDING_VIEW], clock)
    await lag.measure()
    kafka.hang = True  # every measurement now times out, cancelled inside measure()
    stop = asyncio.Event()
    job = asyncio.create_task(lag_job(lag, interval=0.001, timeout=0.01)(stop))

    clock.now += 121
    while (registry.get_sample_value("berdaya_consumer_lag_measurement_errors_total") or 0) < 3:
        await asyncio.sleep(0.005)
    stop.set()
    await job

    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-view", BUSINESS, 0) is None
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-view", BUSINESS, 0) is None


class HangingKafka(FakeKafka):
    hang = False

    async def groups(self) -> list[str]:
        if self.hang:
            await asyncio.sleep(3600)
        return await super().groups()


async def test_the_lag_job_outlives_a_failing_kafka_and_starts_fresh_clients_after_each_failure():
    kafka = FakeKafka()
    kafka.failing = ConnectionError("no broker")
    lag, registry = monitor(kafka, [FUNDING_VIEW])
    stop = asyncio.Event()
    job = asyncio.create_task(lag_job(lag, interval=0.001, timeout=5)(stop))

    while (registry.get_sample_value("berdaya_consumer_lag_measurement_errors_total") or 0) < 3:
        await asyncio.sleep(0.001)
    kafka.failing = None
    while registry.get_sample_value("berdaya_consumer_lag_measured_timestamp_seconds") in (None, 0):
        await asyncio.sleep(0.001)
    stop.set()
    await job

    assert kafka.closed >= 4, "clients closed after each failure, and at the end"


def test_lag_is_measured_every_fifteen_seconds_unless_configured(monkeypatch):
    monkeypatch.delenv("BERDAYA_LAG_INTERVAL_SECONDS", raising=False)
    assert LagSettings().interval_seconds == 15
    monkeypatch.setenv("BERDAYA_LAG_INTERVAL_SECONDS", "1")
    assert LagSettings().interval_seconds == 1


async def test_where_the_oldest_record_cannot_be_read_its_age_counts_from_when_the_end_offset_was_seen_past_it():
    kafka = FakeKafka()  # no record times: Describe on the topic, not Read (a peer's topic under the broker's ACLs)
    kafka.committed_offsets[f"{NS}.funding-partners"] = {(BUSINESS, 0): 5}
    kafka.ends[(BUSINESS, 0)] = 5
    clock = Clock()
    lag, registry = monitor(kafka, clock=clock)
    await lag.measure()
    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-partners", BUSINESS, 0) == 0

    clock.now += 15
    kafka.ends[(BUSINESS, 0)] = 7  # two new records; the group has stopped
    await lag.measure()
    clock.now += 15
    kafka.ends[(BUSINESS, 0)] = 9
    await lag.measure()

    assert gauge(registry, "berdaya_consumer_group_lag_seconds", "funding-partners", BUSINESS, 0) == 15
    assert gauge(registry, "berdaya_consumer_group_lag_records", "funding-partners", BUSINESS, 0) == 4

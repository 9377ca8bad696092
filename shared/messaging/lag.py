"""Consumer lag per consumer group and partition, in records and in seconds, measured by the services themselves.

No lag exporter reaches these machines, so every consuming service measures lag from Kafka's own bookkeeping, every
`BERDAYA_LAG_INTERVAL_SECONDS` (off the scrape path, so /metrics stays cheap):

- **records** = the partition's end offset (high watermark) - the group's committed offset; a partition the group
  never committed on (or whose committed offset retention has deleted) counts from the log start, as the consumers
  read from the earliest record;
- **seconds** = now - the Kafka timestamp of the first record after the committed offset: the age of the oldest event
  the group has not consumed. 0 when caught up. Unlike records, it means the same on a busy topic and a quiet one,
  so alerts use it. Where that record cannot be read (the broker's ACLs give this service only Describe on a peer's
  topic), the age is estimated from when this monitor first saw the end offset pass it: a lower bound, within one
  interval, that keeps growing while the group stands still.

Which groups: a service measures its own groups on every partition of the topics it subscribes to, and also every
other consumer group of its deployment it finds on the cluster (`<namespace>.<consumer>`, a consumer name has no dot)
on the topics that group has committed offsets for. A consumer that stops (crashed, hung, SIGSTOPped, not polling) can
report nothing itself, but its peers go on reporting its lag; the rules take the max over reporters. This is the job
Burrow or kafka-lag-exporter does elsewhere: watching from outside the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.observability import LagMetrics

log = logging.getLogger(__name__)

TP = tuple[str, int]  # (topic, partition)


class LagSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    interval_seconds: float = Field(15.0, gt=0, validation_alias="BERDAYA_LAG_INTERVAL_SECONDS",
                                    description="How often lag is measured; the scrape interval is a good choice")  # fmt: skip
    timeout_seconds: float = Field(10.0, gt=0, validation_alias="BERDAYA_LAG_TIMEOUT_SECONDS",
                                   description="A measurement taking longer fails (and is counted)")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Watched:
    """One of this service's own subscriptions: its consumer name, its group id, and its topic (or pattern)."""

    consumer: str
    group: str
    topic: str
    pattern: bool = False

    def topics(self, known: Iterable[str]) -> list[str]:
        if not self.pattern:
            return [self.topic]
        regex = re.compile(self.topic)
        return sorted(t for t in known if regex.fullmatch(t))


@dataclass(frozen=True, slots=True)
class PartitionLag:
    consumer: str
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end: int
    records: int
    seconds: float | None  # None: the oldest unconsumed record could not be read this time


class LagProbe(Protocol):
    """What the monitor asks Kafka; the real one is KafkaLagProbe, the unit tests use a fake."""

    async def groups(self) -> list[str]: ...

    async def committed(self, group: str) -> dict[TP, int]: ...

    async def partitions(self) -> dict[str, list[int]]: ...

    async def offsets(self, tps: Sequence[TP]) -> tuple[dict[TP, int], dict[TP, int]]:
        """(log start offsets, end offsets)"""
        ...

    async def timestamps(self, wanted: Mapping[TP, Sequence[int]]) -> dict[tuple[str, int, int], float]:
        """Kafka timestamp (Unix seconds) of the first record at or after each offset, by (topic, partition, offset);
        offsets with no record yet are left out."""
        ...

    async def close(self) -> None: ...


def consumer_of(group: str, namespace: str) -> str | None:
    """The consumer name of one of the deployment's groups, or None for any other group on the cluster (another
    namespace's, a partner's, a tool's)."""
    name = group.removeprefix(f"{namespace}.") if namespace else group
    if namespace and name == group:
        return None
    return name if name and "." not in name else None


@dataclass
class LagMonitor:
    probe: LagProbe
    metrics: LagMetrics
    own: Sequence[Watched] = ()
    namespace: str = ""
    clock: Callable[[], float] = time.time
    # After this long without a measurement, this process's figures are taken away: kept, a lag it last saw would
    # hold the lag alert (the max over every reporter) firing for ever after the lag was gone.
    stale_after: float = 120.0
    _last_measured: float | None = None
    _timestamps: dict[tuple[str, int, int], float] = field(default_factory=dict)
    _exported: set[tuple[str, str, str]] = field(default_factory=set)
    _ends_seen: dict[TP, list[tuple[int, float]]] = field(default_factory=dict)  # (end offset, when first seen)

    async def measure(self) -> list[PartitionLag]:
        """Measure every watched group and export the figures; failures are counted and raised."""
        try:
            lags = await self._measure()
        except Exception:
            self.failed()
            raise
        self._export(lags)
        return lags

    def failed(self) -> None:
        """A measurement failed, or got no answer in time: counted, and once the last measurement is stale this
        process's figures are taken away."""
        self.metrics.errors.inc()
        if self._last_measured is None or self.clock() - self._last_measured > self.stale_after:
            self._forget(self._exported)
            self._exported = set()

    async def _measure(self) -> list[PartitionLag]:
        partitions = await self.probe.partitions()
        own_groups = {w.group for w in self.own}
        discovered = {g: consumer_of(g, self.namespace) for g in await self.probe.groups() if g not in own_groups}
        peers = {g: c for g, c in discovered.items() if c is not None}
        groups = sorted(own_groups | set(peers))
        committed_by_group = dict(zip(groups, await asyncio.gather(*(self.probe.committed(g) for g in groups)), strict=True))

        # (consumer, group) -> the partitions it reads
        reads: dict[tuple[str, str], set[TP]] = {}
        for w in self.own:
            tps = reads.setdefault((w.consumer, w.group), set())
            for topic in w.topics(partitions):
                tps.update((topic, p) for p in partitions.get(topic, ()))
        for group, consumer in peers.items():
            topics = {t for t, _ in committed_by_group[group]}
            # A peer group is read on the deployment's topics only; all partitions of each, committed on or not.
            topics = {t for t in topics if not self.namespace or t.startswith(f"{self.namespace}.")}
            reads[(consumer, group)] = {(t, p) for t in topics for p in partitions.get(t, ())}

        all_tps = sorted({tp for tps in reads.values() for tp in tps})
        starts, ends = await self.probe.offsets(all_tps) if all_tps else ({}, {})

        rows: list[tuple[str, str, TP, int | None, int, int]] = []  # consumer, group, tp, committed, position, end
        wanted: dict[TP, set[int]] = {}
        for (consumer, group), tps in sorted(reads.items()):
            committed = committed_by_group.get(group, {})
            for tp in sorted(tps):
                if tp not in ends:
                    continue
                done = committed.get(tp)
                position = max(done if done is not None and done >= 0 else 0, starts.get(tp, 0))
                end = ends[tp]
                rows.append((consumer, group, tp, done, position, end))
                if position < end and (tp[0], tp[1], position) not in self._timestamps:
                    wanted.setdefault(tp, set()).add(position)

        if wanted:
            self._timestamps.update(await self.probe.timestamps({tp: sorted(o) for tp, o in wanted.items()}))
        now = self.clock()
        for tp, end in ends.items():
            seen = self._ends_seen.setdefault(tp, [])
            if not seen or end > seen[-1][0]:
                seen.append((end, now))
        lags, still_needed = [], set()
        lowest: dict[TP, int] = {}
        for consumer, group, (topic, partition), done, position, end in rows:
            seconds: float | None = 0.0
            lowest[(topic, partition)] = min(position, lowest.get((topic, partition), position))
            if position < end:
                key = (topic, partition, position)
                still_needed.add(key)
                ts = self._timestamps.get(key)
                if ts is None:  # unreadable: when the end offset was first seen past it
                    ts = next((t for e, t in self._ends_seen.get((topic, partition), ()) if e > position), None)
                seconds = None if ts is None else max(0.0, now - ts)
            lags.append(PartitionLag(consumer, group, topic, partition, done, end, max(0, end - position), seconds))
        # Records never change, so a timestamp read once is kept for as long as some group still waits on it; end
        # offsets no group is still before are forgotten.
        self._timestamps = {k: v for k, v in self._timestamps.items() if k in still_needed}
        self._ends_seen = {tp: [(e, t) for e, t in seen if e > lowest[tp]] or seen[-1:]
                           for tp, seen in self._ends_seen.items() if tp in lowest}  # fmt: skip
        return lags

    def _export(self, lags: Sequence[PartitionLag]) -> None:
        exported = set()
        for lag in lags:
            labels = (lag.consumer, lag.topic, str(lag.partition))
            exported.add(labels)
            self.metrics.records.labels(*labels).set(lag.records)
            if lag.seconds is not None:
                self.metrics.seconds.labels(*labels).set(lag.seconds)
        # A group forgotten (a replay deletes its offsets) or a topic no longer read: no stale figure stays.
        self._forget(self._exported - exported)
        self._exported = exported
        self._last_measured = self.clock()
        self.metrics.measured.set(self._last_measured)

    def _forget(self, series: set[tuple[str, str, str]]) -> None:
        for gone in series:
            for gauge in (self.metrics.records, self.metrics.seconds):
                try:
                    gauge.remove(*gone)
                except KeyError:
                    pass

    async def close(self) -> None:
        await self.probe.close()


# ---------------------------------------------------------------------------------------------------------------
# The real probe: aiokafka's admin client and a group-less consumer
# ---------------------------------------------------------------------------------------------------------------


class KafkaLagProbe:
    """Asks the brokers, as the service's own Kafka user: `kafka` is a bootstrap address, or the service's
    KafkaAccess (anything with an `aiokafka()` giving the clients' connection and SASL arguments)."""

    def __init__(self, kafka: Any, *, client_id: str = "berdaya-lag", timeout: float = 10.0) -> None:
        self._options: dict[str, Any] = dict(kafka.aiokafka()) if hasattr(kafka, "aiokafka") else {"bootstrap_servers": kafka}
        self._client_id = client_id
        self._timeout = timeout
        self._admin: Any = None
        self._consumer: Any = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[Any, Any]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self._admin is None:
            admin = AIOKafkaAdminClient(client_id=self._client_id, request_timeout_ms=int(self._timeout * 1000),
                                        **self._options)  # fmt: skip
            await admin.start()
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                client_id=self._client_id, group_id=None, enable_auto_commit=False,
                # Only the first record after an offset is wanted: small fetches.
                max_partition_fetch_bytes=64 * 1024, fetch_max_bytes=1024 * 1024, fetch_max_wait_ms=100,
                request_timeout_ms=int(self._timeout * 1000), **self._options,
            )  # fmt: skip
            await consumer.start()
            self._consumer = consumer
        return self._admin, self._consumer

    async def groups(self) -> list[str]:
        admin, _ = await self._clients()
        return sorted({g[0] for g in await admin.list_consumer_groups()})

    async def committed(self, group: str) -> dict[TP, int]:
        admin, _ = await self._clients()
        offsets = await admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def partitions(self) -> dict[str, list[int]]:
        admin, _ = await self._clients()
        return {t["topic"]: sorted(p["partition"] for p in t["partitions"])
                for t in await admin.describe_topics() if not t.get("is_internal")}  # fmt: skip

    async def offsets(self, tps: Sequence[TP]) -> tuple[dict[TP, int], dict[TP, int]]:
        from aiokafka import TopicPartition

        _, consumer = await self._clients()
        partitions = [TopicPartition(t, p) for t, p in tps]
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        return ({(tp.topic, tp.partition): o for tp, o in starts.items()},
                {(tp.topic, tp.partition): o for tp, o in ends.items()})  # fmt: skip

    async def timestamps(self, wanted: Mapping[TP, Sequence[int]]) -> dict[tuple[str, int, int], float]:
        from aiokafka import TopicPartition

        from aiokafka.errors import KafkaError

        _, consumer = await self._clients()
        found: dict[tuple[str, int, int], float] = {}

        async def read(todo: dict[Any, int]) -> None:
            consumer.assign(list(todo))
            for tp, offset in todo.items():
                consumer.seek(tp, offset)
            deadline = time.monotonic() + self._timeout / 2
            pending = dict(todo)
            while pending and time.monotonic() < deadline:
                batch = await consumer.getmany(*pending, timeout_ms=200, max_records=len(pending) * 50)
                for tp, records in batch.items():
                    first = next((r for r in records if r.offset >= pending.get(tp, 0)), None)
                    if tp in pending and first is not None:
                        found[(tp.topic, tp.partition, pending.pop(tp))] = first.timestamp / 1000
                        consumer.pause(tp)

        async with self._lock:
            # One position per partition at a time: round k reads the k-th wanted offset of every partition.
            rounds = max(len(o) for o in wanted.values())
            for k in range(rounds):
                todo = {TopicPartition(t, p): offsets[k] for (t, p), offsets in wanted.items() if k < len(offsets)}
                try:
                    await read(todo)
                except KafkaError:
                    # Some topic may not be ours to read (Describe only): each partition alone, skipping those.
                    for tp, offset in todo.items():
                        try:
                            await read({tp: offset})
                        except KafkaError as exc:
                            log.debug("lag: cannot read %s[%d]: %s", tp.topic, tp.partition, exc)
            consumer.assign([])
        return found

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        for client, stop in ((consumer, "stop"), (admin, "close")):
            if client is not None:
                try:
                    await getattr(client, stop)()
                except Exception as exc:  # noqa: BLE001 - closing after a failure may fail too
                    log.debug("closing a lag client: %s", exc)


def lag_job(monitor: LagMonitor, interval: float, timeout: float):  # noqa: ANN201 - a shared.service Job
    """A background job measuring lag every `interval`; a failed measurement is counted, logged, and its clients
    rebuilt before the next."""

    async def run(stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(monitor.measure(), timeout=timeout)
                except Exception as exc:  # noqa: BLE001 - the job must outlive any outage
                    if isinstance(exc, TimeoutError):
                        monitor.failed()  # cancelled inside measure(), which handles only its own failures
                    log.warning("consumer lag not measured: %s", f"{type(exc).__name__}: {exc}" if str(exc) else
                                f"{type(exc).__name__} (no answer within {timeout:g}s)")  # fmt: skip
                    await monitor.probe.close()  # fresh clients next time
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass
        finally:
            await monitor.close()

    return run

"""Wiring a consumer to its topic through FastStream, with offsets committed only after the work."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts.envelope import EventPayload
from shared.contracts.topics import namespaced
from shared.messaging.consumer import EventConsumer, Outcome
from shared.messaging.dead_letters import Record
from shared.observability import MessagingMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    """A consumer group on a topic and the contracts it applies. Declared when the app is built (so AsyncAPI
    documents it); its consumer is attached when the service starts, since that needs the database."""

    topic: str  # a topic's name, or with `pattern` a regular expression of names (topics made later are found too)
    consumer: str  # the consumer's name, in its inbox rows and metrics
    events: tuple[type[EventPayload], ...]
    namespace: str = ""
    pattern: bool = False

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(e.event_type for e in self.events)

    @property
    def group_id(self) -> str:
        return namespaced(self.consumer, self.namespace)

    def in_namespace(self, namespace: str) -> Subscription:
        """Topics and consumer groups of one deployment on a shared cluster carry its namespace."""
        topic = (re.escape(namespace + ".") if namespace else "") + self.topic if self.pattern else namespaced(
            self.topic, namespace)  # fmt: skip
        return dataclasses.replace(self, topic=topic, namespace=namespace)


class Consumers:
    """The running consumers by name, filled in at start; a record arriving before then is redelivered."""

    def __init__(self, metrics: MessagingMetrics | None = None) -> None:
        self.by_name: dict[str, EventConsumer] = {}
        self.metrics = metrics


async def _tolerant_parser(message: Any, original: Any) -> Any:
    """FastStream decodes headers as UTF-8 before any handler runs; a record with binary headers, or a header with
    no value (Kafka allows one), would otherwise fail the batch before reaching the dead-letter logic: FastStream
    then neither acks nor redelivers it, and the next batch's commit goes past it. The original records are kept
    for the consumer and the DLQ."""
    try:
        return await original(message)
    except (UnicodeDecodeError, AttributeError):
        records = _records(message)
        readable = tuple(
            dataclasses.replace(r, headers=[(k, (v or b"").decode("utf-8", errors="replace").encode())
                                            for k, v in r.headers])  # fmt: skip
            for r in records
        )
        parsed = await original(readable if isinstance(message, tuple | list) else readable[0])
        parsed.raw_message = message
        return parsed


def _records(raw: Any) -> tuple[Any, ...]:
    """A batch's records: aiokafka's batches come as a tuple, the in-memory test broker's as a list."""
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)


async def _no_decoding(message: Any, original: Any) -> Any:
    """The handler reads the raw records itself (they must reach the DLQ as they came)."""
    return message.body


# How long the broker may hold a fetch that finds no records. While a consumer works through one partition's
# fetched records (1 MB, about 1,100 events), aiokafka sends a fetch for the node's other partitions, and fetches
# nothing more from that node until it returns: at the default 500 ms a pledge's offers, all on one partition,
# stalled the notifier 300-460 ms after every 1,100 of them (1,750 against 2,880 events/s at 250 ms). Nine idle
# consumers cost the broker as much CPU at 250 ms as at 500 ms; 100 ms doubled it.
FETCH_MAX_WAIT_MS = 250

# How long a subscriber waits for records already fetched before it asks again. A record that arrives meanwhile is
# handed over at once (`next_batch`), so this only sets how often an idle subscriber wakes.
BATCH_TIMEOUT_MS = 100

# How long a stopping broker (a deploy, a scale-down) waits for the batches being applied: each is finished, and
# its offsets reach Kafka before the consumer leaves its group, so whoever takes the partitions goes on from there
# instead of reading the batch again. Set here rather than left to FastStream's default, which has changed between
# versions; a batch still running after it is cancelled, rolled back and read again.
GRACEFUL_STOP_SECONDS = 15.0

# How long a consumer may go between fetches before Kafka hands its partitions to another (aiokafka's default, set
# here because the consumer's retry window is sized against it: consumer.RetryPolicy).
MAX_POLL_INTERVAL_MS = 300_000


class CommitBehind:
    """A subscriber's offset commits, each made while the next batch is applied rather than before it is fetched.

    The commit is a round trip to the group coordinator: 12-13 ms a batch on a busy broker, against 30-50 ms of
    applying a batch in the notifier. Committing later is safe because each batch's effects and inbox rows are
    already committed: a process that dies before its last commit reaches Kafka has that batch read again, and
    the inbox skips it, as after any crash. Offsets are taken from the batch itself, never the consumer's position,
    which has moved on to records not yet applied. One commit is in flight at a time, so they reach Kafka in order."""

    def __init__(self, consumer: str, timeout: float = 30.0) -> None:
        self._consumer = consumer
        self._timeout = timeout
        self._in_flight: tuple[AIOKafkaConsumer, asyncio.Task[None]] | None = None

    async def after(self, kafka: AIOKafkaConsumer, records: Sequence[Any]) -> None:
        """Commit past `records`, applied and committed to the database, once the previous commit is done."""
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        await self.settled(kafka)
        self._in_flight = (kafka, asyncio.create_task(self._commit(kafka, offsets)))

    async def settled(self, kafka: AIOKafkaConsumer) -> None:
        """Until the commit in flight, if any, has reached Kafka or failed. Waiting is never what cancels it; a
        commit by a consumer since replaced (the subscriber was restarted) is dropped: that consumer is closed."""
        if self._in_flight is None:
            return
        owner, task = self._in_flight
        if owner is kafka:
            await asyncio.wait([task])
        else:
            task.cancel()
        self._in_flight = None

    async def _commit(self, kafka: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        # A partition taken away by a rebalance meanwhile is its new owner's to commit (aiokafka refuses it here).
        assigned = kafka.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            # aiokafka retries a commit while the coordinator is unknown, without end once its consumer is closed.
            async with asyncio.timeout(self._timeout):
                await kafka.commit(offsets)
        except CommitFailedError as exc:
            # Routine: the group rebalanced (a peer started or stopped), or this member was dropped from it. aiokafka's
            # own text is ten lines of advice on max_poll_interval_ms; the error under it tells which.
            log.warning("%s: offsets %s not committed: the group rebalanced (%s); whoever owns those partitions now "
                        "reads these records again and the inbox skips them", self._consumer, _where(offsets),
                        type(exc.__cause__ or exc).__name__)  # fmt: skip
        except Exception as exc:
            # Anything else (a refused ACL, a broker that does not answer) repeats until someone acts.
            log.error("%s: offsets %s not committed (%r); whoever reads those partitions next reads these records "
                      "again and the inbox skips them; if this repeats, check the consumer's access to Kafka and the "
                      "broker's health", self._consumer, _where(offsets), exc)  # fmt: skip


def _where(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in sorted(offsets.items()))


async def apply_batch(msg: KafkaMessage, raw: Sequence[Any], consumer: EventConsumer | None, commits: CommitBehind,
                      name: str) -> dict[TopicPartition, int]:  # fmt: skip
    """One batch from FastStream (`raw`, its records): applied, then its offsets committed behind it; a batch that
    fails is rewound, and the records a batch deferred are read again. Returns where each of its partitions is to
    be read from next."""
    try:
        if consumer is None:
            raise RuntimeError(f"{name} received records before it was started")
        handled, deferred = _split(raw, await consumer.handle_batch([Record.from_kafka(r) for r in raw]))
        kafka_consumer = getattr(msg, "consumer", None)
        if not isinstance(kafka_consumer, AIOKafkaConsumer):
            # The in-memory test broker reads nothing again: what was deferred is applied now.
            while deferred:
                handled, deferred = _split(deferred, await consumer.handle_batch([Record.from_kafka(r)
                                                                                  for r in deferred]))  # fmt: skip
            await msg.ack()
            return _next_offsets(raw, [])
    except Exception:
        await _rewind(msg, name)
        raise
    _read_again(kafka_consumer, deferred, name)
    await commits.after(kafka_consumer, handled)
    return _next_offsets(handled, deferred)


def _split(raw: Sequence[Any], outcomes: Sequence[Outcome]) -> tuple[list[Any], list[Any]]:
    """A batch's records handled, and those deferred (of each partition, the records after those handled)."""
    if Outcome.DEFERRED not in outcomes:
        return list(raw), []
    handled, deferred = [], []
    for r, outcome in zip(raw, outcomes, strict=True):
        (deferred if outcome is Outcome.DEFERRED else handled).append(r)
    return handled, deferred


def _next_offsets(handled: Sequence[Any], deferred: Sequence[Any]) -> dict[TopicPartition, int]:
    """Where each partition is read from next: after its last record handled, or at its first one deferred."""
    offsets = {(r.topic, r.partition): r.offset + 1 for r in handled}
    for r in reversed(deferred):
        offsets[r.topic, r.partition] = r.offset
    return {TopicPartition(*tp): offset for tp, offset in offsets.items()}


def _read_again(kafka: AIOKafkaConsumer, records: Sequence[Any], consumer: str) -> None:
    """Each partition of `records` (the deferred end of each partition's records in a batch) back to its first of
    them, so the next fetch starts there. A partition no longer this consumer's is left to its new owner, which
    reads from the last commit: one taken by a rebalance, or all of them once a pattern subscription found a new
    topic or the consumer stopped (aiokafka then has no assignment, and its seek fails an assertion)."""
    first: dict[TopicPartition, int] = {}
    for r in records:
        first.setdefault(TopicPartition(r.topic, r.partition), r.offset)
    for tp, offset in first.items():
        try:
            if tp not in kafka.assignment():
                raise IllegalStateError(f"{tp} is not assigned")
            kafka.seek(tp, offset)
        except (IllegalStateError, AssertionError):
            log.warning("%s: %s[%d] was reassigned before its deferred records were read again; whoever owns it now "
                        "reads them", consumer, tp.topic, tp.partition)  # fmt: skip


async def next_batch(consumer: AIOKafkaConsumer, *, timeout_ms: int, max_records: int,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> tuple[ConsumerRecord, ...]:
    """A subscriber's next records, handed over as soon as they are fetched.

    It stands in for FastStream's `BatchSubscriber.get_msg`, which sleeps for the whole batch timeout after a fetch
    that found nothing: a record arriving during that sleep waited up to 100 ms more at each hop. At 5 registrations
    a second, a registration's message reached the notifier after 94-104 ms (p50) with that sleep and 43-49 ms
    without it. aiokafka's `getmany` already waits its whole timeout when nothing comes, so no sleep is needed to
    keep the loop from spinning; should it ever come back empty sooner, the rest of the timeout is slept here so the
    loop still cannot spin."""
    started = clock()
    fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
    if fetched:
        return tuple(chain.from_iterable(fetched.values()))
    left = timeout_ms / 1000 - (clock() - started)
    if left > 0:
        await sleep(left)
    return ()


def declare(broker: KafkaBroker, sub: Subscription, consumers: Consumers, *, max_records: int = 200,
            max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS) -> None:  # fmt: skip
    commits = CommitBehind(sub.consumer)

    async def on_batch() -> None:
        # Read from FastStream's context rather than taken as a `KafkaMessage` argument: FastDepends resolves such an
        # argument in a worker thread, inside a task group of its own, which cost about 0.25 ms of CPU and a thread hop
        # per batch of every consumer.
        msg: KafkaMessage | None = broker.context.get_local("message")
        if msg is None:
            raise RuntimeError(f"{sub.consumer}: no message in FastStream's context; on_batch runs only as a "
                               "subscriber")  # fmt: skip
        raw = _records(msg.raw_message)
        next_offsets = await apply_batch(msg, raw, consumers.by_name.get(sub.consumer), commits, sub.consumer)
        if consumers.metrics is not None:
            for tp, offset in next_offsets.items():
                _observe_lag(msg, tp, offset, sub.consumer, consumers.metrics)

    on_batch.__name__ = re.sub(r"\W", "_", f"{sub.consumer}_on_{sub.topic}")
    where = {"pattern": sub.topic} if sub.pattern else {}
    subscriber = broker.subscriber(
        *([] if sub.pattern else [sub.topic]),
        **where,
        group_id=sub.group_id,
        auto_offset_reset="earliest",
        # Batches: one database commit and one offset commit for up to max_records records.
        batch=True,
        max_records=max_records,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_poll_interval_ms=max_poll_interval_ms,
        # Committed after the transaction (or the dead-letter writes), by `on_batch` (CommitBehind); on a lasting
        # outage it seeks back and the batch is redelivered.
        ack_policy=AckPolicy.MANUAL,
        parser=_tolerant_parser,
        decoder=_no_decoding,
        title=f"{sub.consumer} <- {sub.topic}",
        description=f"{sub.consumer} applies {', '.join(sub.event_types)} once each (inbox), retries failures, "
        f"then dead-letters the record's own failures to {sub.topic}.dlq.",
    )
    subscriber(on_batch)
    # FastStream's consume loop fetches through this subscriber's `get_msg`; this one does not pause after an empty
    # fetch (next_batch says why).
    fetch = partial(next_batch, timeout_ms=BATCH_TIMEOUT_MS, max_records=max_records)
    subscriber.get_msg = fetch  # type: ignore[method-assign]


async def _rewind(msg: KafkaMessage, consumer: str) -> None:
    """Each partition of a failed batch back to the batch's first record, so the batch is read again."""
    try:
        await msg.nack()
    except Exception:  # a partition taken away by a rebalance meanwhile: its new owner reads from the last commit
        log.warning("%s: could not rewind a failed batch; whoever owns its partitions now reads it again", consumer,
                    exc_info=True)  # fmt: skip


def declare_all(broker: KafkaBroker, subscriptions: Sequence[Subscription], consumers: Consumers) -> None:
    for sub in subscriptions:
        declare(broker, sub, consumers)


def _observe_lag(msg: Any, tp: TopicPartition, next_offset: int, consumer_name: str, metrics: MessagingMetrics) -> None:
    kafka_consumer = getattr(msg, "consumer", None)
    highwater = getattr(kafka_consumer, "highwater", None)
    if highwater is None:
        return  # the in-memory test broker has no real consumer
    try:
        end = highwater(tp)
    except AssertionError:
        return  # the partition was revoked during the batch (a rebalance); its new owner reports the lag
    if end is not None:
        metrics.consumer_lag.labels(consumer_name, tp.topic, str(tp.partition)).set(max(0, end - next_offset))

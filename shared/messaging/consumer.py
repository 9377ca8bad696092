"""Consuming events safely: parse, apply once through the inbox, retry, then dead-letter what is the record's fault.

One path for every batch (a batch of one is a batch). A batch is applied in one transaction with the inbox rows
of its events; the offsets are committed only after `handle_batch` returns (subscriptions.CommitBehind).

Failures are classified on purpose:
- transient (the database is down, read-only after a failover, a rotated password, a deadlock or serialization
  failure, no pooled connection, Kafka unreachable): retried with backoff and never dead-lettered; after the
  transient budget `handle_batch` raises, so the batch is redelivered and the partition waits;
- the record's own (it can't be parsed, its handler raises or runs past the handler timeout): the batch is split
  and the record retried a bounded number of times alone, then it goes to `<topic>.dlq` with the error, and the
  partition moves on. A handler that knows the record can never be applied (it raises `RecordRefused`) has it
  dead-lettered at its first attempt alone: retrying would only hold up every record behind it. Once a batch has
  spent its retry window, the records not yet tried alone are left to be read again (those of partitions with no
  record at fault get one attempt together first), so no batch outlasts Kafka's max.poll.interval.

After a rebuild of the view a consumer keeps (replay.py), a delivery of history read again is marked `replayed`
until the consumer has read each partition as far as the rebuild found it (catch_up.py).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import asyncpg

from shared.contracts.catalog import CATALOG, EventCatalog
from shared.contracts.envelope import Envelope, EventPayload, RecordRefused
from shared.contracts.topics import dlq
from shared.db import Database, DatabaseBusy
from shared.messaging.dead_letters import DeadLetters, Record
from shared.messaging.inbox import first_deliveries
from shared.observability import MessagingMetrics, scrub

if TYPE_CHECKING:
    from shared.messaging.catch_up import CatchUp, TopicPartition

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"
    # Not handled in this delivery: the batch's retry window was spent before its turn, so it is read again
    # (subscriptions.apply_batch seeks back to it). Counted once handled, not now.
    DEFERRED = "deferred"


class Failure(StrEnum):
    TRANSIENT = "transient"
    RECORD = "record"


# Failures of the infrastructure, not of the record: waiting and trying again is the cure.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError
    DatabaseBusy,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a standby
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # a rotated password, until settings catch up
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.exceptions.LockNotAvailableError,
)


# How long the database has to answer `SELECT 1` for a timeout to be the record's.
_PROBE_SECONDS = 2.0


def classify(error: BaseException) -> Failure:
    """Whose fault a failure is. A handler timeout (asyncio's, or the server's statement_timeout) is the
    record's: a record that always times out must not block its partition forever."""
    from aiokafka.errors import KafkaError

    if isinstance(error, TimeoutError):  # checked first: Python counts it among the OSErrors
        return Failure.RECORD
    # Any Kafka failure here (the dead-letter topic unreachable, say) means records must wait, not be lost.
    if isinstance(error, (*_TRANSIENT, KafkaError)):
        return Failure.TRANSIENT
    return Failure.RECORD


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event a consumer applies for the first time (its inbox said so), and the topic it came from."""

    envelope: Envelope
    payload: EventPayload
    topic: str = ""
    # History read again after a rebuild: rebuild the view from it, set nothing off (catch_up.py).
    replayed: bool = False


@dataclass
class BatchTransaction:
    """The consumer's open transaction: the handlers' writes, the inbox rows and any outbox rows commit together.
    `after_commit` callbacks run once that commit succeeded (metrics that must not count a rolled-back batch)."""

    conn: asyncpg.Connection
    after_commit: list[Callable[[], None]] = field(default_factory=list)


# What a service does with the new events of a batch, inside the consumer's transaction.
Apply = Callable[[BatchTransaction, Sequence[Delivery]], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # for a failure that is the record's own, before the dead-letter topic
    backoff: float = 0.2  # seconds before the 2nd attempt; doubling
    handler_timeout: float = 30.0  # seconds a batch's handlers may take
    transient_backoff: float = 0.5
    transient_max_backoff: float = 10.0
    transient_budget: float = 60.0  # then raise: the batch is redelivered and the partition waits
    # Seconds a batch may spend retrying its failed records alone; past it, the record being retried is dead-lettered
    # and the records after it of its partition are left for the next delivery (Outcome.DEFERRED). A batch must end
    # well inside Kafka's max.poll.interval (300 s): one that ran past it was handed to another consumer, redelivered,
    # and its bad records dead-lettered again, round after round. Giving each record after the window one attempt
    # still did that: ten records that each ran to the handler timeout took 360 s.
    retry_window: float = 90.0


class TransientFailure(RuntimeError):
    """The infrastructure stayed down through the retry budget; the batch will be redelivered."""


class _RecordFailure(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True, slots=True)
class _Item:
    index: int
    record: Record
    envelope: Envelope
    payload: EventPayload
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class _Letter:
    """A record found at fault, to dead-letter once the batch is through."""

    index: int
    record: Record
    error: BaseException
    attempts: int


def _partition(record: Record) -> tuple[str, int]:
    return record.topic, record.partition


def _defer_after_first(records: Sequence[Record], outcomes: dict[int, Outcome]) -> int:
    """Each partition's records from its first deferred one on are deferred too, so what is handled of each
    partition is a prefix of its records in the batch (a record that cannot be read, or is ignored, waits its turn).
    Returns how many records are deferred."""
    if Outcome.DEFERRED not in outcomes.values():  # as nearly always: this runs for every batch
        return 0
    cut: dict[tuple[str, int], int] = {}
    for i, record in enumerate(records):
        if outcomes.get(i) is Outcome.DEFERRED:
            cut.setdefault(_partition(record), i)
    if not cut:
        return 0
    for i, record in enumerate(records):
        if i > cut.get(_partition(record), i):
            outcomes[i] = Outcome.DEFERRED
    return sum(outcome is Outcome.DEFERRED for outcome in outcomes.values())


def _named_type(record: Record) -> str | None:
    """The event type the record's `event_type` header names (the relay sets it from the same row as the value),
    or None if it has none the consumer can read. Only whoever may write to the topic can set it, and a record
    whose header misnames a type the consumer takes is still judged by its value."""
    for key, value in record.headers:
        if key == "event_type":
            try:
                return value.decode() if value is not None else None
            except UnicodeDecodeError:
                return None
    return None


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        db: Database,
        apply: Apply,
        event_types: Collection[str],
        dead_letters: DeadLetters,
        metrics: MessagingMetrics,
        policy: RetryPolicy = RetryPolicy(),
        catalog: EventCatalog = CATALOG,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        catch_up: CatchUp | None = None,
    ) -> None:
        self.name = name
        self._db = db
        self._apply = apply
        self.event_types = frozenset(event_types)
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._policy = policy
        self._catalog = catalog
        self._sleep = sleep
        self._clock = clock
        self._catch_up = catch_up
        self._lock_timeout = f"SET LOCAL lock_timeout = {max(1, round(policy.handler_timeout * 500))}"  # half of it, ms
        # Read once, at the first batch: a rebuild writes them while every process of the service is stopped.
        self._ends: dict[TopicPartition, int] | None = None if catch_up is not None else {}

    async def handle_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Apply the records in order; returns each one's outcome, DEFERRED for those to be read again. Raises only
        for a transient failure that outlasted the budget (the batch is then redelivered)."""
        outcomes: dict[int, Outcome] = {}
        work: list[_Item] = []
        # Sent once the batch's transactions are done: a batch redelivered after a long database outage would
        # otherwise dead-letter its bad records again, once per delivery.
        letters: list[_Letter] = []
        if self._ends is None:
            self._ends = await self._catch_up.ends(self.name)  # type: ignore[union-attr]
        ends = self._ends
        for i, record in enumerate(records):
            if (named := _named_type(record)) is not None and named not in self.event_types:
                # Not read at all: funding's matcher, say, takes one type of the dozens on its topic, and parsing
                # the rest cost the stream it shares a process with more than the matching it exists for.
                outcomes[i] = Outcome.IGNORED
                continue
            try:
                envelope = Envelope.from_bytes(record.value)
                if envelope.event_type not in self.event_types:
                    outcomes[i] = Outcome.IGNORED  # an aggregate's topic carries types this consumer has no use for
                    continue
                replayed = bool(ends) and record.offset < ends.get((record.topic, record.partition), -1)
                work.append(_Item(i, record, envelope, self._catalog.decode(envelope), replayed))
            except Exception as exc:  # noqa: BLE001 - reading a record does no I/O: whatever fails is the record's
                # and fails the same way every time, so it is dead-lettered (and re-driven once the code reads it);
                # escaping, it was redelivered at once, for ever, and held up its partition.
                letters.append(_Letter(i, record, exc, 1))
        await self._apply_all(work, outcomes, letters, self._clock() + self._policy.retry_window)
        if deferred := _defer_after_first(records, outcomes):
            letters = [letter for letter in letters if outcomes.get(letter.index) is not Outcome.DEFERRED]
            log.warning("%s: the batch's retry window is spent; %d of its %d records are left for the next delivery",
                        self.name, deferred, len(records))  # fmt: skip
        for letter in sorted(letters, key=lambda letter: letter.index):
            outcomes[letter.index] = await self._dead_letter(letter.record, letter.error, attempts=letter.attempts)
        if ends:
            await self._note_caught_up([r for i, r in enumerate(records) if outcomes[i] is not Outcome.DEFERRED], ends)
        self._count(work, outcomes)
        return [outcomes[i] for i in range(len(records))]

    def _count(self, work: Sequence[_Item], outcomes: dict[int, Outcome]) -> None:
        # Each labelled child looked up once a batch, not per event: the lookups were 3 % of funding's stream (py-spy).
        now = time.time()
        age = self._metrics.event_age.labels(self.name)
        for item in work:
            if outcomes[item.index] is Outcome.PROCESSED:
                age.observe(max(0.0, now - item.envelope.occurred_at.timestamp()))
        counts = collections.Counter(outcome for outcome in outcomes.values() if outcome is not Outcome.DEFERRED)
        if duplicates := counts[Outcome.DUPLICATE]:
            self._metrics.inbox_duplicates.labels(self.name).inc(duplicates)
        for outcome, n in counts.items():
            self._metrics.consumed.labels(self.name, outcome.value).inc(n)

    async def _note_caught_up(self, records: Sequence[Record], ends: dict[TopicPartition, int]) -> None:
        """Partitions this batch read to where the rebuild found them (ignored and dead-lettered records count: the
        last one before that offset may be either). Should this fail, the batch is redelivered, and asks again."""
        reached = {(r.topic, r.partition) for r in records if r.offset >= ends.get((r.topic, r.partition), 1 << 63) - 1}
        if not reached:
            return
        await self._catch_up.reached(self.name, reached)  # type: ignore[union-attr]
        for partition in reached:
            del ends[partition]
        log.info("%s: caught up on %s%s", self.name, ", ".join(f"{t}[{p}]" for t, p in sorted(reached)),
                 "" if ends else "; what the replay held back is settled next")  # fmt: skip

    async def _apply_all(self, work: list[_Item], outcomes: dict[int, Outcome], letters: list[_Letter],
                         retry_until: float) -> None:  # fmt: skip
        if not work:
            return
        if len(work) > 1:
            try:
                await self._transaction(work, outcomes)
                return
            except _RecordFailure as failure:
                log.info("%s: batch of %d failed (%s); applying one by one to find the record at fault",
                         self.name, len(work), scrub(repr(failure.cause)))  # fmt: skip
        for n, item in enumerate(work):
            # The first always gets its turn, so every delivery moves its partition on by at least one record.
            if n and self._clock() >= retry_until:
                await self._apply_rest(work[:n], work[n:], outcomes, letters)
                return
            await self._apply_alone(item, outcomes, letters, retry_until)

    async def _apply_rest(self, tried: list[_Item], rest: list[_Item], outcomes: dict[int, Outcome],
                          letters: list[_Letter]) -> None:  # fmt: skip
        """Once the retry window is spent: the records of partitions with no record found at fault alone in this
        delivery get one more attempt, together, so one partition's run of slow bad records does not hold up the
        others; the rest, and all of them should that attempt fail, are left for the next delivery."""
        tried_alone = {item.index for item in tried}
        at_fault = {_partition(letter.record) for letter in letters if letter.index in tried_alone}
        healthy = [item for item in rest if _partition(item.record) not in at_fault]
        if healthy:
            try:
                await self._transaction(healthy, outcomes)
            except _RecordFailure:
                healthy = []
        applied = {item.index for item in healthy}
        outcomes.update((item.index, Outcome.DEFERRED) for item in rest if item.index not in applied)

    async def _apply_alone(self, item: _Item, outcomes: dict[int, Outcome], letters: list[_Letter],
                           retry_until: float) -> None:  # fmt: skip
        attempts = self._policy.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._transaction([item], outcomes)
                return
            except _RecordFailure as failure:
                error = failure.cause
                refused = isinstance(error, RecordRefused)
                if not refused:
                    self._metrics.retries.labels(self.name).inc()
                delay = self._policy.backoff * 2 ** (attempt - 1)
                window_spent = self._clock() + delay > retry_until
                log.warning("%s: %s %s failed (attempt %d of %d%s): %s", self.name, item.envelope.event_type,
                            item.envelope.event_id, attempt, attempts,
                            "; refused, not retried" if refused and attempt < attempts else
                            "; the batch's retry window is spent" if window_spent and attempt < attempts else "",
                            scrub(f"{type(error).__name__}: {error}"))  # fmt: skip
                if attempt == attempts or window_spent or refused:
                    break
                await self._sleep(delay)
        letters.append(_Letter(item.index, item.record, error, attempt))

    async def _transaction(self, work: list[_Item], outcomes: dict[int, Outcome]) -> None:
        """One transaction for `work`. Transient failures are retried here; the record's own raise _RecordFailure."""
        delay = self._policy.transient_backoff
        deadline = self._clock() + self._policy.transient_budget
        while True:
            try:
                applied = await self._once(work)
            except Exception as exc:
                if await self._whose(exc) is Failure.RECORD:
                    raise _RecordFailure(exc) from exc
                self._metrics.transient_failures.labels(self.name).inc()
                if self._clock() + delay > deadline:
                    raise TransientFailure(
                        f"{self.name}: {scrub(f'{type(exc).__name__}: {exc}')} for over "
                        f"{self._policy.transient_budget:g}s; the batch will be redelivered"
                    ) from exc
                log.warning("%s: %s; retrying in %.1fs (never dead-lettered: not the record's fault)",
                            self.name, scrub(f"{type(exc).__name__}: {exc}"), delay)  # fmt: skip
                await self._sleep(delay)
                delay = min(delay * 2, self._policy.transient_max_backoff)
                continue
            outcomes.update(applied)
            return

    async def _whose(self, error: BaseException) -> Failure:
        """`classify`, but a timeout while the database does not answer a trivial query at once is the database's
        (a stalled network, a commit waiting on a replica): healthy records were dead-lettered, to be re-driven out
        of order."""
        whose = classify(error)
        if whose is Failure.RECORD and isinstance(error, TimeoutError) and not await self._database_answers():
            return Failure.TRANSIENT
        return whose

    async def _database_answers(self) -> bool:
        return await self._db.unreachable(_PROBE_SECONDS) is None

    async def _once(self, work: list[_Item]) -> dict[int, Outcome]:
        async with self._db.acquire() as conn:
            async with conn.transaction():
                # A row another transaction holds is no fault of the record: waited for past the handler's time, it
                # counted as one, and a healthy record was dead-lettered. Cut short first, the wait is retried as the
                # database's failure (LockNotAvailableError); a handler may set a shorter wait of its own.
                await conn.execute(self._lock_timeout)
                fresh = await first_deliveries(conn, self.name, [item.envelope for item in work])
                applied: dict[int, Outcome] = {}
                deliveries: list[Delivery] = []
                for item in work:
                    event_id = item.envelope.event_id
                    if event_id in fresh:
                        fresh.discard(event_id)  # the same event twice in one batch applies once
                        deliveries.append(Delivery(item.envelope, item.payload, item.record.topic, item.replayed))
                        applied[item.index] = Outcome.PROCESSED
                    else:
                        applied[item.index] = Outcome.DUPLICATE
                tx = BatchTransaction(conn)
                if deliveries:
                    async with asyncio.timeout(self._policy.handler_timeout):
                        await self._apply(tx, deliveries)
                    if held := {d.envelope.aggregate_id for d in deliveries if d.replayed}:
                        await self._catch_up.hold(conn, self.name, held)  # type: ignore[union-attr]
        for callback in tx.after_commit:
            callback()
        return applied

    async def _dead_letter(self, record: Record, error: BaseException, *, attempts: int) -> Outcome:
        await self._dead_letters.send(record, consumer=self.name, error=error, attempts=attempts)
        self._metrics.dead_lettered.labels(self.name, record.topic).inc()
        log.error("%s: record %s[%d]@%d sent to %s: %s", self.name, record.topic, record.partition, record.offset,
                  dlq(record.topic), scrub(f"{type(error).__name__}: {error}"))  # fmt: skip
        return Outcome.DEAD_LETTERED

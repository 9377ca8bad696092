"""The outbox relay: publishes the outbox's rows to Kafka, in order per aggregate, one relay per database.

The relay claims the rows waiting in `outbox_pending` instead of polling `id > last_seen`, so a row whose
transaction commits late is still published. LISTEN/NOTIFY only wakes it up early; it also polls.
If it dies between publishing and marking, the rows are published again: consumers' inboxes absorb that.

One relay per database publishes at a time, so one aggregate's events never race each other to Kafka. It holds a
lease (a row with a holder, an epoch and a deadline) that it renews inside every batch's transaction; a relay that
lost the lease (its connection died, it was paused past the deadline) finds out at its next batch and stops, and
a standby takes over within a lease period of a holder dying. A row that fails to publish holds back only the
later rows of its own aggregate, until its next attempt.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import os
import socket
import time
import typing
import uuid
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from shared.contracts.envelope import event_headers
from shared.db import Database
from shared.observability import MessagingMetrics, scrub

from shared.messaging.kafka import MAX_EVENT_BYTES
from shared.messaging.outbox import OutboxRow, RelayError, split_by_first_failure
from shared.messaging.partitioner import partition_for

log = logging.getLogger(__name__)

# What the claim's text carries, so a session idle in a round can be told from others in pg_stat_activity.
CLAIM_MARKER = "/* outbox relay claim */"
# Rows due now whose aggregate has no earlier row waiting for a retry: a failing row holds back its own aggregate
# only, and the rest of the outbox flows past it. The claim locks no row: every round holds the lease's row lock
# from its renewal to its commit, so no other relay claims, publishes or marks anything meanwhile, and nothing else
# writes `outbox_pending` but the trigger adding rows. Locking each claimed row as well cost PostgreSQL a fifth of
# its share of relaying (a lock record written to each row, then its delete), and guarded against nothing.
_CLAIM = f"""
SELECT {CLAIM_MARKER}
       o.id, o.event_id, o.aggregateid, o.type, o.event_version, o.topic, o.payload::text AS payload,
       extract(epoch FROM o.created_at)::float8 AS created_at, p.attempts
  FROM outbox_pending p JOIN outbox o ON o.id = p.id
 WHERE (p.next_attempt_at IS NULL OR p.next_attempt_at <= now())
   AND NOT EXISTS (SELECT 1 FROM outbox_pending h
                    WHERE h.aggregatetype = p.aggregatetype AND h.aggregateid = p.aggregateid AND h.id < p.id
                      AND h.next_attempt_at IS NOT NULL AND h.next_attempt_at > now())
   AND p.id = ANY($3::bigint[]) AND p.id > $2 AND o.id > $2
 ORDER BY p.id
 LIMIT $1
"""
# The claim must walk the waiting rows in id order and stop at the limit (`o.id > $2` lets it join the outbox
# from there rather than from its first row). With a fresh or churning outbox the planner's estimates are off and
# it picks a bitmap scan of every unpublished row, an anti-join for each and a sort (200 ms at a 15,000-row
# backlog, growing with it); forbidding bitmap and sequential scans for the batch's transaction keeps it at a few
# milliseconds whatever the backlog. With rows waiting for a retry, the planner expects a handful and materialises
# all of them for every claimed row to compare aggregates (1,000 of them made a claim of 500 take 80-120 ms);
# without materialising it looks each aggregate up in their index (4-10 ms).
_BATCH_SETTINGS = (
    "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_material = off; "
)
# A transaction claims further batches while earlier ones are in flight, up to this many batches or this long
# (a small part of the lease, so a round never runs into the lease's deadline).
_ROUND_BATCHES = 16
_IN_FLIGHT = 4  # batches handed to the producer and not yet marked
_ROUND_SECONDS = 1.0
# How long a topic's partitions are looked up: longer, and a round for a topic Kafka does not have outlasts its lease.
_TOPIC_LOOKUP_SECONDS = 2.0
# How long a partition that left a round's batch unacknowledged (its leader gone or cut off) has its events held back
# without being handed over, before a round tries it again.
_STALL_SECONDS = 30.0

# Published: the row stays in the outbox for its retention, and waits no more.
_MARK_PUBLISHED = "DELETE FROM outbox_pending WHERE id = ANY($1::bigint[])"
# The same, sent with the next claim: PostgreSQL marks earlier batches while the relay hands the current one over.
# The claim's snapshot still sees the rows deleted, but starts above all of them: they were claimed earlier in the
# round.
_CLAIM_AND_MARK = "WITH marked AS (DELETE FROM outbox_pending WHERE id = ANY($4::bigint[]))" + _CLAIM
# Backoff doubles per attempt up to five minutes.
_MARK_FAILED = (
    "UPDATE outbox_pending SET attempts = attempts + 1, last_error = $2,"
    " next_attempt_at = now() + make_interval(secs => least(300, power(2, least(attempts, 9)))::float8)"
    " WHERE id = ANY($1::bigint[])"
)
# Read after every round that found the outbox nearly drained, and at every scrape. Joined to the outbox (which
# keeps a week of published rows), PostgreSQL hashed the whole outbox each time (3-7 ms at a few thousand rows,
# growing with the week's events); the oldest row is looked up by id among the first waiting instead (each look-up
# kept apart by OFFSET 0, so the planner does not join them back into a scan). Ids are taken in the order rows are
# written, so the oldest is among the first thousand waiting unless a thousand later rows committed while its
# transaction stayed open.
_BACKLOG = """
SELECT count(*) AS backlog,
       count(*) FILTER (WHERE last_error IS NOT NULL) AS failing,
       coalesce(extract(epoch FROM now() - (
           SELECT min(o.created_at)
             FROM (SELECT id FROM outbox_pending ORDER BY id LIMIT 1000) AS first
             CROSS JOIN LATERAL (SELECT created_at FROM outbox WHERE outbox.id = first.id OFFSET 0) AS o
       )), 0)::float8 AS oldest
  FROM outbox_pending
"""
_LEASE_NAME = "outbox"
_TAKE_LEASE = """
UPDATE relay_lease SET holder = $2, epoch = epoch + 1, expires_at = now() + make_interval(secs => $3::float8)
 WHERE name = $1 AND (expires_at < now() OR holder = $2)
RETURNING epoch
"""
# With the renewal, the rows the round may claim: the first ones due, committed when it starts. Ids are taken when a
# row is written, not when it commits, so a row may commit below where the round's claims have gone on from, and
# an event of its aggregate written after it (in its own transaction, or in the next one to lock the aggregate)
# above. Neither was committed when the round started: both wait for the next round, which starts again from the
# bottom and publishes them in order.
_RENEW_LEASE = """
UPDATE relay_lease SET expires_at = now() + make_interval(secs => $4::float8)
 WHERE name = $1 AND holder = $2 AND epoch = $3
RETURNING (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM (
               SELECT id FROM outbox_pending WHERE next_attempt_at IS NULL OR next_attempt_at <= now()
                ORDER BY id LIMIT $5) AS due) AS candidates
"""


class _HandedOver(typing.NamedTuple):
    """One record batch handed to the producer: its partition, the indexes of its rows, and Kafka's answer to come."""

    tp: tuple[str, int]
    indexes: list[int]
    ack: asyncio.Future


class LeaseLost(RelayError):
    """Another relay holds the lease now: this one must stop publishing at once."""


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Claims:
    """A round's claims, at most one sent ahead on the round's connection.

    Claims take the round's candidates (`_RENEW_LEASE`) in id order, each starting above the last candidate of the
    claim before (skipping the rows in flight without walking past them again). A candidate below it was claimed in
    this round or held back by its aggregate's failing row; a row committed since the round began is no candidate,
    and waits for the next round with every later event of its aggregate."""

    def __init__(self, conn: asyncpg.Connection, batch_size: int, deadline: float, candidates: list[int]) -> None:
        self._conn = conn
        self._batch_size = batch_size
        self._deadline = deadline
        self._candidates = candidates
        self._sent: asyncio.Future | None = None
        self._sent_up_to = 0  # the last candidate of the claim sent
        self.after = 0
        self.more = True
        self.batches = 0
        self.claimed = 0

    async def send(self, published: list[int]) -> bool:
        """Send the next claim if the round wants more, without waiting for its rows, and with it the marks of the
        rows in `published`. False if it sent nothing: those rows are then still to be marked."""
        first = bisect.bisect_right(self._candidates, self.after)
        wanted = (self.more and first < len(self._candidates) and self.batches < _ROUND_BATCHES
                  and time.monotonic() < self._deadline)  # fmt: skip
        if self._sent is not None or not wanted:
            return False
        candidates = self._candidates[first:first + self._batch_size]
        self._sent_up_to = candidates[-1]
        if published:
            fetched = self._conn.fetch(_CLAIM_AND_MARK, self._batch_size, self.after, candidates, published)
        else:
            fetched = self._conn.fetch(_CLAIM, self._batch_size, self.after, candidates)
        self._sent = asyncio.ensure_future(fetched)
        await asyncio.sleep(0)  # once the statement is prepared on this connection, the query goes out now
        return True

    async def take(self) -> list[OutboxRow]:
        """The rows of the claim sent, none if none was; the connection is free afterwards.

        A candidate of the claim that it did not return is held back by its aggregate's failing row, for the whole
        round (`now()` is the round's transaction's): the next claim starts past all of them. A claim whose candidates
        were all held back (a pledge's many events behind its failing first) is followed by the next at once; ending
        the round there left every other aggregate waiting for that row's retry."""
        rows: list[OutboxRow] = []
        while not rows and self._sent is not None:
            sent, self._sent = self._sent, None
            rows = list(map(OutboxRow._make, await sent))
            self.after = self._sent_up_to
            self.batches += 1 if rows else 0
            self.claimed += len(rows)
            if not rows:
                await self.send([])
        return rows

    async def settle(self) -> None:
        """A failed round's claim still running ends before its transaction rolls back on the same connection."""
        if self._sent is not None:
            sent, self._sent = self._sent, None
            await asyncio.gather(sent, return_exceptions=True)


class OutboxRelay:
    """Publishes committed outbox rows to Kafka with acks=all and idempotence, then marks them published."""

    def __init__(
        self,
        *,
        db: Database,
        dsn: str,
        producer_factory: Callable[[], AIOKafkaProducer],
        metrics: MessagingMetrics,
        batch_size: int = 500,
        idle_wait: float = 1.0,
        lease_seconds: float = 15.0,
        max_backoff: float = 30.0,
        holder: str | None = None,
    ) -> None:
        self._db = db
        self._dsn = dsn
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self._lease_seconds = lease_seconds
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._stalled: dict[tuple[str, int], float] = {}  # partition -> until when its events are held back
        self._stalls = 0  # partitions found stalled, ever: a round compares it before and after
        self.holder = holder or new_holder_id()
        self.epoch: int | None = None
        self.last_error: str | None = None
        self._published_batches = 0

    # -- the lease ----------------------------------------------------------------------------------------------

    async def try_take_lease(self) -> bool:
        """Take the lease if it is free or expired (or already ours); False while another holder keeps it."""
        async with self._db.acquire() as conn:
            try:
                async with conn.transaction():
                    # A takeover waits for the holder's batch to end, but never long: a standby just tries again.
                    await conn.execute("SET LOCAL lock_timeout = '2s'")
                    await conn.execute(
                        "INSERT INTO relay_lease (name, holder, epoch, expires_at) VALUES ($1, '', 0, '-infinity')"
                        " ON CONFLICT DO NOTHING",
                        _LEASE_NAME,
                    )
                    self.epoch = await conn.fetchval(_TAKE_LEASE, _LEASE_NAME, self.holder, self._lease_seconds)
            except asyncpg.LockNotAvailableError:
                self.epoch = None
        return self.epoch is not None

    async def _renew(self, conn: asyncpg.Connection) -> list[int]:
        """Inside a batch's transaction: the row lock it takes keeps a standby out until the batch is done. Returns
        the ids the round may claim."""
        candidates = None if self.epoch is None else await conn.fetchval(
            _RENEW_LEASE, _LEASE_NAME, self.holder, self.epoch, self._lease_seconds,
            _ROUND_BATCHES * self._batch_size)  # fmt: skip
        if candidates is None:
            self.epoch = None
            raise LeaseLost(f"relay {self.holder} lost the outbox lease to another relay")
        return candidates

    async def release_lease(self) -> None:
        if self.epoch is None:
            return
        try:
            await self._db.execute(
                "UPDATE relay_lease SET expires_at = '-infinity' WHERE name = $1 AND holder = $2 AND epoch = $3",
                _LEASE_NAME, self.holder, self.epoch,
            )  # fmt: skip
        finally:
            self.epoch = None

    # -- the loop -----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the lease and publish until `stop` is set; stand by while another relay holds it; survive outages."""
        backoff = 0.5
        while not stop.is_set():
            listener: asyncpg.Connection | None = None
            batches_before = self._published_batches
            try:
                if not await self.try_take_lease():
                    await _wait(stop, min(2.0, self._lease_seconds / 3))
                    continue
                self._metrics.relay_leader.set(1)
                listener = await self._listen()
                await self._publish_until(stop, listener)
                backoff = 0.5
            except LeaseLost as exc:
                log.warning("outbox relay: %s; standing by", exc)
                await self._drop_producer()
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage; it logs and backs off
                self.last_error = scrub(f"{type(exc).__name__}: {exc}")
                self._metrics.relay_errors.inc()
                if self._published_batches > batches_before:
                    backoff = 0.5  # it was working until now: a fresh failure, not a lasting outage
                log.warning("outbox relay: %s; retrying in %.1fs", self.last_error, backoff)
                await self._drop_producer()
                await _wait(stop, backoff)
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                self._metrics.relay_leader.set(0)
                if listener is not None and not listener.is_closed():
                    await listener.close(timeout=2)
        try:
            await self.release_lease()
        except Exception:  # noqa: BLE001 - the lease simply expires
            log.debug("could not release the relay lease", exc_info=True)
        await self._drop_producer()

    async def _listen(self) -> asyncpg.Connection | None:
        """A wake-up line only: delivery never depends on it, so failing to listen just means polling."""
        try:
            listener = await asyncpg.connect(self._dsn, timeout=5)
            await listener.add_listener("outbox", self._on_notify)
            return listener
        except Exception as exc:  # noqa: BLE001
            log.info("outbox relay: no LISTEN connection (%s); polling only", scrub(str(exc)))
            return None

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _publish_until(self, stop: asyncio.Event, listener: asyncpg.Connection | None) -> None:
        while not stop.is_set():
            self._wake.clear()
            published = await self.publish_batch()
            if published < self._batch_size:
                await self.refresh_backlog()
                # A dead LISTEN connection costs only latency; polling goes on.
                await _wait_any(stop, self._wake, self._idle_wait if listener and not listener.is_closed() else
                                min(self._idle_wait, 0.5))  # fmt: skip

    async def publish_batch(self) -> int:
        """Renew the lease, then claim, publish and mark batches in one transaction. Returns the rows claimed.

        The batches are pipelined: the next batch is claimed and handed to the producer while up to `_IN_FLIGHT`
        earlier ones' acknowledgements are in flight; the oldest is marked by the next claim's statement once its
        acknowledgements are in, and that claim runs in PostgreSQL while the relay hands a batch to the producer.
        Per-aggregate order holds in the database as within one batch: the producer keeps send order per partition,
        a key refused or failed in one batch is not marked published in a later one nor sent in a batch handed over
        after the failure is known, and each claim starts above the rows already claimed. (Batches handed over
        before may still reach Kafka, ahead of the failed row's next attempt: consumers see the later event first.)
        The lease row stays locked by this transaction throughout, the round ends well inside the lease, and no batch
        is sent once the lease's local deadline has passed (a relay frozen mid-round wakes up and stops).

        Kafka gets a third of the lease to take and acknowledge the round's batches; waiting longer, the transaction
        outlived its idle limit and rolled back, and the whole outbox went out again round after round behind one
        partition without a leader. A partition that has not answered by then fails its events (each held back with
        its aggregate) and is stalled: its events are held back, not handed over, for `_STALL_SECONDS`. The round
        hands nothing more over and commits what was acknowledged. If Kafka acknowledged nothing at all, it is down
        rather than one partition: the round rolls back whole and the relay backs off, with no event marked failed.
        """
        producer = await self._ensure_producer()
        published_count = 0
        marked: list[tuple[list[OutboxRow], list[tuple[OutboxRow, BaseException]]]] = []
        async with self._db.acquire() as conn, conn.transaction():
            # A relay frozen mid-batch must not keep the lease row locked forever: the server ends its session.
            await conn.execute(_BATCH_SETTINGS + "SET LOCAL idle_in_transaction_session_timeout = "
                               f"{int(self._lease_seconds * 1000)}")  # fmt: skip
            started = time.monotonic()
            candidates = await self._renew(conn)
            lease_deadline = started + self._lease_seconds / 2
            kafka_deadline = started + self._lease_seconds / 3
            round_deadline = started + min(_ROUND_SECONDS, self._lease_seconds / 4)
            refused: set[str] = set()  # keys not to send any more in this round
            failed: set[str] = set()  # keys with a row that failed in this round: their later rows are retried
            in_flight: collections.deque[tuple[list[OutboxRow], list[object], list[_HandedOver]]] = collections.deque()
            claims = _Claims(conn, self._batch_size, round_deadline, candidates)
            unmarked: list[int] = []  # published, to be marked with the next claim
            answered, stalls = 0, self._stalls  # hand-overs Kafka answered (either way); partitions stalled before
            try:
                await claims.send([])
                rows = await claims.take()
                while True:
                    if rows:
                        # PostgreSQL claims the next batch (and marks what was published) while this one is handed
                        # over: the two used one core in turn, and left the other idle.
                        if await claims.send(unmarked):
                            unmarked = []
                        # Every send of this batch is handed to the producer, in order, before anything else is sent:
                        # per key, the producer keeps that order on the partition.
                        results, pending = await self._enqueue(producer, rows, refused, lease_deadline, kafka_deadline)
                        in_flight.append((rows, results, pending))
                        rows = []
                        if len(in_flight) < _IN_FLIGHT:
                            rows = await claims.take()  # the next batch before waiting for this one
                            continue
                    if not in_flight:
                        break
                    # The oldest batch in flight is marked first, so a key's failure is known before its later rows.
                    previous, results, pending = in_flight.popleft()
                    answered += await self._acks(results, pending, kafka_deadline)
                    published, retry = split_by_first_failure(previous, results, failed)
                    rows = await claims.take()  # the connection is free once the claim sent is in
                    if self._stalls > stalls:  # claimed, not handed over: they wait for the next round, unmarked
                        rows, claims.more = [], False
                    unmarked += [r.id for r in published]
                    if retry or not rows:  # failures need a statement of their own, or no claim is coming
                        await self._mark(conn, unmarked, retry)
                        unmarked = []
                    published_count += len(published)
                    refused |= failed
                    marked.append((published, retry))
                if self._stalls > stalls and not answered:
                    self._stalled.clear()  # not these partitions' fault: they are tried again once Kafka is back
                    raise RelayError(f"Kafka acknowledged none of the round's events within "
                                     f"{self._lease_seconds / 3:.0f} s; the round is sent again once it answers")
            finally:
                for _, _, pending in in_flight:  # only if the round failed: its rows stay unpublished, to go again
                    for handed in pending:
                        handed.ack.cancel()
                await claims.settle()
            claimed = claims.claimed
        self._published_batches += 1
        now = time.time()
        observe = self._metrics.outbox_commit_to_publish.observe
        for published, _ in marked:
            for row in published:
                observe(max(0.0, now - row.created_at))
        self._metrics.outbox_published.inc(published_count)
        retry = [r for _, rs in marked for r in rs]
        if retry:
            self._metrics.outbox_publish_failures.inc(len(retry))
            self.last_error = scrub(f"{retry[0][1]!r}")
            log.warning("outbox relay: %d of %d events not published, retried later (their aggregates wait): %s",
                        len(retry), claimed, self.last_error)  # fmt: skip
        return claimed

    async def _enqueue(
        self, producer: AIOKafkaProducer, rows: list[OutboxRow], refused: set[str], deadline: float = float("inf"),
        kafka_deadline: float = float("inf"),
    ) -> tuple[list[object], list[_HandedOver]]:
        """Hand the rows to the producer, in order, as record batches of one partition each: one future per batch
        rather than per record, which makes the producer's side of relaying about three times cheaper.

        A row refused at once (too large, its batch refused, its partition stalled) is not followed by its aggregate's
        later rows, which would otherwise overtake it; `refused` carries those keys from one batch of a round to the
        next. Past `deadline` (the process was frozen, say) it sends nothing more: the lease may be gone. A partition
        whose batch the producer has not taken by `kafka_deadline` (an earlier one is still waiting for a leader) is
        stalled."""
        results: list[object] = [None] * len(rows)
        pending: list[_HandedOver] = []
        filling: dict[tuple[str, int], tuple[BatchBuilder, list[int]]] = {}
        partitions: dict[str, list[int] | BaseException] = {}  # each topic's, looked up once per batch
        stalled = self._stalled
        if stalled:
            now = time.monotonic()
            for tp in [tp for tp, until in stalled.items() if until <= now]:
                del stalled[tp]

        def fail(indexes: list[int], error: BaseException) -> None:
            for i in indexes:
                results[i] = error
                refused.add(rows[i].aggregateid)

        async def submit(tp: tuple[str, int]) -> None:
            builder, indexes = filling.pop(tp)
            now = time.monotonic()
            if now >= deadline:
                raise LeaseLost(f"relay {self.holder} ran past its lease's deadline; publishing nothing more")
            if now >= kafka_deadline:  # a partition before this one kept the round waiting: no fault of these rows
                fail(indexes, RelayError("the round ran out of time before these events were handed to Kafka"))
                return
            builder.close()
            try:
                ack = await asyncio.wait_for(producer.send_batch(builder, tp[0], partition=tp[1]),
                                             kafka_deadline - now)  # fmt: skip
                pending.append(_HandedOver(tp, indexes, ack))
            except TimeoutError:
                fail(indexes, self._stall(tp))
            except Exception as exc:  # noqa: BLE001 - these rows' failure, kept with them
                fail(indexes, exc)

        for i, row in enumerate(rows):
            if row.aggregateid in refused:
                results[i] = RelayError("an earlier event of the same aggregate failed")
                continue
            key, value = row.aggregateid.encode(), row.payload.encode()
            headers = event_headers(row.type, row.event_version, row.event_id)
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > MAX_EVENT_BYTES:
                results[i] = MessageSizeTooLargeError(f"the event is {size} bytes serialized, more than the "
                                                      f"{MAX_EVENT_BYTES} bytes an event may be")  # fmt: skip
                refused.add(row.aggregateid)
                continue
            if row.topic not in partitions:
                try:
                    # Bounded: for a topic it does not have, aiokafka waits its whole request timeout (30 s), past
                    # the round's lease, and the round rolled back with every other row in it, round after round.
                    found = await asyncio.wait_for(producer.partitions_for(row.topic), _TOPIC_LOOKUP_SECONDS)
                    partitions[row.topic] = sorted(found)
                except TimeoutError:
                    partitions[row.topic] = RelayError(f"Kafka has no topic {row.topic} (no partitions known within "
                                                       f"{_TOPIC_LOOKUP_SECONDS:.0f} s); make it, and the row goes")
                except Exception as exc:  # noqa: BLE001 - a topic Kafka doesn't know fails its rows only
                    partitions[row.topic] = exc
            known = partitions[row.topic]
            if isinstance(known, BaseException):
                results[i] = known
                refused.add(row.aggregateid)
                continue
            tp = (row.topic, partition_for(key, known, ()))
            if stalled and tp in stalled:
                results[i] = RelayError(f"partition {tp[1]} of {tp[0]} did not acknowledge in time lately; its "
                                        f"events wait until it does (is its leader down?)")  # fmt: skip
                refused.add(row.aggregateid)
                continue
            batch = filling.get(tp)
            if batch is not None and batch[0].append(key=key, value=value, timestamp=None, headers=headers) is None:
                await submit(tp)  # full: a new batch takes the record
                batch = None
            if batch is None:  # the first record of a batch always fits
                batch = filling[tp] = (producer.create_batch(), [])
                batch[0].append(key=key, value=value, timestamp=None, headers=headers)
            batch[1].append(i)
        for tp in list(filling):
            await submit(tp)
        return results, pending

    async def _acks(self, results: list[object], pending: list[_HandedOver], deadline: float) -> int:
        """Fill in each handed-over row's acknowledgement, waiting for Kafka until `deadline` at most; returns how
        many batches Kafka answered. The partitions of the others are stalled."""
        answered = 0
        if pending:
            await asyncio.wait([h.ack for h in pending], timeout=max(0.0, deadline - time.monotonic()))
        for tp, indexes, ack in pending:
            if ack.cancelled():
                outcome = RelayError("the producer was stopped before Kafka acknowledged")
            elif ack.done():
                outcome = ack.exception() or ack.result()
                answered += 1
            else:
                ack.add_done_callback(_forget)  # Kafka may still answer; nobody is waiting for it any more
                outcome = self._stall(tp)
            for i in indexes:
                results[i] = outcome
        return answered

    def _stall(self, tp: tuple[str, int]) -> RelayError:
        """The round's summary logs the error returned (or the round's failure, if Kafka answered nothing)."""
        self._stalled[tp] = time.monotonic() + _STALL_SECONDS
        self._stalls += 1
        return RelayError(f"Kafka did not acknowledge partition {tp[1]} of {tp[0]} in time; its events are retried "
                          f"(is its leader down?)")  # fmt: skip

    async def _mark(
        self, conn: asyncpg.Connection, published: list[int], retry: list[tuple[OutboxRow, BaseException]]
    ) -> None:
        if published:
            await conn.execute(_MARK_PUBLISHED, published)
        if retry:
            await conn.execute(_MARK_FAILED, [r.id for r, _ in retry], scrub(repr(retry[0][1]))[:1000])

    async def refresh_backlog(self) -> tuple[int, float]:
        row = await self._db.fetchrow(_BACKLOG)
        self._metrics.outbox_backlog.set(row["backlog"])
        self._metrics.outbox_failing.set(row["failing"])
        self._metrics.outbox_oldest_age.set(float(row["oldest"]))
        return row["backlog"], float(row["oldest"])

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except Exception as exc:
                await producer.stop()
                raise RelayError(f"Kafka unreachable: {exc}") from exc
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        # A fresh producer gets a new producer id, so anything it re-sends is a duplicate for the inbox to absorb.
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - it is being thrown away
                log.debug("error stopping producer", exc_info=True)


def _forget(ack: asyncio.Future) -> None:
    if not ack.cancelled():
        ack.exception()  # retrieved, so a late failure is not reported as never retrieved


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

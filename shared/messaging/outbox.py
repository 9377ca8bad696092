"""Transactional outbox: events are written with the state change in one transaction; a relay publishes them.

The relay claims unpublished rows (`FOR UPDATE SKIP LOCKED`) instead of polling `id > last_seen`, so a row
whose transaction commits late is still published. LISTEN/NOTIFY only wakes it up early; it also polls.
If it dies between publishing and marking, the rows are published again: consumers' inboxes absorb that.

One relay per database publishes at a time, so one aggregate's events never race each other to Kafka. It holds a
lease (a row with a holder, an epoch and a deadline) that it renews inside every batch's transaction; a relay that
lost the lease (its connection died, it was paused past the deadline) finds out at its next batch and stops, and
a standby takes over within a lease period of a holder dying. A row that fails to publish holds back only the
later rows of its own aggregate, until its next attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.contracts.envelope import Envelope, event_headers
from shared.contracts.topics import topic_for
from shared.db import Database, delete_in_batches
from shared.observability import MessagingMetrics, scrub

log = logging.getLogger(__name__)

_COLUMNS = ("event_id", "aggregatetype", "aggregateid", "type", "event_version", "topic", "payload", "aggregate_version")
# Above this many rows a COPY beats a multi-row INSERT.
_COPY_THRESHOLD = 32


def _row(envelope: Envelope, topic: str) -> tuple:
    return (
        envelope.event_id,
        envelope.aggregate_type,
        envelope.aggregate_id,
        envelope.event_type,
        envelope.event_version,
        topic,
        envelope.model_dump_json(),
        envelope.aggregate_version,
    )


async def add_to_outbox(
    conn: asyncpg.Connection, envelopes: Sequence[Envelope], route: Callable[[Envelope], str] | None = None
) -> None:
    """Write events in the caller's transaction; they are published only if that transaction commits.

    Each goes to its aggregate's topic unless `route` says otherwise.
    """
    route = route or (lambda e: topic_for(e.aggregate_type))
    rows = [_row(e, route(e)) for e in envelopes]
    if not rows:
        return
    if len(rows) >= _COPY_THRESHOLD:
        await conn.copy_records_to_table("outbox", records=rows, columns=_COLUMNS)
    else:
        await conn.executemany(
            "INSERT INTO outbox (event_id, aggregatetype, aggregateid, type, event_version, topic, payload,"
            " aggregate_version) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
            rows,
        )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: object
    aggregateid: str
    type: str
    event_version: int
    topic: str
    payload: str
    created_at: float  # epoch seconds
    attempts: int = 0


# Rows due now whose aggregate has no earlier row waiting for a retry: a failing row holds back its own aggregate
# only, and the rest of the outbox flows past it.
_CLAIM = """
SELECT o.id, o.event_id, o.aggregateid, o.type, o.event_version, o.topic, o.payload::text AS payload,
       extract(epoch FROM o.created_at)::float8 AS created_at, o.attempts
  FROM outbox o
 WHERE o.published_at IS NULL
   AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
   AND NOT EXISTS (SELECT 1 FROM outbox h
                    WHERE h.published_at IS NULL AND h.aggregatetype = o.aggregatetype
                      AND h.aggregateid = o.aggregateid AND h.id < o.id AND h.next_attempt_at > now())
 ORDER BY o.id
 LIMIT $1
   FOR UPDATE OF o SKIP LOCKED
"""

_MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL, next_attempt_at = NULL"
    " WHERE id = ANY($1::bigint[])"
)
# Backoff doubles per attempt up to five minutes.
_MARK_FAILED = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
    " next_attempt_at = now() + make_interval(secs => least(300, power(2, least(attempts, 9)))::float8)"
    " WHERE id = ANY($1::bigint[])"
)
_BACKLOG = """
SELECT count(*) AS backlog,
       count(*) FILTER (WHERE last_error IS NOT NULL) AS failing,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest
  FROM outbox WHERE published_at IS NULL
"""
_LEASE_NAME = "outbox"
_TAKE_LEASE = """
UPDATE relay_lease SET holder = $2, epoch = epoch + 1, expires_at = now() + make_interval(secs => $3::float8)
 WHERE name = $1 AND (expires_at < now() OR holder = $2)
RETURNING epoch
"""
_RENEW_LEASE = """
UPDATE relay_lease SET expires_at = now() + make_interval(secs => $4::float8)
 WHERE name = $1 AND holder = $2 AND epoch = $3
RETURNING epoch
"""


class RelayError(RuntimeError):
    pass


class LeaseLost(RelayError):
    """Another relay holds the lease now: this one must stop publishing at once."""


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def split_by_first_failure(rows: Sequence[OutboxRow], results: Sequence[object]) -> tuple[list[OutboxRow], list[tuple[OutboxRow, BaseException]]]:
    """Rows safe to mark published, and rows to retry.

    After a failure for a key, that key's later rows are retried too (even if Kafka took them), so the
    retry can never deliver an older event after a newer one was marked done.
    """
    failed_keys: set[str] = set()
    published: list[OutboxRow] = []
    retry: list[tuple[OutboxRow, BaseException]] = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            failed_keys.add(row.aggregateid)
            retry.append((row, result))
        elif row.aggregateid in failed_keys:
            retry.append((row, RelayError("an earlier event of the same aggregate failed")))
        else:
            published.append(row)
    return published, retry


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

    async def _renew(self, conn: asyncpg.Connection) -> None:
        """Inside a batch's transaction: the row lock it takes keeps a standby out until the batch is done."""
        if self.epoch is None or await conn.fetchval(
            _RENEW_LEASE, _LEASE_NAME, self.holder, self.epoch, self._lease_seconds
        ) is None:  # fmt: skip
            self.epoch = None
            raise LeaseLost(f"relay {self.holder} lost the outbox lease to another relay")

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
        """Renew the lease, claim, publish and mark one batch in one transaction. Returns the rows claimed."""
        producer = await self._ensure_producer()
        async with self._db.acquire() as conn, conn.transaction():
            # A relay frozen mid-batch must not keep the lease row locked forever: the server ends its session.
            await conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {int(self._lease_seconds * 1000)}")
            await self._renew(conn)
            rows = [OutboxRow(**r) for r in await conn.fetch(_CLAIM, self._batch_size)]
            if not rows:
                return 0
            results = await self._send_all(producer, rows)
            published, retry = split_by_first_failure(rows, results)
            await self._mark(conn, published, retry)
        self._published_batches += 1
        now = time.time()
        for row in published:
            self._metrics.outbox_commit_to_publish.observe(max(0.0, now - row.created_at))
        self._metrics.outbox_published.inc(len(published))
        if retry:
            self._metrics.outbox_publish_failures.inc(len(retry))
            self.last_error = scrub(f"{retry[0][1]!r}")
            log.warning("outbox relay: %d of %d events not published, retried later (their aggregates wait): %s",
                        len(retry), len(rows), self.last_error)  # fmt: skip
        return len(rows)

    async def _send_all(self, producer: AIOKafkaProducer, rows: list[OutboxRow]) -> list[object]:
        """One result per row: its acknowledgement, or why it failed. A row refused at once (too large, say) is not
        followed by its aggregate's later rows, which would otherwise overtake it."""
        results: list[object] = [None] * len(rows)
        pending: list[tuple[int, asyncio.Future]] = []
        refused: set[str] = set()
        for i, row in enumerate(rows):
            if row.aggregateid in refused:
                results[i] = RelayError("an earlier event of the same aggregate failed")
                continue
            try:
                future = await producer.send(
                    row.topic,
                    value=row.payload.encode(),
                    key=row.aggregateid.encode(),
                    headers=event_headers(row.type, row.event_version, row.event_id),
                )
            except Exception as exc:  # noqa: BLE001 - this row's failure, kept with it
                results[i] = exc
                refused.add(row.aggregateid)
                continue
            pending.append((i, future))
        acks = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (i, _), ack in zip(pending, acks, strict=True):
            results[i] = ack
        return results

    async def _mark(
        self, conn: asyncpg.Connection, published: list[OutboxRow], retry: list[tuple[OutboxRow, BaseException]]
    ) -> None:
        if published:
            await conn.execute(_MARK_PUBLISHED, [r.id for r in published])
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


async def prune_published(db: Database, older_than: timedelta, batch: int = 5000) -> int:
    """Delete published rows older than the retention; unpublished rows are never touched."""
    return await delete_in_batches(
        db, "SELECT id FROM outbox WHERE published_at < now() - $1::interval ORDER BY id LIMIT $2", older_than,
        table="outbox", key="id", batch=batch,
    )  # fmt: skip


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

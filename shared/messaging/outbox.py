"""Transactional outbox: events are written with the state change in one transaction; a relay publishes them.

The relay claims unpublished rows (`FOR UPDATE SKIP LOCKED`) instead of polling `id > last_seen`, so a row
whose transaction commits late is still published. LISTEN/NOTIFY only wakes it up early; it also polls.
If it dies between publishing and marking, the rows are published again: consumers' inboxes absorb that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.contracts.envelope import Envelope, event_headers
from shared.contracts.topics import topic_for
from shared.observability import MessagingMetrics, scrub

log = logging.getLogger(__name__)

_COLUMNS = ("event_id", "aggregatetype", "aggregateid", "type", "event_version", "topic", "payload")
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
            "INSERT INTO outbox (event_id, aggregatetype, aggregateid, type, event_version, topic, payload)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
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


_CLAIM = """
SELECT id, event_id, aggregateid, type, event_version, topic, payload::text AS payload,
       extract(epoch FROM created_at)::float8 AS created_at
  FROM outbox
 WHERE published_at IS NULL
 ORDER BY id
 LIMIT $1
   FOR UPDATE SKIP LOCKED
"""

_MARK_PUBLISHED = "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])"
_MARK_FAILED = "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])"
_BACKLOG = (
    "SELECT count(*) AS backlog, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
    " FROM outbox WHERE published_at IS NULL"
)

# One relay per database publishes at a time, so events of one key never race each other to Kafka.
_RELAY_LEASE = 0x6F_75_74_62  # "outb"


class RelayError(RuntimeError):
    pass


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
        pool: asyncpg.Pool,
        dsn: str,
        producer_factory: Callable[[], AIOKafkaProducer],
        metrics: MessagingMetrics,
        batch_size: int = 500,
        idle_wait: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the relay lease and publish until `stop` is set; survives Kafka and database outages."""
        backoff = 0.5
        while not stop.is_set():
            lease: asyncpg.Connection | None = None
            try:
                lease = await asyncpg.connect(self._dsn)
                if not await lease.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LEASE):
                    await lease.close()
                    lease = None
                    await _wait(stop, self._idle_wait * 5)
                    continue
                self._metrics.relay_leader.set(1)
                await lease.add_listener("outbox", self._on_notify)
                await self._publish_until(stop, lease)
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage; it logs and backs off
                self.last_error = scrub(f"{type(exc).__name__}: {exc}")
                log.warning("outbox relay: %s; retrying in %.1fs", self.last_error, backoff)
                await self._drop_producer()
                await _wait(stop, backoff)
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                self._metrics.relay_leader.set(0)
                if lease is not None and not lease.is_closed():
                    await lease.close()
        await self._drop_producer()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _publish_until(self, stop: asyncio.Event, lease: asyncpg.Connection) -> None:
        while not stop.is_set():
            if lease.is_closed():
                raise RelayError("lost the relay lease connection")
            self._wake.clear()
            published = await self.publish_batch()
            if published < self._batch_size:
                await self.refresh_backlog()
                await _wait_any(stop, self._wake, self._idle_wait)

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch in one transaction. Returns the number of rows claimed."""
        producer = await self._ensure_producer()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = [OutboxRow(**r) for r in await conn.fetch(_CLAIM, self._batch_size)]
            if not rows:
                return 0
            results = await self._send_all(producer, rows)
            published, retry = split_by_first_failure(rows, results)
            await self._mark(conn, published, retry)
        now = time.time()
        for row in published:
            self._metrics.outbox_commit_to_publish.observe(max(0.0, now - row.created_at))
        self._metrics.outbox_published.inc(len(published))
        if retry:
            self._metrics.outbox_publish_failures.inc(len(retry))
            raise RelayError(f"{len(retry)} of {len(rows)} events not acknowledged by Kafka: {retry[0][1]!r}")
        return len(rows)

    async def _send_all(self, producer: AIOKafkaProducer, rows: list[OutboxRow]) -> list[object]:
        futures = []
        for row in rows:
            futures.append(
                await producer.send(
                    row.topic,
                    value=row.payload.encode(),
                    key=row.aggregateid.encode(),
                    headers=event_headers(row.type, row.event_version, row.event_id),
                )
            )
        return await asyncio.gather(*futures, return_exceptions=True)

    async def _mark(
        self, conn: asyncpg.Connection, published: list[OutboxRow], retry: list[tuple[OutboxRow, BaseException]]
    ) -> None:
        if published:
            await conn.execute(_MARK_PUBLISHED, [r.id for r in published])
        if retry:
            await conn.execute(_MARK_FAILED, [r.id for r, _ in retry], scrub(repr(retry[0][1]))[:1000])

    async def refresh_backlog(self) -> tuple[int, float]:
        row = await self._pool.fetchrow(_BACKLOG)
        self._metrics.outbox_backlog.set(row["backlog"])
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

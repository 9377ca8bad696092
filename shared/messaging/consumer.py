"""Consuming events safely: parse, apply once through the inbox, retry a bounded number of times, then dead-letter.

Offsets are committed by FastStream only after `handle` returns (AckPolicy.NACK_ON_ERROR), i.e. after the
database transaction committed or the record reached its dead-letter topic. `handle` raises only when the
database or Kafka is unreachable, and then the record is redelivered rather than dead-lettered.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.contracts.catalog import CATALOG, EventCatalog
from shared.contracts.envelope import ContractError, Envelope, EventPayload
from shared.contracts.topics import dlq
from shared.messaging.inbox import first_delivery
from shared.observability import MessagingMetrics, scrub

log = logging.getLogger(__name__)

# Handlers get the open transaction's connection: whatever they write commits with the inbox row.
Handler = Callable[[asyncpg.Connection, Envelope, EventPayload], Awaitable[None]]

# Failures of the infrastructure, not of the record: retried by redelivery, never dead-lettered.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


@dataclass(frozen=True, slots=True)
class Record:
    """What a consumer needs of a Kafka record; built from aiokafka's ConsumerRecord or by hand in tests."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    @classmethod
    def from_kafka(cls, record: object) -> Record:
        return cls(
            topic=record.topic,  # type: ignore[attr-defined]
            partition=record.partition,  # type: ignore[attr-defined]
            offset=record.offset,  # type: ignore[attr-defined]
            key=record.key,  # type: ignore[attr-defined]
            value=record.value,  # type: ignore[attr-defined]
            headers=tuple(record.headers or ()),  # type: ignore[attr-defined]
        )


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"


class DeadLetters(abc.ABC):
    @abc.abstractmethod
    async def send(self, record: Record, *, consumer: str, error: BaseException, attempts: int) -> None:
        """Put the original record on `<topic>.dlq` with why it failed; must raise if not acknowledged."""


def dead_letter_headers(record: Record, *, consumer: str, error: BaseException, attempts: int) -> list[tuple[str, bytes]]:
    reason = scrub(f"{type(error).__name__}: {error}")[:2000]
    return [
        *[(k, v) for k, v in record.headers if not k.startswith("dlq.")],
        ("dlq.original_topic", record.topic.encode()),
        ("dlq.original_partition", str(record.partition).encode()),
        ("dlq.original_offset", str(record.offset).encode()),
        ("dlq.consumer", consumer.encode()),
        ("dlq.error_type", type(error).__name__.encode()),
        ("dlq.error", reason.encode()),
        ("dlq.attempts", str(attempts).encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


class KafkaDeadLetters(DeadLetters):
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, record: Record, *, consumer: str, error: BaseException, attempts: int) -> None:
        # Awaiting the acknowledgement before returning means the offset is committed only once the
        # record is safe in the dead-letter topic.
        await self._producer.send_and_wait(
            dlq(record.topic),
            value=record.value,
            key=record.key,
            headers=dead_letter_headers(record, consumer=consumer, error=error, attempts=attempts),
        )


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        handlers: Mapping[str, Handler],
        dead_letters: DeadLetters,
        metrics: MessagingMetrics,
        max_attempts: int = 5,
        retry_backoff: float = 0.2,
        catalog: EventCatalog = CATALOG,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self._pool = pool
        self._handlers = dict(handlers)
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._retry_backoff = retry_backoff
        self._catalog = catalog
        self._sleep = sleep

    @property
    def event_types(self) -> list[str]:
        return sorted(self._handlers)

    async def handle(self, record: Record) -> Outcome:
        outcome = await self._handle(record)
        self._metrics.consumed.labels(self.name, outcome.value).inc()
        return outcome

    async def _handle(self, record: Record) -> Outcome:
        try:
            envelope = Envelope.from_bytes(record.value)
        except ContractError as exc:
            return await self._dead_letter(record, exc, attempts=1)
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            return Outcome.IGNORED  # an aggregate topic carries event types this consumer has no use for
        try:
            payload = self._catalog.decode(envelope)
        except ContractError as exc:
            return await self._dead_letter(record, exc, attempts=1)

        last_error: BaseException | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                outcome = await self._apply_once(envelope, payload, handler)
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("%s: database unreachable (%s); the record will be redelivered", self.name, scrub(str(exc)))
                await self._sleep(min(5.0, self._retry_backoff * 10))
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure is the record's, counted toward the DLQ
                last_error = exc
                self._metrics.retries.labels(self.name).inc()
                log.warning(
                    "%s: %s %s failed (attempt %d of %d): %s",
                    self.name,
                    envelope.event_type,
                    envelope.event_id,
                    attempt,
                    self._max_attempts,
                    scrub(f"{type(exc).__name__}: {exc}"),
                )
                if attempt < self._max_attempts:
                    await self._sleep(self._retry_backoff * 2 ** (attempt - 1))
                continue
            if outcome is Outcome.DUPLICATE:
                self._metrics.inbox_duplicates.labels(self.name).inc()
            else:
                self._metrics.event_age.labels(self.name).observe(
                    max(0.0, time.time() - envelope.occurred_at.timestamp())
                )
            return outcome
        assert last_error is not None
        return await self._dead_letter(record, last_error, attempts=self._max_attempts)

    async def handle_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Apply a batch in one transaction (one commit, one offset commit), in order.

        Any failure inside rolls the whole batch back and its records go through `handle` one by one, with their
        own retries and dead letters; records that can't be parsed or aren't for this consumer always do.
        """
        if len(records) == 1:
            return [await self.handle(records[0])]
        batch: list[tuple[int, Envelope, EventPayload, Handler]] = []
        alone: list[int] = []
        for i, record in enumerate(records):
            try:
                envelope = Envelope.from_bytes(record.value)
                handler = self._handlers.get(envelope.event_type)
                if handler is None:
                    raise ContractError("not for this consumer")
                batch.append((i, envelope, self._catalog.decode(envelope), handler))
            except ContractError:
                alone.append(i)
        outcomes: dict[int, Outcome] = {}
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for i, envelope, payload, handler in batch:
                    if await first_delivery(conn, self.name, envelope):
                        await handler(conn, envelope, payload)
                        outcomes[i] = Outcome.PROCESSED
                    else:
                        outcomes[i] = Outcome.DUPLICATE
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("%s: database unreachable (%s); the batch will be redelivered", self.name, scrub(str(exc)))
            await self._sleep(min(5.0, self._retry_backoff * 10))
            raise
        except Exception as exc:  # noqa: BLE001 - find the failing record by taking them one at a time
            log.info("%s: batch of %d failed (%s); applying one by one", self.name, len(batch), scrub(repr(exc)))
            outcomes = {}
            alone = list(range(len(records)))
        now = time.time()
        for i, envelope, _, _ in batch:
            if i in outcomes:
                self._metrics.consumed.labels(self.name, outcomes[i].value).inc()
                if outcomes[i] is Outcome.DUPLICATE:
                    self._metrics.inbox_duplicates.labels(self.name).inc()
                else:
                    self._metrics.event_age.labels(self.name).observe(max(0.0, now - envelope.occurred_at.timestamp()))
        for i in alone:
            outcomes[i] = await self.handle(records[i])
        return [outcomes[i] for i in range(len(records))]

    async def _apply_once(self, envelope: Envelope, payload: EventPayload, handler: Handler) -> Outcome:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await first_delivery(conn, self.name, envelope):
                return Outcome.DUPLICATE
            await handler(conn, envelope, payload)
        return Outcome.PROCESSED

    async def _dead_letter(self, record: Record, error: BaseException, *, attempts: int) -> Outcome:
        await self._dead_letters.send(record, consumer=self.name, error=error, attempts=attempts)
        self._metrics.dead_lettered.labels(self.name, record.topic).inc()
        log.error(
            "%s: record %s[%d]@%d sent to %s: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            dlq(record.topic),
            scrub(f"{type(error).__name__}: {error}"),
        )
        return Outcome.DEAD_LETTERED

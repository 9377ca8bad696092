"""The unit of work every service's handlers use: one transaction whose commit writes the events it caused.

Handlers have one shape in every service: `async def handle(message, uow, deps)`. They change state through the
unit of work's stores and `emit` domain events; at commit the service's translator turns those into the shared
contracts, which go to the outbox (and the audit trail) in the same transaction. The fakes in unit tests
subclass `UnitOfWork` too.
"""

from __future__ import annotations

import abc
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

import asyncpg

from shared.contracts.envelope import Envelope, EventPayload, new_envelope
from shared.contracts.topics import is_public
from shared.db import Database
from shared.messaging import audit
from shared.messaging.audit import AuditEntry
from shared.messaging.consumer import Apply, BatchTransaction, Delivery
from shared.messaging.outbox import COPY_FROM, add_to_outbox, add_with_audit, outbox_rows

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a unit of work runs (a request, an event, or time passing) and on whose behalf: carried into the
    metadata of every event it writes and into the audit trail."""

    correlation_id: uuid.UUID
    actor: str
    causation_id: uuid.UUID | None = None
    occurred_at: datetime | None = None  # of the event that caused it

    @classmethod
    def request(cls, correlation_id: uuid.UUID, actor: str) -> Cause:
        return cls(correlation_id, actor)

    @classmethod
    def event(cls, envelope: Envelope) -> Cause:
        """Work an event causes is done on behalf of whoever made that event happen."""
        return cls(envelope.correlation_id, envelope.actor or envelope.producer, envelope.event_id, envelope.occurred_at)

    @classmethod
    def delivery(cls, delivery: Delivery) -> Cause:
        return cls.event(delivery.envelope)

    @classmethod
    def timer(cls, service: str) -> Cause:
        """Work done because time passed (offers expiring, a sweep): the service itself is the actor."""
        return cls(uuid.uuid4(), service)


@dataclass(frozen=True)
class Publisher(Generic[E]):
    """How one service's domain events become envelopes on its topics."""

    producer: str
    translate: Callable[[E], Sequence[EventPayload]]
    route: Callable[[Envelope], str]

    def envelopes(self, events: Sequence[E], causes: Sequence[Cause]) -> list[Envelope]:
        return list(self.each_envelope(events, causes))

    def each_envelope(self, events: Sequence[E], causes: Sequence[Cause]) -> Iterator[Envelope]:
        """The envelopes one at a time, so the outbox can take the first while the rest are being made.

        The copies every partner reads come after all of the unit of work's other events, each stream in its own
        order: the relay publishes in outbox order, and a pledge matched against a city had owners' offers wait
        behind as many partner copies, interleaved, before the last of them reached the notifier."""
        public: list[tuple[EventPayload, Cause]] = []
        for event, cause in zip(events, causes, strict=True):
            for payload in self.translate(event):
                if is_public(payload.aggregate_type):
                    public.append((payload, cause))
                else:
                    yield self._envelope(payload, cause)
        for payload, cause in public:
            yield self._envelope(payload, cause)

    def _envelope(self, payload: EventPayload, cause: Cause) -> Envelope:
        return new_envelope(payload, producer=self.producer, correlation_id=cause.correlation_id,
                            causation_id=cause.causation_id, actor=cause.actor)  # fmt: skip



class UnitOfWork(abc.ABC, Generic[E]):
    """One transaction: the changes and the events they cause are committed together, or neither is."""

    def __init__(self, cause: Cause | None = None) -> None:
        self.cause = cause or Cause(uuid.uuid4(), "unknown")
        self.events: list[E] = []
        self.causes: list[Cause] = []  # each event's cause, in step with `events`
        self.audited: list[AuditEntry] = []
        self._after_commit: list[Callable[[], None]] = []

    def emit(self, *events: E) -> None:
        self.events.extend(events)
        self.causes.extend(self.cause for _ in events)

    @contextlib.contextmanager
    def caused_by(self, cause: Cause) -> Iterator[None]:
        """Events emitted inside are caused by `cause`: a consumer applying a batch says which event each answers."""
        outer, self.cause = self.cause, cause
        try:
            yield
        finally:
            self.cause = outer

    def audit(self, action: str, aggregate_type: str, aggregate_id: object) -> None:
        """Record in the audit trail something that changes nothing but must be accounted for (a NIK revealed)."""
        self.audited.append(AuditEntry(self.cause.actor, action, aggregate_type, str(aggregate_id),
                                       self.cause.correlation_id))  # fmt: skip

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run once the changes are durable: metrics must not count work that a rollback undid."""
        self._after_commit.append(callback)

    async def __aenter__(self) -> Self:
        self.events, self.causes, self.audited, self._after_commit = [], [], [], []
        await self._begin()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rollback()  # after a commit there is nothing left to roll back; without one, nothing is kept

    async def commit(self) -> None:
        events, causes, self.events, self.causes = self.events, self.causes, [], []
        audited, self.audited = self.audited, []
        callbacks, self._after_commit = self._after_commit, []
        await self._commit(events, causes, audited, callbacks)

    async def _begin(self) -> None:
        """Open the transaction and the stores over it."""

    @abc.abstractmethod
    async def _commit(
        self, events: list[E], causes: list[Cause], audited: list[AuditEntry], callbacks: list[Callable[[], None]]
    ) -> None: ...

    @abc.abstractmethod
    async def rollback(self) -> None: ...


class PgUnitOfWork(UnitOfWork[E]):
    """A unit of work on PostgreSQL: it owns a pooled connection and transaction, or joins a consumer's batch
    transaction (then the consumer commits the effects, the inbox rows and the outbox rows together)."""

    def __init__(self, on: Database | BatchTransaction, publisher: Publisher[E], cause: Cause) -> None:
        super().__init__(cause)
        self._db = on if isinstance(on, Database) else None
        self._joined = on if isinstance(on, BatchTransaction) else None
        self._publisher = publisher
        self._conn: asyncpg.Connection | None = None
        self._tx: asyncpg.transaction.Transaction | None = None

    @abc.abstractmethod
    def bind(self, conn: asyncpg.Connection) -> None:
        """Create the service's stores over this connection."""

    async def _begin(self) -> None:
        if self._joined is not None:
            self._conn = self._joined.conn
        else:
            assert self._db is not None
            self._conn = await self._db.connect()
            try:
                self._tx = self._conn.transaction()
                await self._tx.start()
            except BaseException:
                await self._release()
                raise
        self.bind(self._conn)

    async def _commit(
        self, events: list[E], causes: list[Cause], audited: list[AuditEntry], callbacks: list[Callable[[], None]]
    ) -> None:
        assert self._conn is not None, "enter the unit of work first"
        envelopes: list[Envelope]
        if len(events) < COPY_FROM:
            envelopes = self._publisher.envelopes(events, causes)
            await add_with_audit(self._conn, outbox_rows(envelopes, self._publisher.route),
                                 audit.rows_of(envelopes, audited))  # fmt: skip
        else:
            # Many events: the database writes the first outbox rows while the rest are still being made.
            envelopes = []
            await add_to_outbox(self._conn, _keeping(self._publisher.each_envelope(events, causes), envelopes),
                                self._publisher.route)  # fmt: skip
            await audit.record(self._conn, envelopes, audited)
        if self._joined is not None:
            self._joined.after_commit.extend(callbacks)
            return
        tx, self._tx = self._tx, None
        try:
            assert tx is not None
            await tx.commit()
        finally:
            await self._release()  # on every path, a failed COMMIT included
        for callback in callbacks:
            callback()

    async def rollback(self) -> None:
        tx, self._tx = self._tx, None
        if tx is None:
            return
        try:
            await tx.rollback()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass  # the connection broke; releasing it makes the pool discard it
        finally:
            await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._db is not None:
            await self._db.release(conn)


def _keeping(envelopes: Iterator[Envelope], kept: list[Envelope]) -> Iterator[Envelope]:
    for envelope in envelopes:
        kept.append(envelope)
        yield envelope


UoW = TypeVar("UoW", bound=UnitOfWork)
Handler = Callable[[Any, UoW, Any], Awaitable[object]]


def one_by_one(
    handlers: Mapping[type[EventPayload], Handler], unit_of_work: Callable[[BatchTransaction, Cause], UoW], deps: Any
) -> Apply:
    """A consumer that hands each new event of a batch to the handler of its contract, in order, each in a unit of
    work joined to the consumer's transaction and caused by that event."""

    async def apply(tx: BatchTransaction, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            await handlers[type(delivery.payload)](delivery.payload, unit_of_work(tx, Cause.delivery(delivery)), deps)

    return apply


BatchHandler = Callable[[Sequence[Delivery], UoW, Any], Awaitable[object]]


def whole_batch(handle: BatchHandler, unit_of_work: Callable[[BatchTransaction, Cause], UoW], deps: Any) -> Apply:
    """A consumer that hands the batch's new events to one handler at once (it sorts out what each event means), in
    a unit of work joined to the consumer's transaction and caused by the batch's first event."""

    async def apply(tx: BatchTransaction, batch: Sequence[Delivery]) -> None:
        await handle(batch, unit_of_work(tx, Cause.delivery(batch[0])), deps)

    return apply

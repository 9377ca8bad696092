"""In-memory fakes of the notifier's store and unit of work, the messaging abstractions and the clocks, shared by the
unit tests: no database, no Kafka, no waiting. (The registry's fakes are in registry_fakes.py, funding's in
funding_fakes.py.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from services.notifier.domain.messages import Contact, Message
from services.notifier.store import NotifierStore, NotifierUnitOfWork
from shared.contracts import CATALOG, EventCatalog
from shared.messaging.audit import AuditEntry
from shared.messaging.consumer import Apply, BatchTransaction, Delivery, EventConsumer, Outcome, RetryPolicy
from shared.messaging.dead_letters import DeadLetters, Record
from shared.observability import MessagingMetrics
from shared.unit_of_work import Cause, UnitOfWork

# ---------------------------------------------------------------------------------------------------------------
# Units of work over fake stores
# ---------------------------------------------------------------------------------------------------------------


class SnapshotUnitOfWork(UnitOfWork[Any]):
    """A unit of work over a fake store that can snapshot() and restore() its state: entering takes a snapshot,
    committing keeps the changes (and hands what was committed to `record`), leaving without a commit restores
    the snapshot. Each service's fake subclasses this and the service's own unit of work."""

    def __init__(self, cause: Cause | None = None) -> None:
        super().__init__(cause)
        self.begun = 0
        self.commits = 0
        self.rollbacks = 0
        self._before: Any = None

    @property
    def snapshotted(self) -> Any:
        """The fake store whose state a rollback restores."""
        raise NotImplementedError

    def record(self, events: list[Any], causes: list[Cause], audited: list[AuditEntry]) -> None:
        """What a commit would write besides the changes: the outbox and the audit trail."""

    async def _begin(self) -> None:
        self.begun += 1
        self._before = self.snapshotted.snapshot()

    async def _commit(
        self, events: list[Any], causes: list[Cause], audited: list[AuditEntry], callbacks: list[Callable[[], None]]
    ) -> None:
        assert self._before is not None, "enter the unit of work first"
        self.record(events, causes, audited)
        self.commits += 1
        self._before = None
        for callback in callbacks:
            callback()

    async def rollback(self) -> None:
        if self._before is not None:
            self.snapshotted.restore(self._before)
            self.rollbacks += 1
            self._before = None


# ---------------------------------------------------------------------------------------------------------------
# Notifier
# ---------------------------------------------------------------------------------------------------------------


class FakeNotifierStore(NotifierStore):
    """Contacts and messages in a dict and a list, with the same rules as the SQL: a contact is only replaced by a
    newer business_version, and one event yields a given template's message at most once."""

    def __init__(self) -> None:
        self.contacts: dict[uuid.UUID, Contact] = {}
        self.messages: list[Message] = []

    # State snapshots, used by FakeNotifierUnitOfWork to roll back. Contacts and messages are frozen dataclasses.
    def snapshot(self) -> tuple[dict[uuid.UUID, Contact], list[Message]]:
        return dict(self.contacts), list(self.messages)

    def restore(self, state: tuple[dict[uuid.UUID, Contact], list[Message]]) -> None:
        self.contacts, self.messages = dict(state[0]), list(state[1])

    async def contact(self, business_id: uuid.UUID) -> Contact | None:
        return self.contacts.get(business_id)

    async def save_contact(self, contact: Contact) -> None:
        current = self.contacts.get(contact.business_id)
        if current is None or current.business_version < contact.business_version:
            self.contacts[contact.business_id] = contact

    async def add_message(self, message: Message) -> bool:
        if any(m.event_id == message.event_id and m.template == message.template for m in self.messages):
            return False
        self.messages.append(message)
        return True

    async def address_waiting(self, contact: Contact) -> int:
        waiting = [i for i, m in enumerate(self.messages)
                   if m.business_id == contact.business_id and m.recipient_phone is None and m.audience == "owner"]  # fmt: skip
        for i in waiting:
            self.messages[i] = replace(self.messages[i], recipient_phone=contact.phone)
        return len(waiting)


class FakeNotifierUnitOfWork(SnapshotUnitOfWork, NotifierUnitOfWork):
    """A transaction over a FakeNotifierStore: commit keeps the changes and runs the after-commit callbacks;
    leaving without a commit restores the store as it was when the unit of work was entered."""

    def __init__(self, store: FakeNotifierStore | None = None, cause: Cause | None = None) -> None:
        super().__init__(cause)
        self.store: FakeNotifierStore = store if store is not None else FakeNotifierStore()
        self.committed_events: list[object] = []
        self.committed_audit: list[AuditEntry] = []

    @property
    def snapshotted(self) -> FakeNotifierStore:
        return self.store

    def record(self, events: list[Any], causes: list[Cause], audited: list[AuditEntry]) -> None:
        self.committed_events.extend(events)
        self.committed_audit.extend(audited)


# ---------------------------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class FixedClock:
    """A wall clock that says what it is told to."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


@dataclass
class ManualMonotonic:
    """Stands in for time.monotonic: seconds that pass only when a RecordingSleep sleeps on it."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingSleep:
    """Stands in for asyncio.sleep: records each delay asked for and returns at once, moving its monotonic clock
    on by the delay, as a real sleep would."""

    clock: ManualMonotonic = field(default_factory=ManualMonotonic)
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.now += seconds


# ---------------------------------------------------------------------------------------------------------------
# Messaging
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Record
    consumer: str
    error: BaseException
    attempts: int


class FakeDeadLetters(DeadLetters):
    """The dead-letter topic as a list. Given `unreachable`, every send raises it (Kafka did not acknowledge)."""

    def __init__(self, unreachable: BaseException | None = None) -> None:
        self.sent: list[DeadLetter] = []
        self.unreachable = unreachable

    async def send(self, record: Record, *, consumer: str, error: BaseException, attempts: int) -> None:
        if self.unreachable is not None:
            raise self.unreachable
        self.sent.append(DeadLetter(record, consumer, error, attempts))


class InMemoryInboxConsumer(EventConsumer):
    """An EventConsumer whose database is a set of event ids: `_once` is the seam between the consumer's retry and
    dead-letter logic and its transaction, and this one does what the PostgreSQL one does, in memory. The inbox
    rows of a transaction are kept only if `apply` succeeds (as a rolled-back insert would be), and the
    transaction's after-commit callbacks run only then. `apply` gets a BatchTransaction whose connection is None.

    `outages` are raised by the "database" itself, one per transaction, before anything else happens (the
    database down, a failover, a rotated password), until the list is empty."""

    def __init__(self, *, outages: Sequence[BaseException] = (), **kwargs: Any) -> None:
        super().__init__(db=None, **kwargs)  # type: ignore[arg-type]
        self.inbox: set[uuid.UUID] = set()
        self.outages = list(outages)
        self.transactions = 0
        self.commits = 0

    async def _once(self, work: list[Any]) -> dict[int, Outcome]:
        self.transactions += 1
        if self.outages:
            raise self.outages.pop(0)
        fresh = {item.envelope.event_id for item in work} - self.inbox
        applied: dict[int, Outcome] = {}
        deliveries: list[Delivery] = []
        for item in work:
            event_id = item.envelope.event_id
            if event_id in fresh:
                fresh.discard(event_id)  # the same event twice in one batch applies once
                deliveries.append(Delivery(item.envelope, item.payload))
                applied[item.index] = Outcome.PROCESSED
            else:
                applied[item.index] = Outcome.DUPLICATE
        tx = BatchTransaction(conn=None)  # type: ignore[arg-type]
        if deliveries:
            async with asyncio.timeout(self._policy.handler_timeout):
                await self._apply(tx, deliveries)
        # Committed: the inbox rows are kept, then the callbacks run.
        self.inbox.update(d.envelope.event_id for d in deliveries)
        self.commits += 1
        for callback in tx.after_commit:
            callback()
        return applied


def new_consumer(
    apply: Apply,
    event_types: Collection[str],
    *,
    dead_letters: FakeDeadLetters | None = None,
    sleep: RecordingSleep | None = None,
    policy: RetryPolicy = RetryPolicy(),
    catalog: EventCatalog = CATALOG,
    metrics: MessagingMetrics | None = None,
    outages: Sequence[BaseException] = (),
    name: str = "unit-test",
) -> InMemoryInboxConsumer:
    """A consumer with an in-memory inbox; its `sleep` and `clock` are the given RecordingSleep and its clock."""
    sleep = sleep if sleep is not None else RecordingSleep()
    return InMemoryInboxConsumer(
        name=name,
        apply=apply,
        event_types=event_types,
        dead_letters=dead_letters if dead_letters is not None else FakeDeadLetters(),
        metrics=metrics if metrics is not None else MessagingMetrics(CollectorRegistry()),
        policy=policy,
        catalog=catalog,
        sleep=sleep,
        clock=sleep.clock,
        outages=outages,
    )

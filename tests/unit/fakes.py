"""In-memory fakes of the project's abstractions, shared by the unit tests: no database, no Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from services.notifier.domain import Contact, Message
from services.notifier.store import NotifierStore
from services.registry.domain import Business, DomainEvent, DuplicateCandidate, NibApplication, name_key
from services.registry.store import BusinessStore, StoredIdentity, UnitOfWork
from shared.contracts import CATALOG, Envelope, EventCatalog, EventPayload
from shared.messaging.consumer import DeadLetters, EventConsumer, Handler, Outcome, Record
from shared.observability import MessagingMetrics

# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


class FakeBusinessStore(BusinessStore):
    """The registry's tables as dicts. Values are frozen dataclasses, so copying the dicts snapshots the state."""

    def __init__(self) -> None:
        self.businesses: dict[uuid.UUID, Business] = {}
        self.identities: dict[uuid.UUID, StoredIdentity] = {}
        self.sources: dict[uuid.UUID, str] = {}
        self.applications: dict[uuid.UUID, NibApplication] = {}
        self.identity_locks = 0

    # State snapshots, used by FakeUnitOfWork to roll back.
    def snapshot(self) -> tuple[dict[Any, Any], ...]:
        return dict(self.businesses), dict(self.identities), dict(self.sources), dict(self.applications)

    def restore(self, state: tuple[dict[Any, Any], ...]) -> None:
        self.businesses, self.identities, self.sources, self.applications = (dict(s) for s in state)

    async def lock_identities(self) -> None:
        self.identity_locks += 1

    async def duplicate_candidates(
        self, nik_digests: Sequence[bytes], phones: Sequence[str]
    ) -> list[tuple[bytes, str, DuplicateCandidate]]:
        digests, phone_set = set(nik_digests), set(phones)
        found = []
        for business_id, business in self.businesses.items():
            digest = self.identities[business_id].digest
            if digest in digests or business.phone in phone_set:
                candidate = DuplicateCandidate(
                    business_id, business.business_name, digest in digests, business.phone in phone_set, business.status
                )
                found.append((digest, business.phone, candidate))
        return found

    async def add(self, businesses: Sequence[tuple[Business, StoredIdentity, str]]) -> None:
        for business, identity, source in businesses:
            if business.id in self.businesses:
                raise AssertionError(f"business {business.id} inserted twice")
            if business.nib is not None and any(b.nib == business.nib for b in self.businesses.values()):
                raise AssertionError(f"NIB {business.nib} would violate the unique constraint")
            self.businesses[business.id] = business
            self.identities[business.id] = identity
            self.sources[business.id] = source

    async def get(self, business_id: uuid.UUID, *, for_update: bool = False) -> Business | None:
        return self.businesses.get(business_id)

    async def get_many_by_identity(self, keys: Sequence[tuple[bytes, str]]) -> dict[tuple[bytes, str], Business]:
        wanted = set(keys)
        found: dict[tuple[bytes, str], Business] = {}
        for business_id in sorted(self.businesses):
            business = self.businesses[business_id]
            key = (self.identities[business_id].digest, name_key(business.business_name))
            if key in wanted:
                found.setdefault(key, business)
        return found

    async def save(self, business: Business) -> None:
        if business.id not in self.businesses:
            raise AssertionError(f"saving business {business.id}, which was never added")
        self.businesses[business.id] = business

    async def nib_holders(self, nibs: Sequence[str]) -> dict[str, uuid.UUID]:
        wanted = set(nibs)
        return {b.nib: b.id for b in self.businesses.values() if b.nib is not None and b.nib in wanted}

    async def pending_application(self, business_id: uuid.UUID) -> NibApplication | None:
        for application in self.applications.values():
            if application.business_id == business_id and application.status == "pending":
                return application
        return None

    async def get_application(self, application_id: uuid.UUID) -> NibApplication | None:
        return self.applications.get(application_id)

    async def save_application(self, application: NibApplication) -> None:
        self.applications[application.id] = application

    async def nik_ciphertext(self, business_id: uuid.UUID) -> bytes | None:
        identity = self.identities.get(business_id)
        return identity.ciphertext if identity else None


class FakeUnitOfWork(UnitOfWork):
    """A transaction over a FakeBusinessStore: commit keeps the changes and publishes the events to `committed`
    (and, given a translator, their envelopes to `outbox`); leaving without commit restores the state."""

    def __init__(
        self,
        store: FakeBusinessStore | None = None,
        translate: Callable[[list[DomainEvent], uuid.UUID], list[Envelope]] | None = None,
    ) -> None:
        super().__init__()
        self.businesses = store if store is not None else FakeBusinessStore()
        self._translate = translate
        self.correlation_id = uuid.uuid4()
        self.committed: list[DomainEvent] = []
        self.outbox: list[Envelope] = []
        self.commits = 0
        self.rollbacks = 0
        self._before: tuple[dict[Any, Any], ...] | None = None

    @property
    def store(self) -> FakeBusinessStore:
        assert isinstance(self.businesses, FakeBusinessStore)
        return self.businesses

    async def __aenter__(self) -> FakeUnitOfWork:
        await super().__aenter__()
        self._before = self.store.snapshot()
        return self

    async def commit(self) -> None:
        if self._translate is not None:
            self.outbox.extend(self._translate(list(self.events), self.correlation_id))
        self.committed.extend(self.events)
        self.commits += 1
        self._before = None

    async def rollback(self) -> None:
        if self._before is not None:
            self.store.restore(self._before)
            self.rollbacks += 1
            self._before = None


# ---------------------------------------------------------------------------------------------------------------
# Notifier
# ---------------------------------------------------------------------------------------------------------------


class FakeNotifierStore(NotifierStore):
    """Contacts and messages in dicts, with the same rules as the SQL: a contact is only replaced by a newer
    business_version, and one event yields a given template's message at most once."""

    def __init__(self) -> None:
        self.contacts: dict[uuid.UUID, Contact] = {}
        self.messages: list[Message] = []

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
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    async def send(self, record: Record, *, consumer: str, error: BaseException, attempts: int) -> None:
        self.sent.append(DeadLetter(record, consumer, error, attempts))


@dataclass
class RecordingSleep:
    """Stands in for asyncio.sleep: records each delay asked for and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class InMemoryInboxConsumer(EventConsumer):
    """An EventConsumer whose inbox is a set of event ids instead of a table: `_apply_once` is the seam between
    the consumer's retry/dead-letter logic and its database transaction. Handlers get `None` as connection."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(pool=None, **kwargs)  # type: ignore[arg-type]
        self.applied: set[uuid.UUID] = set()

    async def _apply_once(self, envelope: Envelope, payload: EventPayload, handler: Handler) -> Outcome:
        if envelope.event_id in self.applied:
            return Outcome.DUPLICATE
        await handler(None, envelope, payload)  # type: ignore[arg-type]
        self.applied.add(envelope.event_id)  # only when the handler succeeded, as a rolled-back inbox row would
        return Outcome.PROCESSED


def new_consumer(
    handlers: Mapping[str, Handler],
    *,
    dead_letters: FakeDeadLetters | None = None,
    sleep: RecordingSleep | None = None,
    max_attempts: int = 5,
    retry_backoff: float = 0.2,
    catalog: EventCatalog = CATALOG,
    metrics: MessagingMetrics | None = None,
    name: str = "unit-test",
) -> InMemoryInboxConsumer:
    return InMemoryInboxConsumer(
        name=name,
        handlers=handlers,
        dead_letters=dead_letters if dead_letters is not None else FakeDeadLetters(),
        metrics=metrics if metrics is not None else MessagingMetrics(CollectorRegistry()),
        max_attempts=max_attempts,
        retry_backoff=retry_backoff,
        catalog=catalog,
        sleep=sleep if sleep is not None else RecordingSleep(),
    )


# ---------------------------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class FixedClock:
    """A clock that says what it is told to."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

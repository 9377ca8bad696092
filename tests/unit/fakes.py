"""In-memory fakes of the notifier's store and unit of work, the messaging abstractions and the clocks, shared by the
unit tests: no database, no Kafka, no waiting. (The registry's fakes are in registry_fakes.py, funding's in
funding_fakes.py.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from services.notifier.domain.consent import Preference
from services.notifier.domain.delivery import NUMBER_CHANGED, WITHHELD
from services.notifier.domain.delivery import Delivery as NotifierDelivery
from services.notifier.domain.digest import OfferFact, PledgeFact
from services.notifier.domain.messages import Contact, Message
from services.notifier.domain.ratelimit import Bucket
from services.notifier.store import NotifierStore, NotifierUnitOfWork, Outgoing, Stranded
from shared.contracts import CATALOG, EventCatalog
from shared.messaging.audit import AuditEntry
from shared.messaging.catch_up import CatchUp, TopicPartition
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
    """Everything the notifier keeps, in dicts and lists, with the same rules as the SQL: a contact is only replaced
    by a newer business_version; one event yields a given template's message at most once; one delivery per
    (message, channel, recipient); a claim takes queued, due rows in order and marks them sending with one more
    attempt; a stranded row is a sending one whose lease ran out.

    `clock` is the database's: leases are set and run out by it, as PostgreSQL's clock decides them for the real
    store, whatever the clock of the worker asking. A test moves it to let a lease run out; one that shares it with
    its workers has them agree with the database, as on one host."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock: Callable[[], datetime] = clock if clock is not None else FixedClock()
        self.contacts: dict[uuid.UUID, Contact] = {}
        self.messages: list[Message] = []
        self.message_status: dict[uuid.UUID, tuple[str, str]] = {}  # message id -> (status, channel)
        self.deliveries: dict[uuid.UUID, NotifierDelivery] = {}
        self.leases: dict[uuid.UUID, tuple[str, datetime]] = {}  # delivery id -> (holder, lease until)
        self.attempts: dict[tuple[uuid.UUID, int], tuple[str, str | None, str | None]] = {}  # -> (holder, outcome, detail)
        self.local_outbox: dict[uuid.UUID, tuple[str, str | None, str]] = {}
        self.status_reports: list[tuple[str, str, str, uuid.UUID | None]] = []
        self.preferences: dict[str, Preference] = {}
        self.consent: list[tuple[str, str, str]] = []
        self.consent_said: dict[str, datetime] = {}
        self.consent_received: list[tuple[str, datetime]] = []
        self.officers: dict[uuid.UUID, tuple[str, str, tuple[str, ...]]] = {}
        self.sponsor_contacts: dict[uuid.UUID, str] = {}
        self.pledges: dict[uuid.UUID, PledgeFact] = {}
        self.offers: dict[uuid.UUID, OfferFact] = {}
        self.buckets: dict[str, Bucket] = {}
        # (businesses, changing) as each was held: a tuple, so a rollback (which restores lists and dicts) keeps it
        self.owners_held: tuple[tuple[frozenset[uuid.UUID], bool], ...] = ()

    # State snapshots, used by FakeNotifierUnitOfWork to roll back. The state is every list and dict (their values are
    # frozen dataclasses or tuples); the clock is not state, and a rollback leaves it alone.
    def snapshot(self) -> dict[str, Any]:
        return {name: (list(value) if isinstance(value, list) else dict(value)) for name, value in vars(self).items()
                if isinstance(value, list | dict)}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, list(value) if isinstance(value, list) else dict(value))

    # --- contacts and messages -------------------------------------------------------------------------------

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
        self.message_status[message.id] = ("waiting", message.channel)
        return True

    async def recorded_since(self, event_ids: Collection[uuid.UUID], template: str, since: datetime) -> bool:
        return any(m.event_id in event_ids and m.template == template and m.created_at >= since for m in self.messages)

    async def address_waiting(self, contact: Contact) -> list[Message]:
        waiting = [i for i, m in enumerate(self.messages)
                   if m.business_id == contact.business_id and m.recipient_phone is None and m.audience == "owner"]  # fmt: skip
        for i in waiting:
            self.messages[i] = replace(self.messages[i], recipient_phone=contact.phone)
        return [self.messages[i] for i in waiting]

    async def message(self, message_id: uuid.UUID) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    async def set_message_status(self, message_id: uuid.UUID, status: str, channel: str, now: datetime) -> None:
        self.message_status[message_id] = (status, channel)
        index = next(i for i, m in enumerate(self.messages) if m.id == message_id)
        self.messages[index] = replace(self.messages[index], channel=channel)

    def status_of(self, message: Message) -> str:
        return self.message_status[message.id][0]

    # --- deliveries ------------------------------------------------------------------------------------------

    async def hold_owners(self, business_ids: Collection[uuid.UUID], *, changing: bool) -> None:
        self.owners_held += ((frozenset(business_ids), changing),)

    async def add_deliveries(self, deliveries: Sequence[NotifierDelivery]) -> None:
        for delivery in deliveries:
            key = (delivery.message_id, delivery.channel, delivery.recipient)
            planned = next((d for d in self.deliveries.values() if (d.message_id, d.channel, d.recipient) == key), None)
            if planned is None:
                self.deliveries[delivery.id] = delivery
            elif planned.status == WITHHELD and planned.reason == NUMBER_CHANGED:
                self.deliveries[planned.id] = replace(
                    planned, status=delivery.status, reason=delivery.reason, not_before=delivery.not_before,
                    attempts=delivery.attempts, retries_from=delivery.retries_from, critical=delivery.critical)

    async def deliveries_of_messages(self, message_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, list[NotifierDelivery]]:
        return {i: [d for d in self.deliveries.values() if d.message_id == i] for i in sorted(set(message_ids))}

    async def delivery(self, delivery_id: uuid.UUID) -> NotifierDelivery | None:
        return self.deliveries.get(delivery_id)

    async def delivery_by_provider(self, channel: str, provider_id: str) -> NotifierDelivery | None:
        return next((d for d in self.deliveries.values() if (d.channel, d.provider_id) == (channel, provider_id)), None)

    async def save_delivery(self, delivery: NotifierDelivery, now: datetime) -> None:
        current = self.deliveries[delivery.id]
        self.deliveries[delivery.id] = replace(delivery, provider_id=delivery.provider_id or current.provider_id)
        if delivery.status != "sending":
            self.leases.pop(delivery.id, None)

    async def queued_about_offer(self, offer_id: uuid.UUID) -> list[NotifierDelivery]:
        about = {m.id for m in self.messages if m.offer_id == offer_id}
        return [d for d in self.deliveries.values() if d.message_id in about and d.status == "queued"]

    async def queued_to_another_phone(self, business_id: uuid.UUID, phone: str) -> list[NotifierDelivery]:
        theirs = {m.id for m in self.messages if m.business_id == business_id and m.audience == "owner"
                  and m.recipient_phone is not None and m.recipient_phone != phone}  # fmt: skip
        return sorted((d for d in self.deliveries.values() if d.message_id in theirs and d.status == "queued"),
                      key=lambda d: d.id)  # fmt: skip

    async def readdress(self, message_ids: Sequence[uuid.UUID], phone: str) -> list[Message]:
        moving = [i for i, m in enumerate(self.messages) if m.id in set(message_ids) and m.audience == "owner"]
        for i in moving:
            self.messages[i] = replace(self.messages[i], recipient_phone=phone)
        return sorted((self.messages[i] for i in moving), key=lambda m: (m.created_at, m.id))

    # --- the worker ------------------------------------------------------------------------------------------

    async def bucket(self, channel: str) -> tuple[Bucket | None, datetime]:
        return self.buckets.get(channel), self.clock()

    async def save_bucket(self, channel: str, bucket: Bucket) -> None:
        self.buckets[channel] = bucket

    async def claim_due(self, channel: str, now: datetime, holder: str, lease: timedelta, limit: int) -> list[Outgoing]:
        lease_until = self.clock() + lease
        due = sorted((d for d in self.deliveries.values()
                      if d.status == "queued" and d.channel == channel and d.not_before <= now),
                     key=lambda d: (d.not_before, d.id))[:max(0, limit)]  # fmt: skip
        claimed = []
        for delivery in due:
            sending = replace(delivery, status="sending", attempts=delivery.attempts + 1)
            self.deliveries[delivery.id] = sending
            self.leases[delivery.id] = (holder, lease_until)
            message = next(m for m in self.messages if m.id == delivery.message_id)
            offer = self.offers.get(message.offer_id) if message.offer_id else None
            claimed.append(Outgoing(sending, message.template, message.audience, message.body, message.subject,
                                    offer.state if offer else None, self.preferences.get(delivery.recipient),
                                    message.deadline))  # fmt: skip
        return claimed

    async def stranded(self, limit: int) -> list[Stranded]:
        now = self.clock()
        found = [Stranded(self.deliveries[i], holder) for i, (holder, until) in self.leases.items()
                 if until < now and self.deliveries[i].status == "sending"]  # fmt: skip
        return found[:limit]

    async def start_attempt(self, delivery_id: uuid.UUID, attempt: int, holder: str, now: datetime) -> None:
        self.attempts.setdefault((delivery_id, attempt), (holder, None, None))

    async def end_attempt(self, delivery_id: uuid.UUID, attempt: int, outcome: str, detail: str | None,
                          now: datetime) -> None:  # fmt: skip
        holder, done, _ = self.attempts.get((delivery_id, attempt), ("?", None, None))
        if done is None:
            self.attempts[(delivery_id, attempt)] = (holder, outcome, detail)

    async def deliver_locally(self, delivery: NotifierDelivery, subject: str | None, body: str, now: datetime) -> None:
        self.local_outbox.setdefault(delivery.id, (delivery.recipient, subject, body))

    async def record_status_report(self, channel: str, provider_id: str, status: str, error: str | None,
                                   delivery_id: uuid.UUID | None, now: datetime) -> None:  # fmt: skip
        self.status_reports.append((channel, provider_id, status, delivery_id))

    # --- owners' wishes --------------------------------------------------------------------------------------

    async def preference(self, phone: str) -> Preference | None:
        return self.preferences.get(phone)

    async def save_preference(self, preference: Preference) -> None:
        self.preferences[preference.phone] = preference

    async def record_consent(self, phone: str, intent: str, via: str, at: datetime,
                             written_at: datetime | None = None) -> None:  # fmt: skip
        self.consent.append((phone, intent, via))
        self.consent_received.append((phone, at))
        said = written_at or at
        self.consent_said[phone] = max(said, self.consent_said.get(phone, said))

    async def latest_consent_at(self, phone: str) -> datetime | None:
        return self.consent_said.get(phone)

    async def consent_changes_since(self, phone: str, since: datetime) -> int:
        return sum(1 for p, at in self.consent_received if p == phone and at >= since)

    async def queued_confirmations(self, phone: str) -> list[NotifierDelivery]:
        theirs = {m.id for m in self.messages if m.recipient_phone == phone and m.template in ("opted_out", "opted_in")}
        return sorted((d for d in self.deliveries.values() if d.message_id in theirs and d.status == "queued"),
                      key=lambda d: d.id)  # fmt: skip

    # --- directories -----------------------------------------------------------------------------------------

    async def officer_emails(self, kecamatan_code: str | None) -> list[str]:
        here = sorted(email for email, _, codes in self.officers.values() if kecamatan_code in codes)
        return here or sorted(email for email, _, codes in self.officers.values() if not codes)

    async def sponsor_email(self, sponsor_id: uuid.UUID) -> str | None:
        return self.sponsor_contacts.get(sponsor_id)

    async def save_officer(self, officer_id: uuid.UUID, email: str, name: str, kecamatan_codes: Sequence[str]) -> uuid.UUID:
        existing = next((i for i, (e, _, _) in self.officers.items() if e == email), officer_id)
        self.officers[existing] = (email, name, tuple(kecamatan_codes))
        return existing

    async def officer_by_email(self, email: str) -> tuple[uuid.UUID, tuple[str, ...]] | None:
        return next(((i, codes) for i, (e, _, codes) in self.officers.items() if e == email), None)

    async def officer(self, officer_id: uuid.UUID) -> tuple[str, tuple[str, ...]] | None:
        found = self.officers.get(officer_id)
        return (found[0], found[2]) if found else None

    async def remove_officer(self, officer_id: uuid.UUID) -> bool:
        return self.officers.pop(officer_id, None) is not None

    async def save_sponsor_contact(self, sponsor_id: uuid.UUID, email: str, name: str | None) -> None:
        self.sponsor_contacts[sponsor_id] = email

    # --- funding's events ------------------------------------------------------------------------------------

    async def save_pledge(self, pledge: PledgeFact) -> None:
        current = self.pledges.get(pledge.pledge_id)
        self.pledges[pledge.pledge_id] = replace(current, closed_at=current.closed_at or pledge.closed_at) if current else pledge

    async def pledge(self, pledge_id: uuid.UUID) -> PledgeFact | None:
        return self.pledges.get(pledge_id)

    async def save_offer(self, offer: OfferFact) -> None:
        self.offers[offer.offer_id] = offer

    async def offer(self, offer_id: uuid.UUID) -> OfferFact | None:
        return self.offers.get(offer_id)

    async def offers_to_remind(self, now: datetime, lead: timedelta, limit: int) -> list[OfferFact]:
        reminded = {m.offer_id for m in self.messages if m.template == "offer_reminder"}
        due = [o for o in self.offers.values() if o.state == "open" and now < o.expires_at <= now + lead
               and o.offered_at <= o.expires_at - lead and o.offer_id not in reminded]  # fmt: skip
        return sorted(due, key=lambda o: (o.expires_at, o.offer_id))[:limit]

    async def sponsors(self) -> list[uuid.UUID]:
        return sorted({p.sponsor_id for p in self.pledges.values()})

    async def pledges_of(self, sponsor_id: uuid.UUID) -> list[PledgeFact]:
        return sorted((p for p in self.pledges.values() if p.sponsor_id == sponsor_id), key=lambda p: p.pledged_at)

    async def offers_of(self, pledge_id: uuid.UUID) -> list[OfferFact]:
        return sorted((o for o in self.offers.values() if o.pledge_id == pledge_id), key=lambda o: o.offered_at)


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
        self.database_answers = True  # whether `SELECT 1` comes back at once, asked after a timeout
        self.inbox: set[uuid.UUID] = set()
        self.outages = list(outages)
        self.transactions = 0
        self.commits = 0

    async def _database_answers(self) -> bool:
        return self.database_answers

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
                deliveries.append(Delivery(item.envelope, item.payload, item.record.topic, item.replayed))
                applied[item.index] = Outcome.PROCESSED
            else:
                applied[item.index] = Outcome.DUPLICATE
        tx = BatchTransaction(conn=None)  # type: ignore[arg-type]
        if deliveries:
            async with asyncio.timeout(self._policy.handler_timeout):
                await self._apply(tx, deliveries)
            if held := {d.envelope.aggregate_id for d in deliveries if d.replayed}:
                await self._catch_up.hold(None, self.name, held)  # type: ignore[arg-type, union-attr]
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
    catch_up: FakeCatchUp | None = None,
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
        catch_up=catch_up,
    )


class FakeCatchUp(CatchUp):
    """Where a consumer stands in catching up after a rebuild, in memory: `ends` as the rebuild wrote them, and
    what the consumer held back and told of reaching. `down` makes the next call to `reached` fail, as a database
    that went away would."""

    def __init__(self, ends: dict[TopicPartition, int] | None = None) -> None:
        self.table = dict(ends or {})
        self.held: set[str] = set()
        self.reports: list[set[TopicPartition]] = []
        self.down: BaseException | None = None

    async def ends(self, consumer: str) -> dict[TopicPartition, int]:
        return dict(self.table)

    async def hold(self, conn: Any, consumer: str, aggregate_ids: Collection[str]) -> None:
        self.held.update(aggregate_ids)

    async def reached(self, consumer: str, partitions: Collection[TopicPartition]) -> None:
        if self.down is not None:
            down, self.down = self.down, None
            raise down
        self.reports.append(set(partitions))
        for partition in partitions:
            self.table.pop(partition, None)

"""The notifier's abstract store, which its PostgreSQL store (store_pg.py) and the fakes implement, and unit of work.

Every change goes through a `NotifierUnitOfWork` (one transaction): contacts, messages and their deliveries, owners'
preferences, the directories of officers and sponsors, what it keeps of funding's events, the local outbox. The
delivery worker claims, answers and recovers deliveries through the same store, so the rules (domain/) are the same
whoever changes a row. The PostgreSQL store is in store_pg.py.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.notifier.domain.consent import Preference
from services.notifier.domain.delivery import DELIVERED, Delivery
from services.notifier.domain.digest import OfferFact, PledgeFact
from services.notifier.domain.messages import Contact, Message
from services.notifier.domain.ratelimit import Bucket
from shared.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed delivery with what the worker needs to send it and to take a last look first."""

    delivery: Delivery
    template: str
    audience: str
    body: str
    subject: str | None
    offer_state: str | None
    preference: Preference | None
    deadline: datetime | None = None  # the message's: when what it announces stops being useful (an offer's expiry)


@dataclass(frozen=True, slots=True)
class Stranded:
    """A delivery left `sending` by a process whose lease ran out."""

    delivery: Delivery
    holder: str | None


class NotifierStore(abc.ABC):
    # --- contacts and messages -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def contact(self, business_id: uuid.UUID) -> Contact | None: ...

    @abc.abstractmethod
    async def save_contact(self, contact: Contact) -> None:
        """Keep the newest version only: an older snapshot arriving late never overwrites a newer one."""

    @abc.abstractmethod
    async def add_message(self, message: Message) -> bool:
        """False if this event already produced this message."""

    @abc.abstractmethod
    async def recorded_since(self, event_ids: Collection[uuid.UUID], template: str, since: datetime) -> bool:
        """Whether one of these events produced this message at `since` or later."""

    @abc.abstractmethod
    async def address_waiting(self, contact: Contact) -> list[Message]:
        """Give the owner's phone to messages that were waiting for it; returns them, addressed."""

    # A wave of registrations (an import) reaches the notifier as batches of hundreds: these do for many what the
    # methods above do for one. The PostgreSQL store does each in one round trip; a store may keep these defaults.

    async def save_contacts(self, contacts: Sequence[Contact]) -> None:
        for contact in contacts:
            await self.save_contact(contact)

    async def address_waiting_for(self, contacts: Sequence[Contact]) -> list[Message]:
        return [message for contact in contacts for message in await self.address_waiting(contact)]

    async def add_messages(
        self, messages: Sequence[Message], planned: Mapping[uuid.UUID, tuple[str, str]] | None = None,
        now: datetime | None = None,
    ) -> list[Message]:
        """The messages that were new, in order (an event applied again makes none). `planned`: the (status, channel)
        of those whose deliveries are already planned, which they are written with, as of `now`."""
        new = [message for message in messages if await self.add_message(message)]
        if planned:
            assert now is not None, "a planned message's status is set as of a time"
            await self.set_message_statuses([(m.id, *planned[m.id]) for m in new if m.id in planned], now)
        return new

    async def contacts_of(self, business_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Contact]:
        """The contacts known of these businesses."""
        found = {}
        for business_id in set(business_ids):
            if (contact := await self.contact(business_id)) is not None:
                found[business_id] = contact
        return found

    async def add_offers(self, offers: Sequence[OfferFact]) -> None:
        """Keep the offers not known yet; one already known is left as it is (it may have moved on since)."""
        for offer in offers:
            if await self.offer(offer.offer_id) is None:
                await self.save_offer(offer)

    async def preferences_of(self, phones: Collection[str]) -> dict[str, Preference]:
        """The owners' preferences that are recorded, locked like `preference` (in phone order, so that two
        batches never wait on each other)."""
        found = {}
        for phone in sorted(set(phones)):
            if (preference := await self.preference(phone)) is not None:
                found[phone] = preference
        return found

    async def set_message_statuses(self, statuses: Sequence[tuple[uuid.UUID, str, str]], now: datetime) -> None:
        """(message id, status, channel) for each."""
        for message_id, status, channel in statuses:
            await self.set_message_status(message_id, status, channel, now)

    @abc.abstractmethod
    async def message(self, message_id: uuid.UUID) -> Message | None: ...

    @abc.abstractmethod
    async def set_message_status(self, message_id: uuid.UUID, status: str, channel: str, now: datetime) -> None: ...

    # --- deliveries ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def hold_owners(self, business_ids: Collection[uuid.UUID], *, changing: bool) -> None:
        """Until the transaction ends, the owners of these businesses: `changing` their contact (the registry's
        events) alone, else (a message to them) shared. Without it, a message recorded while the registry's change
        was not yet committed read the contact as it was before: it waited for a contact already there, or went to
        a number given up, since the change could not see the message to address it."""

    @abc.abstractmethod
    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Each delivery not already planned for its (message, channel, recipient). One withheld there because the
        owner's number changed (`NUMBER_CHANGED`) takes the new plan instead: the number has changed back, and the
        message would otherwise never go."""

    @abc.abstractmethod
    async def deliveries_of_messages(self, message_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, list[Delivery]]:
        """Each message's deliveries, with the messages locked (in id order, so two transactions locking several
        never deadlock): two transactions changing two of a message's deliveries then summarise it one after the
        other, each seeing the other's change."""

    @abc.abstractmethod
    async def delivery(self, delivery_id: uuid.UUID) -> Delivery | None:
        """The delivery, locked until the transaction ends (a webhook and the worker never both change it)."""

    @abc.abstractmethod
    async def delivery_by_provider(self, channel: str, provider_id: str) -> Delivery | None:
        """Locked, like `delivery`."""

    @abc.abstractmethod
    async def save_delivery(self, delivery: Delivery, now: datetime) -> None:
        """Write its status, reason, provider id, not_before; stamp sent/delivered/read times the first time."""

    @abc.abstractmethod
    async def queued_about_offer(self, offer_id: uuid.UUID) -> list[Delivery]:
        """Locked deliveries still queued of the messages about this offer."""

    @abc.abstractmethod
    async def queued_to_another_phone(self, business_id: uuid.UUID, phone: str) -> list[Delivery]:
        """Locked deliveries still queued of the owner's messages addressed to a number other than `phone`."""

    @abc.abstractmethod
    async def readdress(self, message_ids: Sequence[uuid.UUID], phone: str) -> list[Message]:
        """Address these owner's messages to `phone`; returns them, readdressed, oldest first."""

    # --- the worker ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def bucket(self, channel: str) -> tuple[Bucket | None, datetime]:
        """The channel's token bucket, locked (every process claiming on this channel waits its turn), and the
        database's time once it is: the bucket fills on one clock. On each process's own, one a couple of minutes
        behind set its time back, and the next process on time found it full again: the burst at every pass."""

    @abc.abstractmethod
    async def save_bucket(self, channel: str, bucket: Bucket) -> None: ...

    # A lease is set and judged on one clock, the database's, never on a process's own: notifier processes run on
    # hosts whose clocks differ by tens of seconds, and one whose clock runs ahead (or a holder whose clock runs
    # behind) would take a live lease for a run-out one, and send an email twice or mark a WhatsApp unknown. So
    # neither method below is given the caller's time for the lease. Due times stay on the caller's clock: a skew
    # there moves when a row goes by the skew, and never lets two processes hold one row.

    @abc.abstractmethod
    async def claim_due(self, channel: str, now: datetime, holder: str, lease: timedelta, limit: int) -> list[Outgoing]:
        """Mark up to `limit` queued deliveries due by `now` as `sending` by `holder` (one more attempt), held for
        `lease` from now by the database's clock, skipping rows another process has locked; returns them with their
        messages."""

    @abc.abstractmethod
    async def stranded(self, limit: int) -> list[Stranded]:
        """Locked `sending` deliveries whose lease ran out by the database's clock, skipping rows another process has
        locked."""

    @abc.abstractmethod
    async def start_attempt(self, delivery_id: uuid.UUID, attempt: int, holder: str, now: datetime) -> None: ...

    @abc.abstractmethod
    async def end_attempt(self, delivery_id: uuid.UUID, attempt: int, outcome: str, detail: str | None,
                          now: datetime) -> None: ...  # fmt: skip

    @abc.abstractmethod
    async def deliver_locally(self, delivery: Delivery, subject: str | None, body: str, now: datetime) -> None: ...

    async def deliver_all_locally(self, letters: Sequence[tuple[Delivery, str | None, str]], holder: str,
                                  now: datetime) -> None:  # fmt: skip
        """For each claimed local delivery (each once, with its subject and body): its attempt, started by `holder`
        and accepted by the local outbox, its letter, and the delivery marked delivered. The PostgreSQL store does the
        whole pass in one statement, where one by one it was four round trips a letter."""
        for delivery, subject, body in letters:
            await self.start_attempt(delivery.id, delivery.attempts, holder, now)
            await self.deliver_locally(delivery, subject, body, now)
            await self.end_attempt(delivery.id, delivery.attempts, "accepted", "local outbox", now)
            await self.save_delivery(replace(delivery, status=DELIVERED), now)  # a reason says who to add

    @abc.abstractmethod
    async def record_status_report(self, channel: str, provider_id: str, status: str, error: str | None,
                                   delivery_id: uuid.UUID | None, now: datetime) -> None: ...  # fmt: skip

    # --- owners' wishes --------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def preference(self, phone: str) -> Preference | None: ...

    async def preference_to_change(self, phone: str) -> Preference | None:
        """The number's preferences, for a unit of work that will save them: two such (an owner's STOP, an officer's
        change, WhatsApp saying the number has none) run one after the other even while the number has no row yet,
        so the second never writes back what the first changed."""
        return await self.preference(phone)

    @abc.abstractmethod
    async def save_preference(self, preference: Preference) -> None: ...

    @abc.abstractmethod
    async def record_consent(self, phone: str, intent: str, via: str, at: datetime,
                             written_at: datetime | None = None) -> None: ...  # fmt: skip

    @abc.abstractmethod
    async def consent_changes_since(self, phone: str, since: datetime) -> int:
        """The number's STOPs, MULAIs and officers' changes received since then."""

    @abc.abstractmethod
    async def queued_confirmations(self, phone: str) -> list[Delivery]:
        """Deliveries of the number's confirmations of a STOP or MULAI that have not gone yet, locked."""

    @abc.abstractmethod
    async def latest_consent_at(self, phone: str) -> datetime | None:
        """When the number's latest STOP, MULAI or officer's change was said: written, where the gateway told it, else
        received."""

    # --- directories -----------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def officer_emails(self, kecamatan_code: str | None) -> list[str]:
        """The officers of the kecamatan, or the city-wide officers when none is named for it."""

    @abc.abstractmethod
    async def sponsor_email(self, sponsor_id: uuid.UUID) -> str | None: ...

    @abc.abstractmethod
    async def save_officer(self, officer_id: uuid.UUID, email: str, name: str, kecamatan_codes: Sequence[str]) -> uuid.UUID:
        """Add or change the officer with this email; returns the officer's id."""

    @abc.abstractmethod
    async def officer_by_email(self, email: str) -> tuple[uuid.UUID, tuple[str, ...]] | None:
        """(id, kecamatan codes) of the entry with this email, held until the transaction ends (even while absent)."""

    @abc.abstractmethod
    async def officer(self, officer_id: uuid.UUID) -> tuple[str, tuple[str, ...]] | None:
        """(email, kecamatan codes) of the officer."""

    @abc.abstractmethod
    async def remove_officer(self, officer_id: uuid.UUID) -> bool: ...

    @abc.abstractmethod
    async def save_sponsor_contact(self, sponsor_id: uuid.UUID, email: str, name: str | None) -> None: ...

    # --- funding's events ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def save_pledge(self, pledge: PledgeFact) -> None: ...

    @abc.abstractmethod
    async def pledge(self, pledge_id: uuid.UUID) -> PledgeFact | None: ...

    @abc.abstractmethod
    async def save_offer(self, offer: OfferFact) -> None: ...

    @abc.abstractmethod
    async def offer(self, offer_id: uuid.UUID) -> OfferFact | None: ...

    @abc.abstractmethod
    async def offers_to_remind(self, now: datetime, lead: timedelta, limit: int) -> list[OfferFact]:
        """Open offers expiring after `now` and within `lead`, made at least `lead` before they expire (one made with
        less time left has a fresh message of its own), whose owner has no reminder of them yet."""

    @abc.abstractmethod
    async def sponsors(self) -> list[uuid.UUID]: ...

    @abc.abstractmethod
    async def pledges_of(self, sponsor_id: uuid.UUID) -> list[PledgeFact]: ...

    @abc.abstractmethod
    async def offers_of(self, pledge_id: uuid.UUID) -> list[OfferFact]: ...


class NotifierUnitOfWork(UnitOfWork[object]):
    """The notifier publishes no events; its unit of work is the transaction its handlers write in."""

    store: NotifierStore

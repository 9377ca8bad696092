"""The registry's consumer changing an owner's contact while another consumer records a message to that owner, on a
real PostgreSQL with two transactions at once: the message is addressed to the contact as the change leaves it, never
left waiting for a contact already there, nor queued to a number the owner gave up."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.notifier import subscribers
from services.notifier.store_pg import PgNotifierUnitOfWork
from shared.contracts import EventPayload, new_envelope
from shared.contracts.training import TraineeInvited
from shared.messaging.consumer import BatchTransaction, Delivery
from shared.unit_of_work import Publisher
from tests.gateways.notifier import Notifier, notifier
from tests.unit.notifier_fakes import MORNING, matched, number_changed, registered

pytestmark = pytest.mark.integration

OLD, NEW = "+6281355550101", "+6281355550102"


async def _while_the_registry_holds_its_change(n: Notifier, change: EventPayload, consumer: str,
                                               message: EventPayload) -> None:  # fmt: skip
    """The registry's consumer applies `change` and, before it commits, `consumer` applies `message` in a transaction
    of its own; the change then commits, and the other transaction finishes as it can."""
    publisher: Publisher[object] = Publisher("notifier", lambda _: [], lambda _: "none")
    apply = subscribers.consumers(lambda tx, cause: PgNotifierUnitOfWork(tx, publisher, cause), n.deps)

    def delivery(event: EventPayload, producer: str) -> Delivery:
        return Delivery(new_envelope(event, producer=producer, correlation_id=uuid.uuid4(), occurred_at=MORNING), event)

    async def other() -> None:
        async with n.db.acquire() as conn, conn.transaction():
            await apply[consumer](BatchTransaction(conn), [delivery(message, "training")])

    async with n.db.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await apply[subscribers.CONSUMER](BatchTransaction(conn), [delivery(change, "registry")])
        recording = asyncio.create_task(other())
        await asyncio.sleep(0.5)  # the other transaction reads the contact, or waits for the change
        await tx.commit()
    await asyncio.wait_for(recording, timeout=30)


async def test_an_invitation_recorded_while_the_owners_registration_commits_is_addressed_not_left_waiting(
        database_url: str) -> None:  # fmt: skip
    business = uuid.uuid4()
    invited = TraineeInvited(
        business_id=business, participant_version=1, cohort_id=uuid.uuid4(), programme_id=uuid.uuid4(),
        topic="halal_certification", title="Sertifikasi Halal Gratis (SEHATI)", starts_at=MORNING + timedelta(days=7),
        venue="Taman Nostalgia", need="halal_uncertified",
    )  # fmt: skip
    async with notifier(database_url) as n:
        await _while_the_registry_holds_its_change(n, registered(business_id=business, contact_phone=OLD),
                                                   subscribers.TRAINING_CONSUMER, invited)  # fmt: skip

        [row] = await n.fetch("SELECT recipient_phone, status FROM message WHERE template = 'training_invitation'")
        assert row["recipient_phone"] == OLD and row["status"] != "waiting"


async def test_an_offer_recorded_while_the_owners_new_number_commits_goes_to_the_new_number(
        database_url: str) -> None:  # fmt: skip
    business = uuid.uuid4()
    async with notifier(database_url) as n:
        async with n.db.acquire() as conn, conn.transaction():
            publisher: Publisher[object] = Publisher("notifier", lambda _: [], lambda _: "none")
            apply = subscribers.consumers(lambda tx, cause: PgNotifierUnitOfWork(tx, publisher, cause), n.deps)
            event = registered(business_id=business, contact_phone=OLD)
            await apply[subscribers.CONSUMER](BatchTransaction(conn), [
                Delivery(new_envelope(event, producer="registry", correlation_id=uuid.uuid4()), event)])
        offer = matched(business_id=business, contact_phone=OLD, offered_at=n.clock(),
                        expires_at=n.clock() + timedelta(days=14))  # fmt: skip
        await _while_the_registry_holds_its_change(n, number_changed(NEW, business_id=business),
                                                   subscribers.FUNDING_CONSUMER, offer)  # fmt: skip

        rows: list[Any] = await n.deliveries(template="funding_offer")
        assert {r["recipient"] for r in rows if r["status"] in ("queued", "sent")} == {NEW}
        assert await n.fetch("SELECT recipient_phone FROM message WHERE template = 'funding_offer'") == [(NEW,)]

"""A wave of registrations (an import) through the notifier's registry consumer, and a pledge's offers through its
funding consumer, on a real PostgreSQL: a run of them in one batch is recorded in a few round trips, and leaves exactly
the rows that recording them one by one leaves."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifier import handlers, subscribers
from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.domain.channels import WHATSAPP, SendResult
from services.notifier.domain.consent import Preference
from services.notifier.domain.digest import ACCEPTED
from services.notifier.domain.messages import Contact
from services.notifier.store_pg import PgNotifierUnitOfWork
from shared.contracts import new_envelope
from shared.contracts.funding import FundingMatched, FundsDisbursed
from shared.contracts.registry import BusinessRegistered, NIBIssued
from shared.contracts.training import TraineeInvited
from shared.messaging.consumer import BatchTransaction, Delivery
from shared.unit_of_work import Cause, Publisher
from tests.gateways.notifier import Clock, Notifier, notifier
from tests.support import drop_database, fresh_database

pytestmark = pytest.mark.integration

REGISTERED_AT = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
OPTED_OUT, SMS_ONLY, WAITING = "+6281300000002", "+6281300000003", "+6281300000004"


def registered(n: int, phone: str) -> BusinessRegistered:
    return BusinessRegistered(
        business_id=uuid.UUID(int=n), business_version=1, business_name=f"Usaha Kupang {n}", kbli_code="10130",
        kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, youth_owned=False, women_owned=True, nib_status="none", nib=None,
        contact_phone=phone, status="active", registered_at=REGISTERED_AT, source="import",
    )  # fmt: skip


def wave() -> list[Any]:
    """Five registrations (one owner with two businesses, one opted out, one who asked for SMS, one whose training
    invitation came before the registry told the notifier the phone), a NIB issued in the middle of the run."""
    return [
        registered(1, "+6281300000001"),
        registered(2, OPTED_OUT),
        registered(3, SMS_ONLY),
        NIBIssued(business_id=uuid.UUID(int=1), business_version=2, application_id=None, nib="9120001234567",
                  issued_on=REGISTERED_AT.date(), kecamatan_code="53.71.04"),  # fmt: skip
        registered(4, WAITING),
        registered(5, "+6281300000001"),
    ]


async def prepare(n: Notifier) -> None:
    async with n.uow() as uow:
        await uow.store.save_preference(Preference(OPTED_OUT, opted_out_at=REGISTERED_AT))
        await uow.store.save_preference(Preference(SMS_ONLY, channel="sms"))
        await uow.commit()
    invitation = TraineeInvited(
        business_id=uuid.UUID(int=4), participant_version=1, cohort_id=uuid.UUID(int=99), programme_id=uuid.UUID(int=98),
        topic="halal_certification", title="Sertifikasi Halal Gratis (SEHATI)", starts_at=REGISTERED_AT,
        venue="Taman Nostalgia", need="halal_uncertified",
    )  # fmt: skip
    envelope = new_envelope(invitation, producer="training", correlation_id=uuid.UUID(int=97), event_id=uuid.UUID(int=96))
    await handlers.training_invitation(invitation, n.uow(Cause.event(envelope)), n.deps)


def deliveries_of(events: list[Any]) -> list[Delivery]:
    envelopes = [new_envelope(e, producer="registry", correlation_id=uuid.uuid4(), event_id=uuid.UUID(int=1000 + i),
                              occurred_at=REGISTERED_AT) for i, e in enumerate(events)]  # fmt: skip
    return [Delivery(envelope, event) for envelope, event in zip(envelopes, events, strict=True)]


async def apply_batch(n: Notifier, batch: list[Delivery], consumer: str = subscribers.CONSUMER) -> None:
    publisher: Publisher[object] = Publisher("notifier", lambda _: [], lambda _: "none")
    apply = subscribers.consumers(lambda tx, cause: PgNotifierUnitOfWork(tx, publisher, cause), n.deps)
    async with n.db.acquire() as conn, conn.transaction():
        await apply[consumer](BatchTransaction(conn), batch)


async def apply_one_by_one(n: Notifier, batch: list[Delivery]) -> None:
    for delivery in batch:
        handler = {**subscribers.REGISTRY_HANDLERS, **subscribers.FUNDING_HANDLERS}[type(delivery.payload)]
        await handler(delivery.payload, n.uow(Cause.delivery(delivery)), n.deps)


async def what_was_recorded(n: Notifier) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Every row the notifier keeps of contacts, messages and deliveries, without the ids it made up."""
    contacts = await n.fetch("SELECT business_id, business_version, phone, status FROM contact ORDER BY business_id")
    messages = await n.fetch(
        "SELECT event_id, template, business_id, recipient_phone, body, status, channel, audience FROM message"
        " ORDER BY business_id, template"
    )  # fmt: skip
    deliveries = await n.fetch(
        "SELECT m.event_id, m.template, d.channel, d.recipient, d.status, d.not_before, d.reason FROM delivery d"
        " JOIN message m ON m.id = d.message_id ORDER BY m.business_id, m.template, d.channel"
    )  # fmt: skip
    return [tuple(r) for r in contacts], [tuple(r) for r in messages], [tuple(r) for r in deliveries]


async def test_a_wave_of_registrations_in_one_batch_leaves_the_rows_that_welcoming_them_one_by_one_leaves(
    database_url: str, infra: Any
) -> None:
    second_url = await fresh_database(infra.postgres_url)
    try:
        async with notifier(database_url) as at_once, notifier(second_url) as one_by_one:
            for n in (at_once, one_by_one):
                await prepare(n)
            batch = deliveries_of(wave())
            await apply_batch(at_once, batch)
            await apply_one_by_one(one_by_one, batch)

            recorded = await what_was_recorded(at_once)
            assert recorded == await what_was_recorded(one_by_one)
            contacts, messages, deliveries = recorded
            assert len(contacts) == 5
            assert [m[1] for m in messages].count("welcome") == 5
            # The invitation that waited for the owner's phone got it, and its deliveries were planned.
            [invitation] = [m for m in messages if m[1] == "training_invitation"]
            assert invitation[3] == WAITING and invitation[5] != "waiting"
            assert {d[4] for d in deliveries if d[3] == OPTED_OUT} == {"withheld"}
    finally:
        await drop_database(infra.postgres_url, second_url)


async def test_a_wave_applied_again_records_nothing_more(database_url: str) -> None:
    async with notifier(database_url) as n:
        batch = deliveries_of([registered(i, f"+62813000001{i:02d}") for i in range(1, 41)])
        await apply_batch(n, batch)
        before = await what_was_recorded(n)

        await apply_batch(n, batch)  # a re-driven batch: the inbox would skip it; the messages' key does too

        assert await what_was_recorded(n) == before
        assert len(before[1]) == 40


async def test_a_wave_of_welcomes_writes_each_message_once_with_the_status_its_delivery_gives_it(
    database_url: str,
) -> None:
    # Inserted as waiting and then updated, each message was written twice; `status` is indexed, so the update also
    # added an entry to each of message's indexes.
    async with notifier(database_url) as n:
        batch = deliveries_of([registered(i, f"+62813000002{i:02d}") for i in range(1, 21)])
        publisher: Publisher[object] = Publisher("notifier", lambda _: [], lambda _: "none")
        apply = subscribers.consumers(lambda tx, cause: PgNotifierUnitOfWork(tx, publisher, cause), n.deps)
        async with n.db.acquire() as conn, conn.transaction():
            await apply[subscribers.CONSUMER](BatchTransaction(conn), batch)
            written = await conn.fetchrow(
                "SELECT n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'message'"
            )  # fmt: skip

        assert (written["n_tup_ins"], written["n_tup_upd"]) == (20, 0)
        rows = await n.fetch(
            "SELECT m.status, m.channel, m.updated_at, d.status AS delivery_status, d.channel AS delivery_channel"
            " FROM message m JOIN delivery d ON d.message_id = m.id"
        )  # fmt: skip
        assert len(rows) == 20
        assert all((r["status"], r["channel"]) == (r["delivery_status"], r["delivery_channel"]) for r in rows)
        assert {(r["status"], r["updated_at"]) for r in rows} == {("queued", n.clock())}


NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 22.00 WITA: quiet hours until 07.00


class WhatsAppPlanned(Gateway):
    """Only planned for here (owners' messages go by WhatsApp, in quiet hours); nothing is sent."""

    channel = WHATSAPP

    async def send(self, message: OutgoingMessage) -> SendResult:
        raise AssertionError("nothing is sent in these tests")

    def describe(self) -> str:
        return "planned for, never sent"


def matched(n: int, phone: str, business: int | None = None, expires_at: datetime = NIGHT + timedelta(days=14),
            ) -> FundingMatched:  # fmt: skip
    return FundingMatched(
        pledge_id=uuid.UUID(int=500), offer_id=uuid.UUID(int=600 + n), business_id=uuid.UUID(int=business or n),
        amount_rupiah=5_000_000, business_name=f"Usaha Kupang {business or n}", contact_phone=phone,
        kecamatan_code="53.71.04", sponsor_name="Bank NTT", instrument="grant", financing_programme=None, readiness=72,
        rank=n, offered_at=REGISTERED_AT, expires_at=expires_at,
    )  # fmt: skip


def offers_wave() -> list[Any]:
    """A pledge's offers: one owner with two businesses, one opted out, one who asked for SMS, one whose number the
    registry has since changed, one offer the notifier already knows (answered since), two offers to one business,
    one that expires before quiet hours end (its officers are told); a payment in the middle."""
    return [
        matched(1, "+6281300000001"),
        matched(2, OPTED_OUT),
        matched(3, SMS_ONLY),
        FundsDisbursed(pledge_id=uuid.UUID(int=500), offer_id=uuid.UUID(int=601), business_id=uuid.UUID(int=1),
                       amount_rupiah=5_000_000, reference="TRF-1", disbursed_at=REGISTERED_AT,
                       business_name="Usaha Kupang 1", contact_phone="+6281300000001", sponsor_name="Bank NTT"),
        matched(4, "+6281300000009"),
        matched(5, "+6281300000001"),
        matched(6, "+6281300000006"),
        matched(7, "+6281300000007", business=5),
        matched(8, "+6281300000008", expires_at=NIGHT + timedelta(hours=3)),
    ]  # fmt: skip


async def prepare_offers(n: Notifier) -> None:
    await prepare(n)
    async with n.uow() as uow:
        await uow.store.save_contact(Contact(uuid.UUID(int=4), 2, "Usaha Kupang 4", "+6281300000044", "Oebobo",
                                             "Fatululi", "active", "53.71.04"))  # fmt: skip
        await uow.store.save_offer(replace(handlers._offer_fact(matched(6, "+6281300000006")), state=ACCEPTED,
                                           decided_at=REGISTERED_AT))  # fmt: skip
        await uow.commit()


async def test_a_run_of_offers_in_one_batch_leaves_the_rows_that_recording_them_one_by_one_leaves(
    database_url: str, infra: Any
) -> None:
    second_url = await fresh_database(infra.postgres_url)
    try:
        night = {WHATSAPP: WhatsAppPlanned()}
        async with (notifier(database_url, night, clock=Clock(NIGHT)) as at_once,
                    notifier(second_url, night, clock=Clock(NIGHT)) as one_by_one):  # fmt: skip
            for n in (at_once, one_by_one):
                await prepare_offers(n)
            batch = deliveries_of(offers_wave())
            await apply_batch(at_once, batch, subscribers.FUNDING_CONSUMER)
            await apply_one_by_one(one_by_one, batch)

            offers = "SELECT offer_id, business_id, contact_phone, state, decided_at, disbursed_at FROM offer_fact"
            recorded = await what_was_recorded(at_once), await at_once.fetch(offers + " ORDER BY offer_id")
            assert recorded == (await what_was_recorded(one_by_one), await one_by_one.fetch(offers + " ORDER BY offer_id"))
            (_, messages, deliveries), facts = recorded
            assert [m[1] for m in messages].count("funding_offer") == 8
            assert [m[1] for m in messages].count("offer_at_risk_officer") == 1
            assert {m[3] for m in messages if m[2] == uuid.UUID(int=4) and m[1] == "funding_offer"} == {"+6281300000044"}  # the registry's word
            assert {d[4] for d in deliveries if d[3] == OPTED_OUT} == {"withheld"}
            states = {f["offer_id"].int - 600: f["state"] for f in facts}
            assert (states[1], states[6]) == ("disbursed", ACCEPTED)  # known offers are not overwritten
    finally:
        await drop_database(infra.postgres_url, second_url)

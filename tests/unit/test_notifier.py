"""Tests the notifier: Indonesian message texts with WITA times, its handlers against a fake unit of work, its
consumers' wiring, and the phone numbers operators see."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from services.notifier import handlers, subscribers
from services.notifier.domain import texts
from services.notifier.domain.messages import Contact
from services.notifier.recording import Deps
from services.notifier.routes import masked
from shared.contracts import Envelope, EventPayload, new_envelope
from shared.contracts.funding import (
    CSRPledged,
    FundingAccepted,
    FundingDeclined,
    FundingExpired,
    FundingMatched,
    FundingWithdrawn,
    FundsDisbursed,
    PledgeClosed,
)
from shared.contracts.registry import BusinessClosed, BusinessRegistered, BusinessUpdated, NIBIssued, NIBRejected
from shared.contracts.training import (
    PathwayNotEligible,
    PathwayStalled,
    TraineeEnrolled,
    TraineeInvited,
    TraineeWaitlisted,
    TraineeWithdrew,
    TrainingCompleted,
)
from shared.messaging.consumer import BatchTransaction, Delivery, RecordRefused
from shared.unit_of_work import Cause

from .fakes import FakeNotifierStore, FakeNotifierUnitOfWork, FixedClock

BUSINESS_ID = uuid.UUID("3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f")
REGISTERED_AT = datetime(2026, 11, 23, 11, 36, tzinfo=UTC)  # 19.36 WITA
NOW = datetime(2026, 11, 23, 11, 37, tzinfo=UTC)
EXPIRES_AT = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)  # 8 December 2026, 00.30 WITA


def contact(**overrides: Any) -> Contact:
    values = dict(
        business_id=BUSINESS_ID, business_version=1, business_name="Sei Sapi Ibu Maria", phone="+6281234567890",
        kecamatan="Oebobo", kelurahan="Fatululi", status="active", kecamatan_code="53.71.04",
    )  # fmt: skip
    return Contact(**{**values, **overrides})


def snapshot(model: type[BusinessRegistered] | type[BusinessUpdated] = BusinessRegistered, **overrides: Any) -> Any:
    values: dict[str, Any] = dict(
        business_id=BUSINESS_ID, business_version=1, business_name="Sei Sapi Ibu Maria", kbli_code="10130",
        kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, youth_owned=False, women_owned=True, nib_status="none", nib=None,
        contact_phone="+6281234567890", status="active", registered_at=REGISTERED_AT,
    )  # fmt: skip
    values |= {"source": "officer"} if model is BusinessRegistered else {"changed_fields": ("business_name",)}
    return model(**{**values, **overrides})


def matched(**overrides: Any) -> FundingMatched:
    values: dict[str, Any] = dict(
        pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=BUSINESS_ID, amount_rupiah=5_000_000,
        business_name="Sei Sapi Ibu Maria", contact_phone="+6281234567890", kecamatan_code="53.71.04",
        sponsor_name="Bank NTT", instrument="grant", financing_programme=None, readiness=72, rank=3,
        offered_at=NOW, expires_at=EXPIRES_AT,
    )  # fmt: skip
    return FundingMatched(**{**values, **overrides})


def disbursed(**overrides: Any) -> FundsDisbursed:
    values: dict[str, Any] = dict(
        pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=BUSINESS_ID, amount_rupiah=12_500_000,
        reference="TRF-2026-0042", disbursed_at=NOW, business_name="Sei Sapi Ibu Maria",
        contact_phone="+6281234567890", sponsor_name="Bank NTT",
    )  # fmt: skip
    return FundsDisbursed(**{**values, **overrides})


def nib_issued_event(business_id: uuid.UUID = BUSINESS_ID) -> NIBIssued:
    return NIBIssued(business_id=business_id, business_version=3, application_id=uuid.uuid4(), nib="1234567890123",
                     issued_on=date(2026, 12, 2), kecamatan_code="53.71.04")  # fmt: skip


def envelope_of(payload: EventPayload) -> Envelope:
    return new_envelope(payload, producer="registry", correlation_id=uuid.uuid4(), occurred_at=NOW)


def new_deps() -> Deps:
    ids = iter(uuid.UUID(int=n) for n in range(1, 100))
    return Deps(clock=FixedClock(NOW), new_id=lambda: next(ids))


Handler = Callable[[Any, FakeNotifierUnitOfWork, Deps], Awaitable[None]]


async def deliver(handler: Handler, event: EventPayload, store: FakeNotifierStore, deps: Deps,
                  envelope: Envelope | None = None) -> FakeNotifierUnitOfWork:  # fmt: skip
    """Run a handler as the consumer does: in a unit of work caused by the event's envelope."""
    uow = FakeNotifierUnitOfWork(store, Cause.event(envelope or envelope_of(event)))
    await handler(event, uow, deps)
    return uow


COHORT = {"cohort_id": uuid.uuid4(), "programme_id": uuid.uuid4(), "topic": "halal_certification",
          "title": "Sertifikasi Halal Gratis (SEHATI)", "starts_at": EXPIRES_AT, "venue": "Taman Nostalgia"}  # fmt: skip


def participant(version: int = 1) -> dict[str, Any]:
    return {"business_id": BUSINESS_ID, "participant_version": version}


TRAINING_EVENTS = [
    (handlers.training_invitation, TraineeInvited(**participant(1), **COHORT, need="halal_uncertified")),
    (handlers.training_waitlisted, TraineeWaitlisted(**participant(2), **COHORT, position=3)),
    (handlers.training_seat, TraineeEnrolled(**participant(3), **COHORT, from_waitlist=True)),
    (handlers.training_cancelled, TraineeWithdrew(**participant(4), cohort_id=COHORT["cohort_id"],
                                                  reason="cohort_cancelled")),
    (handlers.training_completed, TrainingCompleted(**participant(5), cohort_id=COHORT["cohort_id"],
                                                    topic="halal_certification", completed_on=date(2026, 12, 10),
                                                    title=COHORT["title"], attendance_percent=90)),
    (handlers.halal_stalled, PathwayStalled(**participant(6), waiting_for="companion_verified",
                                            since=date(2026, 11, 1), days=22, kecamatan_code="53.71.04")),
    (handlers.halal_not_eligible, PathwayNotEligible(**participant(7), reason="pork", regular_route_possible=False,
                                                     kecamatan_code="53.71.04")),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------------


def test_a_date_is_written_the_indonesian_way_with_the_month_name() -> None:
    assert texts.tanggal(date(2026, 8, 17)) == "17 Agustus 2026"
    assert [texts.tanggal(date(2026, m, 1)).split()[1] for m in range(1, 13)] == [
        "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
        "November", "Desember",
    ]  # fmt: skip


def test_a_utc_time_is_shown_in_wita_eight_hours_ahead() -> None:
    assert texts.waktu_wita(REGISTERED_AT) == "23 November 2026 pukul 19.36 WITA"


def test_a_late_evening_utc_time_is_already_the_next_day_and_month_in_kupang() -> None:
    assert texts.waktu_wita(datetime(2026, 7, 31, 17, 5, tzinfo=UTC)) == "1 Agustus 2026 pukul 01.05 WITA"


def test_a_time_given_in_another_zone_is_still_shown_in_wita() -> None:
    jakarta = datetime(2026, 11, 23, 18, 36, tzinfo=UTC).astimezone(timezone(timedelta(hours=7)))  # WIB
    assert texts.waktu_wita(jakarta) == "24 November 2026 pukul 02.36 WITA"


def test_the_registration_number_is_the_first_eight_hex_digits_of_the_business_id_in_capitals() -> None:
    assert texts.nomor_registrasi(BUSINESS_ID) == "3F2A9C1E"


def test_rupiah_are_written_with_dots_between_thousands() -> None:
    assert [texts.rupiah(n) for n in (0, 950, 5_000_000, 1_250_000_000)] == [
        "Rp0", "Rp950", "Rp5.000.000", "Rp1.250.000.000",
    ]  # fmt: skip


def test_the_welcome_text_is_indonesian_and_names_the_business_its_kelurahan_kecamatan_and_wita_time() -> None:
    text = texts.welcome_text(contact(), REGISTERED_AT, "none", None)

    assert text.startswith("Selamat datang di program UMKM Berdaya Kota Kupang!")
    assert "Sei Sapi Ibu Maria" in text
    assert "Kelurahan Fatululi" in text
    assert "Kecamatan Oebobo" in text
    assert "sudah terdaftar pada 23 November 2026 pukul 19.36 WITA" in text
    assert "Nomor registrasi: 3F2A9C1E." in text
    assert "11.36" not in text  # never the UTC time
    for english in ("Welcome", "registered", "business"):
        assert english not in text


def test_the_welcome_text_offers_help_with_an_nib_when_the_business_has_none() -> None:
    text = texts.welcome_text(contact(), REGISTERED_AT, "none", None)

    assert "belum tercatat memiliki NIB (Nomor Induk Berusaha)" in text
    assert "melalui OSS tanpa biaya" in text


def test_the_welcome_text_of_a_business_with_an_issued_nib_quotes_the_nib_and_offers_no_help() -> None:
    text = texts.welcome_text(contact(), REGISTERED_AT, "issued", "1234567890123")

    assert "NIB usaha Anda (1234567890123) sudah tercatat." in text
    assert "belum tercatat" not in text


@pytest.mark.parametrize(("status", "nib"), [("applied", None), ("rejected", None), ("issued", None)])
def test_the_welcome_text_offers_nib_help_whenever_no_nib_is_known(status: str, nib: str | None) -> None:
    assert "belum tercatat memiliki NIB" in texts.welcome_text(contact(), REGISTERED_AT, status, nib)


def test_the_nib_issued_text_gives_the_nib_and_its_date() -> None:
    text = texts.nib_issued_text(contact(), "1234567890123", date(2026, 12, 2))

    assert text.startswith(
        "Selamat! NIB untuk usaha Sei Sapi Ibu Maria telah terbit pada 2 Desember 2026: 1234567890123."
    )
    assert "SEHATI" in text


def test_the_nib_rejected_text_gives_the_reason() -> None:
    text = texts.nib_rejected_text(contact(), "KBLI tidak sesuai")

    assert "Pengajuan NIB untuk usaha Sei Sapi Ibu Maria belum berhasil. Alasan: KBLI tidak sesuai." in text


def test_the_funding_offer_text_gives_the_amount_the_instrument_the_sponsor_and_the_wita_deadline() -> None:
    text = texts.funding_offer_text("Sei Sapi Ibu Maria", 5_000_000, "grant", None, "Bank NTT", EXPIRES_AT)

    assert text.startswith("Selamat! Usaha Sei Sapi Ibu Maria terpilih menerima bantuan hibah sebesar Rp5.000.000 "
                           "dari Bank NTT.")  # fmt: skip
    assert "berlaku sampai 8 Desember 2026 pukul 00.30 WITA" in text
    assert "7 Desember" not in text and "16.30" not in text  # never the UTC day or time


def test_a_financing_referral_offer_names_its_programme() -> None:
    text = texts.funding_offer_text("Sei Sapi Ibu Maria", 25_000_000, "financing_referral", "KUR", "BRI", EXPIRES_AT)
    assert "menerima rujukan pembiayaan KUR sebesar Rp25.000.000 dari BRI" in text


@pytest.mark.parametrize("instrument", ["grant", "equipment", "soft_loan", "financing_referral"])
def test_every_instrument_has_an_indonesian_name_in_the_offer(instrument: str) -> None:
    text = texts.funding_offer_text("Usaha", 1_000_000, instrument, None, "Sponsor", EXPIRES_AT)
    assert f"menerima {texts.INSTRUMEN[instrument]} sebesar" in text
    assert instrument not in text


def test_the_funds_disbursed_text_gives_the_amount_sponsor_and_reference() -> None:
    text = texts.funds_disbursed_text("Sei Sapi Ibu Maria", 12_500_000, "Bank NTT", "TRF-2026-0042")

    assert text == ("Dana sebesar Rp12.500.000 dari Bank NTT untuk usaha Sei Sapi Ibu Maria telah disalurkan "
                    "(referensi TRF-2026-0042). Semoga usaha Anda makin berkembang!")  # fmt: skip


# Words that would give away an English template; the Indonesian texts use none of them.
ENGLISH = re.compile(r"\b(the|your|you|business|registered|welcome|offer|expires|issued|rejected|reason|funds|"
                     r"disbursed|until|from|thank)\b", re.IGNORECASE)  # fmt: skip
ANY_TIME = re.compile(r"\b\d{2}[.:]\d{2}\b")


async def test_every_template_the_notifier_sends_is_in_bahasa_indonesia_with_times_in_wita() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    await deliver(handlers.nib_issued, nib_issued_event(), store, deps)
    rejected = NIBRejected(business_id=BUSINESS_ID, business_version=4, application_id=uuid.uuid4(),
                           reason="KBLI tidak sesuai", kecamatan_code="53.71.04")  # fmt: skip
    await deliver(handlers.nib_rejected, rejected, store, deps)
    await deliver(handlers.funding_offer, matched(), store, deps)
    await deliver(handlers.funds_disbursed, disbursed(), store, deps)

    for handler, event in TRAINING_EVENTS:
        await deliver(handler, event, store, deps)

    bodies = {m.template: m.body for m in store.messages}
    assert set(bodies) == {"welcome", "nib_issued", "nib_rejected", "funding_offer", "funds_disbursed",
                           "training_invitation", "training_seat", "training_waitlisted", "training_cancelled",
                           "training_completed", "halal_stalled", "halal_stalled_officer", "halal_not_eligible"}  # fmt: skip
    for template, body in bodies.items():
        assert not ENGLISH.search(body), f"{template} has English: {ENGLISH.search(body)}"
        for time_shown in ANY_TIME.finditer(body):
            assert body[time_shown.end():].startswith(" WITA"), f"{template} shows a time not in WITA: {body}"
    assert "pukul 19.36 WITA" in bodies["welcome"]
    assert "pukul 00.30 WITA" in bodies["funding_offer"]


# ---------------------------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------------------------


async def test_welcoming_a_registered_business_keeps_its_contact_and_records_one_message_for_the_local_outbox() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    event = snapshot()
    envelope = envelope_of(event)

    uow = await deliver(handlers.welcome, event, store, deps, envelope)

    assert store.contacts == {BUSINESS_ID: contact()}
    (message,) = store.messages
    # No gateway is configured in these deps: the one delivery goes to the local outbox, queued for the worker.
    assert (message.template, message.channel, message.recipient_phone) == ("welcome", "local", "+6281234567890")
    [delivery] = store.deliveries.values()
    assert (delivery.channel, delivery.recipient, delivery.status) == ("local", "+6281234567890", "queued")
    assert store.status_of(message) == "queued"
    assert (message.event_id, message.business_id, message.created_at) == (envelope.event_id, BUSINESS_ID, NOW)
    assert message.id == uuid.UUID(int=1)
    assert message.body == texts.welcome_text(contact(), REGISTERED_AT, "none", None)
    assert (uow.commits, uow.rollbacks) == (1, 0)


async def test_a_message_s_event_id_is_the_event_that_caused_the_unit_of_work() -> None:
    store = FakeNotifierStore()
    event = snapshot()
    envelope = envelope_of(event)
    uow = FakeNotifierUnitOfWork(store, Cause.event(envelope))

    await handlers.welcome(event, uow, new_deps())

    assert uow.cause.causation_id == envelope.event_id
    assert store.messages[0].event_id == envelope.event_id


async def test_the_same_registration_event_handled_twice_yields_one_welcome_message() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    event = snapshot()
    envelope = envelope_of(event)

    await deliver(handlers.welcome, event, store, deps, envelope)
    await deliver(handlers.welcome, event, store, deps, envelope)

    assert len(store.messages) == 1


async def test_a_welcome_for_a_business_registered_with_an_nib_quotes_it() -> None:
    store = FakeNotifierStore()

    await deliver(handlers.welcome, snapshot(nib_status="issued", nib="1234567890123"), store, new_deps())

    assert "(1234567890123)" in store.messages[0].body


async def test_an_update_keeps_the_contact_current_without_messaging_the_owner() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    update = snapshot(BusinessUpdated, business_version=2, business_name="Sei Sapi Mama Maria",
                      contact_phone="+6281399990000")  # fmt: skip

    await deliver(handlers.keep_contact, update, store, deps)

    assert store.contacts[BUSINESS_ID] == contact(business_version=2, business_name="Sei Sapi Mama Maria",
                                                  phone="+6281399990000")  # fmt: skip
    assert len(store.messages) == 1


async def test_an_older_contact_snapshot_arriving_late_never_overwrites_a_newer_one() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    newer = snapshot(BusinessUpdated, business_version=3, contact_phone="+6281399990000")
    older = snapshot(BusinessUpdated, business_version=2, contact_phone="+6281211112222")

    await deliver(handlers.keep_contact, newer, store, deps)
    await deliver(handlers.keep_contact, older, store, deps)

    assert (store.contacts[BUSINESS_ID].business_version, store.contacts[BUSINESS_ID].phone) == (3, "+6281399990000")


async def test_an_issued_nib_for_a_known_contact_is_announced_to_the_owner() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    event = nib_issued_event()
    envelope = envelope_of(event)

    await deliver(handlers.nib_issued, event, store, deps, envelope)

    assert [m.template for m in store.messages] == ["welcome", "nib_issued"]
    assert store.messages[1].event_id == envelope.event_id
    assert store.messages[1].body == texts.nib_issued_text(contact(), "1234567890123", date(2026, 12, 2))


async def test_an_issued_nib_for_a_business_never_registered_here_is_refused_and_told_once_it_is_registered() -> None:
    # Counted as handled, it was lost for good: the relay sends a registration that failed to publish again behind
    # the NIB Kafka had already taken, and the NIB again behind it, which the inbox then skipped.
    store, deps = FakeNotifierStore(), new_deps()
    event = nib_issued_event()
    uow = FakeNotifierUnitOfWork(store, Cause.event(envelope_of(event)))

    with pytest.raises(RecordRefused, match="NIBIssued is version 3, but this view has never heard of the business"):
        await handlers.nib_issued(event, uow, deps)
    assert (store.messages, store.contacts, uow.commits, uow.rollbacks) == ([], {}, 0, 1)

    await deliver(handlers.welcome, snapshot(), store, deps)
    await deliver(handlers.nib_issued, event, store, deps)
    assert [m.template for m in store.messages] == ["welcome", "nib_issued"]


async def test_a_rejected_nib_is_explained_to_a_known_owner_and_refused_for_an_unknown_one() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    known = NIBRejected(business_id=BUSINESS_ID, business_version=3, application_id=uuid.uuid4(),
                        reason="KBLI tidak sesuai", kecamatan_code="53.71.04")  # fmt: skip
    unknown = known.model_copy(update={"business_id": uuid.uuid4()})

    await deliver(handlers.nib_rejected, known, store, deps)
    with pytest.raises(RecordRefused, match="its registration never arrived here"):
        await deliver(handlers.nib_rejected, unknown, store, deps)

    assert [m.template for m in store.messages] == ["welcome", "nib_rejected"]
    assert "Alasan: KBLI tidak sesuai." in store.messages[1].body


async def test_a_closed_business_s_contact_is_marked_closed_at_the_closing_version() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    event = BusinessClosed(business_id=BUSINESS_ID, business_version=4, reason="usaha berhenti", closed_at=NOW,
                           kecamatan_code="53.71.04")  # fmt: skip

    await deliver(handlers.business_closed, event, store, deps)

    assert store.contacts[BUSINESS_ID] == contact(status="closed", business_version=4)
    assert len(store.messages) == 1  # closing sends nothing


async def test_closing_a_business_the_notifier_never_heard_of_is_refused_and_changes_nothing() -> None:
    # Counted as handled, the closure was lost once the registration it overtook came: the owner of a closed business
    # went on being told of offers and cohorts.
    store = FakeNotifierStore()
    event = BusinessClosed(business_id=BUSINESS_ID, business_version=4, reason="usaha berhenti", closed_at=NOW,
                           kecamatan_code="53.71.04")  # fmt: skip

    with pytest.raises(RecordRefused, match="BusinessClosed is version 4, but this view has never heard of"):
        await deliver(handlers.business_closed, event, store, new_deps())

    assert (store.contacts, store.messages) == ({}, [])


async def test_a_funding_offer_reaches_the_owner_at_the_phone_it_carries_even_before_any_registry_event() -> None:
    store = FakeNotifierStore()
    event = matched(contact_phone="+6281355556666")
    envelope = envelope_of(event)

    await deliver(handlers.funding_offer, event, store, new_deps(), envelope)

    (message,) = store.messages
    assert (message.template, message.recipient_phone, message.event_id) == (
        "funding_offer", "+6281355556666", envelope.event_id,
    )  # fmt: skip
    assert message.body == texts.funding_offer_text("Sei Sapi Ibu Maria", 5_000_000, "grant", None, "Bank NTT",
                                                    EXPIRES_AT)  # fmt: skip
    assert store.contacts == {}  # an offer does not make a contact


async def test_a_disbursement_is_announced_once_however_often_its_event_arrives() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    event = disbursed()
    envelope = envelope_of(event)

    await deliver(handlers.funds_disbursed, event, store, deps, envelope)
    await deliver(handlers.funds_disbursed, event, store, deps, envelope)

    assert [m.template for m in store.messages] == ["funds_disbursed"]
    assert "Rp12.500.000" in store.messages[0].body


# ---------------------------------------------------------------------------------------------------------------
# Consumers
# ---------------------------------------------------------------------------------------------------------------


def test_the_notifier_consumes_the_registry_events_the_funding_story_of_each_pledge_and_the_training_events() -> None:
    assert set(subscribers.REGISTRY_HANDLERS) == {BusinessRegistered, BusinessUpdated, NIBIssued, NIBRejected,
                                                  BusinessClosed}  # fmt: skip
    assert set(subscribers.FUNDING_HANDLERS) == {CSRPledged, FundingMatched, FundingAccepted, FundingDeclined,
                                                 FundingExpired, FundingWithdrawn, FundsDisbursed, PledgeClosed}  # fmt: skip
    by_topic = {s.topic: set(s.event_types) for s in subscribers.SUBSCRIPTIONS}
    assert by_topic == {
        "registry.business.v1": {"BusinessRegistered", "BusinessUpdated", "NIBIssued", "NIBRejected", "BusinessClosed"},
        "funding.pledge.v1": {"CSRPledged", "FundingMatched", "FundingAccepted", "FundingDeclined", "FundingExpired",
                              "FundingWithdrawn", "FundsDisbursed", "PledgeClosed"},
        "training.participant.v1": {"TraineeInvited", "TraineeEnrolled", "TraineeWaitlisted", "TraineeWithdrew",
                                    "TrainingCompleted", "PathwayStalled", "PathwayNotEligible"},
    }


def units_kept(
    store: FakeNotifierStore,
) -> tuple[list[FakeNotifierUnitOfWork], Callable[[BatchTransaction, Cause], FakeNotifierUnitOfWork]]:
    """A unit-of-work factory over `store` that keeps every unit it makes, in order."""
    units: list[FakeNotifierUnitOfWork] = []

    def unit_of_work(tx: BatchTransaction, cause: Cause) -> FakeNotifierUnitOfWork:
        units.append(FakeNotifierUnitOfWork(store, cause))
        return units[-1]

    return units, unit_of_work


async def test_a_batch_is_handed_event_by_event_to_its_handlers_each_in_a_unit_of_work_caused_by_that_event() -> None:
    store = FakeNotifierStore()
    units, unit_of_work = units_kept(store)
    apply = subscribers.consumers(unit_of_work, new_deps())
    welcome, issued = envelope_of(snapshot()), envelope_of(nib_issued_event())
    batch = [Delivery(welcome, BusinessRegistered.model_validate(welcome.payload)),
             Delivery(issued, NIBIssued.model_validate(issued.payload))]  # fmt: skip

    await apply[subscribers.CONSUMER](BatchTransaction(conn=None), batch)  # type: ignore[arg-type]

    holding, *handling = units  # the owners held first, alone: the registry's events change their contacts
    assert store.owners_held == ((frozenset({BUSINESS_ID}), True),) and holding.cause.causation_id == welcome.event_id
    assert [u.cause.causation_id for u in handling] == [welcome.event_id, issued.event_id]
    assert [(m.template, m.event_id) for m in store.messages] == [
        ("welcome", welcome.event_id), ("nib_issued", issued.event_id),
    ]  # fmt: skip


async def test_a_run_of_registrations_in_a_batch_is_welcomed_in_one_unit_of_work_and_other_events_keep_their_order() -> None:
    store = FakeNotifierStore()
    units, unit_of_work = units_kept(store)
    apply = subscribers.consumers(unit_of_work, new_deps())
    others = [uuid.UUID(int=n) for n in (11, 12, 13)]
    envelopes = [envelope_of(snapshot()), envelope_of(snapshot(business_id=others[0], contact_phone="+6281234567811")),
                 envelope_of(nib_issued_event()),
                 envelope_of(snapshot(business_id=others[1], contact_phone="+6281234567812")),
                 envelope_of(snapshot(business_id=others[2], contact_phone="+6281234567813"))]  # fmt: skip
    batch = [Delivery(e, (NIBIssued if e.event_type == "NIBIssued" else BusinessRegistered).model_validate(e.payload))
             for e in envelopes]  # fmt: skip

    await apply[subscribers.CONSUMER](BatchTransaction(conn=None), batch)  # type: ignore[arg-type]

    assert store.owners_held == ((frozenset({BUSINESS_ID, *others}), True),)
    assert [u.cause.causation_id for u in units[1:]] == [envelopes[0].event_id, envelopes[2].event_id,
                                                         envelopes[3].event_id]  # fmt: skip
    assert [(m.template, m.event_id) for m in store.messages] == [
        ("welcome", envelopes[0].event_id), ("welcome", envelopes[1].event_id), ("nib_issued", envelopes[2].event_id),
        ("welcome", envelopes[3].event_id), ("welcome", envelopes[4].event_id),
    ]  # fmt: skip
    assert all(status != "waiting" for status, _ in store.message_status.values())  # every welcome was planned


# ---------------------------------------------------------------------------------------------------------------
# What operators see
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["+6281234567890", "+62812345678", "081234567890123"])
def test_a_masked_phone_keeps_only_its_last_three_digits(phone: str) -> None:
    shown = masked(phone)

    assert len(shown) == len(phone)
    assert shown.endswith(phone[-3:])
    assert re.sub(r"\D", "", shown) == phone[-3:]
    assert set(shown[:-3]) == {"*"}


# ---------------------------------------------------------------------------------------------------------------
# Training and the halal pathway
# ---------------------------------------------------------------------------------------------------------------


async def test_an_invitation_arriving_before_the_owners_contact_waits_for_it_and_is_addressed_when_it_comes() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    invitation = TraineeInvited(**participant(1), **COHORT, need="halal_uncertified")

    await deliver(handlers.training_invitation, invitation, store, deps)
    [waiting] = store.messages
    assert waiting.recipient_phone is None and waiting.body.startswith("Usaha Anda diundang")

    await deliver(handlers.welcome, snapshot(), store, deps)
    invited = next(m for m in store.messages if m.template == "training_invitation")
    assert invited.recipient_phone == "+6281234567890"
    assert "Taman Nostalgia" in invited.body and "pukul 00.30 WITA" in invited.body and "17 Oktober 2026" in invited.body


async def test_a_stalled_halal_pathway_tells_the_owner_help_is_coming_and_the_kecamatans_officers_to_act() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    stalled = PathwayStalled(**participant(1), waiting_for="companion_verified", since=date(2026, 11, 1), days=22,
                             kecamatan_code="53.71.04")  # fmt: skip

    once = envelope_of(stalled)
    await deliver(handlers.halal_stalled, stalled, store, deps, once)
    await deliver(handlers.halal_stalled, stalled, store, deps, once)  # a redelivery changes nothing

    owner = [m for m in store.messages if m.template == "halal_stalled"]
    officers = [m for m in store.messages if m.template == "halal_stalled_officer"]
    assert len(owner) == 1 and len(officers) == 1
    assert owner[0].recipient_phone == "+6281234567890" and "1 November 2026" in owner[0].body
    assert (officers[0].audience, officers[0].kecamatan_code, officers[0].recipient_phone) == ("officers", "53.71.04", None)
    assert "22 hari" in officers[0].body and "verifikasi oleh pendamping" in officers[0].body


async def test_only_a_seat_freed_from_the_waitlist_or_a_cancelled_cohort_is_news_to_the_owner() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.training_seat, TraineeEnrolled(**participant(1), **COHORT), store, deps)
    await deliver(handlers.training_cancelled, TraineeWithdrew(**participant(2), cohort_id=COHORT["cohort_id"],
                                                               reason="withdrew"), store, deps)  # fmt: skip
    assert store.messages == []


async def test_a_pork_business_is_told_it_cannot_be_certified_and_may_sell_labelled_not_halal() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await deliver(handlers.welcome, snapshot(), store, deps)
    event = PathwayNotEligible(**participant(1), reason="pork", regular_route_possible=False, kecamatan_code="53.71.04")

    await deliver(handlers.halal_not_eligible, event, store, deps)

    [told] = [m for m in store.messages if m.template == "halal_not_eligible"]
    assert "tidak dapat disertifikasi halal" in told.body and "\"tidak halal\"" in told.body

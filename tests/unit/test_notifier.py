"""Tests the notifier: Indonesian message texts with WITA times, and its handlers against a fake store."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.notifier import domain, handlers
from services.notifier.domain import Contact
from services.notifier.handlers import Deps
from shared.contracts import Envelope, EventPayload, new_envelope
from shared.contracts.registry import BusinessClosed, BusinessRegistered, BusinessUpdated, NIBIssued, NIBRejected

from .fakes import FakeNotifierStore, FixedClock

BUSINESS_ID = uuid.UUID("3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f")
REGISTERED_AT = datetime(2026, 11, 23, 11, 36, tzinfo=UTC)  # 19.36 WITA
NOW = datetime(2026, 11, 23, 11, 37, tzinfo=UTC)


def contact(**overrides: Any) -> Contact:
    values = dict(
        business_id=BUSINESS_ID, business_version=1, business_name="Sei Sapi Ibu Maria", phone="+6281234567890",
        kecamatan="Oebobo", kelurahan="Fatululi", status="active",
    )  # fmt: skip
    return Contact(**{**values, **overrides})


def snapshot(model: type[BusinessRegistered] | type[BusinessUpdated] = BusinessRegistered, **overrides: Any) -> Any:
    values: dict[str, Any] = dict(
        business_id=BUSINESS_ID, business_version=1, business_name="Sei Sapi Ibu Maria", kbli_code="10130",
        kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, youth_owned=False, youth_until=date(2021, 8, 16), women_owned=True,
        nib_status="none", nib=None, contact_phone="+6281234567890", status="active", registered_at=REGISTERED_AT,
    )  # fmt: skip
    values |= {"source": "officer"} if model is BusinessRegistered else {"changed_fields": ("business_name",)}
    return model(**{**values, **overrides})


def envelope_of(payload: EventPayload) -> Envelope:
    return new_envelope(payload, producer="registry", correlation_id=uuid.uuid4(), occurred_at=NOW)


def new_deps() -> Deps:
    ids = iter(uuid.UUID(int=n) for n in range(1, 100))
    return Deps(clock=FixedClock(NOW), new_id=lambda: next(ids))


# ---------------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------------


def test_a_date_is_written_the_indonesian_way_with_the_month_name() -> None:
    assert domain.tanggal(date(2026, 8, 17)) == "17 Agustus 2026"
    assert [domain.tanggal(date(2026, m, 1)).split()[1] for m in range(1, 13)] == [
        "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
        "November", "Desember",
    ]  # fmt: skip


def test_a_utc_time_is_shown_in_wita_eight_hours_ahead() -> None:
    assert domain.waktu_wita(REGISTERED_AT) == "23 November 2026 pukul 19.36 WITA"


def test_a_late_evening_utc_time_is_already_the_next_day_and_month_in_kupang() -> None:
    assert domain.waktu_wita(datetime(2026, 7, 31, 17, 5, tzinfo=UTC)) == "1 Agustus 2026 pukul 01.05 WITA"


def test_the_registration_number_is_the_first_eight_hex_digits_of_the_business_id_in_capitals() -> None:
    assert domain.nomor_registrasi(BUSINESS_ID) == "3F2A9C1E"


def test_the_welcome_text_is_indonesian_and_names_the_business_its_kelurahan_kecamatan_and_wita_time() -> None:
    text = domain.welcome_text(contact(), REGISTERED_AT, "none", None)

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
    text = domain.welcome_text(contact(), REGISTERED_AT, "none", None)

    assert "belum tercatat memiliki NIB (Nomor Induk Berusaha)" in text
    assert "melalui OSS tanpa biaya" in text


def test_the_welcome_text_of_a_business_with_an_issued_nib_quotes_the_nib_and_offers_no_help() -> None:
    text = domain.welcome_text(contact(), REGISTERED_AT, "issued", "1234567890123")

    assert "NIB usaha Anda (1234567890123) sudah tercatat." in text
    assert "belum tercatat" not in text


@pytest.mark.parametrize(("status", "nib"), [("applied", None), ("rejected", None), ("issued", None)])
def test_the_welcome_text_offers_nib_help_whenever_no_nib_is_known(status: str, nib: str | None) -> None:
    assert "belum tercatat memiliki NIB" in domain.welcome_text(contact(), REGISTERED_AT, status, nib)


def test_the_nib_issued_text_gives_the_nib_and_its_date() -> None:
    text = domain.nib_issued_text(contact(), "1234567890123", date(2026, 12, 2))

    assert text.startswith("Selamat! NIB untuk usaha Sei Sapi Ibu Maria telah terbit pada 2 Desember 2026: 1234567890123.")
    assert "SEHATI" in text


def test_the_nib_rejected_text_gives_the_reason() -> None:
    text = domain.nib_rejected_text(contact(), "KBLI tidak sesuai")

    assert "Pengajuan NIB untuk usaha Sei Sapi Ibu Maria belum berhasil. Alasan: KBLI tidak sesuai." in text


# ---------------------------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_welcoming_a_registered_business_keeps_its_contact_and_records_one_whatsapp_message() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    event = snapshot()
    envelope = envelope_of(event)

    await handlers.welcome(envelope, event, store, deps)

    assert store.contacts == {BUSINESS_ID: contact()}
    (message,) = store.messages
    assert (message.template, message.channel, message.recipient_phone) == ("welcome", "whatsapp", "+6281234567890")
    assert (message.event_id, message.business_id, message.created_at) == (envelope.event_id, BUSINESS_ID, NOW)
    assert message.id == uuid.UUID(int=1)
    assert message.body == domain.welcome_text(contact(), REGISTERED_AT, "none", None)


@pytest.mark.asyncio
async def test_the_same_registration_event_handled_twice_yields_one_welcome_message() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    event = snapshot()
    envelope = envelope_of(event)

    await handlers.welcome(envelope, event, store, deps)
    await handlers.welcome(envelope, event, store, deps)

    assert len(store.messages) == 1


@pytest.mark.asyncio
async def test_a_welcome_for_a_business_registered_with_an_nib_quotes_it() -> None:
    store = FakeNotifierStore()
    event = snapshot(nib_status="issued", nib="1234567890123")

    await handlers.welcome(envelope_of(event), event, store, new_deps())

    assert "(1234567890123)" in store.messages[0].body


@pytest.mark.asyncio
async def test_an_update_keeps_the_contact_current_without_messaging_the_owner() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await handlers.welcome(envelope_of(snapshot()), snapshot(), store, deps)
    update = snapshot(BusinessUpdated, business_version=2, business_name="Sei Sapi Mama Maria", contact_phone="+6281399990000")

    await handlers.keep_contact(envelope_of(update), update, store, deps)

    assert store.contacts[BUSINESS_ID] == contact(business_version=2, business_name="Sei Sapi Mama Maria",
                                                  phone="+6281399990000")  # fmt: skip
    assert len(store.messages) == 1


@pytest.mark.asyncio
async def test_an_older_contact_snapshot_arriving_late_never_overwrites_a_newer_one() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    newer = snapshot(BusinessUpdated, business_version=3, contact_phone="+6281399990000")
    older = snapshot(BusinessUpdated, business_version=2, contact_phone="+6281211112222")

    await handlers.keep_contact(envelope_of(newer), newer, store, deps)
    await handlers.keep_contact(envelope_of(older), older, store, deps)

    assert (store.contacts[BUSINESS_ID].business_version, store.contacts[BUSINESS_ID].phone) == (3, "+6281399990000")


@pytest.mark.asyncio
async def test_an_issued_nib_for_a_known_contact_is_announced_to_the_owner() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await handlers.welcome(envelope_of(snapshot()), snapshot(), store, deps)
    event = NIBIssued(business_id=BUSINESS_ID, business_version=3, application_id=uuid.uuid4(), nib="1234567890123",
                      issued_on=date(2026, 12, 2), kecamatan_code="53.71.04")  # fmt: skip
    envelope = envelope_of(event)

    await handlers.nib_issued(envelope, event, store, deps)

    assert [m.template for m in store.messages] == ["welcome", "nib_issued"]
    assert store.messages[1].event_id == envelope.event_id
    assert store.messages[1].body == domain.nib_issued_text(contact(), "1234567890123", date(2026, 12, 2))


@pytest.mark.asyncio
async def test_an_issued_nib_for_an_unknown_contact_records_nothing() -> None:
    store = FakeNotifierStore()
    event = NIBIssued(business_id=uuid.uuid4(), business_version=3, application_id=None, nib="1234567890123",
                      issued_on=date(2026, 12, 2), kecamatan_code="53.71.04")  # fmt: skip

    await handlers.nib_issued(envelope_of(event), event, store, new_deps())

    assert (store.messages, store.contacts) == ([], {})


@pytest.mark.asyncio
async def test_a_rejected_nib_is_explained_to_a_known_owner_and_ignored_for_an_unknown_one() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await handlers.welcome(envelope_of(snapshot()), snapshot(), store, deps)
    known = NIBRejected(business_id=BUSINESS_ID, business_version=3, application_id=uuid.uuid4(),
                        reason="KBLI tidak sesuai", kecamatan_code="53.71.04")  # fmt: skip
    unknown = known.model_copy(update={"business_id": uuid.uuid4()})

    await handlers.nib_rejected(envelope_of(known), known, store, deps)
    await handlers.nib_rejected(envelope_of(unknown), unknown, store, deps)

    assert [m.template for m in store.messages] == ["welcome", "nib_rejected"]
    assert "Alasan: KBLI tidak sesuai." in store.messages[1].body


@pytest.mark.asyncio
async def test_a_closed_business_s_contact_is_marked_closed_at_the_closing_version() -> None:
    store, deps = FakeNotifierStore(), new_deps()
    await handlers.welcome(envelope_of(snapshot()), snapshot(), store, deps)
    event = BusinessClosed(business_id=BUSINESS_ID, business_version=4, reason="usaha berhenti", closed_at=NOW,
                           kecamatan_code="53.71.04")  # fmt: skip

    await handlers.business_closed(envelope_of(event), event, store, deps)

    assert store.contacts[BUSINESS_ID] == contact(status="closed", business_version=4)
    assert len(store.messages) == 1  # closing sends nothing


@pytest.mark.asyncio
async def test_closing_a_business_the_notifier_never_heard_of_changes_nothing() -> None:
    store = FakeNotifierStore()
    event = BusinessClosed(business_id=BUSINESS_ID, business_version=4, reason="usaha berhenti", closed_at=NOW,
                           kecamatan_code="53.71.04")  # fmt: skip

    await handlers.business_closed(envelope_of(event), event, store, new_deps())

    assert (store.contacts, store.messages) == ({}, [])

"""Tests events.py: each registry domain event becomes its shared contract payload, and none ever carries a NIK."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from services.registry import domain
from services.registry.events import PRODUCER, to_payload, translator
from services.registry.domain import YouthRange
from shared.contracts import CATALOG, Envelope
from shared.contracts.registry import (
    BusinessClosed,
    BusinessRegistered,
    BusinessUpdated,
    NIBApplied,
    NIBIssued,
    NIBRejected,
)

from .builders import MARIA_NIK, NOW, YOHANES, business, rules

YOUTH = YouthRange()
LATER = NOW + timedelta(days=2)


def test_a_registration_becomes_business_registered_with_the_whole_public_snapshot() -> None:
    b = business()

    payload = to_payload(domain.Registered(b, "officer"), YOUTH)

    assert isinstance(payload, BusinessRegistered)
    assert payload.model_dump() == {
        "business_id": b.id,
        "business_version": 1,
        "business_name": "Sei Sapi Ibu Maria",
        "kbli_code": "10130",
        "kbli_version": 2020,
        "kecamatan": "Oebobo",
        "kecamatan_code": "53.71.04",
        "kecamatan_bps": "5371030",
        "kelurahan": "Fatululi",
        "kelurahan_code": "53.71.04.1011",
        "scale": "micro",
        "scale_basis": "annual_sales",
        "capital_rupiah": 10_000_000,
        "annual_sales_rupiah": 50_000_000,
        "youth_owned": False,
        "youth_until": date(2021, 8, 16),
        "women_owned": True,
        "nib_status": "none",
        "nib": None,
        "contact_phone": "+6281234567890",
        "status": "active",
        "registered_at": NOW,
        "source": "officer",
    }


def test_a_young_man_s_business_is_youth_owned_until_the_day_before_he_turns_thirty_one() -> None:
    payload = to_payload(domain.Registered(business(YOHANES), "import"), YOUTH)

    assert (payload.youth_owned, payload.youth_until, payload.women_owned) == (True, date(2030, 12, 31), False)
    assert payload.source == "import"


def test_youth_is_judged_on_the_kupang_date_of_the_change_not_the_utc_date() -> None:
    # Born 11 March 1995: turns 31 on 11 March 2026, which starts at 16.00 UTC on the 10th in Kupang.
    b = business(YOHANES, owner_nik="5371041103950001", owner_birth_date="1995-03-11")
    before_midnight = replace(b, updated_at=datetime(2026, 3, 10, 15, 59, tzinfo=UTC))
    after_midnight = replace(b, updated_at=datetime(2026, 3, 10, 16, 0, tzinfo=UTC))

    assert to_payload(domain.Registered(before_midnight, "officer"), YOUTH).youth_owned is True
    assert to_payload(domain.Registered(after_midnight, "officer"), YOUTH).youth_owned is False


def test_an_update_becomes_business_updated_naming_the_changed_fields() -> None:
    b, changed = domain.change(business(), domain.BusinessChanges(phone="0813 9999 0000"), rules(), LATER)

    payload = to_payload(domain.Updated(b, changed), YOUTH)

    assert isinstance(payload, BusinessUpdated)
    assert (payload.business_version, payload.changed_fields, payload.contact_phone) == (2, ("phone",), "+6281399990000")


def test_an_nib_application_becomes_nib_applied() -> None:
    b, application = domain.apply_for_nib(business(), None, uuid.uuid4(), LATER)

    payload = to_payload(domain.NibApplied(b, application), YOUTH)

    assert payload == NIBApplied(
        business_id=b.id, business_version=2, application_id=application.id, applied_at=LATER, kecamatan_code="53.71.04"
    )


def test_an_issued_nib_becomes_nib_issued() -> None:
    b, application = domain.apply_for_nib(business(), None, uuid.uuid4(), LATER)
    b, application = domain.issue_nib(b, application, "1234567890123", date(2026, 3, 11), LATER)

    payload = to_payload(domain.NibIssued(b, application.id, "1234567890123", date(2026, 3, 11)), YOUTH)

    assert payload == NIBIssued(
        business_id=b.id, business_version=3, application_id=application.id, nib="1234567890123",
        issued_on=date(2026, 3, 11), kecamatan_code="53.71.04",
    )  # fmt: skip


def test_an_nib_that_came_with_an_import_becomes_nib_issued_without_an_application() -> None:
    b = replace(business(), nib="1234567890123", nib_status="issued", version=2)

    payload = to_payload(domain.NibIssued(b, None, "1234567890123", date(2026, 3, 10)), YOUTH)

    assert isinstance(payload, NIBIssued)
    assert payload.application_id is None


def test_a_rejected_nib_application_becomes_nib_rejected_with_its_reason() -> None:
    b, application = domain.apply_for_nib(business(), None, uuid.uuid4(), LATER)
    b, application = domain.reject_nib(b, application, "KBLI tidak sesuai", LATER)

    payload = to_payload(domain.NibRejected(b, application), YOUTH)

    assert payload == NIBRejected(
        business_id=b.id, business_version=3, application_id=application.id, reason="KBLI tidak sesuai",
        kecamatan_code="53.71.04",
    )  # fmt: skip


def test_a_closed_business_becomes_business_closed_with_when_and_why() -> None:
    b = domain.close(business(), "usaha berhenti", LATER)

    payload = to_payload(domain.Closed(b), YOUTH)

    assert payload == BusinessClosed(
        business_id=b.id, business_version=2, reason="usaha berhenti", closed_at=LATER, kecamatan_code="53.71.04"
    )


def test_the_translator_wraps_each_event_in_an_envelope_keyed_by_the_business() -> None:
    b = business()
    closed = domain.close(b, "usaha berhenti", LATER)
    correlation = uuid.uuid4()

    envelopes = translator(YOUTH)([domain.Registered(b, "officer"), domain.Closed(closed)], correlation)

    assert [e.event_type for e in envelopes] == ["BusinessRegistered", "BusinessClosed"]
    for envelope, occurred in zip(envelopes, (NOW, LATER), strict=True):
        assert envelope.aggregate_type == "business"
        assert envelope.aggregate_id == str(b.id)
        assert envelope.producer == PRODUCER == "registry"
        assert envelope.correlation_id == correlation
        assert envelope.occurred_at == occurred
        assert envelope.event_version == 1
    assert envelopes[0].event_id != envelopes[1].event_id


def test_an_envelope_read_back_from_its_bytes_decodes_to_the_same_payload() -> None:
    b = business()
    (envelope,) = translator(YOUTH)([domain.Registered(b, "officer")], uuid.uuid4())

    decoded = CATALOG.decode(Envelope.from_bytes(envelope.to_json_bytes()))

    assert decoded == to_payload(domain.Registered(b, "officer"), YOUTH)


def test_a_serialised_business_registered_never_contains_the_nik_but_does_carry_the_contact_phone() -> None:
    (envelope,) = translator(YOUTH)([domain.Registered(business(), "officer")], uuid.uuid4())

    text = envelope.to_json_bytes().decode()

    assert MARIA_NIK not in text
    assert re.search(r"\d{16}", text) is None
    assert not [key for key in envelope.payload if "nik" in key]
    assert '"contact_phone":"+6281234567890"' in text

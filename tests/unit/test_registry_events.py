"""Tests integration.py and the registry's publisher: each registry domain event becomes its shared contract payload
and envelope, and none ever carries a NIK or a birth date."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import date, timedelta

from services.registry.domain import business as aggregate
from services.registry.domain.forms import BusinessChanges
from services.registry.integration import translate
from shared.contracts import CATALOG, Envelope, EventPayload
from shared.contracts.registry import (
    BusinessClosed,
    BusinessRegistered,
    BusinessUpdated,
    NIBApplied,
    NIBIssued,
    NIBRejected,
)
from shared.unit_of_work import Cause

from .builders import MARIA_NIK, NOW, OFFICER, YOHANES, business, rules
from .registry_fakes import PSEUDONYM_KEY, REGISTRY_PUBLISHER

LATER = NOW + timedelta(days=2)


def to_payload(event: aggregate.DomainEvent) -> EventPayload:
    """The internal contract payload a registry domain event becomes (the other is its public copy)."""
    internal, public = translate(event, PSEUDONYM_KEY)
    assert public.event_type == "BusinessListed"
    return internal


def test_a_registration_becomes_business_registered_with_the_whole_public_snapshot() -> None:
    b = business()

    payload = to_payload(aggregate.Registered(b, "officer"))

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
        "women_owned": True,
        "nib_status": "none",
        "nib": None,
        "contact_phone": "+6281234567890",
        "status": "active",
        "registered_at": NOW,
        "source": "officer",
    }


def test_a_young_man_s_business_is_published_youth_owned_and_not_women_owned() -> None:
    payload = to_payload(aggregate.Registered(business(YOHANES), "import"))

    assert (payload.youth_owned, payload.women_owned) == (True, False)
    assert payload.source == "import"


def test_the_published_youth_flag_is_the_business_s_own_not_recomputed_from_the_birth_date() -> None:
    # The flag changes only when the monthly sweep refreshes it (see the aggregate's and the handlers' tests).
    young, old = business(YOHANES), business()

    assert to_payload(aggregate.Registered(replace(young, youth_owned=False), "officer")).youth_owned is False
    assert to_payload(aggregate.Registered(replace(old, youth_owned=True), "officer")).youth_owned is True


def test_no_snapshot_carries_a_birth_date_or_the_last_youth_day() -> None:
    fields = to_payload(aggregate.Registered(business(), "officer")).model_dump()

    assert "youth_until" not in fields
    assert not [key for key in fields if "birth" in key]


def test_an_update_becomes_business_updated_naming_the_changed_fields() -> None:
    b, changed = aggregate.change(business(), BusinessChanges(phone="0813 9999 0000"), rules(), LATER)

    payload = to_payload(aggregate.Updated(b, changed))

    assert isinstance(payload, BusinessUpdated)
    assert (payload.business_version, payload.changed_fields, payload.contact_phone) == (2, ("phone",), "+6281399990000")


def test_an_nib_application_becomes_nib_applied() -> None:
    b, application = aggregate.apply_for_nib(business(), None, uuid.uuid4(), LATER)

    payload = to_payload(aggregate.NibApplied(b, application))

    assert payload == NIBApplied(
        business_id=b.id, business_version=2, application_id=application.id, applied_at=LATER, kecamatan_code="53.71.04"
    )


def test_an_issued_nib_becomes_nib_issued() -> None:
    b, application = aggregate.apply_for_nib(business(), None, uuid.uuid4(), LATER)
    b, application = aggregate.issue_nib(b, application, "1234567890123", date(2026, 3, 11), LATER)

    payload = to_payload(aggregate.NibIssued(b, application.id, "1234567890123", date(2026, 3, 11)))

    assert payload == NIBIssued(
        business_id=b.id, business_version=3, application_id=application.id, nib="1234567890123",
        issued_on=date(2026, 3, 11), kecamatan_code="53.71.04",
    )  # fmt: skip


def test_an_nib_that_came_with_an_import_becomes_nib_issued_without_an_application() -> None:
    b = replace(business(), nib="1234567890123", nib_status="issued", version=2)

    payload = to_payload(aggregate.NibIssued(b, None, "1234567890123", date(2026, 3, 10)))

    assert isinstance(payload, NIBIssued)
    assert payload.application_id is None


def test_a_rejected_nib_application_becomes_nib_rejected_with_its_reason() -> None:
    b, application = aggregate.apply_for_nib(business(), None, uuid.uuid4(), LATER)
    b, application = aggregate.reject_nib(b, application, "KBLI tidak sesuai", LATER)

    payload = to_payload(aggregate.NibRejected(b, application))

    assert payload == NIBRejected(
        business_id=b.id, business_version=3, application_id=application.id, reason="KBLI tidak sesuai",
        kecamatan_code="53.71.04",
    )  # fmt: skip


def test_a_closed_business_becomes_business_closed_with_when_and_why() -> None:
    b = aggregate.close(business(), "usaha berhenti", LATER)

    payload = to_payload(aggregate.Closed(b))

    assert payload == BusinessClosed(
        business_id=b.id, business_version=2, reason="usaha berhenti", closed_at=LATER, kecamatan_code="53.71.04"
    )


def test_the_publisher_wraps_each_event_in_an_envelope_keyed_by_the_business_with_its_cause() -> None:
    b = business()
    closed = aggregate.close(b, "usaha berhenti", LATER)
    cause = Cause.request(uuid.uuid4(), OFFICER.actor)

    events = [aggregate.Registered(b, "officer"), aggregate.Closed(closed)]

    envelopes = [e for e in REGISTRY_PUBLISHER.envelopes(events, [cause, cause]) if e.aggregate_type == "business"]

    assert [(e.event_type, e.event_version) for e in envelopes] == [("BusinessRegistered", 2), ("BusinessClosed", 1)]
    assert [e.aggregate_version for e in envelopes] == [1, 2]
    for envelope in envelopes:
        assert envelope.aggregate_type == "business"
        assert envelope.aggregate_id == str(b.id)
        assert envelope.producer == "registry"
        assert (envelope.correlation_id, envelope.causation_id) == (cause.correlation_id, None)
        assert envelope.actor == OFFICER.subject
        assert REGISTRY_PUBLISHER.route(envelope) == "registry.business.v1"
    assert envelopes[0].event_id != envelopes[1].event_id


def test_an_event_caused_by_another_event_names_it_as_its_causation() -> None:
    cause = Cause(uuid.uuid4(), "registry", causation_id=uuid.uuid4())

    closed = aggregate.Closed(aggregate.close(business(), "pindah", LATER))

    envelope, _public = REGISTRY_PUBLISHER.envelopes([closed], [cause])

    assert (envelope.correlation_id, envelope.causation_id, envelope.actor) == (
        cause.correlation_id, cause.causation_id, "registry",
    )  # fmt: skip


def test_an_envelope_read_back_from_its_bytes_decodes_to_the_same_payload() -> None:
    b = business()
    envelope, _public = REGISTRY_PUBLISHER.envelopes([aggregate.Registered(b, "officer")], [Cause.timer("registry")])

    decoded = CATALOG.decode(Envelope.from_bytes(envelope.to_json_bytes()))

    assert decoded == to_payload(aggregate.Registered(b, "officer"))


def test_a_serialised_business_registered_never_contains_the_nik_but_does_carry_the_contact_phone() -> None:
    envelope, _public = REGISTRY_PUBLISHER.envelopes([aggregate.Registered(business(), "officer")], [Cause.timer("registry")])

    text = envelope.to_json_bytes().decode()

    assert MARIA_NIK not in text
    assert re.search(r"\d{16}", text) is None
    assert not [key for key in envelope.payload if "nik" in key]
    assert '"contact_phone":"+6281234567890"' in text

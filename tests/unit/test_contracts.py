"""Tests the shared contracts: the envelope on the wire, the event catalog, upcasting and the topic names."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from services.registry import domain
from services.registry.events import translator
from shared.contracts import CATALOG, ContractError, Envelope, EventCatalog, EventPayload, UnknownEvent, new_envelope
from shared.contracts.registry import REGISTRY_EVENTS, BusinessClosed, BusinessRegistered, NIBRejected
from shared.contracts.topics import REGISTRY_BUSINESS, dlq, topic_for

from .builders import business


def envelope_dict(**overrides: Any) -> dict[str, Any]:
    data = {
        "event_id": str(uuid.uuid4()),
        "event_type": "BusinessClosed",
        "event_version": 1,
        "aggregate_type": "business",
        "aggregate_id": str(uuid.uuid4()),
        "occurred_at": "2026-03-10T02:00:00Z",
        "correlation_id": str(uuid.uuid4()),
        "producer": "registry",
        "payload": {},
    }
    data.update(overrides)
    return data


def registered_envelope() -> Envelope:
    (envelope,) = translator(domain.YouthRange())([domain.Registered(business(), "officer")], uuid.uuid4())
    return envelope


# ---------------------------------------------------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b"{}",
        json.dumps(envelope_dict(event_version=0)).encode(),
        json.dumps(envelope_dict(event_id="not-a-uuid")).encode(),
        json.dumps(envelope_dict(occurred_at="2026-03-10T02:00:00")).encode(),  # no time zone
        json.dumps(envelope_dict(event_type="")).encode(),
        json.dumps(envelope_dict(unexpected="field")).encode(),
        json.dumps({k: v for k, v in envelope_dict().items() if k != "payload"}).encode(),
    ],
)
def test_anything_that_is_not_a_berdaya_envelope_is_refused_with_a_contract_error(raw: bytes | None) -> None:
    with pytest.raises(ContractError):
        Envelope.from_bytes(raw)


def test_a_contract_error_is_a_value_error_so_it_is_never_mistaken_for_an_infrastructure_failure() -> None:
    assert issubclass(ContractError, ValueError)
    assert not issubclass(ContractError, OSError)


def test_an_envelope_s_occurred_at_is_kept_in_utc() -> None:
    envelope = Envelope.from_bytes(json.dumps(envelope_dict(occurred_at="2026-03-10T10:00:00+08:00")).encode())
    assert envelope.occurred_at == datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    assert envelope.occurred_at.utcoffset().total_seconds() == 0


def test_an_envelope_survives_a_round_trip_through_its_bytes() -> None:
    envelope = registered_envelope()
    assert Envelope.from_bytes(envelope.to_json_bytes()) == envelope


# ---------------------------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------------------------


def test_the_catalog_knows_every_registry_event_at_version_one() -> None:
    assert {(m.event_type, m.event_version) for m in CATALOG.models()} >= {
        (m.event_type, 1) for m in REGISTRY_EVENTS
    }
    assert len({m.event_type for m in REGISTRY_EVENTS}) == 6


def test_the_catalog_decodes_each_envelope_to_the_model_of_its_event_type() -> None:
    b = domain.close(business(), "usaha berhenti", datetime(2026, 3, 12, tzinfo=UTC))
    closed = new_envelope(
        BusinessClosed(business_id=b.id, business_version=2, reason="usaha berhenti", closed_at=b.closed_at,
                       kecamatan_code="53.71.04"),
        producer="registry", correlation_id=uuid.uuid4(),
    )  # fmt: skip
    rejected = new_envelope(
        NIBRejected(business_id=b.id, business_version=3, application_id=uuid.uuid4(), reason="salah",
                    kecamatan_code="53.71.04"),
        producer="registry", correlation_id=uuid.uuid4(),
    )  # fmt: skip

    assert type(CATALOG.decode(registered_envelope())) is BusinessRegistered
    assert type(CATALOG.decode(closed)) is BusinessClosed
    assert type(CATALOG.decode(rejected)) is NIBRejected
    assert CATALOG.decode(rejected).reason == "salah"


def test_an_envelope_of_a_newer_version_than_the_consumer_knows_is_an_unknown_event() -> None:
    newer = registered_envelope().model_copy(update={"event_version": 2})

    with pytest.raises(UnknownEvent, match="newer than this consumer knows"):
        CATALOG.decode(newer)


def test_an_envelope_of_an_event_type_nobody_registered_is_an_unknown_event() -> None:
    with pytest.raises(UnknownEvent):
        CATALOG.decode(Envelope.model_validate(envelope_dict(event_type="ProgrammeLaunched")))


def test_a_payload_that_breaks_its_contract_is_a_contract_error_but_not_an_unknown_event() -> None:
    envelope = registered_envelope()
    broken = envelope.model_copy(update={"payload": {**envelope.payload, "capital_rupiah": "10000000"}})

    with pytest.raises(ContractError) as exc:
        CATALOG.decode(broken)
    assert not isinstance(exc.value, UnknownEvent)
    assert "capital_rupiah" in str(exc.value)


def test_a_payload_with_a_landline_as_contact_phone_breaks_the_contract() -> None:
    envelope = registered_envelope()
    broken = envelope.model_copy(update={"payload": {**envelope.payload, "contact_phone": "+62380821234"}})

    with pytest.raises(ContractError, match="contact_phone"):
        CATALOG.decode(broken)


def test_a_payload_field_added_by_a_newer_producer_is_ignored() -> None:
    envelope = registered_envelope()
    extended = envelope.model_copy(update={"payload": {**envelope.payload, "halal_certified": True}})

    assert CATALOG.decode(extended) == CATALOG.decode(envelope)


# ---------------------------------------------------------------------------------------------------------------
# Upcasting, on a catalog of its own
# ---------------------------------------------------------------------------------------------------------------


class _Attended(EventPayload):
    aggregate_type: ClassVar[str] = "training"
    event_type: ClassVar[str] = "TrainingAttended"
    training_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.training_id)


class AttendedV1(_Attended):
    event_version: ClassVar[int] = 1
    hours: int


class AttendedV2(_Attended):
    event_version: ClassVar[int] = 2
    minutes: int
    certified: bool


def v1_envelope(training_id: uuid.UUID) -> Envelope:
    return new_envelope(AttendedV1(training_id=training_id, hours=3), producer="training", correlation_id=uuid.uuid4())


def test_an_upcaster_turns_a_version_one_payload_into_version_two() -> None:
    catalog = EventCatalog()
    catalog.register(AttendedV1)
    catalog.register(AttendedV2)

    @catalog.upcaster("TrainingAttended", 1)
    def hours_to_minutes(data: dict[str, Any]) -> dict[str, Any]:
        return {"training_id": data["training_id"], "minutes": data.pop("hours") * 60, "certified": False}

    training_id = uuid.uuid4()
    decoded = catalog.decode(v1_envelope(training_id))

    assert decoded == AttendedV2(training_id=training_id, minutes=180, certified=False)
    assert catalog.latest_version("TrainingAttended") == 2


def test_an_upcaster_works_on_a_copy_so_the_envelope_keeps_its_original_payload() -> None:
    catalog = EventCatalog()
    catalog.register(AttendedV1)
    catalog.register(AttendedV2)
    catalog.upcaster("TrainingAttended", 1)(lambda d: {**d, "minutes": d.pop("hours") * 60, "certified": True})
    envelope = v1_envelope(uuid.uuid4())

    catalog.decode(envelope)

    assert envelope.payload["hours"] == 3


def test_an_old_version_without_an_upcaster_is_an_unknown_event() -> None:
    catalog = EventCatalog()
    catalog.register(AttendedV1)
    catalog.register(AttendedV2)

    with pytest.raises(UnknownEvent, match="no upcaster from TrainingAttended v1"):
        catalog.decode(v1_envelope(uuid.uuid4()))


def test_a_model_registered_twice_is_refused() -> None:
    catalog = EventCatalog()
    catalog.register(AttendedV1)
    with pytest.raises(ValueError, match="registered twice"):
        catalog.register(AttendedV1)


def test_models_registered_on_a_fresh_catalog_stay_out_of_the_global_one() -> None:
    EventCatalog().register(AttendedV1)
    with pytest.raises(UnknownEvent):
        CATALOG.latest_version("TrainingAttended")


# ---------------------------------------------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------------------------------------------


def test_business_events_travel_on_the_registry_topic_and_dead_letters_on_its_dlq() -> None:
    assert topic_for("business") == REGISTRY_BUSINESS == "registry.business.v1"
    assert dlq(REGISTRY_BUSINESS) == "registry.business.v1.dlq"


def test_an_aggregate_type_without_a_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="no topic for aggregate type 'training'"):
        topic_for("training")

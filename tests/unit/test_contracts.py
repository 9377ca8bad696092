"""Tests the shared contracts: the envelope on the wire, the event catalog, upcasting of old versions, what the
unit of work's publisher puts in each envelope, and the topic names."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from shared.contracts import CATALOG, ContractError, Envelope, EventCatalog, EventPayload, UnknownEvent, new_envelope
from shared.contracts.envelope import MAX_RUPIAH
from shared.contracts.funding import CSRPledged, Earmarks, FundingAccepted
from shared.contracts.registry import (
    REGISTRY_EVENTS,
    BusinessClosed,
    BusinessRegistered,
    BusinessUpdated,
    NIBRejected,
)
from shared.contracts.public import BusinessListed
from shared.contracts.topics import FUNDING_PLEDGE, PUBLIC_BUSINESS, REGISTRY_BUSINESS, TRAINING_PARTICIPANT, dlq, topic_for
from shared.contracts.training import Assessment, TrainingCompleted
from shared.messaging.outbox import _row
from shared.unit_of_work import Cause, Publisher

BUSINESS_ID = uuid.UUID("3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f")
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


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


def snapshot_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        business_id=BUSINESS_ID, business_version=1, business_name="Sei Sapi Ibu Maria", kbli_code="10130",
        kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, capital_rupiah=10_000_000, youth_owned=False, women_owned=True,
        nib_status="none", nib=None, contact_phone="+6281234567890", status="active", registered_at=NOW,
    )  # fmt: skip
    return {**values, **overrides}


def registered(**overrides: Any) -> BusinessRegistered:
    return BusinessRegistered(**snapshot_values(source="officer", **overrides))


def registered_envelope(**overrides: Any) -> Envelope:
    return new_envelope(registered(**overrides), producer="registry", correlation_id=uuid.uuid4())


def pledged(**overrides: Any) -> CSRPledged:
    values: dict[str, Any] = dict(
        pledge_id=uuid.uuid4(), sponsor_id=uuid.uuid4(), sponsor_name="Bank NTT", sponsor_kind="bank",
        title="CSR Bank NTT untuk UMKM", instrument="grant", total_rupiah=50_000_000, amount_mode="fixed",
        amount_per_business_rupiah=5_000_000, min_offer_rupiah=5_000_000, valid_from=date(2026, 3, 1),
        valid_until=date(2026, 6, 30), earmarks=Earmarks(), pledged_at=NOW,
    )  # fmt: skip
    return CSRPledged(**{**values, **overrides})


def old_envelope(event_type: str, version: int, payload: dict[str, Any], aggregate_type: str = "business") -> Envelope:
    """An envelope as a producer of an older version wrote it (no actor, no aggregate_version)."""
    return Envelope.model_validate(envelope_dict(event_type=event_type, event_version=version,
                                                 aggregate_type=aggregate_type, payload=payload))  # fmt: skip


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
        json.dumps(envelope_dict(aggregate_version=0)).encode(),
        json.dumps(envelope_dict(aggregate_version="two")).encode(),
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
    envelope = new_envelope(registered(), producer="registry", correlation_id=uuid.uuid4(),
                            causation_id=uuid.uuid4(), actor="officer-7")  # fmt: skip
    assert Envelope.from_bytes(envelope.to_json_bytes()) == envelope


def test_an_envelope_written_before_actor_and_aggregate_version_existed_is_still_read() -> None:
    envelope = Envelope.from_bytes(json.dumps(envelope_dict()).encode())
    assert (envelope.actor, envelope.aggregate_version) == (None, None)


def test_new_envelope_takes_the_aggregate_version_from_the_payload_and_the_actor_it_is_given() -> None:
    envelope = new_envelope(registered(business_version=7), producer="registry", correlation_id=uuid.uuid4(),
                            actor="officer-7")  # fmt: skip

    assert envelope.aggregate_version == 7
    assert envelope.actor == "officer-7"
    assert (envelope.aggregate_type, envelope.aggregate_id) == ("business", str(BUSINESS_ID))
    assert (envelope.event_type, envelope.event_version) == ("BusinessRegistered", 2)


def test_an_envelope_built_for_a_payload_is_the_envelope_validation_would_give_and_serialises_the_same() -> None:
    envelope = new_envelope(registered(business_version=3), producer="registry", correlation_id=uuid.uuid4(),
                            causation_id=uuid.uuid4(), actor="officer-7",
                            occurred_at=datetime(2026, 3, 10, 10, 0, tzinfo=timezone(timedelta(hours=8))))  # fmt: skip
    validated = Envelope.model_validate(envelope.model_dump())

    assert envelope == validated
    assert envelope.model_fields_set == validated.model_fields_set
    assert envelope.to_json_bytes() == validated.to_json_bytes()
    assert envelope.occurred_at == datetime(2026, 3, 10, 2, 0, tzinfo=UTC) and envelope.occurred_at.tzinfo is UTC
    assert envelope.model_copy(update={"actor": None}).actor is None and envelope.actor == "officer-7"
    with pytest.raises(ValidationError):
        envelope.actor = "someone else"  # type: ignore[misc]


def test_the_outbox_row_of_an_envelope_carries_the_same_bytes_model_dump_json_gives() -> None:
    envelope = new_envelope(registered(), producer="registry", correlation_id=uuid.uuid4(), actor="officer-7")
    assert _row(envelope, REGISTRY_BUSINESS)[6] == envelope.model_dump_json()


class _Unchecked(EventPayload):
    """A payload whose key and version nothing validated, as a producer's bug would make them."""

    event_type: ClassVar[str] = "Unchecked"
    event_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = "business"
    key: str = "b-1"
    version: int = 1

    def aggregate_key(self) -> str:
        return self.key

    def aggregate_version(self) -> int | None:
        return self.version


@pytest.mark.parametrize(
    ("payload", "options", "refusal"),
    [
        (_Unchecked(key=""), {}, "empty aggregate key"),
        (_Unchecked(version=0), {}, "versions start at 1"),
        (_Unchecked(), {"occurred_at": datetime(2026, 3, 10, 2, 0)}, "time zone"),
        (_Unchecked(), {"producer": ""}, "producer"),
    ],
    ids=["empty key", "version 0", "naive time", "no producer"],
)
def test_an_envelope_that_validation_would_refuse_is_never_built(payload: EventPayload, options: dict[str, Any],
                                                                  refusal: str) -> None:  # fmt: skip
    with pytest.raises(ValueError, match=refusal):
        new_envelope(payload, **{"producer": "registry", "correlation_id": uuid.uuid4(), **options})


def test_a_training_event_s_aggregate_version_is_the_participant_version() -> None:
    completed = TrainingCompleted(business_id=BUSINESS_ID, participant_version=4, cohort_id=uuid.uuid4(),
                                  topic="packaging", completed_on=date(2026, 3, 1))  # fmt: skip

    envelope = new_envelope(completed, producer="training", correlation_id=uuid.uuid4())

    assert (envelope.aggregate_type, envelope.aggregate_id, envelope.aggregate_version) == (
        "participant", str(BUSINESS_ID), 4,
    )  # fmt: skip


def test_a_pledge_event_counts_no_versions_so_its_envelope_has_no_aggregate_version() -> None:
    envelope = new_envelope(pledged(), producer="funding", correlation_id=uuid.uuid4())
    assert envelope.aggregate_version is None
    assert envelope.actor is None


# ---------------------------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------------------------


def test_the_catalog_knows_every_registry_event_at_its_current_version() -> None:
    known = {(m.event_type, m.event_version) for m in CATALOG.models()}
    assert {(m.event_type, m.event_version) for m in REGISTRY_EVENTS} <= known
    assert {(m.event_type, m.event_version) for m in REGISTRY_EVENTS if m.event_version > 1} == {
        ("BusinessRegistered", 2), ("BusinessUpdated", 2),
    }  # fmt: skip
    assert len({m.event_type for m in REGISTRY_EVENTS}) == 6


def test_the_catalog_holds_one_current_model_per_event_type() -> None:
    types = [m.event_type for m in CATALOG.models()]
    assert len(types) == len(set(types))


def test_the_catalog_decodes_each_envelope_to_the_model_of_its_event_type() -> None:
    closed = new_envelope(
        BusinessClosed(business_id=BUSINESS_ID, business_version=2, reason="usaha berhenti", closed_at=NOW,
                       kecamatan_code="53.71.04"),
        producer="registry", correlation_id=uuid.uuid4(),
    )  # fmt: skip
    rejected = new_envelope(
        NIBRejected(business_id=BUSINESS_ID, business_version=3, application_id=uuid.uuid4(), reason="salah",
                    kecamatan_code="53.71.04"),
        producer="registry", correlation_id=uuid.uuid4(),
    )  # fmt: skip

    assert type(CATALOG.decode(registered_envelope())) is BusinessRegistered
    assert type(CATALOG.decode(closed)) is BusinessClosed
    assert type(CATALOG.decode(rejected)) is NIBRejected
    assert CATALOG.decode(rejected).reason == "salah"


def test_an_envelope_of_a_newer_version_than_the_consumer_knows_is_an_unknown_event() -> None:
    newer = registered_envelope().model_copy(update={"event_version": 3})

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


def test_a_payload_with_a_phone_in_another_script_s_digits_breaks_the_contract() -> None:
    envelope = registered_envelope()
    broken = envelope.model_copy(update={"payload": {**envelope.payload, "contact_phone": "+62812\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660"}})

    with pytest.raises(ContractError, match="contact_phone"):
        CATALOG.decode(broken)


def test_a_payload_field_added_by_a_newer_producer_is_ignored() -> None:
    envelope = registered_envelope()
    extended = envelope.model_copy(update={"payload": {**envelope.payload, "halal_certified": True}})

    assert CATALOG.decode(extended) == CATALOG.decode(envelope)


def test_a_contract_reads_any_rupiah_amount_an_older_producer_wrote_the_forms_are_what_bound_them() -> None:
    # Bounds belong to the forms that take input (MAX_RUPIAH there); a contract that tightened them would make
    # records already on Kafka unreadable.
    envelope = new_envelope(pledged(total_rupiah=MAX_RUPIAH), producer="funding", correlation_id=uuid.uuid4())
    larger = envelope.model_copy(update={"payload": {**envelope.payload, "total_rupiah": MAX_RUPIAH * 1000}})
    assert CATALOG.decode(larger).total_rupiah == MAX_RUPIAH * 1000


def test_rupiah_are_strict_integers_never_floats_or_strings() -> None:
    for wrong in (5e6, "5000000", -1):
        with pytest.raises(ValueError):
            pledged(total_rupiah=wrong)


def test_a_pledge_earmarks_any_training_topic_by_its_name_and_nothing_that_is_not_one() -> None:
    assert Earmarks(trainings_completed=("packaging", "tenun_ikat")).trainings_completed == ("packaging", "tenun_ikat")
    for wrong in ("Packaging", "x", "digital marketing", "a" * 41):
        with pytest.raises(ValueError):
            Earmarks(trainings_completed=(wrong,))


def test_a_pledge_with_more_earmarks_than_the_form_allows_is_still_read_the_form_is_what_bounds_them() -> None:
    earmarks = Earmarks(kbli_prefixes=tuple(str(1000 + i) for i in range(150)))
    assert len(earmarks.kbli_prefixes) == 150


def test_an_assessment_scores_each_part_from_0_to_100() -> None:
    assert Assessment(management=0, leadership=100, business_prospects=55).leadership == 100
    with pytest.raises(ValueError):
        Assessment(management=101, leadership=50, business_prospects=50)


# ---------------------------------------------------------------------------------------------------------------
# The project's upcasters: old versions stay readable
# ---------------------------------------------------------------------------------------------------------------


def test_the_older_versions_still_read_are_those_of_the_registry_snapshots_the_pledge_and_the_training() -> None:
    assert CATALOG.upcasted_versions() == [
        ("BusinessRegistered", 1), ("BusinessUpdated", 1), ("CSRPledged", 1), ("TrainingCompleted", 1),
    ]  # fmt: skip


@pytest.mark.parametrize(("model", "extra"), [(BusinessRegistered, {"source": "import"}),
                                              (BusinessUpdated, {"changed_fields": ["phone"]})])  # fmt: skip
def test_a_version_one_business_snapshot_is_read_as_version_two_without_youth_until(
    model: type[BusinessRegistered] | type[BusinessUpdated], extra: dict[str, Any]
) -> None:
    v1 = json.loads(model(**snapshot_values(**extra)).model_dump_json()) | {"youth_until": "2021-08-16"}
    envelope = old_envelope(model.event_type, 1, v1)

    decoded = CATALOG.decode(envelope)

    assert type(decoded) is model
    assert decoded == model(**snapshot_values(**extra))
    assert "youth_until" not in decoded.model_dump()
    assert envelope.payload["youth_until"] == "2021-08-16"  # the envelope keeps what was on the wire


def test_a_version_one_training_completion_of_a_cohort_is_read_as_the_business_s_participation() -> None:
    cohort_id = uuid.uuid4()
    v1 = {"cohort_id": str(cohort_id), "business_id": str(BUSINESS_ID), "programme": "halal_certification",
          "completed_on": "2026-02-27"}  # fmt: skip

    decoded = CATALOG.decode(old_envelope("TrainingCompleted", 1, v1, aggregate_type="cohort"))

    assert decoded == TrainingCompleted(business_id=BUSINESS_ID, participant_version=1, cohort_id=cohort_id,
                                        programme_id=None, topic="halal_certification",
                                        completed_on=date(2026, 2, 27), assessment=None)  # fmt: skip
    assert decoded.aggregate_key() == str(BUSINESS_ID)


def test_a_version_one_pledge_with_training_programmes_is_read_as_version_two_with_those_topics() -> None:
    earmarks = Earmarks(trainings_completed=("packaging", "digital_marketing"))
    v2 = json.loads(pledged(earmarks=earmarks).model_dump_json())

    decoded = CATALOG.decode(old_envelope("CSRPledged", 1, v2, aggregate_type="pledge"))

    assert type(decoded) is CSRPledged
    assert decoded.earmarks.trainings_completed == ("packaging", "digital_marketing")
    assert decoded.total_rupiah == 50_000_000


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
    assert catalog.upcasted_versions() == [("TrainingAttended", 1)]


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
# Publisher: what the unit of work writes in each envelope
# ---------------------------------------------------------------------------------------------------------------


def publisher() -> Publisher[BusinessRegistered]:
    return Publisher("registry", lambda event: [event], lambda envelope: topic_for(envelope.aggregate_type))


def test_the_publisher_writes_each_event_s_actor_correlation_causation_and_aggregate_version() -> None:
    by_request = Cause.request(uuid.uuid4(), "officer-7")
    cause_event = new_envelope(registered(), producer="training", correlation_id=uuid.uuid4(), actor="trainer-2")
    by_event = Cause.event(cause_event)

    first, second = publisher().envelopes([registered(business_version=1), registered(business_version=2)],
                                          [by_request, by_event])  # fmt: skip

    assert (first.actor, first.correlation_id, first.causation_id, first.aggregate_version) == (
        "officer-7", by_request.correlation_id, None, 1,
    )  # fmt: skip
    assert (second.actor, second.correlation_id, second.causation_id, second.aggregate_version) == (
        "trainer-2", cause_event.correlation_id, cause_event.event_id, 2,
    )  # fmt: skip
    assert {first.producer, second.producer} == {"registry"}
    assert first.event_id != second.event_id


def test_work_caused_by_an_event_without_an_actor_is_done_on_behalf_of_its_producer() -> None:
    envelope = new_envelope(registered(), producer="registry", correlation_id=uuid.uuid4())
    assert Cause.event(envelope).actor == "registry"


def test_work_done_because_time_passed_is_done_by_the_service_itself_in_a_fresh_correlation() -> None:
    first, second = Cause.timer("funding"), Cause.timer("funding")
    assert (first.actor, first.causation_id) == ("funding", None)
    assert first.correlation_id != second.correlation_id


def test_one_domain_event_may_become_several_envelopes_each_with_its_cause() -> None:
    cause = Cause.request(uuid.uuid4(), "officer-7")
    twice: Publisher[BusinessRegistered] = Publisher("registry", lambda e: [e, e], lambda e: REGISTRY_BUSINESS)

    envelopes = twice.envelopes([registered()], [cause])

    assert [e.actor for e in envelopes] == ["officer-7", "officer-7"]


def test_an_event_bound_for_a_public_topic_is_written_to_the_outbox_without_who_made_the_change() -> None:
    cause = Cause.request(uuid.uuid4(), "petugas.oebobo@kupangkota.go.id")
    both: Publisher[BusinessRegistered] = Publisher("registry", lambda e: [e, listed(e)], lambda e: REGISTRY_BUSINESS)
    internal, public = both.envelopes([registered()], [cause])

    rows = {topic_for(e.aggregate_type): json.loads(_row(e, topic_for(e.aggregate_type))[6]) for e in (internal, public)}

    assert rows[REGISTRY_BUSINESS]["actor"] == "petugas.oebobo@kupangkota.go.id"
    assert rows[PUBLIC_BUSINESS]["actor"] is None
    assert public.actor == "petugas.oebobo@kupangkota.go.id"  # what the audit trail records


def test_the_copies_for_partners_follow_all_of_a_unit_of_work_s_other_events_each_kept_in_its_order() -> None:
    # The relay publishes in outbox order: interleaved, a pledge's 35,000 offers reached the notifier only as fast as
    # their partner copies went out with them.
    causes = [Cause.request(uuid.uuid4(), f"officer-{i}") for i in range(3)]
    both: Publisher[BusinessRegistered] = Publisher("registry", lambda e: [e, listed(e)], lambda e: REGISTRY_BUSINESS)
    events = [registered(business_version=v, kbli_code=kbli) for v, kbli in ((1, "10792"), (2, "56102"), (3, "13921"))]

    envelopes = both.envelopes(events, causes)

    officers = [f"officer-{i}" for i in range(3)]
    assert [(e.event_type, e.actor) for e in envelopes] == [
        *(("BusinessRegistered", o) for o in officers), *(("BusinessListed", o) for o in officers)]
    assert [e.aggregate_version for e in envelopes[:3]] == [1, 2, 3]
    assert [e.payload["kbli_code"] for e in envelopes[3:]] == ["10792", "56102", "13921"]


def listed(event: BusinessRegistered) -> BusinessListed:
    return BusinessListed(business_ref=uuid.uuid4(), version=1, change="registered", kecamatan_code="53.71.05",
                          kecamatan="Oebobo", kelurahan_code="53.71.05.1001", kelurahan="Oebobo", kbli_code=event.kbli_code,
                          kbli_version=2020, scale="micro", youth_owned=False, women_owned=True, nib_status="none",
                          status="active", registered_on=date(2026, 12, 2))  # fmt: skip


def test_the_publisher_refuses_events_and_causes_out_of_step() -> None:
    with pytest.raises(ValueError):
        publisher().envelopes([registered(), registered()], [Cause.request(uuid.uuid4(), "officer-7")])


# ---------------------------------------------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------------------------------------------


def test_business_events_travel_on_the_registry_topic_and_dead_letters_on_its_dlq() -> None:
    assert topic_for("business") == REGISTRY_BUSINESS == "registry.business.v1"
    assert dlq(REGISTRY_BUSINESS) == "registry.business.v1.dlq"


def test_pledge_events_travel_on_the_funding_topic_and_training_completions_on_the_participant_topic() -> None:
    assert topic_for(CSRPledged.aggregate_type) == FUNDING_PLEDGE == "funding.pledge.v1"
    assert topic_for(TrainingCompleted.aggregate_type) == TRAINING_PARTICIPANT == "training.participant.v1"


def test_an_aggregate_type_without_a_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="no topic for aggregate type 'training'"):
        topic_for("training")

"""Each contract's JSON Schema is compared with a committed snapshot, so no contract changes without someone meaning it.

- A difference always fails. The message says whether the change is compatible (only new optional fields: refresh
  the snapshot with BERDAYA_UPDATE_SNAPSHOTS=1 and commit it) or breaking (publish a new event_version with an
  upcaster from the old one instead).
- A contract without a snapshot (a new event, a new version) fails too, until its snapshot is written with
  BERDAYA_UPDATE_SNAPSHOTS=1 and committed. Nothing is ever written without that variable.
- Every snapshot is of a current contract or of an older version still read through an upcaster, and each
  upcaster turns an example valid under its old snapshot into a payload the current model accepts.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import CATALOG, ContractError, Envelope
from shared.service import documented_envelope

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("BERDAYA_UPDATE_SNAPSHOTS") == "1"
HOW_TO_UPDATE = "BERDAYA_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/contract"

CONTRACTS = {"Envelope": Envelope} | {f"{m.event_type}.v{m.event_version}": m for m in CATALOG.models()}
OLDER_VERSIONS_READ = {f"{event_type}.v{version}" for event_type, version in CATALOG.upcasted_versions()}


def breaking_changes(old: dict, new: dict, path: str = "") -> list[str]:
    """What a consumer built against `old` would trip over in `new` (types, removals, new required fields)."""
    problems = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in old_props:
        if name not in new_props:
            problems.append(f"{path}{name} was removed")
        elif _kind(old_props[name]) != _kind(new_props[name]):
            problems.append(f"{path}{name} changed type {_kind(old_props[name])} -> {_kind(new_props[name])}")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{path}{name} became required")
    for name in set(old.get("$defs", {})) & set(new.get("$defs", {})):
        problems += breaking_changes(old["$defs"][name], new["$defs"][name], f"{path}{name}.")
    return problems


def _kind(schema: dict) -> str:
    return json.dumps({k: schema[k] for k in ("type", "anyOf", "enum", "const", "$ref", "format", "pattern") if k in schema},
                      sort_keys=True)  # fmt: skip


def _write(path: Path, schema: dict) -> None:
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")


def check_snapshot(name: str, schema: dict, path: Path, *, update: bool) -> None:
    """Compare `schema` with the snapshot at `path`; write it only when `update` is set and the change is not
    breaking. Fails (pytest.fail) with what to do otherwise."""
    if not path.exists():
        if not update:
            pytest.fail(
                f"{name} has no committed snapshot ({path.name}). If this contract is new on purpose, write its "
                f"snapshot with `{HOW_TO_UPDATE}`, review it and commit tests/contract/snapshots/{path.name}."
            )
        _write(path, schema)
        return
    snapshot = json.loads(path.read_text())
    if schema == snapshot:
        return
    breaking = breaking_changes(snapshot, schema)
    if breaking:
        pytest.fail(
            f"{name} differs from {path.name}, and the change is breaking: {'; '.join(breaking)}. Publish a new "
            f"event_version with an upcaster from the old one instead (the snapshot is not rewritten, even with "
            f"BERDAYA_UPDATE_SNAPSHOTS=1)."
        )
    if not update:
        pytest.fail(
            f"{name} differs from {path.name}: compatible (optional additions only). Refresh the snapshot with "
            f"`{HOW_TO_UPDATE}` and commit it."
        )
    _write(path, schema)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_contract_schema_matches_its_committed_snapshot(name: str) -> None:
    check_snapshot(name, CONTRACTS[name].model_json_schema(), SNAPSHOTS / f"{name}.json", update=UPDATE)


# ---------------------------------------------------------------------------------------------------------------
# The snapshot check itself, on a scratch directory
# ---------------------------------------------------------------------------------------------------------------

SCHEMA_V1 = {"properties": {"a": {"type": "string"}}, "required": ["a"], "type": "object"}


def test_a_contract_without_a_snapshot_fails_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "Brandnew.v1.json"

    with pytest.raises(pytest.fail.Exception, match=r"no committed snapshot.*BERDAYA_UPDATE_SNAPSHOTS=1"):
        check_snapshot("Brandnew.v1", SCHEMA_V1, path, update=False)
    assert not path.exists()


def test_a_snapshot_is_written_for_a_new_contract_only_when_asked_to(tmp_path: Path) -> None:
    path = tmp_path / "Brandnew.v1.json"

    check_snapshot("Brandnew.v1", SCHEMA_V1, path, update=True)

    assert json.loads(path.read_text()) == SCHEMA_V1
    check_snapshot("Brandnew.v1", SCHEMA_V1, path, update=False)  # and then it matches


def test_a_compatible_change_fails_until_the_snapshot_is_refreshed_on_purpose(tmp_path: Path) -> None:
    path = tmp_path / "Event.v1.json"
    _write(path, SCHEMA_V1)
    wider = {**SCHEMA_V1, "properties": {**SCHEMA_V1["properties"], "b": {"type": "string"}}}

    with pytest.raises(pytest.fail.Exception, match="compatible"):
        check_snapshot("Event.v1", wider, path, update=False)
    assert json.loads(path.read_text()) == SCHEMA_V1

    check_snapshot("Event.v1", wider, path, update=True)
    assert json.loads(path.read_text()) == wider


def test_a_breaking_change_fails_and_is_never_written_even_when_updating(tmp_path: Path) -> None:
    path = tmp_path / "Event.v1.json"
    _write(path, SCHEMA_V1)
    renamed = {"properties": {"b": {"type": "string"}}, "required": ["b"], "type": "object"}

    for update in (False, True):
        with pytest.raises(pytest.fail.Exception, match="breaking: a was removed; b became required"):
            check_snapshot("Event.v1", renamed, path, update=update)
    assert json.loads(path.read_text()) == SCHEMA_V1


def test_removing_a_field_is_reported_as_breaking() -> None:
    old = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    new = {"properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, new) == ["b was removed"]


def test_adding_an_optional_field_is_not_breaking_but_making_one_required_is() -> None:
    old = {"properties": {"a": {"type": "string"}}, "required": []}
    assert breaking_changes(old, {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}) == []
    assert breaking_changes(old, {"properties": {"a": {"type": "string"}}, "required": ["a"]}) == ["a became required"]


def test_changing_a_field_s_type_inside_a_nested_model_is_breaking() -> None:
    old = {"$defs": {"Totals": {"properties": {"n": {"type": "integer"}}}}}
    new = {"$defs": {"Totals": {"properties": {"n": {"type": "string"}}}}}
    assert breaking_changes(old, new) == ['Totals.n changed type {"type": "integer"} -> {"type": "string"}']


# ---------------------------------------------------------------------------------------------------------------
# No orphaned snapshots
# ---------------------------------------------------------------------------------------------------------------


def test_every_committed_snapshot_is_a_current_contract_or_an_older_version_still_read_through_an_upcaster() -> None:
    committed = {path.stem for path in SNAPSHOTS.glob("*.json")}
    orphans = committed - set(CONTRACTS) - OLDER_VERSIONS_READ
    assert not orphans, (
        f"snapshots of contracts nothing produces or reads any more: {sorted(orphans)}. Either an upcaster from "
        "that version is missing (old records on the topic would be unreadable), or the snapshot should be removed "
        "on purpose."
    )


def test_every_older_version_read_through_an_upcaster_keeps_its_snapshot_as_the_record_of_what_it_was() -> None:
    committed = {path.stem for path in SNAPSHOTS.glob("*.json")}
    missing = OLDER_VERSIONS_READ - committed
    assert not missing, f"older versions still read but with no snapshot of what they were: {sorted(missing)}"


# ---------------------------------------------------------------------------------------------------------------
# Upcasters: an example of each old version, valid under its old snapshot, decodes to the current model
# ---------------------------------------------------------------------------------------------------------------

_ANNOTATIONS = {"title", "description", "default", "examples"}
_FORMATS = {
    "uuid": uuid.UUID,
    "date": date.fromisoformat,
    "date-time": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
}


def _is_of_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}[kind])


def schema_errors(value: Any, schema: dict, root: dict | None = None, at: str = "$") -> list[str]:
    """Where `value` breaks `schema`: enough of JSON Schema for what pydantic writes in the snapshots. A keyword it
    does not know is an error, so a snapshot using one can't be passed by accident."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return schema_errors(value, root["$defs"][name], root, at)
    if "anyOf" in schema:
        options = [schema_errors(value, option, root, at) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{at}: matches none of {schema['anyOf']}"]
    if "type" in schema and not _is_of_type(value, schema["type"]):
        return [f"{at}: {value!r} is not of type {schema['type']}"]  # the other keywords don't apply then
    errors: list[str] = []
    for keyword, rule in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("$defs", "properties", "items", "type"):
            continue
        if keyword == "required":
            errors += [f"{at}: {name} is required" for name in rule if name not in value]
        elif keyword == "additionalProperties":
            if rule is False:
                errors += [f"{at}: {name} is not allowed" for name in value if name not in schema.get("properties", {})]
        elif keyword == "enum":
            if value not in rule:
                errors.append(f"{at}: {value!r} is not one of {rule}")
        elif keyword == "const":
            if value != rule:
                errors.append(f"{at}: {value!r} is not {rule!r}")
        elif keyword == "pattern":
            if not re.search(rule, value):
                errors.append(f"{at}: {value!r} does not match {rule}")
        elif keyword == "format":
            try:
                _FORMATS[rule](value)
            except ValueError:
                errors.append(f"{at}: {value!r} is not a {rule}")
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            holds = {"minimum": value >= rule, "maximum": value <= rule, "exclusiveMinimum": value > rule,
                     "exclusiveMaximum": value < rule}[keyword]  # fmt: skip
            if not holds:
                errors.append(f"{at}: {value!r} breaks {keyword} {rule}")
        elif keyword in ("minLength", "minItems"):
            if len(value) < rule:
                errors.append(f"{at}: shorter than {rule}")
        elif keyword in ("maxLength", "maxItems"):
            if len(value) > rule:
                errors.append(f"{at}: longer than {rule}")
        else:
            errors.append(f"{at}: the test's schema check does not know the keyword {keyword!r}; teach it")
    for name, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            errors += schema_errors(value[name], sub, root, f"{at}.{name}")
    if "items" in schema and isinstance(value, list):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], root, f"{at}[{i}]")
    return errors


_V1_SNAPSHOT = {
    "business_id": "3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f", "business_version": 3,
    "business_name": "Sei Sapi Ibu Maria", "kbli_code": "10130", "kbli_version": 2020, "kecamatan": "Oebobo",
    "kecamatan_code": "53.71.04", "kecamatan_bps": "5371030", "kelurahan": "Fatululi",
    "kelurahan_code": "53.71.04.1011", "scale": "micro", "scale_basis": "annual_sales", "capital_rupiah": None,
    "annual_sales_rupiah": 50000000, "youth_owned": True, "youth_until": "2026-08-16", "women_owned": True,
    "nib_status": "issued", "nib": "1234567890123", "contact_phone": "+6281234567890", "status": "active",
    "registered_at": "2025-11-23T11:36:00Z",
}  # fmt: skip
_V1_PLEDGE = {
    "pledge_id": "a1a1a1a1-0000-4000-8000-000000000001", "sponsor_id": "00000000-0000-4000-8000-00000000b0b0",
    "sponsor_name": "Bank NTT", "sponsor_kind": "bank", "title": "CSR Bank NTT untuk kuliner muda Oebobo",
    "instrument": "financing_referral", "financing_programme": "KUR Mikro", "total_rupiah": 50000000,
    "amount_mode": "capped", "amount_per_business_rupiah": 5000000, "min_offer_rupiah": 1000000,
    "valid_from": "2026-03-01", "valid_until": "2026-06-30",
    "earmarks": {"kecamatan_codes": ["53.71.04"], "kbli_prefixes": ["10", "56"], "scales": ["micro", "small"],
                 "youth_owned_only": True, "women_owned_only": False, "nib_required": True,
                 "trainings_completed": ["packaging", "halal_certification"], "min_readiness": 40},
    "pledged_at": "2026-03-01T01:00:00Z",
}  # fmt: skip

# Hand-written, as a producer of the old version wrote them: one per older version still read.
OLD_EXAMPLES: dict[str, dict[str, Any]] = {
    "BusinessRegistered.v1": {**_V1_SNAPSHOT, "source": "officer"},
    "BusinessUpdated.v1": {**_V1_SNAPSHOT, "changed_fields": ["phone", "business_name"]},
    "CSRPledged.v1": _V1_PLEDGE,
    "TrainingCompleted.v1": {"cohort_id": "c0c0c0c0-0000-4000-8000-000000000001",
                             "business_id": "3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f", "programme": "digital_marketing",
                             "completed_on": "2026-02-27"},  # fmt: skip
}

_AGGREGATE_OF_V1 = {"BusinessRegistered": "business", "BusinessUpdated": "business", "CSRPledged": "pledge",
                    "TrainingCompleted": "cohort"}  # fmt: skip


def old_envelope(name: str, payload: dict[str, Any]) -> Envelope:
    event_type, version = name.rsplit(".v", 1)
    return Envelope(
        event_id=uuid.uuid4(), event_type=event_type, event_version=int(version),
        aggregate_type=_AGGREGATE_OF_V1.get(event_type, "business"), aggregate_id=str(uuid.uuid4()),
        occurred_at=datetime.fromisoformat("2026-03-01T01:00:00+00:00"), correlation_id=uuid.uuid4(),
        producer="an older release", payload=payload,
    )  # fmt: skip


def old_snapshot(name: str) -> dict:
    return json.loads((SNAPSHOTS / f"{name}.json").read_text())


def test_there_is_an_example_of_every_older_version_still_read() -> None:
    assert set(OLD_EXAMPLES) == OLDER_VERSIONS_READ


@pytest.mark.parametrize("name", sorted(OLD_EXAMPLES))
def test_each_example_is_valid_under_its_old_version_s_snapshot(name: str) -> None:
    assert schema_errors(OLD_EXAMPLES[name], old_snapshot(name)) == []


@pytest.mark.parametrize("name", sorted(OLDER_VERSIONS_READ))
def test_an_upcaster_turns_an_example_of_the_old_version_into_a_payload_the_current_model_accepts(name: str) -> None:
    example = OLD_EXAMPLES[name]
    event_type = name.rsplit(".v", 1)[0]

    decoded = CATALOG.decode(old_envelope(name, example))

    current = next(m for m in CATALOG.models() if m.event_type == event_type)
    assert type(decoded) is current
    assert schema_errors(decoded.model_dump(mode="json"), current.model_json_schema()) == []


def test_an_old_pledge_earmarking_more_kbli_prefixes_than_version_two_allows_is_still_read() -> None:
    """Version 1 bounded no earmark list, and the pledge form took any number of KBLI codes or prefixes."""
    many = [f"{code}" for code in range(10_100, 10_250)]  # 150 five-digit KBLI codes
    example = {**_V1_PLEDGE, "earmarks": {**_V1_PLEDGE["earmarks"], "kbli_prefixes": many}}
    assert schema_errors(example, old_snapshot("CSRPledged.v1")) == []

    try:
        decoded = CATALOG.decode(old_envelope("CSRPledged.v1", example))
    except ContractError as exc:
        pytest.fail(f"a valid CSRPledged v1 can't be read any more: {exc}")
    assert decoded.earmarks.kbli_prefixes == tuple(many)  # type: ignore[attr-defined]


def test_the_schema_check_refuses_what_breaks_an_old_snapshot() -> None:
    pledge = old_snapshot("CSRPledged.v1")
    without_title = {k: v for k, v in _V1_PLEDGE.items() if k != "title"}
    new_topic = {**_V1_PLEDGE, "earmarks": {**_V1_PLEDGE["earmarks"], "trainings_completed": ["financial_bookkeeping"]}}
    bad_date = {**_V1_PLEDGE, "valid_from": "01-03-2026"}
    extra_earmark = {**_V1_PLEDGE, "earmarks": {**_V1_PLEDGE["earmarks"], "sectors": ["food"]}}

    assert schema_errors(without_title, pledge) == ["$: title is required"]
    assert schema_errors(new_topic, pledge) == [
        "$.earmarks.trainings_completed[0]: 'financial_bookkeeping' is not one of "
        "['packaging', 'product_quality', 'halal_certification', 'digital_marketing']"
    ]
    assert schema_errors(bad_date, pledge) == ["$.valid_from: '01-03-2026' is not a date"]
    assert schema_errors(extra_earmark, pledge) == ["$.earmarks: sectors is not allowed"]
    assert schema_errors({**_V1_PLEDGE, "total_rupiah": 5e6}, pledge) == [
        "$.total_rupiah: 5000000.0 is not of type integer"
    ]


# ---------------------------------------------------------------------------------------------------------------
# What the contracts must never carry, and the AsyncAPI document
# ---------------------------------------------------------------------------------------------------------------


def test_no_contract_has_a_field_that_could_carry_a_nik() -> None:
    # The one exception is by design: a consented referral carries a keyed HMAC of the NIK with the partner's own
    # key ("owner_nik_link"), which lets that partner link its records and can't be reversed without the key.
    for name, model in CONTRACTS.items():
        fields = json.dumps(model.model_json_schema()).lower().replace("owner_nik_link", "").replace("owner nik link", "")
        assert "nik" not in fields.replace("nib", ""), f"{name} mentions a NIK"


def test_no_current_contract_carries_a_birth_date_or_a_date_derived_from_one() -> None:
    for name, model in CONTRACTS.items():
        fields = set(model.model_json_schema().get("properties", {}))
        assert not fields & {"youth_until", "birth_date", "owner_birth_date"}, f"{name} gives a birth date away"


def test_the_asyncapi_envelope_of_registry_business_carries_every_registry_payload() -> None:
    schema = documented_envelope("registry.business.v1").model_json_schema()
    assert {"BusinessRegistered", "BusinessUpdated", "NIBApplied", "NIBIssued", "NIBRejected", "BusinessClosed"} <= set(
        schema["$defs"]
    )


def test_the_asyncapi_envelope_of_training_participant_carries_every_event_of_a_businesss_participation() -> None:
    schema = documented_envelope("training.participant.v1").model_json_schema()
    assert {"TraineeInvited", "TraineeEnrolled", "TraineeWaitlisted", "TraineeWithdrew", "AttendanceRecorded",
            "TrainingCompleted", "PathwayStepRecorded", "PathwayStalled", "MentoringVisitRecorded"} <= set(schema["$defs"])  # fmt: skip

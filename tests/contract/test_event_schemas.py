"""Each event's JSON Schema is compared with a committed snapshot, so an incompatible contract change cannot slip in.

A difference always fails. The message says whether the change is compatible (only new optional fields: refresh
the snapshot with BERDAYA_UPDATE_SNAPSHOTS=1) or breaking (publish a new event_version with an upcaster instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.contracts import CATALOG, Envelope
from shared.service import documented_envelope

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("BERDAYA_UPDATE_SNAPSHOTS") == "1"

CONTRACTS = {"Envelope": Envelope} | {f"{m.event_type}.v{m.event_version}": m for m in CATALOG.models()}


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


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_contract_schema_matches_its_committed_snapshot(name):
    schema = CONTRACTS[name].model_json_schema()
    path = SNAPSHOTS / f"{name}.json"
    if UPDATE or not path.exists():
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    snapshot = json.loads(path.read_text())
    if schema != snapshot:
        breaking = breaking_changes(snapshot, schema)
        advice = (
            f"breaking: {'; '.join(breaking)}. Publish a new event_version with an upcaster from the old one instead"
            if breaking
            else "compatible (optional additions only): refresh the snapshot with BERDAYA_UPDATE_SNAPSHOTS=1"
        )
        pytest.fail(f"{name} differs from {path.name}: {advice}")


def test_removing_a_field_is_reported_as_breaking():
    old = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    new = {"properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, new) == ["b was removed"]


def test_adding_an_optional_field_is_not_breaking_but_making_one_required_is():
    old = {"properties": {"a": {"type": "string"}}, "required": []}
    assert breaking_changes(old, {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}) == []
    assert breaking_changes(old, {"properties": {"a": {"type": "string"}}, "required": ["a"]}) == ["a became required"]


def test_no_contract_has_a_field_that_could_carry_a_nik():
    for name, model in CONTRACTS.items():
        fields = json.dumps(model.model_json_schema()).lower()
        assert "nik" not in fields.replace("nib", ""), f"{name} mentions a NIK"


def test_the_asyncapi_envelope_of_registry_business_carries_every_registry_payload():
    schema = documented_envelope("registry.business.v1").model_json_schema()
    assert {"BusinessRegistered", "BusinessUpdated", "NIBApplied", "NIBIssued", "NIBRejected", "BusinessClosed"} <= set(
        schema["$defs"]
    )

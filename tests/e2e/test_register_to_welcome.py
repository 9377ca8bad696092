"""End to end with registry and notifier as real processes: what an officer does over HTTP, what a partner's plain
Kafka consumer sees, and what the owner is told."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import date

import httpx
import pytest

from berdaya.importer import read_error_report
from shared.contracts.topics import REGISTRY_BUSINESS
from tests.support import eventually, read_topic, registration

pytestmark = pytest.mark.e2e


async def _messages(system, **params) -> list[dict]:  # noqa: ANN001
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{system.notifier.url}/messages", params=params, headers=system.auth())
        response.raise_for_status()
        return response.json()["items"]


async def test_a_business_registered_over_http_reaches_kafka_and_its_owner_gets_exactly_one_welcome(system):
    body = registration(birth=date(1996, 8, 17), gender="P", name="Sei Sapi Mama Yuli", kecamatan="Kelapa Lima",
                        kelurahan="Oesapa")  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{system.registry.url}/businesses", json=body, headers=system.auth())
    assert response.status_code == 201, response.text
    business_id = response.json()["id"]

    records = [r for r in await read_topic(system.bootstrap, system.topic(REGISTRY_BUSINESS), expect=1) if r.key == business_id.encode()]
    assert len(records) == 1
    event = json.loads(records[0].value)
    assert (event["event_type"], event["producer"]) == ("BusinessRegistered", "registry")
    assert dict(records[0].headers)["event_type"] == b"BusinessRegistered"

    async def welcomed() -> bool:
        return bool(await _messages(system, business_id=business_id))

    assert await eventually(welcomed, timeout=30), "the notifier recorded no welcome"
    [message] = await _messages(system, business_id=business_id)
    assert message["template"] == "welcome"
    assert message["event_id"] == event["event_id"]
    assert "Selamat datang" in message["body"] and "Sei Sapi Mama Yuli" in message["body"]
    assert "Kecamatan Kelapa Lima" in message["body"] and "WITA" in message["body"]
    assert message["recipient_phone"] == response.json()["owner"]["phone"]
    assert body["owner_nik"] not in system.logs()
    assert body["owner_nik"].encode() not in records[0].value


async def test_an_officer_imports_a_csv_with_the_cli_fixes_nothing_twice_and_gets_bad_rows_by_line(system, tmp_path):
    rows = [registration() for _ in range(5)]
    rows[2]["owner_birth_date"] = "1991-13-01"
    path = tmp_path / "umkm.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    env = {**system.env, "BERDAYA_TOKEN": system.tokens.mint("e2e", ["officer"])}
    command = [sys.executable, "-m", "berdaya", "import", str(path), "--url", system.registry.url]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "registered" in first.stdout and "line 4, owner_birth_date" in first.stdout
    errors = read_error_report(path.with_suffix(".errors.csv"))
    assert [(e["line"], e["field"]) for e in errors] == [("4", "owner_birth_date")]

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "already registered, unchanged" in second.stdout
    async with httpx.AsyncClient(timeout=10) as http:
        total = (await http.get(f"{system.registry.url}/businesses", headers=system.auth())).json()["total"]
    assert total == 4

    async def all_welcomed() -> bool:
        return len(await _messages(system, template="welcome")) == 4

    assert await eventually(all_welcomed, timeout=30)
    assert len(await _messages(system, template="welcome")) == 4

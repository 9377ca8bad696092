"""Schemathesis against the OpenAPI document of every running service: generated requests, valid and invalid, never
get a 5xx, and every answer is documented (its status code, its content type, a body matching its schema).

Each service runs as a real process (the `system` fixture) with a few real businesses, NIB applications, a sponsor,
a pledge, its offers and the owners' messages in it, so that generated requests reach past "not found" into the
code that acts on real records: half of the generated ids are real ones (schemathesis dictionaries).

The run is bounded (examples per operation, no shrinking, derandomised), so the whole file takes a few minutes on
a two-core machine; a failure prints schemathesis's report of each failing request with a curl line to replay it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support import eventually, registration

pytestmark = pytest.mark.e2e

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 25  # per operation and generation mode, in the fuzzing phase
RUN_TIMEOUT = 420  # seconds; a run that has not ended by then is a stalled service


@dataclass
class Seeded:
    """Real records in the running system, and the tokens that act on them."""

    officer: str
    sponsor: str = ""
    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, value: str) -> None:
        self.ids.setdefault(kind, []).append(value)


async def _seed_registry(http: httpx.AsyncClient, system, seeded: Seeded) -> None:  # noqa: ANN001
    officer = {"Authorization": f"Bearer {seeded.officer}"}
    for i in range(3):
        body = registration(birth=date(1999, 3, 1) + timedelta(days=97 * i), gender="PL"[i % 2],
                            name=f"Kios Schemathesis {i}", kecamatan="Oebobo", kelurahan="Oebobo", kbli_code="10130")  # fmt: skip
        response = await http.post(f"{system.registry.url}/businesses", json=body, headers=officer)
        assert response.status_code == 201, response.text
        business_id = response.json()["id"]
        seeded.add("business_id", business_id)
        if i < 2:
            applications = f"{system.registry.url}/businesses/{business_id}/nib-applications"
            application = await http.post(applications, headers=officer)
            assert application.status_code == 201, application.text
            seeded.add("application_id", application.json()["id"])
    issued = await http.post(
        f"{system.registry.url}/businesses/{seeded.ids['business_id'][0]}/nib-applications/"
        f"{seeded.ids['application_id'][0]}/outcome", json={"outcome": "issued", "nib": "8120001234567"}, headers=officer,
    )  # fmt: skip
    assert issued.status_code == 200, issued.text


async def _seed_funding(http: httpx.AsyncClient, system, seeded: Seeded) -> None:  # noqa: ANN001
    officer = {"Authorization": f"Bearer {seeded.officer}"}

    async def funding_knows_them() -> bool:
        for business_id in seeded.ids["business_id"]:
            if (await http.get(f"{system.funding.url}/businesses/{business_id}", headers=officer)).status_code != 200:
                return False
        return True

    assert await eventually(funding_knows_them, timeout=60), "funding never read the registry's businesses"
    sponsor = await http.post(f"{system.funding.url}/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=officer)
    assert sponsor.status_code == 201, sponsor.text
    sponsor_id = sponsor.json()["id"]
    seeded.add("sponsor_id", sponsor_id)
    seeded.sponsor = system.tokens.mint("e2e-sponsor", ["sponsor"], sponsor_id=uuid.UUID(sponsor_id))
    today = date.today()
    pledge = await http.post(f"{system.funding.url}/pledges", headers={"Authorization": f"Bearer {seeded.sponsor}"}, json={
        "sponsor_id": sponsor_id, "title": "CSR Bank NTT: kios Oebobo", "instrument": "grant", "total_rupiah": 10_000_000,
        "amount_mode": "fixed", "amount_per_business_rupiah": 5_000_000, "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=60)).isoformat(), "earmarks": {"kecamatan": ["Oebobo"]},
    })  # fmt: skip
    assert pledge.status_code == 201, pledge.text
    pledge_id = pledge.json()["id"]
    seeded.add("pledge_id", pledge_id)
    offers_url = f"{system.funding.url}/pledges/{pledge_id}/offers"

    async def offered() -> bool:
        return len((await http.get(offers_url, headers=officer)).json()) == 2

    assert await eventually(offered, timeout=60), "the pledge never made its two offers"
    for offer in (await http.get(offers_url, headers=officer)).json():
        seeded.add("offer_id", offer["id"])


async def _seed_training(http: httpx.AsyncClient, system, seeded: Seeded) -> None:  # noqa: ANN001
    """A programme, an open cohort with the seeded businesses known to training, and their ids."""
    trainer = {"Authorization": f"Bearer {seeded.officer}"}
    training = system.training.url

    async def training_knows_them() -> bool:
        for business_id in seeded.ids["business_id"]:
            if (await http.get(f"{training}/businesses/{business_id}", headers=trainer)).status_code != 200:
                return False
        return True

    assert await eventually(training_knows_them, timeout=60), "training never read the registry's businesses"
    programme = await http.post(f"{training}/programmes", headers=trainer, json={
        "topic": "digital_marketing", "title": "Jualan Online lewat Instagram", "needs": ["youth_digital"],
        "requires_nib": False, "sessions": 1, "hours": 4})  # fmt: skip
    assert programme.status_code == 201, programme.text
    day = (date.today() + timedelta(days=7)).isoformat()
    cohort = await http.post(f"{training}/cohorts", headers=trainer, json={
        "programme_id": programme.json()["id"], "starts_on": day, "ends_on": day, "capacity": 10,
        "sessions": [{"starts_at": f"{day}T09:00:00+08:00", "ends_at": f"{day}T12:00:00+08:00"}],
        "venue": "Taman Nostalgia", "kecamatan": "Oebobo"})  # fmt: skip
    assert cohort.status_code == 201, cohort.text
    assert (await http.post(f"{training}/cohorts/{cohort.json()['id']}/open", headers=trainer)).status_code == 200
    seeded.add("programme_id", programme.json()["id"])
    seeded.add("cohort_id", cohort.json()["id"])


async def _seed_notifier(http: httpx.AsyncClient, system, seeded: Seeded) -> None:  # noqa: ANN001
    officer = {"Authorization": f"Bearer {seeded.officer}"}

    async def welcomed() -> bool:
        response = await http.get(f"{system.notifier.url}/messages", headers=officer)
        return response.status_code == 200 and response.json()["total"] >= len(seeded.ids["business_id"])

    assert await eventually(welcomed, timeout=60), "the notifier never recorded the welcome messages"


def _toml(value: object) -> str:
    """A TOML value (strings, numbers, booleans, lists of them); JSON's string escapes are TOML's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def schemathesis_config(seeded: Seeded, *, sponsor_operations: tuple[str, ...] = ()) -> str:
    """A schemathesis.toml: officer token for every operation (sponsor token for the sponsor's own), a bounded and
    derandomised run, and real ids for half of the generated path and query ids."""
    lines = [
        f"headers = {{ Authorization = {_toml('Bearer ' + seeded.officer)} }}",
        "request-timeout = 30",
        # One worker: with two threads, Python 3.11's AST validator (hypothesis reads strategies' source) races on its
        # recursion counter and schemathesis fails with "AST constructor recursion depth mismatch" (CPython #106905).
        "workers = 1",
        "",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "deterministic = true",
        "no-shrink = true",
        'database = "none"',
    ]
    for kind, values in seeded.ids.items():
        lines += ["", f"[dictionaries.{kind}]", f"values = {_toml(values)}"]
    if seeded.ids:
        lines += ["", "[parameters]"]
        lines += [f'"{kind}" = {{ dictionary = "{kind}", probability = 0.5 }}' for kind in seeded.ids]
        if "sponsor_id" in seeded.ids:  # a pledge's sponsor, in its body
            lines.append('"body.sponsor_id" = { dictionary = "sponsor_id", probability = 0.5 }')
    if sponsor_operations:
        lines += ["", "[[operations]]", f"include-name = {_toml(list(sponsor_operations))}",
                  f"headers = {{ Authorization = {_toml('Bearer ' + seeded.sponsor)} }}"]  # fmt: skip
    return "\n".join(lines) + "\n"


async def run_schemathesis(base_url: str, config: str, workdir: Path) -> tuple[int, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(config)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "run", f"{base_url}/openapi.json",
        "--checks", CHECKS, "--phases", "examples,coverage,fuzzing,stateful",
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "160"},
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        return -1, f"schemathesis did not finish within {RUN_TIMEOUT}s (a stalled service?)\n" + output.decode(errors="replace")
    return process.returncode or 0, output.decode(errors="replace")


def report(output: str) -> str:
    """What failed and how to replay it: schemathesis's failures and errors, then its summary."""
    starts = [i for i in (output.find("= FAILURES ="), output.find("= ERRORS =")) if i >= 0]
    return output[output.rfind("\n", 0, min(starts)) + 1:] if starts else output


async def _check(system, seeded: Seeded, service: str, tmp_path: Path, sponsor_operations: tuple[str, ...] = ()) -> None:  # noqa: ANN001
    url = getattr(system, service).url
    code, output = await run_schemathesis(url, schemathesis_config(seeded, sponsor_operations=sponsor_operations),
                                          tmp_path / f"schemathesis-{service}")  # fmt: skip
    assert "Test cases:" in output, output
    assert code == 0, f"schemathesis found requests that {service} answers wrongly:\n{report(output)}"


async def test_every_generated_request_to_the_registry_gets_a_documented_answer_and_never_a_5xx(system, tmp_path):
    seeded = Seeded(officer=system.tokens.mint("e2e-officer", ["officer"]))
    async with httpx.AsyncClient(timeout=30) as http:
        await _seed_registry(http, system, seeded)
    await _check(system, seeded, "registry", tmp_path)


async def test_every_generated_request_to_funding_gets_a_documented_answer_and_never_a_5xx(system, tmp_path):
    seeded = Seeded(officer=system.tokens.mint("e2e-officer", ["officer"]))
    async with httpx.AsyncClient(timeout=30) as http:
        await _seed_registry(http, system, seeded)
        await _seed_funding(http, system, seeded)
    sponsor_operations = ("POST /pledges", "POST /pledges/{pledge_id}/close", "POST /offers/{offer_id}/disburse")
    await _check(system, seeded, "funding", tmp_path, sponsor_operations)


async def test_every_generated_request_to_the_notifier_gets_a_documented_answer_and_never_a_5xx(system, tmp_path):
    seeded = Seeded(officer=system.tokens.mint("e2e-officer", ["officer"]))
    async with httpx.AsyncClient(timeout=30) as http:
        await _seed_registry(http, system, seeded)
        await _seed_notifier(http, system, seeded)
    await _check(system, seeded, "notifier", tmp_path)


async def test_every_generated_request_to_training_gets_a_documented_answer_and_never_a_5xx(system, tmp_path):
    # A trainer who is also an officer may call every operation, so generated requests reach the code behind them.
    seeded = Seeded(officer=system.tokens.mint("e2e-trainer", ["officer", "trainer"]))
    async with httpx.AsyncClient(timeout=30) as http:
        await _seed_registry(http, system, seeded)
        await _seed_training(http, system, seeded)
    await _check(system, seeded, "training", tmp_path)

"""Hostile input on real PostgreSQL and Kafka (DESIGN rule 10): every refusal is the exact status with a problem
document naming the field, nothing is written when a request is refused, and no input gives a 5xx.

Most probes run the services in-process (as test_registry_api.py does); the ones that need a real client beside a
real server (the registry answering /ready while it refuses a huge import, and the `berdaya import` command) run the
registry as a process of its own."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from berdaya.importer import read_error_report
from berdaya.stack.process import stop_pid
from services.funding.bootstrap import create_app as create_funding
from services.funding.settings import FundingSettings
from services.notifier.bootstrap import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from services.registry.bootstrap import create_app as create_registry
from services.registry.bulk_import import IMPORT_COLUMNS
from services.registry.settings import RegistrySettings
from shared.auth import TokenService
from tests.support import (
    TEST_SECRET,
    drop_database,
    eventually,
    fresh_database,
    kafka_settings,
    registration,
    service_env,
    start_service,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BERDAYA_CLI = REPO / ".venv" / "bin" / "berdaya"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}
TEN_MB = 10 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------------------
# The services, in-process on real PostgreSQL and Kafka
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Service:
    http: httpx.AsyncClient
    database_url: str

    async def count(self, *tables: str) -> dict[str, int]:
        """Rows in each table: what a refused request must leave as it was.

        The outbox is counted without the periodic public figures, which a timer may add at any moment."""
        conn = await asyncpg.connect(self.database_url)
        try:
            return {t: await conn.fetchval(f"SELECT count(*) FROM {t}"  # noqa: S608 - our names
                                           + (" WHERE type <> 'NibCoverageReported'" if t == "outbox" else ""))
                    for t in tables}  # fmt: skip
        finally:
            await conn.close()


@dataclass
class Berdaya:
    """Whichever services a test asked for, on topics of their own, and tokens for them."""

    tokens: TokenService
    registry: Service | None = None
    funding: Service | None = None
    notifier: Service | None = None

    def auth(self, role: str = "officer", sponsor_id: str | None = None) -> dict[str, str]:
        sponsor = uuid.UUID(sponsor_id) if sponsor_id else None
        return {"Authorization": f"Bearer {self.tokens.mint(f'hostile-{role}', [role], sponsor_id=sponsor)}"}


def _settings(kind: Callable[..., Any], database_url: str, infra, namespace: str) -> Any:  # noqa: ANN001
    extra = {}
    if kind is RegistrySettings:
        extra = {"nik_digest_key": base64.b64encode(os.urandom(32)).decode(),
                 "nik_encryption_key": base64.b64encode(os.urandom(32)).decode()}  # fmt: skip
    service = kind.__name__.removesuffix("Settings").lower()
    return kind(database_url=database_url, **kafka_settings(infra.kafka, service, namespace), jwt_secret=TEST_SECRET,
                pseudonym_key="p" * 32,
                relay_idle_wait_seconds=0.2, topic_namespace=namespace, **extra)  # fmt: skip


@contextlib.asynccontextmanager
async def _running(app: FastAPI, database_url: str, name: str) -> AsyncIterator[Service]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}", timeout=60) as http:
            yield Service(http, database_url)


@contextlib.asynccontextmanager
async def berdaya(infra, database_url: str, *names: str) -> AsyncIterator[Berdaya]:  # noqa: ANN001
    namespace = f"hostile-{uuid.uuid4().hex[:8]}"
    apps = {"registry": (create_registry, RegistrySettings), "funding": (create_funding, FundingSettings),
            "notifier": (create_notifier, NotifierSettings)}  # fmt: skip
    extra_databases: list[str] = []
    system = Berdaya(TokenService(TEST_SECRET))
    try:
        async with contextlib.AsyncExitStack() as stack:
            for i, name in enumerate(names):
                url = database_url if i == 0 else await fresh_database(infra.postgres_url)
                if i:
                    extra_databases.append(url)
                create, settings = apps[name]
                app = create(_settings(settings, url, infra, namespace))
                setattr(system, name, await stack.enter_async_context(_running(app, url, name)))
            yield system
    finally:
        for url in extra_databases:
            await drop_database(infra.postgres_url, url)


@pytest.fixture
async def registry_only(infra, database_url) -> AsyncIterator[Berdaya]:  # noqa: ANN001
    async with berdaya(infra, database_url, "registry") as system:
        yield system


@pytest.fixture
async def funding_only(infra, database_url) -> AsyncIterator[Berdaya]:  # noqa: ANN001
    async with berdaya(infra, database_url, "funding") as system:
        yield system


@pytest.fixture
async def registry_and_notifier(infra, database_url) -> AsyncIterator[Berdaya]:  # noqa: ANN001
    async with berdaya(infra, database_url, "registry", "notifier") as system:
        yield system


@pytest.fixture
async def all_services(infra, database_url) -> AsyncIterator[Berdaya]:  # noqa: ANN001
    async with berdaya(infra, database_url, "registry", "funding", "notifier") as system:
        yield system


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The exact status, as an RFC 9457 problem document; for 422, naming `field` among its errors."""
    assert response.status_code == status, f"{response.status_code} instead of {status}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json", response.headers["content-type"]
    body = response.json()
    assert PROBLEM_MEMBERS <= body.keys(), body
    assert body["status"] == status and body["type"] == f"urn:berdaya:problem:{body['code']}", body
    assert body["title"] and body["detail"], body
    if status == 422:
        assert body["errors"], body
        assert all({"field", "code", "message"} <= e.keys() for e in body["errors"]), body
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], f"{field} is not named: {body}"
    return body


REGISTRY_TABLES = ("business", "nib_application", "outbox")
FUNDING_TABLES = ("sponsor", "pledge", "offer", "outbox")


async def _register(system: Berdaya, **overrides: object) -> dict[str, Any]:
    assert system.registry is not None
    response = await system.registry.http.post("/businesses", json=registration(**overrides), headers=system.auth())
    assert response.status_code == 201, response.text
    return response.json()


async def _sponsor(system: Berdaya) -> str:
    assert system.funding is not None
    response = await system.funding.http.post("/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=system.auth())
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _pledge(sponsor_id: str, **overrides: object) -> dict[str, Any]:
    today = date.today()
    body: dict[str, Any] = {
        "sponsor_id": sponsor_id, "title": "CSR Bank NTT: kuliner Oebobo", "instrument": "grant",
        "total_rupiah": 50_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 5_000_000,
        "valid_from": today.isoformat(), "valid_until": (today + timedelta(days=90)).isoformat(),
        "earmarks": {"kecamatan": ["Oebobo"]},
    }  # fmt: skip
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------------------------------------------
# Numbers beyond every column's range
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [2**63, 10**30])
async def test_a_page_number_whose_offset_would_overflow_bigint_is_a_422_naming_page_in_the_registry(registry_only, page):
    response = await registry_only.registry.http.get("/businesses", params={"page": page}, headers=registry_only.auth())
    assert_problem(response, 422, "page")


@pytest.mark.parametrize("page", [2**63, 10**30])
async def test_a_page_number_whose_offset_would_overflow_bigint_is_a_422_naming_page_in_the_notifier(registry_and_notifier, page):
    notifier = registry_and_notifier.notifier
    response = await notifier.http.get("/messages", params={"page": page}, headers=registry_and_notifier.auth())
    assert_problem(response, 422, "page")


@pytest.mark.parametrize("total", [2**63, 10**30])
async def test_a_pledge_total_beyond_bigint_is_a_422_naming_total_rupiah_and_makes_no_pledge(funding_only, total):
    funding = funding_only.funding
    sponsor_id = await _sponsor(funding_only)
    before = await funding.count(*FUNDING_TABLES)
    sponsor = funding_only.auth("sponsor", sponsor_id)
    made = await funding.http.post("/pledges", json=_pledge(sponsor_id, total_rupiah=total), headers=sponsor)
    assert_problem(made, 422, "total_rupiah")
    simulated = await funding.http.post("/pledges/simulate", json=_pledge(sponsor_id, total_rupiah=total), headers=sponsor)
    assert_problem(simulated, 422, "total_rupiah")
    assert await funding.count(*FUNDING_TABLES) == before


# ---------------------------------------------------------------------------------------------------------------
# NUL characters, which PostgreSQL can't store in text
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["business_name", "owner_name", "address"])
async def test_a_nul_in_a_registration_text_field_is_a_422_naming_it_and_registers_nothing(registry_only, field):
    registry = registry_only.registry
    before = await registry.count(*REGISTRY_TABLES)
    body = registration(**{field: "Jalan Timor Raya\x00 No. 5"})
    response = await registry.http.post("/businesses", json=body, headers=registry_only.auth())
    assert_problem(response, 422, field)
    assert await registry.count(*REGISTRY_TABLES) == before


async def test_a_registration_whose_nik_is_written_in_arabic_indic_digits_is_a_422_naming_the_nik(registry_only):
    # The same NIK in another script's digits would get another digest and pass the duplicate check.
    registry = registry_only.registry
    first = registration()
    assert (await registry.http.post("/businesses", json=first, headers=registry_only.auth())).status_code == 201
    before = await registry.count(*REGISTRY_TABLES)
    nik = first["owner_nik"]
    disguised = nik[:6] + nik[6:12].translate(str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")) + nik[12:]
    response = await registry.http.post("/businesses", json=registration(owner_nik=disguised, business_name="Usaha Lain"),
                                        headers=registry_only.auth())  # fmt: skip
    assert_problem(response, 422, "owner_nik")
    assert await registry.count(*REGISTRY_TABLES) == before


async def test_a_nul_in_a_correction_or_a_close_reason_is_a_422_naming_it_and_changes_nothing(registry_only):
    registry = registry_only.registry
    business = await _register(registry_only)
    before = await registry.count(*REGISTRY_TABLES)
    patched = await registry.http.patch(f"/businesses/{business['id']}", json={"address": "Jl. El Tari\x00"},
                                        headers=registry_only.auth())  # fmt: skip
    assert_problem(patched, 422, "address")
    closed = await registry.http.post(f"/businesses/{business['id']}/close", json={"reason": "pindah\x00 ke Atambua"},
                                      headers=registry_only.auth())  # fmt: skip
    assert_problem(closed, 422, "reason")
    assert await registry.count(*REGISTRY_TABLES) == before
    now = (await registry.http.get(f"/businesses/{business['id']}", headers=registry_only.auth())).json()
    assert (now["version"], now["status"], now["owner"]["address"]) == (business["version"], "active", business["owner"]["address"])


@pytest.mark.parametrize("name", ["name", "kecamatan"])
async def test_a_nul_in_a_registry_search_filter_is_a_422_naming_the_filter(registry_only, name):
    response = await registry_only.registry.http.get("/businesses", params={name: "Oe\x00bobo"}, headers=registry_only.auth())
    assert_problem(response, 422, name)


async def test_a_nul_in_a_pledge_title_a_close_reason_or_a_query_is_a_422_naming_it_in_funding(funding_only):
    funding = funding_only.funding
    sponsor_id = await _sponsor(funding_only)
    sponsor = funding_only.auth("sponsor", sponsor_id)
    before = await funding.count(*FUNDING_TABLES)
    titled = await funding.http.post("/pledges", json=_pledge(sponsor_id, title="CSR\x00 Bank NTT"), headers=sponsor)
    assert_problem(titled, 422, "title")
    assert await funding.count(*FUNDING_TABLES) == before
    pledge = await funding.http.post("/pledges", json=_pledge(sponsor_id), headers=sponsor)
    assert pledge.status_code == 201, pledge.text
    before = await funding.count(*FUNDING_TABLES)
    closed = await funding.http.post(f"/pledges/{pledge.json()['id']}/close", json={"reason": "dana\x00 habis"},
                                     headers=sponsor)  # fmt: skip
    assert_problem(closed, 422, "reason")
    assert await funding.count(*FUNDING_TABLES) == before
    assert (await funding.http.get(f"/pledges/{pledge.json()['id']}", headers=sponsor)).json()["status"] == "open"
    searched = await funding.http.get(f"/pledges/{pledge.json()['id']}/offers", params={"status": "offered\x00"},
                                      headers=sponsor)  # fmt: skip
    assert_problem(searched, 422, "status")


async def test_a_nul_in_a_notifier_query_filter_is_a_422_naming_it(registry_and_notifier):
    notifier = registry_and_notifier.notifier
    response = await notifier.http.get("/messages", params={"template": "wel\x00come"}, headers=registry_and_notifier.auth())
    assert_problem(response, 422, "template")


# ---------------------------------------------------------------------------------------------------------------
# Races
# ---------------------------------------------------------------------------------------------------------------


async def test_one_nib_recorded_for_two_businesses_at_once_is_one_200_and_one_409_and_one_holder(registry_only):
    registry = registry_only.registry
    officer = registry_only.auth()
    for attempt in range(4):
        nib = f"91200000000{attempt:02d}"
        outcomes, businesses = [], []
        for _ in range(2):
            business = await _register(registry_only)
            application = await registry.http.post(f"/businesses/{business['id']}/nib-applications", headers=officer)
            assert application.status_code == 201, application.text
            businesses.append(uuid.UUID(business["id"]))
            outcomes.append(f"/businesses/{business['id']}/nib-applications/{application.json()['id']}/outcome")
        responses = await asyncio.gather(*(registry.http.post(url, json={"outcome": "issued", "nib": nib}, headers=officer)
                                           for url in outcomes))  # fmt: skip
        assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 409)
        assert assert_problem(refused, 409)["code"] == "nib_taken"
        conn = await asyncpg.connect(registry.database_url)
        try:
            holders = await conn.fetchval("SELECT count(*) FROM business WHERE nib = $1", nib)
            states = await conn.fetch("SELECT b.nib_status, a.status FROM business b JOIN nib_application a"
                                      " ON a.business_id = b.id WHERE b.id = ANY($1::uuid[])", businesses)  # fmt: skip
        finally:
            await conn.close()
        assert holders == 1
        # The refused outcome changed nothing: that business is still waiting for its NIB.
        assert sorted(tuple(r) for r in states) == [("applied", "pending"), ("issued", "issued")]


# ---------------------------------------------------------------------------------------------------------------
# Imports: width, length, cell size, body size
# ---------------------------------------------------------------------------------------------------------------


async def test_an_import_with_ten_thousand_and_one_rows_is_a_422_naming_rows_and_registers_nothing(registry_only):
    registry = registry_only.registry
    row = registration()
    body = {"columns": list(row), "rows": [{"line": i + 2, "values": [str(v) for v in row.values()]} for i in range(10_001)]}
    response = await registry.http.post("/imports/businesses", json=body, headers=registry_only.auth())
    assert_problem(response, 422, "rows")
    assert await registry.count(*REGISTRY_TABLES) == dict.fromkeys(REGISTRY_TABLES, 0)


async def test_an_import_cell_of_five_thousand_characters_is_a_422_naming_its_path_and_registers_nothing(registry_only):
    registry = registry_only.registry
    good, long = registration(), registration(address="Jalan " + "x" * 4994)
    columns = list(long)
    body = {"columns": columns, "rows": [{"line": 2, "values": [str(good.get(c, "")) for c in columns]},
                                         {"line": 3, "values": [str(long[c]) for c in columns]}]}  # fmt: skip
    response = await registry.http.post("/imports/businesses", json=body, headers=registry_only.auth())
    assert_problem(response, 422, f"rows.1.values.{columns.index('address')}")
    assert await registry.count(*REGISTRY_TABLES) == dict.fromkeys(REGISTRY_TABLES, 0)


async def test_a_body_over_ten_megabytes_is_a_413_whether_its_length_is_declared_or_streamed(registry_only):
    registry = registry_only.registry
    filler = b'{"columns": [], "rows": [], "pad": "' + b"x" * TEN_MB + b'"}'
    declared = await registry.http.post("/imports/businesses", content=filler, headers=registry_only.auth()
                                        | {"Content-Type": "application/json"})  # fmt: skip
    assert_problem(declared, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(filler), 1024 * 1024):
            yield filler[i:i + 1024 * 1024]

    streamed = await registry.http.post("/imports/businesses", content=chunks(), headers=registry_only.auth()
                                        | {"Content-Type": "application/json"})  # fmt: skip
    assert_problem(streamed, 413)
    assert await registry.count(*REGISTRY_TABLES) == dict.fromkeys(REGISTRY_TABLES, 0)


# ---------------------------------------------------------------------------------------------------------------
# Unknown records
# ---------------------------------------------------------------------------------------------------------------


async def test_a_pledge_s_offers_come_a_page_at_a_time_with_the_total_and_the_next_page(funding_only):
    funding = funding_only.funding
    _, sponsor, [pledge_id] = await _offered(funding_only, businesses=5)
    url = f"/pledges/{pledge_id}/offers"

    pages, link = [], f"{url}?page_size=2"
    while link:
        response = await funding.http.get(link, headers=sponsor)
        assert response.status_code == 200, response.text
        assert response.headers["X-Total-Count"] == "5"
        pages.append([o["business_id"] for o in response.json()])
        link = response.links.get("next", {}).get("url")

    assert [len(p) for p in pages] == [2, 2, 1]
    everything = (await funding.http.get(url, headers=sponsor)).json()
    assert [o["business_id"] for o in everything] == [b for p in pages for b in p], "one order, each offer once"
    assert (await funding.http.get(url, params={"page": 4, "page_size": 2}, headers=sponsor)).json() == []
    assert_problem(await funding.http.get(url, params={"page": 2**63}, headers=sponsor), 422, "page")
    assert_problem(await funding.http.get(url, params={"page_size": 1001}, headers=sponsor), 422, "page_size")


async def test_one_pledge_sent_five_times_at_once_under_one_idempotency_key_is_one_pledge(funding_only):
    funding = funding_only.funding
    sponsor_id = await _sponsor(funding_only)
    sponsor = {**funding_only.auth("sponsor", sponsor_id), "Idempotency-Key": "csr-2026-07"}
    before = await funding.count("pledge", "outbox")

    answers = await asyncio.gather(*(funding.http.post("/pledges", json=_pledge(sponsor_id), headers=sponsor)
                                     for _ in range(5)))  # fmt: skip

    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert (await funding.count("pledge"))["pledge"] == before["pledge"] + 1
    other = await funding.http.post("/pledges", json=_pledge(sponsor_id, total_rupiah=90_000_000), headers=sponsor)
    assert assert_problem(other, 409)["code"] == "idempotency_key_reused"
    unprintable = await funding.http.post("/pledges", json=_pledge(sponsor_id),
                                          headers={**sponsor, "Idempotency-Key": "a b"})  # fmt: skip
    assert_problem(unprintable, 422, "Idempotency-Key")
    assert (await funding.count("pledge"))["pledge"] == before["pledge"] + 1


async def test_pledges_refused_at_once_under_a_key_leave_it_free_for_the_pledge_sent_right(funding_only):
    funding = funding_only.funding
    sponsor_id = await _sponsor(funding_only)
    sponsor = {**funding_only.auth("sponsor", sponsor_id), "Idempotency-Key": "csr-2026-08"}
    wrong = _pledge(sponsor_id, amount_per_business_rupiah=90_000_000)  # more for one business than the whole

    refused = await asyncio.gather(*(funding.http.post("/pledges", json=wrong, headers=sponsor) for _ in range(3)))
    made = await funding.http.post("/pledges", json=_pledge(sponsor_id), headers=sponsor)

    assert [a.status_code for a in refused] == [422] * 3, [a.text for a in refused]
    assert made.status_code == 201, made.text


async def test_a_sponsor_report_counts_businesses_not_offers_so_three_businesses_of_two_pledges_stay_hidden(funding_only):
    funding = funding_only.funding
    sponsor_id, sponsor, _ = await _offered(funding_only, businesses=3, titles=("CSR tahap 1", "CSR tahap 2"))

    report = (await funding.http.get(f"/reports/sponsors/{sponsor_id}", headers=sponsor)).json()

    assert report["by_kecamatan"] == [{"group": "Oebobo", "suppressed": True, "businesses": None, "reserved_rupiah": None,
                                       "accepted_rupiah": None, "disbursed_rupiah": None}]  # fmt: skip
    assert [r["suppressed"] for r in report["by_scale"]] == [True]
    assert report["totals"]["reserved_rupiah"] == 30_000_000 and report["reconciles"]


async def test_a_sponsor_is_told_why_only_of_the_businesses_its_pledge_made_an_offer_to(funding_only):
    funding = funding_only.funding
    _, sponsor, [pledge_id] = await _offered(funding_only, businesses=1)  # a pledge for Oebobo only
    conn = await asyncpg.connect(funding.database_url)
    try:
        offered = await conn.fetchval("SELECT business_id FROM business_view")
        [elsewhere] = await _known_businesses(conn, 1, kecamatan_code="53.71.01")
    finally:
        await conn.close()

    def why(business_id: uuid.UUID, headers: dict[str, str]) -> Any:
        return funding.http.get("/explain", params={"pledge_id": pledge_id, "business_id": str(business_id)},
                                headers=headers)  # fmt: skip

    assert (await why(offered, sponsor)).json()["offer"]["business_id"] == str(offered)
    assert_problem(await why(elsewhere, sponsor), 403)
    assert_problem(await why(uuid.uuid4(), sponsor), 403)  # alike for an id no business has: nothing to learn
    assert (await why(elsewhere, funding_only.auth())).json()["eligible_now"] is False  # an officer is told
    assert_problem(await why(uuid.uuid4(), funding_only.auth()), 404)


async def _known_businesses(conn: asyncpg.Connection, n: int, kecamatan_code: str = "53.71.04") -> list[uuid.UUID]:
    """Active micro food businesses (of Oebobo unless told) with an NIB in funding's view, as the registry's events
    would leave them; their ids."""
    ids = [uuid.uuid4() for _ in range(n)]
    await conn.executemany(
        "INSERT INTO business_view (business_id, version, business_name, contact_phone, kecamatan_code, kbli_code,"
        " scale, youth_owned, women_owned, nib_status, status, annual_sales_rupiah, registered_at)"
        " VALUES ($1, 1, $2, '+6281234567890', $3, '56102', 'micro', true, true, 'issued', 'active', 50000000, now())",
        [(b, f"Usaha {i}", kecamatan_code) for i, b in enumerate(ids)])  # fmt: skip
    return ids


async def _offered(system: Berdaya, businesses: int,
                   titles: tuple[str, ...] = ("CSR Bank NTT: kuliner Oebobo",)) -> tuple[str, dict[str, str], list[str]]:  # fmt: skip
    """`businesses` businesses of Oebobo known to funding, and one sponsor's pledge for Oebobo per title, each offered
    to every one of them once matched: (the sponsor's id, its headers, the pledges' ids)."""
    assert system.funding is not None
    conn = await asyncpg.connect(system.funding.database_url)
    try:
        await _known_businesses(conn, businesses)
        sponsor_id = await _sponsor(system)
        sponsor = system.auth("sponsor", sponsor_id)
        pledge_ids = []
        for title in titles:
            made = await system.funding.http.post("/pledges", json=_pledge(sponsor_id, title=title), headers=sponsor)
            assert made.status_code == 201, made.text
            pledge_ids.append(made.json()["id"])
        offers = businesses * len(titles)
        assert await eventually(lambda: conn.fetchval("SELECT count(*) = $1 FROM offer", offers), timeout=60)
    finally:
        await conn.close()
    return sponsor_id, sponsor, pledge_ids


async def test_the_offers_of_an_unknown_pledge_are_a_404(funding_only):
    response = await funding_only.funding.http.get(f"/pledges/{uuid.uuid4()}/offers", headers=funding_only.auth())
    assert_problem(response, 404)


async def test_the_nib_applications_of_an_unknown_business_are_a_404(registry_only):
    response = await registry_only.registry.http.get(f"/businesses/{uuid.uuid4()}/nib-applications",
                                                     headers=registry_only.auth())  # fmt: skip
    assert_problem(response, 404)


# ---------------------------------------------------------------------------------------------------------------
# Personal data in the notifier
# ---------------------------------------------------------------------------------------------------------------


async def test_operators_admins_and_officers_of_other_kecamatan_see_owners_phones_masked_officers_in_full(
    registry_and_notifier,
):
    system = registry_and_notifier
    business = await _register(system, phone="081234567890")
    full = business["owner"]["phone"]
    assert full == "+6281234567890"

    async def welcomed() -> bool:
        response = await system.notifier.http.get("/messages", params={"business_id": business["id"]}, headers=system.auth())
        return response.status_code == 200 and response.json()["total"] == 1

    assert await eventually(welcomed, timeout=60), "the welcome message was never recorded"

    async def phones(role: str, kecamatan: str | None = None) -> list[str]:
        token = system.tokens.mint(f"hostile-{role}", [role], kecamatan=[kecamatan] if kecamatan else ())
        response = await system.notifier.http.get("/messages", params={"business_id": business["id"]},
                                                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert response.status_code == 200, response.text
        [message] = response.json()["items"]
        detail = await system.notifier.http.get(f"/messages/{message['id']}", headers={"Authorization": f"Bearer {token}"})
        assert detail.status_code == 200 and detail.json()["recipient_phone"] == message["recipient_phone"], detail.text
        phones = [message["recipient_phone"], *(d["recipient"] for d in message["deliveries"])]
        assert len(set(phones)) == 1, phones  # the message's and its deliveries' alike
        return phones[:1]

    masked = ["*" * (len(full) - 3) + "890"]
    assert await phones("officer") == [full]
    assert await phones("officer", business["kecamatan"]["code"]) == [full]
    assert await phones("officer", "53.71.01" if business["kecamatan"]["code"] != "53.71.01" else "53.71.02") == masked
    for role in ("operator", "admin"):
        assert await phones(role) == masked, role


async def test_an_officers_words_on_why_an_nib_failed_are_shown_in_the_notifier_only_to_officers_of_the_kecamatan(
    registry_and_notifier,
):
    system = registry_and_notifier
    business = await _register(system)
    officer = system.auth()
    application = await system.registry.http.post(f"/businesses/{business['id']}/nib-applications", headers=officer)
    reason = "pemilik masih dirawat di RSUD"
    outcome = await system.registry.http.post(
        f"/businesses/{business['id']}/nib-applications/{application.json()['id']}/outcome",
        json={"outcome": "rejected", "reason": reason}, headers=officer)  # fmt: skip
    assert outcome.status_code == 200, outcome.text

    async def bodies(role: str, kecamatan: str | None = None) -> set[str]:
        token = system.tokens.mint(f"words-{role}", [role], kecamatan=[kecamatan] if kecamatan else ())
        auth = {"Authorization": f"Bearer {token}"}
        wanted = {"business_id": business["id"], "template": "nib_rejected"}
        found = await system.notifier.http.get("/messages", params=wanted, headers=auth)
        assert found.status_code == 200, found.text
        items = found.json()["items"]
        details = [await system.notifier.http.get(f"/messages/{m['id']}", headers=auth) for m in items]
        return {m["body"] for m in items} | {d.json()["body"] for d in details}

    async def recorded() -> bool:
        return bool(await bodies("officer"))

    assert await eventually(recorded, timeout=60), "the rejection's message was never recorded"
    elsewhere = "53.71.01" if business["kecamatan"]["code"] != "53.71.01" else "53.71.02"
    [told] = await bodies("officer", business["kecamatan"]["code"])
    assert reason in told
    for role, kecamatan in (("officer", elsewhere), ("operator", None), ("admin", None)):
        [shown] = await bodies(role, kecamatan)
        assert reason not in shown and "officers of the business's kecamatan" in shown, role


# ---------------------------------------------------------------------------------------------------------------
# One error shape everywhere
# ---------------------------------------------------------------------------------------------------------------


async def test_every_kind_of_error_of_every_service_is_a_problem_document(all_services):
    system = all_services
    registry, funding, notifier = system.registry, system.funding, system.notifier
    sponsor_id = await _sponsor(system)
    viewer, officer = system.auth("viewer"), system.auth()
    for service, read, write in ((registry, "/businesses", "/businesses"), (funding, "/pledges", "/sponsors"),
                                 (notifier, "/messages", None)):  # fmt: skip
        assert_problem(await service.http.get("/audit"), 401)
        assert_problem(await service.http.get("/audit", headers=viewer), 403)
        assert_problem(await service.http.get("/audit", params={"page": 0}, headers=officer), 422, "page")
        assert_problem(await service.http.get("/no-such-route", headers=officer), 404)
        assert_problem(await service.http.delete(read, headers=officer), 405)
        if write:
            assert_problem(await service.http.post(write, content=b"\xff\xfe{", headers=officer
                                                   | {"Content-Type": "application/json"}), 400)  # fmt: skip
            assert_problem(await service.http.post(write, content=b'{"a": ', headers=officer
                                                   | {"Content-Type": "application/json"}), 422)  # fmt: skip
            assert_problem(await service.http.post(write, json=[], headers=officer), 422)
            assert_problem(await service.http.post(write, content=b"{" * 100_000, headers=officer
                                                   | {"Content-Type": "application/json"}), 422)  # fmt: skip
            assert_problem(await service.http.post(write, content=b"x" * (TEN_MB + 1), headers=officer), 413)
    business = await _register(system)
    assert_problem(await registry.http.get(f"/businesses/{uuid.uuid4()}", headers=officer), 404)
    assert_problem(await registry.http.get("/businesses/not-a-uuid", headers=officer), 422, "business_id")
    again = registration(phone=business["owner"]["phone"], name=business["business_name"])
    assert_problem(await registry.http.post("/businesses", json=again, headers=officer), 409)
    assert_problem(await registry.http.post("/businesses", json=registration(kecamatan="Atambua"), headers=officer), 422,
                   "kecamatan")  # fmt: skip
    other_sponsor = system.auth("sponsor", str(uuid.uuid4()))
    assert_problem(await funding.http.post("/pledges", json=_pledge(sponsor_id), headers=other_sponsor), 403)
    assert_problem(await funding.http.get(f"/reports/sponsors/{sponsor_id}", headers=officer), 404)
    assert_problem(await funding.http.post("/pledges", json=_pledge(sponsor_id, valid_until="2020-01-01"),
                                           headers=system.auth("sponsor", sponsor_id)), 422, "valid_until")  # fmt: skip
    assert_problem(await notifier.http.get("/messages", params={"template": "spam"}, headers=officer), 422, "template")


# ---------------------------------------------------------------------------------------------------------------
# A real registry process: a huge import beside /ready, and `berdaya import`
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class RegistryProcess:
    url: str
    token: str
    database_url: str


@pytest.fixture
async def registry_process(infra, database_url, tmp_path) -> AsyncIterator[RegistryProcess]:  # noqa: ANN001
    env = service_env(infra.kafka, f"hostile-{uuid.uuid4().hex[:8]}")
    process = await asyncio.to_thread(start_service, "registry", env, database_url, tmp_path / "registry.log")
    try:
        yield RegistryProcess(process.url, TokenService(TEST_SECRET).mint("hostile-cli", ["officer"]), database_url)
    finally:
        stop_pid(process.pid)


async def test_an_import_of_a_hundred_thousand_columns_is_a_422_while_the_registry_keeps_answering_ready(registry_process):
    columns = [f"kolom_{i}" for i in range(100_000)]
    body = {"columns": columns, "rows": [{"line": 2, "values": ["x"] * 100_000}]}
    headers = {"Authorization": f"Bearer {registry_process.token}"}
    order: list[str] = []
    ready_statuses: list[int] = []
    async with httpx.AsyncClient(base_url=registry_process.url, timeout=120) as http:

        async def send_import() -> httpx.Response:
            order.append("import sent")
            response = await http.post("/imports/businesses", json=body, headers=headers)
            order.append("import answered")
            return response

        async def poll_ready() -> None:
            # Ask while the import is in flight, and once more after it was answered.
            while True:
                finished = "import answered" in order
                ready_statuses.append((await http.get("/ready")).status_code)
                order.append("ready answered")
                if finished:
                    return
                await asyncio.sleep(0.05)

        importing = asyncio.create_task(send_import())
        polling = asyncio.create_task(poll_ready())
        # A guard, not a measurement: a registry stalled by the import never answers, and the test says so.
        done, _ = await asyncio.wait({importing}, timeout=60)
        assert importing in done, f"the registry stalled on a 100,000-column import: {order}"
        await polling
    assert_problem(importing.result(), 422, "columns")
    assert order[0] == "import sent" and order[-1] == "ready answered", order
    assert set(ready_statuses) == {200}, ready_statuses
    conn = await asyncpg.connect(registry_process.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM business") == 0
    finally:
        await conn.close()


def _cli_import(file: Path, registry: RegistryProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BERDAYA_TOKEN": registry.token, "NO_COLOR": "1"}
    return subprocess.run([str(BERDAYA_CLI), "import", str(file), "--url", registry.url], capture_output=True,
                          text=True, env=env, timeout=120, cwd=REPO)  # fmt: skip


def _csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        columns = list(dict.fromkeys(name for row in rows for name in row))
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _assert_refused_cleanly(result: subprocess.CompletedProcess[str], reason: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert reason in errors[0], output


async def test_berdaya_import_refuses_a_file_that_is_not_utf8_with_one_clear_line(registry_process, tmp_path):
    file = tmp_path / "umkm.csv"
    file.write_bytes(b"business_name,owner_name\nWarung Ibu Ad\xe9le,Ad\xe9le Ndun\n")
    result = await asyncio.to_thread(_cli_import, file, registry_process)
    _assert_refused_cleanly(result, "not UTF-8")


async def test_berdaya_import_refuses_an_empty_file_with_one_clear_line(registry_process, tmp_path):
    file = tmp_path / "umkm.csv"
    file.write_bytes(b"")
    result = await asyncio.to_thread(_cli_import, file, registry_process)
    _assert_refused_cleanly(result, "empty")


async def test_berdaya_import_refuses_a_header_without_rows_with_one_clear_line(registry_process, tmp_path):
    file = tmp_path / "umkm.csv"
    file.write_text(",".join(IMPORT_COLUMNS) + "\n", encoding="utf-8")
    result = await asyncio.to_thread(_cli_import, file, registry_process)
    _assert_refused_cleanly(result, "no rows")


async def test_berdaya_import_reports_a_nul_cell_by_line_and_imports_the_good_rows(registry_process, tmp_path):
    rows = [registration(), registration(address="Jalan\x00Timor"), registration()]
    file = _csv(tmp_path / "umkm.csv", rows)
    result = await asyncio.to_thread(_cli_import, file, registry_process)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    errors = read_error_report(file.with_suffix(".errors.csv"))
    assert [(e["line"], e["field"], e["code"]) for e in errors] == [("3", "address", "import.nul")]
    async with httpx.AsyncClient(base_url=registry_process.url, timeout=30) as http:
        found = await http.get("/businesses", headers={"Authorization": f"Bearer {registry_process.token}"})
    assert found.json()["total"] == 2


async def test_berdaya_import_reports_a_cell_over_a_thousand_characters_by_line_and_imports_the_good_rows(registry_process, tmp_path):
    rows = [registration(), registration(address="Jalan " + "x" * 1001), registration()]
    file = _csv(tmp_path / "umkm.csv", rows)
    result = await asyncio.to_thread(_cli_import, file, registry_process)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    errors = read_error_report(file.with_suffix(".errors.csv"))
    assert [(e["line"], e["field"], e["code"]) for e in errors] == [("3", "address", "import.cell_too_long")]
    async with httpx.AsyncClient(base_url=registry_process.url, timeout=30) as http:
        found = await http.get("/businesses", headers={"Authorization": f"Bearer {registry_process.token}"})
    assert sorted(b["business_name"] for b in found.json()["items"]) == sorted([rows[0]["business_name"], rows[2]["business_name"]])

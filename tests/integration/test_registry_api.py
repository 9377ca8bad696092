"""The registry's HTTP API on real PostgreSQL and Kafka: what an officer does, and what reaches Kafka."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.registry import handlers
from services.registry.bootstrap import create_app
from services.registry.settings import RegistrySettings
from shared.auth import TokenService
from shared.contracts.topics import REGISTRY_BUSINESS
from tests.integration.races import held_back
from tests.support import eventually, kafka_settings, read_topic, registration
from shared.messaging.kafka import KafkaAccess
from shared.unit_of_work import Cause

pytestmark = pytest.mark.integration

SECRET = "integration-test-secret-integration-test-secret"


@dataclass
class Registry:
    http: httpx.AsyncClient
    tokens: TokenService
    bootstrap: KafkaAccess | str
    app: FastAPI

    def auth(self, role: str = "officer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint('tester', [role])}"}

    async def register(self, body: dict, role: str = "officer") -> httpx.Response:
        return await self.http.post("/businesses", json=body, headers=self.auth(role))

    async def events_of(self, business_id: str, expect: int) -> list[dict]:
        async def arrived() -> bool:
            return len(await self._events(business_id)) >= expect

        assert await eventually(arrived, timeout=30), f"{expect} events for {business_id} never reached Kafka"
        return await self._events(business_id)

    async def _events(self, business_id: str) -> list[dict]:
        records = await read_topic(self.bootstrap, REGISTRY_BUSINESS, expect=0, timeout=2)
        mine = [r for r in records if r.key == business_id.encode()]
        return [json.loads(r.value) | {"_raw": r.value} for r in sorted(mine, key=lambda r: r.offset)]


@pytest.fixture
async def registry(infra, database_url) -> AsyncIterator[Registry]:
    settings = RegistrySettings(
        database_url=database_url,
        **kafka_settings(infra.kafka, "registry"),
        jwt_secret=SECRET, pseudonym_key="p" * 32,
        nik_digest_key=base64.b64encode(os.urandom(32)).decode(),
        nik_encryption_key=base64.b64encode(os.urandom(32)).decode(),
        relay_idle_wait_seconds=0.2,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
            yield Registry(http, TokenService(SECRET), infra.kafka, app)


async def test_a_registered_business_is_published_as_business_registered_keyed_by_its_id_without_the_nik(registry):
    body = registration(birth=date(2001, 2, 3), gender="P")
    response = await registry.register(body)
    assert response.status_code == 201, response.text
    business = response.json()
    assert business["youth_owned"] and business["women_owned"]
    assert business["owner"]["phone"].startswith("+62813")
    [event] = await registry.events_of(business["id"], 1)
    assert event["event_type"] == "BusinessRegistered"
    assert event["aggregate_id"] == business["id"]
    assert event["payload"]["youth_owned"] is True
    assert event["payload"]["kecamatan_code"] == "53.71.04"
    assert body["owner_nik"].encode() not in event["_raw"]


async def test_bad_registration_fields_are_each_named_in_a_422(registry):
    body = registration(owner_nik="5371045708900000", phone="0380-821234", kbli_code="44123", kelurahan="Namosain")
    response = await registry.register(body)
    assert response.status_code == 422
    fields = {e["field"]: e["code"] for e in response.json()["errors"]}
    assert fields == {"owner_nik": "nik.serial", "phone": "phone.not_mobile", "kbli_code": "kbli.unknown_division",
                      "kelurahan": "wilayah.unknown_kelurahan"}  # fmt: skip


async def test_a_second_registration_of_the_same_owner_and_a_similar_name_is_a_probable_duplicate(registry):
    first = (await registry.register(registration(name="Sei Babi Om Ande"))).json()
    again = registration(name="SEI BABI OM ANDE", phone=first["owner"]["phone"])
    response = await registry.register(again)
    assert response.status_code == 409
    assert response.json()["existing_business_id"] == first["id"]
    confirmed = await registry.register({**again, "confirm_distinct": True})
    assert confirmed.status_code == 201


async def test_a_name_typed_again_with_invisible_characters_is_the_same_name_to_duplicate_detection(registry):
    first = (await registry.register(registration(name="Jagung Bose Mama Ina"))).json()
    again = registration(name="Ja\u200bgung Bo\u200bse Mama Ina", phone=first["owner"]["phone"])
    response = await registry.register(again)
    assert response.status_code == 409 and response.json()["existing_business_id"] == first["id"], response.text
    confirmed = (await registry.register({**again, "confirm_distinct": True})).json()
    assert confirmed["business_name"] == "Jagung Bose Mama Ina"  # stored without what no one can see


async def test_a_registration_with_an_nib_another_business_holds_is_refused_naming_that_business(registry):
    holder = (await registry.register(registration(nib="9120000000777"))).json()
    for confirm in (False, True):  # read with the duplicate candidates, or on its own when confirmed distinct
        response = await registry.register({**registration(nib="9120000000777"), "confirm_distinct": confirm})
        assert (response.status_code, response.json()["code"]) == (409, "nib_taken"), response.text
        assert response.json()["existing_business_id"] == holder["id"]
    # The same owner's phone and a similar name: the duplicate is what is reported, as before.
    response = await registry.register(registration(name=holder["business_name"], phone=holder["owner"]["phone"],
                                                    nib="9120000000777"))  # fmt: skip
    assert response.status_code == 409 and response.json()["code"] != "nib_taken", response.text


async def test_two_simultaneous_registrations_of_one_business_make_one_business_and_one_conflict(registry):
    body = registration(name="Kue Basah Oma Ance")
    responses = await asyncio.gather(*(registry.register(dict(body)) for _ in range(2)))
    assert sorted(r.status_code for r in responses) == [201, 409]


async def test_two_owners_registering_at_once_with_one_phone_or_one_nib_make_one_business_and_one_conflict(registry):
    for round_ in range(4):
        first = registration(name=f"Se'i Sapi Bu Ana {round_}")
        same_phone = registration(name=f"SE'I SAPI BU ANA {round_}", phone=first["phone"])
        responses = await asyncio.gather(registry.register(first), registry.register(same_phone))
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]

        nib = f"91200000001{round_:02d}"
        responses = await asyncio.gather(registry.register(registration(nib=nib)),
                                         registry.register(registration(nib=nib)))  # fmt: skip
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        assert next(r for r in responses if r.status_code == 409).json()["code"] == "nib_taken"


async def test_an_nib_recorded_while_an_import_brings_it_for_another_business_goes_to_one_and_nothing_fails(registry):
    for round_ in range(6):
        holder = (await registry.register(registration())).json()
        applications = f"/businesses/{holder['id']}/nib-applications"
        application = (await registry.http.post(applications, headers=registry.auth())).json()
        nib = f"91300000001{round_:02d}"
        newcomer = registration(nib=nib)
        chunk = {"columns": list(newcomer), "rows": [{"line": 2, "values": [str(v) for v in newcomer.values()]}]}

        recorded, imported = await asyncio.gather(
            registry.http.post(f"{applications}/{application['id']}/outcome", json={"outcome": "issued", "nib": nib},
                               headers=registry.auth()),
            registry.http.post("/imports/businesses", json=chunk, headers=registry.auth()))  # fmt: skip

        assert imported.status_code == 200, imported.text  # a row error at worst, never the whole chunk
        report = imported.json()
        if recorded.status_code == 200:
            assert (report["registered"], [e["code"] for e in report["errors"]]) == (0, ["nib_taken"])
        else:
            assert (recorded.status_code, recorded.json()["code"], report["registered"]) == (409, "nib_taken", 1)


async def test_a_rename_racing_an_import_of_the_new_name_never_leaves_the_owner_two_businesses_of_that_name(registry):
    for round_ in range(6):
        owner = registration(name=f"Kedai Lama {round_}")
        business = (await registry.register(owner)).json()
        renamed = f"Kedai Sinar {round_}"
        row = {**owner, "business_name": renamed}
        chunk = {"columns": list(row), "rows": [{"line": 2, "values": [str(v) for v in row.values()]}]}

        patched, imported = await asyncio.gather(
            registry.http.patch(f"/businesses/{business['id']}", json={"business_name": renamed}, headers=registry.auth()),
            registry.http.post("/imports/businesses", json=chunk, headers=registry.auth()))  # fmt: skip

        assert imported.status_code == 200, imported.text
        assert patched.status_code in (200, 409), patched.text
        found = (await registry.http.get("/businesses", params={"name": f"Sinar {round_}"}, headers=registry.auth())).json()
        assert found["total"] == 1, (patched.json(), imported.json())


async def test_officers_registering_different_owners_at_once_all_succeed(registry):
    responses = await asyncio.gather(*(registry.register(registration()) for _ in range(40)))

    assert [r.status_code for r in responses] == [201] * 40


async def test_an_nib_application_and_its_issuance_are_events_in_order_and_raise_coverage(registry):
    business = (await registry.register(registration())).json()
    applications = f"/businesses/{business['id']}/nib-applications"
    application = await registry.http.post(applications, headers=registry.auth())
    assert application.status_code == 201
    second = await registry.http.post(applications, headers=registry.auth())
    assert second.status_code == 409
    bad = await registry.http.post(f"{applications}/{application.json()['id']}/outcome",
                                   json={"outcome": "issued", "nib": "12345"}, headers=registry.auth())  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "nib"
    issued = await registry.http.post(f"{applications}/{application.json()['id']}/outcome",
                                      json={"outcome": "issued", "nib": "9120001234567"}, headers=registry.auth())  # fmt: skip
    assert issued.status_code == 200 and issued.json()["status"] == "issued"
    coverage = (await registry.http.get("/stats/nib-coverage")).json()
    assert (coverage["registered"], coverage["with_nib"], coverage["coverage"]) == (1, 1, 1.0)
    events = await registry.events_of(business["id"], 3)
    assert [e["event_type"] for e in events] == ["BusinessRegistered", "NIBApplied", "NIBIssued"]
    assert [e["payload"]["business_version"] for e in events] == [1, 2, 3]


async def test_why_a_business_closed_or_was_rejected_is_shown_only_to_officers_of_its_kecamatan(registry):
    business = (await registry.register(registration())).json()  # in Oebobo
    applications = f"/businesses/{business['id']}/nib-applications"
    application = (await registry.http.post(applications, headers=registry.auth())).json()
    rejected = await registry.http.post(f"{applications}/{application['id']}/outcome", headers=registry.auth(),
                                        json={"outcome": "rejected", "reason": "KTP pemilik tidak terbaca"})  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    closed = await registry.http.post(f"/businesses/{business['id']}/close", json={"reason": "pemilik meninggal"},
                                      headers=registry.auth())  # fmt: skip
    assert closed.status_code == 200, closed.text
    alak = {"Authorization": f"Bearer {registry.tokens.mint('petugas.alak', ['officer'], kecamatan=['53.71.01'])}"}

    seen = {}
    for who, headers in (("officer", registry.auth()), ("viewer", registry.auth("viewer")),
                         ("operator", registry.auth("operator")), ("Alak officer", alak)):  # fmt: skip
        read = (await registry.http.get(f"/businesses/{business['id']}", headers=headers)).json()
        [listed] = (await registry.http.get(applications, headers=headers)).json()
        seen[who] = (read["closed_reason"], listed["reason"], listed["status"])

    assert seen == {"officer": ("pemilik meninggal", "KTP pemilik tidak terbaca", "rejected"),
                    "viewer": (None, None, "rejected"), "operator": (None, None, "rejected"),
                    "Alak officer": (None, None, "rejected")}  # fmt: skip


async def test_the_register_can_be_searched_by_region_kbli_scale_nib_youth_and_women_with_pagination(registry):
    await registry.register(registration(birth=date(2000, 1, 1), gender="P"))
    await registry.register(registration(birth=date(1970, 1, 1), gender="L", kecamatan="Alak", kelurahan="Namosain",
                                         kbli_code="56102", nib="9120009876543"))  # fmt: skip
    await registry.register(registration(birth=date(1999, 1, 1), gender="L", annual_sales_rupiah=3_000_000_000))

    async def count(**params: object) -> int:
        response = await registry.http.get("/businesses", params=params, headers=registry.auth("viewer"))
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert await count() == 3
    assert await count(kecamatan="alak") == 1
    assert await count(kelurahan="Fatululi", kecamatan="Oebobo") == 2
    assert await count(kbli="561") == 1
    assert await count(scale="small") == 1
    assert await count(nib_status="issued") == 1
    assert await count(youth_owned="true") == 2
    assert await count(women_owned="true") == 1
    assert await count(name="") == 3  # an empty name filters nothing
    page = (await registry.http.get("/businesses", params={"page_size": 2, "page": 2}, headers=registry.auth())).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    unknown = await registry.http.get("/businesses", params={"kecamatan": "Atambua"}, headers=registry.auth())
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "kecamatan"


async def test_the_youth_flag_shown_and_searched_changes_on_the_first_of_a_month_never_on_an_owners_birthday(registry):
    # 31 on 10 December 2026: a youth owner for all of December, as the events say. A flag that changed on the day
    # would tell anyone asking daily the owner's birth date.
    created = await registry.register(registration(birth=date(1995, 12, 10), gender="P"))
    assert created.status_code == 201, created.text
    business_id, ctx = created.json()["id"], registry.app.state.service
    for day in (9, 10, 11):
        ctx.deps = replace(ctx.deps, clock=lambda day=day: datetime(2026, 12, day, 2, tzinfo=UTC))
        shown = await registry.http.get(f"/businesses/{business_id}", headers=registry.auth("viewer"))
        found = await registry.http.get("/businesses", params={"youth_owned": "true"}, headers=registry.auth("viewer"))
        assert (shown.json()["youth_owned"], found.json()["total"]) == (True, 1), day
    ctx.deps = replace(ctx.deps, clock=lambda: datetime(2027, 1, 2, 2, tzinfo=UTC))
    found = await registry.http.get("/businesses", params={"youth_owned": "false"}, headers=registry.auth("viewer"))
    assert found.json()["total"] == 1  # from January, as the monthly sweep publishes


async def test_personal_data_is_shown_only_to_roles_that_may_see_it_and_writes_need_an_officer(registry):
    business = (await registry.register(registration())).json()
    as_viewer = (await registry.http.get(f"/businesses/{business['id']}", headers=registry.auth("viewer"))).json()
    assert as_viewer["owner"] is None
    assert (await registry.http.get(f"/businesses/{business['id']}", headers=registry.auth())).json()["owner"]
    assert (await registry.register(registration(), role="viewer")).status_code == 403
    assert (await registry.http.post("/businesses", json=registration())).status_code == 401
    assert (await registry.http.get("/businesses")).status_code == 401


async def test_an_import_registers_good_rows_reports_bad_ones_by_line_and_changes_nothing_when_repeated(registry):
    rows = [registration(), registration(owner_nik="123"), registration(), registration(kecamatan="Atambua")]
    columns = list(rows[0])
    body = {"columns": columns,
            "rows": [{"line": i + 2, "values": [str(r[c]) for c in columns]} for i, r in enumerate(rows)]}  # fmt: skip
    first = (await registry.http.post("/imports/businesses", json=body, headers=registry.auth())).json()
    assert (first["registered"], first["unchanged"]) == (2, 0)
    assert [(e["line"], e["field"]) for e in first["errors"]] == [(3, "owner_nik"), (5, "kecamatan")]
    second = (await registry.http.post("/imports/businesses", json=body, headers=registry.auth())).json()
    assert (second["registered"], second["updated"], second["unchanged"]) == (0, 0, 2)
    assert (await registry.http.get("/businesses", headers=registry.auth())).json()["total"] == 2


async def test_a_confirmed_registration_sent_again_is_refused_and_an_import_updates_the_business_started_again(
    registry,
):
    confirmed = {**registration(name="Kopi Tuak Om Nus"), "confirm_distinct": True}
    first = await registry.register(confirmed)
    assert first.status_code == 201, first.text
    retried = await registry.register(confirmed)  # the client's retry after a timeout
    assert retried.status_code == 409 and retried.json()["code"] == "already_registered", retried.text
    assert retried.json()["existing_business_id"] == first.json()["id"]

    closed = await registry.http.post(f"/businesses/{first.json()['id']}/close", json={"reason": "tutup"},
                                      headers=registry.auth())  # fmt: skip
    assert closed.status_code == 200, closed.text
    again = await registry.register(confirmed)  # the owner starts again under the old name
    assert again.status_code == 201, again.text

    columns = [c for c in confirmed if c != "confirm_distinct"]
    row = {**confirmed, "annual_sales_rupiah": 95_000_000}
    body = {"columns": columns, "rows": [{"line": 2, "values": [str(row[c]) for c in columns]}]}
    report = (await registry.http.post("/imports/businesses", json=body, headers=registry.auth())).json()
    assert (report["updated"], report["errors"]) == (1, []), report
    started_again = (await registry.http.get(f"/businesses/{again.json()['id']}", headers=registry.auth())).json()
    assert started_again["annual_sales_rupiah"] == 95_000_000


async def test_an_owners_businesses_named_in_another_script_are_two_to_registration_and_import_not_one(registry):
    # Their names' ASCII letters are alike ("warung", a generic word kept when it is all there is): an owner's second
    # was refused as a probable duplicate, and an import of both took them for one business.
    first = registration(name="Warung 豆花")
    second = {**first, "business_name": "Warung 珍珠"}
    made = [await registry.register(body) for body in (first, second)]
    assert [r.status_code for r in made] == [201, 201], made[1].text
    again = await registry.register({**first, "business_name": "WARUNG  豆花!", "confirm_distinct": True})
    assert again.status_code == 409 and again.json()["existing_business_id"] == made[0].json()["id"], again.text

    columns = list(first)
    rows = [{**first, "annual_sales_rupiah": 90_000_000}, {**second, "annual_sales_rupiah": 120_000_000}]
    body = {"columns": columns,
            "rows": [{"line": i + 2, "values": [str(r[c]) for c in columns]} for i, r in enumerate(rows)]}  # fmt: skip
    report = (await registry.http.post("/imports/businesses", json=body, headers=registry.auth())).json()
    assert (report["registered"], report["updated"], report["errors"]) == (0, 2, []), report
    for response, row in zip(made, rows, strict=True):
        business = (await registry.http.get(f"/businesses/{response.json()['id']}", headers=registry.auth())).json()
        assert (business["business_name"], business["annual_sales_rupiah"]) == (row["business_name"],
                                                                                row["annual_sales_rupiah"])


async def test_an_import_of_one_of_an_owners_businesses_named_in_another_script_changes_that_one(registry):
    # Both names had the same stored key, '': the import changed the owner's first business into the second.
    first = registration(name="豆花")
    second = {**first, "business_name": "珍珠"}
    made = [(await registry.register(body)).json()["id"] for body in (first, second)]
    columns = list(first)
    body = {"columns": columns, "rows": [{"line": 2, "values": [str({**second, "annual_sales_rupiah": 120_000_000}[c])
                                                                for c in columns]}]}  # fmt: skip
    report = (await registry.http.post("/imports/businesses", json=body, headers=registry.auth())).json()
    assert (report["registered"], report["updated"], report["errors"]) == (0, 1, []), report
    shown = [(await registry.http.get(f"/businesses/{i}", headers=registry.auth())).json() for i in made]
    assert [(b["business_name"], b["annual_sales_rupiah"]) for b in shown] == [("豆花", 80_000_000),
                                                                               ("珍珠", 120_000_000)]


async def test_a_coverage_publisher_that_waited_for_another_publishes_the_count_as_it_is_once_it_may(
        registry, database_url):  # fmt: skip
    # Two registries' publishers: the second counted before it waited for the first, and then published that older
    # count after the first's newer one, a figure going back for partners until the next round.
    ctx = registry.app.state.service

    def publishing() -> asyncio.Task:
        return asyncio.create_task(handlers.publish_coverage(handlers.PublishCoverage(),
                                                             ctx.unit_of_work(Cause.timer("registry")), ctx.deps))

    first = registration(kecamatan="Alak", kelurahan="Namosain")
    assert (await registry.register(first)).status_code == 201
    await publishing()
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute("LOCK TABLE published_coverage IN SHARE ROW EXCLUSIVE MODE")  # the other publisher
            waiting = publishing()
            await held_back(waiting, other)
            second = registration(kecamatan="Alak", kelurahan="Namosain")
            assert (await registry.register(second)).status_code == 201, "a registration waited for the publisher"
        await asyncio.wait_for(waiting, timeout=30)
        published = await other.fetchval("SELECT registered FROM published_coverage WHERE region_code = '53.71.01'")
    finally:
        await other.close()
    assert published == 2


async def test_an_import_with_an_unknown_column_is_refused_before_any_row_is_read(registry):
    body = {"columns": ["business_name", "nama_pemilik"], "rows": [{"line": 2, "values": ["a", "b"]}]}
    response = await registry.http.post("/imports/businesses", json=body, headers=registry.auth())
    assert response.status_code == 422
    assert "nama_pemilik" in response.json()["errors"][0]["message"]


async def test_metrics_show_programme_figures_and_an_empty_outbox_once_published(registry):
    business = (await registry.register(registration(kecamatan="Kelapa Lima", kelurahan="Oesapa"))).json()
    await registry.events_of(business["id"], 1)

    async def drained() -> bool:
        text = (await registry.http.get("/metrics")).text
        return "berdaya_outbox_backlog 0.0" in text

    assert await eventually(drained)
    text = (await registry.http.get("/metrics")).text
    assert 'berdaya_businesses_registered{kecamatan="Kelapa Lima"} 1.0' in text
    assert 'berdaya_nib_coverage_ratio{kecamatan="all"} 0.0' in text
    assert (await registry.http.get("/ready")).json() == {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}}


async def test_a_consent_given_while_its_partner_is_revoked_waits_for_the_revoke_and_is_refused(registry,
                                                                                                database_url):
    admin = {"Authorization": f"Bearer {registry.tokens.mint('admin', ['admin'])}"}
    assert (await registry.http.put("/partners/bri", json={"id": "bri", "name": "BRI"}, headers=admin)).status_code == 200
    business = (await registry.register(registration())).json()
    revoking = await asyncpg.connect(database_url)
    try:
        async with revoking.transaction():  # what the revoke does, held open until the consent has started
            await revoking.execute("UPDATE partner SET active = false WHERE id = 'bri'")
            consent = asyncio.create_task(registry.http.post(
                f"/businesses/{business['id']}/consents", headers=registry.auth(),
                json={"partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI"}))  # fmt: skip
            await held_back(consent, revoking)  # it waits for the revoke rather than read the partner as it was
        answer = await consent
    finally:
        await revoking.close()

    assert answer.status_code == 409 and answer.json()["code"] == "partner_revoked", answer.text


async def test_an_admin_may_neither_list_nor_withdraw_an_owners_consents(registry):
    admin = {"Authorization": f"Bearer {registry.tokens.mint('admin', ['admin'])}"}
    bri = await registry.http.put("/partners/bri", json={"id": "bri", "name": "BRI"}, headers=admin)
    assert bri.status_code == 200, bri.text
    business = (await registry.register(registration())).json()
    consents = f"/businesses/{business['id']}/consents"
    given = await registry.http.post(consents, headers=registry.auth(),
                                     json={"partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI"})  # fmt: skip
    assert given.status_code == 201, given.text

    listed = await registry.http.get(consents, headers=admin)
    withdrawn = await registry.http.post(f"{consents}/{given.json()['id']}/withdraw", headers=admin)

    assert (listed.status_code, withdrawn.status_code) == (403, 403), (listed.text, withdrawn.text)
    assert listed.headers["content-type"] == withdrawn.headers["content-type"] == "application/problem+json"
    [kept] = (await registry.http.get(consents, headers=registry.auth())).json()
    assert kept["withdrawn_at"] is None


async def test_the_same_consent_sent_five_times_at_once_is_recorded_once_and_refers_the_owner_once(registry,
                                                                                                     database_url):
    # An officer's client retrying after a timeout: each was a consent, and the partner got the owner's data each time.
    admin = {"Authorization": f"Bearer {registry.tokens.mint('admin', ['admin'])}"}
    bri = await registry.http.put("/partners/bri", json={"id": "bri", "name": "BRI"}, headers=admin)
    assert bri.status_code == 200, bri.text
    business = (await registry.register(registration())).json()
    consents = f"/businesses/{business['id']}/consents"
    form = {"partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI", "amount_sought_rupiah": 25_000_000}

    answers = await asyncio.gather(*(registry.http.post(consents, headers=registry.auth(), json=form)
                                     for _ in range(5)))  # fmt: skip

    assert {a.status_code for a in answers} == {201} and len({a.json()["id"] for a in answers}) == 1
    [kept] = (await registry.http.get(consents, headers=registry.auth())).json()
    assert kept["id"] == answers[0].json()["id"]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE type = 'ReferralConsented'") == 1
    finally:
        await conn.close()


async def test_a_consent_whose_purpose_shows_no_letters_is_refused_with_422_naming_the_field(registry):
    admin = {"Authorization": f"Bearer {registry.tokens.mint('admin', ['admin'])}"}
    bri = await registry.http.put("/partners/bri", json={"id": "bri", "name": "BRI"}, headers=admin)
    assert bri.status_code == 200, bri.text
    business = (await registry.register(registration())).json()

    refused = await registry.http.post(f"/businesses/{business['id']}/consents", headers=registry.auth(),
                                       json={"partner_id": "bri", "purpose": "\u200b" * 10 + "\u202e" + "\u3164" * 3,
                                             "financing_programme": "\u2066\u200d"})  # fmt: skip

    assert refused.status_code == 422, refused.text
    assert sorted(e["field"] for e in refused.json()["errors"]) == ["financing_programme", "purpose"]
    assert (await registry.http.get(f"/businesses/{business['id']}/consents", headers=registry.auth())).json() == []


async def test_a_revoke_or_a_readmission_answers_once_the_partners_referrals_are_on_its_topic_and_409_while_one_cannot_go(
        registry, infra, monkeypatch):  # fmt: skip
    from berdaya import partners
    from services.registry import routes_partners
    from shared.contracts.topics import partner_topic

    admin = {"Authorization": f"Bearer {registry.tokens.mint('admin', ['admin'])}"}
    business = (await registry.register(registration())).json()
    consents = f"/businesses/{business['id']}/consents"
    reachable, unmade = f"it-{uuid.uuid4().hex[:8]}", f"it-{uuid.uuid4().hex[:8]}"
    await partners.add(infra.kafka, reachable, partitions=1)  # its topics, and the registry's grant to write them
    try:
        for partner_id in (reachable, unmade):  # no topic was made for `unmade`: its referral can't go
            put = await registry.http.put(f"/partners/{partner_id}", json={"id": partner_id, "name": "Bank Uji"},
                                          headers=admin)  # fmt: skip
            assert put.status_code == 200, put.text
        given = {p: (await registry.http.post(consents, headers=registry.auth(), json={
            "partner_id": p, "purpose": "Rujukan KUR Mikro untuk modal kerja"})).json() for p in (reachable, unmade)}

        revoked = await registry.http.post(f"/partners/{reachable}/revoke", headers=admin)

        assert revoked.status_code == 200, revoked.text
        [referral] = await read_topic(infra.kafka, partner_topic(reachable, "referral"), expect=1, timeout=5)
        assert referral.key == given[reachable]["id"].encode()
        # Withdrawn after the revoke: recorded, and nothing left waiting that the registry could no longer send.
        withdrawn = await registry.http.post(f"{consents}/{given[reachable]['id']}/withdraw", headers=registry.auth())
        assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn_at"], withdrawn.text
        assert await registry.app.state.service.queries.referrals_waiting(reachable) == 0

        # Admitted again: the answer comes once the withdrawal made meanwhile is on its topic, so the partner, given
        # its grant to read after this answer, never reads the referral without it.
        readmitted = await registry.http.put(f"/partners/{reachable}", json={"id": reachable, "name": "Bank Uji"},
                                             headers=admin)  # fmt: skip
        assert readmitted.status_code == 200, readmitted.text
        assert await registry.app.state.service.queries.referrals_waiting(reachable) == 0
        told = await read_topic(infra.kafka, partner_topic(reachable, "referral"), expect=2, timeout=5)
        assert [r.key for r in told] == [given[reachable]["id"].encode()] * 2
        assert b"ReferralConsentWithdrawn" in told[1].value

        monkeypatch.setattr(routes_partners, "REVOKE_DRAIN_SECONDS", 1.0)
        stuck = await registry.http.post(f"/partners/{unmade}/revoke", headers=admin)
        assert stuck.status_code == 409 and stuck.json()["code"] == "referrals_waiting", stuck.text
        assert "1 referral event(s)" in stuck.json()["detail"]
        withdrawn = await registry.http.post(f"{consents}/{given[unmade]['id']}/withdraw", headers=registry.auth())
        assert withdrawn.status_code == 200, withdrawn.text
        stuck = await registry.http.put(f"/partners/{unmade}", json={"id": unmade, "name": "Bank Uji"}, headers=admin)
        assert stuck.status_code == 409 and stuck.json()["code"] == "referrals_waiting", stuck.text
        assert "2 referral event(s)" in stuck.json()["detail"] and "berdaya partner add" in stuck.json()["detail"]
    finally:
        partners.revoke(infra.kafka, reachable)

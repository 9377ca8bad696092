"""Who may do what, end to end: a sponsor acts only for its own sponsor and an officer limited to a kecamatan only
there, whatever endpoint they try; every change says who made it, in the event's metadata and in an audit trail an
officer can query; and an import that changes a business and gives its NIB publishes consecutive versions, once."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import httpx
import pytest

from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS
from tests.support import eventually, read_topic, registration

pytestmark = pytest.mark.e2e

OEBOBO, ALAK = "53.71.04", "53.71.01"


def _bearer(system, subject: str, roles: list[str], **claims) -> dict[str, str]:  # noqa: ANN001, ANN003
    return {"Authorization": f"Bearer {system.tokens.mint(subject, roles, **claims)}"}


async def _business_with_nib(http: httpx.AsyncClient, system, officer: dict, **fields) -> str:  # noqa: ANN001, ANN003
    created = await http.post(f"{system.registry.url}/businesses", json=registration(**fields), headers=officer)
    assert created.status_code == 201, created.text
    business_id = created.json()["id"]
    applications = f"{system.registry.url}/businesses/{business_id}/nib-applications"
    application = (await http.post(applications, headers=officer)).json()
    nib = "8" + str(uuid.UUID(business_id).int)[:12]
    issued = await http.post(f"{applications}/{application['id']}/outcome", json={"outcome": "issued", "nib": nib},
                             headers=officer)  # fmt: skip
    assert issued.status_code == 200, issued.text
    return business_id


async def test_sponsors_and_officers_act_only_for_what_their_token_names_and_every_change_names_its_actor(system):
    officer = _bearer(system, "petugas@kupang", ["officer"])
    alak_officer = _bearer(system, "petugas@alak", ["officer"], kecamatan=[ALAK])
    admin = _bearer(system, "admin@berdaya", ["admin"])
    today = date.today()
    async with httpx.AsyncClient(timeout=30) as http:
        funding, registry = system.funding.url, system.registry.url
        ids = {}
        for name in ("Bank NTT", "BRI"):
            created = await http.post(f"{funding}/sponsors", json={"name": name, "kind": "bank"}, headers=officer)
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]
        as_ntt = _bearer(system, "sponsor@bankntt", ["sponsor"], sponsor_id=uuid.UUID(ids["Bank NTT"]))
        as_bri = _bearer(system, "sponsor@bri", ["sponsor"], sponsor_id=uuid.UUID(ids["BRI"]))
        body = {"sponsor_id": ids["Bank NTT"], "title": "Hibah Bank NTT", "instrument": "grant",
                "total_rupiah": 10_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 1_000_000,
                "valid_from": today.isoformat(), "valid_until": (today + timedelta(days=30)).isoformat(),
                "earmarks": {"nib_required": True}}  # fmt: skip

        # A sponsor can't pledge, close, disburse or read reports for another sponsor.
        assert (await http.post(f"{funding}/pledges", json=body, headers=as_bri)).status_code == 403
        made = await http.post(f"{funding}/pledges", json=body, headers=as_ntt)
        assert made.status_code == 201, made.text
        pledge_id = made.json()["id"]
        oebobo_business = await _business_with_nib(http, system, officer, kecamatan="Oebobo", kelurahan="Fatululi")

        async def offer() -> dict | None:
            offers = (await http.get(f"{funding}/pledges/{pledge_id}/offers", headers=as_ntt)).json()
            return next((o for o in offers if o["business_id"] == oebobo_business), None)

        assert await eventually(offer, timeout=60)
        offer_id = (await offer())["id"]
        refused = {
            "BRI reads Bank NTT's offers": await http.get(f"{funding}/pledges/{pledge_id}/offers", headers=as_bri),
            "BRI reads Bank NTT's report": await http.get(f"{funding}/reports/pledges/{pledge_id}", headers=as_bri),
            "BRI reads Bank NTT's sponsor report": await http.get(f"{funding}/reports/sponsors/{ids['Bank NTT']}",
                                                                  headers=as_bri),
            "BRI closes Bank NTT's pledge": await http.post(f"{funding}/pledges/{pledge_id}/close",
                                                            json={"reason": "bukan punya kami"}, headers=as_bri),
            "BRI withdraws Bank NTT's offer": await http.post(f"{funding}/offers/{offer_id}/withdraw",
                                                              json={"reason": "bukan punya kami"}, headers=as_bri),
            "an Alak officer accepts for an Oebobo business": await http.post(f"{funding}/offers/{offer_id}/accept",
                                                                             headers=alak_officer),
            "a sponsor accepts on the business's behalf": await http.post(f"{funding}/offers/{offer_id}/accept",
                                                                          headers=as_ntt),
            "an Alak officer closes an Oebobo business": await http.post(
                f"{registry}/businesses/{oebobo_business}/close", json={"reason": "tutup"}, headers=alak_officer),
            "an Alak officer reveals an Oebobo owner's NIK": await http.get(
                f"{registry}/businesses/{oebobo_business}/nik", headers=alak_officer),
            # An admin passes every role check, but runs the system and has no need to know an owner's data.
            "an admin reveals an owner's NIK": await http.get(f"{registry}/businesses/{oebobo_business}/nik",
                                                              headers=admin),
            "an admin sends an owner's contact to a partner": await http.post(
                f"{registry}/businesses/{oebobo_business}/consents", headers=admin,
                json={"partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI untuk modal kerja"}),
        }  # fmt: skip
        assert {what: r.status_code for what, r in refused.items()} == dict.fromkeys(refused, 403)
        assert all(r.headers["content-type"] == "application/problem+json" for r in refused.values())

        accepted = await http.post(f"{funding}/offers/{offer_id}/accept", headers=officer)
        assert accepted.status_code == 200, accepted.text
        refused_disbursement = await http.post(f"{funding}/offers/{offer_id}/disburse",
                                               json={"reference": "TRF-BRI-1"}, headers=as_bri)  # fmt: skip
        assert refused_disbursement.status_code == 403
        paid = await http.post(f"{funding}/offers/{offer_id}/disburse", json={"reference": "TRF-NTT-1"}, headers=as_ntt)
        assert paid.status_code == 200, paid.text
        assert (await http.get(f"{registry}/businesses/{oebobo_business}/nik", headers=officer)).status_code == 200
        # How often a business was funded counts every sponsor's money: BRI is not told of Bank NTT's.
        funded = {who: (await http.get(f"{funding}/businesses/{oebobo_business}", headers=token)).json()["funded_count"]
                  for who, token in (("officer", officer), ("Bank NTT", as_ntt))}  # fmt: skip
        assert funded == {"officer": 1, "Bank NTT": None}
        # Nor of a business its pledges made no offer to: its trainings and readiness are the officers' to read.
        assert (await http.get(f"{funding}/businesses/{oebobo_business}", headers=as_bri)).status_code == 403
        assert (await http.get(f"{funding}/businesses/{uuid.uuid4()}", headers=as_bri)).status_code == 403
        explained = {who: (await http.get(f"{funding}/explain", params={"pledge_id": pledge_id, "business_id": oebobo_business},
                                          headers=token)).json()["ranking_at_match"]
                     for who, token in (("officer", officer), ("Bank NTT", as_ntt))}  # fmt: skip
        # Nor where it ranked: never funded before ranks first, so the order would tell.
        assert {who: (r["funded_before"], r["rank"]) for who, r in explained.items()} == {
            "officer": (False, 1), "Bank NTT": (None, None)}  # fmt: skip

        # Every change says who made it: in the events' metadata and in each service's audit trail.
        records = await read_topic(system.bootstrap, system.topic(FUNDING_PLEDGE), expect=4)
        actors = {json.loads(r.value)["event_type"]: json.loads(r.value)["actor"] for r in records}
        assert actors["CSRPledged"] == "sponsor@bankntt"
        assert actors["FundingAccepted"] == "petugas@kupang"
        assert actors["FundsDisbursed"] == "sponsor@bankntt"
        audit = (await http.get(f"{funding}/audit", params={"aggregate_id": pledge_id}, headers=officer)).json()
        assert {(a["action"], a["actor"]) for a in audit} >= {("CSRPledged", "sponsor@bankntt"),
                                                             ("FundingAccepted", "petugas@kupang"),
                                                             ("FundsDisbursed", "sponsor@bankntt")}  # fmt: skip
        registry_audit = (await http.get(f"{registry}/audit", params={"aggregate_id": oebobo_business},
                                         headers=officer)).json()  # fmt: skip
        assert ("NIKRevealed", "petugas@kupang") in {(a["action"], a["actor"]) for a in registry_audit}
        assert (await http.get(f"{registry}/audit", headers=as_ntt)).status_code == 403
        nothing_by_intruders = [a for a in audit + registry_audit if a["actor"] in ("sponsor@bri", "petugas@alak")]
        assert nothing_by_intruders == []


async def test_an_import_moving_a_registered_business_and_giving_its_nib_publishes_consecutive_versions_once(system):
    officer = _bearer(system, "petugas@kupang", ["officer"])
    first = registration(name="Tenun Ikat Ina Ndao Dua Baris", kecamatan="Oebobo", kelurahan="Fatululi")
    columns = [*first, "nib"]
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(f"{system.registry.url}/businesses", json=first, headers=officer)
        assert created.status_code == 201, created.text
        business_id = created.json()["id"]
        moved = {**first, "phone": "081299990001", "kecamatan": "Alak", "kelurahan": "Namosain", "nib": "9120000012345"}
        again = {**first, "nib": ""}  # a second line about the same business: a list gives each business once
        rows = [{"line": n, "values": [str(row[c]) for c in columns]} for n, row in ((2, moved), (3, again))]
        report = (await http.post(f"{system.registry.url}/imports/businesses", json={"columns": columns, "rows": rows},
                                  headers=officer)).json()  # fmt: skip
        assert report["updated"] == 1, report
        assert [(e["line"], e["code"]) for e in report["errors"]] == [(3, "import.repeated_row")], report

    records = await read_topic(system.bootstrap, system.topic(REGISTRY_BUSINESS), expect=3)
    mine = [json.loads(r.value) for r in sorted(records, key=lambda r: r.offset) if r.key == business_id.encode()]
    assert [(e["event_type"], e["payload"]["business_version"]) for e in mine] == [
        ("BusinessRegistered", 1), ("BusinessUpdated", 2), ("NIBIssued", 3)]  # fmt: skip
    assert mine[1]["payload"]["contact_phone"] == "+6281299990001"
    assert mine[1]["payload"]["kecamatan_code"] == ALAK

    async def funding_has_the_latest() -> bool:
        async with httpx.AsyncClient(timeout=10) as http:
            view = await http.get(f"{system.funding.url}/businesses/{business_id}", headers=officer)
        return view.status_code == 200 and view.json()["version"] == 3 and view.json()["kecamatan_code"] == ALAK

    assert await eventually(funding_has_the_latest, timeout=60)

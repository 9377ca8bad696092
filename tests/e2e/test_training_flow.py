"""End to end with the four services as real processes: a food business without a halal certificate is invited to
the halal cohort by need, attends, completes with the trainer's assessment; funding's readiness rises and a pledge
that requires the programme matches it; and the owner hears of the invitation, the completion and the offer."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import httpx
import pytest

from shared.reference.wita import WITA
from tests.support import eventually, registration

pytestmark = pytest.mark.e2e


def _bearer(system, subject: str, roles: list[str], **claims) -> dict[str, str]:  # noqa: ANN001, ANN003
    return {"Authorization": f"Bearer {system.tokens.mint(subject, roles, **claims)}"}


async def test_a_food_business_is_trained_in_halal_certification_and_then_funded_for_it(system):
    officer = _bearer(system, "petugas@oebobo", ["officer"])
    trainer = _bearer(system, "pelatih@dinas-koperasi", ["trainer"])
    registry, training, funding, notifier = (s.url for s in (system.registry, system.training, system.funding,
                                                             system.notifier))  # fmt: skip
    now = datetime.now(WITA)
    async with httpx.AsyncClient(timeout=30) as http:
        # The owner: a sei maker in Oebobo with an NIB and no halal certificate.
        body = registration(name="Sei Sapi Ibu Agustina", kecamatan="Oebobo", kelurahan="Oebobo", kbli_code="10130",
                            nib=f"91{uuid.uuid4().int % 10**11:011d}")  # fmt: skip
        created = await http.post(f"{registry}/businesses", json=body, headers=officer)
        assert created.status_code == 201, created.text
        business_id = created.json()["id"]

        programme = await http.post(f"{training}/programmes", headers=trainer, json={
            "topic": "halal_certification", "title": "Pendampingan Sertifikasi Halal (SEHATI)",
            "needs": ["halal_uncertified"], "requires_nib": True, "required_attendance_percent": 80, "sessions": 2,
            "hours": 8, "gives_assessment": True})  # fmt: skip
        assert programme.status_code == 201, programme.text
        sessions = [{"starts_at": (now - timedelta(hours=3)).isoformat(), "ends_at": (now - timedelta(hours=2)).isoformat()},
                    {"starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()}]  # fmt: skip
        cohort = await http.post(f"{training}/cohorts", headers=trainer, json={
            "programme_id": programme.json()["id"], "starts_on": (now.date() - timedelta(days=1)).isoformat(),
            "ends_on": (now.date() + timedelta(days=1)).isoformat(), "capacity": 30, "sessions": sessions,
            "venue": "Taman Nostalgia", "kecamatan": "Oebobo"})  # fmt: skip
        assert cohort.status_code == 201, cohort.text
        cohort_id = cohort.json()["id"]

        async def training_knows_the_business() -> bool:
            return (await http.get(f"{training}/businesses/{business_id}", headers=trainer)).status_code == 200

        assert await eventually(training_knows_the_business, timeout=60)
        assert (await http.post(f"{training}/cohorts/{cohort_id}/open", headers=trainer)).status_code == 200

        async def enrolled() -> bool:
            trainees = (await http.get(f"{training}/cohorts/{cohort_id}/trainees", headers=trainer)).json()
            return any(t["business_id"] == business_id and t["status"] == "enrolled" for t in trainees)

        assert await eventually(enrolled, timeout=60), "the business was not enrolled by need"
        assert (await http.post(f"{training}/cohorts/{cohort_id}/start", headers=trainer)).status_code == 200
        for session in (1, 2):
            marked = await http.put(f"{training}/cohorts/{cohort_id}/sessions/{session}/attendance", headers=trainer,
                                    json={"records": [{"business_id": business_id, "attendance": "present"}]})  # fmt: skip
            assert marked.status_code == 200, marked.text
        assessed = await http.put(f"{training}/cohorts/{cohort_id}/assessments", headers=trainer, json={"records": [
            {"business_id": business_id, "management": 80, "leadership": 70, "business_prospects": 90}]})  # fmt: skip
        assert assessed.status_code == 200, assessed.text
        completed = await http.post(f"{training}/cohorts/{cohort_id}/complete", headers=trainer)
        assert completed.status_code == 200, completed.text

        # Funding hears of it: the topic and the assessment count in readiness (10 + 15 * 80/100 = 12 points).
        async def funding_knows_the_training() -> bool:
            view = await http.get(f"{funding}/businesses/{business_id}", headers=officer)
            return view.status_code == 200 and view.json()["trainings"] == ["halal_certification"]

        assert await eventually(funding_knows_the_training, timeout=60)
        sponsor = (await http.post(f"{funding}/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=officer)).json()
        as_sponsor = _bearer(system, "sponsor@bankntt", ["sponsor"], sponsor_id=uuid.UUID(sponsor["id"]))
        pledge = await http.post(f"{funding}/pledges", headers=as_sponsor, json={
            "sponsor_id": sponsor["id"], "title": "Kemasan halal untuk lulusan SEHATI", "instrument": "grant",
            "total_rupiah": 10_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 2_000_000,
            "valid_from": date.today().isoformat(), "valid_until": (date.today() + timedelta(days=30)).isoformat(),
            "earmarks": {"trainings_completed": ["halal_certification"]}})  # fmt: skip
        assert pledge.status_code == 201, pledge.text

        async def offered() -> list[dict]:
            return (await http.get(f"{funding}/offers", params={"business_id": business_id}, headers=officer)).json()

        assert await eventually(offered, timeout=60), "the graduate was not matched to the pledge requiring the programme"
        [offer] = await offered()
        why = (await http.get(f"{funding}/explain", params={"pledge_id": pledge.json()["id"], "business_id": business_id},
                              headers=officer)).json()  # fmt: skip
        assert why["readiness_parts"]["trainings"] == 10 and why["readiness_parts"]["assessment"] == 12
        assert offer["readiness"] == why["readiness"]

        async def messages() -> dict[str, str]:
            page = (await http.get(f"{notifier}/messages", params={"business_id": business_id}, headers=officer)).json()
            return {m["template"]: m["body"] for m in page["items"]}

        async def heard_everything() -> bool:
            return {"training_invitation", "training_completed", "funding_offer"} <= set(await messages())

        assert await eventually(heard_everything, timeout=60), await messages()
        said = await messages()
        assert "Taman Nostalgia" in said["training_invitation"] and "halal" in said["training_invitation"]
        assert "Sei Sapi Ibu Agustina" in said["training_completed"] and "100%" in said["training_completed"]
        assert "Rp2.000.000" in said["funding_offer"] and "Bank NTT" in said["funding_offer"]

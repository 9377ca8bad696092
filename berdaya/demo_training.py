"""The demo's training part: trainers open cohorts that fill by need with a waitlist, attendance and completion with
the trainer's assessment, a halal pathway with one stalled step, and a pledge for the graduates."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta

import httpx
from rich.console import Console
from rich.table import Table

from shared.auth import TokenService
from shared.reference.wita import WITA

PROGRAMMES = (
    {"topic": "halal_certification", "title": "Pendampingan Sertifikasi Halal Gratis (SEHATI)", "needs": ["halal_uncertified"],
     "requires_nib": True, "sessions": 2, "hours": 8, "gives_assessment": True},
    {"topic": "digital_marketing", "title": "Jualan Online lewat Instagram dan TikTok", "needs": ["youth_digital"],
     "requires_nib": False, "sessions": 2, "hours": 6, "gives_assessment": True},
)  # fmt: skip


def _bearer(tokens: TokenService, subject: str, roles: list[str], **claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.mint(subject, roles, ttl=timedelta(hours=1), **claims)}"}  # type: ignore[arg-type]


async def run_training(http: httpx.AsyncClient, urls: dict[str, str], console: Console, tokens: TokenService) -> None:
    console.rule("[bold]Trainers open cohorts; enrolment fills them by need")
    training, funding = urls["training"], urls["funding"]
    trainer = _bearer(tokens, "pelatih@dinas-koperasi", ["trainer"])
    officer = _bearer(tokens, "petugas@kupang", ["officer"])
    now = datetime.now(WITA)
    # Two sessions that have begun, so attendance can be taken now.
    sessions = [{"starts_at": (now - timedelta(hours=4)).isoformat(), "ends_at": (now - timedelta(hours=3)).isoformat()},
                {"starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()}]  # fmt: skip
    cohorts = []
    for programme in PROGRAMMES:
        defined = (await http.post(f"{training}/programmes", json=programme, headers=trainer)).json()
        # Run again on the same stack, the programme is there already: the 409 names it.
        programme_id = defined.get("id") or defined["existing_programme_id"]
        planned = await http.post(f"{training}/cohorts", headers=trainer, json={
            "programme_id": programme_id, "starts_on": (now.date() - timedelta(days=1)).isoformat(),
            # Late in the evening the second session ends tomorrow (WITA).
            "ends_on": (now + timedelta(hours=1)).date().isoformat(), "capacity": 30, "sessions": sessions,
            "venue": "Taman Nostalgia", "kecamatan": "Kota Raja"})  # fmt: skip
        planned.raise_for_status()
        cohort = planned.json()
        (await http.post(f"{training}/cohorts/{cohort['id']}/open", headers=trainer)).raise_for_status()
        cohorts.append((programme, cohort["id"]))
    for programme, cohort_id in cohorts:
        roster = await _settled_roster(http, training, cohort_id, trainer)
        enrolled = [t for t in roster if t["status"] == "enrolled"]
        waiting = [t for t in roster if t["status"] == "waitlisted"]
        console.print(f"  {programme['title']}: {len(enrolled)} seats filled by need, {len(waiting)} on the waitlist "
                      "(never trained first, then earlier registration)")  # fmt: skip
    graduates = [await _run_cohort(http, training, cohort_id, trainer, console) for _, cohort_id in cohorts]
    await _halal_pathway(http, training, officer, graduates[0], console)
    await _pledge_for_graduates(http, funding, officer, tokens, console, graduates[0])
    await _print_report(http, training, trainer, console)


async def _settled_roster(http: httpx.AsyncClient, training: str, cohort_id: str, trainer: dict) -> list[dict]:
    """Enrolment by need runs as training consumes its events; it is done when two looks a second apart agree."""
    previous = None
    for _ in range(120):
        roster = (await http.get(f"{training}/cohorts/{cohort_id}/trainees", headers=trainer)).json()
        if roster and roster == previous:
            return roster
        previous = roster
        await asyncio.sleep(1)
    return previous or []


async def _run_cohort(http: httpx.AsyncClient, training: str, cohort_id: str, trainer: dict, console: Console) -> list[str]:
    """Start, take attendance (one in ten misses the second session), assess, complete; returns the graduates."""
    await http.post(f"{training}/cohorts/{cohort_id}/start", headers=trainer)
    enrolled = [t["business_id"] for t in (await http.get(f"{training}/cohorts/{cohort_id}/trainees", headers=trainer)).json()
                if t["status"] == "enrolled"]  # fmt: skip
    for session in (1, 2):
        records = [{"business_id": b, "attendance": "absent" if session == 2 and n % 10 == 9 else "present"}
                   for n, b in enumerate(enrolled)]  # fmt: skip
        await http.put(f"{training}/cohorts/{cohort_id}/sessions/{session}/attendance", json={"records": records},
                       headers=trainer)  # fmt: skip
    scores = [{"business_id": b, "management": 60 + n % 35, "leadership": 55 + n % 40, "business_prospects": 65 + n % 30}
              for n, b in enumerate(enrolled)]  # fmt: skip
    await http.put(f"{training}/cohorts/{cohort_id}/assessments", json={"records": scores}, headers=trainer)
    closed = (await http.post(f"{training}/cohorts/{cohort_id}/complete", headers=trainer)).json()
    roster = (await http.get(f"{training}/cohorts/{cohort_id}/trainees", headers=trainer)).json()
    graduates = [t["business_id"] for t in roster if t["status"] == "completed"]
    console.print(f"  {closed.get('title', 'cohort')}: {len(graduates)} of {len(enrolled)} completed (80% attendance "
                  "needed); each graduate is assigned a mentor")  # fmt: skip
    return graduates


async def _halal_pathway(http: httpx.AsyncClient, training: str, officer: dict, graduates: list[str], console: Console) -> None:
    """Two graduates start the SEHATI pathway; one has waited too long for its SIHALAL account."""
    today = date.today()
    if len(graduates) < 2:
        return
    moving, stuck = graduates[0], graduates[1]
    for step, days_ago in (("nib", 20), ("sihalal_account", 12), ("companion_verified", 3)):
        await http.post(f"{training}/pathways/{moving}/steps", json={"step": step, "done_on": str(today - timedelta(days_ago))},
                        headers=officer)  # fmt: skip
    await http.post(f"{training}/pathways/{stuck}/steps", json={"step": "nib", "done_on": str(today - timedelta(days=20))},
                    headers=officer)  # fmt: skip
    for _ in range(60):  # the stall sweeper runs every few seconds on the local stack
        stalled = (await http.get(f"{training}/pathways", params={"stalled": "true"}, headers=officer)).json()
        if stalled:
            break
        await asyncio.sleep(1)
    console.print(f"  Halal pathway: one graduate is at the companion's verification; {len(stalled)} is stalled waiting "
                  "for its SIHALAL account (the owner and the kecamatan's officers are told)")  # fmt: skip


async def _pledge_for_graduates(http: httpx.AsyncClient, funding: str, officer: dict, tokens: TokenService, console: Console,
                                graduates: list[str]) -> None:  # fmt: skip
    sponsor = await http.post(f"{funding}/sponsors", json={"name": "ASABRI", "kind": "state_owned"}, headers=officer)
    sponsor_id = sponsor.json()["id"] if sponsor.status_code == 201 else sponsor.json()["existing_sponsor_id"]
    as_sponsor = _bearer(tokens, "csr@asabri", ["sponsor"], sponsor_id=uuid.UUID(sponsor_id))
    pledge = (await http.post(f"{funding}/pledges", headers=as_sponsor, json={
        "sponsor_id": sponsor_id, "title": "ASABRI: kemasan halal untuk lulusan SEHATI", "instrument": "equipment",
        "total_rupiah": 20_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 1_000_000,
        "valid_from": date.today().isoformat(), "valid_until": (date.today() + timedelta(days=60)).isoformat(),
        "earmarks": {"trainings_completed": ["halal_certification"]}})).json()  # fmt: skip
    offers: list = []
    for _ in range(60):
        offers = (await http.get(f"{funding}/pledges/{pledge['id']}/offers", headers=as_sponsor)).json()
        if len(offers) >= min(len(graduates), 20):
            break
        await asyncio.sleep(1)
    console.print(f"  ASABRI pledges packaging for halal graduates: {len(offers)} of the {len(graduates)} graduates "
                  "offered (their readiness counts the trainer's assessment)")  # fmt: skip


async def _print_report(http: httpx.AsyncClient, training: str, trainer: dict, console: Console) -> None:
    report = (await http.get(f"{training}/reports/cohorts", headers=trainer)).json()
    table = Table(title="Cohorts by programme (counts under 5 suppressed)")
    columns = ("group", "cohorts", "capacity", "enrolled", "waitlisted", "attendance_percent", "completed",
               "completion_percent")  # fmt: skip
    for column in columns:
        table.add_column(column.replace("_percent", " %"), justify="left" if column == "group" else "right")
    for row in report["by_programme"]:
        table.add_row(*(str(row[c]) if row[c] is not None else "<5" for c in columns))
    console.print(table)

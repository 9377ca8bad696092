"""In-memory fakes of training's store and unit of work, builders of registry events and forms, and a TrainingWorld
that runs training's handlers over them with a fixed clock.

The fake store checks what the SQL guarantees (a business in a cohort at most once, never more enrolled than seats,
one mentor at a time per business) and what the locking protocol promises: within one unit of work, locks are
taken in the one order (view rows, cohorts, pathways, mentors, participants) and the participants in one go. The
fake unit of work checks that every business's participation events carry consecutive versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.training import attendance_records, business_changes, handlers, integration
from services.training.domain.cohorts import Cohort, CohortForm
from services.training.domain.enrolment import Seat
from services.training.domain.events import DomainEvent
from services.training.domain.mentors import Assignment, Mentor
from services.training.domain.needs import Facts, need_served
from services.training.domain.pathway import Pathway
from services.training.domain.programmes import Programme, ProgrammeForm
from services.training.domain.view import BusinessView
from services.training.seating import Deps
from services.training.store import Made, Mark, Prospect, TrainingStore, TrainingUnitOfWork
from shared.auth import Principal
from shared.contracts import Envelope, EventPayload, new_envelope
from shared.contracts.funding import FundingAccepted
from shared.contracts.registry import BusinessClosed, BusinessRegistered, BusinessUpdated, NIBIssued
from shared.contracts.topics import topic_for
from shared.contracts.training import Assessment, ParticipantEvent
from shared.messaging.audit import AuditEntry
from shared.messaging.consumer import Delivery
from shared.reference.wilayah import kota_kupang
from shared.reference.wita import WITA
from shared.unit_of_work import Cause, Publisher

from .fakes import FixedClock, SnapshotUnitOfWork

# 2026-04-01 10.00 WITA.
NOW = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
TODAY = date(2026, 4, 1)

ALAK, MAULAFA, OEBOBO, KOTA_RAJA = "53.71.01", "53.71.02", "53.71.04", "53.71.05"
_KECAMATAN = {k.code: k for k in kota_kupang().kecamatan}

TRAINER = Principal("pelatih.dinas", frozenset({"trainer"}))
OFFICER = Principal("petugas.kota", frozenset({"officer"}))
OEBOBO_OFFICER = Principal("petugas.oebobo", frozenset({"officer"}), kecamatan_codes=frozenset({OEBOBO}))
ALAK_OFFICER = Principal("petugas.alak", frozenset({"officer"}), kecamatan_codes=frozenset({ALAK}))

# The one lock order, and which of them a unit of work may take more than once.
LOCK_ORDER = ("views", "seating", "cohorts", "pathways", "mentors", "participants")


# ---------------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------------


def view(**overrides: Any) -> BusinessView:
    """An active micro food business (KBLI 10792, kue) in Oebobo, with an NIB, not youth-owned, registered 2025."""
    defaults: dict[str, Any] = {
        "business_id": uuid.uuid4(), "version": 1, "business_name": "Kue Ibu Maria", "kbli_code": "10792",
        "kecamatan_code": OEBOBO, "scale": "micro", "youth_owned": False, "women_owned": True, "nib_status": "issued",
        "status": "active", "registered_at": datetime(2025, 1, 15, 1, 0, tzinfo=UTC),
    }  # fmt: skip
    return BusinessView(**{**defaults, **overrides})


def _snapshot_fields(business_id: uuid.UUID, version: int, fields: dict[str, Any]) -> dict[str, Any]:
    kec = _KECAMATAN[fields.pop("kecamatan_code", OEBOBO)]
    base: dict[str, Any] = {
        "business_id": business_id, "business_version": version, "business_name": "Kue Ibu Maria",
        "kbli_code": "10792", "kbli_version": 2020, "kecamatan": kec.name, "kecamatan_code": kec.code,
        "kecamatan_bps": kec.bps_code, "kelurahan": "Fatululi", "kelurahan_code": f"{kec.code}.1001", "scale": "micro",
        "scale_basis": "annual_sales", "annual_sales_rupiah": 60_000_000, "youth_owned": False, "women_owned": True,
        "nib_status": "issued", "nib": None, "contact_phone": "+6281234567890", "status": "active",
        "registered_at": datetime(2025, 1, 15, 1, 0, tzinfo=UTC),
    }  # fmt: skip
    merged = {**base, **fields}
    if merged["nib_status"] == "issued" and merged["nib"] is None:
        merged["nib"] = "8120000000001"
    return merged


def registered(business_id: uuid.UUID | None = None, **fields: Any) -> BusinessRegistered:
    version = fields.pop("business_version", 1)
    return BusinessRegistered(**_snapshot_fields(business_id or uuid.uuid4(), version, fields), source="officer")


def updated(business_id: uuid.UUID, version: int, changed: tuple[str, ...] = ("scale",), **fields: Any) -> BusinessUpdated:
    return BusinessUpdated(**_snapshot_fields(business_id, version, fields), changed_fields=changed)


def nib_issued(business_id: uuid.UUID, version: int) -> NIBIssued:
    return NIBIssued(business_id=business_id, business_version=version, application_id=uuid.uuid4(),
                     nib="8120000000002", issued_on=TODAY, kecamatan_code=OEBOBO)  # fmt: skip


def business_closed(business_id: uuid.UUID, version: int) -> BusinessClosed:
    return BusinessClosed(business_id=business_id, business_version=version, reason="usaha tutup", closed_at=NOW,
                          kecamatan_code=OEBOBO)  # fmt: skip


def funding_accepted(business_id: uuid.UUID) -> FundingAccepted:
    return FundingAccepted(pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=business_id,
                           amount_rupiah=5_000_000, accepted_at=NOW)  # fmt: skip


def delivery(event: EventPayload, producer: str = "registry") -> Delivery:
    envelope = new_envelope(event, producer=producer, correlation_id=uuid.uuid4(), occurred_at=NOW, actor="petugas.kota")
    return Delivery(envelope, event)


def programme_form(**overrides: Any) -> ProgrammeForm:
    """The halal self-declare programme: 4 sessions, NIB required, 80% attendance, with an assessment."""
    body: dict[str, Any] = {"topic": "halal_certification", "title": "Pendampingan Halal Self-Declare",
                            "needs": ["halal_uncertified"], "requires_nib": True, "sessions": 4, "hours": 16}  # fmt: skip
    return ProgrammeForm.model_validate({**body, **overrides})


def sessions(first: date, n: int, *, hour: int = 9) -> list[dict[str, str]]:
    """n weekly sessions from `first`, 09.00 to 12.00 WITA (no offset given)."""
    days = [first + timedelta(days=7 * i) for i in range(n)]
    return [{"starts_at": f"{d.isoformat()}T{hour:02d}:00:00", "ends_at": f"{d.isoformat()}T{hour + 3:02d}:00:00"}
            for d in days]  # fmt: skip


def cohort_form(programme_id: uuid.UUID, n: int = 4, **overrides: Any) -> CohortForm:
    """A cohort from 6 April 2026 with n weekly sessions at Taman Nostalgia (Kota Raja)."""
    first = date(2026, 4, 6)
    body: dict[str, Any] = {
        "programme_id": str(programme_id), "starts_on": first.isoformat(),
        "ends_on": (first + timedelta(days=7 * (n - 1))).isoformat(), "capacity": 3, "sessions": sessions(first, n),
        "venue": "Taman Nostalgia", "kecamatan": "Kota Raja",
    }  # fmt: skip
    return CohortForm.model_validate({**body, **overrides})


# ---------------------------------------------------------------------------------------------------------------
# Store and unit of work
# ---------------------------------------------------------------------------------------------------------------


class FakeTrainingStore(TrainingStore):
    def __init__(self) -> None:
        self.views: dict[uuid.UUID, BusinessView] = {}
        self.accepted: set[tuple[uuid.UUID, uuid.UUID]] = set()
        self.programmes: dict[uuid.UUID, Programme] = {}
        self.cohorts: dict[uuid.UUID, Cohort] = {}
        self.seat_rows: dict[tuple[uuid.UUID, uuid.UUID], Seat] = {}
        self.participants: dict[uuid.UUID, int] = {}
        self.mark_rows: dict[tuple[uuid.UUID, uuid.UUID, int], tuple[str, str | None]] = {}
        self.assessment_rows: dict[tuple[uuid.UUID, uuid.UUID], Assessment] = {}
        self.pathways: dict[uuid.UUID, Pathway] = {}
        self.mentors: dict[uuid.UUID, Mentor] = {}
        self.assignments: list[Assignment] = []
        self.visits: list[tuple[uuid.UUID, uuid.UUID, date, str | None]] = []
        self.lock_log: list[str] = []  # the kinds of lock taken in the current unit of work, in order
        self.seating_log: list[str] = []  # how each hold_seating held it, "alone" or "shared"
        self.catching_up = False  # the view consumer is still reading history after a rebuild
        self.requests: dict[tuple[str, str, str], tuple[uuid.UUID, bytes]] = {}  # (kind, actor, key) -> made

    _STATE = ("views", "accepted", "programmes", "cohorts", "seat_rows", "participants", "mark_rows",
              "assessment_rows", "pathways", "mentors", "assignments", "visits", "requests")  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {k: type(getattr(self, k))(getattr(self, k)) for k in self._STATE}

    def restore(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, type(v)(v))

    def _lock(self, kind: str) -> None:
        if kind == "participants" and "participants" in self.lock_log:
            raise AssertionError("participants locked twice in one unit of work: the lock order breaks")
        last = max((LOCK_ORDER.index(k) for k in self.lock_log), default=-1)
        if LOCK_ORDER.index(kind) < last:
            raise AssertionError(f"{kind} locked after {LOCK_ORDER[last]}: {self.lock_log}")
        self.lock_log.append(kind)

    # helpers for tests
    def seats_of_cohort(self, cohort_id: uuid.UUID, status: str | None = None) -> list[Seat]:
        return [s for (c, _), s in self.seat_rows.items() if c == cohort_id and (status is None or s.status == status)]

    def status_of(self, cohort_id: uuid.UUID, business_id: uuid.UUID) -> str | None:
        seat = self.seat_rows.get((cohort_id, business_id))
        return seat.status if seat else None

    def _load(self, mentor: Mentor) -> Mentor:
        return replace(mentor, load=sum(a.mentor_id == mentor.id and a.ended_at is None for a in self.assignments))

    # the view
    async def lock_views(self, business_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        self._lock("views")
        return {i: self.views[i] for i in sorted(set(business_ids)) if i in self.views}

    async def businesses(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        return {i: self.views[i] for i in set(business_ids) if i in self.views}

    async def save_views(self, views: Sequence[BusinessView]) -> None:
        assert len({v.business_id for v in views}) == len(views), "one view per business"
        for view in views:
            current = self.views.get(view.business_id)
            if current is None or current.version < view.version:
                self.views[view.business_id] = view

    async def add_funding_accepted(self, business_id: uuid.UUID, offer_id: uuid.UUID, pledge_id: uuid.UUID,
                                   accepted_at: datetime) -> bool:  # fmt: skip
        if (business_id, offer_id) in self.accepted:
            return False
        self.accepted.add((business_id, offer_id))
        return True

    def _facts(self, business_id: uuid.UUID) -> Facts:
        p = self.pathways.get(business_id)
        return Facts(halal_certified=bool(p and p.certified), halal_not_eligible=p.not_eligible if p else None,
                     funding_accepted=any(b == business_id for b, _ in self.accepted))  # fmt: skip

    async def facts(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Facts]:
        return {i: self._facts(i) for i in set(business_ids)}

    # programmes
    async def add_programme(self, programme: Programme) -> uuid.UUID | None:
        for p in self.programmes.values():
            if (p.topic, p.title) == (programme.topic, programme.title):
                return p.id
        self.programmes[programme.id] = programme
        return None

    async def programme(self, programme_id: uuid.UUID) -> Programme | None:
        return self.programmes.get(programme_id)

    # cohorts and seats
    async def claim_request(self, kind: Made, actor: str, key: str, fingerprint: bytes,
                            new_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
        return self.requests.setdefault((kind, actor, key), (new_id, fingerprint))

    async def add_cohort(self, cohort: Cohort) -> None:
        if cohort.programme_id not in self.programmes:
            raise AssertionError("a cohort refers to no programme (foreign key)")
        self.cohorts[cohort.id] = cohort

    async def hold_seating(self, alone: bool) -> None:
        self._lock("seating")
        self.seating_log.append("alone" if alone else "shared")

    async def cohort(self, cohort_id: uuid.UUID) -> Cohort | None:
        return self.cohorts.get(cohort_id)

    async def lock_cohorts(self, cohort_ids: Iterable[uuid.UUID]) -> list[Cohort]:
        ids = sorted(set(cohort_ids))
        if ids:
            self._lock("cohorts")
        return [self.cohorts[i] for i in ids if i in self.cohorts]

    async def save_cohort(self, cohort: Cohort) -> None:
        if not (0 <= cohort.enrolled <= cohort.capacity and cohort.waitlisted >= 0):
            raise AssertionError(f"cohort {cohort.id} would hold {cohort.enrolled} in {cohort.capacity} seats "
                                 "(cohort_within_capacity)")  # fmt: skip
        counted = self.seats_of_cohort(cohort.id)
        if cohort.enrolled != sum(s.status == "enrolled" for s in counted):
            raise AssertionError("the cohort's seat count disagrees with its seats")
        self.cohorts[cohort.id] = cohort

    async def open_cohorts_for(self, needs: Iterable[str]) -> list[uuid.UUID]:
        wanted = set(needs)
        found = [c for c in self.cohorts.values()
                 if c.state == "open" and wanted & set(self.programmes[c.programme_id].needs)]  # fmt: skip
        return [c.id for c in sorted(found, key=lambda c: (c.starts_at, c.id))]

    async def cohorts_holding(self, business_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        ids = set(business_ids)
        return sorted({c for (c, b), s in self.seat_rows.items()
                       if b in ids and s.status in ("enrolled", "waitlisted")
                       and self.cohorts[c].state in ("open", "running")})  # fmt: skip

    async def seats(self, cohort_id: uuid.UUID) -> list[Seat]:
        return sorted(self.seats_of_cohort(cohort_id), key=lambda s: s.business_id)

    async def seats_of(self, business_id: uuid.UUID) -> list[Seat]:
        return [s for (_, b), s in self.seat_rows.items() if b == business_id]

    async def save_seats(self, seats: Sequence[Seat]) -> None:
        for s in seats:
            if s.cohort_id not in self.cohorts:
                raise AssertionError("a seat refers to no cohort (foreign key)")
            self.seat_rows[(s.cohort_id, s.business_id)] = s  # the key is the primary key: at most once per cohort

    def _topics(self, business_id: uuid.UUID) -> set[str]:
        return {self.cohorts[c].topic for (c, b), s in self.seat_rows.items() if b == business_id and (
            s.status == "completed" or (s.status in ("enrolled", "waitlisted")
                                        and self.cohorts[c].state in ("open", "running")))}  # fmt: skip

    def _trained(self, business_id: uuid.UUID) -> bool:
        return any(b == business_id and s.status == "completed" for (_, b), s in self.seat_rows.items())

    async def view_catching_up(self) -> bool:
        return self.catching_up

    async def prospects(self, cohort: Cohort, programme: Programme, limit: int) -> list[Prospect]:
        found = [
            Prospect(v, self._facts(v.business_id), self._trained(v.business_id)) for v in self.views.values()
            if v.active and (cohort.id, v.business_id) not in self.seat_rows
            and cohort.topic not in self._topics(v.business_id)
            and need_served(programme, v, self._facts(v.business_id)) is not None
        ]  # fmt: skip
        found.sort(key=lambda p: (p.trained_before, p.business.registered_at, str(p.business.business_id)))
        return found[:limit]

    async def prospect(self, business_id: uuid.UUID) -> Prospect | None:
        v = self.views.get(business_id)
        return Prospect(v, self._facts(business_id), self._trained(business_id)) if v else None

    async def topics_taken(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
        return {b: t for b in set(business_ids) if (t := self._topics(b))}

    # participants
    async def lock_participants(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        self._lock("participants")
        return {b: self.participants.get(b, 0) for b in sorted(set(business_ids))}

    async def save_participants(self, versions: Mapping[uuid.UUID, int]) -> None:
        for b, v in versions.items():
            if v < self.participants.get(b, 0):
                raise AssertionError(f"participant {b} would go back from {self.participants[b]} to {v}")
            self.participants[b] = v

    # attendance and assessment
    async def marks(self, cohort_id: uuid.UUID) -> dict[uuid.UUID, dict[int, str]]:
        found: dict[uuid.UUID, dict[int, str]] = {}
        for (c, b, n), (mark, _) in self.mark_rows.items():
            if c == cohort_id:
                found.setdefault(b, {})[n] = mark
        return found

    async def save_marks(self, cohort_id: uuid.UUID, marks: Sequence[Mark], by: str, at: datetime) -> None:
        for m in marks:
            if (cohort_id, m.business_id) not in self.seat_rows:
                raise AssertionError("attendance of no seat (foreign key)")
            self.mark_rows[(cohort_id, m.business_id, m.session)] = (m.mark, m.reason)

    async def assessments(self, cohort_id: uuid.UUID) -> dict[uuid.UUID, Assessment]:
        return {b: a for (c, b), a in self.assessment_rows.items() if c == cohort_id}

    async def save_assessments(self, cohort_id: uuid.UUID, assessments: Mapping[uuid.UUID, Assessment], by: str,
                               at: datetime) -> None:  # fmt: skip
        for b, a in assessments.items():
            self.assessment_rows[(cohort_id, b)] = a

    # the halal pathway
    async def lock_pathway(self, business_id: uuid.UUID, kecamatan_code: str) -> Pathway:
        self._lock("pathways")
        return self.pathways.get(business_id) or Pathway(business_id, kecamatan_code)

    async def save_pathway(self, pathway: Pathway, by: str, at: datetime) -> None:
        self.pathways[pathway.business_id] = pathway

    async def lock_due_stalls(self, limits: Mapping[str, int], today: date, limit: int) -> list[Pathway]:
        self._lock("pathways")
        due = [p for p in self.pathways.values()
               if p.not_eligible is None and 1 <= len(p.steps) <= 6 and p.next_step is not None and p.last is not None
               and (today - p.last[1]).days > limits[p.next_step] and p.stalled_for != p.next_step
               and ((v := self.views.get(p.business_id)) is None or v.status != "closed")]  # fmt: skip
        return sorted(due, key=lambda p: p.business_id)[:limit]

    # mentors
    async def add_mentor(self, mentor: Mentor, by: str, at: datetime) -> None:
        self.mentors[mentor.id] = mentor

    async def mentor(self, mentor_id: uuid.UUID) -> Mentor | None:
        m = self.mentors.get(mentor_id)
        return self._load(m) if m else None

    async def lock_mentors(self) -> list[Mentor]:
        self._lock("mentors")
        return [self._load(m) for m in sorted(self.mentors.values(), key=lambda m: m.id) if m.active]

    async def assignment(self, business_id: uuid.UUID) -> Assignment | None:
        return next((a for a in self.assignments if a.business_id == business_id and a.ended_at is None), None)

    async def add_assignments(self, assignments: Sequence[Assignment]) -> None:
        for a in assignments:
            if await self.assignment(a.business_id) is not None:
                raise AssertionError(f"a second current mentor for {a.business_id} (mentor_assignment_current)")
            self.assignments.append(a)

    async def end_assignment(self, business_id: uuid.UUID, at: datetime) -> bool:
        current = await self.assignment(business_id)
        if current is None:
            return False
        self.assignments[self.assignments.index(current)] = replace(current, ended_at=at)
        return True

    async def add_visit(self, business_id: uuid.UUID, mentor_id: uuid.UUID, visited_on: date, notes: str | None,
                        by: str, at: datetime) -> None:  # fmt: skip
        self.visits.append((business_id, mentor_id, visited_on, notes))

    async def visits_on(self, business_id: uuid.UUID, mentor_id: uuid.UUID, visited_on: date) -> list[str | None]:
        return [notes for b, m, day, notes in self.visits if (b, m, day) == (business_id, mentor_id, visited_on)]

    async def last_completion(self, business_id: uuid.UUID) -> date | None:
        days = [self.cohorts[c].closed_at.astimezone(WITA).date() for (c, b), s in self.seat_rows.items()  # type: ignore[union-attr]
                if b == business_id and s.status == "completed"]  # fmt: skip
        return max(days, default=None)


PSEUDONYM_KEY = b"a test key for the businesses' pseudonyms"


def internal(event: DomainEvent) -> list[EventPayload]:
    """The contracts the services read (translate also makes public copies of cohorts and graduates for partners)."""
    return [p for p in integration.translate(event, PSEUDONYM_KEY) if not p.aggregate_type.startswith("public_")]


PUBLISHER: Publisher[DomainEvent] = Publisher("training", internal, lambda e: topic_for(e.aggregate_type))


class FakeTrainingUnitOfWork(SnapshotUnitOfWork, TrainingUnitOfWork):
    """A transaction over a FakeTrainingStore: commit keeps the changes and records the contracts that would go to
    the outbox, checking that each business's participation versions follow one another."""

    def __init__(self, store: FakeTrainingStore, journal: list[EventPayload], versions: dict[uuid.UUID, int],
                 cause: Cause | None = None) -> None:  # fmt: skip
        super().__init__(cause)
        self.store: FakeTrainingStore = store
        self.journal = journal
        self.versions = versions  # the last participant version published per business, shared by a world
        self.envelopes: list[Envelope] = []
        self.audit_entries: list[AuditEntry] = []

    @property
    def snapshotted(self) -> FakeTrainingStore:
        return self.store

    async def _begin(self) -> None:
        self.store.lock_log = []
        await super()._begin()

    def record(self, events: list[DomainEvent], causes: list[Cause], audited: list[AuditEntry]) -> None:
        contracts = [payload for event in events for payload in internal(event)]
        for c in contracts:
            if isinstance(c, ParticipantEvent):
                expected = self.versions.get(c.business_id, 0) + 1
                if c.participant_version != expected:
                    raise AssertionError(f"{type(c).__name__} of {c.business_id} has version {c.participant_version}, "
                                         f"not {expected}")  # fmt: skip
                self.versions[c.business_id] = c.participant_version
        self.envelopes += PUBLISHER.envelopes(events, causes)
        self.audit_entries += audited
        self.journal.extend(contracts)


class TrainingWorld:
    """One training service over a fake store with a fixed clock; every unit of work shares the store and records
    what it commits in `published`."""

    def __init__(self, now: datetime = NOW, waitlist_per_seat: float = 1.0, stall_days: dict[str, int] | None = None) -> None:
        self.store = FakeTrainingStore()
        self.clock = FixedClock(now)
        kwargs: dict[str, Any] = {"stall_days": stall_days} if stall_days else {}
        self.deps = Deps(wilayah=kota_kupang(), clock=self.clock, waitlist_per_seat=waitlist_per_seat, **kwargs)
        self.published: list[EventPayload] = []
        self.versions: dict[uuid.UUID, int] = {}
        self.uows: list[FakeTrainingUnitOfWork] = []

    def uow(self, cause: Cause | None = None) -> FakeTrainingUnitOfWork:
        uow = FakeTrainingUnitOfWork(self.store, self.published, self.versions, cause)
        self.uows.append(uow)
        return uow

    __call__ = uow

    def by_time(self) -> FakeTrainingUnitOfWork:
        """A unit of work for work done because time passed, as the sweeper makes one."""
        return self.uow(Cause.timer("training"))

    def by(self, who: Principal) -> FakeTrainingUnitOfWork:
        """A unit of work for a request of `who`, as the routes make one."""
        return self.uow(Cause.request(uuid.uuid4(), who.actor))

    def of_type(self, name: str, business_id: uuid.UUID | None = None) -> list[Any]:
        return [e for e in self.published if type(e).__name__ == name
                and (business_id is None or getattr(e, "business_id", None) == business_id)]  # fmt: skip

    def types_of(self, business_id: uuid.UUID) -> list[str]:
        return [type(e).__name__ for e in self.published if getattr(e, "business_id", None) == business_id]

    # events in
    async def consume(self, *events: EventPayload) -> None:
        deliveries = [delivery(e, "funding" if isinstance(e, FundingAccepted) else "registry") for e in events]
        uow = self.uow(Cause.delivery(deliveries[0]))
        if all(isinstance(e, FundingAccepted) for e in events):
            await business_changes.apply_funding_events(deliveries, uow, self.deps)
        else:
            await business_changes.apply_registry_events(deliveries, uow, self.deps)

    async def register(self, **fields: Any) -> uuid.UUID:
        event = registered(**fields)
        await self.consume(event)
        return event.business_id

    async def register_many(self, n: int, **fields: Any) -> list[uuid.UUID]:
        """n businesses in the waitlist order returned: each registered a day after the one before."""
        start = fields.pop("registered_at", datetime(2025, 1, 1, 1, 0, tzinfo=UTC))
        return [await self.register(registered_at=start + timedelta(days=i), **fields) for i in range(n)]

    # commands
    async def programme(self, by: Principal = TRAINER, **overrides: Any) -> Programme:
        return await handlers.define_programme(handlers.DefineProgramme(programme_form(**overrides), by), self.by(by),
                                               self.deps)  # fmt: skip

    async def cohort(self, programme: Programme, **overrides: Any) -> Cohort:
        form = cohort_form(programme.id, programme.sessions, **overrides)
        return await handlers.plan_cohort(handlers.PlanCohort(form, TRAINER), self.by(TRAINER), self.deps)

    async def move(self, cohort_id: uuid.UUID, to: str) -> Cohort:
        return await handlers.move_cohort(handlers.MoveCohort(cohort_id, to, TRAINER), self.by(TRAINER), self.deps)

    async def open_cohort(self, capacity: int = 3, **programme: Any) -> tuple[Programme, Cohort]:
        p = await self.programme(**programme)
        c = await self.cohort(p, capacity=capacity)
        return p, await self.move(c.id, "open")

    async def enrol(self, cohort_id: uuid.UUID, business_id: uuid.UUID, by: Principal = OFFICER) -> Seat:
        return await handlers.enrol_by_hand(handlers.EnrolByHand(cohort_id, business_id, by), self.by(by), self.deps)

    async def withdraw(self, cohort_id: uuid.UUID, business_id: uuid.UUID, reason: str = "withdrew",
                       by: Principal = OFFICER) -> Seat:  # fmt: skip
        return await handlers.withdraw(handlers.Withdraw(cohort_id, business_id, reason, by), self.by(by), self.deps)

    async def attend(self, cohort_id: uuid.UUID, session: int, marks: dict[uuid.UUID, str],
                     reasons: dict[uuid.UUID, str] | None = None) -> list[Seat]:  # fmt: skip
        from services.training.domain.attendance import AttendanceForm

        form = AttendanceForm.model_validate({"records": [
            {"business_id": str(b), "attendance": m, "reason": (reasons or {}).get(b)} for b, m in marks.items()]})  # fmt: skip
        return await attendance_records.record_attendance(
            attendance_records.RecordAttendance(cohort_id, session, form, TRAINER), self.by(TRAINER), self.deps
        )

    async def assess(self, cohort_id: uuid.UUID, scores: dict[uuid.UUID, tuple[int, int, int]]) -> None:
        from services.training.domain.attendance import AssessmentForm

        form = AssessmentForm.model_validate({"records": [
            {"business_id": str(b), "management": m, "leadership": lead, "business_prospects": bp}
            for b, (m, lead, bp) in scores.items()]})  # fmt: skip
        await attendance_records.record_assessments(attendance_records.RecordAssessments(cohort_id, form, TRAINER),
                                                    self.by(TRAINER), self.deps)  # fmt: skip

    def seated(self, cohort_id: uuid.UUID, status: str = "enrolled") -> set[uuid.UUID]:
        return {s.business_id for s in self.store.seats_of_cohort(cohort_id, status)}

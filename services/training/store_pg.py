"""Training's SQL for changes: the PostgreSQL store and unit of work (the lock order every path keeps: store.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

import asyncpg

from services.training.domain.cohorts import Cohort
from services.training.domain.enrolment import Seat
from services.training.domain.events import DomainEvent
from services.training.domain.mentors import Assignment, Mentor
from services.training.domain.needs import Facts, halal_programme
from services.training.domain.pathway import STEPS, Pathway
from services.training.domain.programmes import Programme
from services.training.domain.view import BusinessView
from services.training.rows import (
    COHORT_SELECT,
    FACTS_SELECT,
    MENTOR_SELECT,
    _VIEW_COLUMNS,
    cohort_from_row,
    facts_from_row,
    mentor_from_row,
    programme_from_row,
    seat_from_row,
    view_from_row,
)
from services.training.store import Made, Mark, Prospect, TrainingStore, TrainingUnitOfWork
from services.training.subscribers import VIEW
from shared import idempotency
from shared.contracts.training import Assessment
from shared.db import Where, hold_gate, lock_ids, newer_version_upsert
from shared.messaging.catch_up import catching_up
from shared.reference.kbli import FOOD_AND_DRINK_PREFIXES
from shared.unit_of_work import PgUnitOfWork

_FOOD = [p + "%" for p in FOOD_AND_DRINK_PREFIXES]
# A version not newer than the one stored changes nothing: a replayed or late event never rolls a view back.
_SAVE_VIEW = newer_version_upsert("business_view", _VIEW_COLUMNS, key="business_id")
_BUSINESS_LOCK = 0x74_72_61_69  # "trai"
_SEATING_LOCK = (0x73_65_61_74, 0)  # "seat"
_ACTIVE_TOPIC = """
SELECT s.business_id, p.topic
  FROM seat s JOIN cohort c ON c.id = s.cohort_id JOIN programme p ON p.id = c.programme_id
 WHERE s.business_id = ANY($1::uuid[])
   AND (s.status = 'completed' OR (s.status IN ('enrolled', 'waitlisted') AND c.state IN ('open', 'running')))
"""


# A pathway as its readers see it: in the business's kecamatan as the registry last said, which the pathway's own
# column (written when a step is recorded) may not be yet. A business that moved is chased by its new kecamatan's
# officers, and listed under it.
PATHWAY_SELECT = """SELECT p.business_id, coalesce(v.kecamatan_code, p.kecamatan_code) AS kecamatan_code, p.not_eligible,
       p.regular_route_possible, p.stalled_for, p.note
  FROM pathway p LEFT JOIN business_view v ON v.business_id = p.business_id"""

# Each kind's table of requests and its column for what was made (migration 002).
_REQUESTS: dict[Made, tuple[str, str]] = {"cohort": ("cohort_request", "cohort_id"),
                                          "mentor": ("mentor_request", "mentor_id")}  # fmt: skip


class PgTrainingStore(TrainingStore):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # -- the view --
    async def lock_views(self, business_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        # A view row can't be locked before it exists, and a FundingAccepted may arrive for a business whose
        # registration is being applied at that moment: each consumer would read the other's write as not there yet
        # and the funded need would be seen by neither.
        await lock_ids(self._conn, _BUSINESS_LOCK, business_ids)
        rows = await self._conn.fetch(
            "SELECT * FROM business_view WHERE business_id = ANY($1::uuid[]) ORDER BY business_id FOR UPDATE",
            sorted(set(business_ids)),
        )
        return {r["business_id"]: view_from_row(r) for r in rows}

    async def businesses(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        rows = await self._conn.fetch("SELECT * FROM business_view WHERE business_id = ANY($1::uuid[])", list(set(business_ids)))
        return {r["business_id"]: view_from_row(r) for r in rows}

    async def save_views(self, views: Sequence[BusinessView]) -> None:
        if views:
            await self._conn.executemany(_SAVE_VIEW, [tuple(getattr(v, c) for c in _VIEW_COLUMNS) for v in views])

    async def add_funding_accepted(self, business_id: uuid.UUID, offer_id: uuid.UUID, pledge_id: uuid.UUID,
                                   accepted_at: datetime) -> bool:  # fmt: skip
        status = await self._conn.execute(
            "INSERT INTO funding_accepted (business_id, offer_id, pledge_id, accepted_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING", business_id, offer_id, pledge_id, accepted_at,
        )  # fmt: skip
        return status.endswith(" 1")

    async def facts(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Facts]:
        rows = await self._conn.fetch(FACTS_SELECT, list(set(business_ids)))
        return {r["business_id"]: facts_from_row(r) for r in rows}

    # -- programmes --
    async def add_programme(self, p: Programme) -> uuid.UUID | None:
        inserted = await self._conn.fetchval(
            """INSERT INTO programme (id, topic, title, needs, requires_nib, required_attendance_percent, sessions, hours,
                   gives_assessment, defined_at, defined_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (topic, title) DO NOTHING RETURNING id""",
            p.id, p.topic, p.title, list(p.needs), p.requires_nib, p.required_attendance_percent, p.sessions, p.hours,
            p.gives_assessment, p.defined_at, p.defined_by,
        )  # fmt: skip
        if inserted:
            return None
        return await self._conn.fetchval("SELECT id FROM programme WHERE topic = $1 AND title = $2", p.topic, p.title)

    async def programme(self, programme_id: uuid.UUID) -> Programme | None:
        row = await self._conn.fetchrow("SELECT * FROM programme WHERE id = $1", programme_id)
        return programme_from_row(row) if row else None

    # -- cohorts and seats --
    async def claim_request(self, kind: Made, actor: str, key: str, fingerprint: bytes,
                            new_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
        table, column = _REQUESTS[kind]
        return await idempotency.claim_row(self._conn, table, column, actor, key, fingerprint, new_id)

    async def add_cohort(self, c: Cohort) -> None:
        await self._conn.execute(
            """INSERT INTO cohort (id, programme_id, state, capacity, starts_on, ends_on, venue, kecamatan_code, mentor_id,
                   created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            c.id, c.programme_id, c.state, c.capacity, c.starts_on, c.ends_on, c.venue, c.kecamatan_code, c.mentor_id,
            c.created_at, c.created_by,
        )  # fmt: skip
        await self._conn.executemany(
            "INSERT INTO cohort_session (cohort_id, number, starts_at, ends_at) VALUES ($1, $2, $3, $4)",
            [(c.id, s.number, s.starts_at, s.ends_at) for s in c.sessions],
        )

    async def hold_seating(self, alone: bool) -> None:
        await hold_gate(self._conn, _SEATING_LOCK, alone)

    async def cohort(self, cohort_id: uuid.UUID) -> Cohort | None:
        row = await self._conn.fetchrow(COHORT_SELECT + " WHERE c.id = $1", cohort_id)
        return cohort_from_row(row) if row else None

    async def lock_cohorts(self, cohort_ids: Iterable[uuid.UUID]) -> list[Cohort]:
        ids = sorted(set(cohort_ids))
        if not ids:
            return []
        rows = await self._conn.fetch(COHORT_SELECT + " WHERE c.id = ANY($1::uuid[]) ORDER BY c.id FOR UPDATE OF c", ids)
        return [cohort_from_row(r) for r in rows]

    async def save_cohort(self, c: Cohort) -> None:
        await self._conn.execute(
            """UPDATE cohort SET state = $2, capacity = $3, venue = $4, kecamatan_code = $5, mentor_id = $6,
                      enrolled = $7, waitlisted = $8, opened_at = $9, started_at = $10, closed_at = $11 WHERE id = $1""",
            c.id, c.state, c.capacity, c.venue, c.kecamatan_code, c.mentor_id, c.enrolled, c.waitlisted, c.opened_at,
            c.started_at, c.closed_at,
        )  # fmt: skip

    async def open_cohorts_for(self, needs: Iterable[str]) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            """SELECT c.id FROM cohort c JOIN programme p ON p.id = c.programme_id
                WHERE c.state = 'open' AND p.needs && $1::text[]
                ORDER BY (SELECT min(starts_at) FROM cohort_session s WHERE s.cohort_id = c.id), c.id""",
            sorted(set(needs)),
        )
        return [r["id"] for r in rows]

    async def cohorts_holding(self, business_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            """SELECT DISTINCT s.cohort_id FROM seat s JOIN cohort c ON c.id = s.cohort_id
                WHERE s.business_id = ANY($1::uuid[]) AND s.status IN ('enrolled', 'waitlisted')
                  AND c.state IN ('open', 'running') ORDER BY s.cohort_id""",
            list(set(business_ids)),
        )
        return [r["cohort_id"] for r in rows]

    async def seats(self, cohort_id: uuid.UUID) -> list[Seat]:
        rows = await self._conn.fetch("SELECT * FROM seat WHERE cohort_id = $1 ORDER BY business_id", cohort_id)
        return [seat_from_row(r) for r in rows]

    async def seats_of(self, business_id: uuid.UUID) -> list[Seat]:
        rows = await self._conn.fetch("SELECT * FROM seat WHERE business_id = $1 ORDER BY changed_at, cohort_id", business_id)
        return [seat_from_row(r) for r in rows]

    async def save_seats(self, seats: Sequence[Seat]) -> None:
        if not seats:
            return
        columns = tuple(Seat.__dataclass_fields__)
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("cohort_id", "business_id"))
        await self._conn.executemany(
            f"INSERT INTO seat ({', '.join(columns)}) VALUES ({placeholders})"
            f" ON CONFLICT (cohort_id, business_id) DO UPDATE SET {updates}",
            [tuple(getattr(s, c) for c in columns) for s in seats],
        )

    def _need_filter(self, programme: Programme, where: Where) -> None:
        """The needs rules, narrowed to SQL; needs.py decides for each business found."""
        clauses = []
        if "halal_uncertified" in programme.needs:
            clauses.append(
                "(b.kbli_code LIKE ANY({}::text[]) AND b.scale IN ('micro', 'small') AND NOT EXISTS (SELECT 1 FROM pathway p"
                " WHERE p.business_id = b.business_id AND (p.steps_done = 7 OR p.not_eligible IS NOT NULL)))".format(
                    where.param(_FOOD))
            )  # fmt: skip
        if "no_nib" in programme.needs:
            clauses.append("b.nib_status <> 'issued'")
        if "youth_digital" in programme.needs:
            clauses.append("b.youth_owned")
        if "funded_bookkeeping" in programme.needs:
            clauses.append("EXISTS (SELECT 1 FROM funding_accepted f WHERE f.business_id = b.business_id)")
        where.add("(" + (" OR ".join(clauses) or "false") + ")")
        if halal_programme(programme):
            # Whatever other need it serves, a halal programme never takes a business that can't self-declare
            # (needs.need_served). Left in, a run of them ahead in the order filled the prospects' limit, and seats
            # stayed empty while businesses that could take them waited.
            where.add("NOT EXISTS (SELECT 1 FROM pathway p WHERE p.business_id = b.business_id"
                      " AND p.not_eligible IS NOT NULL)")  # fmt: skip
            where.add("NOT (b.kbli_code LIKE ANY({}::text[]) AND b.scale NOT IN ('micro', 'small'))", _FOOD)

    async def view_catching_up(self) -> bool:
        return await catching_up(self._conn, (VIEW,))

    async def prospects(self, cohort: Cohort, programme: Programme, limit: int) -> list[Prospect]:
        where = Where("b.status = 'active'")
        self._need_filter(programme, where)
        if programme.requires_nib:
            where.add("b.nib_status = 'issued'")
        where.add("NOT EXISTS (SELECT 1 FROM seat s WHERE s.cohort_id = {} AND s.business_id = b.business_id)", cohort.id)
        # Not those with the topic already (checked again once they are locked): they would only take up the limit.
        where.add(
            """NOT EXISTS (SELECT 1 FROM seat s JOIN cohort c ON c.id = s.cohort_id JOIN programme p ON p.id = c.programme_id
                            WHERE s.business_id = b.business_id AND p.topic = {}
                              AND (s.status = 'completed'
                                   OR (s.status IN ('enrolled', 'waitlisted') AND c.state IN ('open', 'running'))))""",
            cohort.topic,
        )
        trained = "EXISTS (SELECT 1 FROM seat s WHERE s.business_id = b.business_id AND s.status = 'completed')"
        rows = await self._conn.fetch(
            f"SELECT b.*, {trained} AS trained_before FROM business_view b{where.sql}"
            f" ORDER BY trained_before, b.registered_at, b.business_id::text LIMIT {int(limit)}",
            *where.args,
        )
        facts = await self.facts([r["business_id"] for r in rows])
        return [Prospect(view_from_row(r), facts[r["business_id"]], r["trained_before"]) for r in rows]

    async def prospect(self, business_id: uuid.UUID) -> Prospect | None:
        view = (await self.businesses([business_id])).get(business_id)
        if view is None:
            return None
        row = await self._conn.fetchrow(FACTS_SELECT, [business_id])
        return Prospect(view, facts_from_row(row), row["trained_before"])

    async def topics_taken(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
        taken: dict[uuid.UUID, set[str]] = {}
        for r in await self._conn.fetch(_ACTIVE_TOPIC, list(set(business_ids))):
            taken.setdefault(r["business_id"], set()).add(r["topic"])
        return taken

    # -- participants --
    async def lock_participants(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        ids = sorted(set(business_ids))
        if not ids:
            return {}
        await self._conn.execute(
            "INSERT INTO participant (business_id) SELECT id FROM unnest($1::uuid[]) AS t(id) ORDER BY id"
            " ON CONFLICT DO NOTHING", ids,
        )  # fmt: skip
        rows = await self._conn.fetch(
            "SELECT business_id, version FROM participant WHERE business_id = ANY($1::uuid[]) ORDER BY business_id FOR UPDATE",
            ids,
        )
        return {r["business_id"]: r["version"] for r in rows}

    async def save_participants(self, versions: Mapping[uuid.UUID, int]) -> None:
        if versions:
            await self._conn.execute(
                "UPDATE participant p SET version = v.version FROM unnest($1::uuid[], $2::int[]) AS v(id, version)"
                " WHERE p.business_id = v.id", list(versions), list(versions.values()),
            )  # fmt: skip

    # -- attendance and assessment --
    async def marks(self, cohort_id: uuid.UUID) -> dict[uuid.UUID, dict[int, str]]:
        found: dict[uuid.UUID, dict[int, str]] = {}
        for r in await self._conn.fetch("SELECT business_id, session, mark FROM attendance WHERE cohort_id = $1", cohort_id):
            found.setdefault(r["business_id"], {})[r["session"]] = r["mark"]
        return found

    async def save_marks(self, cohort_id: uuid.UUID, marks: Sequence[Mark], by: str, at: datetime) -> None:
        await self._conn.executemany(
            """INSERT INTO attendance (cohort_id, business_id, session, mark, reason, recorded_at, recorded_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (cohort_id, business_id, session) DO UPDATE SET mark = excluded.mark, reason = excluded.reason,
                   recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by""",
            [(cohort_id, m.business_id, m.session, m.mark, m.reason, at, by) for m in marks],
        )

    async def assessments(self, cohort_id: uuid.UUID) -> dict[uuid.UUID, Assessment]:
        rows = await self._conn.fetch("SELECT * FROM assessment WHERE cohort_id = $1", cohort_id)
        return {r["business_id"]: Assessment(management=r["management"], leadership=r["leadership"],
                                             business_prospects=r["business_prospects"]) for r in rows}  # fmt: skip

    async def save_assessments(self, cohort_id: uuid.UUID, assessments: Mapping[uuid.UUID, Assessment], by: str,
                               at: datetime) -> None:  # fmt: skip
        await self._conn.executemany(
            """INSERT INTO assessment (cohort_id, business_id, management, leadership, business_prospects, recorded_at,
                   recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (cohort_id, business_id) DO UPDATE SET management = excluded.management,
                   leadership = excluded.leadership, business_prospects = excluded.business_prospects,
                   recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by""",
            [(cohort_id, b, a.management, a.leadership, a.business_prospects, at, by) for b, a in assessments.items()],
        )

    # -- the halal pathway --
    async def _pathways(self, rows: Sequence[asyncpg.Record]) -> list[Pathway]:
        steps: dict[uuid.UUID, list[tuple[str, date]]] = {}
        for s in await self._conn.fetch(
            "SELECT business_id, step, done_on FROM pathway_step WHERE business_id = ANY($1::uuid[]) ORDER BY position",
            [r["business_id"] for r in rows],
        ):
            steps.setdefault(s["business_id"], []).append((s["step"], s["done_on"]))
        return [Pathway(business_id=r["business_id"], kecamatan_code=r["kecamatan_code"],
                        steps=tuple(steps.get(r["business_id"], ())), not_eligible=r["not_eligible"],
                        regular_route_possible=r["regular_route_possible"], stalled_for=r["stalled_for"],
                        note=r["note"]) for r in rows]  # fmt: skip

    async def lock_pathway(self, business_id: uuid.UUID, kecamatan_code: str) -> Pathway:
        await self._conn.execute(
            "INSERT INTO pathway (business_id, kecamatan_code) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            business_id, kecamatan_code,
        )  # fmt: skip
        row = await self._conn.fetchrow("SELECT * FROM pathway WHERE business_id = $1 FOR UPDATE", business_id)
        [pathway] = await self._pathways([row])
        return pathway

    async def save_pathway(self, p: Pathway, by: str, at: datetime) -> None:
        last = p.last
        await self._conn.execute(
            """UPDATE pathway SET kecamatan_code = $2, steps_done = $3, last_done_on = $4, not_eligible = $5,
                      regular_route_possible = $6, stalled_for = $7, note = $8, updated_at = $9 WHERE business_id = $1""",
            p.business_id, p.kecamatan_code, len(p.steps), last[1] if last else None, p.not_eligible,
            p.regular_route_possible, p.stalled_for, p.note, at,
        )  # fmt: skip
        await self._conn.executemany(
            """INSERT INTO pathway_step (business_id, step, position, done_on, recorded_at, recorded_by)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (business_id, step) DO NOTHING""",
            [(p.business_id, step, STEPS.index(step) + 1, done_on, at, by) for step, done_on in p.steps],
        )

    async def lock_due_stalls(self, limits: Mapping[str, int], today: date, limit: int) -> list[Pathway]:
        rows = await self._conn.fetch(
            PATHWAY_SELECT + """
                WHERE p.not_eligible IS NULL AND p.steps_done BETWEEN 1 AND 6
                  AND p.last_done_on + ($1::int[])[p.steps_done] < $2
                  AND p.stalled_for IS DISTINCT FROM ($3::text[])[p.steps_done]
                  AND v.status IS DISTINCT FROM 'closed'  -- a closed business's owner needs no chasing
                ORDER BY p.business_id LIMIT $4 FOR UPDATE OF p SKIP LOCKED""",
            [limits[s] for s in STEPS[1:]], today, list(STEPS[1:]), limit,
        )  # fmt: skip
        return await self._pathways(rows)

    # -- mentors --
    async def add_mentor(self, m: Mentor, by: str, at: datetime) -> None:
        await self._conn.execute(
            """INSERT INTO mentor (id, name, organisation, kbli_prefixes, kecamatan_codes, max_load, active, created_at,
                   created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            m.id, m.name, m.organisation, list(m.kbli_prefixes), list(m.kecamatan_codes), m.max_load, m.active, at, by,
        )  # fmt: skip

    async def mentor(self, mentor_id: uuid.UUID) -> Mentor | None:
        row = await self._conn.fetchrow(MENTOR_SELECT + " WHERE m.id = $1", mentor_id)
        return mentor_from_row(row) if row else None

    async def lock_mentors(self) -> list[Mentor]:
        # Locked first, counted after: a count made in the locking statement is read from before its wait, so the
        # businesses another completion assigned meanwhile were not in it and a mentor got past their maximum.
        await self._conn.execute("SELECT id FROM mentor WHERE active ORDER BY id FOR UPDATE")
        rows = await self._conn.fetch(MENTOR_SELECT + " WHERE m.active ORDER BY m.id")
        return [mentor_from_row(r) for r in rows]

    async def assignment(self, business_id: uuid.UUID) -> Assignment | None:
        row = await self._conn.fetchrow(
            "SELECT business_id, mentor_id, cohort_id, assigned_at, ended_at FROM mentor_assignment"
            " WHERE business_id = $1 AND ended_at IS NULL", business_id,
        )  # fmt: skip
        return Assignment(**dict(row)) if row else None

    async def add_assignments(self, assignments: Sequence[Assignment]) -> None:
        await self._conn.executemany(
            "INSERT INTO mentor_assignment (business_id, mentor_id, cohort_id, assigned_at) VALUES ($1, $2, $3, $4)",
            [(a.business_id, a.mentor_id, a.cohort_id, a.assigned_at) for a in assignments],
        )

    async def end_assignment(self, business_id: uuid.UUID, at: datetime) -> bool:
        status = await self._conn.execute(
            "UPDATE mentor_assignment SET ended_at = $2 WHERE business_id = $1 AND ended_at IS NULL", business_id, at
        )
        return status.endswith(" 1")

    async def add_visit(self, business_id: uuid.UUID, mentor_id: uuid.UUID, visited_on: date, notes: str | None,
                        by: str, at: datetime) -> None:  # fmt: skip
        await self._conn.execute(
            """INSERT INTO mentoring_visit (id, business_id, mentor_id, visited_on, notes, recorded_at, recorded_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            uuid.uuid4(), business_id, mentor_id, visited_on, notes, at, by,
        )  # fmt: skip

    async def visits_on(self, business_id: uuid.UUID, mentor_id: uuid.UUID, visited_on: date) -> list[str | None]:
        rows = await self._conn.fetch(
            "SELECT notes FROM mentoring_visit WHERE business_id = $1 AND mentor_id = $2 AND visited_on = $3"
            " ORDER BY recorded_at", business_id, mentor_id, visited_on,
        )  # fmt: skip
        return [r["notes"] for r in rows]

    async def last_completion(self, business_id: uuid.UUID) -> date | None:
        return await self._conn.fetchval(
            """SELECT max((c.closed_at AT TIME ZONE 'Asia/Makassar')::date) FROM seat s JOIN cohort c ON c.id = s.cohort_id
                WHERE s.business_id = $1 AND s.status = 'completed'""",
            business_id,
        )


class PgTrainingUnitOfWork(PgUnitOfWork[DomainEvent], TrainingUnitOfWork):
    def bind(self, conn: asyncpg.Connection) -> None:
        self.store = PgTrainingStore(conn)

"""Training's read side: programmes, cohorts and their rosters, what training knows of a business, pathways, mentors,
and the reports (cohort fill, attendance, completion and assessments per programme and kecamatan; halal coverage;
who was followed up after training), each built in one place."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

from services.training.domain import reports
from services.training.domain.cohorts import Cohort
from services.training.domain.enrolment import Seat, waiting
from services.training.domain.mentors import Mentor
from services.training.domain.needs import Facts, needs_of
from services.training.domain.pathway import Pathway
from services.training.domain.programmes import Programme
from services.training.domain.view import BusinessView
from services.training.rows import (
    COHORT_SELECT,
    MENTOR_SELECT,
    cohort_from_row,
    mentor_from_row,
    programme_from_row,
    seat_from_row,
)
from services.training.store_pg import PATHWAY_SELECT, PgTrainingStore
from shared.db import Database, Where
from shared.errors import NotFound
from shared.reference.kbli import FOOD_AND_DRINK_PREFIXES
from shared.reference.wilayah import Wilayah


# A pathway stalled as operators are shown it, listed and counted alike: waiting for its next step, and not of a
# business that closed (its owner needs no chasing).
STALLED = ("p.stalled_for IS NOT NULL AND p.not_eligible IS NULL AND p.steps_done < 7 AND NOT EXISTS"
           " (SELECT 1 FROM business_view c WHERE c.business_id = p.business_id AND c.status = 'closed')")


@dataclass(frozen=True, slots=True)
class Trainee:
    seat: Seat
    business_name: str | None
    kecamatan_code: str | None
    position: int | None  # on the waitlist, 1 first
    marks: dict[int, str]
    assessed: bool


@dataclass(frozen=True, slots=True)
class BusinessInTraining:
    view: BusinessView
    facts: Facts
    needs: tuple[str, ...]
    seats: list[tuple[Seat, str]]  # with the topic of each seat's cohort
    pathway: Pathway | None
    mentor_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class FollowUp:
    business_id: uuid.UUID
    business_name: str | None
    kecamatan_code: str | None
    mentor_id: uuid.UUID
    mentor_name: str
    assigned_at: datetime
    visits: int
    last_visit: date | None


@dataclass(frozen=True, slots=True)
class MentoringReport:
    by_kecamatan: list[dict[str, Any]]
    businesses: list[FollowUp] = field(default_factory=list)


class TrainingQueries:
    def __init__(self, db: Database, wilayah: Wilayah) -> None:
        self._db = db
        self._names = {k.code: k.name for k in wilayah.kecamatan}

    def kecamatan_name(self, code: str | None) -> str:
        return self._names.get(code or "", code or "unknown")

    # -- programmes and cohorts --
    async def programmes(self, topic: str | None = None) -> list[Programme]:
        where = Where().add_if(topic, "topic = {}")
        return [programme_from_row(r) for r in await self._db.fetch(
            f"SELECT * FROM programme{where.sql} ORDER BY topic, title", *where.args)]  # fmt: skip

    async def programme(self, programme_id: uuid.UUID) -> Programme:
        row = await self._db.fetchrow("SELECT * FROM programme WHERE id = $1", programme_id)
        if row is None:
            raise NotFound(f"no programme {programme_id}")
        return programme_from_row(row)

    async def cohorts(self, programme_id: uuid.UUID | None = None, state: str | None = None) -> list[Cohort]:
        where = Where().add_if(programme_id, "c.programme_id = {}").add_if(state, "c.state = {}")
        rows = await self._db.fetch(COHORT_SELECT + where.sql + " ORDER BY c.starts_on, c.id", *where.args)
        return [cohort_from_row(r) for r in rows]

    async def cohort(self, cohort_id: uuid.UUID) -> Cohort:
        row = await self._db.fetchrow(COHORT_SELECT + " WHERE c.id = $1", cohort_id)
        if row is None:
            raise NotFound(f"no cohort {cohort_id}")
        return cohort_from_row(row)

    async def roster(self, cohort_id: uuid.UUID) -> list[Trainee]:
        await self.cohort(cohort_id)
        rows = await self._db.fetch(
            """SELECT s.*, b.business_name, b.kecamatan_code,
                      EXISTS (SELECT 1 FROM assessment a WHERE a.cohort_id = s.cohort_id AND a.business_id = s.business_id)
                          AS assessed
                 FROM seat s LEFT JOIN business_view b ON b.business_id = s.business_id
                WHERE s.cohort_id = $1""",
            cohort_id,
        )
        marks: dict[uuid.UUID, dict[int, str]] = defaultdict(dict)
        for m in await self._db.fetch("SELECT business_id, session, mark FROM attendance WHERE cohort_id = $1", cohort_id):
            marks[m["business_id"]][m["session"]] = m["mark"]
        seats = [seat_from_row(r) for r in rows]
        positions = {s.business_id: i for i, s in enumerate(waiting(seats), start=1)}
        order = {"enrolled": 0, "waitlisted": 1}
        trainees = [
            Trainee(seat, r["business_name"], r["kecamatan_code"], positions.get(seat.business_id),
                    marks.get(seat.business_id, {}), r["assessed"])
            for seat, r in zip(seats, rows, strict=True)
        ]  # fmt: skip
        return sorted(trainees, key=lambda t: (order.get(t.seat.status, 2), t.position or 0, t.business_name or "",
                                               str(t.seat.business_id)))  # fmt: skip

    # -- businesses --
    async def business(self, business_id: uuid.UUID) -> BusinessInTraining:
        async with self._db.acquire() as conn:
            store = PgTrainingStore(conn)
            view = (await store.businesses([business_id])).get(business_id)
            if view is None:
                raise NotFound(f"training has heard of no business {business_id} (it learns of businesses from registry events)")
            facts = (await store.facts([business_id]))[business_id]
            rows = await conn.fetch(
                """SELECT s.*, p.topic FROM seat s JOIN cohort c ON c.id = s.cohort_id JOIN programme p ON p.id = c.programme_id
                    WHERE s.business_id = $1 ORDER BY s.changed_at, s.cohort_id""",
                business_id,
            )
            pathway = await self._pathway(conn, business_id)
            assignment = await store.assignment(business_id)
        return BusinessInTraining(view, facts, needs_of(view, facts), [(seat_from_row(r), r["topic"]) for r in rows],
                                  pathway, assignment.mentor_id if assignment else None)  # fmt: skip

    async def _pathway(self, conn: asyncpg.Connection, business_id: uuid.UUID) -> Pathway | None:
        row = await conn.fetchrow("SELECT * FROM pathway WHERE business_id = $1", business_id)
        if row is None:
            return None
        [found] = await PgTrainingStore(conn)._pathways([row])  # noqa: SLF001 - the one reader of pathway rows
        return found

    async def pathway(self, business_id: uuid.UUID) -> Pathway:
        async with self._db.acquire() as conn:
            found = await self._pathway(conn, business_id)
        if found is None or (not found.steps and found.not_eligible is None):
            raise NotFound(f"nothing is recorded of the halal pathway of business {business_id}")
        return found

    async def pathways(self, *, kecamatan_code: str | None, stalled: bool | None, page: int, page_size: int) -> list[Pathway]:
        where = Where("(p.steps_done > 0 OR p.not_eligible IS NOT NULL)")
        where.add_if(kecamatan_code, "coalesce(v.kecamatan_code, p.kecamatan_code) = {}")
        if stalled is not None:
            where.add(("" if stalled else "NOT ") + f"({STALLED})")
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                f"{PATHWAY_SELECT}{where.sql} ORDER BY p.business_id"
                f" LIMIT {page_size} OFFSET {(page - 1) * page_size}", *where.args,
            )  # fmt: skip
            return await PgTrainingStore(conn)._pathways(rows)  # noqa: SLF001

    # -- mentors --
    async def mentors(self) -> list[Mentor]:
        return [mentor_from_row(r) for r in await self._db.fetch(MENTOR_SELECT + " ORDER BY m.name, m.id")]

    async def mentoring(self, *, followed_up: bool | None, page: int, page_size: int) -> MentoringReport:
        """Who has a mentor and whether they were visited since; per kecamatan (suppressed), and the list."""
        since = "v.business_id = a.business_id AND v.visited_on >= (a.assigned_at AT TIME ZONE 'Asia/Makassar')::date"
        visits = f"(SELECT count(*) FROM mentoring_visit v WHERE {since})"
        rows = await self._db.fetch(
            f"""SELECT coalesce(b.kecamatan_code, '?') AS kecamatan_code, count(*) AS assigned,
                       count(*) FILTER (WHERE {visits} > 0) AS followed_up
                  FROM mentor_assignment a LEFT JOIN business_view b ON b.business_id = a.business_id
                 WHERE a.ended_at IS NULL GROUP BY 1"""
        )
        unassigned = {r["kecamatan_code"]: r["n"] for r in await self._db.fetch(
            """SELECT coalesce(b.kecamatan_code, '?') AS kecamatan_code, count(DISTINCT s.business_id) AS n
                 FROM seat s LEFT JOIN business_view b ON b.business_id = s.business_id
                WHERE s.status = 'completed'
                  AND NOT EXISTS (SELECT 1 FROM mentor_assignment a WHERE a.business_id = s.business_id)
                GROUP BY 1""")}  # fmt: skip
        groups = sorted({r["kecamatan_code"] for r in rows} | set(unassigned))
        by_row = {r["kecamatan_code"]: r for r in rows}
        summary = []
        for code in groups:
            assigned = by_row[code]["assigned"] if code in by_row else 0
            visited = by_row[code]["followed_up"] if code in by_row else 0
            summary.append({"kecamatan": self.kecamatan_name(code),
                            **reports.follow_up_row(assigned, visited, unassigned.get(code, 0))})
        where = Where("a.ended_at IS NULL")
        if followed_up is not None:
            where.add(f"{visits} {'>' if followed_up else '='} 0")
        listed = await self._db.fetch(
            f"""SELECT a.business_id, b.business_name, b.kecamatan_code, a.mentor_id, m.name AS mentor_name, a.assigned_at,
                       {visits} AS visits,
                       (SELECT max(v.visited_on) FROM mentoring_visit v WHERE {since}) AS last_visit
                  FROM mentor_assignment a JOIN mentor m ON m.id = a.mentor_id
                  LEFT JOIN business_view b ON b.business_id = a.business_id{where.sql}
                 ORDER BY a.assigned_at, a.business_id LIMIT {page_size} OFFSET {(page - 1) * page_size}""",
            *where.args,
        )
        return MentoringReport(summary, [FollowUp(**dict(r)) for r in listed])

    # -- reports --
    async def cohort_report(self, *, programme_id: uuid.UUID | None, kecamatan_code: str | None,
                            ) -> tuple[list[reports.Row], list[reports.Row]]:  # fmt: skip
        """(per programme, per kecamatan of the businesses), small counts suppressed."""
        where = Where("c.state <> 'cancelled'").add_if(programme_id, "c.programme_id = {}")
        where.add_if(kecamatan_code, "b.kecamatan_code = {}")
        join = """FROM seat s JOIN cohort c ON c.id = s.cohort_id
                  LEFT JOIN business_view b ON b.business_id = s.business_id"""
        seats = await self._db.fetch(
            f"""SELECT c.programme_id, coalesce(b.kecamatan_code, '?') AS kec, count(DISTINCT s.cohort_id) AS cohorts,
                       count(*) FILTER (WHERE s.status IN ('enrolled', 'completed', 'not_completed')) AS enrolled,
                       count(*) FILTER (WHERE s.status = 'waitlisted') AS waitlisted,
                       count(*) FILTER (WHERE s.status = 'completed') AS completed,
                       count(*) FILTER (WHERE s.status = 'not_completed') AS not_completed
                  {join}{where.sql} GROUP BY 1, 2""",
            *where.args,
        )
        marks = await self._db.fetch(
            f"""SELECT c.programme_id, coalesce(b.kecamatan_code, '?') AS kec, a.mark, count(*) AS n
                  FROM attendance a JOIN seat s ON s.cohort_id = a.cohort_id AND s.business_id = a.business_id
                  JOIN cohort c ON c.id = s.cohort_id LEFT JOIN business_view b ON b.business_id = s.business_id
                  {where.sql} GROUP BY 1, 2, 3""",
            *where.args,
        )
        scores = await self._db.fetch(
            f"""SELECT c.programme_id, coalesce(b.kecamatan_code, '?') AS kec, x.dimension, x.score, count(*) AS n
                  FROM assessment a JOIN seat s ON s.cohort_id = a.cohort_id AND s.business_id = a.business_id
                  JOIN cohort c ON c.id = s.cohort_id LEFT JOIN business_view b ON b.business_id = s.business_id
                  CROSS JOIN LATERAL (VALUES ('management', a.management), ('leadership', a.leadership),
                                             ('business_prospects', a.business_prospects)) AS x(dimension, score)
                  {where.sql} AND s.status = 'completed' GROUP BY 1, 2, 3, 4""",
            *where.args,
        )
        cwhere = Where("c.state IN ('open', 'running', 'completed')").add_if(programme_id, "c.programme_id = {}")
        capacity = {r["programme_id"]: r for r in await self._db.fetch(
            f"SELECT c.programme_id, count(*) AS cohorts, sum(c.capacity) AS capacity FROM cohort c{cwhere.sql} GROUP BY 1",
            *cwhere.args)}  # fmt: skip
        titles = {p.id: f"{p.title} ({p.topic})" for p in await self.programmes()}
        by_programme = self._figures(seats, marks, scores, lambda r: r["programme_id"])
        by_kecamatan = self._figures(seats, marks, scores, lambda r: r["kec"])
        programme_figures = []
        for pid in sorted(set(by_programme) | (set(capacity) if kecamatan_code is None else set()),
                          key=lambda p: titles.get(p, str(p))):  # fmt: skip
            figures = dict(by_programme.get(pid, {}))
            cohorts = figures.pop("cohorts", 0)
            # Seats belong to a cohort, not to a kecamatan: with a kecamatan filter there is no fill to show.
            cap = capacity.get(pid) if kecamatan_code is None else None
            programme_figures.append(reports.Figures(
                group=titles.get(pid, str(pid)), cohorts=cap["cohorts"] if cap else cohorts,
                capacity=int(cap["capacity"]) if cap else 0, **figures))  # fmt: skip
        kecamatan_figures = [reports.Figures(group=self.kecamatan_name(k), **f)
                             for k, f in sorted(by_kecamatan.items(), key=lambda kv: self.kecamatan_name(kv[0]))]  # fmt: skip
        return reports.rows(programme_figures), reports.rows(kecamatan_figures)

    @staticmethod
    def _figures(seats: list[asyncpg.Record], marks: list[asyncpg.Record], scores: list[asyncpg.Record],
                 key: Any) -> dict[Any, dict[str, Any]]:  # fmt: skip
        out: dict[Any, dict[str, Any]] = {}

        def group(r: asyncpg.Record) -> dict[str, Any]:
            return out.setdefault(key(r), {"cohorts": 0, "enrolled": 0, "waitlisted": 0, "completed": 0,
                                           "not_completed": 0, "present": 0, "absent": 0, "excused": 0,
                                           "assessments": defaultdict(lambda: defaultdict(int))})  # fmt: skip

        for r in seats:
            g = group(r)
            for k in ("cohorts", "enrolled", "waitlisted", "completed", "not_completed"):
                g[k] += r[k]
        for r in marks:
            group(r)[r["mark"]] += r["n"]
        for r in scores:
            group(r)["assessments"][r["dimension"]][reports.band(r["score"])] += r["n"]
        return out

    async def halal_coverage(self) -> list[reports.CoverageRow]:
        rows = await self._db.fetch(
            """SELECT b.kecamatan_code, count(*) AS food_businesses,
                      count(*) FILTER (WHERE b.scale IN ('micro', 'small') AND p.not_eligible IS NULL) AS self_declare,
                      count(*) FILTER (WHERE p.steps_done = 7) AS certified,
                      count(*) FILTER (WHERE p.steps_done BETWEEN 1 AND 6 AND p.not_eligible IS NULL) AS in_pathway,
                      count(*) FILTER (WHERE p.steps_done BETWEEN 1 AND 6 AND p.not_eligible IS NULL
                                         AND p.stalled_for IS NOT NULL) AS stalled,
                      count(*) FILTER (WHERE p.not_eligible IS NOT NULL) AS not_eligible
                 FROM business_view b LEFT JOIN pathway p ON p.business_id = b.business_id
                WHERE b.status = 'active' AND b.kbli_code LIKE ANY($1::text[])
                GROUP BY 1""",
            [p + "%" for p in FOOD_AND_DRINK_PREFIXES],
        )
        figures = [reports.CoverageFigures(kecamatan=self.kecamatan_name(r["kecamatan_code"]),
                                           **{k: r[k] for k in r.keys() if k != "kecamatan_code"}) for r in rows]  # fmt: skip
        return reports.coverage_rows(sorted(figures, key=lambda f: f.kecamatan), "Kota Kupang")

    # -- figures for Prometheus --
    async def seats_by_topic(self) -> list[asyncpg.Record]:
        return await self._db.fetch(
            """SELECT p.topic, sum(c.capacity)::int AS capacity, sum(c.enrolled)::int AS enrolled,
                      sum(c.waitlisted)::int AS waitlisted
                 FROM cohort c JOIN programme p ON p.id = c.programme_id
                WHERE c.state IN ('open', 'running') GROUP BY 1"""
        )

    async def completions_by_topic(self) -> list[asyncpg.Record]:
        return await self._db.fetch(
            """SELECT p.topic, count(*)::int AS completed FROM seat s JOIN cohort c ON c.id = s.cohort_id
                 JOIN programme p ON p.id = c.programme_id WHERE s.status = 'completed' GROUP BY 1"""
        )

    async def stalled_by_step(self) -> list[asyncpg.Record]:
        return await self._db.fetch(
            f"SELECT p.stalled_for AS step, count(*)::int AS stalled FROM pathway p WHERE {STALLED} GROUP BY 1"
        )

"""Training's rows as domain objects: the SELECTs and row mappings its store and its read side share."""

from __future__ import annotations

import asyncpg

from services.training.domain.cohorts import Cohort, Session
from services.training.domain.enrolment import Seat
from services.training.domain.mentors import Mentor
from services.training.domain.needs import Facts
from services.training.domain.programmes import Programme
from services.training.domain.view import BusinessView

_VIEW_COLUMNS = ("business_id", "version", "business_name", "kbli_code", "kecamatan_code", "scale", "youth_owned",
                 "women_owned", "nib_status", "status", "registered_at")  # fmt: skip
# What decides a business's needs besides the registry's facts, each from the table its writer owns.
FACTS_SELECT = """
SELECT b.business_id,
       coalesce(p.steps_done = 7, false) AS halal_certified,
       p.not_eligible AS halal_not_eligible,
       EXISTS (SELECT 1 FROM funding_accepted f WHERE f.business_id = b.business_id) AS funding_accepted,
       EXISTS (SELECT 1 FROM seat s WHERE s.business_id = b.business_id AND s.status = 'completed') AS trained_before
  FROM unnest($1::uuid[]) AS b(business_id)
  LEFT JOIN pathway p ON p.business_id = b.business_id
"""
COHORT_SELECT = """
SELECT c.*, p.topic, p.title,
       ARRAY(SELECT s.starts_at FROM cohort_session s WHERE s.cohort_id = c.id ORDER BY s.number) AS session_starts,
       ARRAY(SELECT s.ends_at FROM cohort_session s WHERE s.cohort_id = c.id ORDER BY s.number) AS session_ends
  FROM cohort c JOIN programme p ON p.id = c.programme_id
"""


def view_from_row(row: asyncpg.Record) -> BusinessView:
    return BusinessView(**{k: row[k] for k in _VIEW_COLUMNS})


def programme_from_row(row: asyncpg.Record) -> Programme:
    return Programme(**{k: row[k] for k in Programme.__dataclass_fields__ if k != "needs"}, needs=tuple(row["needs"]))


def cohort_from_row(row: asyncpg.Record) -> Cohort:
    sessions = tuple(Session(n, start, end) for n, (start, end)
                     in enumerate(zip(row["session_starts"], row["session_ends"], strict=True), start=1))  # fmt: skip
    fields = {k: row[k] for k in Cohort.__dataclass_fields__ if k != "sessions"}
    return Cohort(**fields, sessions=sessions)


def seat_from_row(row: asyncpg.Record) -> Seat:
    return Seat(**{k: row[k] for k in Seat.__dataclass_fields__})


def mentor_from_row(row: asyncpg.Record) -> Mentor:
    return Mentor(id=row["id"], name=row["name"], organisation=row["organisation"],
                  kbli_prefixes=tuple(row["kbli_prefixes"]), kecamatan_codes=tuple(row["kecamatan_codes"]),
                  max_load=row["max_load"], active=row["active"], load=row["load"])  # fmt: skip


def facts_from_row(row: asyncpg.Record) -> Facts:
    return Facts(halal_certified=row["halal_certified"], halal_not_eligible=row["halal_not_eligible"],
                 funding_accepted=row["funding_accepted"])  # fmt: skip


MENTOR_SELECT = """
SELECT m.*, (SELECT count(*) FROM mentor_assignment a WHERE a.mentor_id = m.id AND a.ended_at IS NULL)::int AS load
  FROM mentor m
"""

"""Cohorts: one run of a programme, with its seats, sessions and venue, moving planned -> open -> running ->
completed, or cancelled from any state before completion. Session times are given in WITA (or with an explicit
offset) and kept in UTC."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.training.domain.programmes import Programme
from shared.auth import Principal
from shared.errors import Conflict, FieldError, Forbidden, InvalidInput
from shared.reference.wilayah import Wilayah
from shared.reference.wita import WITA

CohortState = Literal["planned", "open", "running", "completed", "cancelled"]
MAX_CAPACITY = 500
# Dates far outside any real programme are refused before any arithmetic could overflow on them.
EARLIEST, LATEST = date(2020, 1, 1), date(2100, 12, 31)
MAX_DAYS = 366

# Which states a cohort may come from into each state; anything else is a 409 naming the current state.
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"planned"}),
    "running": frozenset({"open"}),
    "completed": frozenset({"running"}),
    "cancelled": frozenset({"planned", "open", "running"}),
}
# Where enrolment changes (by hand, withdrawals, promotions) happen; invitations by need only while open.
TAKING_TRAINEES = frozenset({"open", "running"})


def _in_range(value: date) -> None:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}")


def _as_wita(value: datetime) -> datetime:
    """A time without an offset is Kupang's (WITA); every time is kept in UTC."""
    _in_range(value.date())
    return (value.replace(tzinfo=WITA) if value.tzinfo is None else value).astimezone(UTC)


class SessionForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(description="WITA unless an offset is given", examples=["2026-04-06T09:00:00"])
    ends_at: datetime = Field(description="WITA unless an offset is given", examples=["2026-04-06T13:00:00"])

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_wita(value)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info) -> datetime:  # noqa: ANN001
        start = info.data.get("starts_at")
        if start is not None and value <= start:
            raise ValueError("a session ends after it starts")
        if start is not None and value - start > timedelta(hours=24):
            raise ValueError("a session lasts at most 24 hours")
        return value


class CohortForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    programme_id: uuid.UUID
    starts_on: date = Field(description="First day (WITA)", examples=["2026-04-06"])
    ends_on: date = Field(description="Last day (WITA)", examples=["2026-04-27"])
    capacity: int = Field(ge=1, le=MAX_CAPACITY, examples=[40], description="Seats; real Kupang cohorts ran 30 to 60")
    sessions: list[SessionForm] = Field(min_length=1, max_length=100)
    venue: str = Field(min_length=2, max_length=200, examples=["Taman Nostalgia", "Kantor Kelurahan Fatululi", "online"])
    kecamatan: str | None = Field(None, max_length=100, description="Where the venue is (name or code); none when online",
                                  examples=["Oebobo"])  # fmt: skip
    mentor_id: uuid.UUID | None = Field(None, description="A mentor of the pool who accompanies the cohort")

    @field_validator("starts_on", "ends_on")
    @classmethod
    def _dates(cls, value: date) -> date:
        _in_range(value)
        return value

    @field_validator("ends_on")
    @classmethod
    def _not_before_start(cls, value: date, info) -> date:  # noqa: ANN001
        start = info.data.get("starts_on")
        if start is not None and value < start:
            raise ValueError(f"ends_on is before starts_on ({start.isoformat()})")
        if start is not None and (value - start).days >= MAX_DAYS:
            raise ValueError(f"a cohort runs at most {MAX_DAYS} days")
        return value


class CohortChanges(BaseModel):
    """What may change once a cohort exists: its seats, venue and mentor."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    capacity: int | None = Field(None, ge=1, le=MAX_CAPACITY)
    venue: str | None = Field(None, min_length=2, max_length=200)
    kecamatan: str | None = Field(None, max_length=100, description="Name or code; an empty string for none (online)")
    mentor_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Session:
    number: int  # 1, 2, ...
    starts_at: datetime  # UTC
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Cohort:
    id: uuid.UUID
    programme_id: uuid.UUID
    topic: str
    title: str
    state: str
    capacity: int
    starts_on: date
    ends_on: date
    sessions: tuple[Session, ...]
    venue: str
    kecamatan_code: str | None
    mentor_id: uuid.UUID | None
    created_at: datetime
    created_by: str
    enrolled: int = 0  # seats taken (kept with the row; the database refuses more than the capacity)
    waitlisted: int = 0
    opened_at: datetime | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def starts_at(self) -> datetime:
        return self.sessions[0].starts_at

    @property
    def ends_at(self) -> datetime:
        return self.sessions[-1].ends_at

    @property
    def free_seats(self) -> int:
        return max(0, self.capacity - self.enrolled)

    def session(self, number: int) -> Session | None:
        return self.sessions[number - 1] if 1 <= number <= len(self.sessions) else None


def _day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time(0), tzinfo=WITA).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=WITA).astimezone(UTC)
    return start, end


def kecamatan_code(text: str | None, wilayah: Wilayah, field: str = "kecamatan") -> str | None:
    if text is None or not text.strip():
        return None
    found = wilayah.find_kecamatan(text)
    if found is None:
        raise InvalidInput.one(field, "wilayah.unknown_kecamatan", f"{text!r} is not a kecamatan of Kota Kupang "
                               f"({', '.join(k.name for k in wilayah.kecamatan)})")  # fmt: skip
    return found.code


def new_cohort(form: CohortForm, programme: Programme, wilayah: Wilayah, *, cohort_id: uuid.UUID, now: datetime,
               by: str) -> Cohort:  # fmt: skip
    """A planned cohort from the trainer's form; every session inside the cohort's dates (WITA), in order, as many
    as the programme has. Every bad field is named at once."""
    errors: list[FieldError] = []
    first, last = _day_bounds(form.starts_on, form.ends_on)
    sessions = sorted(form.sessions, key=lambda s: s.starts_at)
    for i, s in enumerate(form.sessions):
        for name in ("starts_at", "ends_at"):
            moment = getattr(s, name)
            if not first <= moment <= last:
                errors.append(FieldError(f"sessions.{i}.{name}", "cohort.session_outside_dates",
                                         f"{moment.astimezone(WITA):%Y-%m-%d %H:%M} WITA is outside the cohort's dates "
                                         f"{form.starts_on.isoformat()} to {form.ends_on.isoformat()}"))  # fmt: skip
    for before, after in zip(sessions, sessions[1:], strict=False):
        if after.starts_at < before.ends_at:
            i = form.sessions.index(after)
            errors.append(FieldError(f"sessions.{i}.starts_at", "cohort.sessions_overlap",
                                     "this session starts before the one before it ends"))  # fmt: skip
    if len(form.sessions) != programme.sessions:
        errors.append(FieldError("sessions", "cohort.session_count",
                                 f"the programme has {programme.sessions} sessions; give that many, not "
                                 f"{len(form.sessions)}"))  # fmt: skip
    try:
        kec = kecamatan_code(form.kecamatan, wilayah)
    except InvalidInput as exc:
        errors += exc.errors
        kec = None
    if errors:
        raise InvalidInput(errors)
    return Cohort(
        id=cohort_id, programme_id=programme.id, topic=programme.topic, title=programme.title, state="planned",
        capacity=form.capacity, starts_on=form.starts_on, ends_on=form.ends_on,
        sessions=tuple(Session(n, s.starts_at, s.ends_at) for n, s in enumerate(sessions, start=1)),
        venue=form.venue, kecamatan_code=kec, mentor_id=form.mentor_id, created_at=now, created_by=by,
    )  # fmt: skip


def transition(cohort: Cohort, to: str, now: datetime) -> Cohort:
    """planned -> open -> running -> completed, or cancelled before completion; anything else is a 409."""
    if cohort.state not in TRANSITIONS[to]:
        allowed = " or ".join(sorted(TRANSITIONS[to]))
        raise Conflict(f"cohort {cohort.id} is {cohort.state}; only a cohort that is {allowed} can become {to}",
                       "cohort_state", {"state": cohort.state, "wanted": to})  # fmt: skip
    if to == "completed" and cohort.sessions and cohort.sessions[-1].starts_at > now:
        # Its sessions yet to come would count as absences: every trainee short of the attendance the programme
        # asks for, the waitlist released, and none of it can be undone.
        last = cohort.sessions[-1]
        raise Conflict(f"cohort {cohort.id}'s last session ({last.number}) starts "
                       f"{last.starts_at.astimezone(WITA):%Y-%m-%d %H:%M} WITA; complete the cohort once it has "
                       "begun, or cancel it",
                       "sessions_to_come", {"starts_at": last.starts_at.isoformat()})  # fmt: skip
    stamps = {"open": "opened_at", "running": "started_at", "completed": "closed_at", "cancelled": "closed_at"}
    return replace(cohort, state=to, **{stamps[to]: now})


def require_taking_trainees(cohort: Cohort) -> None:
    if cohort.state not in TAKING_TRAINEES:
        raise Conflict(f"cohort {cohort.id} is {cohort.state}; enrolment changes only while it is open or running",
                       "cohort_state", {"state": cohort.state})  # fmt: skip


def require_run_by(cohort: Cohort, by: Principal) -> Cohort:
    """A cohort is run by the trainer who planned it, or an admin (for one whose trainer cannot): any other trainer's
    token could cancel it, withdraw its trainees as no-shows or record their assessments."""
    if "admin" not in by.roles and by.actor != cohort.created_by:
        raise Forbidden(f"cohort {cohort.id} is run by the trainer who planned it; ask them, or an admin, to do this")
    return cohort


def require_state(cohort: Cohort, state: str, doing: str) -> None:
    if cohort.state != state:
        raise Conflict(f"cohort {cohort.id} is {cohort.state}; {doing} only while it is {state}", "cohort_state",
                       {"state": cohort.state})  # fmt: skip


def change(cohort: Cohort, changes: CohortChanges, wilayah: Wilayah) -> Cohort:
    """Seats, venue and mentor; never fewer seats than are taken (422 naming capacity), never once it is closed."""
    if cohort.state in ("completed", "cancelled"):
        raise Conflict(f"cohort {cohort.id} is {cohort.state}; it can't change any more", "cohort_state",
                       {"state": cohort.state})  # fmt: skip
    updated = cohort
    if changes.capacity is not None:
        if changes.capacity < cohort.enrolled:
            raise InvalidInput.one("capacity", "cohort.capacity_below_enrolled",
                                   f"{cohort.enrolled} trainees are enrolled; the capacity can't go below that")  # fmt: skip
        updated = replace(updated, capacity=changes.capacity)
    if changes.venue is not None:
        updated = replace(updated, venue=changes.venue)
    if changes.kecamatan is not None:
        updated = replace(updated, kecamatan_code=kecamatan_code(changes.kecamatan, wilayah))
    if changes.mentor_id is not None:
        updated = replace(updated, mentor_id=changes.mentor_id)
    return updated

"""Training's domain events, and the participant versions they carry. integration.py turns them into the shared
contracts.

Every event of a business's participation carries the next version of that business (one apart, always); the
versions come from the participant rows locked in the unit of work, so two units of work never give one version
twice and the outbox's order is the versions' order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from services.training.domain.cohorts import Cohort
from services.training.domain.pathway import Stall
from services.training.domain.programmes import Programme
from shared.contracts.training import Assessment


class Versions:
    """The participant versions of the businesses locked in one unit of work; each event takes the next."""

    def __init__(self, current: Mapping[uuid.UUID, int]) -> None:
        self._now = dict(current)
        self._before = dict(current)

    def next(self, business_id: uuid.UUID) -> int:
        if business_id not in self._now:
            raise AssertionError(f"participant {business_id} was not locked before an event of it")
        self._now[business_id] += 1
        return self._now[business_id]

    def __contains__(self, business_id: object) -> bool:
        return business_id in self._now

    def changed(self) -> dict[uuid.UUID, int]:
        return {b: v for b, v in self._now.items() if v != self._before[b]}


@dataclass(frozen=True, slots=True)
class ProgrammeDefined:
    programme: Programme


@dataclass(frozen=True, slots=True)
class CohortOpened:
    cohort: Cohort


@dataclass(frozen=True, slots=True)
class CohortClosed:
    cohort: Cohort  # completed or cancelled
    enrolled: int
    completed: int


@dataclass(frozen=True, slots=True)
class Invited:
    business_id: uuid.UUID
    version: int
    cohort: Cohort
    need: str


@dataclass(frozen=True, slots=True)
class Enrolled:
    business_id: uuid.UUID
    version: int
    cohort: Cohort
    from_waitlist: bool


@dataclass(frozen=True, slots=True)
class Waitlisted:
    business_id: uuid.UUID
    version: int
    cohort: Cohort
    position: int


@dataclass(frozen=True, slots=True)
class Withdrew:
    business_id: uuid.UUID
    version: int
    cohort_id: uuid.UUID
    reason: str  # withdrew | no_show | cohort_cancelled | officer


@dataclass(frozen=True, slots=True)
class AttendanceMarked:
    business_id: uuid.UUID
    version: int
    cohort_id: uuid.UUID
    session: int
    attendance: str


@dataclass(frozen=True, slots=True)
class Completed:
    business_id: uuid.UUID
    version: int
    cohort: Cohort
    completed_on: date
    attendance_percent: int
    assessment: Assessment | None


@dataclass(frozen=True, slots=True)
class StepRecorded:
    business_id: uuid.UUID
    version: int
    step: str
    done_on: date
    kecamatan_code: str


@dataclass(frozen=True, slots=True)
class Stalled:
    business_id: uuid.UUID
    version: int
    stall: Stall
    kecamatan_code: str


@dataclass(frozen=True, slots=True)
class NotEligible:
    business_id: uuid.UUID
    version: int
    reason: str
    regular_route_possible: bool
    kecamatan_code: str


@dataclass(frozen=True, slots=True)
class MentorAssigned:
    business_id: uuid.UUID
    version: int
    mentor_id: uuid.UUID
    cohort_id: uuid.UUID | None
    at: datetime


@dataclass(frozen=True, slots=True)
class VisitRecorded:
    business_id: uuid.UUID
    version: int
    mentor_id: uuid.UUID
    visited_on: date


ParticipantEvent = (Invited | Enrolled | Waitlisted | Withdrew | AttendanceMarked | Completed | StepRecorded | Stalled
                    | NotEligible | MentorAssigned | VisitRecorded)  # fmt: skip
DomainEvent = ProgrammeDefined | CohortOpened | CohortClosed | ParticipantEvent

"""What training's use cases read and change (one abstract store, which the fakes implement too) and the unit of work.

Every change to who holds a seat happens with the cohort's row locked (`FOR UPDATE`), and the database refuses
more enrolled than seats and a business twice in a cohort. Every path takes its locks in ONE order: business view
rows, then cohorts, then pathways, then mentors, then participants, each by id and each kind in a single statement,
so concurrent consumers, HTTP calls and the sweeper serialise per cohort (or business) and never deadlock.

The PostgreSQL store is in store_pg.py; the row mappings it shares with the read side are in rows.py.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from services.training.domain.cohorts import Cohort
from services.training.domain.enrolment import Seat
from services.training.domain.events import DomainEvent
from services.training.domain.mentors import Assignment, Mentor
from services.training.domain.needs import Facts
from services.training.domain.pathway import Pathway
from services.training.domain.programmes import Programme
from services.training.domain.view import BusinessView
from shared.contracts.training import Assessment
from shared.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Prospect:
    """A business a cohort might invite, with what decides whether and in which order."""

    business: BusinessView
    facts: Facts
    trained_before: bool


@dataclass(frozen=True, slots=True)
class Mark:
    business_id: uuid.UUID
    session: int
    mark: str
    reason: str | None


# What a trainer's request may make under an Idempotency-Key.
Made = Literal["cohort", "mentor"]


class TrainingStore(abc.ABC):
    # -- what training knows of businesses --
    @abc.abstractmethod
    async def lock_views(self, business_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        """The views of these businesses (those training knows); every one of the ids, known or not, stays locked
        until the unit of work ends, taken in id order."""

    @abc.abstractmethod
    async def businesses(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, BusinessView]: ...

    @abc.abstractmethod
    async def save_views(self, views: Sequence[BusinessView]) -> None:
        """Write the registry's facts, one view per business; a version not newer than the one stored changes
        nothing."""

    @abc.abstractmethod
    async def add_funding_accepted(self, business_id: uuid.UUID, offer_id: uuid.UUID, pledge_id: uuid.UUID,
                                   accepted_at: datetime) -> bool:  # fmt: skip
        """False if this acceptance was already recorded."""

    @abc.abstractmethod
    async def facts(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Facts]:
        """Halal certificate, recorded inability to self-declare, funding accepted; every id answered."""

    # -- programmes --
    @abc.abstractmethod
    async def add_programme(self, programme: Programme) -> uuid.UUID | None:
        """None if added; else the id of the programme with the same topic and title."""

    @abc.abstractmethod
    async def programme(self, programme_id: uuid.UUID) -> Programme | None: ...

    # -- what was made under an Idempotency-Key --
    @abc.abstractmethod
    async def claim_request(self, kind: Made, actor: str, key: str, fingerprint: bytes,
                            new_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
        """The id of the `kind` made under the actor's key and the fingerprint of its form: `new_id` and
        `fingerprint` if this is the first request under it, claimed until the unit of work ends
        (shared.idempotency)."""

    # -- cohorts and seats --
    @abc.abstractmethod
    async def add_cohort(self, cohort: Cohort) -> None: ...

    @abc.abstractmethod
    async def hold_seating(self, alone: bool) -> None:
        """Until the unit of work ends. Held alone by a cohort opening, by a batch that closes businesses or finds
        some unable to self-declare, and by an officer recording one so; shared, before the first look at businesses
        or cohorts, by every other unit of work that seats businesses (batches, withdrawals, enrolment by hand, more
        seats, attendance).

        Otherwise each side misses what the other has not committed. An opening gathering prospects misses a business
        a batch is making one, and the batch, having read the cohort as not open yet, leaves it to the opening. A
        withdrawal's refill or an officer seats a business a batch is closing (read as still active), and the batch,
        having looked for its seats before that seat was committed, leaves it seated."""

    @abc.abstractmethod
    async def cohort(self, cohort_id: uuid.UUID) -> Cohort | None:
        """A first look, without a lock: to refuse a caller before it queues for one."""

    @abc.abstractmethod
    async def lock_cohorts(self, cohort_ids: Iterable[uuid.UUID]) -> list[Cohort]:
        """Locked in id order, returned in that order."""

    @abc.abstractmethod
    async def save_cohort(self, cohort: Cohort) -> None:
        """State, capacity, venue, mentor, the seat counts and the time stamps."""

    @abc.abstractmethod
    async def open_cohorts_for(self, needs: Iterable[str]) -> list[uuid.UUID]:
        """Open cohorts whose programme serves any of these needs, earliest start first (a first look)."""

    @abc.abstractmethod
    async def cohorts_holding(self, business_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Open or running cohorts in which any of these businesses is enrolled or waitlisted (a first look)."""

    @abc.abstractmethod
    async def seats(self, cohort_id: uuid.UUID) -> list[Seat]: ...

    @abc.abstractmethod
    async def seats_of(self, business_id: uuid.UUID) -> list[Seat]: ...

    @abc.abstractmethod
    async def save_seats(self, seats: Sequence[Seat]) -> None:
        """Insert or update; the cohort is locked by the caller."""

    @abc.abstractmethod
    async def view_catching_up(self) -> bool:
        """Whether the view is being rebuilt (`berdaya replay training-view`) and its consumer is still reading
        history: it then knows only some businesses, and those only as they were."""

    @abc.abstractmethod
    async def prospects(self, cohort: Cohort, programme: Programme, limit: int) -> list[Prospect]:
        """Active businesses that may have a need the programme serves and hold no seat in the cohort, in the
        waitlist order, at most `limit`. A cheap narrowing: the needs rules decide."""

    @abc.abstractmethod
    async def prospect(self, business_id: uuid.UUID) -> Prospect | None: ...

    @abc.abstractmethod
    async def topics_taken(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
        """Per business, the topics in which it holds or waits for a seat in an open or running cohort, or which it
        completed: a business is not invited to a second cohort of one topic."""

    # -- participants --
    @abc.abstractmethod
    async def lock_participants(self, business_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The participant versions (0 for a business with no event yet), locked in id order."""

    @abc.abstractmethod
    async def save_participants(self, versions: Mapping[uuid.UUID, int]) -> None: ...

    # -- attendance and assessment --
    @abc.abstractmethod
    async def marks(self, cohort_id: uuid.UUID) -> dict[uuid.UUID, dict[int, str]]: ...

    @abc.abstractmethod
    async def save_marks(self, cohort_id: uuid.UUID, marks: Sequence[Mark], by: str, at: datetime) -> None: ...

    @abc.abstractmethod
    async def assessments(self, cohort_id: uuid.UUID) -> dict[uuid.UUID, Assessment]: ...

    @abc.abstractmethod
    async def save_assessments(self, cohort_id: uuid.UUID, assessments: Mapping[uuid.UUID, Assessment], by: str,
                               at: datetime) -> None: ...  # fmt: skip

    # -- the halal pathway --
    @abc.abstractmethod
    async def lock_pathway(self, business_id: uuid.UUID, kecamatan_code: str) -> Pathway:
        """The pathway, locked; an empty one (nothing recorded) if there was none."""

    @abc.abstractmethod
    async def save_pathway(self, pathway: Pathway, by: str, at: datetime) -> None: ...

    @abc.abstractmethod
    async def lock_due_stalls(self, limits: Mapping[str, int], today: date, limit: int) -> list[Pathway]:
        """Pathways whose next step is overdue and not yet reported, locked; rows another process holds are
        skipped (SKIP LOCKED), so two sweepers never report one stall twice."""

    # -- mentors --
    @abc.abstractmethod
    async def add_mentor(self, mentor: Mentor, by: str, at: datetime) -> None: ...

    @abc.abstractmethod
    async def mentor(self, mentor_id: uuid.UUID) -> Mentor | None: ...

    @abc.abstractmethod
    async def lock_mentors(self) -> list[Mentor]:
        """Active mentors with their current load, locked in id order."""

    @abc.abstractmethod
    async def assignment(self, business_id: uuid.UUID) -> Assignment | None:
        """The business's current mentor assignment."""

    @abc.abstractmethod
    async def add_assignments(self, assignments: Sequence[Assignment]) -> None: ...

    @abc.abstractmethod
    async def end_assignment(self, business_id: uuid.UUID, at: datetime) -> bool: ...

    @abc.abstractmethod
    async def add_visit(self, business_id: uuid.UUID, mentor_id: uuid.UUID, visited_on: date, notes: str | None,
                        by: str, at: datetime) -> None: ...  # fmt: skip

    @abc.abstractmethod
    async def visits_on(self, business_id: uuid.UUID, mentor_id: uuid.UUID, visited_on: date) -> list[str | None]:
        """The notes of each of the mentor's visits to the business recorded for that day (None: without notes)."""

    @abc.abstractmethod
    async def last_completion(self, business_id: uuid.UUID) -> date | None:
        """When the business last completed a training (WITA date of its cohort's close)."""


class TrainingUnitOfWork(UnitOfWork[DomainEvent]):
    store: TrainingStore

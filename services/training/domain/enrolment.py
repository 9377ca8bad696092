"""Seats: who is enrolled in a cohort and who waits, in a documented order, and what each change does.

The waitlist order (WAITLIST_ORDER says it for people): businesses that never completed a training first, then the
earlier registered, then by business id, so the order is total and the same in every process. It orders everyone
considered at one time (when a cohort opens, or a batch of businesses gains a need); someone already waiting keeps
their place ahead of anyone who comes later, so a position an owner was told never goes backwards.

The waitlist is bounded: at most `waitlist_bound(capacity, per_seat)` businesses wait (by default as many as there
are seats). Beyond that nobody is told anything; they stay candidates, and are invited when the waitlist has room
again while the cohort is open.

Seats free up when a trainee withdraws (or the officer withdraws them), is a no-show (absent, not excused, from
the first session), or the capacity grows: the first on the waitlist is promoted (TraineeEnrolled with
from_waitlist). While the cohort is open, free seats and waitlist room then go to new candidates in order; once it
runs, only the waitlist is promoted.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.training.domain.cohorts import Cohort, require_taking_trainees
from shared.errors import Conflict

WAITLIST_ORDER = "never trained before first, then earlier registration, then business id"
# enrolled and waitlisted hold or wait for a seat; the rest are where a seat ended.
SEAT_STATUSES = ("enrolled", "waitlisted", "withdrawn", "completed", "not_completed", "released")
ACTIVE = frozenset({"enrolled", "waitlisted"})


@dataclass(frozen=True, slots=True)
class Seat:
    """A business's place in one cohort (at most one per cohort and business)."""

    cohort_id: uuid.UUID
    business_id: uuid.UUID
    status: str
    need: str  # why it was invited: a need, or "officer" for a hand enrolment
    queue_no: int  # the order it joined the waitlist in (0 when it never waited)
    changed_at: datetime
    from_waitlist: bool = False
    withdraw_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A business a cohort could invite, with what orders it."""

    business_id: uuid.UUID
    need: str
    trained_before: bool
    registered_at: datetime


def waitlist_key(c: Candidate) -> tuple[bool, datetime, str]:
    """Never trained before first, then earlier registration, then business id."""
    return (c.trained_before, c.registered_at, str(c.business_id))


def waitlist_bound(capacity: int, per_seat: float) -> int:
    return math.ceil(capacity * per_seat)


@dataclass(frozen=True, slots=True)
class Promote:
    business_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Place:
    """A new candidate invited: enrolled in a seat, or waitlisted at `position` (1 is next)."""

    candidate: Candidate
    status: str  # enrolled | waitlisted
    position: int = 0


Decision = Promote | Place


def waiting(seats: Sequence[Seat]) -> list[Seat]:
    """The waitlist, first first."""
    return sorted((s for s in seats if s.status == "waitlisted"), key=lambda s: (s.queue_no, str(s.business_id)))


def position_of(seats: Sequence[Seat], business_id: uuid.UUID) -> int | None:
    for i, s in enumerate(waiting(seats), start=1):
        if s.business_id == business_id:
            return i
    return None


def fill(cohort: Cohort, seats: Sequence[Seat], candidates: Sequence[Candidate], bound: int) -> list[Decision]:
    """What to do with the free seats: promote the waitlist in order; then, while the cohort is open, enrol new
    candidates in the waitlist order and waitlist the next ones up to the bound. Candidates already seated in the
    cohort are skipped (a business is in a cohort at most once)."""
    if cohort.state not in ("open", "running"):
        return []
    free = cohort.capacity - sum(s.status == "enrolled" for s in seats)
    queue = waiting(seats)
    decisions: list[Decision] = []
    while free > 0 and queue:
        decisions.append(Promote(queue.pop(0).business_id))
        free -= 1
    if cohort.state != "open":
        return decisions
    seated = {s.business_id for s in seats}
    waiting_count = len(queue)
    for c in sorted(candidates, key=waitlist_key):
        if c.business_id in seated:
            continue
        if free > 0:
            decisions.append(Place(c, "enrolled"))
            free -= 1
        elif waiting_count < bound:
            waiting_count += 1
            decisions.append(Place(c, "waitlisted", waiting_count))
        else:
            break
        seated.add(c.business_id)
    return decisions


def next_queue_no(seats: Sequence[Seat]) -> int:
    return max((s.queue_no for s in seats), default=0) + 1


# ---------------------------------------------------------------------------------------------------------------
# By hand
# ---------------------------------------------------------------------------------------------------------------


def enrol_by_hand(cohort: Cohort, seat: Seat | None, candidate: Candidate) -> Decision:
    """An officer enrols a business: a free seat is needed (409 cohort_full otherwise; raise the capacity); one on
    the waitlist is promoted; one that withdrew may come back."""
    require_taking_trainees(cohort)
    if seat is not None and seat.status in ("enrolled", "completed", "not_completed"):
        raise Conflict(f"business {seat.business_id} is already {seat.status} in cohort {cohort.id}", "already_enrolled",
                       {"seat_status": seat.status})  # fmt: skip
    if cohort.free_seats <= 0:
        raise Conflict(f"cohort {cohort.id} is full ({cohort.enrolled} of {cohort.capacity} seats); raise its capacity "
                       "or withdraw someone first", "cohort_full",
                       {"capacity": cohort.capacity, "enrolled": cohort.enrolled})  # fmt: skip
    if seat is not None and seat.status == "waitlisted":
        return Promote(seat.business_id)
    return Place(candidate, "enrolled")


def require_seated(cohort: Cohort, seat: Seat | None, business_id: uuid.UUID) -> Seat:
    """A withdrawal needs an enrolled or waitlisted business, in a cohort that is open or running."""
    require_taking_trainees(cohort)
    if seat is None or seat.status not in ACTIVE:
        status = seat.status if seat else "not in the cohort"
        raise Conflict(f"business {business_id} is {status}; only an enrolled or waitlisted business withdraws",
                       "not_enrolled", {"seat_status": status})  # fmt: skip
    return seat

"""Changing who holds the seats of cohorts, in one unit of work, in the lock order every path follows.

A `Seating` takes its locks in steps that every caller goes through in the same order:

0. (the caller) the seating lock, `TrainingStore.hold_seating`, before its first look at businesses or cohorts;
1. `lock(cohort_ids)`: the cohorts, in id order (with their programmes and seats);
2. changes that need no version yet (`withdraw`, `release`, `later`), kept in memory;
3. `gather()`: for each open cohort with room, the best prospects by need (a first look, no lock);
4. `lock_participants(also)`: ONE statement locking, in id order, every business this unit of work may write an
   event of (the waitlisted of the locked cohorts, the prospects, the businesses withdrawn, and `also`);
5. `flush()`, `refill(...)`, `place(...)`: the events, each with its business's next version;
6. `save()`: seats, seat counts, participant versions.

Pathways and mentors, where a unit of work needs them, are locked between 1 and 4, so the order is always view rows,
the seating lock, cohorts, pathways, mentors, participants.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.training.domain import events
from services.training.domain.cohorts import Cohort
from services.training.domain.enrolment import (
    ACTIVE,
    Candidate,
    Decision,
    Place,
    Promote,
    Seat,
    fill,
    next_queue_no,
    waiting,
    waitlist_bound,
)
from services.training.domain.needs import halal_programme, need_served
from services.training.domain.pathway import DEFAULT_STALL_DAYS
from services.training.domain.programmes import Programme
from services.training.store import Prospect, TrainingUnitOfWork
from shared.errors import NotFound
from shared.reference.wilayah import Wilayah
from shared.unit_of_work import Cause

# Prospects read beyond the room a cohort has, so the few the needs rules turn down don't leave seats empty.
PROSPECT_MARGIN = 20


@dataclass(frozen=True)
class Deps:
    wilayah: Wilayah
    clock: Callable[[], datetime]
    waitlist_per_seat: float = 1.0  # the waitlist holds at most this many per seat (rounded up)
    stall_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STALL_DAYS))
    stall_batch: int = 100
    new_id: Callable[[], uuid.UUID] = uuid.uuid4


MakeEvent = Callable[[int], events.DomainEvent]


class Seating:
    def __init__(self, uow: TrainingUnitOfWork, deps: Deps, now: datetime) -> None:
        self.uow = uow
        self.deps = deps
        self.now = now
        self.cohorts: dict[uuid.UUID, Cohort] = {}
        self.programmes: dict[uuid.UUID, Programme] = {}
        self.seats: dict[uuid.UUID, dict[uuid.UUID, Seat]] = {}
        self.prospects: dict[uuid.UUID, list[Prospect]] = {}
        self.versions: events.Versions | None = None
        self._pending: list[tuple[uuid.UUID, MakeEvent, Cause | None]] = []
        self._changed: dict[tuple[uuid.UUID, uuid.UUID], Seat] = {}

    # -- 1. the cohorts --
    async def lock(self, cohort_ids: Iterable[uuid.UUID]) -> list[Cohort]:
        assert self.versions is None, "cohorts are locked before participants"
        locked = await self.uow.store.lock_cohorts(cohort_ids)
        for cohort in locked:
            self.cohorts[cohort.id] = cohort
            if cohort.programme_id not in self.programmes:
                programme = await self.uow.store.programme(cohort.programme_id)
                assert programme is not None, "a cohort always has its programme (foreign key)"
                self.programmes[cohort.programme_id] = programme
            self.seats[cohort.id] = {s.business_id: s for s in await self.uow.store.seats(cohort.id)}
        return locked

    async def lock_one(self, cohort_id: uuid.UUID) -> Cohort:
        found = await self.lock([cohort_id])
        if not found:
            raise NotFound(f"no cohort {cohort_id}")
        return found[0]

    def programme(self, cohort_id: uuid.UUID) -> Programme:
        return self.programmes[self.cohorts[cohort_id].programme_id]

    def seat(self, cohort_id: uuid.UUID, business_id: uuid.UUID) -> Seat | None:
        return self.seats[cohort_id].get(business_id)

    def set_cohort(self, cohort: Cohort) -> None:
        self.cohorts[cohort.id] = cohort

    # -- 2. changes that need no version yet --
    def _set_seat(self, seat: Seat) -> None:
        self.seats[seat.cohort_id][seat.business_id] = seat
        self._changed[(seat.cohort_id, seat.business_id)] = seat

    def later(self, business_id: uuid.UUID, make: MakeEvent, cause: Cause | None = None) -> None:
        """An event of the business, emitted with its next version once the participants are locked."""
        self._pending.append((business_id, make, cause))

    def withdraw(self, seat: Seat, reason: str, cause: Cause | None = None) -> None:
        """The seat (already checked by the domain) ends as withdrawn; TraineeWithdrew follows."""
        self._set_seat(replace(seat, status="withdrawn", withdraw_reason=reason, changed_at=self.now))
        self.later(seat.business_id, lambda v, s=seat: events.Withdrew(s.business_id, v, s.cohort_id, reason), cause)

    def leave_halal_cohorts(self, business_id: uuid.UUID, cause: Cause | None = None) -> list[uuid.UUID]:
        """A business found unable to self-declare leaves the locked halal cohorts not yet begun, and the waitlists of
        those running, whose next free seat would have gone to it (withdrawn by the programme, as "officer");
        returns those cohorts. A trainee already in a running cohort finishes it."""
        left = []
        for cohort_id, cohort in self.cohorts.items():
            seat = self.seat(cohort_id, business_id)
            if (halal_programme(self.programme(cohort_id)) and seat is not None
                    and (seat.status == "waitlisted" or (cohort.state == "open" and seat.status in ACTIVE))):  # fmt: skip
                self.withdraw(seat, "officer", cause)
                left.append(cohort_id)
        return left

    def end_seat(self, seat: Seat, status: str) -> None:
        """completed, not_completed or released: the events, if any, are the caller's."""
        self._set_seat(replace(seat, status=status, changed_at=self.now))

    # -- 3. prospects --
    def room(self, cohort_id: uuid.UUID) -> int:
        """Free seats plus free waitlist places, as the seats are now."""
        cohort, seats = self.cohorts[cohort_id], self.seats[cohort_id].values()
        enrolled = sum(s.status == "enrolled" for s in seats)
        queued = sum(s.status == "waitlisted" for s in seats)
        bound = waitlist_bound(cohort.capacity, self.deps.waitlist_per_seat)
        return max(0, cohort.capacity - enrolled) + max(0, bound - queued)

    async def gather(self) -> None:
        # On a view still reading history the seats would go to the neediest of the businesses read so far, as they
        # were: the waitlist still moves up, and the open cohorts are filled once the view has caught up (each
        # business read of is settled then, and prospects are gathered from the whole view).
        if await self.uow.store.view_catching_up():
            return
        for cohort_id, cohort in self.cohorts.items():
            room = self.room(cohort_id)
            if cohort.state == "open" and room > 0:
                self.prospects[cohort_id] = await self.uow.store.prospects(cohort, self.programme(cohort_id),
                                                                            room + PROSPECT_MARGIN)  # fmt: skip

    # -- 4. participants --
    async def lock_participants(self, also: Iterable[uuid.UUID] = ()) -> events.Versions:
        assert self.versions is None, "participants are locked once per unit of work, in one statement"
        ids = set(also) | {b for b, _, _ in self._pending}
        for cohort_id, seats in self.seats.items():
            ids |= {s.business_id for s in waiting(list(seats.values()))}
            ids |= {p.business.business_id for p in self.prospects.get(cohort_id, [])}
        self.versions = events.Versions(await self.uow.store.lock_participants(ids))
        return self.versions

    # -- 5. events --
    def emit(self, business_id: uuid.UUID, make: MakeEvent) -> None:
        assert self.versions is not None, "lock the participants first"
        self.uow.emit(make(self.versions.next(business_id)))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for business_id, make, cause in pending:
            if cause is None:
                self.emit(business_id, make)
            else:
                with self.uow.caused_by(cause):
                    self.emit(business_id, make)

    async def candidates(self, cohort_id: uuid.UUID) -> list[Candidate]:
        """The gathered prospects the needs rules admit, without those that meanwhile took a seat of the same topic
        elsewhere (read again now that they are locked)."""
        cohort, programme = self.cohorts[cohort_id], self.programme(cohort_id)
        prospects = self.prospects.get(cohort_id, [])
        taken = await self.uow.store.topics_taken([p.business.business_id for p in prospects]) if prospects else {}
        # The seats this unit of work placed are not stored yet: a batch refilling two open cohorts of one topic
        # would otherwise seat the same business in both.
        for (placed_in, business_id), seat in self._changed.items():
            if seat.status in ACTIVE and placed_in in self.cohorts:
                taken.setdefault(business_id, set()).add(self.cohorts[placed_in].topic)
        found = []
        for p in prospects:
            need = need_served(programme, p.business, p.facts)
            if need is not None and cohort.topic not in taken.get(p.business.business_id, set()):
                found.append(Candidate(p.business.business_id, need, p.trained_before, p.business.registered_at))
        return found

    async def refill(self, cohort_id: uuid.UUID) -> None:
        """Promote the waitlist into free seats; while open, invite the best prospects into what is left."""
        cohort = self.cohorts[cohort_id]
        bound = waitlist_bound(cohort.capacity, self.deps.waitlist_per_seat)
        decisions = fill(cohort, list(self.seats[cohort_id].values()), await self.candidates(cohort_id), bound)
        self.apply(cohort_id, decisions)
        self.prospects.pop(cohort_id, None)

    def apply(self, cohort_id: uuid.UUID, decisions: Iterable[Decision]) -> None:
        cohort, seats = self.cohorts[cohort_id], self.seats[cohort_id]
        queue_no = next_queue_no(list(seats.values()))
        for d in decisions:
            match d:
                case Promote(business_id=b):
                    self._set_seat(replace(seats[b], status="enrolled", from_waitlist=True, changed_at=self.now))
                    self.emit(b, lambda v, b=b: events.Enrolled(b, v, cohort, True))
                case Place(candidate=c, status=status, position=position):
                    b = c.business_id
                    self._set_seat(Seat(cohort.id, b, status, c.need, queue_no if status == "waitlisted" else 0, self.now))
                    queue_no += status == "waitlisted"
                    self.emit(b, lambda v, b=b, need=c.need: events.Invited(b, v, cohort, need))
                    if status == "enrolled":
                        self.emit(b, lambda v, b=b: events.Enrolled(b, v, cohort, False))
                    else:
                        self.emit(b, lambda v, b=b, p=position: events.Waitlisted(b, v, cohort, p))

    # -- 6. writing it all --
    async def save(self) -> None:
        assert not self._pending, "every pending event is flushed before saving"
        await self.uow.store.save_seats(list(self._changed.values()))
        for cohort_id, cohort in self.cohorts.items():
            seats = self.seats[cohort_id].values()
            counted = replace(cohort, enrolled=sum(s.status == "enrolled" for s in seats),
                              waitlisted=sum(s.status == "waitlisted" for s in seats))  # fmt: skip
            self.cohorts[cohort_id] = counted
            await self.uow.store.save_cohort(counted)
        if self.versions is not None:
            await self.uow.store.save_participants(self.versions.changed())
        self._changed = {}

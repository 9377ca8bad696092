"""Training's use cases for programmes and cohorts: define, plan, open, start, complete, cancel; enrol by hand.

Each runs in one unit of work; every change to a cohort's seats happens with the cohort locked (see seating.py for
the lock order). The other use cases have modules of their own: business_changes.py (what registry and funding
tell), attendance_records.py (attendance and assessments), mentoring.py and halal_pathway.py.

Every handler has the shape of every handler in Berdaya: `async def handle(message, uow, deps)`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

from services.training.domain import attendance as rules
from services.training.domain import cohorts as cohort_rules
from services.training.domain import enrolment, events
from services.training.domain.cohorts import Cohort, CohortChanges, CohortForm
from services.training.domain.enrolment import Candidate, Seat
from services.training.domain.mentors import Assignment, assign_all
from services.training.domain.needs import halal_programme, halal_self_declare_possible, missing_prerequisites
from services.training.domain.programmes import Programme, ProgrammeForm, new_programme
from services.training.domain.view import BusinessView
from services.training.seating import Deps, Seating
from services.training.store import TrainingUnitOfWork
from shared import idempotency
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.reference.wita import today_in_kupang

# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefineProgramme:
    form: ProgrammeForm
    by: Principal


@dataclass(frozen=True)
class PlanCohort:
    form: CohortForm
    by: Principal
    # The client's Idempotency-Key: the same cohort sent again under it gets the cohort planned the first time.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ChangeCohort:
    cohort_id: uuid.UUID
    changes: CohortChanges
    by: Principal


@dataclass(frozen=True)
class MoveCohort:
    """open, running (start), completed or cancelled."""

    cohort_id: uuid.UUID
    to: str
    by: Principal


@dataclass(frozen=True)
class EnrolByHand:
    cohort_id: uuid.UUID
    business_id: uuid.UUID
    by: Principal


@dataclass(frozen=True)
class Withdraw:
    cohort_id: uuid.UUID
    business_id: uuid.UUID
    reason: str  # withdrew (the business asked) | officer (the officer decided)
    by: Principal


def require_scope(by: Principal, business: BusinessView) -> None:
    """An officer whose token names kecamatan acts only for businesses there."""
    if not by.acts_in_kecamatan(business.kecamatan_code):
        raise Forbidden(f"business {business.business_id} is in {business.kecamatan_code}, outside the kecamatan your "
                        f"token allows ({', '.join(sorted(by.kecamatan_codes))}); ask an officer there")  # fmt: skip


def _unknown(business_id: uuid.UUID) -> str:
    return f"training has heard of no business {business_id} (it learns of businesses from registry events)"


async def _known(uow: TrainingUnitOfWork, business_id: uuid.UUID) -> BusinessView:
    """The business as training knows it; 404 when it doesn't."""
    found = (await uow.store.businesses([business_id])).get(business_id)
    if found is None:
        raise NotFound(_unknown(business_id))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Programmes and cohorts
# ---------------------------------------------------------------------------------------------------------------


async def define_programme(cmd: DefineProgramme, uow: TrainingUnitOfWork, deps: Deps) -> Programme:
    programme = new_programme(cmd.form, programme_id=deps.new_id(), now=deps.clock(), by=cmd.by.actor)
    async with uow:
        existing = await uow.store.add_programme(programme)
        if existing:
            raise Conflict(f"a {programme.topic} programme titled {programme.title!r} already exists", "programme_exists",
                           {"existing_programme_id": str(existing)})  # fmt: skip
        uow.emit(events.ProgrammeDefined(programme))
        await uow.commit()
    return programme


async def _mentor_exists(uow: TrainingUnitOfWork, mentor_id: uuid.UUID | None) -> None:
    if mentor_id is not None and await uow.store.mentor(mentor_id) is None:
        raise InvalidInput.one("mentor_id", "mentor.unknown", f"no mentor {mentor_id}; add them to the pool first")


async def plan_cohort(cmd: PlanCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    now = deps.clock()
    async with uow:
        cohort_id = deps.new_id()
        # Claimed first, as a pledge's key is: a form refused below rolls the claim back with it (shared.idempotency).
        if earlier := await idempotency.made_before(partial(uow.store.claim_request, "cohort"), uow.store.cohort,
                                                    cmd.by.actor, cmd.idempotency_key, cmd.form, cohort_id,
                                                    "cohort"):  # fmt: skip
            return earlier
        programme = await uow.store.programme(cmd.form.programme_id)
        if programme is None:
            raise InvalidInput.one("programme_id", "programme.unknown", f"no programme {cmd.form.programme_id}")
        await _mentor_exists(uow, cmd.form.mentor_id)
        cohort = cohort_rules.new_cohort(cmd.form, programme, deps.wilayah, cohort_id=cohort_id, now=now,
                                         by=cmd.by.actor)  # fmt: skip
        await uow.store.add_cohort(cohort)
        uow.audit("CohortPlanned", "cohort", cohort.id)
        await uow.commit()
    return cohort


async def change_cohort(cmd: ChangeCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    """Seats, venue, mentor; more seats are offered to the waitlist (and, while open, to new prospects) at once."""
    async with uow:
        await uow.store.hold_seating(alone=False)
        seating = Seating(uow, deps, deps.clock())
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        await _mentor_exists(uow, cmd.changes.mentor_id)
        seating.set_cohort(cohort_rules.change(cohort, cmd.changes, deps.wilayah))
        await seating.gather()
        await seating.lock_participants()
        await seating.refill(cohort.id)
        uow.audit("CohortChanged", "cohort", cohort.id)
        await seating.save()
        await uow.commit()
    return seating.cohorts[cohort.id]


async def move_cohort(cmd: MoveCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    match cmd.to:
        case "open":
            return await _open(cmd, uow, deps)
        case "running":
            return await _start(cmd, uow, deps)
        case "completed":
            return await _complete(cmd, uow, deps)
        case "cancelled":
            return await _cancel(cmd, uow, deps)
    raise ValueError(f"no such cohort state {cmd.to!r}")


async def _open(cmd: MoveCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    """Open: CohortOpened, and the seats offered by need to the best prospects (TraineeInvited, then
    TraineeEnrolled, or TraineeWaitlisted beyond capacity up to the waitlist's bound)."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        # Who may, and whether it can open, before a lock that holds up every seat change in the city: a refused
        # caller (another trainer, an id that is no cohort, a cohort open already) must not queue for it.
        first_look = await uow.store.cohort(cmd.cohort_id)
        if first_look is None:
            raise NotFound(f"no cohort {cmd.cohort_id}")
        cohort_rules.transition(cohort_rules.require_run_by(first_look, cmd.by), "open", now)
        # Alone, before the cohort: every batch that made a business a prospect has committed (and is gathered),
        # and every later batch sees the cohort open.
        await uow.store.hold_seating(alone=True)
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        cohort = cohort_rules.transition(cohort, "open", now)
        seating.set_cohort(cohort)
        uow.emit(events.CohortOpened(cohort))
        await seating.gather()
        await seating.lock_participants()
        await seating.refill(cohort.id)
        await seating.save()
        await uow.commit()
    return seating.cohorts[cohort.id]


async def _start(cmd: MoveCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    """Running: no more invitations by need; the waitlist still fills seats that free up."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        cohort = cohort_rules.transition(cohort, "running", now)
        seating.set_cohort(cohort)
        uow.audit("CohortStarted", "cohort", cohort.id)
        await seating.save()
        await uow.commit()
    return seating.cohorts[cohort.id]


async def _cancel(cmd: MoveCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    """Cancelled: everyone enrolled or waiting is withdrawn (cohort_cancelled), then CohortClosed."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        cohort = cohort_rules.transition(cohort, "cancelled", now)
        seats = list(seating.seats[cohort.id].values())
        enrolled = sum(s.status == "enrolled" for s in seats)
        for seat in sorted(seats, key=lambda s: str(s.business_id)):
            if seat.status in enrolment.ACTIVE:
                seating.withdraw(seat, "cohort_cancelled")
        seating.set_cohort(cohort)
        await seating.lock_participants()
        seating.flush()
        uow.emit(events.CohortClosed(cohort, enrolled, 0))
        await seating.save()
        await uow.commit()
    return seating.cohorts[cohort.id]


async def _complete(cmd: MoveCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    """Completed: each enrolled trainee who meets the completion rule completes (TrainingCompleted with the
    attendance and the assessment) and gets a mentor if they have none (MentorAssigned); the waitlist is released;
    CohortClosed. Refused (409) while a trainee who attended enough has no assessment the programme gives."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        cohort = cohort_rules.require_run_by(await seating.lock_one(cmd.cohort_id), cmd.by)
        cohort = cohort_rules.transition(cohort, "completed", now)
        programme = seating.programme(cohort.id)
        seats = sorted(seating.seats[cohort.id].values(), key=lambda s: str(s.business_id))
        enrolled = [s for s in seats if s.status == "enrolled"]
        marks, assessed = await uow.store.marks(cohort.id), await uow.store.assessments(cohort.id)
        outcomes = {s.business_id: rules.outcome(len(cohort.sessions), programme.required_attendance_percent,
                                                 programme.gives_assessment, marks.get(s.business_id, {}),
                                                 assessed.get(s.business_id)) for s in enrolled}  # fmt: skip
        missing = [str(b) for b, o in outcomes.items() if o.missing_assessment]
        if missing:
            raise Conflict(f"{len(missing)} trainee(s) attended enough but have no assessment; record it first",
                           "assessments_missing", {"business_ids": missing[:50]})  # fmt: skip
        graduates = [b for b, o in outcomes.items() if o.completed]
        # Mentors locked before the assignments are read: every unit of work that assigns holds these locks.
        mentors = await uow.store.lock_mentors() if graduates else []
        views = await uow.store.businesses(graduates)
        if any(b not in views for b in graduates) and await uow.store.view_catching_up():
            # Mentors are matched on the view: completed now, the graduates it has not read again would get none.
            raise Conflict(f"training's view of businesses is being rebuilt (`berdaya replay training-view`), and "
                           f"{sum(b not in views for b in graduates)} graduate(s) of this cohort are not in it yet; "
                           "complete the cohort again in a few minutes", "view_rebuilding")  # fmt: skip
        unassigned = [views[b] for b in graduates if b in views and await uow.store.assignment(b) is None]
        chosen, _ = assign_all(mentors, unassigned, cohort.mentor_id)
        await seating.lock_participants(also=graduates)
        completed_on = today_in_kupang(now)
        for seat in enrolled:
            b, result = seat.business_id, outcomes[seat.business_id]
            seating.end_seat(seat, "completed" if result.completed else "not_completed")
            if result.completed:
                seating.emit(b, lambda v, b=b, r=result: events.Completed(b, v, cohort, completed_on, r.attendance_percent,
                                                                          assessed.get(b)))  # fmt: skip
            if b in chosen:
                seating.emit(b, lambda v, b=b: events.MentorAssigned(b, v, chosen[b], cohort.id, now))
        await uow.store.add_assignments([Assignment(b, m, cohort.id, now) for b, m in chosen.items()])
        for seat in seats:
            if seat.status == "waitlisted":
                seating.end_seat(seat, "released")  # they stay candidates for the programme's next cohort
        seating.set_cohort(cohort)
        uow.emit(events.CohortClosed(cohort, len(enrolled), len(graduates)))
        await seating.save()
        await uow.commit()
    return seating.cohorts[cohort.id]


# ---------------------------------------------------------------------------------------------------------------
# Enrolment by hand
# ---------------------------------------------------------------------------------------------------------------


async def enrol_by_hand(cmd: EnrolByHand, uow: TrainingUnitOfWork, deps: Deps) -> Seat:
    """An officer enrols a business (of their kecamatan, if their token names any): a free seat is needed; one on the
    waitlist is promoted; the programme's prerequisites hold; never a second cohort of one topic at a time."""
    now = deps.clock()
    async with uow:
        await uow.store.hold_seating(alone=False)  # before the business is read (see TrainingStore.hold_seating)
        prospect = await uow.store.prospect(cmd.business_id)
        if prospect is None:
            raise InvalidInput.one("business_id", "business.unknown", _unknown(cmd.business_id))
        business = prospect.business
        require_scope(cmd.by, business)
        seating = Seating(uow, deps, now)
        cohort = await seating.lock_one(cmd.cohort_id)
        programme = seating.programme(cohort.id)
        if not business.active:
            raise Conflict(f"business {business.business_id} is closed", "business_closed")
        missing = list(missing_prerequisites(programme, business))
        if missing:
            raise Conflict(f"the programme requires an NIB, and business {business.business_id} has none (NIB status "
                           f"{business.nib_status})", "prerequisite_missing", {"missing": missing})  # fmt: skip
        if halal_programme(programme) and not halal_self_declare_possible(business, prospect.facts):
            raise Conflict(f"business {business.business_id} can't self-declare halal; it is not put in a halal cohort",
                           "halal_not_eligible")  # fmt: skip
        seat = seating.seat(cohort.id, business.business_id)
        candidate = Candidate(business.business_id, "officer", prospect.trained_before, business.registered_at)
        decision = enrolment.enrol_by_hand(cohort, seat, candidate)
        await seating.lock_participants(also=[business.business_id])
        if isinstance(decision, enrolment.Place):
            taken = (await uow.store.topics_taken([business.business_id])).get(business.business_id, set())
            if cohort.topic in taken:
                raise Conflict(f"business {business.business_id} already has a {cohort.topic} training (enrolled, "
                               "waiting or completed)", "topic_taken", {"topic": cohort.topic})  # fmt: skip
        seating.apply(cohort.id, [decision])
        await seating.save()
        await uow.commit()
    return seating.seats[cohort.id][business.business_id]


async def withdraw(cmd: Withdraw, uow: TrainingUnitOfWork, deps: Deps) -> Seat:
    """The business leaves (or the officer takes it out): TraineeWithdrew, and the seat goes to the first on the
    waitlist (and, while the cohort is open, the waitlist's room to the next prospect)."""
    now = deps.clock()
    async with uow:
        await uow.store.hold_seating(alone=False)
        business = (await uow.store.businesses([cmd.business_id])).get(cmd.business_id)
        if business is not None:
            require_scope(cmd.by, business)
        elif cmd.by.limited_to_kecamatan:
            raise Forbidden(f"training doesn't know where business {cmd.business_id} is; ask a city-wide officer")
        seating = Seating(uow, deps, now)
        cohort = await seating.lock_one(cmd.cohort_id)
        seating.withdraw(enrolment.require_seated(cohort, seating.seat(cohort.id, cmd.business_id), cmd.business_id),
                         cmd.reason)  # fmt: skip
        await seating.gather()
        await seating.lock_participants()
        seating.flush()
        await seating.refill(cohort.id)
        await seating.save()
        await uow.commit()
    return seating.seats[cohort.id][cmd.business_id]

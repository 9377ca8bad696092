"""Training's use cases: keep the view of businesses, define programmes, run cohorts from planning to completion,
enrol by need and by hand, record attendance and assessments, mentor, and follow the halal pathway. Each runs in one
unit of work; every change to a cohort's seats happens with the cohort locked (see seating.py for the lock order).

Every handler has the shape of every handler in Berdaya: `async def handle(message, uow, deps)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from services.training.domain import attendance as rules
from services.training.domain import cohorts as cohort_rules
from services.training.domain import enrolment, events, pathway as halal
from services.training.domain.attendance import AssessmentForm, AttendanceForm
from services.training.domain.cohorts import Cohort, CohortChanges, CohortForm
from services.training.domain.enrolment import Candidate, Seat
from services.training.domain.mentors import Assignment, Mentor, MentorForm, VisitForm, assign_all
from services.training.domain.needs import (
    cannot_self_declare,
    halal_programme,
    halal_self_declare_possible,
    missing_prerequisites,
    needs_of,
)
from services.training.domain.pathway import NotEligibleForm, Pathway, StepForm
from services.training.domain.programmes import Programme, ProgrammeForm, new_programme
from services.training.domain.view import BusinessView, updated_view
from services.training.seating import Deps, Seating
from services.training.store import Mark, TrainingUnitOfWork
from shared.auth import Principal
from shared.contracts.funding import FundingAccepted
from shared.contracts.registry import BusinessEvent
from shared.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from shared.messaging.consumer import Delivery
from shared.reference.wita import WITA, today_in_kupang
from shared.unit_of_work import Cause

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


@dataclass(frozen=True)
class RecordAttendance:
    cohort_id: uuid.UUID
    session: int
    form: AttendanceForm
    by: Principal


@dataclass(frozen=True)
class RecordAssessments:
    cohort_id: uuid.UUID
    form: AssessmentForm
    by: Principal


@dataclass(frozen=True)
class AddMentor:
    form: MentorForm
    by: Principal


@dataclass(frozen=True)
class RecordVisit:
    business_id: uuid.UUID
    form: VisitForm
    by: Principal


@dataclass(frozen=True)
class EndMentoring:
    business_id: uuid.UUID
    by: Principal


@dataclass(frozen=True)
class RecordStep:
    business_id: uuid.UUID
    form: StepForm
    by: Principal


@dataclass(frozen=True)
class RecordNotEligible:
    business_id: uuid.UUID
    form: NotEligibleForm
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
# The view of businesses, and what funding tells
# ---------------------------------------------------------------------------------------------------------------


async def apply_registry_events(batch: Sequence[Delivery], uow: TrainingUnitOfWork, deps: Deps) -> None:
    """A batch of registry events: the view rows locked in id order and each event applied in turn (older versions
    change nothing); then, for the businesses whose facts changed, a closed business gives up its seats, a medium
    food business is recorded as unable to self-declare, and open cohorts serving their needs are filled."""
    now = deps.clock()
    async with uow:
        views = await uow.store.lock_views([d.payload.business_id for d in batch])  # type: ignore[attr-defined]
        changed: dict[uuid.UUID, Cause] = {}
        for delivery in batch:
            event: BusinessEvent = delivery.payload  # type: ignore[assignment]
            view = updated_view(views.get(event.business_id), event)
            if view is not None:
                views[event.business_id] = view
                await uow.store.save_view(view)
                changed[event.business_id] = Cause.delivery(delivery)
        await _business_changed({b: views[b] for b in changed}, changed, uow, deps, now)
        await uow.commit()


async def apply_funding_events(batch: Sequence[Delivery], uow: TrainingUnitOfWork, deps: Deps) -> None:
    """A batch of FundingAccepted: recorded in training's own table (even for a business training has not heard of
    yet), then open cohorts serving the businesses' new need (bookkeeping) are filled."""
    now = deps.clock()
    async with uow:
        changed: dict[uuid.UUID, Cause] = {}
        for delivery in batch:
            event: FundingAccepted = delivery.payload  # type: ignore[assignment]
            if await uow.store.add_funding_accepted(event.business_id, event.offer_id, event.pledge_id, event.accepted_at):
                changed[event.business_id] = Cause.delivery(delivery)
        views = await uow.store.businesses(changed)
        await _business_changed(views, {b: c for b, c in changed.items() if b in views}, uow, deps, now)
        await uow.commit()


async def _business_changed(views: dict[uuid.UUID, BusinessView], causes: dict[uuid.UUID, Cause],
                            uow: TrainingUnitOfWork, deps: Deps, now: datetime) -> None:  # fmt: skip
    if not views:
        return
    closed = [b for b, v in views.items() if not v.active]
    facts = await uow.store.facts(views)
    needs = {n for b, v in views.items() for n in needs_of(v, facts[b])}
    to_mark = sorted((b for b, v in views.items() if v.active and cannot_self_declare(v)
                      and facts[b].halal_not_eligible is None), key=str)  # fmt: skip
    # A first look: cohorts with no room gain it only by a withdrawal or more seats, which refill them themselves.
    holding = await uow.store.cohorts_holding(closed) if closed else []
    wanting = []
    for cohort_id in await uow.store.open_cohorts_for(needs) if needs else []:
        cohort = await uow.store.cohort(cohort_id)
        if cohort is not None and cohort.free_seats + max(0, _bound(cohort, deps) - cohort.waitlisted) > 0:
            wanting.append(cohort_id)
    seating = Seating(uow, deps, now)
    await seating.lock({*holding, *wanting})
    trigger: dict[uuid.UUID, Cause] = {}
    for cohort_id, cohort in seating.cohorts.items():
        for business_id in closed:
            seat = seating.seat(cohort_id, business_id)
            if seat is not None and seat.status in enrolment.ACTIVE and cohort.state in cohort_rules.TAKING_TRAINEES:
                seating.withdraw(seat, "withdrew", causes[business_id])
                trigger.setdefault(cohort_id, causes[business_id])
    pathways = [await uow.store.lock_pathway(b, views[b].kecamatan_code) for b in to_mark]
    marked = [p for p in pathways if p.not_eligible is None and not p.certified]
    await seating.gather()
    await seating.lock_participants(also=[p.business_id for p in marked])
    for p in marked:
        reason = cannot_self_declare(views[p.business_id])
        assert reason is not None
        p = halal.mark_not_eligible(p, reason)
        await uow.store.save_pathway(p, causes[p.business_id].actor, now)
        seating.later(p.business_id, lambda v, p=p: events.NotEligible(p.business_id, v, p.not_eligible,  # type: ignore[arg-type]
                                                                       bool(p.regular_route_possible), p.kecamatan_code),
                      causes[p.business_id])  # fmt: skip
    seating.flush()
    first = next(iter(causes.values()))
    for cohort_id in seating.cohorts:
        with uow.caused_by(trigger.get(cohort_id, first)):
            await seating.refill(cohort_id)
    await seating.save()


def _bound(cohort: Cohort, deps: Deps) -> int:
    return enrolment.waitlist_bound(cohort.capacity, deps.waitlist_per_seat)


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
        programme = await uow.store.programme(cmd.form.programme_id)
        if programme is None:
            raise InvalidInput.one("programme_id", "programme.unknown", f"no programme {cmd.form.programme_id}")
        await _mentor_exists(uow, cmd.form.mentor_id)
        cohort = cohort_rules.new_cohort(cmd.form, programme, deps.wilayah, cohort_id=deps.new_id(), now=now,
                                         by=cmd.by.actor)  # fmt: skip
        await uow.store.add_cohort(cohort)
        uow.audit("CohortPlanned", "cohort", cohort.id)
        await uow.commit()
    return cohort


async def change_cohort(cmd: ChangeCohort, uow: TrainingUnitOfWork, deps: Deps) -> Cohort:
    """Seats, venue, mentor; more seats are offered to the waitlist (and, while open, to new prospects) at once."""
    async with uow:
        seating = Seating(uow, deps, deps.clock())
        cohort = await seating.lock_one(cmd.cohort_id)
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
        cohort = cohort_rules.transition(await seating.lock_one(cmd.cohort_id), "open", now)
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
        cohort = cohort_rules.transition(await seating.lock_one(cmd.cohort_id), "running", now)
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
        cohort = cohort_rules.transition(await seating.lock_one(cmd.cohort_id), "cancelled", now)
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
        cohort = cohort_rules.transition(await seating.lock_one(cmd.cohort_id), "completed", now)
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
        business = (await uow.store.businesses([cmd.business_id])).get(cmd.business_id)
        if business is not None:
            require_scope(cmd.by, business)
        elif cmd.by.kecamatan_codes and "admin" not in cmd.by.roles:
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


# ---------------------------------------------------------------------------------------------------------------
# Attendance and assessment
# ---------------------------------------------------------------------------------------------------------------


def _enrolled_only(seating: Seating, cohort: Cohort, ids: Sequence[uuid.UUID]) -> None:
    errors = []
    for i, business_id in enumerate(ids):
        seat = seating.seat(cohort.id, business_id)
        if seat is None or seat.status != "enrolled":
            status = seat.status if seat else "not in the cohort"
            errors.append(FieldError(f"records.{i}.business_id", "trainee.not_enrolled",
                                     f"business {business_id} is {status}, not enrolled in cohort {cohort.id}"))  # fmt: skip
    if len(set(ids)) != len(ids):
        errors.append(FieldError("records", "records.duplicate", "name each business once"))
    if errors:
        raise InvalidInput(errors)


async def record_attendance(cmd: RecordAttendance, uow: TrainingUnitOfWork, deps: Deps) -> list[Seat]:
    """Marks for one session of a running cohort (AttendanceRecorded for each mark that changed); a trainee absent
    without excuse from the first session is a no-show, withdrawn, and the waitlist promoted."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        cohort = await seating.lock_one(cmd.cohort_id)
        cohort_rules.require_state(cohort, "running", "attendance is recorded")
        session = cohort.session(cmd.session)
        if session is None:
            raise NotFound(f"cohort {cohort.id} has sessions 1 to {len(cohort.sessions)}, not {cmd.session}")
        if session.starts_at > now:
            raise Conflict(f"session {cmd.session} starts {session.starts_at.astimezone(WITA):%Y-%m-%d %H:%M} WITA; "
                           "attendance is recorded once it has begun", "session_not_started")  # fmt: skip
        records = cmd.form.records
        _enrolled_only(seating, cohort, [r.business_id for r in records])
        before = await uow.store.marks(cohort.id)
        await uow.store.save_marks(cohort.id, [Mark(r.business_id, cmd.session, r.attendance, r.reason) for r in records],
                                   cmd.by.actor, now)  # fmt: skip
        for r in records:
            if before.get(r.business_id, {}).get(cmd.session) != r.attendance:
                seating.later(r.business_id, lambda v, r=r: events.AttendanceMarked(r.business_id, v, cohort.id,
                                                                                    cmd.session, r.attendance))  # fmt: skip
            if rules.is_no_show(cmd.session, r.attendance):
                seating.withdraw(seating.seats[cohort.id][r.business_id], "no_show")
        await seating.gather()
        await seating.lock_participants()
        seating.flush()
        await seating.refill(cohort.id)
        await seating.save()
        await uow.commit()
    return [seating.seats[cohort.id][r.business_id] for r in records]


async def record_assessments(cmd: RecordAssessments, uow: TrainingUnitOfWork, deps: Deps) -> None:
    """The trainer's scores for enrolled trainees of a running cohort; they travel in TrainingCompleted."""
    now = deps.clock()
    async with uow:
        seating = Seating(uow, deps, now)
        cohort = await seating.lock_one(cmd.cohort_id)
        cohort_rules.require_state(cohort, "running", "assessments are recorded")
        if not seating.programme(cohort.id).gives_assessment:
            raise Conflict(f"the programme of cohort {cohort.id} gives no assessment", "no_assessment")
        _enrolled_only(seating, cohort, [r.business_id for r in cmd.form.records])
        await uow.store.save_assessments(cohort.id, {r.business_id: r.assessment() for r in cmd.form.records},
                                         cmd.by.actor, now)  # fmt: skip
        for r in cmd.form.records:
            uow.audit("AssessmentRecorded", "participant", r.business_id)
        await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# Mentors
# ---------------------------------------------------------------------------------------------------------------


async def add_mentor(cmd: AddMentor, uow: TrainingUnitOfWork, deps: Deps) -> Mentor:
    codes = []
    for i, text in enumerate(cmd.form.kecamatan):
        codes.append(cohort_rules.kecamatan_code(text, deps.wilayah, f"kecamatan.{i}"))
    mentor = Mentor(deps.new_id(), cmd.form.name, cmd.form.organisation, tuple(cmd.form.kbli_prefixes),
                    tuple(sorted({c for c in codes if c})), cmd.form.max_load, True)  # fmt: skip
    async with uow:
        await uow.store.add_mentor(mentor, cmd.by.actor, deps.clock())
        uow.audit("MentorAdded", "mentor", mentor.id)
        await uow.commit()
    return mentor


async def record_visit(cmd: RecordVisit, uow: TrainingUnitOfWork, deps: Deps) -> Assignment:
    """A mentoring visit after training, by the business's mentor (MentoringVisitRecorded)."""
    now = deps.clock()
    today = today_in_kupang(now)
    async with uow:
        assignment = await uow.store.assignment(cmd.business_id)
        if assignment is None:
            raise Conflict(f"business {cmd.business_id} has no mentor; one is assigned when it completes a training",
                           "no_mentor")  # fmt: skip
        completed = await uow.store.last_completion(cmd.business_id)
        if cmd.form.visited_on > today:
            raise InvalidInput.one("visited_on", "visit.future", f"{cmd.form.visited_on.isoformat()} is after today")
        if completed is not None and cmd.form.visited_on < completed:
            raise InvalidInput.one("visited_on", "visit.before_training",
                                   f"the training ended on {completed.isoformat()}; mentoring follows it")  # fmt: skip
        versions = events.Versions(await uow.store.lock_participants([cmd.business_id]))
        await uow.store.add_visit(cmd.business_id, assignment.mentor_id, cmd.form.visited_on, cmd.form.notes,
                                  cmd.by.actor, now)  # fmt: skip
        uow.emit(events.VisitRecorded(cmd.business_id, versions.next(cmd.business_id), assignment.mentor_id,
                                      cmd.form.visited_on))  # fmt: skip
        await uow.store.save_participants(versions.changed())
        await uow.commit()
    return assignment


async def end_mentoring(cmd: EndMentoring, uow: TrainingUnitOfWork, deps: Deps) -> None:
    """The mentoring of a business ends; its mentor has room for another."""
    async with uow:
        if not await uow.store.end_assignment(cmd.business_id, deps.clock()):
            raise NotFound(f"business {cmd.business_id} has no mentor")
        uow.audit("MentoringEnded", "participant", cmd.business_id)
        await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# The halal pathway
# ---------------------------------------------------------------------------------------------------------------


async def record_step(cmd: RecordStep, uow: TrainingUnitOfWork, deps: Deps) -> Pathway:
    """The next step of the business's pathway, with its date (PathwayStepRecorded); steps in order."""
    now = deps.clock()
    async with uow:
        business = await _known(uow, cmd.business_id)
        require_scope(cmd.by, business)
        halal.require_self_declare_possible(business)
        current = await uow.store.lock_pathway(business.business_id, business.kecamatan_code)
        pathway = halal.record_step(replace(current, kecamatan_code=business.kecamatan_code), cmd.form.step,
                                    cmd.form.done_on, today_in_kupang(now))  # fmt: skip
        versions = events.Versions(await uow.store.lock_participants([business.business_id]))
        uow.emit(events.StepRecorded(business.business_id, versions.next(business.business_id), cmd.form.step,
                                     cmd.form.done_on, business.kecamatan_code))  # fmt: skip
        await uow.store.save_pathway(pathway, cmd.by.actor, now)
        await uow.store.save_participants(versions.changed())
        await uow.commit()
    return pathway


async def record_not_eligible(cmd: RecordNotEligible, uow: TrainingUnitOfWork, deps: Deps) -> Pathway:
    """The business can't self-declare (pork, slaughtered meat without a certified abattoir, another reason):
    PathwayNotEligible says whether the regular route is open, and it leaves the halal cohorts that have not begun."""
    now = deps.clock()
    async with uow:
        business = await _known(uow, cmd.business_id)
        require_scope(cmd.by, business)
        seating = Seating(uow, deps, now)
        await seating.lock(await uow.store.cohorts_holding([business.business_id]))
        current = await uow.store.lock_pathway(business.business_id, business.kecamatan_code)
        pathway = halal.mark_not_eligible(replace(current, kecamatan_code=business.kecamatan_code), cmd.form.reason,
                                          cmd.form.note)  # fmt: skip
        await uow.store.save_pathway(pathway, cmd.by.actor, now)
        seating.later(business.business_id, lambda v: events.NotEligible(
            business.business_id, v, cmd.form.reason, bool(pathway.regular_route_possible), business.kecamatan_code))  # fmt: skip
        for cohort_id, cohort in seating.cohorts.items():
            seat = seating.seat(cohort_id, business.business_id)
            if (cohort.state == "open" and halal_programme(seating.programme(cohort_id)) and seat is not None
                    and seat.status in enrolment.ACTIVE):  # fmt: skip
                seating.withdraw(seat, "officer")
        await seating.gather()
        await seating.lock_participants()
        seating.flush()
        for cohort_id in seating.cohorts:
            await seating.refill(cohort_id)
        await seating.save()
        await uow.commit()
    return pathway


async def flag_stalled_pathways(uow_factory: Callable[[], TrainingUnitOfWork], deps: Deps) -> int:
    """PathwayStalled, once per stall, for every pathway whose next step is overdue. Each batch locks its rows and
    skips those another process holds, so two processes never report one stall twice."""
    limits = halal.stall_limits(deps.stall_days)
    reported = 0
    while True:
        before = reported
        now = deps.clock()
        today = today_in_kupang(now)
        async with uow_factory() as uow:
            due = await uow.store.lock_due_stalls(limits, today, deps.stall_batch)
            versions = events.Versions(await uow.store.lock_participants([p.business_id for p in due]))
            for p in due:
                found = halal.stall(p, today, limits)
                if found is None:
                    continue
                uow.emit(events.Stalled(p.business_id, versions.next(p.business_id), found, p.kecamatan_code))
                await uow.store.save_pathway(replace(p, stalled_for=found.waiting_for), uow.cause.actor, now)
                reported += 1
            await uow.store.save_participants(versions.changed())
            await uow.commit()
        if len(due) < deps.stall_batch or reported == before:
            return reported  # nothing more is due (or nothing due could be reported: never loop on it)

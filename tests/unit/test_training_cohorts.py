"""Programmes and cohorts: the forms, sessions in WITA inside the cohort's dates, the state machine, and capacity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.training import attendance_records, handlers
from services.training.domain.attendance import AssessmentForm, AttendanceForm
from services.training.domain.cohorts import TRANSITIONS, CohortChanges, transition
from services.training.domain.programmes import ProgrammeForm
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound

from .training_fakes import TRAINER, TrainingWorld, cohort_form, programme_form, sessions

STATES = ("planned", "open", "running", "completed", "cancelled")


def fields_of(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in error.errors()}


def test_a_programme_needs_bounded_fields_and_defaults_to_eighty_percent_attendance():
    form = programme_form()
    assert form.required_attendance_percent == 80 and form.gives_assessment
    with pytest.raises(ValidationError) as bad:
        ProgrammeForm.model_validate({"topic": "Halal!", "title": "x", "needs": ["officer"], "sessions": 0, "hours": 0,
                                      "required_attendance_percent": 101})  # fmt: skip
    assert {"topic", "title", "needs.0", "sessions", "required_attendance_percent"} <= fields_of(bad.value)


def test_a_programme_names_each_need_once_and_has_at_least_an_hour_a_session():
    with pytest.raises(ValidationError) as bad:
        programme_form(needs=["no_nib", "no_nib"], sessions=5, hours=4)
    assert fields_of(bad.value) == {"needs", "hours"}


async def test_defining_the_same_programme_twice_is_a_conflict_naming_the_first():
    world = TrainingWorld()
    first = await world.programme()
    with pytest.raises(Conflict) as again:
        await world.programme()
    assert again.value.details == {"existing_programme_id": str(first.id)}


async def test_session_times_without_an_offset_are_wita_and_are_kept_in_utc():
    world = TrainingWorld()
    programme = await world.programme(sessions=2, hours=6)
    body = sessions(datetime(2026, 4, 6).date(), 2)
    body[1] = {"starts_at": "2026-04-13T10:00:00+09:00", "ends_at": "2026-04-13T12:00:00+09:00"}  # WIT, given
    cohort = await world.cohort(programme, sessions=body, ends_on="2026-04-13")
    assert cohort.sessions[0].starts_at == datetime(2026, 4, 6, 1, 0, tzinfo=UTC)  # 09.00 WITA
    assert cohort.sessions[1].starts_at == datetime(2026, 4, 13, 1, 0, tzinfo=UTC)  # 10.00 WIT
    assert cohort.kecamatan_code == "53.71.05" and cohort.state == "planned"


async def test_a_session_outside_the_cohorts_dates_is_refused_naming_the_field():
    world = TrainingWorld()
    programme = await world.programme(sessions=2, hours=6)
    body = sessions(datetime(2026, 4, 6).date(), 2)
    body[1]["ends_at"] = "2026-04-14T00:30:00"  # half an hour after the last day ends, WITA
    with pytest.raises(InvalidInput) as refused:
        await world.cohort(programme, sessions=body, ends_on="2026-04-13")
    assert [e.field for e in refused.value.errors] == ["sessions.1.ends_at"]
    assert refused.value.errors[0].code == "cohort.session_outside_dates"


async def test_a_session_at_the_last_minute_of_the_last_day_in_wita_is_inside():
    world = TrainingWorld()
    programme = await world.programme(sessions=1, hours=2)
    body = [{"starts_at": "2026-04-06T21:00:00", "ends_at": "2026-04-06T23:59:00"}]  # after 16.00 UTC: next day in UTC
    cohort = await world.cohort(programme, sessions=body, ends_on="2026-04-06")
    assert cohort.ends_at == datetime(2026, 4, 6, 15, 59, tzinfo=UTC)


async def test_a_cohort_has_as_many_sessions_as_its_programme_and_they_do_not_overlap():
    world = TrainingWorld()
    programme = await world.programme(sessions=3, hours=9)
    body = sessions(datetime(2026, 4, 6).date(), 2)
    body.append({"starts_at": "2026-04-13T10:00:00", "ends_at": "2026-04-13T11:00:00"})  # inside session 2
    with pytest.raises(InvalidInput) as refused:
        await world.cohort(programme, sessions=body, ends_on="2026-04-20")
    assert {e.field for e in refused.value.errors} == {"sessions.2.starts_at"}
    with pytest.raises(InvalidInput) as short:
        await world.cohort(programme, sessions=body[:2], ends_on="2026-04-20")
    assert {e.field for e in short.value.errors} == {"sessions"}


def test_a_cohort_form_refuses_ends_before_starts_far_dates_and_too_many_seats():
    with pytest.raises(ValidationError) as bad:
        cohort_form(uuid.uuid4(), capacity=501, ends_on="2026-04-01")
    assert fields_of(bad.value) == {"capacity", "ends_on"}
    with pytest.raises(ValidationError) as far:
        cohort_form(uuid.uuid4(), starts_on="0001-01-01", sessions=[{"starts_at": "0001-01-01T00:00:00",
                                                                     "ends_at": "9999-12-31T23:59:59"}])  # fmt: skip
    assert {"starts_on", "sessions.0.starts_at", "sessions.0.ends_at"} <= fields_of(far.value)
    with pytest.raises(ValidationError) as backwards:
        cohort_form(uuid.uuid4(), sessions=[{"starts_at": "2026-04-06T12:00:00", "ends_at": "2026-04-06T09:00:00"}])
    assert fields_of(backwards.value) == {"sessions.0.ends_at"}


async def test_an_unknown_venue_kecamatan_or_programme_or_mentor_is_named():
    world = TrainingWorld()
    programme = await world.programme()
    with pytest.raises(InvalidInput) as refused:
        await world.cohort(programme, kecamatan="Atlantis")
    assert refused.value.errors[0].field == "kecamatan"
    with pytest.raises(InvalidInput) as no_programme:
        await handlers.plan_cohort(handlers.PlanCohort(cohort_form(uuid.uuid4()), TRAINER), world.uow(), world.deps)
    assert no_programme.value.errors[0].field == "programme_id"
    with pytest.raises(InvalidInput) as no_mentor:
        await world.cohort(programme, mentor_id=str(uuid.uuid4()))
    assert no_mentor.value.errors[0].field == "mentor_id"


async def test_an_online_cohort_has_no_kecamatan():
    world = TrainingWorld()
    cohort = await world.cohort(await world.programme(), venue="online", kecamatan=None)
    assert cohort.kecamatan_code is None


@pytest.mark.parametrize("start", STATES)
@pytest.mark.parametrize("to", ("open", "running", "completed", "cancelled"))
def test_a_cohort_moves_planned_open_running_completed_or_cancelled_and_refuses_anything_else(start: str, to: str):
    from .test_training_enrolment import a_cohort

    cohort = a_cohort(state=start)
    allowed = {("planned", "open"), ("open", "running"), ("running", "completed"), ("planned", "cancelled"),
               ("open", "cancelled"), ("running", "cancelled")}  # fmt: skip
    now = datetime(2026, 4, 10, tzinfo=UTC)
    if (start, to) in allowed:
        assert transition(cohort, to, now).state == to
    else:
        with pytest.raises(Conflict) as refused:
            transition(cohort, to, now)
        assert refused.value.code == "cohort_state" and refused.value.details["state"] == start
    assert {(s, t) for t, froms in TRANSITIONS.items() for s in froms} == allowed


async def test_moving_a_cohort_the_wrong_way_through_the_handlers_says_its_state_and_changes_nothing():
    world = TrainingWorld()
    _, cohort = await world.open_cohort()
    published = len(world.published)
    with pytest.raises(Conflict) as refused:
        await world.move(cohort.id, "completed")
    assert refused.value.details == {"state": "open", "wanted": "completed"}
    assert world.store.cohorts[cohort.id].state == "open" and len(world.published) == published


async def test_the_capacity_can_not_go_below_the_enrolled_count():
    from .test_training_enrolment import handlers_change_capacity

    world = TrainingWorld()
    await world.register_many(3)
    _, cohort = await world.open_cohort(capacity=3)
    with pytest.raises(InvalidInput) as refused:
        await handlers_change_capacity(world, cohort.id, 2)
    assert refused.value.errors[0].field == "capacity"
    assert world.store.cohorts[cohort.id].capacity == 3


async def test_a_closed_cohort_can_not_change_and_venue_and_mentor_can_change_before():
    world = TrainingWorld()
    _, cohort = await world.open_cohort()
    changed = await handlers.change_cohort(handlers.ChangeCohort(cohort.id, CohortChanges(venue="Kantor Kelurahan Fatululi",
                                           kecamatan="Oebobo"), TRAINER), world.uow(), world.deps)  # fmt: skip
    assert (changed.venue, changed.kecamatan_code) == ("Kantor Kelurahan Fatululi", "53.71.04")
    await world.move(cohort.id, "cancelled")
    with pytest.raises(Conflict):
        await handlers.change_cohort(handlers.ChangeCohort(cohort.id, CohortChanges(capacity=50), TRAINER), world.uow(),
                                     world.deps)  # fmt: skip


async def test_cancelling_a_cohort_withdraws_everyone_and_closes_it():
    world = TrainingWorld()
    ids = await world.register_many(3)
    _, cohort = await world.open_cohort(capacity=2)
    closed = await world.move(cohort.id, "cancelled")
    assert closed.state == "cancelled" and closed.enrolled == 0 and closed.waitlisted == 0
    assert {e.business_id for e in world.of_type("TraineeWithdrew")} == set(ids)
    assert {e.reason for e in world.of_type("TraineeWithdrew")} == {"cohort_cancelled"}
    [event] = world.of_type("CohortClosed")
    assert (event.outcome, event.enrolled, event.completed) == ("cancelled", 2, 0)


async def test_planning_starting_and_changing_a_cohort_are_in_the_audit_trail():
    world = TrainingWorld()
    _, cohort = await world.open_cohort()
    await world.move(cohort.id, "running")
    actions = [(a.action, a.actor) for u in world.uows for a in u.audit_entries]
    assert ("CohortPlanned", "pelatih.dinas") in actions and ("CohortStarted", "pelatih.dinas") in actions


# ---------------------------------------------------------------------------------------------------------------
# Who runs a cohort
# ---------------------------------------------------------------------------------------------------------------

ANOTHER_TRAINER = Principal("pelatih.lain", frozenset({"trainer"}))
ADMIN = Principal("admin.kota", frozenset({"admin"}))


def by_another_trainer(cohort_id: uuid.UUID, trainee: uuid.UUID) -> dict[str, Any]:
    """Every command that runs a cohort, as another trainer would send it."""
    marks = AttendanceForm.model_validate({"records": [{"business_id": str(trainee), "attendance": "absent"}]})
    scores = AssessmentForm.model_validate({"records": [{"business_id": str(trainee), "management": 0, "leadership": 0,
                                                         "business_prospects": 0}]})  # fmt: skip
    return {
        **{f"move to {to}": handlers.MoveCohort(cohort_id, to, ANOTHER_TRAINER)
           for to in ("open", "running", "completed", "cancelled")},
        "change": handlers.ChangeCohort(cohort_id, CohortChanges(capacity=1), ANOTHER_TRAINER),
        "attendance": attendance_records.RecordAttendance(cohort_id, 1, marks, ANOTHER_TRAINER),
        "assessments": attendance_records.RecordAssessments(cohort_id, scores, ANOTHER_TRAINER),
    }  # fmt: skip


async def send(world: TrainingWorld, command: Any) -> Any:
    handler = {handlers.MoveCohort: handlers.move_cohort, handlers.ChangeCohort: handlers.change_cohort,
               attendance_records.RecordAttendance: attendance_records.record_attendance,
               attendance_records.RecordAssessments: attendance_records.record_assessments}[type(command)]  # fmt: skip
    return await handler(command, world.uow(), world.deps)


@pytest.mark.parametrize("state", ["planned", "open", "running"])
async def test_another_trainer_can_not_run_a_cohort_and_nothing_changes(state: str):
    world = TrainingWorld()
    trainee, _ = await world.register_many(2)
    programme = await world.programme()
    cohort = await world.cohort(programme, capacity=2)
    for to in {"planned": [], "open": ["open"], "running": ["open", "running"]}[state]:
        await world.move(cohort.id, to)
    world.clock.set(datetime(2026, 4, 28, 8, 0, tzinfo=UTC))
    before, published = world.store.snapshot(), len(world.published)

    for doing, command in by_another_trainer(cohort.id, trainee).items():
        with pytest.raises(Forbidden, match="run by the trainer who planned it"):
            await send(world, command)
        assert (world.store.snapshot(), len(world.published)) == (before, published), doing


async def test_opening_is_refused_before_the_city_wide_seating_lock_for_another_trainer_no_cohort_or_one_open():
    world = TrainingWorld()
    programme = await world.programme()
    planned, opened = await world.cohort(programme, capacity=2), await world.cohort(programme, capacity=2)
    await world.move(opened.id, "open")
    attempts = {
        "another trainer's cohort": (handlers.MoveCohort(planned.id, "open", ANOTHER_TRAINER), Forbidden),
        "an id that is no cohort": (handlers.MoveCohort(uuid.uuid4(), "open", TRAINER), NotFound),
        "a cohort open already": (handlers.MoveCohort(opened.id, "open", TRAINER), Conflict),
    }

    for doing, (command, refusal) in attempts.items():
        world.store.seating_log.clear()
        with pytest.raises(refusal):
            await send(world, command)
        assert world.store.seating_log == [], f"{doing}: queued for the lock every seat change in the city waits on"


async def test_an_admin_may_run_a_cohort_its_trainer_can_not():
    world = TrainingWorld()
    _, cohort = await world.open_cohort()

    cancelled = await handlers.move_cohort(handlers.MoveCohort(cohort.id, "cancelled", ADMIN), world.uow(), world.deps)

    assert cancelled.state == "cancelled"


async def test_a_cohort_sent_again_under_its_idempotency_key_is_the_cohort_planned_the_first_time():
    world = TrainingWorld()
    programme = await world.programme()
    form = cohort_form(programme.id, programme.sessions)

    first = await handlers.plan_cohort(handlers.PlanCohort(form, TRAINER, "kohort-2026-04"), world.uow(), world.deps)
    again = await handlers.plan_cohort(handlers.PlanCohort(form, TRAINER, "kohort-2026-04"), world.uow(), world.deps)
    other = await handlers.plan_cohort(handlers.PlanCohort(form, TRAINER, "kohort-2026-05"), world.uow(), world.deps)

    assert again == first and other.id != first.id
    assert list(world.store.cohorts) == [first.id, other.id]
    planned = [a.action for u in world.uows for a in u.audit_entries if a.action == "CohortPlanned"]
    assert planned == ["CohortPlanned"] * 2


async def test_another_cohort_under_a_used_key_is_a_conflict_naming_the_first_and_a_refused_one_leaves_the_key_free():
    world = TrainingWorld()
    programme = await world.programme()
    first = await handlers.plan_cohort(handlers.PlanCohort(cohort_form(programme.id, programme.sessions), TRAINER,
                                                           "kohort-1"), world.uow(), world.deps)  # fmt: skip
    with pytest.raises(Conflict) as reused:
        await handlers.plan_cohort(handlers.PlanCohort(cohort_form(programme.id, programme.sessions, capacity=9),
                                                       TRAINER, "kohort-1"), world.uow(), world.deps)  # fmt: skip
    assert reused.value.code == "idempotency_key_reused" and reused.value.details == {"cohort_id": str(first.id)}

    unknown = cohort_form(uuid.uuid4())
    with pytest.raises(InvalidInput):
        await handlers.plan_cohort(handlers.PlanCohort(unknown, TRAINER, "kohort-2"), world.uow(), world.deps)
    made = await handlers.plan_cohort(handlers.PlanCohort(cohort_form(programme.id, programme.sessions), TRAINER,
                                                          "kohort-2"), world.uow(), world.deps)  # fmt: skip
    assert made.id != first.id and len(world.store.cohorts) == 2

"""Attendance, the completion rule and the assessment (domain/attendance.py), and a cohort run to completion
through the handlers: no-shows, TrainingCompleted with the programme, attendance and assessment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.training.domain.attendance import (
    AssessmentRecord,
    AttendanceRecord,
    attendance_percent,
    is_no_show,
    outcome,
)
from shared.contracts.training import Assessment
from shared.errors import Conflict, InvalidInput, NotFound

from .training_fakes import TrainingWorld

AFTER_LAST_SESSION = datetime(2026, 4, 28, 8, 0, tzinfo=UTC)  # the four weekly sessions from 6 April are over
SCORE = Assessment(management=70, leadership=65, business_prospects=80)


def test_attendance_is_present_over_sessions_less_excused_rounded_down():
    assert attendance_percent(5, {1: "present", 2: "present", 3: "present", 4: "present", 5: "absent"}) == 80
    assert attendance_percent(5, {1: "present", 2: "present", 3: "present", 4: "present", 5: "excused"}) == 100
    assert attendance_percent(3, {1: "present", 2: "present"}) == 66  # an unrecorded session counts as absent
    assert attendance_percent(2, {1: "excused", 2: "excused"}) == 0


def test_completion_needs_the_threshold_half_the_sessions_in_person_and_the_assessment():
    four = {1: "present", 2: "present", 3: "present", 4: "absent"}
    assert outcome(4, 75, True, four, SCORE).completed
    assert not outcome(4, 80, True, four, SCORE).completed  # 75% < 80%
    missing = outcome(4, 75, True, four, None)
    assert not missing.completed and missing.missing_assessment
    assert outcome(4, 75, False, four, None).completed  # the programme gives no assessment
    excused_mostly = {1: "present", 2: "excused", 3: "excused", 4: "excused"}
    assert attendance_percent(4, excused_mostly) == 100
    assert not outcome(4, 80, False, excused_mostly, None).completed  # one session in four in person


def test_only_an_unexcused_absence_from_the_first_session_is_a_no_show():
    assert is_no_show(1, "absent")
    assert not is_no_show(1, "excused") and not is_no_show(2, "absent") and not is_no_show(1, "present")


def test_an_assessment_outside_zero_to_a_hundred_is_refused_naming_the_field():
    for field, value in (("management", 101), ("leadership", -1), ("business_prospects", 1000)):
        body = {"business_id": str(uuid.uuid4()), "management": 50, "leadership": 50, "business_prospects": 50, field: value}
        with pytest.raises(ValidationError) as bad:
            AssessmentRecord.model_validate(body)
        assert [e["loc"] for e in bad.value.errors()] == [(field,)]
    edge = AssessmentRecord.model_validate({"business_id": str(uuid.uuid4()), "management": 0, "leadership": 100,
                                            "business_prospects": 0})  # fmt: skip
    assert edge.assessment() == Assessment(management=0, leadership=100, business_prospects=0)


def test_an_excused_absence_needs_its_reason_named_as_the_reason_field():
    with pytest.raises(ValidationError) as bad:
        AttendanceRecord.model_validate({"business_id": str(uuid.uuid4()), "attendance": "excused"})
    assert [e["loc"] for e in bad.value.errors()] == [("reason",)]
    assert AttendanceRecord.model_validate({"business_id": str(uuid.uuid4()), "attendance": "excused",
                                            "reason": "anak sakit"}).reason == "anak sakit"  # fmt: skip


async def running(world: TrainingWorld, n: int = 3, capacity: int = 3, **programme):  # noqa: ANN003, ANN201
    ids = await world.register_many(n)
    p, cohort = await world.open_cohort(capacity=capacity, **programme)
    await world.move(cohort.id, "running")
    world.clock.set(AFTER_LAST_SESSION)
    return p, cohort, ids


async def test_a_cohort_run_to_completion_publishes_training_completed_with_programme_attendance_and_assessment():
    world = TrainingWorld()
    programme, cohort, (a, b, c) = await running(world)
    for session in (1, 2, 3, 4):
        await world.attend(cohort.id, session, {a: "present", b: "present" if session < 4 else "excused",
                                                c: "present" if session < 3 else "absent"}, {b: "pergi ke pasar"})  # fmt: skip
    await world.assess(cohort.id, {a: (70, 65, 80), b: (90, 90, 90), c: (40, 40, 40)})
    closed = await world.move(cohort.id, "completed")
    done = {e.business_id: e for e in world.of_type("TrainingCompleted")}
    assert set(done) == {a, b}  # c attended 2 of 4: 50%
    assert done[a].assessment == SCORE and done[a].attendance_percent == 100
    assert done[b].attendance_percent == 100  # the excused session is left out
    assert (done[a].topic, done[a].programme_id, done[a].title) == (programme.topic, programme.id, programme.title)
    assert done[a].completed_on.isoformat() == "2026-04-28"
    assert world.store.status_of(cohort.id, c) == "not_completed"
    [event] = world.of_type("CohortClosed")
    assert (event.outcome, event.enrolled, event.completed) == ("completed", 3, 2)
    assert closed.state == "completed"


async def test_attendance_events_carry_only_the_status_and_the_reason_stays_in_trainings_database():
    world = TrainingWorld()
    _, cohort, (a, _, _) = await running(world)
    await world.attend(cohort.id, 2, {a: "excused"}, {a: "ibu melahirkan"})
    [event] = world.of_type("AttendanceRecorded", a)
    assert event.attendance == "excused" and "ibu melahirkan" not in event.model_dump_json()
    assert world.store.mark_rows[(cohort.id, a, 2)] == ("excused", "ibu melahirkan")


async def test_recording_the_same_attendance_again_publishes_nothing_new():
    world = TrainingWorld()
    _, cohort, (a, b, _) = await running(world)
    await world.attend(cohort.id, 2, {a: "present", b: "present"})
    await world.attend(cohort.id, 2, {a: "present", b: "absent"})
    assert [e.attendance for e in world.of_type("AttendanceRecorded", a)] == ["present"]
    assert [e.attendance for e in world.of_type("AttendanceRecorded", b)] == ["present", "absent"]


async def two_seats_and_two_waiting(world: TrainingWorld):  # noqa: ANN201
    """A running cohort of two seats past its sessions, four registered: two seated, two on its waitlist."""
    ids = await world.register_many(4)
    _, cohort = await world.open_cohort(capacity=2)
    await world.move(cohort.id, "running")
    world.clock.set(AFTER_LAST_SESSION)
    return ids, cohort


async def test_a_no_show_at_the_first_session_is_withdrawn_and_the_first_on_the_waitlist_promoted():
    world = TrainingWorld()
    ids, cohort = await two_seats_and_two_waiting(world)
    seats = await world.attend(cohort.id, 1, {ids[0]: "absent", ids[1]: "present"})
    assert [s.status for s in seats] == ["withdrawn", "enrolled"]
    assert world.types_of(ids[0])[-2:] == ["AttendanceRecorded", "TraineeWithdrew"]
    assert world.of_type("TraineeWithdrew", ids[0])[0].reason == "no_show"
    assert world.seated(cohort.id) == {ids[1], ids[2]}
    assert world.of_type("TraineeEnrolled", ids[2])[-1].from_waitlist is True
    assert world.seated(cohort.id, "waitlisted") == {ids[3]}  # running: nobody new is invited


async def test_the_same_sheet_sent_again_after_a_no_show_changes_nothing_and_another_mark_for_the_no_show_is_refused():
    world = TrainingWorld()
    ids, cohort = await two_seats_and_two_waiting(world)
    sheet = {ids[0]: "absent", ids[1]: "present"}
    await world.attend(cohort.id, 1, sheet)
    told = list(world.published)

    seats = await world.attend(cohort.id, 1, sheet)  # the answer to the first was lost; the app sends it again

    assert [s.status for s in seats] == ["withdrawn", "enrolled"] and world.published == told
    assert world.seated(cohort.id) == {ids[1], ids[2]} and world.seated(cohort.id, "waitlisted") == {ids[3]}
    with pytest.raises(InvalidInput) as refused:
        await world.attend(cohort.id, 1, {ids[0]: "present", ids[1]: "present"})
    assert [(e.field, e.code) for e in refused.value.errors] == [("records.0.business_id", "trainee.not_enrolled")]


async def test_attendance_for_someone_not_enrolled_is_refused_naming_the_business():
    world = TrainingWorld()
    _, cohort, (a, _, _) = await running(world)
    stranger = await world.register(kbli_code="13122")
    with pytest.raises(InvalidInput) as refused:
        await world.attend(cohort.id, 1, {a: "present", stranger: "present"})
    assert [e.field for e in refused.value.errors] == ["records.1.business_id"]
    assert str(stranger) in refused.value.errors[0].message
    assert world.of_type("AttendanceRecorded") == []  # nothing of the request was kept


async def test_attendance_is_recorded_only_for_a_running_cohort_a_session_it_has_that_has_begun():
    world = TrainingWorld()
    ids = await world.register_many(1)
    _, cohort = await world.open_cohort()
    with pytest.raises(Conflict):
        await world.attend(cohort.id, 1, {ids[0]: "present"})  # open, not running
    await world.move(cohort.id, "running")
    world.clock.set(datetime(2026, 4, 10, tzinfo=UTC))  # after the first session, before the second
    with pytest.raises(NotFound):
        await world.attend(cohort.id, 5, {ids[0]: "present"})
    with pytest.raises(Conflict) as early:
        await world.attend(cohort.id, 2, {ids[0]: "present"})
    assert early.value.code == "session_not_started"
    assert (await world.attend(cohort.id, 1, {ids[0]: "present"}))[0].status == "enrolled"


async def test_completion_is_refused_while_a_trainee_who_attended_enough_has_no_assessment():
    world = TrainingWorld()
    _, cohort, (a, b) = await running(world, n=2)
    for session in (1, 2, 3, 4):
        await world.attend(cohort.id, session, {a: "present", b: "present"})
    await world.assess(cohort.id, {a: (50, 50, 50)})
    with pytest.raises(Conflict) as refused:
        await world.move(cohort.id, "completed")
    assert refused.value.code == "assessments_missing" and refused.value.details == {"business_ids": [str(b)]}
    assert world.store.cohorts[cohort.id].state == "running"


async def test_a_cohort_is_not_completed_before_its_last_session_has_begun():
    # Its sessions to come would count as absences: trainees short of the attendance, the waitlist released.
    world = TrainingWorld()
    _, cohort, (a, b) = await running(world, n=2, gives_assessment=False, topic="packaging", title="Kemasan")
    world.clock.set(datetime(2026, 4, 13, 2, 0, tzinfo=UTC))  # sessions 1 and 2 begun; 3 and 4 on 20 and 27 April
    with pytest.raises(Conflict) as refused:
        await world.move(cohort.id, "completed")
    assert refused.value.code == "sessions_to_come"
    assert "last session (4) starts 2026-04-27 09:00 WITA" in str(refused.value)
    assert world.store.cohorts[cohort.id].state == "running"
    world.clock.set(datetime(2026, 4, 27, 1, 0, tzinfo=UTC))  # 09.00 WITA: the last session begins
    assert (await world.move(cohort.id, "completed")).state == "completed"


async def test_an_assessment_is_only_for_enrolled_trainees_of_a_programme_that_gives_one():
    world = TrainingWorld()
    _, cohort, (a, _, _) = await running(world)
    with pytest.raises(InvalidInput) as refused:
        await world.assess(cohort.id, {uuid.uuid4(): (1, 2, 3)})
    assert refused.value.errors[0].field == "records.0.business_id"
    other = TrainingWorld()
    _, plain, (x, _, _) = await running(other, topic="packaging", title="Kemasan", gives_assessment=False)
    with pytest.raises(Conflict) as none:
        await other.assess(plain.id, {x: (1, 2, 3)})
    assert none.value.code == "no_assessment"


async def test_the_waitlist_of_a_completed_cohort_is_released_to_be_invited_to_the_next_one():
    world = TrainingWorld()
    ids = await world.register_many(2)
    programme, cohort = await world.open_cohort(capacity=1, gives_assessment=False)
    await world.move(cohort.id, "running")
    world.clock.set(AFTER_LAST_SESSION)
    for session in (1, 2, 3, 4):
        await world.attend(cohort.id, session, {ids[0]: "present"})
    await world.move(cohort.id, "completed")
    assert world.store.status_of(cohort.id, ids[1]) == "released"
    following = await world.cohort(programme, capacity=1)
    await world.move(following.id, "open")
    assert world.seated(following.id) == {ids[1]}  # the graduate has the topic; the released one is first


async def test_every_business_s_training_events_carry_consecutive_versions_through_a_whole_cohort():
    world = TrainingWorld()
    _, cohort, ids = await running(world, n=4, capacity=2)
    await world.attend(cohort.id, 1, {ids[0]: "absent", ids[1]: "present"})
    for session in (2, 3, 4):
        await world.attend(cohort.id, session, {b: "present" for b in world.seated(cohort.id)})
    await world.assess(cohort.id, {b: (60, 60, 60) for b in world.seated(cohort.id)})
    await world.move(cohort.id, "completed")
    for business in ids:
        versions = [e.participant_version for e in world.published if getattr(e, "business_id", None) == business
                    and hasattr(e, "participant_version")]  # fmt: skip
        assert versions == list(range(1, len(versions) + 1))

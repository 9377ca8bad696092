"""Seats: the waitlist order, capacity and promotion (domain/enrolment.py), and enrolment by need, by hand and by
withdrawal through training's handlers over the fakes."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.training.domain.cohorts import Cohort, CohortChanges, Session
from services.training.domain.enrolment import (
    Candidate,
    Place,
    Promote,
    Seat,
    fill,
    position_of,
    waitlist_bound,
    waitlist_key,
)
from services.training import halal_pathway, handlers
from services.training.domain.pathway import STEPS, NotEligibleForm, Pathway
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.messaging.consumer import RecordRefused

from .training_fakes import (
    ALAK,
    ALAK_OFFICER,
    NOW,
    OEBOBO,
    OEBOBO_OFFICER,
    OFFICER,
    TRAINER,
    TrainingWorld,
    business_closed,
    funding_accepted,
    nib_issued,
    registered,
    updated,
)

START = datetime(2025, 1, 1, tzinfo=UTC)


def a_cohort(capacity: int = 2, state: str = "open") -> Cohort:
    s = Session(1, datetime(2026, 4, 6, 1, tzinfo=UTC), datetime(2026, 4, 6, 4, tzinfo=UTC))
    return Cohort(uuid.uuid4(), uuid.uuid4(), "halal_certification", "Halal", state, capacity, s.starts_at.date(),
                  s.starts_at.date(), (s,), "Taman Nostalgia", None, None, NOW, "pelatih")  # fmt: skip


def candidate(day: int, trained: bool = False, business_id: uuid.UUID | None = None) -> Candidate:
    return Candidate(business_id or uuid.uuid4(), "halal_uncertified", trained, START + timedelta(days=day))


def seat(cohort: Cohort, status: str, queue_no: int = 0) -> Seat:
    return Seat(cohort.id, uuid.uuid4(), status, "halal_uncertified", queue_no, NOW)


# ---------------------------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------------------------


def test_the_waitlist_order_is_never_trained_first_then_earlier_registration_then_business_id():
    trained_early = candidate(0, trained=True)
    fresh_late = candidate(9)
    fresh_early = candidate(1)
    twin_a = candidate(5, business_id=uuid.UUID(int=1))
    twin_b = candidate(5, business_id=uuid.UUID(int=2))
    ordered = sorted([trained_early, twin_b, fresh_late, twin_a, fresh_early], key=waitlist_key)
    assert ordered == [fresh_early, twin_a, twin_b, fresh_late, trained_early]


def test_an_open_cohort_enrols_the_best_candidates_and_waitlists_the_next_up_to_the_bound():
    cohort = a_cohort(capacity=2)
    people = [candidate(d) for d in range(6)]
    decisions = fill(cohort, [], list(reversed(people)), bound=3)
    assert decisions == [Place(people[0], "enrolled"), Place(people[1], "enrolled"), Place(people[2], "waitlisted", 1),
                         Place(people[3], "waitlisted", 2), Place(people[4], "waitlisted", 3)]  # fmt: skip


def test_the_waitlist_is_bounded_by_the_capacity_by_default():
    assert waitlist_bound(40, 1.0) == 40
    assert waitlist_bound(45, 0.5) == 23
    assert waitlist_bound(30, 0) == 0


def test_free_seats_go_to_the_waitlist_in_its_order_before_any_new_candidate():
    cohort = a_cohort(capacity=2)
    enrolled = seat(cohort, "enrolled")
    second, first = seat(cohort, "waitlisted", 7), seat(cohort, "waitlisted", 3)
    newcomer = candidate(0)
    decisions = fill(cohort, [enrolled, second, first], [newcomer], bound=2)
    assert decisions == [Promote(first.business_id), Place(newcomer, "waitlisted", 2)]


def test_a_running_cohort_only_promotes_from_its_waitlist():
    cohort = a_cohort(capacity=3, state="running")
    waiting = seat(cohort, "waitlisted", 1)
    assert fill(cohort, [seat(cohort, "enrolled"), waiting], [candidate(0)], bound=3) == [Promote(waiting.business_id)]


def test_a_planned_or_closed_cohort_changes_nobody():
    for state in ("planned", "completed", "cancelled"):
        assert fill(a_cohort(state=state), [], [candidate(0)], bound=2) == []


def test_a_candidate_already_seated_in_the_cohort_is_never_placed_again():
    cohort = a_cohort(capacity=3)
    gone = seat(cohort, "withdrawn")
    again = Candidate(gone.business_id, "halal_uncertified", False, START)
    assert fill(cohort, [gone], [again], bound=0) == []


def test_a_full_cohort_with_a_full_waitlist_invites_nobody():
    cohort = a_cohort(capacity=1)
    assert fill(cohort, [seat(cohort, "enrolled"), seat(cohort, "waitlisted", 1)], [candidate(0)], bound=1) == []


def test_positions_count_from_the_head_of_the_waitlist():
    cohort = a_cohort()
    a, b = seat(cohort, "waitlisted", 4), seat(cohort, "waitlisted", 2)
    assert position_of([a, b], b.business_id) == 1
    assert position_of([a, b], a.business_id) == 2
    assert position_of([a, b], uuid.uuid4()) is None


# ---------------------------------------------------------------------------------------------------------------
# By need, through the handlers
# ---------------------------------------------------------------------------------------------------------------


async def test_opening_a_cohort_invites_and_enrols_by_need_and_waitlists_the_rest_in_order():
    world = TrainingWorld()
    ids = await world.register_many(6)
    await world.register(kbli_code="13122")  # tenun ikat: no halal need
    await world.register(nib_status="none", registered_at=START - timedelta(days=5))  # no NIB: the programme needs one
    _, cohort = await world.open_cohort(capacity=2)
    assert world.seated(cohort.id) == set(ids[:2])
    assert world.seated(cohort.id, "waitlisted") == set(ids[2:4])  # bounded: as many as the seats
    assert world.types_of(ids[0]) == ["TraineeInvited", "TraineeEnrolled"]
    assert [e.position for e in world.of_type("TraineeWaitlisted")] == [1, 2]
    assert {e.need for e in world.of_type("TraineeInvited")} == {"halal_uncertified"}
    assert world.types_of(ids[4]) == []
    assert world.store.cohorts[cohort.id].enrolled == 2 and world.store.cohorts[cohort.id].waitlisted == 2
    assert [type(e).__name__ for e in world.published[:2]] == ["ProgrammeDefined", "CohortOpened"]


async def test_businesses_that_never_trained_come_before_those_that_did():
    world = TrainingWorld()
    veteran = await world.register(registered_at=START - timedelta(days=100))
    p, first = await world.open_cohort(capacity=1)
    assert world.seated(first.id) == {veteran}
    # The veteran completes a packaging course; a newcomer registered later still goes first next time.
    packaging = await world.programme(topic="packaging", title="Kemasan", needs=["halal_uncertified"], requires_nib=False,
                                      gives_assessment=False)  # fmt: skip
    world.store.seat_rows[(first.id, veteran)] = replace(world.store.seat_rows[(first.id, veteran)], status="completed")
    newcomer = await world.register(registered_at=START)
    cohort = await world.cohort(packaging, capacity=1)
    await world.move(cohort.id, "open")
    assert world.seated(cohort.id) == {newcomer}
    assert world.seated(cohort.id, "waitlisted") == {veteran}


async def test_a_batch_holding_a_registration_and_the_nib_that_followed_keeps_the_view_the_last_left_and_invites():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=2)
    first = registered(nib_status="none")
    await world.consume(first, nib_issued(first.business_id, 2))
    assert world.store.views[first.business_id].version == 2
    assert world.store.views[first.business_id].nib_status == "issued"
    assert world.seated(cohort.id) == {first.business_id}


async def test_an_nib_for_a_business_never_registered_here_is_refused_and_invites_once_sent_behind_its_registration():
    # Ignored, it counted as handled: the relay sends a registration that failed to publish again behind the NIB Kafka
    # had already taken, then the NIB again, which the inbox skipped; the business was never invited.
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=2)
    first = registered(nib_status="none")

    with pytest.raises(RecordRefused, match=r"NIBIssued is version 2, but this view has never heard of the business"):
        await world.consume(nib_issued(first.business_id, 2))
    assert (world.store.views, world.seated(cohort.id)) == ({}, set())

    await world.consume(first, nib_issued(first.business_id, 2))
    assert world.store.views[first.business_id].nib_status == "issued"
    assert world.seated(cohort.id) == {first.business_id}


async def test_a_closure_arriving_with_the_nib_before_it_missing_is_refused_and_the_business_keeps_its_seat():
    # The NIB was dead-lettered: closed at version 3 over version 1, the view would never take the NIB re-driven.
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=2)
    business = await world.register()
    assert world.seated(cohort.id) == {business}

    with pytest.raises(RecordRefused, match=r"version 3, but this view holds version 1; version 2 never arrived"):
        await world.consume(business_closed(business, 3))
    assert (world.store.views[business].version, world.seated(cohort.id)) == (1, {business})

    await world.consume(nib_issued(business, 2), business_closed(business, 3))  # re-driven, in order
    assert (world.store.views[business].version, world.store.views[business].status) == (3, "closed")
    assert world.seated(cohort.id) == set()


async def test_a_business_that_gains_a_need_later_is_invited_to_an_open_cohort_serving_it():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=2)
    business = await world.register(nib_status="none")
    assert world.types_of(business) == []  # the programme requires an NIB
    await world.consume(nib_issued(business, 2))
    assert world.seated(cohort.id) == {business}
    assert world.types_of(business) == ["TraineeInvited", "TraineeEnrolled"]


async def test_opening_a_cohort_or_taking_a_business_out_of_cohorts_holds_the_seating_lock_alone_others_shared_first():
    # Without it, each side misses what the other has not committed: an opening misses the prospect a batch is making
    # (and the batch reads the cohort as not open yet); a withdrawal's refill or an officer seats a business a batch is
    # closing, or that is being found unable to self-declare (and the closing or the finding found no seat to free).
    # Tested with two transactions on real PostgreSQL.
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=1)
    _, youth = await world.open_cohort(topic="digital_marketing", title="Pemasaran Digital", needs=["youth_digital"],
                                       requires_nib=False)  # fmt: skip
    assert world.store.seating_log == ["alone", "alone"]
    assert world.store.lock_log[:2] == ["seating", "cohorts"]

    def held(how: str, after: tuple[str, ...] = ()) -> None:
        assert world.store.seating_log == [how]
        assert world.store.lock_log[: len(after) + 1] == [*after, "seating"]
        world.store.seating_log.clear()

    world.store.seating_log.clear()
    first = await world.register()
    held("shared", after=("views",))
    second, closing = await world.register(), await world.register()
    world.store.seating_log.clear()

    await world.withdraw(cohort.id, first)
    held("shared")
    await world.enrol(youth.id, closing)
    held("shared")
    await handlers.change_cohort(handlers.ChangeCohort(cohort.id, CohortChanges(capacity=2), TRAINER),
                                 world.by(TRAINER), world.deps)  # fmt: skip
    held("shared")
    await halal_pathway.record_not_eligible(halal_pathway.RecordNotEligible(
        second, NotEligibleForm(reason="pork"), OFFICER), world.by(OFFICER), world.deps)  # fmt: skip
    held("alone")
    await world.consume(business_closed(closing, 2))
    held("alone", after=("views",))
    assert world.store.status_of(youth.id, closing) == "withdrawn"
    await world.consume(updated(first, 2, scale="medium"))  # a food business: it can't self-declare now
    held("alone", after=("views",))
    certified = await world.register()
    world.store.pathways[certified] = Pathway(certified, OEBOBO, steps=tuple((s, NOW.date()) for s in STEPS))
    world.store.seating_log.clear()
    await world.consume(updated(certified, 2, scale="medium"))  # certified already: never marked, nothing to leave
    held("shared", after=("views",))


async def test_a_business_that_accepted_funding_is_invited_to_bookkeeping():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5, topic="financial_bookkeeping", title="Pembukuan dengan Lamikro",
                                        needs=["funded_bookkeeping"], requires_nib=False)  # fmt: skip
    business = await world.register(kbli_code="13122")
    assert world.types_of(business) == []
    await world.consume(funding_accepted(business))
    assert world.of_type("TraineeInvited", business)[0].need == "funded_bookkeeping"
    await world.consume(funding_accepted(business))  # another acceptance changes nothing
    assert world.types_of(business) == ["TraineeInvited", "TraineeEnrolled"]


async def test_funding_accepted_before_training_heard_of_the_business_counts_once_it_registers():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5, topic="financial_bookkeeping", title="Pembukuan",
                                        needs=["funded_bookkeeping"], requires_nib=False)  # fmt: skip
    event = registered(kbli_code="13122")
    await world.consume(funding_accepted(event.business_id))
    assert world.types_of(event.business_id) == []
    await world.consume(event)
    assert world.seated(cohort.id) == {event.business_id}


async def test_a_full_cohort_with_a_full_waitlist_invites_nobody_more_when_a_business_registers():
    world = TrainingWorld()
    await world.register_many(2)
    _, cohort = await world.open_cohort(capacity=1)
    late = await world.register()
    assert world.types_of(late) == []
    assert len(world.store.seats_of_cohort(cohort.id)) == 2


async def test_a_business_is_never_invited_to_a_second_cohort_of_the_same_topic():
    world = TrainingWorld()
    business = await world.register()
    programme, first = await world.open_cohort(capacity=5)
    second = await world.cohort(programme, capacity=5)
    await world.move(second.id, "open")
    assert world.seated(first.id) == {business}
    assert world.store.seats_of_cohort(second.id) == []


async def test_a_business_that_closes_leaves_its_cohorts_and_the_waitlist_moves_up():
    world = TrainingWorld()
    first, second, third = await world.register_many(3)
    _, cohort = await world.open_cohort(capacity=1)
    await world.consume(business_closed(first, 2))
    assert world.store.status_of(cohort.id, first) == "withdrawn"
    assert world.of_type("TraineeWithdrew", first)[0].reason == "withdrew"
    assert world.seated(cohort.id) == {second}
    assert world.of_type("TraineeEnrolled", second)[-1].from_waitlist is True
    assert world.seated(cohort.id, "waitlisted") == {third}  # invited now that the waitlist has room


# ---------------------------------------------------------------------------------------------------------------
# By hand
# ---------------------------------------------------------------------------------------------------------------


async def test_an_officer_enrols_a_business_by_hand_with_the_officer_as_the_reason():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=2, needs=[])
    business = await world.register()
    result = await world.enrol(cohort.id, business)
    assert result.status == "enrolled" and result.need == "officer"
    assert world.types_of(business) == ["TraineeInvited", "TraineeEnrolled"]
    assert world.of_type("TraineeInvited", business)[0].need == "officer"


async def test_enrolling_by_hand_into_a_full_cohort_is_a_conflict_that_names_the_seats():
    world = TrainingWorld()
    await world.register_many(1)
    _, cohort = await world.open_cohort(capacity=1, needs=["halal_uncertified"])
    other = await world.register(kbli_code="13122")
    with pytest.raises(Conflict) as refused:
        await world.enrol(cohort.id, other)
    assert refused.value.code == "cohort_full" and refused.value.details == {"capacity": 1, "enrolled": 1}


async def test_raising_the_capacity_promotes_the_waitlist_at_once_and_a_second_enrolment_is_a_conflict():
    world = TrainingWorld()
    a, b = await world.register_many(2)
    _, cohort = await world.open_cohort(capacity=1)
    with pytest.raises(Conflict):
        await world.enrol(cohort.id, b)  # waiting, and no seat free
    changed = await handlers_change_capacity(world, cohort.id, 2)
    assert world.seated(cohort.id) == {a, b}
    assert (changed.capacity, changed.enrolled, changed.waitlisted) == (2, 2, 0)
    assert world.of_type("TraineeEnrolled", b)[0].from_waitlist is True
    with pytest.raises(Conflict) as again:
        await world.enrol(cohort.id, b)
    assert again.value.code == "already_enrolled"


async def handlers_change_capacity(world: TrainingWorld, cohort_id: uuid.UUID, capacity: int) -> Cohort:
    from services.training import handlers
    from services.training.domain.cohorts import CohortChanges

    from .training_fakes import TRAINER

    return await handlers.change_cohort(handlers.ChangeCohort(cohort_id, CohortChanges(capacity=capacity), TRAINER),
                                        world.uow(), world.deps)  # fmt: skip


async def test_an_officer_limited_to_a_kecamatan_enrols_only_businesses_there():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=3, needs=[])
    in_oebobo = await world.register()
    in_alak = await world.register(kecamatan_code=ALAK)
    with pytest.raises(Forbidden):
        await world.enrol(cohort.id, in_alak, by=OEBOBO_OFFICER)
    assert (await world.enrol(cohort.id, in_oebobo, by=OEBOBO_OFFICER)).status == "enrolled"
    with pytest.raises(Forbidden):
        await world.withdraw(cohort.id, in_oebobo, by=ALAK_OFFICER)


async def test_a_hand_enrolment_respects_the_programme_prerequisite_and_the_business_state():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=3, needs=[])
    without_nib = await world.register(nib_status="applied")
    with pytest.raises(Conflict) as refused:
        await world.enrol(cohort.id, without_nib)
    assert refused.value.code == "prerequisite_missing" and refused.value.details == {"missing": ["nib"]}
    closed = await world.register()
    await world.consume(business_closed(closed, 2))
    with pytest.raises(Conflict) as gone:
        await world.enrol(cohort.id, closed)
    assert gone.value.code == "business_closed"


async def test_enrolling_a_business_training_never_heard_of_names_the_business_id():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=3, needs=[])
    with pytest.raises(InvalidInput) as refused:
        await world.enrol(cohort.id, uuid.uuid4())
    assert refused.value.errors[0].field == "business_id"


async def test_a_hand_enrolment_into_a_second_cohort_of_a_topic_already_taken_is_a_conflict():
    world = TrainingWorld()
    business = await world.register()
    programme, first = await world.open_cohort(capacity=3)
    second = await world.cohort(programme, capacity=3)
    await world.move(second.id, "open")
    with pytest.raises(Conflict) as refused:
        await world.enrol(second.id, business)
    assert refused.value.code == "topic_taken"


async def test_enrolment_changes_only_while_the_cohort_is_open_or_running():
    world = TrainingWorld()
    programme = await world.programme(needs=[])
    cohort = await world.cohort(programme)
    business = await world.register()
    with pytest.raises(Conflict) as refused:
        await world.enrol(cohort.id, business)
    assert refused.value.details == {"state": "planned"}


async def test_a_withdrawal_promotes_the_first_on_the_waitlist_and_refills_the_waitlist():
    world = TrainingWorld()
    ids = await world.register_many(5)
    _, cohort = await world.open_cohort(capacity=2)
    result = await world.withdraw(cohort.id, ids[1], reason="officer")
    assert result.status == "withdrawn" and result.withdraw_reason == "officer"
    assert world.of_type("TraineeWithdrew", ids[1])[0].reason == "officer"
    assert world.seated(cohort.id) == {ids[0], ids[2]}
    assert world.types_of(ids[2]) == ["TraineeInvited", "TraineeWaitlisted", "TraineeEnrolled"]
    assert world.of_type("TraineeEnrolled", ids[2])[0].from_waitlist is True
    assert world.seated(cohort.id, "waitlisted") == {ids[3], ids[4]}
    assert world.of_type("TraineeWaitlisted", ids[4])[0].position == 2


async def test_withdrawing_a_business_that_holds_no_seat_is_a_conflict():
    world = TrainingWorld()
    [business] = await world.register_many(1)
    _, cohort = await world.open_cohort(capacity=2)
    await world.withdraw(cohort.id, business)
    with pytest.raises(Conflict) as refused:
        await world.withdraw(cohort.id, business)
    assert refused.value.code == "not_enrolled" and refused.value.details == {"seat_status": "withdrawn"}


async def test_a_business_withdrawn_by_hand_may_be_enrolled_again_in_the_same_row():
    world = TrainingWorld()
    [business] = await world.register_many(1)
    _, cohort = await world.open_cohort(capacity=2)
    await world.withdraw(cohort.id, business)
    again = await world.enrol(cohort.id, business)
    assert again.status == "enrolled"
    assert len([s for s in world.store.seats_of_cohort(cohort.id) if s.business_id == business]) == 1


async def test_capacity_is_never_exceeded_whatever_the_order_of_arrivals_withdrawals_and_hand_enrolments():
    world = TrainingWorld()
    ids = await world.register_many(8)
    _, cohort = await world.open_cohort(capacity=3)
    for business in ids[:4]:
        if world.store.status_of(cohort.id, business) in ("enrolled", "waitlisted"):
            await world.withdraw(cohort.id, business)
        for extra in (await world.register(), await world.register(kbli_code="13122")):
            try:
                await world.enrol(cohort.id, extra)
            except Conflict:
                pass
        assert len(world.seated(cohort.id)) <= 3
        assert len(world.seated(cohort.id, "waitlisted")) <= 3
    assert len(world.seated(cohort.id)) == 3


async def test_a_registry_event_older_than_the_view_changes_nothing():
    world = TrainingWorld()
    business = await world.register()
    await world.consume(updated(business, 3, scale="small", business_name="Kue Ibu Maria Baru"))
    await world.consume(updated(business, 2, scale="micro", business_name="Lama"))
    assert world.store.views[business].version == 3
    assert world.store.views[business].business_name == "Kue Ibu Maria Baru"

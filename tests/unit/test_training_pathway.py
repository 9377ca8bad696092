"""The halal pathway (domain/pathway.py): steps in order, stall deadlines with a fixed clock, businesses that can't
self-declare; and the same through the handlers, the registry consumer and the sweeper."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from services.training import halal_pathway
from services.training.domain.pathway import (
    DEFAULT_STALL_DAYS,
    STEPS,
    NotEligibleForm,
    Pathway,
    StepForm,
    mark_not_eligible,
    record_step,
    stall,
    stall_limits,
)
from services.training.queries import TrainingQueries
from services.training.settings import TrainingSettings
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.reference.wilayah import kota_kupang

from .training_fakes import ALAK, ALAK_OFFICER, OFFICER, TrainingWorld, business_closed, updated

TODAY = date(2026, 4, 1)
LIMITS = dict(DEFAULT_STALL_DAYS)


def walked(*steps: tuple[str, date]) -> Pathway:
    return Pathway(uuid.uuid4(), "53.71.04", steps=tuple(steps))


def test_steps_are_recorded_in_order_and_the_first_missing_one_is_named():
    p = record_step(walked(), "nib", date(2026, 3, 1), TODAY)
    p = record_step(p, "sihalal_account", date(2026, 3, 5), TODAY)
    with pytest.raises(Conflict) as refused:
        record_step(p, "submitted", date(2026, 3, 20), TODAY)
    assert refused.value.code == "step_out_of_order" and refused.value.details["missing_step"] == "companion_verified"
    for step in STEPS[2:]:
        p = record_step(p, step, date(2026, 3, 20), TODAY)
    assert p.certified and p.next_step is None


def test_a_step_is_recorded_once_dated_no_later_than_today_and_no_earlier_than_the_one_before():
    p = record_step(walked(), "nib", date(2026, 3, 10), TODAY)
    with pytest.raises(Conflict) as twice:
        record_step(p, "nib", date(2026, 3, 11), TODAY)
    assert twice.value.code == "step_recorded"
    for bad in (date(2026, 3, 9), date(2026, 4, 2), date(2019, 1, 1)):
        with pytest.raises(InvalidInput) as refused:
            record_step(p, "sihalal_account", bad, TODAY)
        assert refused.value.errors[0].field == "done_on"


def test_a_step_stalls_after_its_configured_days_and_is_reported_once():
    p = walked(("nib", date(2026, 3, 1)))  # the SIHALAL account may take 14 days
    assert stall(p, date(2026, 3, 15), LIMITS) is None
    found = stall(p, date(2026, 3, 16), LIMITS)
    assert (found.waiting_for, found.since, found.days) == ("sihalal_account", date(2026, 3, 1), 15)  # type: ignore[union-attr]
    reported = Pathway(p.business_id, p.kecamatan_code, p.steps, stalled_for="sihalal_account")
    assert stall(reported, date(2026, 5, 1), LIMITS) is None


def test_recording_the_next_step_clears_the_stall_and_the_next_deadline_is_its_own():
    p = Pathway(uuid.uuid4(), "53.71.04", (("nib", date(2026, 1, 1)),), stalled_for="sihalal_account")
    p = record_step(p, "sihalal_account", date(2026, 2, 1), TODAY)
    assert p.stalled_for is None
    assert stall(p, date(2026, 3, 3), LIMITS) is None  # the companion has 30 days
    assert stall(p, date(2026, 3, 4), LIMITS).waiting_for == "companion_verified"  # type: ignore[union-attr]


def test_the_days_per_step_are_settings_and_unknown_steps_or_silly_days_are_refused():
    assert stall_limits({"fatwa": 40})["fatwa"] == 40
    assert stall_limits({})["certificate"] == DEFAULT_STALL_DAYS["certificate"]
    with pytest.raises(ValueError):
        stall_limits({"nib": 3})
    with pytest.raises(ValueError):
        stall_limits({"fatwa": 0})
    configured = TrainingSettings._every_step({"submitted": 7})  # TRAINING_STALL_DAYS='{"submitted": 7}'
    assert configured["submitted"] == 7 and configured["fatwa"] == DEFAULT_STALL_DAYS["fatwa"]


def test_a_pathway_not_started_certified_or_not_eligible_never_stalls():
    assert stall(walked(), date(2030, 1, 1), LIMITS) is None
    certified = walked(*((s, date(2026, 1, 1)) for s in STEPS))
    assert stall(certified, date(2030, 1, 1), LIMITS) is None
    pork = mark_not_eligible(walked(("nib", date(2026, 1, 1))), "pork")
    assert stall(pork, date(2030, 1, 1), LIMITS) is None


def test_pork_can_not_be_certified_at_all_while_the_other_reasons_leave_the_regular_route_open():
    assert mark_not_eligible(walked(), "pork").regular_route_possible is False
    for reason in ("slaughtered_meat_uncertified_abattoir", "not_micro_or_small", "other"):
        assert mark_not_eligible(walked(), reason).regular_route_possible is True


def test_a_business_not_eligible_records_no_more_steps_and_a_certified_one_is_not_marked():
    with pytest.raises(Conflict) as refused:
        record_step(mark_not_eligible(walked(), "pork"), "nib", TODAY, TODAY)
    assert refused.value.code == "pathway_not_eligible"
    with pytest.raises(Conflict):
        mark_not_eligible(walked(*((s, date(2026, 1, 1)) for s in STEPS)), "pork")


# ---------------------------------------------------------------------------------------------------------------
# Through the handlers
# ---------------------------------------------------------------------------------------------------------------


async def step(world: TrainingWorld, business_id: uuid.UUID, name: str, on: date, by=OFFICER) -> Pathway:  # noqa: ANN001
    return await halal_pathway.record_step(halal_pathway.RecordStep(business_id, StepForm(step=name, done_on=on), by),
                                           world.by(by), world.deps)  # fmt: skip


async def not_eligible(world: TrainingWorld, business_id: uuid.UUID, reason: str) -> Pathway:
    form = NotEligibleForm(reason=reason, note="se'i babi")
    return await halal_pathway.record_not_eligible(halal_pathway.RecordNotEligible(business_id, form, OFFICER),
                                                   world.by(OFFICER), world.deps)  # fmt: skip


async def test_an_officer_records_steps_and_each_is_published_with_its_date_and_kecamatan():
    world = TrainingWorld()
    business = await world.register()
    await step(world, business, "nib", date(2026, 3, 2))
    pathway = await step(world, business, "sihalal_account", date(2026, 3, 9))
    assert pathway.next_step == "companion_verified"
    events = world.of_type("PathwayStepRecorded", business)
    assert [(e.step, e.done_on, e.kecamatan_code) for e in events] == [
        ("nib", date(2026, 3, 2), "53.71.04"), ("sihalal_account", date(2026, 3, 9), "53.71.04")]
    with pytest.raises(Conflict) as refused:
        await step(world, business, "fatwa", date(2026, 3, 10))
    assert refused.value.details["missing_step"] == "companion_verified"


async def test_the_pathway_is_for_known_food_businesses_micro_or_small_in_the_officer_s_kecamatan():
    world = TrainingWorld()
    with pytest.raises(NotFound):
        await step(world, uuid.uuid4(), "nib", TODAY)
    weaver = await world.register(kbli_code="13122")
    with pytest.raises(Conflict) as not_food:
        await step(world, weaver, "nib", TODAY)
    assert not_food.value.code == "not_food_or_drink"
    business = await world.register()
    with pytest.raises(Forbidden):
        await step(world, business, "nib", TODAY, by=ALAK_OFFICER)


async def test_the_sweeper_reports_a_stalled_pathway_once_and_again_only_for_a_new_stall():
    world = TrainingWorld(now=datetime(2026, 3, 10, 2, tzinfo=UTC))
    business = await world.register()
    await step(world, business, "nib", date(2026, 3, 1))
    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 0
    world.clock.set(datetime(2026, 3, 16, 2, tzinfo=UTC))  # 15 days on: SIHALAL account overdue
    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 1
    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 0
    [stalled] = world.of_type("PathwayStalled", business)
    assert (stalled.waiting_for, stalled.since, stalled.days, stalled.kecamatan_code) == (
        "sihalal_account", date(2026, 3, 1), 15, "53.71.04")
    await step(world, business, "sihalal_account", date(2026, 3, 16))
    world.clock.set(datetime(2026, 4, 30, 2, tzinfo=UTC))
    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 1
    assert [e.waiting_for for e in world.of_type("PathwayStalled", business)] == ["sihalal_account", "companion_verified"]
    assert world.uows[-1].envelopes[0].actor == "training"


async def one_open_and_one_closed_while_waiting(world: TrainingWorld) -> tuple[uuid.UUID, uuid.UUID]:
    """Two businesses whose pathways waited past their step's deadline, one of which closed meanwhile."""
    open_, closing = await world.register(), await world.register()
    for business in (open_, closing):
        await step(world, business, "nib", date(2026, 3, 1))
    await world.consume(business_closed(closing, 2))
    world.clock.set(datetime(2026, 3, 16, 2, tzinfo=UTC))
    return open_, closing


async def test_the_sweeper_chases_no_business_that_closed_while_its_pathway_waited():
    world = TrainingWorld(now=datetime(2026, 3, 10, 2, tzinfo=UTC))
    open_, _ = await one_open_and_one_closed_while_waiting(world)

    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 1
    assert [e.business_id for e in world.of_type("PathwayStalled")] == [open_]


async def test_the_sweeper_chases_nobody_while_the_view_is_rebuilt_and_the_open_business_once_it_has_caught_up():
    world = TrainingWorld(now=datetime(2026, 3, 10, 2, tzinfo=UTC))
    open_, closing = await one_open_and_one_closed_while_waiting(world)
    kept = dict(world.store.views)
    world.store.views.clear()  # `berdaya replay training-view`: emptied, and read again from the registry's topic
    world.store.catching_up = True

    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 0
    assert world.of_type("PathwayStalled") == []

    world.store.views.update(kept)
    world.store.catching_up = False
    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 1
    assert [e.business_id for e in world.of_type("PathwayStalled")] == [open_]


class RecordingDb:
    """Answers every query with no rows, and keeps its text."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    async def fetch(self, sql: str, *args: object) -> list[dict]:
        self.sql.append(sql)
        return []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[RecordingDb]:
        yield self


async def test_the_stalled_pathways_listed_are_those_the_gauge_counts_leaving_closed_businesses_out():
    db = RecordingDb()
    queries = TrainingQueries(db, kota_kupang())  # type: ignore[arg-type]

    await queries.stalled_by_step()
    [gauge] = db.sql
    await queries.pathways(kecamatan_code=None, stalled=True, page=1, page_size=50)

    counted = re.search(r"WHERE (.*) GROUP BY", gauge, re.S)
    assert counted is not None and "'closed'" in counted.group(1)
    assert counted.group(1) in db.sql[1]


async def test_the_sweeper_works_in_batches_until_nothing_is_due():
    world = TrainingWorld(now=datetime(2026, 3, 1, 2, tzinfo=UTC))
    world.deps = world.deps.__class__(**{**world.deps.__dict__, "stall_batch": 2})
    ids = await world.register_many(5)
    for business in ids:
        await step(world, business, "nib", date(2026, 3, 1))
    world.clock.set(datetime(2026, 6, 1, 2, tzinfo=UTC))
    assert await halal_pathway.flag_stalled_pathways(world.by_time, world.deps) == 5
    assert len(world.of_type("PathwayStalled")) == 5


async def test_a_pork_business_is_recorded_not_eligible_and_leaves_a_halal_cohort_that_has_not_begun():
    world = TrainingWorld()
    seis = await world.register_many(3)
    _, cohort = await world.open_cohort(capacity=2)
    pathway = await not_eligible(world, seis[0], "pork")
    assert pathway.not_eligible == "pork" and pathway.regular_route_possible is False
    [event] = world.of_type("PathwayNotEligible", seis[0])
    assert (event.reason, event.regular_route_possible) == ("pork", False)
    assert world.of_type("TraineeWithdrew", seis[0])[0].reason == "officer"
    assert world.seated(cohort.id) == {seis[1], seis[2]}
    with pytest.raises(Conflict) as refused:
        await world.enrol(cohort.id, seis[0])
    assert refused.value.code == "halal_not_eligible"
    assert world.store.pathways[seis[0]].note == "se'i babi"


async def test_a_business_found_unable_to_self_declare_leaves_the_waitlist_of_a_running_halal_cohort_too():
    world = TrainingWorld()
    absent, present, waiting, growing = await world.register_many(4)
    _, cohort = await world.open_cohort(capacity=2)
    assert (world.seated(cohort.id), world.seated(cohort.id, "waitlisted")) == ({absent, present}, {waiting, growing})
    await world.move(cohort.id, "running")

    await not_eligible(world, waiting, "pork")
    await world.consume(updated(growing, 2, scale="medium"))  # the registry's facts say so too
    world.clock.set(datetime(2026, 4, 6, 6, 0, tzinfo=UTC))
    await world.attend(cohort.id, 1, {absent: "absent", present: "present"})  # a no-show frees a seat

    for business in (waiting, growing):
        assert [e.reason for e in world.of_type("TraineeWithdrew", business)] == ["officer"]
        assert world.of_type("TraineeEnrolled", business) == []
    assert world.seated(cohort.id, "waitlisted") == set() and world.seated(cohort.id) == {present}


async def test_an_officers_reason_takes_the_place_of_the_registrys_mark_and_stays_once_the_scale_is_corrected():
    world = TrainingWorld()
    business = await world.register(scale="medium")
    assert world.store.pathways[business].not_eligible == "not_micro_or_small"

    pathway = await not_eligible(world, business, "pork")
    _, cohort = await world.open_cohort(capacity=3)
    await world.consume(updated(business, 2, scale="micro"))  # the scale was typed wrong; the pork was not

    assert (pathway.not_eligible, pathway.regular_route_possible) == ("pork", False)
    assert [(e.reason, e.regular_route_possible) for e in world.of_type("PathwayNotEligible", business)] == [
        ("not_micro_or_small", True), ("pork", False)]  # fmt: skip
    assert world.store.pathways[business].not_eligible == "pork" and world.seated(cohort.id) == set()
    with pytest.raises(Conflict) as again:
        await not_eligible(world, business, "other")
    assert again.value.code == "pathway_not_eligible"


async def test_the_registrys_mark_names_the_kecamatan_the_same_event_moved_the_business_to():
    world = TrainingWorld()
    business = await world.register()
    await step(world, business, "nib", date(2026, 3, 2))  # its pathway row begins in Oebobo

    await world.consume(updated(business, 2, changed=("scale", "kecamatan"), scale="medium", kecamatan_code=ALAK))

    [event] = world.of_type("PathwayNotEligible", business)
    assert event.kecamatan_code == ALAK == world.store.pathways[business].kecamatan_code


async def test_a_closed_or_non_food_business_is_never_found_unable_to_self_declare_and_its_owner_is_not_told():
    world = TrainingWorld()
    closed, barber = await world.register(), await world.register(kbli_code="96021")
    await world.consume(business_closed(closed, 2))

    for business, code in ((closed, "business_closed"), (barber, "not_food_or_drink")):
        with pytest.raises(Conflict) as refused:
            await not_eligible(world, business, "pork")
        assert refused.value.code == code
        assert world.of_type("PathwayNotEligible", business) == []


async def test_an_officer_of_another_kecamatan_or_an_unknown_business_is_refused_before_the_city_wide_seating_lock():
    world = TrainingWorld()
    business = await world.register()
    form = NotEligibleForm(reason="pork", note=None)

    for who, business_id, refusal in ((ALAK_OFFICER, business, Forbidden), (OFFICER, uuid.uuid4(), NotFound)):
        world.store.seating_log.clear()
        with pytest.raises(refusal):
            await halal_pathway.record_not_eligible(halal_pathway.RecordNotEligible(business_id, form, who),
                                                    world.by(who), world.deps)  # fmt: skip
        assert world.store.seating_log == [], "refused without queueing for the lock"


async def test_a_business_not_eligible_is_never_invited_to_the_halal_cohort():
    world = TrainingWorld()
    meat = await world.register()
    await not_eligible(world, meat, "slaughtered_meat_uncertified_abattoir")
    _, cohort = await world.open_cohort(capacity=5)
    assert world.store.seats_of_cohort(cohort.id) == []
    with pytest.raises(Conflict) as refused:
        await world.enrol(cohort.id, meat)
    assert refused.value.code == "halal_not_eligible"


async def test_a_medium_food_business_is_recorded_not_eligible_once_from_the_registry_s_facts():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5)
    business = await world.register(scale="medium")
    await world.consume(updated(business, 2, scale="medium", business_name="Kue Ibu Maria & Anak"))
    [event] = world.of_type("PathwayNotEligible", business)
    assert (event.reason, event.regular_route_possible) == ("not_micro_or_small", True)
    assert world.store.seats_of_cohort(cohort.id) == []


async def test_a_food_business_the_registry_shows_grown_medium_leaves_the_halal_cohort_not_begun_it_was_seated_in():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=1)
    growing, waiting = await world.register(), await world.register()
    assert world.seated(cohort.id) == {growing}

    await world.consume(updated(growing, 2, scale="medium"))

    assert [e.reason for e in world.of_type("PathwayNotEligible", growing)] == ["not_micro_or_small"]
    assert [e.reason for e in world.of_type("TraineeWithdrew", growing)] == ["officer"]
    assert world.seated(cohort.id) == {waiting}  # the seat it left went to the next in line


async def test_a_scale_corrected_back_to_small_lifts_the_registrys_mark_and_the_business_is_invited_again():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5)
    business = await world.register(scale="medium")
    assert world.store.pathways[business].not_eligible == "not_micro_or_small"

    await world.consume(updated(business, 2, scale="small"))  # the officer had typed the wrong scale

    assert world.store.pathways[business].not_eligible is None
    assert world.seated(cohort.id) == {business}


async def test_an_officers_record_that_a_business_cannot_self_declare_stays_whatever_the_registry_says_later():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5)
    meat = await world.register()
    await not_eligible(world, meat, "slaughtered_meat_uncertified_abattoir")

    await world.consume(updated(meat, 2, scale="medium"))
    await world.consume(updated(meat, 3, scale="small"))

    assert world.store.pathways[meat].not_eligible == "slaughtered_meat_uncertified_abattoir"
    assert meat not in world.seated(cohort.id)


async def test_a_certificate_ends_the_halal_need():
    world = TrainingWorld()
    business = await world.register()
    for i, name in enumerate(STEPS):
        await step(world, business, name, date(2026, 3, 1) + timedelta(days=i))
    _, cohort = await world.open_cohort(capacity=5)
    assert world.store.seats_of_cohort(cohort.id) == []
    assert world.store.pathways[business].certified

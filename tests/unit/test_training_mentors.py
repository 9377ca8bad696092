"""Mentoring (domain/mentors.py): assignment matches sector, then kecamatan, and balances load; through the
handlers, graduates get mentors and visits after training are recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.training import mentoring
from services.training.domain.mentors import Assignment, Mentor, MentorForm, VisitForm, assign_all, choose_mentor
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, InvalidInput

from .training_fakes import ALAK, KOTA_RAJA, OEBOBO, TRAINER, TrainingWorld, business_closed, view


OTHER_TRAINER = Principal("pelatih.lain", frozenset({"trainer"}))
ADMIN = Principal("admin", frozenset({"admin"}))


def mentor(name: str, prefixes: tuple[str, ...] = (), kecamatan: tuple[str, ...] = (), load: int = 0, max_load: int = 5,
           active: bool = True, mentor_id: int | None = None) -> Mentor:  # fmt: skip
    return Mentor(uuid.UUID(int=mentor_id) if mentor_id else uuid.uuid4(), name, None, prefixes, kecamatan, max_load,
                  active, load)  # fmt: skip


def test_a_mentor_who_knows_the_sector_comes_before_one_who_works_in_the_kecamatan():
    food = mentor("ahli pangan", ("10",), (ALAK,))
    local = mentor("pendamping Oebobo", ("13",), (OEBOBO,))
    assert choose_mentor([local, food], view(kbli_code="10792", kecamatan_code=OEBOBO)) == food


def test_among_mentors_of_the_sector_the_one_in_the_kecamatan_then_the_lighter_load_comes_first():
    far = mentor("jauh", ("10",), (ALAK,), load=0)
    near_busy = mentor("dekat sibuk", ("10",), (OEBOBO,), load=4, max_load=5)
    near_free = mentor("dekat longgar", ("107",), (OEBOBO,), load=1, max_load=5)
    business = view(kbli_code="10792", kecamatan_code=OEBOBO)
    assert choose_mentor([far, near_busy, near_free], business) == near_free
    assert choose_mentor([far, near_busy], business) == near_busy  # kecamatan before load


def test_load_is_relative_to_each_mentors_maximum_and_the_cohort_s_mentor_wins_a_tie():
    small = mentor("kecil", ("10",), load=1, max_load=2)  # half full
    large = mentor("besar", ("10",), load=2, max_load=10)  # a fifth full
    assert choose_mentor([small, large], view()) == large
    twin_a, twin_b = mentor("a", ("10",), mentor_id=1), mentor("b", ("10",), mentor_id=2)
    assert choose_mentor([twin_a, twin_b], view()) == twin_a  # by id
    assert choose_mentor([twin_a, twin_b], view(), cohort_mentor=twin_b.id) == twin_b


def test_full_or_inactive_mentors_are_never_chosen_and_with_nobody_free_nobody_is():
    full = mentor("penuh", ("10",), load=3, max_load=3)
    away = mentor("cuti", ("10",), active=False)
    assert choose_mentor([full, away], view()) is None
    fallback = mentor("umum", ("47",), (ALAK,))
    assert choose_mentor([full, away, fallback], view()) == fallback  # someone rather than no one


def test_a_cohort_s_graduates_are_spread_over_the_pool_as_loads_grow():
    a, b = mentor("a", ("10",), max_load=2, mentor_id=1), mentor("b", ("10",), max_load=2, mentor_id=2)
    graduates = [view(business_id=uuid.UUID(int=i)) for i in range(1, 6)]
    chosen, after = assign_all([a, b], graduates)
    assert [chosen.get(uuid.UUID(int=i)) for i in range(1, 6)] == [a.id, b.id, a.id, b.id, None]
    assert {m.id: m.load for m in after} == {a.id: 2, b.id: 2}


def test_a_mentor_form_names_bad_prefixes_and_bounds_the_load():
    with pytest.raises(ValueError) as bad:
        MentorForm.model_validate({"name": "X", "kbli_prefixes": ["1a"], "max_load": 0})
    assert {e["loc"][0] for e in bad.value.errors()} == {"name", "kbli_prefixes", "max_load"}  # type: ignore[attr-defined]


async def add_mentor(world: TrainingWorld, name: str, prefixes: list[str], kecamatan: list[str], max_load: int = 5) -> Mentor:
    form = MentorForm(name=name, kbli_prefixes=prefixes, kecamatan=kecamatan, max_load=max_load)
    return await mentoring.add_mentor(mentoring.AddMentor(form, TRAINER), world.by(TRAINER), world.deps)


async def graduate(world: TrainingWorld, n: int = 2) -> tuple[uuid.UUID, list[uuid.UUID]]:
    ids = await world.register_many(n)
    _, cohort = await world.open_cohort(capacity=n, gives_assessment=False)
    await world.move(cohort.id, "running")
    world.clock.set(datetime(2026, 4, 28, 8, tzinfo=UTC))
    for session in (1, 2, 3, 4):
        await world.attend(cohort.id, session, {b: "present" for b in ids})
    await world.move(cohort.id, "completed")
    return cohort.id, ids


async def test_a_mentor_s_kecamatan_are_given_by_name_or_code_and_an_unknown_one_is_named():
    world = TrainingWorld()
    added = await add_mentor(world, "Dr. Yohanes", ["10", "56"], ["Oebobo", "53.71.05"])
    assert added.kecamatan_codes == (OEBOBO, KOTA_RAJA)
    with pytest.raises(InvalidInput) as refused:
        await add_mentor(world, "Ina", [], ["Oebobo", "Atlantis"])
    assert refused.value.errors[0].field == "kecamatan.1"


async def test_graduates_get_a_mentor_on_completion_matched_by_sector_and_balanced():
    world = TrainingWorld()
    food = await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"], max_load=1)
    other = await add_mentor(world, "umum", ["47"], ["Alak"], max_load=5)
    cohort_id, ids = await graduate(world)
    assigned = {e.business_id: e.mentor_id for e in world.of_type("MentorAssigned")}
    assert sorted(assigned.values()) == sorted([food.id, other.id])
    assert {e.cohort_id for e in world.of_type("MentorAssigned")} == {cohort_id}
    for business in ids:
        assert world.types_of(business)[-2:] == ["TrainingCompleted", "MentorAssigned"]


async def test_a_cohort_is_not_completed_while_the_view_being_rebuilt_lacks_its_graduates_who_would_get_no_mentor():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    ids = await world.register_many(2)
    _, cohort = await world.open_cohort(capacity=2, gives_assessment=False)
    await world.move(cohort.id, "running")
    world.clock.set(datetime(2026, 4, 28, 8, tzinfo=UTC))
    for session in (1, 2, 3, 4):
        await world.attend(cohort.id, session, {b: "present" for b in ids})
    kept = dict(world.store.views)
    world.store.views.clear()  # `berdaya replay training-view`: emptied, and read again from the registry's topic
    world.store.catching_up = True

    with pytest.raises(Conflict) as refused:
        await world.move(cohort.id, "completed")

    assert refused.value.code == "view_rebuilding" and "2 graduate(s)" in refused.value.message
    assert world.of_type("TrainingCompleted") == [] and world.store.cohorts[cohort.id].state == "running"
    world.store.views.update(kept)
    world.store.catching_up = False
    await world.move(cohort.id, "completed")
    assert len(world.of_type("MentorAssigned")) == 2


async def test_with_an_empty_pool_a_graduate_waits_without_a_mentor():
    world = TrainingWorld()
    _, ids = await graduate(world, n=1)
    assert world.of_type("MentorAssigned") == []  # no mentors yet: waits unassigned


async def test_a_visit_after_training_is_recorded_for_the_business_s_mentor():
    world = TrainingWorld()
    food = await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    form = VisitForm(visited_on=date(2026, 4, 28), notes="kemasan baru")
    await mentoring.record_visit(mentoring.RecordVisit(business, form, TRAINER), world.by(TRAINER), world.deps)
    [event] = world.of_type("MentoringVisitRecorded", business)
    assert (event.mentor_id, event.visited_on) == (food.id, date(2026, 4, 28))
    assert world.store.visits == [(business, food.id, date(2026, 4, 28), "kemasan baru")]
    for bad in (date(2026, 4, 27), date(2026, 4, 29)):  # before the training ended; in the future
        with pytest.raises(InvalidInput) as refused:
            await mentoring.record_visit(mentoring.RecordVisit(business, VisitForm(visited_on=bad), TRAINER),
                                         world.by(TRAINER), world.deps)  # fmt: skip
        assert refused.value.errors[0].field == "visited_on"


async def test_a_visit_to_a_business_without_a_mentor_is_a_conflict_and_ending_mentoring_frees_the_mentor():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"], max_load=1)
    _, [business] = await graduate(world, n=1)
    await mentoring.end_mentoring(mentoring.EndMentoring(business, TRAINER), world.by(TRAINER), world.deps)
    async with world.by(TRAINER) as uow:
        assert (await uow.store.lock_mentors())[0].load == 0
    with pytest.raises(Conflict) as refused:
        await mentoring.record_visit(mentoring.RecordVisit(business, VisitForm(visited_on=date(2026, 4, 28)), TRAINER),
                                     world.by(TRAINER), world.deps)  # fmt: skip
    assert refused.value.code == "no_mentor"


async def test_a_business_that_closes_ends_its_mentoring_and_its_mentor_has_room_for_another():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"], max_load=1)
    _, [business] = await graduate(world, n=1)

    await world.consume(business_closed(business, 2))

    assert [(a.action, a.aggregate_id) for a in world.uows[-1].audit_entries] == [("MentoringEnded", str(business))]
    assert await world.store.assignment(business) is None
    assert [a.ended_at for a in world.store.assignments] == [world.clock()]
    async with world.by(TRAINER) as uow:
        assert [m.has_room for m in await uow.store.lock_mentors()] == [True]


async def test_a_visit_to_a_closed_business_is_a_conflict_and_nothing_is_recorded_or_told():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    await world.consume(business_closed(business, 2))
    told = list(world.published)

    with pytest.raises(Conflict) as refused:
        await mentoring.record_visit(mentoring.RecordVisit(business, VisitForm(visited_on=date(2026, 4, 28)), TRAINER),
                                     world.by(TRAINER), world.deps)  # fmt: skip

    assert refused.value.code == "business_closed"
    assert world.store.visits == [] and world.published == told


async def complete_another_training(world: TrainingWorld, business: uuid.UUID, at: datetime) -> None:
    _, cohort = await world.open_cohort(capacity=2, topic="digital_marketing", title="Pemasaran digital", needs=[],
                                        requires_nib=False, gives_assessment=False)  # fmt: skip
    await world.enrol(cohort.id, business)
    await world.move(cohort.id, "running")
    world.clock.set(at)
    for session in (1, 2, 3, 4):
        await world.attend(cohort.id, session, {business: "present"})
    await world.move(cohort.id, "completed")


async def test_a_business_that_already_has_a_mentor_keeps_it_when_it_completes_another_training():
    world = TrainingWorld()
    first = await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    await add_mentor(world, "ahli pemasaran", ["10"], ["Oebobo"])
    await complete_another_training(world, business, datetime(2026, 4, 28, 9, tzinfo=UTC))
    assert len(world.of_type("TrainingCompleted", business)) == 2
    assert [e.mentor_id for e in world.of_type("MentorAssigned", business)] == [first.id]


async def test_a_mentor_kept_through_a_later_training_records_a_visit_made_between_the_two():
    world = TrainingWorld()
    first = await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)  # completed on 2026-04-28, and given its mentor
    await complete_another_training(world, business, datetime(2026, 6, 1, 9, tzinfo=UTC))

    form = VisitForm(visited_on=date(2026, 5, 10), notes="label halal")
    await mentoring.record_visit(mentoring.RecordVisit(business, form, TRAINER), world.by(TRAINER), world.deps)

    assert world.store.visits == [(business, first.id, date(2026, 5, 10), "label halal")]
    with pytest.raises(InvalidInput) as refused:  # before the mentoring began
        await mentoring.record_visit(mentoring.RecordVisit(business, VisitForm(visited_on=date(2026, 4, 27)), TRAINER),
                                     world.by(TRAINER), world.deps)  # fmt: skip
    assert refused.value.errors[0].code == "visit.before_training" and "2026-04-28" in refused.value.errors[0].message


async def test_another_trainer_can_neither_record_a_visit_nor_end_the_mentoring_and_nothing_changes():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    told = list(world.published)
    visit = VisitForm(visited_on=date(2026, 4, 28))

    for command in (mentoring.RecordVisit(business, visit, OTHER_TRAINER), mentoring.EndMentoring(business, OTHER_TRAINER)):
        handle = mentoring.record_visit if isinstance(command, mentoring.RecordVisit) else mentoring.end_mentoring
        with pytest.raises(Forbidden):
            await handle(command, world.by(OTHER_TRAINER), world.deps)  # type: ignore[arg-type]

    assert world.published == told and world.store.visits == []
    assert await world.store.assignment(business) is not None


async def test_the_trainer_who_ran_the_cohort_or_an_admin_follows_up_its_graduates():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)

    await mentoring.record_visit(mentoring.RecordVisit(business, VisitForm(visited_on=date(2026, 4, 28)), TRAINER),
                                 world.by(TRAINER), world.deps)  # fmt: skip
    await mentoring.end_mentoring(mentoring.EndMentoring(business, ADMIN), world.by(ADMIN), world.deps)

    assert len(world.store.visits) == 1 and await world.store.assignment(business) is None


async def test_a_visit_sent_again_is_recorded_once_and_another_that_day_with_other_notes_is_a_conflict():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    visit = mentoring.RecordVisit(business, VisitForm(visited_on=date(2026, 4, 28), notes="kemasan baru"), TRAINER)

    for _ in range(2):  # the answer to the first was lost; the app sends it again
        await mentoring.record_visit(visit, world.by(TRAINER), world.deps)
    with pytest.raises(Conflict) as refused:
        other = VisitForm(visited_on=date(2026, 4, 28), notes="label halal")
        await mentoring.record_visit(mentoring.RecordVisit(business, other, TRAINER), world.by(TRAINER), world.deps)

    assert refused.value.code == "visit_recorded"
    assert len(world.store.visits) == 1 and len(world.of_type("MentoringVisitRecorded", business)) == 1


async def test_a_visit_whose_mentoring_ends_while_it_is_recorded_is_refused_and_nothing_is_told():
    world = TrainingWorld()
    await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    told = list(world.published)
    locking = world.store.lock_participants

    async def ended_meanwhile(business_ids):  # noqa: ANN001, ANN202 - the end commits just before this lock is had
        await world.store.end_assignment(business, world.clock())
        return await locking(business_ids)

    world.store.lock_participants = ended_meanwhile  # type: ignore[method-assign]
    with pytest.raises(Conflict) as refused:
        await mentoring.record_visit(mentoring.RecordVisit(business, VisitForm(visited_on=date(2026, 4, 28)), TRAINER),
                                     world.by(TRAINER), world.deps)  # fmt: skip

    assert refused.value.code == "no_mentor" and world.store.visits == [] and world.published == told


async def test_ending_a_mentoring_that_another_cohort_s_mentoring_replaced_meanwhile_is_a_conflict_and_ends_nothing():
    world = TrainingWorld()
    mentor_ = await add_mentor(world, "ahli pangan", ["10"], ["Oebobo"])
    _, [business] = await graduate(world, n=1)
    newer = Assignment(business, mentor_.id, uuid.uuid4(), datetime(2026, 5, 2, tzinfo=UTC))  # another trainer's
    locking, ending = world.store.lock_participants, world.store.end_assignment
    ended_under_lock: list[uuid.UUID] = []

    async def replaced_meanwhile(business_ids):  # noqa: ANN001, ANN202 - both commit just before this lock is had
        await ending(business, world.clock())
        await world.store.add_assignments([newer])
        return await locking(business_ids)

    async def end(business_id, at):  # noqa: ANN001, ANN202
        ended_under_lock.append(business_id)
        return await ending(business_id, at)

    world.store.lock_participants = replaced_meanwhile  # type: ignore[method-assign]
    world.store.end_assignment = end  # type: ignore[method-assign]
    with pytest.raises(Conflict) as refused:
        await mentoring.end_mentoring(mentoring.EndMentoring(business, TRAINER), world.by(TRAINER), world.deps)

    assert refused.value.code == "mentoring_changed" and ended_under_lock == []


async def test_a_mentor_sent_again_under_its_idempotency_key_is_added_once_and_another_under_it_is_a_conflict():
    world = TrainingWorld()
    form = MentorForm(name="Dr. Yohanes", kbli_prefixes=["10"], kecamatan=["Oebobo"], max_load=5)

    first = await mentoring.add_mentor(mentoring.AddMentor(form, TRAINER, "mentor-yohanes"), world.by(TRAINER),
                                       world.deps)  # fmt: skip
    again = await mentoring.add_mentor(mentoring.AddMentor(form, TRAINER, "mentor-yohanes"), world.by(TRAINER),
                                       world.deps)  # fmt: skip
    assert again == first and list(world.store.mentors) == [first.id]
    assert [a.action for u in world.uows for a in u.audit_entries] == ["MentorAdded"]

    with pytest.raises(Conflict) as reused:
        await mentoring.add_mentor(mentoring.AddMentor(form.model_copy(update={"max_load": 6}), TRAINER,
                                                       "mentor-yohanes"), world.by(TRAINER), world.deps)  # fmt: skip
    assert reused.value.details == {"mentor_id": str(first.id)}
    # A key is the trainer's own: another trainer's request under the same words makes their own mentor.
    theirs = await mentoring.add_mentor(mentoring.AddMentor(form, OTHER_TRAINER, "mentor-yohanes"),
                                        world.by(OTHER_TRAINER), world.deps)  # fmt: skip
    assert theirs.id != first.id

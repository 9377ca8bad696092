"""Seats offered while a batch changes a business, on real PostgreSQL, whichever transaction starts first.

A batch making a business a prospect while a cohort opens, or while a withdrawal frees room in a full cohort: the
business gets what is left. Without the seating lock, and without the batch deciding under the cohort's lock whether
it has room, the other transaction could not see the batch's business (not committed yet) and the batch had read the
cohort as closed or full.

A batch closing a business while a withdrawal refills, or an officer enrols it by hand: the closed business keeps no
seat. Without the closing batch holding the seating lock alone, the placement read the business as active (the batch
not committed yet) and the batch had looked for its seats before the placement committed one.

A business found unable to self-declare halal (by an officer, or from the registry's facts: grown medium) while a
withdrawal refills its halal cohort: it keeps no seat there, for the same reason, so finding it so holds the seating
lock alone too; and a batch that finds it so takes it out of the halal cohorts not begun, as an officer's record does.
A scale corrected back to small lifts the registry's mark before the same batch looks for prospects.

Two cohorts completing at once: a mentor's load is counted after the mentor's lock is held, so the graduates the first
assigned count for the second. One batch refilling two open cohorts of one topic: a business is seated in one."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services.training import business_changes, halal_pathway, handlers
from services.training.domain.enrolment import ACTIVE
from services.training.domain.mentors import Assignment, Mentor
from services.training.domain.pathway import NotEligibleForm
from services.training.seating import Deps
from services.training.store_pg import PgTrainingStore, PgTrainingUnitOfWork
from shared.contracts.registry import BusinessRegistered
from shared.messaging.consumer import BatchTransaction
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.races import Work, held_back, race, two_connections
from shared.errors import Conflict
from tests.unit.training_fakes import (
    NOW, OFFICER, TRAINER, FixedClock, business_closed, cohort_form, delivery, programme_form, registered, updated,
)  # fmt: skip

pytestmark = pytest.mark.integration

PUBLISHER: Publisher[object] = Publisher("training", lambda _: [], lambda _: "none")
DEPS = Deps(wilayah=kota_kupang(), clock=FixedClock(NOW))


def joined(conn: asyncpg.Connection) -> PgTrainingUnitOfWork:
    """A unit of work in the transaction the test opened on `conn`, so the test decides when it commits."""
    return PgTrainingUnitOfWork(BatchTransaction(conn), PUBLISHER, Cause.timer("test"))


async def a_planned_cohort(conn: asyncpg.Connection, capacity: int = 3, **programme: object) -> uuid.UUID:
    async with conn.transaction():
        defined = await handlers.define_programme(handlers.DefineProgramme(programme_form(**programme), TRAINER),
                                                  joined(conn), DEPS)  # fmt: skip
    form = cohort_form(defined.id, defined.sessions, capacity=capacity)
    async with conn.transaction():
        cohort = await handlers.plan_cohort(handlers.PlanCohort(form, TRAINER), joined(conn), DEPS)
    return cohort.id


async def an_open_cohort(conn: asyncpg.Connection, capacity: int = 3, **programme: object) -> uuid.UUID:
    cohort_id = await a_planned_cohort(conn, capacity, **programme)
    async with conn.transaction():
        await handlers.move_cohort(handlers.MoveCohort(cohort_id, "open", TRAINER), joined(conn), DEPS)
    return cohort_id


async def applied(conn: asyncpg.Connection, *events: object) -> None:
    async with conn.transaction():
        await business_changes.apply_registry_events([delivery(e) for e in events], joined(conn), DEPS)  # type: ignore[arg-type]


def closed_by_a_batch(conn: asyncpg.Connection, business_id: uuid.UUID) -> Work:
    async def close() -> None:
        await business_changes.apply_registry_events([delivery(business_closed(business_id, 2))], joined(conn), DEPS)

    return close


async def a_full_cohort_and_one_left_out(officer: asyncpg.Connection, batch: asyncpg.Connection,
                                         ) -> tuple[uuid.UUID, BusinessRegistered, BusinessRegistered, BusinessRegistered]:
    """An open cohort of one seat and one place on the waitlist, both taken, and a third prospect left out."""
    cohort_id = await an_open_cohort(officer, capacity=1)
    leaving, waiting, third = registered(), registered(), registered()
    for b in (leaving, waiting, third):
        await applied(batch, b)
    assert await seats(officer, cohort_id) == {leaving.business_id: "enrolled", waiting.business_id: "waitlisted"}
    return cohort_id, leaving, waiting, third


def withdrawing(conn: asyncpg.Connection, cohort_id: uuid.UUID, business_id: uuid.UUID) -> Work:
    async def withdraw() -> None:
        await handlers.withdraw(handlers.Withdraw(cohort_id, business_id, "withdrew", OFFICER), joined(conn), DEPS)

    return withdraw


async def seats(conn: asyncpg.Connection, cohort_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("SELECT business_id, status FROM seat WHERE cohort_id = $1", cohort_id)
    return {r["business_id"]: r["status"] for r in rows}


@pytest.mark.parametrize("first", ["the batch", "the opening"])
async def test_a_business_made_a_prospect_while_its_cohort_opens_is_invited_whichever_starts_first(infra, first):
    async with two_connections(infra, "training") as (trainer, batch):
        cohort_id = await a_planned_cohort(trainer)
        business = registered()

        async def open_cohort() -> None:
            await handlers.move_cohort(handlers.MoveCohort(cohort_id, "open", TRAINER), joined(trainer), DEPS)

        async def apply_batch() -> None:
            await business_changes.apply_registry_events([delivery(business)], joined(batch), DEPS)

        await race(first == "the batch", open_cohort, trainer, apply_batch, batch)

        assert await seats(trainer, cohort_id) == {business.business_id: "enrolled"}


@pytest.mark.parametrize("first", ["the batch", "the withdrawal"])
async def test_a_business_made_a_prospect_while_a_full_cohort_frees_room_gets_it_whichever_starts_first(infra, first):
    async with two_connections(infra, "training") as (officer, batch):
        cohort_id = await a_planned_cohort(officer, capacity=1)
        async with officer.transaction():
            await handlers.move_cohort(handlers.MoveCohort(cohort_id, "open", TRAINER), joined(officer), DEPS)
        leaving, waiting, newcomer = registered(), registered(), registered()
        for b in (leaving, waiting):  # one seat and one place on the waitlist: full
            async with batch.transaction():
                await business_changes.apply_registry_events([delivery(b)], joined(batch), DEPS)
        assert await seats(officer, cohort_id) == {leaving.business_id: "enrolled", waiting.business_id: "waitlisted"}

        async def apply_batch() -> None:
            await business_changes.apply_registry_events([delivery(newcomer)], joined(batch), DEPS)

        await race(first == "the batch", withdrawing(officer, cohort_id, leaving.business_id), officer, apply_batch,
                   batch)  # fmt: skip

        assert await seats(officer, cohort_id) == {leaving.business_id: "withdrawn", waiting.business_id: "enrolled",
                                                   newcomer.business_id: "waitlisted"}  # fmt: skip


@pytest.mark.parametrize("first", ["the batch", "the withdrawal"])
async def test_a_business_closed_while_a_withdrawal_refills_its_cohort_keeps_no_seat_whichever_starts_first(infra,
                                                                                                           first):
    async with two_connections(infra, "training") as (officer, batch):
        cohort_id, leaving, waiting, closing = await a_full_cohort_and_one_left_out(officer, batch)

        await race(first == "the batch", withdrawing(officer, cohort_id, leaving.business_id), officer,
                   closed_by_a_batch(batch, closing.business_id), batch)  # fmt: skip

        now = await seats(officer, cohort_id)
        assert now.get(closing.business_id) not in ACTIVE, f"the closed business holds a seat: {now}"
        assert (now[leaving.business_id], now[waiting.business_id]) == ("withdrawn", "enrolled")


@pytest.mark.parametrize("first", ["the batch", "the enrolment"])
async def test_a_business_closed_while_an_officer_enrols_it_by_hand_keeps_no_seat_whichever_starts_first(infra, first):
    async with two_connections(infra, "training") as (officer, batch):
        # A youth programme: the business (not youth-owned) is no prospect, so only the officer seats it.
        cohort_id = await an_open_cohort(officer, topic="digital_marketing", title="Pemasaran Digital",
                                         needs=["youth_digital"], requires_nib=False)  # fmt: skip
        closing = registered()
        await applied(batch, closing)
        refused: list[Conflict] = []

        async def enrol() -> None:
            try:
                await handlers.enrol_by_hand(handlers.EnrolByHand(cohort_id, closing.business_id, OFFICER),
                                             joined(officer), DEPS)  # fmt: skip
            except Conflict as e:
                refused.append(e)

        await race(first == "the batch", enrol, officer, closed_by_a_batch(batch, closing.business_id), batch)

        now = await seats(officer, cohort_id)
        assert now.get(closing.business_id) not in ACTIVE, f"the closed business holds a seat: {now}"
        if first == "the batch":
            assert [e.code for e in refused] == ["business_closed"]
        else:
            assert not refused and now == {closing.business_id: "withdrawn"}


def marking(conn: asyncpg.Connection, business_id: uuid.UUID) -> Work:
    async def mark() -> None:
        await halal_pathway.record_not_eligible(halal_pathway.RecordNotEligible(
            business_id, NotEligibleForm(reason="pork"), OFFICER), joined(conn), DEPS)  # fmt: skip

    return mark


def grown_medium_by_a_batch(conn: asyncpg.Connection, business_id: uuid.UUID) -> Work:
    async def grow() -> None:
        await business_changes.apply_registry_events([delivery(updated(business_id, 2, scale="medium"))], joined(conn),
                                                     DEPS)  # fmt: skip

    return grow


@pytest.mark.parametrize("by", ["an officer", "the registry's facts"])
@pytest.mark.parametrize("first", ["the marking", "the withdrawal"])
async def test_a_business_found_unable_to_self_declare_while_a_withdrawal_refills_its_halal_cohort_keeps_no_seat(
    infra, first, by,
):
    async with two_connections(infra, "training") as (officer, batch):
        cohort_id, leaving, waiting, unable = await a_full_cohort_and_one_left_out(officer, batch)  # halal programme

        mark = marking if by == "an officer" else grown_medium_by_a_batch
        await race(first == "the marking", withdrawing(officer, cohort_id, leaving.business_id), officer,
                   mark(batch, unable.business_id), batch)  # fmt: skip

        now = await seats(officer, cohort_id)
        assert now.get(unable.business_id) not in ACTIVE, f"the business that can't self-declare holds a seat: {now}"
        assert (now[leaving.business_id], now[waiting.business_id]) == ("withdrawn", "enrolled")
        reason = await officer.fetchval("SELECT not_eligible FROM pathway WHERE business_id = $1", unable.business_id)
        assert reason == ("pork" if by == "an officer" else "not_micro_or_small")


async def test_a_business_the_registry_shows_grown_medium_leaves_the_halal_cohort_it_was_seated_in(infra):
    async with two_connections(infra, "training") as (officer, batch):
        cohort_id = await an_open_cohort(officer)
        growing = registered()
        await applied(batch, growing)
        assert await seats(officer, cohort_id) == {growing.business_id: "enrolled"}

        async with batch.transaction():
            await grown_medium_by_a_batch(batch, growing.business_id)()

        assert await seats(officer, cohort_id) == {growing.business_id: "withdrawn"}
        reason = await officer.fetchval("SELECT withdraw_reason FROM seat WHERE business_id = $1", growing.business_id)
        assert reason == "officer"


async def test_a_scale_corrected_back_to_small_lifts_the_registrys_mark_in_time_for_the_same_batch_to_seat_it(infra):
    async with two_connections(infra, "training") as (officer, batch):
        cohort_id = await an_open_cohort(officer)
        mistaken = registered(scale="medium")
        await applied(batch, mistaken)
        assert await seats(officer, cohort_id) == {}

        await applied(batch, updated(mistaken.business_id, 2, scale="small"))

        assert await seats(officer, cohort_id) == {mistaken.business_id: "enrolled"}
        assert await officer.fetchval("SELECT not_eligible FROM pathway WHERE business_id = $1",
                                      mistaken.business_id) is None  # fmt: skip


async def test_a_mentors_load_is_read_after_waiting_for_another_assignment_so_no_mentor_passes_their_maximum(infra):
    async with two_connections(infra, "training") as (completing, other):
        mentor = Mentor(uuid.uuid4(), "Ibu Yuliana", None, ("10",), (), max_load=3, active=True)
        await PgTrainingStore(completing).add_mentor(mentor, "petugas", NOW)
        async with completing.transaction():
            [locked] = await PgTrainingStore(completing).lock_mentors()
            assert locked.load == 0
            await PgTrainingStore(completing).add_assignments([Assignment(uuid.uuid4(), mentor.id, None, NOW)
                                                               for _ in range(3)])  # fmt: skip

            async def second_completion() -> list[Mentor]:
                async with other.transaction():
                    return await PgTrainingStore(other).lock_mentors()

            waiting = asyncio.create_task(second_completion())
            await held_back(waiting, completing)  # by the first completion's lock
        [seen] = await waiting
        assert (seen.load, seen.has_room) == (3, False)  # the three assigned while it waited count


async def test_a_business_one_batch_makes_a_prospect_of_two_open_cohorts_of_one_topic_is_seated_in_one(infra):
    async with two_connections(infra, "training") as (trainer, batch):
        first = await an_open_cohort(trainer, title="Pendampingan Halal Oebobo")
        second = await an_open_cohort(trainer, title="Pendampingan Halal Alak")
        business = registered()

        await applied(batch, business)

        held = [(await seats(trainer, c)).get(business.business_id) for c in (first, second)]
        assert held.count("enrolled") == 1 and held.count(None) == 1

"""Seats offered while a batch makes a business a prospect, on real PostgreSQL: a cohort opening, or a withdrawal
freeing room in a full cohort. Whichever transaction starts first, the business gets what is left. Without the
opening lock, and without the batch deciding under the cohort's lock whether it has room, the other transaction
could not see the batch's business (not committed yet) and the batch had read the cohort as closed or full."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.training import business_changes, handlers
from services.training.seating import Deps
from services.training.store_pg import PgTrainingUnitOfWork
from shared.messaging.consumer import BatchTransaction
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.races import race, two_connections
from tests.unit.training_fakes import (
    NOW, OFFICER, TRAINER, FixedClock, cohort_form, delivery, programme_form, registered,
)  # fmt: skip

pytestmark = pytest.mark.integration

PUBLISHER: Publisher[object] = Publisher("training", lambda _: [], lambda _: "none")
DEPS = Deps(wilayah=kota_kupang(), clock=FixedClock(NOW))


def joined(conn: asyncpg.Connection) -> PgTrainingUnitOfWork:
    """A unit of work in the transaction the test opened on `conn`, so the test decides when it commits."""
    return PgTrainingUnitOfWork(BatchTransaction(conn), PUBLISHER, Cause.timer("test"))


async def a_planned_cohort(conn: asyncpg.Connection, capacity: int = 3) -> uuid.UUID:
    async with conn.transaction():
        programme = await handlers.define_programme(handlers.DefineProgramme(programme_form(), TRAINER), joined(conn),
                                                    DEPS)  # fmt: skip
    form = cohort_form(programme.id, programme.sessions, capacity=capacity)
    async with conn.transaction():
        cohort = await handlers.plan_cohort(handlers.PlanCohort(form, TRAINER), joined(conn), DEPS)
    return cohort.id


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

        async def withdraw() -> None:
            await handlers.withdraw(handlers.Withdraw(cohort_id, leaving.business_id, "withdrew", OFFICER),
                                    joined(officer), DEPS)  # fmt: skip

        async def apply_batch() -> None:
            await business_changes.apply_registry_events([delivery(newcomer)], joined(batch), DEPS)

        await race(first == "the batch", withdraw, officer, apply_batch, batch)

        assert await seats(officer, cohort_id) == {leaving.business_id: "withdrawn", waiting.business_id: "enrolled",
                                                   newcomer.business_id: "waitlisted"}  # fmt: skip

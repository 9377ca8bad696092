"""A cohort opened while a batch makes a business a prospect for it, on real PostgreSQL: whichever transaction starts
first, the business is invited. Without the opening lock the opening could not see the batch's business (not yet
committed) and the batch, having read the cohort as not open yet, left it to the opening."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from services.training import business_changes, handlers
from services.training.seating import Deps
from services.training.store_pg import PgTrainingUnitOfWork
from shared.db import load_migrations, migrate
from shared.messaging.consumer import BatchTransaction
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.support import drop_database, fresh_database
from tests.unit.training_fakes import NOW, TRAINER, FixedClock, cohort_form, delivery, programme_form, registered

pytestmark = pytest.mark.integration

PUBLISHER: Publisher[object] = Publisher("training", lambda _: [], lambda _: "none")
DEPS = Deps(wilayah=kota_kupang(), clock=FixedClock(NOW))


def joined(conn: asyncpg.Connection) -> PgTrainingUnitOfWork:
    """A unit of work in the transaction the test opened on `conn`, so the test decides when it commits."""
    return PgTrainingUnitOfWork(BatchTransaction(conn), PUBLISHER, Cause.timer("test"))


async def a_planned_cohort(conn: asyncpg.Connection) -> uuid.UUID:
    async with conn.transaction():
        programme = await handlers.define_programme(handlers.DefineProgramme(programme_form(), TRAINER), joined(conn),
                                                    DEPS)  # fmt: skip
    async with conn.transaction():
        cohort = await handlers.plan_cohort(handlers.PlanCohort(cohort_form(programme.id, programme.sessions), TRAINER),
                                            joined(conn), DEPS)  # fmt: skip
    return cohort.id


@pytest.mark.parametrize("first", ["the batch", "the opening"])
async def test_a_business_made_a_prospect_while_its_cohort_opens_is_invited_whichever_starts_first(infra, first):
    database = await fresh_database(infra.postgres_url)
    opening, batch = await asyncpg.connect(database), await asyncpg.connect(database)
    try:
        await migrate(opening, load_migrations("shared.messaging.migrations", "messaging")
                      + load_migrations("services.training.migrations", "training"))  # fmt: skip
        cohort_id = await a_planned_cohort(opening)
        business = registered()

        async def open_cohort() -> None:
            await handlers.move_cohort(handlers.MoveCohort(cohort_id, "open", TRAINER), joined(opening), DEPS)

        async def apply_batch() -> None:
            await business_changes.apply_registry_events([delivery(business)], joined(batch), DEPS)

        async def committed(conn: asyncpg.Connection, work: Callable[[], Awaitable[None]]) -> None:
            async with conn.transaction():
                await work()

        (opener, work), (other, later) = (((batch, apply_batch), (opening, open_cohort)) if first == "the batch"
                                          else ((opening, open_cohort), (batch, apply_batch)))  # fmt: skip
        async with opener.transaction():
            await work()  # all its work done, not committed yet
            waiting = asyncio.create_task(committed(other, later))
            await asyncio.sleep(0.5)
            assert not waiting.done(), f"{first} had not committed, yet the other went ahead"
        await asyncio.wait_for(waiting, timeout=10)

        seats = await opening.fetch("SELECT business_id, status FROM seat WHERE cohort_id = $1", cohort_id)
        assert [(r["business_id"], r["status"]) for r in seats] == [(business.business_id, "enrolled")]
    finally:
        await opening.close()
        await batch.close()
        await drop_database(infra.postgres_url, database)

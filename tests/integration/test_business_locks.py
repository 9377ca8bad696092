"""The race behind a view that misses a fact: two consumers of one service, each in its own transaction, write about
one business to different tables (the registry's consumer the view row, another the funding or training fact), and
each reads the other's write as not there yet. Locking a business must hold even before its view row exists."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from services.funding.store_pg import PgFundingStore
from services.training.store_pg import PgTrainingStore
from shared.db import load_migrations, migrate
from tests.integration.races import held_back
from tests.support import drop_database, fresh_database

pytestmark = pytest.mark.integration

STORES: dict[str, Callable[[asyncpg.Connection], object]] = {"funding": PgFundingStore, "training": PgTrainingStore}


@pytest.mark.parametrize("service", sorted(STORES))
async def test_a_second_batch_about_a_business_waits_for_the_first_even_before_its_view_row_exists(infra, service):
    database = await fresh_database(infra.postgres_url)
    registering, other = await asyncpg.connect(database), await asyncpg.connect(database)
    store = STORES[service]
    try:
        await migrate(registering, load_migrations("shared.messaging.migrations", "messaging")
                      + load_migrations(f"services.{service}.migrations", service))  # fmt: skip
        business = uuid.uuid4()
        async with registering.transaction():
            assert await store(registering).lock_views([business]) == {}  # type: ignore[attr-defined]

            async def second_batch() -> None:
                async with other.transaction():
                    await store(other).lock_views([uuid.uuid4(), business])  # type: ignore[attr-defined]

            waiting = asyncio.create_task(second_batch())
            await held_back(waiting, registering)  # the second batch waits while the first is being applied
        await asyncio.wait_for(waiting, timeout=10)
    finally:
        await registering.close()
        await other.close()
        await drop_database(infra.postgres_url, database)

"""Funding's offers on a real PostgreSQL: an offer reads back exactly as it was written, by either write path."""

from __future__ import annotations

import asyncpg
import pytest

from services.funding.domain import offers
from services.funding.store_pg import PgFundingStore
from shared.db import load_migrations, migrate
from tests.support import drop_database, fresh_database
from tests.unit.funding_fakes import NOW, pledge, view

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("count", [3, 40], ids=["a few, inserted", "many, copied"])
async def test_an_offer_reads_back_as_it_was_made_ranking_included(infra, count):
    database = await fresh_database(infra.postgres_url)
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn, load_migrations("services.funding.migrations", "funding"))
        store = PgFundingStore(conn)
        made_pledge = pledge(total_rupiah=count * 1_000_000, amount_per_business_rupiah=1_000_000,
                             min_offer_rupiah=1_000_000)  # fmt: skip
        await store.add_sponsor(made_pledge.sponsor_id, made_pledge.sponsor_name, made_pledge.sponsor_kind, NOW)
        await store.add_pledge(made_pledge)
        ranked = offers.rank_candidates(made_pledge.earmarks, [view() for _ in range(count)], NOW.date())
        _, made = offers.allocate(made_pledge, ranked, NOW, 14)
        assert len(made) == count

        await store.add_offers(made)

        assert [await store.offer(o.id) for o in made] == made
        assert made[0].ranking["rank"] == 1
    finally:
        await conn.close()
        await drop_database(infra.postgres_url, database)

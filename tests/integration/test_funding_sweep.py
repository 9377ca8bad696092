"""Funding's sweep on real PostgreSQL: once a day it ranks again every open pledge with money left, so a business
that time alone made eligible (a year since registration counts toward readiness) is offered, and no pledge is
ranked twice in a Kupang day, whichever instance sweeps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest

from services.funding import handlers
from services.funding.domain import events
from services.funding.domain.pledges import PledgeForm, SponsorForm
from services.funding.integration import translate
from services.funding.matching import Deps
from services.funding.store_pg import PgFundingStore, PgFundingUnitOfWork
from shared.auth import Principal
from shared.contracts import new_envelope
from shared.contracts.funding import CSRPledged
from shared.db import Database, load_migrations, migrate
from shared.messaging.consumer import Delivery
from shared.reference.wilayah import kota_kupang
from shared.reference.wita import today_in_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.funding_events import registered
from tests.support import drop_database, fresh_database
from tests.unit.fakes import FixedClock

pytestmark = pytest.mark.integration

PROGRAMME_OFFICE = Principal("it-officer", frozenset({"officer"}))

PUBLISHER: Publisher[object] = Publisher("funding", lambda _: [], lambda _: "none")


@pytest.fixture
async def db(infra) -> AsyncIterator[Database]:
    url = await fresh_database(infra.postgres_url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, load_migrations("shared.messaging.migrations", "messaging")
                          + load_migrations("services.funding.migrations", "funding"))  # fmt: skip
        yield Database(pool, acquire_timeout=5)
    finally:
        await pool.close()
        await drop_database(infra.postgres_url, url)


def unit_of_work(db: Database):  # noqa: ANN201 - the sweep's factory of units of work
    return lambda: PgFundingUnitOfWork(db, PUBLISHER, Cause.timer("test"))


async def a_pledge_asking_readiness(db: Database, deps: Deps, min_readiness: int) -> CSRPledged:
    sponsor_id = await handlers.register_sponsor(
        handlers.RegisterSponsor(SponsorForm(name="Bank NTT", kind="bank"), PROGRAMME_OFFICE), unit_of_work(db)(), deps)  # fmt: skip
    today = today_in_kupang(deps.clock())
    form = PledgeForm.model_validate({
        "sponsor_id": str(sponsor_id), "title": "untuk usaha yang siap", "instrument": "grant",
        "total_rupiah": 10_000_000, "amount_per_business_rupiah": 1_000_000, "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=30)).isoformat(), "earmarks": {"min_readiness": min_readiness},
    })  # fmt: skip
    sponsor = Principal("it-sponsor", frozenset({"sponsor"}), sponsor_id=sponsor_id)
    pledge = await handlers.make_pledge(handlers.MakePledge(form, sponsor), unit_of_work(db)(), deps)
    [event] = [e for e in translate(events.PledgeMade(pledge), b"key") if isinstance(e, CSRPledged)]
    return event


async def offered(db: Database) -> set[uuid.UUID]:
    return {r["business_id"] for r in await db.fetch("SELECT business_id FROM offer WHERE status = 'offered'")}


async def test_a_business_a_year_old_since_yesterday_is_offered_money_on_the_next_sweep_and_once(db) -> None:
    clock = FixedClock(datetime.now(UTC))
    deps = Deps(wilayah=kota_kupang(), clock=clock)
    # Readiness 20 (sales reported, youth-owned), 30 with the track record of a year; the pledge asks 30.
    veteran = registered(1).model_copy(update={"registered_at": clock.now - timedelta(days=800)})
    newcomer = registered(2).model_copy(update={"registered_at": clock.now - timedelta(days=364)})
    deliveries = [Delivery(new_envelope(b, producer="registry", correlation_id=uuid.uuid4()), b)
                  for b in (veteran, newcomer)]  # fmt: skip
    await handlers.apply_registry_events(deliveries, unit_of_work(db)(), deps)
    pledged = await a_pledge_asking_readiness(db, deps, min_readiness=30)
    await handlers.match_pledge(pledged, unit_of_work(db)(), deps)
    assert await offered(db) == {veteran.business_id}

    await handlers.follow_pledge_windows(unit_of_work(db), deps)  # the same day: nothing new, nothing ranked
    assert await offered(db) == {veteran.business_id}

    clock.now += timedelta(days=1)
    await handlers.follow_pledge_windows(unit_of_work(db), deps)
    assert await offered(db) == {veteran.business_id, newcomer.business_id}
    ranked_at = await db.fetchval("SELECT matched_at FROM pledge WHERE id = $1", pledged.pledge_id)
    assert ranked_at == clock.now

    clock.now += timedelta(minutes=5)  # another instance's sweep, the same day
    await handlers.follow_pledge_windows(unit_of_work(db), deps)
    assert await db.fetchval("SELECT matched_at FROM pledge WHERE id = $1", pledged.pledge_id) == ranked_at
    assert await db.fetchval("SELECT count(*) FROM offer") == 2


async def test_the_day_a_pledge_was_last_ranked_is_the_day_in_kupang_not_in_utc(db) -> None:
    day = datetime.now(UTC).date()
    clock = FixedClock(datetime.combine(day, time(3), tzinfo=UTC))  # 11.00 WITA, the same day in Kupang
    deps = Deps(wilayah=kota_kupang(), clock=clock)
    pledged = await a_pledge_asking_readiness(db, deps, min_readiness=30)  # valid from `day`
    await handlers.match_pledge(pledged, unit_of_work(db)(), deps)

    async def due_next_day(ranked_at: datetime) -> bool:
        async with db.acquire() as conn:
            await conn.execute("UPDATE pledge SET matched_at = $1", ranked_at)
            return pledged.pledge_id in await PgFundingStore(conn).pledges_to_rematch(day + timedelta(days=1))

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day + timedelta(days=days), time(hour, minute), tzinfo=UTC)

    assert await due_next_day(at(0, 15, 59))  # 23.59 WITA on `day`
    assert not await due_next_day(at(0, 16, 0))  # 00.00 WITA the next day
    assert not await due_next_day(at(-1, 15))  # the day before its window opened: it has yet to start
    await db.execute("UPDATE pledge SET status = 'exhausted'")
    assert not await due_next_day(at(0, 15, 59))  # nothing left to offer

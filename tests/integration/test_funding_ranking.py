"""A pledge ranked while a batch changes a business, on real PostgreSQL: whichever transaction starts first, a
business the batch makes eligible gets its offer and a business it closes keeps none. Without the ranking lock the
ranking could not see the batch's change (not committed yet) and the batch could not see the ranking's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from services.funding import handlers
from services.funding.domain import events
from services.funding.integration import translate
from services.funding.domain.pledges import PledgeForm, SponsorForm
from services.funding.matching import Deps
from services.funding.store_pg import PgFundingUnitOfWork
from shared.auth import Principal
from shared.contracts import EventPayload, new_envelope
from shared.contracts.funding import CSRPledged
from shared.db import load_migrations, migrate
from shared.messaging.consumer import BatchTransaction, Delivery
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.funding_events import closed, nib_issued, registered
from tests.support import drop_database, fresh_database

pytestmark = pytest.mark.integration

PUBLISHER: Publisher[object] = Publisher("funding", lambda _: [], lambda _: "none")
DEPS = Deps(wilayah=kota_kupang(), clock=lambda: datetime.now(UTC))


def joined(conn: asyncpg.Connection) -> PgFundingUnitOfWork:
    """A unit of work in the transaction the test opened on `conn`, so the test decides when it commits."""
    return PgFundingUnitOfWork(BatchTransaction(conn), PUBLISHER, Cause.timer("test"))


async def a_pledge_not_ranked_yet(conn: asyncpg.Connection) -> CSRPledged:
    async with conn.transaction():
        sponsor_id = await handlers.register_sponsor(
            handlers.RegisterSponsor(SponsorForm(name="Bank NTT", kind="bank")), joined(conn), DEPS)  # fmt: skip
    today = date.today()
    form = PledgeForm.model_validate({
        "sponsor_id": str(sponsor_id), "title": "untuk semua ber-NIB", "instrument": "grant",
        "total_rupiah": 10_000_000, "amount_per_business_rupiah": 1_000_000, "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=30)).isoformat(), "earmarks": {"nib_required": True},
    })  # fmt: skip
    sponsor = Principal("it-sponsor", frozenset({"sponsor"}), sponsor_id=sponsor_id)
    async with conn.transaction():
        pledge = await handlers.make_pledge(handlers.MakePledge(form, sponsor), joined(conn), DEPS)
    [event] = [e for e in translate(events.PledgeMade(pledge), b"key") if isinstance(e, CSRPledged)]
    return event


def deliveries(*payloads: EventPayload) -> list[Delivery]:
    return [Delivery(new_envelope(p, producer="registry", correlation_id=uuid.uuid4()), p) for p in payloads]


async def offers_to(conn: asyncpg.Connection, business_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM offer WHERE business_id = $1 AND status = 'offered'", business_id)


@contextlib.asynccontextmanager
async def two_connections(infra) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:  # noqa: ANN001
    """One for the ranking, one for the batch, on a fresh migrated database."""
    database = await fresh_database(infra.postgres_url)
    ranking, batch = await asyncpg.connect(database), await asyncpg.connect(database)
    try:
        await migrate(ranking, load_migrations("shared.messaging.migrations", "messaging")
                      + load_migrations("services.funding.migrations", "funding"))  # fmt: skip
        yield ranking, batch
    finally:
        await ranking.close()
        await batch.close()
        await drop_database(infra.postgres_url, database)


async def race(first: str, ranking: asyncpg.Connection, pledged: CSRPledged, batch: asyncpg.Connection,
               events: list[Delivery]) -> None:  # fmt: skip
    """The one named `first` does all its work and has not committed yet when the other starts; the other must wait."""

    async def rank() -> None:
        await handlers.match_pledge(pledged, joined(ranking), DEPS)

    async def apply_batch() -> None:
        await handlers.apply_registry_events(events, joined(batch), DEPS)

    async def committed(conn: asyncpg.Connection, work: Callable[[], Awaitable[None]]) -> None:
        async with conn.transaction():
            await work()

    (opener, work), (other, later) = (((batch, apply_batch), (ranking, rank)) if first == "the batch"
                                      else ((ranking, rank), (batch, apply_batch)))  # fmt: skip
    async with opener.transaction():
        await work()
        waiting = asyncio.create_task(committed(other, later))
        await asyncio.sleep(0.5)
        assert not waiting.done(), f"{first} had not committed, yet the other went ahead"
    await asyncio.wait_for(waiting, timeout=10)


@pytest.mark.parametrize("first", ["the batch", "the ranking"])
async def test_a_business_made_eligible_while_a_pledge_is_ranked_gets_its_offer_whichever_starts_first(infra, first):
    async with two_connections(infra) as (ranking, batch):
        pledged = await a_pledge_not_ranked_yet(ranking)
        business = registered(1)

        await race(first, ranking, pledged, batch, deliveries(business, nib_issued(business)))

        assert await offers_to(ranking, business.business_id) == 1
        assert await ranking.fetchval("SELECT matched_at IS NOT NULL FROM pledge WHERE id = $1", pledged.pledge_id)


@pytest.mark.parametrize("first", ["the batch", "the ranking"])
async def test_a_business_closed_while_a_pledge_is_ranked_keeps_no_offer_whichever_starts_first(infra, first):
    async with two_connections(infra) as (ranking, batch):
        pledged = await a_pledge_not_ranked_yet(ranking)
        business = registered(1)
        async with batch.transaction():
            await handlers.apply_registry_events(deliveries(business, nib_issued(business)), joined(batch), DEPS)

        await race(first, ranking, pledged, batch, deliveries(closed(business, 3)))

        assert await offers_to(ranking, business.business_id) == 0
        assert await ranking.fetchval("SELECT status FROM business_view WHERE business_id = $1",
                                      business.business_id) == "closed"  # fmt: skip

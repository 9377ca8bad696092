"""A pledge ranked while a batch makes a business eligible, on real PostgreSQL: whichever transaction starts first,
the business gets its offer. Without the ranking lock the ranking could not see the batch's business (not yet
committed) and the batch, having read the pledge as not ranked yet, left it to the ranking."""

from __future__ import annotations

import asyncio
import uuid
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
from shared.contracts import new_envelope
from shared.contracts.funding import CSRPledged
from shared.db import load_migrations, migrate
from shared.messaging.consumer import BatchTransaction, Delivery
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.funding_events import nib_issued, registered
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


def batch_making_eligible() -> tuple[uuid.UUID, list[Delivery]]:
    business = registered(1)
    payloads = [business, nib_issued(business)]
    return business.business_id, [
        Delivery(new_envelope(p, producer="registry", correlation_id=uuid.uuid4()), p) for p in payloads
    ]


async def offers_to(conn: asyncpg.Connection, business_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM offer WHERE business_id = $1 AND status = 'offered'", business_id)


@pytest.mark.parametrize("first", ["the batch", "the ranking"])
async def test_a_business_made_eligible_while_a_pledge_is_ranked_gets_its_offer_whichever_starts_first(infra, first):
    database = await fresh_database(infra.postgres_url)
    ranking, batch = await asyncpg.connect(database), await asyncpg.connect(database)
    try:
        await migrate(ranking, load_migrations("shared.messaging.migrations", "messaging")
                      + load_migrations("services.funding.migrations", "funding"))  # fmt: skip
        pledged = await a_pledge_not_ranked_yet(ranking)
        business_id, deliveries = batch_making_eligible()

        async def rank() -> None:
            await handlers.match_pledge(pledged, joined(ranking), DEPS)

        async def apply_batch() -> None:
            await handlers.apply_registry_events(deliveries, joined(batch), DEPS)

        async def committed(conn: asyncpg.Connection, work) -> None:  # noqa: ANN001
            async with conn.transaction():
                await work()

        (opener, work), (other, later) = (((batch, apply_batch), (ranking, rank)) if first == "the batch"
                                          else ((ranking, rank), (batch, apply_batch)))  # fmt: skip
        async with opener.transaction():
            await work()  # all its work done, not committed yet
            waiting = asyncio.create_task(committed(other, later))
            await asyncio.sleep(0.5)
            assert not waiting.done(), f"{first} had not committed, yet the other went ahead"
        await asyncio.wait_for(waiting, timeout=10)

        assert await offers_to(ranking, business_id) == 1
        assert await ranking.fetchval("SELECT matched_at IS NOT NULL FROM pledge WHERE id = $1", pledged.pledge_id)
    finally:
        await ranking.close()
        await batch.close()
        await drop_database(infra.postgres_url, database)

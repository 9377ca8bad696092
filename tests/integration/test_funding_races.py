"""Offers made while a batch changes a business, on real PostgreSQL: a pledge being ranked, or money a decline gave
back being offered again. Whichever transaction starts first, a business the batch makes eligible gets its offer and
a business it closes keeps none. Without the ranking lock, and without the closing batch locking the pledges the
business qualified for, the other transaction could not see the batch's change (not committed yet) and the batch
could not see the other's offer."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
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
from shared.messaging.consumer import BatchTransaction, Delivery
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.funding_events import closed, nib_issued, registered
from tests.integration.races import race, two_connections

pytestmark = pytest.mark.integration

PUBLISHER: Publisher[object] = Publisher("funding", lambda _: [], lambda _: "none")
DEPS = Deps(wilayah=kota_kupang(), clock=lambda: datetime.now(UTC))
OFFICER = Principal("it-officer", frozenset({"officer"}))


def joined(conn: asyncpg.Connection) -> PgFundingUnitOfWork:
    """A unit of work in the transaction the test opened on `conn`, so the test decides when it commits."""
    return PgFundingUnitOfWork(BatchTransaction(conn), PUBLISHER, Cause.timer("test"))


async def a_pledge_not_ranked_yet(conn: asyncpg.Connection, total_rupiah: int = 10_000_000) -> CSRPledged:
    async with conn.transaction():
        sponsor_id = await handlers.register_sponsor(
            handlers.RegisterSponsor(SponsorForm(name="Bank NTT", kind="bank"), OFFICER), joined(conn), DEPS)  # fmt: skip
    today = date.today()
    form = PledgeForm.model_validate({
        "sponsor_id": str(sponsor_id), "title": "untuk semua ber-NIB", "instrument": "grant",
        "total_rupiah": total_rupiah, "amount_per_business_rupiah": 1_000_000, "valid_from": today.isoformat(),
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


def ranking(conn: asyncpg.Connection, pledged: CSRPledged) -> Callable[[], Awaitable[None]]:
    async def rank() -> None:
        await handlers.match_pledge(pledged, joined(conn), DEPS)

    return rank


def applying(conn: asyncpg.Connection, events: list[Delivery]) -> Callable[[], Awaitable[None]]:
    async def apply_batch() -> None:
        await handlers.apply_registry_events(events, joined(conn), DEPS)

    return apply_batch


@pytest.mark.parametrize("first", ["the batch", "the ranking"])
async def test_a_business_made_eligible_while_a_pledge_is_ranked_gets_its_offer_whichever_starts_first(infra, first):
    async with two_connections(infra, "funding") as (rank_on, batch):
        pledged = await a_pledge_not_ranked_yet(rank_on)
        business = registered(1)
        making_eligible = applying(batch, deliveries(business, nib_issued(business)))

        await race(first == "the batch", ranking(rank_on, pledged), rank_on, making_eligible, batch)

        assert await offers_to(rank_on, business.business_id) == 1
        assert await rank_on.fetchval("SELECT matched_at IS NOT NULL FROM pledge WHERE id = $1", pledged.pledge_id)


@pytest.mark.parametrize("first", ["the batch", "the ranking"])
async def test_a_business_closed_while_a_pledge_is_ranked_keeps_no_offer_whichever_starts_first(infra, first):
    async with two_connections(infra, "funding") as (rank_on, batch):
        pledged = await a_pledge_not_ranked_yet(rank_on)
        business = registered(1)
        async with batch.transaction():
            await handlers.apply_registry_events(deliveries(business, nib_issued(business)), joined(batch), DEPS)
        closing = applying(batch, deliveries(closed(business, 3)))

        await race(first == "the batch", ranking(rank_on, pledged), rank_on, closing, batch)

        assert await offers_to(rank_on, business.business_id) == 0
        assert await rank_on.fetchval("SELECT status FROM business_view WHERE business_id = $1",
                                      business.business_id) == "closed"  # fmt: skip


@pytest.mark.parametrize("first", ["the batch", "the decline"])
async def test_a_business_closed_while_a_decline_offers_its_money_again_keeps_no_offer_whichever_starts_first(
    infra, first
):
    async with two_connections(infra, "funding") as (officer, batch):
        pledged = await a_pledge_not_ranked_yet(officer, total_rupiah=1_000_000)  # one offer's worth
        declining, closing = registered(1), registered(2)  # registered first, so ranked first
        async with batch.transaction():
            await handlers.apply_registry_events(deliveries(declining, nib_issued(declining), closing,
                                                            nib_issued(closing)), joined(batch), DEPS)  # fmt: skip
        async with officer.transaction():
            await handlers.match_pledge(pledged, joined(officer), DEPS)
        offer_id = await officer.fetchval("SELECT id FROM offer WHERE business_id = $1", declining.business_id)
        assert offer_id is not None and await offers_to(officer, closing.business_id) == 0

        async def decline() -> None:
            await handlers.decline_offer(handlers.DeclineOffer(offer_id, "pemilik menolak", OFFICER), joined(officer),
                                         DEPS)  # fmt: skip

        await race(first == "the batch", decline, officer, applying(batch, deliveries(closed(closing, 3))), batch)

        assert await offers_to(officer, closing.business_id) == 0
        remaining = await officer.fetchval("SELECT total_rupiah - reserved_rupiah - accepted_rupiah - disbursed_rupiah"
                                           " FROM pledge WHERE id = $1", pledged.pledge_id)  # fmt: skip
        assert remaining == 1_000_000, "the declined money is neither lost nor held by a closed business's offer"

"""Offer reminders on a real PostgreSQL: a pledge's whole allocation expires at one moment, and every owner of it is
reminded once, however many there are, while an offer made too late for a reminder and an answered one are not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier import handlers
from services.notifier.sweeps import remind_offers
from shared.contracts.funding import FundingAccepted, FundingMatched
from tests.gateways.notifier import Clock, notifier

pytestmark = pytest.mark.integration

OFFERED_AT = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
EXPIRES_AT = OFFERED_AT + timedelta(days=14)  # one allocation: every offer of it expires together


def matched(n: int, **overrides) -> FundingMatched:  # noqa: ANN003
    values = dict(pledge_id=uuid.UUID(int=1), offer_id=uuid.UUID(int=1000 + n), business_id=uuid.UUID(int=5000 + n),
                  amount_rupiah=5_000_000, business_name=f"Usaha Kupang {n}", contact_phone=f"+62813{n:08d}",
                  kecamatan_code="53.71.04", sponsor_name="Bank NTT", instrument="grant", financing_programme=None,
                  readiness=60, rank=n + 1, offered_at=OFFERED_AT, expires_at=EXPIRES_AT)  # fmt: skip
    return FundingMatched(**{**values, **overrides})


async def test_every_owner_of_an_allocation_larger_than_a_sweeps_batch_is_reminded_once(database_url):
    clock = Clock(OFFERED_AT)
    async with notifier(database_url, clock=clock) as n:
        for i in range(25):
            await n.handle(handlers.funding_offer, matched(i))
        late = matched(99, offered_at=EXPIRES_AT - timedelta(hours=30))  # its own message is fresh enough
        await n.handle(handlers.funding_offer, late)
        await n.handle(handlers.offer_answered, FundingAccepted(
            pledge_id=uuid.UUID(int=1), offer_id=matched(0).offer_id, business_id=matched(0).business_id,
            amount_rupiah=5_000_000, accepted_at=OFFERED_AT + timedelta(days=1)))  # fmt: skip

        clock.now = EXPIRES_AT - timedelta(hours=47)
        assert await remind_offers(n.uow, n.deps, batch=10) == 24  # three pages of one expiry moment
        assert await remind_offers(n.uow, n.deps, batch=10) == 0  # once

        reminded = await n.fetch("SELECT offer_id FROM message WHERE template = 'offer_reminder' ORDER BY offer_id")
        assert [r["offer_id"] for r in reminded] == [matched(i).offer_id for i in range(1, 25)]

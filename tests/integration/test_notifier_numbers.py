"""An owner's number changed on a real PostgreSQL with the real WhatsApp client: what still waits to go is sent to the
new number, never to the one given up (Indonesian numbers are recycled, and an offer names the business and the
money), while what is already on its way is left alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier import handlers
from shared.contracts.funding import FundingMatched
from shared.contracts.registry import BusinessRegistered, BusinessUpdated
from tests.gateways.notifier import Clock, notifier, whatsapp_client

pytestmark = pytest.mark.integration

NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 22.00 WITA: an owner's message waits for 07.00
OLD, NEW = "+6281355550001", "+6281355550002"


def registered(business_id: uuid.UUID, phone: str) -> BusinessRegistered:
    return BusinessRegistered(
        business_id=business_id, business_version=1, business_name="Tenun Ikat Ina Ndao", kbli_code="13912",
        kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, youth_owned=False, women_owned=True, nib_status="none", nib=None,
        contact_phone=phone, status="active", registered_at=NIGHT, source="officer",
    )  # fmt: skip


def matched(business_id: uuid.UUID, phone: str) -> FundingMatched:
    return FundingMatched(
        pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=business_id, amount_rupiah=5_000_000,
        business_name="Tenun Ikat Ina Ndao", contact_phone=phone, kecamatan_code="53.71.04", sponsor_name="Bank NTT",
        instrument="grant", financing_programme=None, readiness=60, rank=1, offered_at=NIGHT,
        expires_at=NIGHT + timedelta(days=14),
    )  # fmt: skip


async def test_an_offer_waiting_for_morning_goes_to_the_owners_new_number_and_never_to_the_old_one(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    clock = Clock(NIGHT)
    business = uuid.uuid4()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}, clock=clock) as n:
        await n.handle(handlers.welcome, registered(business, OLD), producer="registry")
        offer_event = await n.handle(handlers.funding_offer, matched(business, OLD))
        changed = registered(business, NEW).model_dump(exclude={"source"}) | {"business_version": 2}

        await n.handle(handlers.keep_contact, BusinessUpdated(**changed, changed_fields=("contact_phone",)),
                       producer="registry")  # fmt: skip
        clock.advance(hours=10)  # 08.00 WITA
        await n.worker().pass_once()

        assert [m.to for m in api.sent] == [NEW.removeprefix("+")] * 2  # the welcome and the offer, both to the new
        rows = await n.deliveries(event_id=offer_event)
        assert sorted((r["recipient"], r["status"]) for r in rows) == [(OLD, "withheld"), (NEW, "sent")]
        assert await n.fetch("SELECT recipient_phone FROM message WHERE event_id = $1", offer_event) == [(NEW,)]


async def test_a_message_already_claimed_for_the_old_number_is_left_to_its_send(database_url, cloud) -> None:
    api, server = cloud
    business = uuid.uuid4()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:  # 10.00 WITA
        await n.handle(handlers.welcome, registered(business, OLD), producer="registry")
        await n.db.execute("UPDATE delivery SET status = 'sending', holder = 'host-a:1',"
                           " lease_until = now() + interval '1 minute'")  # fmt: skip
        changed = registered(business, NEW).model_dump(exclude={"source"}) | {"business_version": 2}

        await n.handle(handlers.keep_contact, BusinessUpdated(**changed, changed_fields=("contact_phone",)),
                       producer="registry")  # fmt: skip

        [row] = await n.deliveries()
        assert (row["recipient"], row["status"]) == (OLD, "sending")  # on its way: not sent twice

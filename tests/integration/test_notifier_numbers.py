"""An owner's number changed on a real PostgreSQL with the real WhatsApp client: what still waits to go is sent to the
new number, never to the one given up (Indonesian numbers are recycled, and an offer names the business and the
money), while what is already on its way is left alone."""

from __future__ import annotations

import uuid

import pytest

from services.notifier import handlers
from services.notifier.delivery_outcomes import ResolveDelivery, resolve_delivery
from services.notifier.domain.channels import AT_LEAST_ONCE
from shared.auth import Principal
from tests.gateways.notifier import Clock, notifier, whatsapp_client
from tests.unit.notifier_fakes import NIGHT, matched, number_changed, registered

pytestmark = pytest.mark.integration

OLD, NEW = "+6281355550001", "+6281355550002"  # NIGHT: 22.00 WITA, an owner's message waits for 07.00


async def test_an_offer_waiting_for_morning_goes_to_the_owners_new_number_and_never_to_the_old_one(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    clock = Clock(NIGHT)
    business = uuid.uuid4()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}, clock=clock) as n:
        await n.handle(handlers.welcome, registered(business_id=business, contact_phone=OLD), producer="registry")
        offer_event = await n.handle(handlers.funding_offer, matched(business_id=business, contact_phone=OLD))
        await n.handle(handlers.keep_contact, number_changed(NEW, business_id=business), producer="registry")
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
        await n.handle(handlers.welcome, registered(business_id=business, contact_phone=OLD), producer="registry")
        await n.db.execute("UPDATE delivery SET status = 'sending', holder = 'host-a:1',"
                           " lease_until = now() + interval '1 minute'")  # fmt: skip
        await n.handle(handlers.keep_contact, number_changed(NEW, business_id=business), producer="registry")

        [row] = await n.deliveries()
        assert (row["recipient"], row["status"]) == (OLD, "sending")  # on its way: not sent twice


async def test_an_offer_waiting_for_morning_goes_to_the_old_number_once_a_change_to_it_is_put_right(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    clock = Clock(NIGHT)
    business = uuid.uuid4()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}, clock=clock) as n:
        await n.handle(handlers.keep_contact, registered(business_id=business, contact_phone=OLD), producer="registry")
        offer_event = await n.handle(handlers.funding_offer, matched(business_id=business, contact_phone=OLD))
        await n.handle(handlers.keep_contact, number_changed(NEW, business_id=business), producer="registry")  # a typo
        await n.handle(handlers.keep_contact, number_changed(OLD, version=3, business_id=business), producer="registry")
        clock.advance(hours=10)  # 08.00 WITA
        await n.worker().pass_once()

        assert [m.to for m in api.sent] == [OLD.removeprefix("+")]  # the offer, once, to the number the owner has
        rows = await n.deliveries(event_id=offer_event)
        assert sorted((r["recipient"], r["status"]) for r in rows) == [(OLD, "sent"), (NEW, "withheld")]
        assert await n.fetch("SELECT recipient_phone, status FROM message WHERE event_id = $1", offer_event) == [
            (OLD, "sent")]


async def test_a_failed_offer_sent_again_by_hand_after_a_number_change_goes_to_the_new_number(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    business = uuid.uuid4()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:  # 10.00 WITA
        await n.handle(handlers.keep_contact, registered(business_id=business, contact_phone=OLD), producer="registry")
        offer_event = await n.handle(handlers.funding_offer, matched(business_id=business, contact_phone=OLD))
        await n.db.execute("UPDATE delivery SET status = 'failed', attempts = 4")  # the gateway refused it for good
        await n.handle(handlers.keep_contact, number_changed(NEW, business_id=business), producer="registry")
        [failed] = await n.deliveries(event_id=offer_event)

        await resolve_delivery(ResolveDelivery(failed["id"], "resend", "", Principal("operator-ana",
                                                                                     frozenset({"operator"}))),
                               n.uow(), n.deps)  # fmt: skip
        await n.worker().pass_once()

        assert [m.to for m in api.sent] == [NEW.removeprefix("+")]
        rows = await n.deliveries(event_id=offer_event)
        assert sorted((r["recipient"], r["status"]) for r in rows) == [(OLD, "withheld"), (NEW, "sent")]


async def test_a_send_left_mid_flight_as_the_number_changed_goes_again_to_the_new_number_only(database_url, cloud):
    # The contact's change readdressed what was queued; the delivery being sent went again to the number given up.
    api, server = cloud
    business = uuid.uuid4()
    gateway = whatsapp_client(api, server.url, guarantee=AT_LEAST_ONCE)
    async with notifier(database_url, {"whatsapp": gateway}) as n:  # 10.00 WITA
        await n.handle(handlers.welcome, registered(business_id=business, contact_phone=OLD), producer="registry")
        await n.db.execute("UPDATE delivery SET status = 'sending', holder = 'host-a:1', attempts = 1,"
                           " lease_until = now() - interval '1 second'")  # its process stopped mid-send
        await n.handle(handlers.keep_contact, number_changed(NEW, business_id=business), producer="registry")

        await n.worker().pass_once()

        assert [m.to for m in api.sent] == [NEW.removeprefix("+")]
        assert sorted((r["recipient"], r["status"]) for r in await n.deliveries()) == [(OLD, "withheld"), (NEW, "sent")]

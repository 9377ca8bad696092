"""The notifier's delivery use cases against fakes (no database, no gateway, no waiting): how a recorded message is
planned (channel, consent, quiet hours, officers told of an offer at risk), what a gateway's status report and an
owner's reply do, what officers set, reminders and digests, and the delivery worker's pass (claims, answers,
retries, stranded sends, the last look, the rate limit, the local outbox)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.notifier import handlers
from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.channels.local import LocalOutboxFiles
from services.notifier.delivery import DeliveryWorker, WorkerSettings
from services.notifier.delivery_outcomes import (
    GatewayStatus,
    Reply,
    ResolveDelivery,
    owner_replied,
    record_status,
    resolve_delivery,
)
from services.notifier.directory import (
    SaveOfficer,
    SetPreference,
    remove_officer,
    save_officer,
    save_sponsor_contact,
    set_preference,
)
from services.notifier.domain import texts
from services.notifier.domain.channels import (
    AT_LEAST_ONCE,
    AT_MOST_ONCE,
    SMS,
    WHATSAPP,
    Accepted,
    Available,
    Guarantee,
    Rejected,
    SendResult,
    Transient,
)
from services.notifier.domain.consent import Preference
from services.notifier.domain.delivery import RetryPolicy
from services.notifier.domain.digest import OfferFact, PledgeFact
from services.notifier.domain.messages import Contact
from services.notifier.domain.planning import DeliveryRules
from services.notifier.domain.ratelimit import RateLimit
from services.notifier.domain.schedule import QuietHours
from services.notifier.figures import NotifierFigures
from services.notifier.recording import Deps
from services.notifier.store import Outgoing
from services.notifier.sweeps import remind_offers, send_digests
from shared.auth import Principal
from shared.contracts import EventPayload, new_envelope
from shared.contracts.envelope import RecordRefused
from shared.contracts.funding import CSRPledged, Earmarks, FundingAccepted, FundsDisbursed
from shared.contracts.training import PathwayStalled
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.unit_of_work import Cause

from .fakes import FakeNotifierStore, FakeNotifierUnitOfWork, FixedClock
from .notifier_fakes import BUSINESS, MORNING, NIGHT, PHONE, matched, number_changed, registered, wita


BOTH = Available(whatsapp=True, sms=True)


def new_deps(clock: FixedClock, available: Available = BOTH, quiet: QuietHours = QuietHours()) -> Deps:
    ids = iter(uuid.UUID(int=n) for n in range(1, 10_000))
    return Deps(clock=clock, new_id=lambda: next(ids), rules=DeliveryRules(available=available, quiet=quiet))


async def deliver(handler: Any, event: EventPayload, store: FakeNotifierStore, deps: Deps) -> uuid.UUID:
    envelope = new_envelope(event, producer="funding", correlation_id=uuid.uuid4(), occurred_at=deps.clock())
    await handler(event, FakeNotifierUnitOfWork(store, Cause.event(envelope)), deps)
    return envelope.event_id


NEW_PHONE = "+6281299990000"


def deliveries(store: FakeNotifierStore, template: str) -> list:
    ids = {m.id for m in store.messages if m.template == template}
    return [d for d in store.deliveries.values() if d.message_id in ids]


def message(store: FakeNotifierStore, template: str) -> Any:
    [found] = [m for m in store.messages if m.template == template]
    return found


# ---------------------------------------------------------------------------------------------------------------
# Planning a recorded message
# ---------------------------------------------------------------------------------------------------------------


async def test_an_offer_recorded_by_day_is_queued_on_whatsapp_at_once() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await deliver(handlers.funding_offer, matched(), store, deps)

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.channel, delivery.recipient, delivery.status, delivery.not_before) == (WHATSAPP, PHONE, "queued", MORNING)
    assert store.status_of(message(store, "funding_offer")) == "queued"


async def test_an_offer_recorded_at_night_waits_for_07_00_wita() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    await deliver(handlers.funding_offer, matched(expires_at=NIGHT + timedelta(days=14)), store, deps)

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.not_before) == ("queued", wita(2026, 11, 24, 7))
    assert deliveries(store, "offer_at_risk_officer") == []


async def test_an_offer_that_would_expire_before_morning_is_withheld_and_the_kecamatans_officers_are_emailed() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT), Available(whatsapp=True, email=True))
    store.officers[uuid.uuid4()] = ("yohana@kupangkota.go.id", "Yohana", ("53.71.04",))
    await deliver(handlers.funding_offer, matched(expires_at=wita(2026, 11, 24, 5)), store, deps)

    [owner] = deliveries(store, "funding_offer")
    assert owner.status == "withheld" and "expire during quiet hours" in (owner.reason or "")
    [officer] = deliveries(store, "offer_at_risk_officer")
    assert (officer.channel, officer.recipient, officer.status) == ("email", "yohana@kupangkota.go.id", "queued")
    flagged = message(store, "offer_at_risk_officer")
    assert flagged.subject == "Tawaran hampir berakhir: Sei Sapi Ibu Maria" and "tidak terkirim" in flagged.body


async def test_an_offer_claimed_in_quiet_hours_that_would_expire_before_morning_is_withheld_and_officers_emailed():
    # Planned at 20.50, claimed at 21.05 (a backlog, the rate limit): it was put back to 07.00 with no word to the
    # officers, and sent then about an offer gone at 23.00.
    clock = FixedClock(wita(2026, 11, 23, 20, 50))
    store, deps = FakeNotifierStore(clock), new_deps(clock, Available(whatsapp=True, email=True))
    store.officers[uuid.uuid4()] = ("yohana@kupangkota.go.id", "Yohana", ("53.71.04",))
    gateway = ScriptedGateway(WHATSAPP)
    await deliver(handlers.funding_offer, matched(offered_at=clock(), expires_at=wita(2026, 11, 23, 23)), store, deps)
    assert [d.status for d in deliveries(store, "funding_offer")] == ["queued"]

    clock.set(wita(2026, 11, 23, 21, 5))
    await worker(store, deps, [gateway]).pass_once()
    clock.set(wita(2026, 11, 24, 7))
    await worker(store, deps, [gateway]).pass_once()

    [owner] = deliveries(store, "funding_offer")
    assert (owner.status, owner.attempts) == ("withheld", 0) and "expire during quiet hours" in (owner.reason or "")
    assert [c.template for c in gateway.calls] == []
    assert [d.recipient for d in deliveries(store, "offer_at_risk_officer")] == ["yohana@kupangkota.go.id"]


async def test_an_offer_claimed_in_quiet_hours_with_less_than_a_day_left_at_07_00_waits_and_officers_are_told() -> None:
    clock = FixedClock(wita(2026, 11, 23, 20, 50))
    store, deps = FakeNotifierStore(clock), new_deps(clock, Available(whatsapp=True, email=True))
    store.officers[uuid.uuid4()] = ("yohana@kupangkota.go.id", "Yohana", ("53.71.04",))
    await deliver(handlers.funding_offer, matched(offered_at=clock(), expires_at=wita(2026, 11, 24, 20)), store, deps)
    assert deliveries(store, "offer_at_risk_officer") == []  # planned to go at once, with 23 hours to answer

    clock.set(wita(2026, 11, 23, 21, 5))
    await worker(store, deps, [ScriptedGateway(WHATSAPP)]).pass_once()

    [owner] = deliveries(store, "funding_offer")
    assert (owner.status, owner.not_before) == ("queued", wita(2026, 11, 24, 7))  # 13 hours left then
    assert [d.recipient for d in deliveries(store, "offer_at_risk_officer")] == ["yohana@kupangkota.go.id"]


async def test_a_message_for_an_owner_who_opted_out_is_recorded_with_its_delivery_withheld() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    store.preferences[PHONE] = Preference(PHONE, opted_out_at=MORNING - timedelta(days=1))
    await deliver(handlers.funding_offer, matched(), store, deps)
    await deliver(handlers.funds_disbursed, FundsDisbursed(
        pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=BUSINESS, amount_rupiah=5_000_000, reference="T-1",
        disbursed_at=MORNING, business_name="Sei Sapi Ibu Maria", contact_phone=PHONE, sponsor_name="Bank NTT"),
        store, deps)  # fmt: skip

    [offer] = deliveries(store, "funding_offer")
    [paid] = deliveries(store, "funds_disbursed")
    assert (offer.status, paid.status) == ("withheld", "queued")
    assert store.status_of(message(store, "funding_offer")) == "withheld"


async def test_officers_messages_go_to_each_officer_of_the_kecamatan_else_to_the_city_wide_ones_else_the_local_outbox() -> None:
    stalled = PathwayStalled(business_id=BUSINESS, participant_version=1, waiting_for="submitted",
                             since=date(2026, 11, 1), days=22, kecamatan_code="53.71.04")  # fmt: skip
    email = Available(email=True)

    here = FakeNotifierStore()
    here.officers |= {uuid.uuid4(): ("a@kota.go.id", "A", ("53.71.04",)), uuid.uuid4(): ("b@kota.go.id", "B", ()),
                      uuid.uuid4(): ("c@kota.go.id", "C", ("53.71.01",))}  # fmt: skip
    await deliver(handlers.halal_stalled, stalled, here, new_deps(FixedClock(NIGHT), email))
    assert [(d.channel, d.recipient, d.not_before) for d in deliveries(here, "halal_stalled_officer")] == [
        ("email", "a@kota.go.id", NIGHT)]  # email goes at any hour  # fmt: skip

    city = FakeNotifierStore()
    city.officers[uuid.uuid4()] = ("b@kota.go.id", "B", ())
    await deliver(handlers.halal_stalled, stalled, city, new_deps(FixedClock(MORNING), email))
    assert [d.recipient for d in deliveries(city, "halal_stalled_officer")] == ["b@kota.go.id"]

    nobody = FakeNotifierStore()
    await deliver(handlers.halal_stalled, stalled, nobody, new_deps(FixedClock(MORNING), email))
    [kept] = deliveries(nobody, "halal_stalled_officer")
    assert (kept.channel, kept.recipient) == ("local", "officers:53.71.04")
    assert "no email address in the directory" in (kept.reason or "")


async def test_a_message_waiting_for_its_owners_contact_is_planned_when_the_contact_arrives() -> None:
    stalled = PathwayStalled(business_id=BUSINESS, participant_version=1, waiting_for="submitted",
                             since=date(2026, 11, 1), days=22, kecamatan_code="53.71.04")  # fmt: skip
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await deliver(handlers.halal_stalled, stalled, store, deps)
    assert deliveries(store, "halal_stalled") == [] and store.status_of(message(store, "halal_stalled")) == "waiting"

    await deliver(handlers.welcome, registered(), store, deps)

    [planned] = deliveries(store, "halal_stalled")
    assert (planned.channel, planned.recipient, planned.status) == (WHATSAPP, PHONE, "queued")


async def test_messages_still_queued_to_a_number_the_owner_gave_up_go_to_the_new_number_instead() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    await deliver(handlers.keep_contact, registered(), store, deps)
    await deliver(handlers.funding_offer, matched(expires_at=NIGHT + timedelta(days=14)), store, deps)  # waits for 07.00

    await deliver(handlers.keep_contact, number_changed(NEW_PHONE), store, deps)

    old, new = sorted(deliveries(store, "funding_offer"), key=lambda d: d.recipient != PHONE)
    assert (old.recipient, old.status) == (PHONE, "withheld") and "number changed" in (old.reason or "")
    assert (new.recipient, new.status, new.not_before) == (NEW_PHONE, "queued", wita(2026, 11, 24, 7))
    assert message(store, "funding_offer").recipient_phone == NEW_PHONE
    assert store.status_of(message(store, "funding_offer")) == "queued"


async def test_a_number_changed_and_changed_back_before_the_message_went_sends_it_to_that_number_after_all() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    await deliver(handlers.keep_contact, registered(), store, deps)
    await deliver(handlers.funding_offer, matched(expires_at=NIGHT + timedelta(days=14)), store, deps)  # for 07.00

    await deliver(handlers.keep_contact, number_changed(NEW_PHONE, version=2), store, deps)  # a typo
    await deliver(handlers.keep_contact, number_changed(PHONE, version=3), store, deps)  # put right

    by_phone = {d.recipient: d for d in deliveries(store, "funding_offer")}
    assert (by_phone[PHONE].status, by_phone[PHONE].not_before) == ("queued", wita(2026, 11, 24, 7))
    assert by_phone[NEW_PHONE].status == "withheld"
    assert message(store, "funding_offer").recipient_phone == PHONE
    assert store.status_of(message(store, "funding_offer")) == "queued"


async def test_a_change_of_something_else_or_an_older_snapshot_readdresses_nothing() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    await deliver(handlers.keep_contact, registered(business_version=3), store, deps)
    await deliver(handlers.funding_offer, matched(expires_at=NIGHT + timedelta(days=14)), store, deps)

    await deliver(handlers.keep_contact, number_changed(NEW_PHONE, version=2), store, deps)  # read late: older
    await deliver(handlers.keep_contact, registered(business_version=4, business_name="Sei Sapi Mama Maria"), store, deps)

    [only] = deliveries(store, "funding_offer")
    assert (only.recipient, only.status) == (PHONE, "queued")


async def test_a_reminder_and_an_offer_go_to_the_number_the_registry_last_gave_not_the_one_funding_carried() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    await deliver(handlers.keep_contact, registered(), store, deps)
    offer = matched()  # funding matched it while it still had the old number
    await deliver(handlers.funding_offer, offer, store, deps)
    await deliver(handlers.keep_contact, number_changed(NEW_PHONE), store, deps)
    late = matched(offer_id=uuid.uuid4(), pledge_id=uuid.UUID(int=501))  # funding's view not yet told of the change
    await deliver(handlers.funding_offer, late, store, deps)

    clock.set(offer.expires_at - timedelta(hours=47))
    assert await remind_offers(by_time(store), deps) == 2

    assert {m.recipient_phone for m in store.messages if m.template == "offer_reminder"} == {NEW_PHONE}
    assert [m.recipient_phone for m in store.messages if m.offer_id == late.offer_id and m.template == "funding_offer"] == [NEW_PHONE]


# ---------------------------------------------------------------------------------------------------------------
# Gateways' status reports
# ---------------------------------------------------------------------------------------------------------------


async def _sent_offer(store: FakeNotifierStore, deps: Deps, provider_id: str | None = "wamid.1") -> Any:
    await deliver(handlers.funding_offer, matched(), store, deps)
    [delivery] = deliveries(store, "funding_offer")
    store.deliveries[delivery.id] = replace(delivery, status="sent" if provider_id else "sending", attempts=1,
                                            provider_id=provider_id)  # fmt: skip
    return store.deliveries[delivery.id]


async def test_a_status_for_a_message_nobody_sent_is_recorded_and_changes_nothing() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    sent = await _sent_offer(store, deps)

    matched_any = await record_status(GatewayStatus(WHATSAPP, "wamid.OTHER", "read"),
                                      FakeNotifierUnitOfWork(store), deps)  # fmt: skip

    assert matched_any is False
    assert store.status_reports == [(WHATSAPP, "wamid.OTHER", "read", None)]
    assert store.deliveries[sent.id].status == "sent"


async def test_a_status_arriving_before_the_send_was_recorded_finds_its_delivery_by_our_id() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    sending = await _sent_offer(store, deps, provider_id=None)

    report = GatewayStatus(WHATSAPP, "wamid.EARLY", "delivered", delivery_id=sending.id)
    assert await record_status(report, FakeNotifierUnitOfWork(store), deps)

    now = store.deliveries[sending.id]
    assert (now.status, now.provider_id) == ("delivered", "wamid.EARLY")
    assert store.status_of(message(store, "funding_offer")) == "delivered"


async def test_whatsapp_saying_the_number_has_none_fails_the_delivery_and_queues_it_by_sms() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    sent = await _sent_offer(store, deps)

    report = GatewayStatus(WHATSAPP, "wamid.1", "failed", "131026 - Message undeliverable", no_whatsapp=True)
    await record_status(report, FakeNotifierUnitOfWork(store), deps)

    failed, by_sms = deliveries(store, "funding_offer")
    assert (failed.status, failed.reason) == ("failed", "131026 - Message undeliverable")
    assert (by_sms.channel, by_sms.status, by_sms.fallback_of, by_sms.recipient) == (SMS, "queued", sent.id, PHONE)
    assert store.preferences[PHONE].no_whatsapp_since == MORNING
    assert store.status_of(message(store, "funding_offer")) == "queued"


async def test_without_an_sms_gateway_a_number_without_whatsapp_stays_failed() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING), Available(whatsapp=True))
    await _sent_offer(store, deps)
    await record_status(GatewayStatus(WHATSAPP, "wamid.1", "failed", "131026", no_whatsapp=True),
                        FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    assert [d.status for d in deliveries(store, "funding_offer")] == ["failed"]


# ---------------------------------------------------------------------------------------------------------------
# Owners' replies and what officers set
# ---------------------------------------------------------------------------------------------------------------


async def test_stop_opts_the_number_out_and_answers_at_once_even_at_night_on_the_channel_the_owner_used() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    reply = Reply(SMS, PHONE, "BERHENTI", uuid.uuid4())

    assert await owner_replied(reply, FakeNotifierUnitOfWork(store), deps) == "stop"

    assert store.preferences[PHONE].opted_out_at == NIGHT
    assert store.consent == [(PHONE, "stop", SMS)]
    [answer] = deliveries(store, "opted_out")
    assert (answer.channel, answer.not_before, answer.status) == (SMS, NIGHT, "queued")
    assert message(store, "opted_out").body == texts.opted_out_text()


async def test_mulai_opts_back_in_and_a_reply_that_is_no_command_changes_nothing() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    store.preferences[PHONE] = Preference(PHONE, channel=SMS, opted_out_at=MORNING - timedelta(days=3))

    assert await owner_replied(Reply(WHATSAPP, PHONE, "Mulai", uuid.uuid4()),
                               FakeNotifierUnitOfWork(store), deps) == "start"  # fmt: skip
    assert await owner_replied(Reply(WHATSAPP, PHONE, "Kapan dananya cair?", uuid.uuid4()),
                               FakeNotifierUnitOfWork(store), deps) is None  # fmt: skip

    assert store.preferences[PHONE] == Preference(PHONE, channel=SMS)  # opted in, the channel kept
    assert [m.template for m in store.messages] == ["opted_in"]


async def test_a_mulai_written_before_the_owners_stop_and_arriving_after_it_changes_nothing_and_is_not_answered() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    stop = Reply(WHATSAPP, PHONE, "STOP", uuid.uuid4(), written_at=MORNING - timedelta(minutes=25))
    assert await owner_replied(stop, FakeNotifierUnitOfWork(store), deps) == "stop"
    clock.set(MORNING + timedelta(minutes=30))  # Meta retries a MULAI the database refused half an hour ago

    late = Reply(WHATSAPP, PHONE, "MULAI", uuid.uuid4(), written_at=MORNING - timedelta(minutes=30))
    assert await owner_replied(late, FakeNotifierUnitOfWork(store), deps) == "start"

    assert store.preferences[PHONE].opted_out_at == MORNING
    assert store.consent == [(PHONE, "stop", WHATSAPP)]
    assert [m.template for m in store.messages] == ["opted_out"]


async def test_a_stop_held_up_until_after_the_owners_later_mulai_is_applied_all_the_same() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    mulai = Reply(WHATSAPP, PHONE, "MULAI", uuid.uuid4(), written_at=MORNING - timedelta(minutes=5))
    await owner_replied(mulai, FakeNotifierUnitOfWork(store), deps)
    clock.set(MORNING + timedelta(minutes=30))

    late = Reply(WHATSAPP, PHONE, "STOP", uuid.uuid4(), written_at=MORNING - timedelta(minutes=30))
    assert await owner_replied(late, FakeNotifierUnitOfWork(store), deps) == "stop"

    assert store.preferences[PHONE].opted_out  # opting out is never held against the owner: MULAI undoes it


async def test_a_reply_written_after_the_latest_change_applies_and_one_dated_in_the_future_counts_from_now() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    future = Reply(WHATSAPP, PHONE, "STOP", uuid.uuid4(), written_at=MORNING + timedelta(days=365))
    assert await owner_replied(future, FakeNotifierUnitOfWork(store), deps) == "stop"
    clock.set(MORNING + timedelta(minutes=5))

    again = Reply(WHATSAPP, PHONE, "MULAI", uuid.uuid4(), written_at=MORNING + timedelta(minutes=1))
    assert await owner_replied(again, FakeNotifierUnitOfWork(store), deps) == "start"

    assert store.preferences[PHONE].opted_out_at is None  # a year ahead did not lock the number out
    assert [m.template for m in store.messages] == ["opted_out", "opted_in"]


OFFICER_OEBOBO = Principal("officer-yohana", frozenset({"officer"}), kecamatan_codes=frozenset({"53.71.04"}))
OFFICER_ALAK = Principal("officer-maria", frozenset({"officer"}), kecamatan_codes=frozenset({"53.71.01"}))


async def _with_contact(store: FakeNotifierStore) -> None:
    store.contacts[BUSINESS] = Contact(BUSINESS, 1, "Sei Sapi Ibu Maria", PHONE, "Oebobo", "Fatululi", "active", "53.71.04")


async def test_an_officer_records_an_owners_channel_and_consent_and_it_is_audited() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await _with_contact(store)
    uow = FakeNotifierUnitOfWork(store, Cause.request(uuid.uuid4(), OFFICER_OEBOBO.actor))

    saved = await set_preference(SetPreference(BUSINESS, OFFICER_OEBOBO, channel="sms", opted_out=True),
                                 uow, deps)  # fmt: skip

    assert saved == Preference(PHONE, channel="sms", opted_out_at=MORNING)
    assert store.consent == [(PHONE, "stop", "officer:officer-yohana")]
    assert [(a.actor, a.action) for a in uow.committed_audit] == [("officer-yohana", "preference_changed")]


async def test_an_officer_of_another_kecamatan_may_not_and_only_bahasa_indonesia_can_be_chosen() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await _with_contact(store)
    with pytest.raises(Forbidden):
        await set_preference(SetPreference(BUSINESS, OFFICER_ALAK, channel="sms"),
                             FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    with pytest.raises(InvalidInput, match="Bahasa Indonesia"):
        await set_preference(SetPreference(BUSINESS, OFFICER_OEBOBO, language="en"),
                             FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    with pytest.raises(NotFound):
        await set_preference(SetPreference(uuid.uuid4(), OFFICER_OEBOBO, channel="sms"),
                             FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    assert store.preferences == {}


async def test_only_an_unknown_or_failed_delivery_is_resolved_by_hand_and_a_resend_queues_it_again() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    sent = await _sent_offer(store, deps)
    operator = Principal("operator-ana", frozenset({"operator"}))
    with pytest.raises(Conflict, match="only unknown or failed"):
        await resolve_delivery(ResolveDelivery(sent.id, "resend", "", operator),
                               FakeNotifierUnitOfWork(store), deps)  # fmt: skip

    store.deliveries[sent.id] = replace(sent, status="unknown")
    again = await resolve_delivery(ResolveDelivery(sent.id, "resend", "not in Zenziva's report", operator),
                                   FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    assert (again.status, again.not_before) == ("queued", MORNING)
    assert again.reason == "queued again by hand (resend by operator-ana: not in Zenziva's report)"


async def test_a_resend_on_a_channel_this_notifier_has_no_gateway_for_is_refused_naming_it() -> None:
    # Queued on WhatsApp with only SMS configured, no worker claimed it, and it could not be resolved again either.
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    failed = replace(await _sent_offer(store, deps), status="failed")
    store.deliveries[failed.id] = failed
    sms_only = replace(deps, rules=replace(deps.rules, available=Available(sms=True)))
    operator = Principal("operator-ana", frozenset({"operator"}))

    with pytest.raises(Conflict, match="on whatsapp, whose gateway is not configured") as refused:
        await resolve_delivery(ResolveDelivery(failed.id, "resend", "", operator), FakeNotifierUnitOfWork(store),
                               sms_only)  # fmt: skip

    assert refused.value.code == "delivery.channel_not_configured" and store.deliveries[failed.id] == failed
    settled = await resolve_delivery(ResolveDelivery(failed.id, "failed", "", operator), FakeNotifierUnitOfWork(store),
                                     sms_only)  # fmt: skip
    assert settled.status == "failed"


async def test_a_failed_delivery_sent_again_by_hand_after_the_owner_changed_number_goes_to_the_new_number() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await deliver(handlers.keep_contact, registered(), store, deps)
    failed = replace(await _sent_offer(store, deps), status="failed")
    store.deliveries[failed.id] = failed
    await deliver(handlers.keep_contact, number_changed(NEW_PHONE), store, deps)  # nothing queued to move then
    operator = Principal("operator-ana", frozenset({"operator"}))

    resolved = await resolve_delivery(ResolveDelivery(failed.id, "resend", "gateway down", operator),
                                      FakeNotifierUnitOfWork(store), deps)  # fmt: skip

    assert (resolved.recipient, resolved.status) == (PHONE, "withheld") and "number changed" in (resolved.reason or "")
    [new] = [d for d in deliveries(store, "funding_offer") if d.recipient == NEW_PHONE]
    assert (new.status, new.not_before) == ("queued", MORNING)
    assert message(store, "funding_offer").recipient_phone == NEW_PHONE


async def test_an_officer_resolves_deliveries_only_for_owners_in_the_kecamatan_their_token_acts_in() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await _with_contact(store)
    failed = replace(await _sent_offer(store, deps), status="failed")
    store.deliveries[failed.id] = failed

    for outcome in ("failed", "resend", "sent"):
        with pytest.raises(Forbidden, match="outside the kecamatan"):
            await resolve_delivery(ResolveDelivery(failed.id, outcome, "", OFFICER_ALAK),  # type: ignore[arg-type]
                                   FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    assert store.deliveries[failed.id] == failed

    again = await resolve_delivery(ResolveDelivery(failed.id, "resend", "", OFFICER_OEBOBO),
                                   FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    assert again.status == "queued"


async def test_officers_in_a_kecamatan_keep_its_part_of_the_directory_only() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    officer_id = await save_officer(SaveOfficer("a@kota.go.id", "A", ("53.71.04",), OFFICER_OEBOBO),
                                    FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    with pytest.raises(Forbidden):
        await save_officer(SaveOfficer("b@kota.go.id", "B", (), OFFICER_OEBOBO),
                           FakeNotifierUnitOfWork(store), deps)  # fmt: skip
    with pytest.raises(Forbidden):
        await remove_officer(officer_id, OFFICER_ALAK, FakeNotifierUnitOfWork(store), deps)
    await remove_officer(officer_id, OFFICER_OEBOBO, FakeNotifierUnitOfWork(store), deps)
    assert store.officers == {}


async def test_an_officer_of_one_kecamatan_cannot_move_another_kecamatans_entry_by_saving_its_email() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    oebobo = SaveOfficer("a@kota.go.id", "A", ("53.71.04",), OFFICER_OEBOBO)
    await save_officer(oebobo, FakeNotifierUnitOfWork(store), deps)

    taken_over = replace(oebobo, kecamatan_codes=("53.71.01",), by=OFFICER_ALAK)
    with pytest.raises(Forbidden):
        await save_officer(taken_over, FakeNotifierUnitOfWork(store), deps)

    assert [codes for _, _, codes in store.officers.values()] == [("53.71.04",)]


async def test_a_sponsor_sets_its_own_digest_address_and_no_other_sponsors() -> None:
    store = FakeNotifierStore()
    mine, other = uuid.uuid4(), uuid.uuid4()
    sponsor = Principal("csr-ntt", frozenset({"sponsor"}), sponsor_id=mine)
    await save_sponsor_contact(mine, "csr@bankntt.co.id", "CSR", sponsor, FakeNotifierUnitOfWork(store))
    with pytest.raises(Forbidden):
        await save_sponsor_contact(other, "x@y.co.id", None, sponsor, FakeNotifierUnitOfWork(store))
    assert store.sponsor_contacts == {mine: "csr@bankntt.co.id"}


# ---------------------------------------------------------------------------------------------------------------
# Offers answered, reminders and digests
# ---------------------------------------------------------------------------------------------------------------


async def test_an_offer_answered_while_its_message_waits_for_morning_is_withheld() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    offer = matched(expires_at=NIGHT + timedelta(days=14))
    await deliver(handlers.funding_offer, offer, store, deps)
    accepted = FundingAccepted(pledge_id=offer.pledge_id, offer_id=offer.offer_id, business_id=BUSINESS,
                               amount_rupiah=5_000_000, accepted_at=NIGHT + timedelta(minutes=5))  # fmt: skip

    await deliver(handlers.offer_answered, accepted, store, deps)

    [waiting] = deliveries(store, "funding_offer")
    assert (waiting.status, waiting.reason) == ("withheld", "the offer was accepted before this message went")
    assert store.offers[offer.offer_id].state == "accepted"


async def test_an_answer_to_an_offer_the_notifier_never_heard_of_is_refused_and_applies_once_the_offer_came() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT))
    offer = matched(expires_at=NIGHT + timedelta(days=14))
    accepted = FundingAccepted(pledge_id=offer.pledge_id, offer_id=offer.offer_id, business_id=BUSINESS,
                               amount_rupiah=5_000_000, accepted_at=NIGHT + timedelta(minutes=5))  # fmt: skip

    # The relay sent the offer again behind its answer, which Kafka took first.
    with pytest.raises(RecordRefused, match="never heard of the offer.*berdaya dlq redrive funding.pledge.v1"):
        await deliver(handlers.offer_answered, accepted, store, deps)
    await deliver(handlers.funding_offer, offer, store, deps)
    await deliver(handlers.offer_answered, accepted, store, deps)  # the copy behind the offer

    assert store.offers[offer.offer_id].state == "accepted"
    [waiting] = deliveries(store, "funding_offer")
    assert (waiting.status, waiting.reason) == ("withheld", "the offer was accepted before this message went")


def by_time(store: FakeNotifierStore) -> Any:
    return lambda: FakeNotifierUnitOfWork(store, Cause.timer("notifier"))


async def test_an_open_offer_gets_one_reminder_two_days_before_it_expires_and_an_answered_one_none() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    open_offer, answered = matched(), matched(business_id=uuid.uuid4(), contact_phone="+6281399990000")
    await deliver(handlers.funding_offer, open_offer, store, deps)
    await deliver(handlers.funding_offer, answered, store, deps)
    await deliver(handlers.offer_answered, FundingAccepted(pledge_id=answered.pledge_id, offer_id=answered.offer_id,
                                                           business_id=answered.business_id, amount_rupiah=5_000_000,
                                                           accepted_at=MORNING), store, deps)  # fmt: skip

    assert await remind_offers(by_time(store), deps) == 0  # 14 days left
    clock.set(open_offer.expires_at - timedelta(hours=47))
    assert await remind_offers(by_time(store), deps) == 1
    assert await remind_offers(by_time(store), deps) == 0  # once

    reminder = message(store, "offer_reminder")
    assert (reminder.recipient_phone, reminder.offer_id, reminder.deadline) == (PHONE, open_offer.offer_id, open_offer.expires_at)
    assert reminder.body.startswith("Pengingat: tawaran bantuan hibah sebesar Rp5.000.000 dari Bank NTT")


async def test_an_offer_made_with_less_than_two_days_left_gets_no_reminder() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    await deliver(handlers.funding_offer, matched(expires_at=MORNING + timedelta(hours=30)), store, deps)
    assert await remind_offers(by_time(store), deps) == 0


async def test_each_sponsor_gets_last_weeks_digest_once_from_monday_08_00_wita_at_its_address() -> None:
    clock = FixedClock(wita(2026, 11, 23, 7, 30))
    store, deps = FakeNotifierStore(), new_deps(clock, Available(email=True))
    sponsor, quiet_sponsor = uuid.UUID(int=900), uuid.UUID(int=901)
    store.sponsor_contacts[sponsor] = "csr@bankntt.co.id"
    store.pledges[uuid.UUID(int=500)] = PledgeFact(uuid.UUID(int=500), sponsor, "Bank NTT", "Modal kuliner", "grant",
                                                   50_000_000, wita(2026, 11, 2, 9))  # fmt: skip
    store.pledges[uuid.UUID(int=501)] = PledgeFact(uuid.UUID(int=501), quiet_sponsor, "PT Lama", "Selesai", "grant",
                                                   10_000_000, wita(2026, 1, 5, 9), closed_at=wita(2026, 3, 1, 9))  # fmt: skip
    store.offers[uuid.UUID(int=600)] = OfferFact(uuid.UUID(int=600), uuid.UUID(int=500), BUSINESS, "Usaha", PHONE,
                                                 "53.71.04", "Bank NTT", "grant", None, 5_000_000, wita(2026, 11, 18, 9),
                                                 wita(2026, 12, 2, 9))  # fmt: skip

    assert await send_digests(by_time(store), deps) == 0  # before 08.00 WITA on Monday
    clock.set(wita(2026, 11, 23, 8, 5))
    assert await send_digests(by_time(store), deps) == 1
    read: list[uuid.UUID] = []
    pledges_of = store.pledges_of

    async def noting(sponsor_id: uuid.UUID) -> list[PledgeFact]:
        read.append(sponsor_id)
        return await pledges_of(sponsor_id)

    store.pledges_of = noting  # type: ignore[method-assign]
    clock.set(wita(2026, 11, 25, 14))
    assert await send_digests(by_time(store), deps) == 0
    assert read == [quiet_sponsor]  # the sent digest is not worked out again at every sweep of the week

    digest = message(store, "sponsor_digest")
    assert (digest.audience, digest.sponsor_id) == ("sponsor", sponsor)
    assert digest.subject == "Ringkasan mingguan Berdaya untuk Bank NTT, pekan 16 November 2026"
    assert "1 tawaran baru senilai Rp5.000.000" in digest.body
    [email] = deliveries(store, "sponsor_digest")
    assert (email.channel, email.recipient) == ("email", "csr@bankntt.co.id")


async def test_a_pledge_is_kept_from_its_event_for_the_digest() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    pledged = CSRPledged(pledge_id=uuid.uuid4(), sponsor_id=uuid.uuid4(), sponsor_name="Bank NTT", sponsor_kind="bank",
                         title="Modal kuliner", instrument="grant", total_rupiah=50_000_000, amount_mode="fixed",
                         amount_per_business_rupiah=5_000_000, min_offer_rupiah=5_000_000, valid_from=date(2026, 11, 1),
                         valid_until=date(2027, 1, 31), earmarks=Earmarks(), pledged_at=MORNING)  # fmt: skip
    await deliver(handlers.pledge_made, pledged, store, deps)
    assert store.pledges[pledged.pledge_id].total_rupiah == 50_000_000


# ---------------------------------------------------------------------------------------------------------------
# The delivery worker
# ---------------------------------------------------------------------------------------------------------------


class ScriptedGateway(Gateway):
    """A gateway that answers from a script, per recipient; Accepted with a fresh id when nothing is scripted."""

    def __init__(self, channel: str, guarantee: Guarantee = AT_MOST_ONCE, rate: RateLimit = RateLimit(100, 100)) -> None:
        self.channel = channel
        self.guarantee = guarantee
        self.rate = rate
        self.script: dict[str, list[SendResult]] = {}
        self.calls: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.calls.append(message)
        answers = self.script.get(message.recipient)
        return answers.pop(0) if answers else Accepted(f"id-{len(self.calls)}")

    def describe(self) -> str:
        return f"scripted {self.channel}"


class Forgetful(DeliveryWorker):
    """A worker whose process stops after the gateway answered and before the answer is recorded."""

    async def record(self, item: Any, result: SendResult) -> None:
        return None


def worker(store: FakeNotifierStore, deps: Deps, gateways: Sequence[Gateway], holder: str = "host:1",
           cls: type[DeliveryWorker] = DeliveryWorker, files: LocalOutboxFiles | None = None) -> DeliveryWorker:  # fmt: skip
    settings = WorkerSettings(holder=holder, batch=10, concurrency=4, lease=timedelta(seconds=60),
                              retry=RetryPolicy(base_seconds=10, cap_seconds=600, max_attempts=3))  # fmt: skip
    return cls(by_time(store), {g.channel: g for g in gateways}, files or LocalOutboxFiles(None), deps, settings,
               NotifierFigures(CollectorRegistry()), jitter=lambda: 1.0)  # fmt: skip


async def test_a_pass_sends_what_is_due_and_records_each_gateways_answer() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP)
    await deliver(handlers.funding_offer, matched(), store, deps)

    assert await worker(store, deps, [gateway]).pass_once() == 1

    [call] = gateway.calls
    [delivery] = deliveries(store, "funding_offer")
    assert (call.delivery_id, call.attempt, call.recipient, call.template) == (delivery.id, 1, PHONE, "funding_offer")
    assert (delivery.status, delivery.provider_id, delivery.attempts) == ("sent", "id-1", 1)
    assert store.attempts[(delivery.id, 1)] == ("host:1", "accepted", "id-1")
    assert store.status_of(message(store, "funding_offer")) == "sent"


async def test_a_message_of_the_day_claimed_after_nine_at_night_is_put_back_until_seven_and_keeps_its_attempts() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP)
    await deliver(handlers.funding_offer, matched(), store, deps)  # queued at 10.00; the notifier was down all day
    await owner_replied(Reply(WHATSAPP, "+6281377778888", "STOP", uuid.uuid4()), FakeNotifierUnitOfWork(store), deps)
    clock.set(NIGHT)

    assert await worker(store, deps, [gateway]).pass_once() == 2

    assert [c.template for c in gateway.calls] == ["opted_out"]  # a confirmation goes at any hour
    [offer] = deliveries(store, "funding_offer")
    assert (offer.status, offer.not_before, offer.attempts) == ("queued", wita(2026, 11, 24, 7), 0)
    assert await worker(store, deps, [gateway]).pass_once() == 0  # not claimed again all night
    clock.set(wita(2026, 11, 24, 7))
    assert await worker(store, deps, [gateway]).pass_once() == 1
    assert deliveries(store, "funding_offer")[0].status == "sent"


async def test_a_transient_failure_is_retried_after_its_backoff_but_never_into_quiet_hours() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP)
    gateway.script[PHONE] = [Transient("HTTP 503"), Transient("HTTP 503")]
    await deliver(handlers.funding_offer, matched(), store, deps)

    await worker(store, deps, [gateway]).pass_once()
    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.not_before) == ("queued", MORNING + timedelta(seconds=10))
    assert delivery.reason == "attempt 1 failed, will retry: HTTP 503"

    # 20 s of backoff from 20.59.50 WITA would end at 21.00.10, in quiet hours: the retry waits for 07.00.
    clock.set(wita(2026, 11, 23, 20, 59) + timedelta(seconds=50))
    await worker(store, deps, [gateway]).pass_once()
    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.not_before, delivery.attempts) == ("queued", wita(2026, 11, 24, 7), 2)


async def test_a_failure_reported_while_the_send_was_in_flight_keeps_its_reason_once_the_gateway_accepts() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    await deliver(handlers.funding_offer, matched(), store, deps)
    [offer] = deliveries(store, "funding_offer")
    why = "131049 - not delivered to maintain healthy ecosystem engagement"

    class Racing(ScriptedGateway):
        async def send(self, message: OutgoingMessage) -> SendResult:  # the status webhook commits meanwhile
            report = GatewayStatus(WHATSAPP, "wamid.R", "failed", why, delivery_id=message.delivery_id)
            await record_status(report, FakeNotifierUnitOfWork(store), deps)
            return Accepted("wamid.R")

    await worker(store, deps, [Racing(WHATSAPP)]).pass_once()
    assert (store.deliveries[offer.id].status, store.deliveries[offer.id].reason) == ("failed", why)


async def test_a_send_claimed_and_never_answered_is_unknown_after_its_lease_under_at_most_once() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)  # the workers' clocks agree with the database's
    gateway = ScriptedGateway(WHATSAPP, AT_MOST_ONCE)
    await deliver(handlers.funding_offer, matched(), store, deps)
    await worker(store, deps, [gateway], "host-a:1", Forgetful).pass_once()
    [delivery] = deliveries(store, "funding_offer")
    assert delivery.status == "sending"

    clock.set(MORNING + timedelta(seconds=61))
    await worker(store, deps, [gateway], "host-b:2").pass_once()

    [delivery] = deliveries(store, "funding_offer")
    assert delivery.status == "unknown" and "host-a:1 stopped after sending attempt 1" in (delivery.reason or "")
    assert len(gateway.calls) == 1
    assert store.attempts[(delivery.id, 1)][1] == "lost"
    assert store.status_of(message(store, "funding_offer")) == "unknown"


async def test_a_send_claimed_and_never_answered_is_sent_again_after_its_lease_under_at_least_once() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP, AT_LEAST_ONCE)
    await deliver(handlers.funding_offer, matched(), store, deps)
    await worker(store, deps, [gateway], "host-a:1", Forgetful).pass_once()

    clock.set(MORNING + timedelta(seconds=61))
    await worker(store, deps, [gateway], "host-b:2").pass_once()

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.attempts, len(gateway.calls)) == ("sent", 2, 2)
    assert [c.delivery_id for c in gateway.calls] == [delivery.id, delivery.id]


class ChangesNumberMidSend(ScriptedGateway):
    """A gateway during whose first send the registry's change of the owner's number is applied."""

    def __init__(self, store: FakeNotifierStore, deps: Deps, answer: SendResult, guarantee: Guarantee = AT_MOST_ONCE):
        super().__init__(WHATSAPP, guarantee)
        self.store, self.deps, self.answer = store, deps, answer

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not self.calls:
            self.calls.append(message)
            await deliver(handlers.keep_contact, number_changed(NEW_PHONE), self.store, self.deps)
            return self.answer
        return await super().send(message)


@pytest.mark.parametrize("answer", [
    pytest.param(Transient("HTTP 503"), id="a-retry"),
    pytest.param(Rejected("(#131026) Message Undeliverable", no_whatsapp=True), id="the-sms-fallback"),
])  # fmt: skip
async def test_a_number_given_up_while_its_message_was_in_flight_never_gets_it_again(answer: SendResult) -> None:
    # The contact's change readdressed what was queued, not the delivery being sent: its retry, or its SMS, went to
    # the number the owner had given up (soon someone else's).
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    await deliver(handlers.keep_contact, registered(), store, deps)
    await deliver(handlers.funding_offer, matched(), store, deps)
    gateway = ChangesNumberMidSend(store, deps, answer)

    await worker(store, deps, [gateway]).pass_once()
    clock.set(MORNING + timedelta(minutes=15))
    await worker(store, deps, [gateway]).pass_once()

    assert [c.recipient for c in gateway.calls] == [PHONE, NEW_PHONE]
    assert message(store, "funding_offer").recipient_phone == NEW_PHONE
    assert {d.recipient for d in deliveries(store, "funding_offer") if d.status in ("queued", "sent")} == {NEW_PHONE}


async def test_a_send_left_mid_flight_goes_again_to_the_owners_new_number_if_it_changed_meanwhile() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    await deliver(handlers.keep_contact, registered(), store, deps)
    await deliver(handlers.funding_offer, matched(), store, deps)
    await worker(store, deps, [ScriptedGateway(WHATSAPP, AT_LEAST_ONCE)], "host-a:1", Forgetful).pass_once()
    await deliver(handlers.keep_contact, number_changed(NEW_PHONE), store, deps)

    clock.set(MORNING + timedelta(seconds=61))
    gateway = ScriptedGateway(WHATSAPP, AT_LEAST_ONCE)
    await worker(store, deps, [gateway], "host-b:2").pass_once()

    assert [c.recipient for c in gateway.calls] == [NEW_PHONE]
    old = next(d for d in deliveries(store, "funding_offer") if d.recipient == PHONE)
    assert old.status == "withheld" and "number changed" in (old.reason or "")


async def test_a_lease_runs_out_by_the_databases_clock_whatever_the_workers_own_clocks_say() -> None:
    database = FixedClock(MORNING)
    store, holder = FakeNotifierStore(database), new_deps(FixedClock(MORNING))
    ahead = replace(holder, clock=FixedClock(MORNING + timedelta(minutes=5)))  # another host's clock, 5 minutes fast
    gateway = ScriptedGateway(WHATSAPP, AT_MOST_ONCE)
    await deliver(handlers.funding_offer, matched(), store, holder)
    await worker(store, holder, [gateway], "host-a:1", Forgetful).pass_once()

    await worker(store, ahead, [gateway], "host-b:2").pass_once()
    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, len(gateway.calls)) == ("sending", 1)  # host-a's lease is live: left alone

    database.set(MORNING + timedelta(seconds=61))  # now it has run out, though no worker's clock moved
    await worker(store, holder, [gateway], "host-a:3").pass_once()
    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, len(gateway.calls)) == ("unknown", 1)


class CountingStore(FakeNotifierStore):
    """Remembers when it was asked for stranded rows (by its clock, which the test shares with the worker)."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock)
        self.looks: list[datetime] = []

    async def stranded(self, limit: int) -> list[Any]:
        self.looks.append(self.clock())
        return await super().stranded(limit)


async def test_a_worker_looks_for_stranded_rows_once_a_quarter_of_its_lease_not_at_every_pass() -> None:
    clock = FixedClock(MORNING)
    store, deps = CountingStore(clock), new_deps(clock)
    survivor = worker(store, deps, [ScriptedGateway(WHATSAPP, AT_LEAST_ONCE)], "host-b:2")
    for _ in range(3):
        await survivor.pass_once()
    assert store.looks == [MORNING]

    clock.set(MORNING + timedelta(seconds=14))  # the lease is 60 s: nothing can have stranded since the last look
    await survivor.pass_once()
    assert store.looks == [MORNING]
    clock.set(MORNING + timedelta(seconds=15))
    await survivor.pass_once()
    assert store.looks == [MORNING, MORNING + timedelta(seconds=15)]


async def test_a_row_stranded_while_a_worker_runs_is_recovered_by_it_within_a_quarter_of_a_lease_of_expiring() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP, AT_LEAST_ONCE)
    survivor = worker(store, deps, [gateway], "host-b:2")
    await survivor.pass_once()  # looked at MORNING: nothing stranded yet
    await deliver(handlers.funding_offer, matched(), store, deps)
    await worker(store, deps, [gateway], "host-a:1", Forgetful).pass_once()

    clock.set(MORNING + timedelta(seconds=61))  # host-a's lease has run out
    await survivor.pass_once()

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.attempts, len(gateway.calls)) == ("sent", 2, 2)


class ScriptedPasses(DeliveryWorker):
    """A worker whose passes do what the test says: wake it, stop it, report a full claim."""

    def __init__(self, *args: Any, steps: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps, self.passes = steps, 0

    async def _pass(self) -> tuple[int, bool]:
        self.passes += 1
        return self.steps.pop(0)()


def scripted_worker(steps: list[Any]) -> ScriptedPasses:
    settings = WorkerSettings(holder="host:1", poll_seconds=3600)
    return ScriptedPasses(by_time(FakeNotifierStore()), {}, LocalOutboxFiles(None), new_deps(FixedClock(MORNING)),
                          settings, NotifierFigures(CollectorRegistry()), steps=steps)  # fmt: skip


async def test_a_wake_up_that_comes_during_a_pass_starts_the_next_pass_at_once() -> None:
    stop = asyncio.Event()
    run: ScriptedPasses

    def queued_meanwhile() -> tuple[int, bool]:
        run.wake()
        return 1, False

    def last() -> tuple[int, bool]:
        stop.set()
        return 1, False

    run = scripted_worker([queued_meanwhile, last])
    # Polling is an hour away: only the kept wake-up can start the second pass.
    await asyncio.wait_for(run.run(stop), timeout=10)
    assert run.passes == 2


async def test_a_full_claim_starts_the_next_pass_at_once_and_a_partial_one_waits() -> None:
    stop = asyncio.Event()

    def last() -> tuple[int, bool]:
        stop.set()
        return 0, False

    full = scripted_worker([lambda: (10, True), last])
    await asyncio.wait_for(full.run(stop), timeout=10)
    assert full.passes == 2

    stop.clear()
    partial = scripted_worker([lambda: (3, False), last])
    running = asyncio.create_task(partial.run(stop))
    for _ in range(20):  # let it run as far as it will go without a wake-up
        await asyncio.sleep(0)
    assert partial.passes == 1  # waiting for a wake-up or the next poll
    partial.wake()
    await asyncio.wait_for(running, timeout=10)
    assert partial.passes == 2


async def test_a_late_answer_to_an_old_attempt_never_overwrites_the_newer_attempt() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP, AT_LEAST_ONCE)
    await deliver(handlers.funding_offer, matched(), store, deps)
    first = worker(store, deps, [gateway], "host-a:1", Forgetful)
    await first.pass_once()
    claimed = store.deliveries[deliveries(store, "funding_offer")[0].id]
    clock.set(MORNING + timedelta(seconds=61))
    gateway.script[PHONE] = [Transient("HTTP 503")]
    await worker(store, deps, [gateway], "host-b:2").pass_once()  # attempt 2 failed: queued again

    old = Outgoing(claimed, "funding_offer", "owner", "...", None, None, None)
    await DeliveryWorker.record(first, old, Accepted("wamid.LATE"))  # attempt 1's answer, at last

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.attempts, delivery.provider_id) == ("queued", 2, None)
    assert store.attempts[(delivery.id, 1)][1] == "lost"  # history keeps what the recovery wrote


async def test_the_last_look_withholds_a_queued_message_whose_owner_opted_out_meanwhile() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    gateway = ScriptedGateway(WHATSAPP)
    await deliver(handlers.funding_offer, matched(), store, deps)
    store.preferences[PHONE] = Preference(PHONE, opted_out_at=MORNING)

    await worker(store, deps, [gateway]).pass_once()

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.status, delivery.attempts, gateway.calls) == ("withheld", 0, [])


async def test_a_pass_claims_no_more_than_the_channels_bucket_holds_and_spends_one_token_per_send() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    gateway = ScriptedGateway(WHATSAPP, rate=RateLimit(rate=1, burst=3))
    for i in range(5):
        await deliver(handlers.funding_offer, matched(contact_phone=f"+62813000000{i:02d}"), store, deps)

    await worker(store, deps, [gateway]).pass_once()
    assert len(gateway.calls) == 3
    await worker(store, deps, [gateway]).pass_once()
    assert len(gateway.calls) == 3
    clock.set(MORNING + timedelta(seconds=2))
    await worker(store, deps, [gateway]).pass_once()
    assert len(gateway.calls) == 5


async def test_a_process_whose_clock_is_minutes_behind_does_not_refill_the_channels_bucket_for_the_others() -> None:
    # The bucket filled on each process's own clock: one two minutes behind set its time back, and the next process
    # on time found it full again. Alternating, 40 passes sent 80 messages in a second at 4 a second.
    database = FixedClock(MORNING)
    store = FakeNotifierStore(database)
    on_time, behind = new_deps(FixedClock(MORNING)), new_deps(FixedClock(MORNING - timedelta(minutes=2)))
    gateway = ScriptedGateway(WHATSAPP, rate=RateLimit(rate=4, burst=4))
    for i in range(200):
        await deliver(handlers.funding_offer, matched(contact_phone=f"+628130000{i:04d}"), store, on_time)

    for n in range(40):
        database.set(MORNING + timedelta(milliseconds=25 * n))
        await worker(store, behind if n % 2 else on_time, [gateway]).pass_once()

    assert 4 <= len(gateway.calls) <= 4 + 4  # the burst, then at most a second's worth at 4 a second


async def test_rejections_fail_one_message_and_leave_the_others_to_go() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING), Available(whatsapp=True))
    gateway = ScriptedGateway(WHATSAPP)
    gateway.script[PHONE] = [Rejected("WhatsApp: 131009 - Parameter value is not valid", "131009")]
    await deliver(handlers.funding_offer, matched(), store, deps)
    await deliver(handlers.funding_offer, matched(contact_phone="+6281399990000"), store, deps)

    await worker(store, deps, [gateway]).pass_once()

    statuses = {d.recipient: (d.status, d.reason) for d in deliveries(store, "funding_offer")}
    assert statuses == {PHONE: ("failed", "WhatsApp: 131009 - Parameter value is not valid"),
                        "+6281399990000": ("sent", None)}  # fmt: skip


async def test_with_no_gateway_a_pass_delivers_to_the_local_outbox_and_its_files(tmp_path: Any) -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING), Available())
    await deliver(handlers.funding_offer, matched(), store, deps)

    await worker(store, deps, [], files=LocalOutboxFiles(tmp_path)).pass_once()

    [delivery] = deliveries(store, "funding_offer")
    assert (delivery.channel, delivery.status) == ("local", "delivered")
    assert store.local_outbox[delivery.id][0] == PHONE
    [file] = list(tmp_path.glob("2026-11-23/*.txt"))
    text = file.read_text()
    assert text.startswith(f"Kepada: {PHONE}\nWaktu: 2026-11-23 10.00 WITA\nJenis: funding_offer")
    assert message(store, "funding_offer").body in text


async def test_a_number_without_whatsapp_is_counted_apart_from_a_gateway_refusing_the_message() -> None:
    clock = FixedClock(MORNING)
    store, deps = FakeNotifierStore(clock), new_deps(clock)
    await deliver(handlers.keep_contact, registered(), store, deps)
    await deliver(handlers.funding_offer, matched(), store, deps)
    gateway = ScriptedGateway(WHATSAPP)
    gateway.script[PHONE] = [Rejected("(#131026) Message Undeliverable", no_whatsapp=True)]
    registry = CollectorRegistry()
    settings = WorkerSettings(holder="host:1", batch=10, concurrency=4, lease=timedelta(seconds=60),
                              retry=RetryPolicy(base_seconds=10, cap_seconds=600, max_attempts=3))  # fmt: skip

    await DeliveryWorker(by_time(store), {WHATSAPP: gateway}, LocalOutboxFiles(None), deps, settings,
                         NotifierFigures(registry), jitter=lambda: 1.0).pass_once()  # fmt: skip

    attempts = "berdaya_notifier_send_attempts_total"
    assert registry.get_sample_value(attempts, {"channel": WHATSAPP, "outcome": "no_whatsapp"}) == 1
    assert registry.get_sample_value(attempts, {"channel": WHATSAPP, "outcome": "rejected"}) is None

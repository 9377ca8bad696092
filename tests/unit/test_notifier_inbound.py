"""Who may speak for an owner, and what counts as their word: senders' numbers (WhatsApp writes other countries'
numbers without a plus), the phone number a WhatsApp webhook is for, a gateway's retry of a reply it forwarded
without an id, what a reply means, SMS to numbers it cannot reach, the SMS callback's token and who sets a sponsor's
digest address. Fakes only: the same on PostgreSQL is in tests/integration/test_notifier_gateways.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.notifier import webhooks
from services.notifier.channels import OutgoingMessage
from services.notifier.channels import sms as zenziva
from services.notifier.channels import whatsapp
from services.notifier.delivery_outcomes import REPEAT_WINDOW
from services.notifier.directory import SetPreference, save_sponsor_contact, set_preference
from services.notifier.domain import phones
from services.notifier.domain.alerts import alert_channel, parse_contacts, plan_alert
from services.notifier.domain.channels import SMS, WHATSAPP, Available, NoChannel, Rejected, phone_channel
from services.notifier.domain.consent import SUPERSEDED, Preference, reply_intent
from services.notifier.domain.delivery import Delivery
from services.notifier.domain.messages import OPERATORS, Contact, Message
from services.notifier.domain.planning import DeliveryRules, plan_fallback
from services.notifier.domain.ratelimit import RateLimit
from services.notifier.figures import NotifierFigures
from services.notifier.recording import Deps
from services.notifier.routes import NotifierContext
from services.notifier.settings import NotifierSettings
from shared.auth import Principal
from shared.errors import Forbidden
from shared.web import install_error_handlers

from .fakes import FakeNotifierStore, FakeNotifierUnitOfWork, FixedClock

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10.00 WITA
SECRET = b"app-secret"
OURS = "106540352242922"  # our business phone number's id
OWNER = "+6285212345678"  # a Telkomsel owner: the same digits as Hong Kong's +852 1234 5678 once "0" is put first
HONG_KONG = "85212345678"  # how WhatsApp writes +852 1234 5678
SMS_TOKEN = "sms-inbound-token-0123"
RECHECK = timedelta(days=30)


@dataclass
class Hooks:
    http: httpx.AsyncClient
    context: NotifierContext
    store: FakeNotifierStore
    clock: FixedClock
    registry: CollectorRegistry

    async def whatsapp(self, *messages: dict, statuses: tuple[dict, ...] = (),
                       number: str | None = OURS) -> httpx.Response:  # fmt: skip
        value: dict = {"messaging_product": "whatsapp", "messages": list(messages), "statuses": list(statuses)}
        if number is not None:
            value["metadata"] = {"display_phone_number": "6281100000000", "phone_number_id": number}
        change = {"value": value, "field": "messages"}
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}).encode()
        return await self.http.post("/webhooks/whatsapp", content=body, headers={
            "X-Hub-Signature-256": whatsapp.signature(SECRET, body), "Content-Type": "application/json"})  # fmt: skip

    async def sms(self, sender: str, text: str, at: datetime | None = None) -> httpx.Response:
        if at is not None:
            self.clock.set(at)
        return await self.http.post(f"/webhooks/sms?token={SMS_TOKEN}", data={"from": sender, "message": text})

    def skipped(self, source: str, reason: str) -> float:
        return self.registry.get_sample_value("berdaya_notifier_webhook_skipped_total",
                                              {"source": source, "reason": reason}) or 0  # fmt: skip

    def opted_out(self, phone: str = OWNER) -> bool:
        return self.store.preferences[phone].opted_out


def text(sender: str, body: str, wamid: str | None = None) -> dict:
    return {"from": sender, "id": wamid or f"wamid.{uuid.uuid4().hex}", "type": "text", "text": {"body": body}}


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    store, clock, registry = FakeNotifierStore(), FixedClock(NOW), CollectorRegistry()
    ids = iter(uuid.UUID(int=n) for n in range(1, 100_000))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(webhooks.router)
    context = NotifierContext(
        queries=None, deps=Deps(clock=clock, new_id=lambda: next(ids),  # type: ignore[arg-type]
                                rules=DeliveryRules(available=Available(whatsapp=True, sms=True))),
        unit_of_work=lambda cause: FakeNotifierUnitOfWork(store, cause), figures=NotifierFigures(registry),
        channels=[], whatsapp_app_secret=SECRET, whatsapp_phone_number_id=OURS, sms_inbound_token=SMS_TOKEN,
    )  # fmt: skip
    app.state.service = context
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier.test") as http:
        yield Hooks(http, context, store, clock, registry)


# ---------------------------------------------------------------------------------------------------------------
# Senders' numbers: only an Indonesian mobile is an owner's
# ---------------------------------------------------------------------------------------------------------------


async def test_a_whatsapp_mulai_from_hong_kong_never_opts_in_the_indonesian_owner_its_digits_resemble(hooks) -> None:
    hooks.store.preferences[OWNER] = Preference(OWNER, opted_out_at=NOW - timedelta(days=3))

    answer = await hooks.whatsapp(text(HONG_KONG, "Mulai"), text("61412345678", "STOP"))

    assert answer.status_code == 200 and answer.json() == {"statuses": 0, "matched": 0, "replies": 0, "skipped": 2}
    assert hooks.opted_out() and hooks.store.consent == [] and hooks.store.deliveries == {}
    assert hooks.skipped(WHATSAPP, "sender_not_indonesian_mobile") == 2


async def test_a_whatsapp_stop_from_an_owners_number_with_its_country_code_opts_them_out(hooks) -> None:
    answer = await hooks.whatsapp(text(OWNER[1:], "STOP"))

    assert answer.json()["replies"] == 1 and hooks.opted_out()
    assert hooks.store.consent == [(OWNER, "stop", WHATSAPP)]


@pytest.mark.parametrize("sender", ["+85212345678", HONG_KONG, "8521234567", "+61 412 345 678"])
async def test_an_sms_reply_from_a_number_not_written_as_an_indonesian_mobile_changes_no_ones_consent(
        hooks, sender: str) -> None:  # fmt: skip
    hooks.store.preferences[OWNER] = Preference(OWNER, opted_out_at=NOW - timedelta(days=3))

    answer = await hooks.sms(sender, "MULAI")

    assert answer.status_code == 200 and answer.json()["skipped"] == 1
    assert hooks.opted_out() and hooks.store.consent == []
    assert hooks.skipped(SMS, "sender_not_indonesian_mobile") == 1


@pytest.mark.parametrize("sender", ["085212345678", "6285212345678", "+6285212345678", "+62 852-1234-5678"])
def test_an_sms_reply_from_an_indonesian_mobile_written_the_usual_ways_is_the_owners(sender: str) -> None:
    assert zenziva.parse_inbound({"from": sender, "message": "STOP"}).phone == OWNER  # type: ignore[union-attr]


async def test_an_sms_stop_sent_as_json_with_its_sender_as_a_number_or_half_an_emoji_is_the_owners(hooks) -> None:
    # A long UCS-2 SMS split inside an emoji leaves half of it (\ud83d): it was a 500 the gateway retried for ever,
    # and a sender written as a JSON number was dropped with a 200 and no trace.
    body = '{"from": 6285212345678, "message": "STOP \\ud83d"}'
    answered = await hooks.http.post(f"/webhooks/sms?token={SMS_TOKEN}", content=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert answered.status_code == 200, answered.text
    assert hooks.opted_out()
    with_id = '{"from": "085212345678", "message": "MULAI", "id": "77\\udc00"}'
    hooks.clock.set(NOW + timedelta(days=1))
    answered = await hooks.http.post(f"/webhooks/sms?token={SMS_TOKEN}", content=with_id,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert answered.status_code == 200, answered.text
    assert not hooks.opted_out()


def test_whatsapps_sender_is_an_owners_only_with_indonesias_country_code() -> None:
    assert phones.from_wa_id("6285212345678") == OWNER
    assert [phones.from_wa_id(wa) for wa in (HONG_KONG, "085212345678", "+6285212345678", "6221123456")] == [None] * 4


def test_an_alert_contact_in_another_countrys_e164_is_kept_as_given_never_read_as_an_indonesian_number() -> None:
    assert parse_contacts("+852 1234 5678, +81 90-1234-5678, 0852 1234 5678", "NOTIFIER_OPERATOR_CONTACTS") == (
        "+85212345678", "+819012345678", OWNER)  # fmt: skip
    with pytest.raises(ValueError, match="entry 1"):  # no country code and no leading 0: whose is it?
        parse_contacts(HONG_KONG, "NOTIFIER_OPERATOR_CONTACTS")


# ---------------------------------------------------------------------------------------------------------------
# Webhooks for another phone number of the same Meta app
# ---------------------------------------------------------------------------------------------------------------


async def test_a_change_for_another_phone_number_of_the_meta_app_is_skipped_and_counted(hooks) -> None:
    ours = uuid.uuid4()
    status = {"id": "wamid.X", "status": "read", "biz_opaque_callback_data": f"berdaya:{ours}"}

    other = await hooks.whatsapp(text(OWNER[1:], "STOP"), statuses=(status,), number="999888777")
    unnamed = await hooks.whatsapp(text(OWNER[1:], "STOP"), number=None)

    assert other.json() == {"statuses": 0, "matched": 0, "replies": 0, "skipped": 1} == unnamed.json()
    assert hooks.store.preferences == {} and hooks.store.status_reports == []
    assert hooks.skipped(WHATSAPP, "other_phone_number") == 2
    mine = await hooks.whatsapp(text(OWNER[1:], "STOP"), statuses=(status,))
    assert mine.json() == {"statuses": 1, "matched": 0, "replies": 1, "skipped": 0} and hooks.opted_out()


async def test_without_our_phone_number_id_whatsapp_webhooks_are_refused(hooks) -> None:
    hooks.context.whatsapp_phone_number_id = None
    refused = await hooks.whatsapp(text(OWNER[1:], "STOP"))
    assert refused.status_code == 403 and "NOTIFIER_WHATSAPP_PHONE_NUMBER_ID" in refused.json()["detail"]


# ---------------------------------------------------------------------------------------------------------------
# A gateway's retry of an SMS reply it forwarded without an id
# ---------------------------------------------------------------------------------------------------------------


async def test_a_retried_sms_mulai_arriving_after_the_owners_stop_does_not_opt_them_back_in(hooks) -> None:
    await hooks.sms("085212345678", "MULAI", NOW)
    await hooks.sms("085212345678", "STOP", NOW + timedelta(minutes=20))
    await hooks.sms("085212345678", "MULAI", NOW + timedelta(minutes=25))  # the gateway retries the first callback

    assert hooks.opted_out()
    assert [intent for _, intent, _ in hooks.store.consent] == ["start", "stop"]
    assert sorted(m.template for m in hooks.store.messages) == ["opted_in", "opted_out"]  # one confirmation each


async def test_the_retry_window_rolls_and_does_not_end_on_the_hour(hooks) -> None:
    await hooks.sms("085212345678", "MULAI", NOW - timedelta(minutes=10))  # 01.50 UTC
    await hooks.sms("085212345678", "STOP", NOW + timedelta(minutes=5))
    await hooks.sms("085212345678", "MULAI", NOW + timedelta(minutes=10))  # another clock hour, the same reply

    assert hooks.opted_out() and [i for _, i, _ in hooks.store.consent] == ["start", "stop"]


async def test_an_sms_stop_said_again_is_applied_again_and_mulai_opts_in_once_the_window_has_passed(hooks) -> None:
    await hooks.sms("085212345678", "STOP", NOW)
    await hooks.sms("085212345678", "Mulai lagi", NOW + timedelta(minutes=10))  # other words: not a retry
    await hooks.sms("085212345678", "STOP", NOW + timedelta(minutes=20))
    assert hooks.opted_out() and [i for _, i, _ in hooks.store.consent] == ["stop", "start", "stop"]

    await hooks.sms("085212345678", "Mulai lagi", NOW + REPEAT_WINDOW + timedelta(minutes=11))
    assert not hooks.opted_out()
    assert sorted(m.template for m in hooks.store.messages) == ["opted_in", "opted_in", "opted_out"]


async def test_the_id_of_a_reply_without_the_gateways_id_cannot_be_worked_out_from_the_number_and_words(hooks) -> None:
    # Operators see the confirmation's event_id beside the masked number: an unkeyed hash of (number, window, words)
    # would give the whole number back by trying the few hundred thousand numbers the mask leaves.
    await hooks.sms("085212345678", "STOP", NOW)

    [confirmation] = hooks.store.messages
    window = int(NOW.timestamp() // REPEAT_WINDOW.total_seconds())
    unkeyed = uuid.uuid5(webhooks._NAMESPACE, f"sms:{OWNER}:{window}:STOP")
    assert confirmation.event_id != unkeyed
    assert confirmation.event_id == webhooks._keyed_id(SMS_TOKEN.encode(), f"sms:{OWNER}:{window}:STOP")


async def test_an_sms_reply_with_the_gateways_id_is_a_retry_only_when_the_id_repeats(hooks) -> None:
    async def forward(gateway_id: str, words: str) -> None:
        await hooks.http.post(f"/webhooks/sms?token={SMS_TOKEN}",
                              data={"from": "085212345678", "message": words, "id": gateway_id})  # fmt: skip

    await forward("1", "MULAI")
    await forward("2", "STOP")
    await forward("1", "MULAI")
    assert hooks.opted_out()
    await forward("3", "MULAI")
    assert not hooks.opted_out()


# ---------------------------------------------------------------------------------------------------------------
# An owner changing their mind again and again
# ---------------------------------------------------------------------------------------------------------------


async def test_each_change_is_applied_but_only_the_latest_answer_is_confirmed_and_at_most_four_an_hour(hooks) -> None:
    # STOP and MULAI alternated from one phone were a confirmation each, at any hour, sharing WhatsApp's rate with
    # everyone's messages. The worker sends what is due after each reply.
    words = ["STOP", "MULAI"] * 4
    for n, word in enumerate(words):
        hooks.clock.set(NOW + timedelta(minutes=n))
        assert (await hooks.whatsapp(text(OWNER[1:], word))).json()["replies"] == 1
        assert hooks.opted_out() == (word == "STOP")
        for d in list(hooks.store.deliveries.values()):
            if d.status == "queued" and d.not_before <= hooks.clock():
                hooks.store.deliveries[d.id] = replace(d, status="sent")

    assert [i for _, i, _ in hooks.store.consent] == ["stop", "start"] * 4
    by_message = {m.id: m for m in hooks.store.messages}
    seen = sorted(((by_message[d.message_id].created_at, d.status, d.not_before, d.reason)
                   for d in hooks.store.deliveries.values()), key=lambda s: s[0])  # fmt: skip
    assert [status for _, status, _, _ in seen] == ["sent"] * 4 + ["withheld"] * 3 + ["queued"]
    assert [reason for _, _, _, reason in seen[4:7]] == [SUPERSEDED] * 3  # each waited, and a newer answer came
    last_at = NOW + timedelta(minutes=7)
    assert seen[7][2] == last_at + timedelta(hours=1) and "changed its choice 7 times" in seen[7][3]
    assert "11.07 WITA" in seen[7][3]


async def test_a_confirmation_waiting_for_its_hour_is_replaced_by_the_owners_next_answer(hooks) -> None:
    for n, word in enumerate(["STOP", "MULAI", "STOP", "MULAI", "STOP"]):  # the fifth waits an hour
        hooks.clock.set(NOW + timedelta(minutes=n))
        await hooks.whatsapp(text(OWNER[1:], word))
    hooks.clock.set(NOW + timedelta(minutes=70))  # the hour's changes are behind: confirmed at once
    await hooks.whatsapp(text(OWNER[1:], "MULAI"))

    queued = [d for d in hooks.store.deliveries.values() if d.status == "queued"]
    [last] = queued
    assert last.not_before == hooks.clock() and last.reason is None
    assert [m.template for m in hooks.store.messages if m.id == last.message_id] == ["opted_in"]
    assert sum(d.reason == SUPERSEDED for d in hooks.store.deliveries.values()) == 5


async def test_a_stop_said_again_withholds_the_mulai_confirmation_waiting_for_its_hour(hooks) -> None:
    # The repeated STOP is applied but not confirmed again (its words were seen today): the MULAI's confirmation,
    # held for its hour, reached the owner after they had opted out.
    for n, words in enumerate(["STOP", "MULAI", "BERHENTI", "START", "Mulai lagi", "STOP"]):
        await hooks.sms("085212345678", words, NOW + timedelta(minutes=n))

    assert hooks.opted_out()
    assert [d for d in hooks.store.deliveries.values() if d.status == "queued"] == []


async def test_an_officers_record_of_the_owners_choice_withholds_a_confirmation_that_would_contradict_it(hooks) -> None:
    business = uuid.uuid4()
    hooks.store.contacts[business] = Contact(business, 1, "Sei Sapi", OWNER, "Oebobo", "Fatululi", "active", "53.71.04")
    await hooks.whatsapp(text(OWNER[1:], "MULAI"))  # its confirmation queued

    officer = Principal("officer-yohana", frozenset({"officer"}), kecamatan_codes=frozenset({"53.71.04"}))
    await set_preference(SetPreference(business, officer, opted_out=True), FakeNotifierUnitOfWork(hooks.store),
                         hooks.context.deps)  # fmt: skip

    [confirmation] = hooks.store.deliveries.values()
    assert (confirmation.status, confirmation.reason) == ("withheld", SUPERSEDED)


# ---------------------------------------------------------------------------------------------------------------
# What a reply means
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("words", ["Mulai jam berapa?", "Mulai kapan?", "Mulai?", "Stop？", "Start jam 9?",
                                   "Mulai kapan", "Mulai besok", "Stop kirim pesan ke nomor lain", "Berhenti jual",
                                   "Mulai 9"])
def test_a_question_or_any_other_word_with_a_keyword_is_for_an_officer_not_a_command(words: str) -> None:
    assert reply_intent(words) is None


@pytest.mark.parametrize(("words", "intent"), [("Stop dulu ya", "stop"), ("Berhenti, terima kasih.", "stop"),
                                               ("MULAI LAGI PAK", "start"), ("start please", "start"),
                                               ("Stop 🙏", "stop")])
def test_a_keyword_with_only_words_that_keep_its_meaning_is_still_a_command(words: str, intent: str) -> None:
    assert reply_intent(words) == intent


# ---------------------------------------------------------------------------------------------------------------
# SMS reaches Indonesian mobiles only
# ---------------------------------------------------------------------------------------------------------------


async def test_sms_to_a_number_that_is_not_an_indonesian_mobile_is_refused_with_its_reason_and_never_sent() -> None:
    seen: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(request.content.decode())["to"][0])
        return httpx.Response(200, json={"messageId": "1", "to": seen[-1], "status": "1", "text": "Success"})

    client = zenziva.Zenziva(userkey=SecretStr("u"), passkey=SecretStr("p"), base_url="http://zenziva.test", timeout=5,
                             guarantee="at_most_once", rate=RateLimit(5, 5), transport=httpx.MockTransport(gateway))
    try:
        refused = await client.send(OutgoingMessage(uuid.uuid4(), 1, "+61412345678", "[FIRING] BerdayaServiceDown"))
        sent = await client.send(OutgoingMessage(uuid.uuid4(), 1, OWNER, "Halo"))
    finally:
        await client.close()

    assert isinstance(refused, Rejected) and "Indonesian mobiles (+62...) only" in refused.reason
    assert "+61412345678" not in refused.reason and not refused.no_whatsapp
    assert seen == ["085212345678"] and sent.provider_id == "1"  # type: ignore[union-attr]


def test_an_alert_to_another_countrys_number_goes_by_whatsapp_and_never_by_sms() -> None:
    sms_only, both = DeliveryRules(Available(sms=True)), DeliveryRules(Available(whatsapp=True, sms=True))
    no_whatsapp = Preference("+61412345678", no_whatsapp_since=NOW)

    assert alert_channel("+61412345678", None, both, NOW) == WHATSAPP
    assert alert_channel(OWNER, no_whatsapp, both, NOW) == SMS
    with pytest.raises(NoChannel, match=r"SMS reaches Indonesian mobiles \(\+62...\) only"):
        alert_channel("+61412345678", no_whatsapp, both, NOW)
    with pytest.raises(NoChannel, match="no WhatsApp gateway is configured"):
        phone_channel(Available(sms=True), None, NOW, RECHECK, sms_reaches=False)

    message = Message(uuid.uuid4(), uuid.uuid4(), None, "alert_firing", "none", None, "[FIRING] x", NOW,
                      audience=OPERATORS)  # fmt: skip
    ids = iter(uuid.UUID(int=n) for n in range(1, 100))
    plan = plan_alert(message, "critical", ("+61412345678", OWNER), {}, sms_only, NOW, lambda: next(ids))
    [foreign, local] = plan.deliveries
    assert (foreign.channel, foreign.status) == (WHATSAPP, "failed") and "+62" in (foreign.reason or "")
    assert (local.channel, local.status) == (SMS, "queued")


def test_a_whatsapp_delivery_to_another_countrys_number_without_whatsapp_does_not_fall_back_to_sms() -> None:
    both = DeliveryRules(Available(whatsapp=True, sms=True))
    failed = Delivery(uuid.uuid4(), uuid.uuid4(), WHATSAPP, "+61412345678", "failed", NOW)
    assert plan_fallback(failed, "alert_firing", both, NOW, uuid.uuid4) is None
    owners = Delivery(uuid.uuid4(), uuid.uuid4(), WHATSAPP, OWNER, "failed", NOW)
    assert plan_fallback(owners, "alert_firing", both, NOW, uuid.uuid4).channel == SMS  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------------------
# The SMS callback's token
# ---------------------------------------------------------------------------------------------------------------


def test_a_short_sms_inbound_token_stops_the_service_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SMS_INBOUND_TOKEN", "t0k3n")
    with pytest.raises(ValueError, match="NOTIFIER_SMS_INBOUND_TOKEN is shorter than 16 characters"):
        NotifierSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    monkeypatch.setenv("NOTIFIER_SMS_INBOUND_TOKEN", f" {SMS_TOKEN}\n")
    token = NotifierSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44).sms_inbound_token  # type: ignore[call-arg]
    assert token is not None and token.get_secret_value() == SMS_TOKEN
    monkeypatch.setenv("NOTIFIER_SMS_INBOUND_TOKEN", "  ")
    unset = NotifierSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    assert unset.sms_inbound_token is None


# ---------------------------------------------------------------------------------------------------------------
# Who sets a sponsor's digest address
# ---------------------------------------------------------------------------------------------------------------


async def test_an_officer_limited_to_a_kecamatan_may_not_redirect_a_sponsors_digest() -> None:
    store, sponsor = FakeNotifierStore(), uuid.uuid4()
    oebobo = Principal("petugas-oebobo", frozenset({"officer"}), kecamatan_codes=frozenset({"53.71.04"}))
    with pytest.raises(Forbidden, match="not limited to kecamatan"):
        await save_sponsor_contact(sponsor, "x@evil.example", None, oebobo, FakeNotifierUnitOfWork(store))
    assert store.sponsor_contacts == {}

    for who in (Principal("programme-office", frozenset({"officer"})), Principal("root", frozenset({"admin"})),
                Principal("csr-ntt", frozenset({"sponsor"}), sponsor_id=sponsor)):  # fmt: skip
        await save_sponsor_contact(sponsor, f"{who.subject}@kota.go.id", None, who, FakeNotifierUnitOfWork(store))
        assert store.sponsor_contacts == {sponsor: f"{who.subject}@kota.go.id"}


def test_refused_webhook_calls_are_logged_once_a_minute_a_source_with_how_many_went_unlogged(caplog) -> None:
    # Anyone on the internet may call the webhooks: a WARNING per refused call let them fill the disk.
    now = [0.0]
    refusals = webhooks.RefusalLog(clock=lambda: now[0])
    with caplog.at_level("WARNING", logger=webhooks.log.name):
        for _ in range(100):
            refusals.refused(WHATSAPP, "X-Hub-Signature-256 is missing")
        refusals.refused(SMS, "the token in the URL does not match")
        now[0] = 61.0
        refusals.refused(WHATSAPP, "X-Hub-Signature-256 is missing")

    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused a whatsapp webhook call: X-Hub-Signature-256 is missing",
                     "refused a sms webhook call: the token in the URL does not match",
                     "refused a whatsapp webhook call: X-Hub-Signature-256 is missing (99 more refused since the last "
                     "such line)"]  # fmt: skip


async def test_a_gateways_json_nested_deeper_than_any_reply_is_no_reply_not_a_500_retried_for_ever(hooks) -> None:
    deep = '{"from": "085212345678", "message": "STOP", "x": ' + "[" * 600 + "]" * 600 + "}"
    signed = ('{"object": "whatsapp_business_account", "entry": ' + "[" * 600 + "]" * 600 + "}").encode()

    sms = await hooks.http.post(f"/webhooks/sms?token={SMS_TOKEN}", content=deep,
                                headers={"Content-Type": "application/json"})  # fmt: skip
    whatsapp_answer = await hooks.http.post("/webhooks/whatsapp", content=signed, headers={
        "X-Hub-Signature-256": whatsapp.signature(SECRET, signed), "Content-Type": "application/json"})  # fmt: skip

    assert (sms.status_code, whatsapp_answer.status_code) == (200, 200)
    assert hooks.store.consent == []

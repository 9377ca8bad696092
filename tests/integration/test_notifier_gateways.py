"""The notifier's real gateway clients against local servers that speak each gateway's documented protocol (the
WhatsApp Cloud API and its signed webhooks, Zenziva's SMS API, an SMTP server), on a real PostgreSQL: what is sent,
what comes back, and what each answer does to a delivery."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.notifier import handlers
from services.notifier.channels.whatsapp import signature
from services.notifier.domain import texts
from services.notifier.domain.channels import LOCAL
from services.notifier.domain.delivery import Delivery
from services.notifier.domain.messages import Message
from services.notifier.recording import refresh_message
from services.notifier.store import NotifierStore
from shared.contracts.funding import FundingMatched, FundsDisbursed
from shared.contracts.training import PathwayStalled
from tests.gateways.notifier import (
    SMS_TOKEN,
    VERIFY_TOKEN,
    Clock,
    Notifier,
    notifier,
    smtp_client,
    whatsapp_client,
    zenziva_client,
)
from tests.gateways.smtp import LocalSmtp
from tests.support import drop_database, fresh_database
from tests.gateways.whatsapp_cloud import CloudApi

pytestmark = pytest.mark.integration

EXPIRES_AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 16.00 WITA


def _phone(n: int) -> tuple[str, str]:
    """(+62..., the Cloud API's wa_id) of a test number."""
    phone = f"+628123456{n:04d}"
    return phone, phone[1:]


def matched(phone: str, **overrides: Any) -> FundingMatched:
    values: dict[str, Any] = dict(
        pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=uuid.uuid4(), amount_rupiah=5_000_000,
        business_name="Sei Sapi Ibu Maria", contact_phone=phone, kecamatan_code="53.71.04", sponsor_name="Bank NTT",
        instrument="grant", financing_programme=None, readiness=72, rank=1,
        offered_at=datetime(2026, 11, 23, 1, 0, tzinfo=UTC), expires_at=EXPIRES_AT,
    )  # fmt: skip
    return FundingMatched(**{**values, **overrides})


def disbursed(phone: str) -> FundsDisbursed:
    return FundsDisbursed(pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=uuid.uuid4(),
                          amount_rupiah=5_000_000, reference="TRF-1", disbursed_at=datetime(2026, 11, 23, tzinfo=UTC),
                          business_name="Sei Sapi Ibu Maria", contact_phone=phone, sponsor_name="Bank NTT")  # fmt: skip


@pytest.fixture
def smtp() -> Any:
    with LocalSmtp() as server:
        yield server


async def _until_settled(n: Notifier, api: CloudApi | None = None, passes: int = 10) -> None:
    """Run delivery passes (and let the Cloud API post its webhooks) until nothing is due."""
    worker = n.worker("settler")
    for _ in range(passes):
        claimed = await worker.pass_once()
        if api is not None:
            await api.settle()
        if not claimed:
            return


# ---------------------------------------------------------------------------------------------------------------
# WhatsApp: the Cloud API and its signed webhooks
# ---------------------------------------------------------------------------------------------------------------


async def test_an_offer_goes_to_the_cloud_api_as_the_approved_template_and_its_signed_statuses_move_it_to_read(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    phone, wa_id = _phone(1)
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        event = matched(phone)
        await n.handle(handlers.funding_offer, event)
        [queued] = await n.deliveries(template="funding_offer")
        assert (queued["channel"], queued["status"], queued["recipient"]) == ("whatsapp", "queued", phone)

        assert await n.worker().pass_once() == 1

        [sent] = api.sent
        expected = texts.funding_offer_text("Sei Sapi Ibu Maria", 5_000_000, "grant", None, "Bank NTT", EXPIRES_AT)
        assert (sent.to, sent.template, sent.language, sent.text) == (wa_id, "berdaya_pesan", "id", expected)
        assert sent.callback == f"berdaya:{queued['id']}"
        [row] = await n.deliveries(template="funding_offer")
        assert (row["status"], row["provider_id"], row["attempts"], row["message_status"]) == ("sent", sent.wamid, 1, "sent")

        api.webhook_url = n.webhook_url
        for status in ("delivered", "read"):
            response = await api.post_status(sent.wamid, wa_id, status)
            assert response.status_code == 200 and response.json()["matched"] == 1
        late = await api.post_status(sent.wamid, wa_id, "delivered")  # webhooks come out of order
        assert late.status_code == 200
        [row] = await n.deliveries(template="funding_offer")
        assert (row["status"], row["message_status"]) == ("read", "read")
        assert row["delivered_at"] is not None and row["read_at"] is not None


async def test_a_status_webhook_with_a_bad_or_missing_signature_is_refused_and_changes_nothing(database_url, cloud) -> None:
    api, server = cloud
    phone, wa_id = _phone(2)
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        await n.handle(handlers.funding_offer, matched(phone))
        await n.worker().pass_once()
        [sent] = api.sent
        api.webhook_url = n.webhook_url

        forged = await api.post_status(sent.wamid, wa_id, "read", secret="not-the-app-secret")
        body = api.reply_payload(wa_id, "STOP")
        async with httpx.AsyncClient() as http:
            unsigned = await http.post(n.webhook_url, json=body)
            other_body = await http.post(n.webhook_url, json=body, headers={
                "X-Hub-Signature-256": signature(api.app_secret.encode(), b'{"object": "something else"}')})  # fmt: skip

        for refused in (forged, unsigned, other_body):
            assert refused.status_code == 403
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "webhook.refused"
        [row] = await n.deliveries(template="funding_offer")
        assert row["status"] == "sent"
        assert await n.fetch("SELECT * FROM status_report") == []
        assert await n.fetch("SELECT * FROM recipient") == []  # the forged STOP did nothing
        assert n.figures.webhooks_refused.labels("whatsapp")._value.get() == 3


async def test_a_status_for_a_message_the_notifier_never_sent_is_recorded_and_ignored(database_url, cloud) -> None:
    api, server = cloud
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        api.webhook_url = n.webhook_url
        response = await api.post_status("wamid.NOBODYKNOWSTHIS", "6281200000000", "delivered")

        assert response.status_code == 200
        assert response.json() == {"statuses": 1, "matched": 0, "replies": 0, "skipped": 0}
        [report] = await n.fetch("SELECT channel, provider_id, status, delivery_id FROM status_report")
        assert tuple(report) == ("whatsapp", "wamid.NOBODYKNOWSTHIS", "delivered", None)
        assert await n.fetch("SELECT * FROM delivery") == []


async def test_the_verification_handshake_echoes_the_challenge_only_for_the_verify_token(database_url, cloud) -> None:
    api, server = cloud
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        async with httpx.AsyncClient() as http:
            good = await http.get(n.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                         "hub.challenge": "1158201444"})  # fmt: skip
            bad = await http.get(n.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": "guess",
                                                        "hub.challenge": "1158201444"})  # fmt: skip
        assert (good.status_code, good.text) == (200, "1158201444")
        assert bad.status_code == 403 and "1158201444" not in bad.text


async def test_a_cloud_api_answering_5xx_is_retried_with_backoff_and_never_holds_up_other_messages(database_url, cloud) -> None:
    api, server = cloud
    (failing, failing_id), (fine, fine_id) = _phone(3), _phone(4)
    api.failing[failing_id] = 2
    clock = Clock()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}, clock=clock) as n:
        await n.handle(handlers.funding_offer, matched(failing))
        await n.handle(handlers.funding_offer, matched(fine))
        worker = n.worker()

        await worker.pass_once()
        assert [m.to for m in api.sent] == [fine_id]
        waiting = {r["recipient"]: r for r in await n.deliveries()}[failing]
        assert waiting["status"] == "queued" and waiting["not_before"] > clock.now
        assert "131000" in waiting["reason"] and "will retry" in waiting["reason"]

        await worker.pass_once()  # not due yet: nothing is sent again
        assert api.requests == 2

        clock.advance(seconds=11)  # the first retry waits 10 s (the test's base), the second 20 s
        await worker.pass_once()
        clock.advance(seconds=21)
        await worker.pass_once()

        assert [m.to for m in api.sent] == [fine_id, failing_id]
        row = {r["recipient"]: r for r in await n.deliveries()}[failing]
        assert (row["status"], row["attempts"]) == ("sent", 3)
        attempts = await n.fetch("SELECT attempt, outcome FROM send_attempt WHERE delivery_id = $1 ORDER BY attempt", row["id"])
        assert [tuple(a) for a in attempts] == [(1, "transient"), (2, "transient"), (3, "accepted")]


async def test_a_send_the_cloud_api_does_not_answer_in_time_is_retried_unless_its_status_shows_it_arrived(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    (slow, slow_id), (fine, fine_id) = _phone(5), _phone(6)
    api.slow[slow_id] = 1.5  # past the client's 0.5 s timeout; the API then takes it anyway
    clock = Clock()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url, timeout=0.5)}, clock=clock) as n:
        api.webhook_url, api.auto_statuses = n.webhook_url, ["sent"]
        await n.handle(handlers.funding_offer, matched(slow))
        await n.handle(handlers.funding_offer, matched(fine))

        await n.worker().pass_once()
        rows = {r["recipient"]: r for r in await n.deliveries()}
        assert rows[fine]["status"] == "sent"
        assert rows[slow]["status"] == "queued" and "no answer" in rows[slow]["reason"]
        [attempt] = await n.fetch("SELECT outcome FROM send_attempt WHERE delivery_id = $1", rows[slow]["id"])
        assert attempt["outcome"] == "ambiguous"

        for _ in range(100):  # the slow call finishes at the API, which then reports it sent
            if len(api.sent) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(api.sent) == 2, "the Cloud API never finished the slow call"
        await api.settle()
        clock.advance(minutes=5)
        await n.worker().pass_once()

        assert sorted(m.to for m in api.sent) == sorted([slow_id, fine_id])  # never twice
        row = {r["recipient"]: r for r in await n.deliveries()}[slow]
        assert row["status"] == "sent" and row["provider_id"] == api.to(slow_id)[0].wamid
        assert "not sent again" in row["reason"]


async def test_a_send_whose_status_reports_come_before_its_answer_times_out_is_not_sent_again(database_url, cloud):
    api, server = cloud
    phone, wa_id = _phone(8)
    api.answers_late[wa_id] = 3.0  # reported sent and delivered at once; the answer comes after the client gave up
    clock = Clock()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url, timeout=2.0)}, clock=clock) as n:
        api.webhook_url, api.auto_statuses = n.webhook_url, ["sent", "delivered"]
        await n.handle(handlers.funding_offer, matched(phone))

        await n.worker().pass_once()
        assert api.webhook_answers == [200, 200]
        [row] = await n.deliveries(template="funding_offer")
        assert (row["status"], row["attempts"]) == ("delivered", 1)
        [attempt] = await n.fetch("SELECT outcome FROM send_attempt WHERE delivery_id = $1", row["id"])
        assert attempt["outcome"] == "ambiguous"  # the timeout is kept as the attempt's history

        clock.advance(minutes=5)
        await n.worker().pass_once()
        assert len(api.to(wa_id)) == 1  # the owner has it once
        [row] = await n.deliveries(template="funding_offer")
        assert (row["status"], row["message_status"]) == ("delivered", "delivered")


async def test_a_4xx_for_a_number_fails_that_message_with_whatsapps_reason_and_no_phone_in_it(database_url, cloud) -> None:
    api, server = cloud
    phone, wa_id = _phone(7)
    api.refused.add(wa_id)
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        await n.handle(handlers.funding_offer, matched(phone))
        await n.worker().pass_once()

        [row] = await n.deliveries(template="funding_offer")
        assert (row["status"], row["message_status"], row["attempts"]) == ("failed", "failed", 1)
        assert "131009" in row["reason"] and "Parameter value is not valid" in row["reason"]
        assert wa_id not in row["reason"] and wa_id[-3:] in row["reason"]  # the number WhatsApp quoted is masked
        await n.worker().pass_once()
        assert api.requests == 1  # never retried


async def test_a_number_without_whatsapp_gets_the_message_by_sms_and_its_next_messages_go_by_sms_directly(
        database_url, cloud, sms) -> None:  # fmt: skip
    (api, server), (zenziva_api, zenziva_server) = cloud, sms
    phone, wa_id = _phone(8)
    api.no_whatsapp.add(wa_id)
    gateways = {"whatsapp": whatsapp_client(api, server.url), "sms": zenziva_client(zenziva_api, zenziva_server.url)}
    async with notifier(database_url, gateways) as n:
        api.webhook_url = n.webhook_url
        await n.handle(handlers.funding_offer, matched(phone))
        await _until_settled(n, api)

        whatsapp, by_sms = await n.deliveries(template="funding_offer")
        assert (whatsapp["channel"], whatsapp["status"]) == ("whatsapp", "failed")
        assert "131026" in whatsapp["reason"]
        assert (by_sms["channel"], by_sms["status"], by_sms["fallback_of"]) == ("sms", "sent", whatsapp["id"])
        assert (by_sms["message_status"], by_sms["message_channel"]) == ("sent", "sms")
        [text] = zenziva_api.to("0" + wa_id[2:])
        assert text.message.startswith("Selamat! Usaha Sei Sapi Ibu Maria terpilih")

        await n.handle(handlers.funds_disbursed, disbursed(phone))
        await _until_settled(n, api)
        [paid] = await n.deliveries(template="funds_disbursed")
        assert (paid["channel"], paid["status"]) == ("sms", "sent")
        assert len(api.to(wa_id)) == 1  # WhatsApp was not tried again for this number


# ---------------------------------------------------------------------------------------------------------------
# SMS: Zenziva
# ---------------------------------------------------------------------------------------------------------------


async def test_an_sms_goes_through_zenzivas_api_and_an_invalid_number_fails_with_zenzivas_reason(database_url, sms) -> None:
    api, server = sms
    (good, good_id), (bad, bad_id) = _phone(9), _phone(10)
    api.invalid.add("0" + bad_id[2:])
    async with notifier(database_url, {"sms": zenziva_client(api, server.url)}) as n:
        await n.handle(handlers.funding_offer, matched(good))
        await n.handle(handlers.funding_offer, matched(bad))
        await n.worker().pass_once()

        rows = {r["recipient"]: r for r in await n.deliveries()}
        [sent] = api.sent
        assert (sent.to, rows[good]["status"], rows[good]["provider_id"]) == ("0" + good_id[2:], "sent", sent.message_id)
        assert (rows[bad]["status"], rows[bad]["reason"]) == ("failed", "Zenziva: Nomor tujuan tidak valid")


async def test_zenziva_answering_503_or_no_balance_is_retried_and_the_message_goes_once_it_recovers(database_url, sms) -> None:
    api, server = sms
    phone, wa_id = _phone(11)
    api.failing["0" + wa_id[2:]] = 1
    clock = Clock()
    async with notifier(database_url, {"sms": zenziva_client(api, server.url)}, clock=clock) as n:
        await n.handle(handlers.funding_offer, matched(phone))
        worker = n.worker()
        await worker.pass_once()
        [row] = await n.deliveries()
        assert row["status"] == "queued" and "503" in row["reason"]

        api.no_balance = True
        clock.advance(minutes=1)
        await worker.pass_once()
        [row] = await n.deliveries()
        assert row["status"] == "queued" and "Saldo tidak mencukupi" in row["reason"]

        api.no_balance = False
        clock.advance(minutes=5)
        await worker.pass_once()
        [row] = await n.deliveries()
        assert (row["status"], row["attempts"], len(api.sent)) == ("sent", 3, 1)


# ---------------------------------------------------------------------------------------------------------------
# Email: SMTP
# ---------------------------------------------------------------------------------------------------------------


async def _stalled(n: Notifier, business_id: uuid.UUID | None = None) -> None:
    event = PathwayStalled(business_id=business_id or uuid.uuid4(), participant_version=1, waiting_for="companion_verified",
                           since=datetime(2026, 11, 1).date(), days=22, kecamatan_code="53.71.04")  # fmt: skip
    await n.handle(handlers.halal_stalled, event, producer="training")


async def test_the_kecamatans_officers_get_an_email_each_with_a_subject_and_a_stable_message_id(database_url, smtp) -> None:
    async with notifier(database_url, {"email": smtp_client(smtp)}) as n:
        async with n.uow() as uow:
            await uow.store.save_officer(uuid.uuid4(), "yohana@kupangkota.go.id", "Yohana", ["53.71.04"])
            await uow.store.save_officer(uuid.uuid4(), "petrus@kupangkota.go.id", "Petrus", ["53.71.04", "53.71.03"])
            await uow.store.save_officer(uuid.uuid4(), "maria@kupangkota.go.id", "Maria", ["53.71.01"])
            await uow.commit()
        await _stalled(n)
        await n.worker().pass_once()

        rows = await n.deliveries(template="halal_stalled_officer")
        assert sorted((r["channel"], r["recipient"], r["status"]) for r in rows) == [
            ("email", "petrus@kupangkota.go.id", "sent"), ("email", "yohana@kupangkota.go.id", "sent")]  # fmt: skip
        assert {r.recipients[0] for r in smtp.sink.received} == {"petrus@kupangkota.go.id", "yohana@kupangkota.go.id"}
        mail = smtp.sink.to("yohana@kupangkota.go.id")[0].message
        assert mail["Subject"] == "Pendampingan halal tertahan: tanpa nama"
        yohana = next(r for r in rows if r["recipient"] == "yohana@kupangkota.go.id")
        assert mail["Message-ID"] == f"<{yohana['id']}@notifier.berdaya.test>" == yohana["provider_id"]
        assert "tertahan 22 hari" in mail.get_content()


async def test_a_refused_mailbox_fails_its_email_and_a_deferred_one_is_retried(database_url, smtp) -> None:
    clock = Clock()
    smtp.sink.rejected.add("gone@kupangkota.go.id")
    smtp.sink.deferred.add("busy@kupangkota.go.id")
    async with notifier(database_url, {"email": smtp_client(smtp)}, clock=clock) as n:
        async with n.uow() as uow:
            await uow.store.save_officer(uuid.uuid4(), "gone@kupangkota.go.id", "Gone", ["53.71.04"])
            await uow.store.save_officer(uuid.uuid4(), "busy@kupangkota.go.id", "Busy", ["53.71.04"])
            await uow.commit()
        await _stalled(n)
        worker = n.worker()
        await worker.pass_once()

        rows = {r["recipient"]: r for r in await n.deliveries()}
        assert rows["gone@kupangkota.go.id"]["status"] == "failed" and "550" in rows["gone@kupangkota.go.id"]["reason"]
        assert rows["busy@kupangkota.go.id"]["status"] == "queued" and "451" in rows["busy@kupangkota.go.id"]["reason"]
        assert rows["busy@kupangkota.go.id"]["message_status"] == "failed"  # one officer never gets it: shown first

        smtp.sink.deferred.clear()
        clock.advance(minutes=1)
        await worker.pass_once()
        rows = {r["recipient"]: r for r in await n.deliveries()}
        assert rows["busy@kupangkota.go.id"]["status"] == "sent"
        assert len(smtp.sink.to("busy@kupangkota.go.id")) == 1


# ---------------------------------------------------------------------------------------------------------------
# Owners' replies
# ---------------------------------------------------------------------------------------------------------------


async def test_an_owner_replying_stop_on_whatsapp_gets_a_confirmation_and_then_only_required_messages(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    phone, wa_id = _phone(12)
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        api.webhook_url = n.webhook_url
        response = await api.post_reply(wa_id, "Berhenti")
        assert response.status_code == 200 and response.json()["replies"] == 1
        await n.worker().pass_once()  # its confirmation goes before the next reply would replace it
        again = await api.post(api.reply_payload(wa_id, "Berhenti", message_id="wamid.SAME"))
        await api.post(api.reply_payload(wa_id, "Berhenti", message_id="wamid.SAME"))  # WhatsApp retries a webhook
        assert again.status_code == 200
        await n.worker().pass_once()

        [opted_out_at] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert opted_out_at["opted_out_at"] is not None
        confirmations = [m for m in api.sent if m.to == wa_id]
        assert len(confirmations) == 2 and confirmations[0].text == texts.opted_out_text()  # one per reply, not per retry

        await n.handle(handlers.funding_offer, matched(phone))  # not required: withheld
        await n.handle(handlers.funds_disbursed, disbursed(phone))  # required: sent
        await n.worker().pass_once()
        [offer] = await n.deliveries(template="funding_offer")
        assert (offer["status"], offer["message_status"]) == ("withheld", "withheld")
        assert "opted out" in offer["reason"]
        assert [m.text.startswith("Dana sebesar") for m in api.sent[2:]] == [True]


async def test_gateway_webhooks_holding_a_nul_or_half_an_emoji_are_applied_without_it_not_refused_for_a_retry(
        database_url, cloud, sms) -> None:  # fmt: skip
    # A gateway can't be asked to send a batch again without the NUL: refused, it retries it (other owners' STOPs
    # with it) and then drops it. PostgreSQL can't store NUL, nor Python encode half an emoji.
    (api, server), (zenziva, _) = cloud, sms
    phone, wa_id = _phone(17)
    sms_phones = [_phone(n)[0] for n in (18, 19)]
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        await n.handle(handlers.funding_offer, matched(phone))
        await n.worker().pass_once()
        [sent] = api.sent
        api.webhook_url = n.webhook_url
        payload = api.reply_payload(wa_id, "STOP\u0000 \ud83d", message_id="wamid.NUL\u0000")
        error = {"code": 131026, "title": "Message\u0000 undeliverable \udc00"}
        failed = api.status_payload(sent.wamid, wa_id, "failed", errors=[error])
        payload["entry"][0]["changes"][0]["value"]["statuses"] = failed["entry"][0]["changes"][0]["value"]["statuses"]

        answered = await api.post(payload)
        inbound = f"{n.webhook_url.replace('/whatsapp', '/sms')}?token={SMS_TOKEN}"
        as_form = await zenziva.forward_reply(inbound, "0" + sms_phones[0][3:], "STOP\x00")
        async with httpx.AsyncClient() as http:
            as_json = await http.post(inbound, json={"from": "0" + sms_phones[1][3:] + "\x00", "message": "\x00STOP",
                                                     "id": "zz-\x00-1"})  # fmt: skip

        assert [r.status_code for r in (answered, as_form, as_json)] == [200, 200, 200], answered.text
        assert answered.json() == {"statuses": 1, "matched": 1, "replies": 1, "skipped": 0}
        [row] = await n.deliveries(template="funding_offer")
        assert row["status"] == "failed" and "Message undeliverable \ufffd" in row["reason"]
        out = await n.fetch("SELECT phone FROM recipient WHERE opted_out_at IS NOT NULL ORDER BY phone")
        assert [r["phone"] for r in out] == sorted([phone, *sms_phones])


async def test_an_owner_alternating_stop_and_mulai_gets_four_confirmations_an_hour_then_only_their_latest_answer(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    phone, wa_id = _phone(20)
    clock = Clock()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}, clock=clock) as n:
        api.webhook_url = n.webhook_url
        for word in ["STOP", "MULAI"] * 3:
            assert (await api.post_reply(wa_id, word)).json()["replies"] == 1
            await n.worker().pass_once()
            clock.advance(minutes=1)

        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is None  # every change applied: the last was MULAI
        assert [m.text for m in api.sent] == [texts.opted_out_text(), texts.opted_in_text()] * 2
        rows = await n.deliveries(recipient_phone=phone)  # in the order they were planned
        assert [(r["template"], r["status"]) for r in rows] == [
            ("opted_out", "sent"), ("opted_in", "sent"), ("opted_out", "sent"), ("opted_in", "sent"),
            ("opted_out", "withheld"), ("opted_in", "queued")]  # fmt: skip
        assert "only the latest answer" in rows[4]["reason"] and "5 times in the last hour" in rows[5]["reason"]

        clock.advance(hours=1)
        await n.worker().pass_once()
        assert [m.text for m in api.sent[4:]] == [texts.opted_in_text()]


async def test_a_replayed_webhook_of_an_owners_earlier_mulai_does_not_undo_their_later_stop(database_url, cloud):
    api, server = cloud
    phone, wa_id = _phone(14)
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        api.webhook_url = n.webhook_url
        mulai = api.reply_payload(wa_id, "MULAI", message_id="wamid.MULAI")
        assert (await api.post(mulai)).status_code == 200
        assert (await api.post(api.reply_payload(wa_id, "STOP", message_id="wamid.STOP"))).status_code == 200
        # Our 200 for the first was lost: WhatsApp delivers it again, after the second.
        assert (await api.post(mulai)).status_code == 200

        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is not None  # the owner's last word stands
        changes = await n.fetch("SELECT intent FROM consent_change WHERE phone = $1 ORDER BY id", phone)
        assert [c["intent"] for c in changes] == ["start", "stop"]
        confirmations = await n.fetch("SELECT template FROM message WHERE recipient_phone = $1 ORDER BY created_at",
                                      phone)  # fmt: skip
        assert sorted(c["template"] for c in confirmations) == ["opted_in", "opted_out"]


async def test_a_mulai_held_up_until_after_the_owners_later_stop_does_not_opt_them_back_in(database_url, cloud):
    api, server = cloud
    phone, wa_id = _phone(15)
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        api.webhook_url = n.webhook_url

        def written(text: str, minutes_ago: int) -> dict:
            payload = api.reply_payload(wa_id, text)
            message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
            message["timestamp"] = str(int((n.clock() - timedelta(minutes=minutes_ago)).timestamp()))
            return payload

        # The MULAI's first webhook met a database that was down; WhatsApp delivers it again after the owner's STOP.
        assert (await api.post(written("STOP", minutes_ago=5))).status_code == 200
        assert (await api.post(written("MULAI", minutes_ago=30))).status_code == 200

        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is not None  # the owner's last word stands
        changes = await n.fetch("SELECT intent, written_at FROM consent_change WHERE phone = $1 ORDER BY id", phone)
        assert [(c["intent"], c["written_at"]) for c in changes] == [("stop", n.clock() - timedelta(minutes=5))]
        assert [m["template"] for m in await n.fetch("SELECT template FROM message WHERE recipient_phone = $1",
                                                     phone)] == ["opted_out"]  # fmt: skip


async def test_an_owner_replying_mulai_by_sms_is_opted_in_again_and_a_callback_without_the_token_is_refused(
        database_url, sms) -> None:  # fmt: skip
    api, server = sms
    phone, wa_id = _phone(13)
    async with notifier(database_url, {"sms": zenziva_client(api, server.url)}) as n:
        inbound = n.webhook_url.replace("/whatsapp", "/sms")
        refused = await api.forward_reply(f"{inbound}?token=wrong", "0" + wa_id[2:], "STOP")
        assert refused.status_code == 403
        stop = await api.forward_reply(f"{inbound}?token={SMS_TOKEN}", "0" + wa_id[2:], "STOP")
        assert stop.status_code == 200 and stop.json()["replies"] == 1
        await n.worker().pass_once()  # its confirmation goes before the MULAI would replace it
        start = await api.forward_reply(f"{inbound}?token={SMS_TOKEN}", "62" + wa_id[2:], "mulai")
        assert start.status_code == 200
        await n.worker().pass_once()

        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is None
        history = await n.fetch("SELECT intent, via FROM consent_change WHERE phone = $1 ORDER BY id", phone)
        assert [tuple(h) for h in history] == [("stop", "sms"), ("start", "sms")]
        assert sorted(s.message for s in api.sent) == sorted([texts.opted_out_text(), texts.opted_in_text()])

        # STOP again within the retry window: without the gateway's id it reads like a retry of the first, yet the
        # owner may mean it, and opting out again is what they asked for either way.
        again = await api.forward_reply(f"{inbound}?token={SMS_TOKEN}", "0" + wa_id[2:], "STOP")
        assert again.status_code == 200
        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is not None


async def test_a_gateways_retry_of_an_sms_mulai_without_its_id_after_the_owners_stop_does_not_opt_them_back_in(
        database_url, sms) -> None:  # fmt: skip
    api, server = sms
    phone, wa_id = _phone(15)
    clock = Clock()
    async with notifier(database_url, {"sms": zenziva_client(api, server.url)}, clock=clock) as n:
        inbound = f"{n.webhook_url.replace('/whatsapp', '/sms')}?token={SMS_TOKEN}"
        clock.advance(minutes=-10)  # 01.50 UTC: the retry below comes in the next clock hour
        await api.forward_reply(inbound, "0" + wa_id[2:], "MULAI")
        clock.advance(minutes=15)
        await api.forward_reply(inbound, "0" + wa_id[2:], "STOP")
        clock.advance(minutes=10)
        retried = await api.forward_reply(inbound, "0" + wa_id[2:], "MULAI")  # the 01.50 callback, sent again
        assert retried.status_code == 200

        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is not None
        history = await n.fetch("SELECT intent FROM consent_change WHERE phone = $1 ORDER BY id", phone)
        assert [h["intent"] for h in history] == ["start", "stop"]
        templates = await n.fetch("SELECT template FROM message WHERE recipient_phone = $1", phone)
        assert sorted(t["template"] for t in templates) == ["opted_in", "opted_out"]


async def test_webhooks_for_another_number_of_the_meta_app_or_from_a_foreign_sender_change_nothing(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    phone, wa_id = _phone(16)
    other_number = CloudApi(phone_number_id="109999999999999")  # another number of the same app, same secret
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        api.webhook_url = other_number.webhook_url = n.webhook_url
        await n.fetch("INSERT INTO recipient (phone, opted_out_at) VALUES ($1, now())", "+6285212345678")

        elsewhere = await other_number.post_reply(wa_id, "STOP")
        stranger = await api.post_reply("85212345678", "MULAI")  # Hong Kong's +852 1234 5678

        assert elsewhere.json() == {"statuses": 0, "matched": 0, "replies": 0, "skipped": 1}
        assert stranger.json() == {"statuses": 0, "matched": 0, "replies": 0, "skipped": 1}
        rows = await n.fetch("SELECT phone, opted_out_at IS NOT NULL AS out FROM recipient ORDER BY phone")
        assert [tuple(r) for r in rows] == [("+6285212345678", True)]
        assert await n.fetch("SELECT * FROM consent_change") == [] and await n.fetch("SELECT * FROM message") == []
        skipped = n.figures.webhook_skipped
        assert skipped.labels("whatsapp", "other_phone_number")._value.get() == 1
        assert skipped.labels("whatsapp", "sender_not_indonesian_mobile")._value.get() == 1
        assert (await api.post_reply(wa_id, "STOP")).json()["replies"] == 1  # ours still count
        [row] = await n.fetch("SELECT opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["opted_out_at"] is not None


async def test_an_sms_to_a_number_that_is_not_an_indonesian_mobile_fails_with_the_reason_and_never_reaches_zenziva(
        database_url, sms) -> None:  # fmt: skip
    api, server = sms
    async with notifier(database_url, {"sms": zenziva_client(api, server.url)}) as n:
        uow = n.uow()
        async with uow:  # queued before SMS knew better: an operator's Australian number
            message = Message(uuid.uuid4(), uuid.uuid4(), None, "alert_firing", "sms", None, "[FIRING] x", n.clock(),
                              audience="operators")  # fmt: skip
            await uow.store.add_message(message)
            await uow.store.add_deliveries([Delivery(uuid.uuid4(), message.id, "sms", "+61412345678", "queued",
                                                     n.clock())])  # fmt: skip
            await uow.commit()
        await n.worker().pass_once()

        [row] = await n.deliveries()
        assert row["status"] == "failed" and "Indonesian mobiles (+62...) only" in row["reason"]
        assert "+61412345678" not in row["reason"] and api.sent == []


# ---------------------------------------------------------------------------------------------------------------
# The local outbox
# ---------------------------------------------------------------------------------------------------------------


async def test_with_no_gateway_every_message_is_delivered_to_the_local_outbox_table_and_files(database_url, tmp_path) -> None:
    phone, _ = _phone(14)
    async with notifier(database_url, {}, outbox_dir=tmp_path) as n:
        await n.handle(handlers.funding_offer, matched(phone))
        await _stalled(n)  # no officer in the directory: kept for the kecamatan's officers
        await n.worker().pass_once()
        await n.worker().pass_once()

        rows = {r["template"]: r for r in await n.deliveries()}
        # The owner's halal message waits for the owner's contact (no delivery yet); the others are delivered.
        assert {t: (r["channel"], r["status"]) for t, r in rows.items()} == {
            "funding_offer": ("local", "delivered"), "halal_stalled_officer": ("local", "delivered")}  # fmt: skip
        [waiting] = await n.fetch("SELECT status FROM message WHERE template = 'halal_stalled'")
        assert waiting["status"] == "waiting"
        outbox = {r["recipient"]: r for r in await n.fetch("SELECT * FROM local_outbox")}
        assert set(outbox) >= {phone, "officers:53.71.04"}
        assert outbox[phone]["body"].startswith("Selamat! Usaha Sei Sapi Ibu Maria")
        [file] = list(tmp_path.glob(f"*/{rows['funding_offer']['id']}.txt"))
        assert "Kepada: " + phone in file.read_text() and outbox[phone]["body"] in file.read_text()
        officers = rows["halal_stalled_officer"]
        assert "no email address in the directory" in officers["reason"]


async def _local_scene(n: Notifier) -> None:
    """Officers with a message of two letters, three owners' offers; of the offers, one attempt already begun, one
    already ended, one letter already written."""
    async with n.uow() as uow:
        await uow.store.save_officer(uuid.uuid4(), "yohana@kupangkota.go.id", "Yohana", ["53.71.04"])
        await uow.store.save_officer(uuid.uuid4(), "petrus@kupangkota.go.id", "Petrus", ["53.71.04"])
        await uow.commit()
    await _stalled(n, uuid.UUID(int=7))
    for i in range(3):
        await n.handle(handlers.funding_offer, matched(_phone(20 + i)[0]))
    begun, ended, written = [(await n.deliveries(recipient_phone=_phone(20 + i)[0]))[0] for i in range(3)]
    async with n.uow() as uow:
        for row in (begun, ended):
            await uow.store.start_attempt(row["id"], 1, "earlier", n.clock())
        await uow.store.end_attempt(ended["id"], 1, "lost", "left by a stopped process", n.clock())
        await uow.store.deliver_locally(Delivery(**{k: written[k] for k in Delivery.__dataclass_fields__}), None,
                                        "an earlier letter", n.clock())  # fmt: skip
        await uow.commit()
    n.clock.advance(seconds=5)


async def _local_rows(n: Notifier) -> list[dict[str, Any]]:
    rows = await n.fetch(
        """SELECT m.template, d.recipient, d.status, d.attempts, d.holder, d.lease_until, d.sent_at, d.delivered_at,
                  d.read_at, d.reason, d.not_before, d.updated_at AS delivery_updated_at, m.status AS message_status,
                  m.channel AS message_channel, m.updated_at AS message_updated_at, a.attempt,
                  a.holder AS attempt_holder, a.started_at, a.finished_at, a.outcome, a.detail, l.recipient AS to,
                  l.subject, l.body, l.delivered_at AS letter_at
           FROM delivery d JOIN message m ON m.id = d.message_id
           LEFT JOIN send_attempt a ON a.delivery_id = d.id LEFT JOIN local_outbox l ON l.delivery_id = d.id
           ORDER BY m.template, d.recipient""")  # fmt: skip
    return [dict(r) for r in rows]


async def test_a_local_pass_in_one_statement_leaves_the_rows_that_delivering_letter_by_letter_left(
        database_url, infra) -> None:  # fmt: skip
    second_url = await fresh_database(infra.postgres_url)
    try:
        async with notifier(database_url, {}) as at_once, notifier(second_url, {}) as by_letter:
            for n in (at_once, by_letter):
                await _local_scene(n)
            assert await at_once.worker().pass_once() == 5
            async with by_letter.uow() as uow:  # what a pass did before: four statements a letter, then its message
                now = by_letter.clock()
                for item in await uow.store.claim_due(LOCAL, now, "worker-1", timedelta(seconds=60), 50):
                    await NotifierStore.deliver_all_locally(uow.store, [(item.delivery, item.subject, item.body)],
                                                            "worker-1", now)  # fmt: skip
                    await refresh_message(uow, item.delivery.message_id, now)
                await uow.commit()

            rows = await _local_rows(at_once)
            assert rows == await _local_rows(by_letter)
            assert [(r["template"], r["status"], r["message_status"], r["attempt_holder"], r["outcome"]) for r in rows] == [
                ("funding_offer", "delivered", "delivered", "earlier", "accepted"),
                ("funding_offer", "delivered", "delivered", "earlier", "lost"),
                ("funding_offer", "delivered", "delivered", "worker-1", "accepted"),
                ("halal_stalled_officer", "delivered", "delivered", "worker-1", "accepted"),
                ("halal_stalled_officer", "delivered", "delivered", "worker-1", "accepted"),
            ]  # fmt: skip
            assert sum(r["body"] == "an earlier letter" for r in rows) == 1  # a letter is written once
            assert all(r["delivered_at"] == r["delivery_updated_at"] == at_once.clock() for r in rows)
    finally:
        await drop_database(infra.postgres_url, second_url)

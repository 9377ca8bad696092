"""Exactly one delivery per (event, recipient, channel) on a real PostgreSQL with the real gateway clients: a process
that dies between a gateway's answer and recording it (the channel's guarantee holds, and the operator sees why),
two delivery workers on one database, and a rate limit shared by both. (Leases on hosts whose clocks disagree:
test_notifier_leases.py.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier import handlers
from services.notifier.alerts import AlertsReceived, record_alerts
from services.notifier.channels import SendResult
from services.notifier.delivery import DeliveryWorker
from services.notifier.delivery_outcomes import ResolveDelivery, resolve_delivery
from services.notifier.domain.alerts import Alert, AlertRecipients
from services.notifier.domain.ratelimit import RateLimit
from services.notifier.store import Outgoing
from shared.auth import Principal
from shared.contracts.funding import FundingMatched
from shared.contracts.training import PathwayStalled
from shared.unit_of_work import Cause
from tests.gateways import LocalServer
from tests.gateways.notifier import Clock, Notifier, notifier, smtp_client, whatsapp_client, zenziva_client
from tests.gateways.smtp import LocalSmtp
from tests.gateways.zenziva import ZenzivaApi

pytestmark = pytest.mark.integration

OPERATOR = Principal("operator-ana", frozenset({"operator"}))


def matched(phone: str) -> FundingMatched:
    return FundingMatched(
        pledge_id=uuid.uuid4(), offer_id=uuid.uuid4(), business_id=uuid.uuid4(), amount_rupiah=5_000_000,
        business_name="Tenun Ikat Ina Ndao", contact_phone=phone, kecamatan_code="53.71.04", sponsor_name="Bank NTT",
        instrument="grant", financing_programme=None, readiness=60, rank=1,
        offered_at=datetime(2026, 11, 23, 1, tzinfo=UTC), expires_at=datetime(2026, 12, 7, 8, tzinfo=UTC),
    )  # fmt: skip


class DiesBeforeRecording(DeliveryWorker):
    """A worker whose process stops right after the gateway answered: the answer is never written."""

    lost: list[tuple[Outgoing, SendResult]]

    async def record(self, item: Outgoing, result: SendResult) -> None:
        self.lost.append((item, result))


def dying(worker: DeliveryWorker) -> DiesBeforeRecording:
    assert isinstance(worker, DiesBeforeRecording)
    worker.lost = []
    return worker


async def lease_runs_out(n: Notifier) -> None:
    """Every lease held now runs out, on the database's clock (the one leases are judged by): as if its holder had
    stopped a lease ago. The notifier's own clock has no say in it."""
    await n.db.execute("UPDATE delivery SET lease_until = statement_timestamp() - interval '1 second'"
                       " WHERE status = 'sending'")  # fmt: skip


async def test_a_whatsapp_send_whose_answer_was_lost_is_never_resent_but_marked_unknown_until_its_status_arrives(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    clock = Clock()
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}, clock=clock) as n:
        await n.handle(handlers.funding_offer, matched("+6281311110001"))
        crashed = dying(n.worker("host-a:101", cls=DiesBeforeRecording))
        await crashed.pass_once()
        assert len(api.sent) == 1 and len(crashed.lost) == 1
        [row] = await n.deliveries()
        assert (row["status"], row["holder"]) == ("sending", "host-a:101")
        [attempt] = await n.fetch("SELECT outcome, finished_at FROM send_attempt")
        assert tuple(attempt) == (None, None)  # the call was made; its answer never recorded

        survivor = n.worker("host-b:202")
        await survivor.pass_once()  # the lease has not run out: the row is left alone
        [row] = await n.deliveries()
        assert row["status"] == "sending"

        await lease_runs_out(n)
        clock.advance(seconds=16)  # the survivor's next look for stranded rows is due (every quarter of its lease)
        await survivor.pass_once()
        assert len(api.sent) == 1  # at-most-once: not sent again
        [row] = await n.deliveries()
        assert (row["status"], row["message_status"]) == ("unknown", "unknown")
        assert "host-a:101 stopped after sending attempt 1" in row["reason"] and "at-most-once" in row["reason"]
        [attempt] = await n.fetch("SELECT outcome FROM send_attempt")
        assert attempt["outcome"] == "lost"
        total, rows, _ = await n.queries.search(business_id=None, template=None, status="unknown", page=1, page_size=10)
        assert total == 1 and rows[0]["template"] == "funding_offer"  # what the operator sees at /messages?status=unknown
        assert n.figures.stranded.labels("whatsapp", "unknown")._value.get() == 1

        # WhatsApp's status report for the lost attempt names our delivery: it settles the question.
        api.webhook_url = n.webhook_url
        sent = api.sent[0]
        response = await api.post_status(sent.wamid, sent.to, "delivered", callback=sent.callback)
        assert response.json()["matched"] == 1
        [row] = await n.deliveries()
        assert (row["status"], row["provider_id"], row["message_status"]) == ("delivered", sent.wamid, "delivered")
        await survivor.pass_once()
        assert len(api.sent) == 1


async def test_an_sms_left_unknown_by_a_crash_is_resolved_by_an_operator_who_checked_with_the_gateway(database_url) -> None:
    api = ZenzivaApi()
    async with LocalServer(api.app) as server, notifier(database_url, {"sms": zenziva_client(api, server.url)}) as n:
        await n.handle(handlers.funding_offer, matched("+6281311110002"))
        await dying(n.worker("host-a:101", cls=DiesBeforeRecording)).pass_once()
        await lease_runs_out(n)
        await n.worker("host-b:202").pass_once()
        [row] = await n.deliveries()
        assert row["status"] == "unknown" and len(api.sent) == 1

        resolved = await resolve_delivery(
            ResolveDelivery(row["id"], "sent", "Zenziva's report shows it delivered", OPERATOR),
            n.uow(Cause.request(uuid.uuid4(), OPERATOR.actor)), n.deps)  # fmt: skip
        assert resolved.status == "sent"
        [row] = await n.deliveries()
        assert row["message_status"] == "sent" and "operator-ana" in row["reason"]
        [audit] = await n.fetch("SELECT actor, action, aggregate_id FROM audit")
        assert tuple(audit) == ("operator-ana", "delivery_resolved_sent", str(row["id"]))


async def test_a_delivery_an_operator_sends_again_after_it_used_up_its_attempts_gets_all_its_retries_again(
    database_url,
) -> None:
    api = ZenzivaApi()
    clock = Clock()
    api.failing["081311110003"] = 4  # the retry policy here allows 4 attempts
    async with LocalServer(api.app) as server, notifier(database_url, {"sms": zenziva_client(api, server.url)},
                                                        clock=clock) as n:  # fmt: skip
        await n.handle(handlers.funding_offer, matched("+6281311110003"))
        worker = n.worker("host-a:101")
        for _ in range(4):
            await worker.pass_once()
            clock.advance(minutes=11)  # past any backoff (capped at 10 minutes)
        [row] = await n.deliveries()
        assert (row["status"], row["attempts"]) == ("failed", 4) and "gave up after 4 attempts" in row["reason"]

        api.failing["081311110003"] = 1  # the gateway is back, but one more answer is lost
        await resolve_delivery(ResolveDelivery(row["id"], "resend", "Zenziva is back", OPERATOR),
                               n.uow(Cause.request(uuid.uuid4(), OPERATOR.actor)), n.deps)  # fmt: skip
        await worker.pass_once()
        [row] = await n.deliveries()
        assert (row["status"], row["attempts"], row["retries_from"]) == ("queued", 5, 4)
        assert row["not_before"] - clock.now <= timedelta(seconds=10)  # the first retry's wait, not the fourth's

        clock.advance(minutes=1)
        await worker.pass_once()
        [row] = await n.deliveries()
        assert (row["status"], row["attempts"]) == ("sent", 6) and len(api.to("081311110003")) == 1


@pytest.mark.parametrize(("severity", "retried_at"), [
    ("warning", datetime(2026, 11, 23, 23, 0, tzinfo=UTC)),  # 07.00 WITA the next morning
    ("critical", datetime(2026, 11, 23, 13, 0, tzinfo=UTC)),  # 21.00 WITA, in quiet hours: the first retry's 5 s
])  # fmt: skip
async def test_a_programme_office_alert_retried_by_sms_after_nine_at_night_waits_for_morning_unless_critical(
    database_url, severity, retried_at,
) -> None:
    api = ZenzivaApi()
    clock = Clock(datetime(2026, 11, 23, 12, 59, 55, tzinfo=UTC))  # 20.59.55 WITA
    api.failing["081311110004"] = 1
    alert = Alert("firing", {"alertname": "BerdayaNibCoverageStalled", "severity": severity, "audience": "officers"},
                  {"summary": "Tidak ada NIB baru di Oebobo selama 31 hari"}, clock.now, None, "0f0e0d0c0b0a0908")  # fmt: skip
    async with LocalServer(api.app) as server, notifier(database_url, {"sms": zenziva_client(api, server.url)},
                                                        clock=clock) as n:  # fmt: skip
        await record_alerts(AlertsReceived("officers", (alert,)), n.uow(), n.deps,
                            AlertRecipients(officers=("+6281311110004",)))  # fmt: skip
        await n.worker("host-a:101").pass_once()

        [row] = await n.deliveries()
        assert (row["status"], row["critical"]) == ("queued", severity == "critical")
        assert row["not_before"] == retried_at and api.to("081311110004") == []


async def test_an_email_whose_answer_was_lost_is_sent_again_with_the_same_message_id_under_at_least_once(database_url) -> None:
    with LocalSmtp() as smtp:
        async with notifier(database_url, {"email": smtp_client(smtp)}) as n:
            async with n.uow() as uow:
                await uow.store.save_officer(uuid.uuid4(), "yohana@kupangkota.go.id", "Yohana", ["53.71.04"])
                await uow.commit()
            stalled = PathwayStalled(business_id=uuid.uuid4(), participant_version=1, waiting_for="submitted",
                                     since=datetime(2026, 11, 1).date(), days=22, kecamatan_code="53.71.04")  # fmt: skip
            await n.handle(handlers.halal_stalled, stalled, producer="training")
            await dying(n.worker("host-a:101", cls=DiesBeforeRecording)).pass_once()
            await lease_runs_out(n)
            survivor = n.worker("host-b:202")
            await survivor.pass_once()  # recovers it (queued again), then sends it

            [row] = await n.deliveries(template="halal_stalled_officer")
            assert (row["status"], row["attempts"]) == ("sent", 2)
            first, second = smtp.sink.to("yohana@kupangkota.go.id")
            assert first.message["Message-ID"] == second.message["Message-ID"] == f"<{row['id']}@notifier.berdaya.test>"
            attempts = await n.fetch("SELECT attempt, holder, outcome FROM send_attempt ORDER BY attempt")
            assert [tuple(a) for a in attempts] == [(1, "host-a:101", "lost"), (2, "host-b:202", "accepted")]


async def test_two_delivery_workers_on_one_database_never_send_one_message_twice(database_url, cloud) -> None:
    api, server = cloud
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        for i in range(40):
            await n.handle(handlers.funding_offer, matched(f"+62813222{i:05d}"))
        first, second = n.worker("host-a:1", batch=4), n.worker("host-b:2", batch=4)

        for _ in range(30):
            claimed = await asyncio.gather(first.pass_once(), second.pass_once())
            if not any(claimed):
                break

        callbacks = [m.callback for m in api.sent]
        assert len(callbacks) == 40 and len(set(callbacks)) == 40
        rows = await n.deliveries()
        assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
        attempts = await n.fetch("SELECT delivery_id, count(*) AS n FROM send_attempt GROUP BY 1")
        assert len(attempts) == 40 and {a["n"] for a in attempts} == {1}


async def test_a_channels_rate_limit_is_one_bucket_for_every_worker(database_url, cloud) -> None:
    api, server = cloud
    clock = Clock()
    gateway = whatsapp_client(api, server.url, rate=RateLimit(rate=0.25, burst=2))  # a token every 4 s
    async with notifier(database_url, {"whatsapp": gateway}, clock=clock) as n:
        for i in range(5):
            await n.handle(handlers.funding_offer, matched(f"+62813333{i:05d}"))
        first, second = n.worker("host-a:1"), n.worker("host-b:2")

        await asyncio.gather(first.pass_once(), second.pass_once())
        assert len(api.sent) == 2  # the burst, shared

        clock.advance(minutes=5)  # the bucket fills on the database's clock, whatever the workers' clocks say
        await first.pass_once()
        assert len(api.sent) == 2  # too little time has passed there: no token

        await asyncio.sleep(8.0)
        await asyncio.gather(first.pass_once(), second.pass_once())
        assert len(api.sent) == 4  # eight seconds' worth, the burst at most
        await asyncio.sleep(4.0)
        await asyncio.gather(first.pass_once(), second.pass_once())
        assert len(api.sent) == 5


"""End to end with the notifier as a real process on the session's Kafka and PostgreSQL, configured for WhatsApp and
pointed at a local server that speaks the Cloud API (sends, and signed status webhooks back to the notifier): an offer
on Kafka reaches the owner's WhatsApp and shows as delivered; the owner's STOP stops everything not required."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from shared.contracts import EventPayload, new_envelope
from shared.contracts.envelope import event_headers
from shared.contracts.funding import FundingMatched, FundsDisbursed
from shared.contracts.topics import FUNDING_PLEDGE, namespaced
from shared.messaging.kafka import KafkaAccess
from tests.gateways import LocalServer
from tests.gateways.whatsapp_cloud import CloudApi, sign
from tests.support import (
    TEST_SECRET,
    Infra,
    RunningService,
    drop_database,
    eventually,
    fresh_database,
    service_env,
    start_service,
)

pytestmark = pytest.mark.e2e

PHONE = "+6281377001234"
WA_ID = PHONE[1:]
VERIFY_TOKEN = "e2e-verify-token"


@dataclass
class WhatsAppNotifier:
    notifier: RunningService
    api: CloudApi
    bootstrap: KafkaAccess | str
    namespace: str
    tokens: TokenService

    def auth(self, role: str = "officer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(f'e2e-{role}', [role])}"}

    async def publish(self, payload: EventPayload) -> None:
        envelope = new_envelope(payload, producer="funding", correlation_id=uuid.uuid4())
        producer = AIOKafkaProducer(**KafkaAccess.of(self.bootstrap).aiokafka(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(namespaced(FUNDING_PLEDGE, self.namespace), envelope.to_json_bytes(),
                                         key=payload.aggregate_key().encode(),
                                         headers=event_headers(envelope.event_type, envelope.event_version,
                                                               envelope.event_id))  # fmt: skip
        finally:
            await producer.stop()

    async def messages(self, **params: str) -> list[dict]:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{self.notifier.url}/messages", params=params, headers=self.auth())
        response.raise_for_status()
        return response.json()["items"]


@pytest.fixture
async def whatsapp_notifier(infra: Infra, tmp_path: Path) -> AsyncIterator[WhatsAppNotifier]:
    """The notifier alone, as a process, with WhatsApp configured against a local Cloud API that reports every
    accepted message sent, then delivered; quiet hours off so the test does not depend on the hour in Kupang."""
    api = CloudApi(auto_statuses=["sent", "delivered"])
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    async with LocalServer(api.app) as cloud:
        env = service_env(infra.kafka, namespace) | {
            "NOTIFIER_WHATSAPP_TOKEN": api.token, "NOTIFIER_WHATSAPP_PHONE_NUMBER_ID": api.phone_number_id,
            "NOTIFIER_WHATSAPP_APP_SECRET": api.app_secret, "NOTIFIER_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "NOTIFIER_WHATSAPP_BASE_URL": cloud.url, "NOTIFIER_QUIET_HOURS_START": "00:00",
            "NOTIFIER_QUIET_HOURS_END": "00:00", "NOTIFIER_DELIVERY_POLL_SECONDS": "0.2",
        }  # fmt: skip
        database = await fresh_database(infra.postgres_url)
        notifier = start_service("notifier", env, database, tmp_path / "notifier.log")
        api.webhook_url = f"{notifier.url}/webhooks/whatsapp"
        try:
            yield WhatsAppNotifier(notifier, api, infra.kafka, namespace, TokenService(TEST_SECRET))
            await api.settle()
        finally:
            stop_pid(notifier.pid)
            await drop_database(infra.postgres_url, database)


def offer(pledge_id: uuid.UUID, **overrides: object) -> FundingMatched:
    now = datetime.now(UTC)
    values: dict = dict(
        pledge_id=pledge_id, offer_id=uuid.uuid4(), business_id=uuid.uuid4(), amount_rupiah=5_000_000,
        business_name="Sei Sapi Mama Yuli", contact_phone=PHONE, kecamatan_code="53.71.03", sponsor_name="Bank NTT",
        instrument="grant", financing_programme=None, readiness=70, rank=1, offered_at=now,
        expires_at=now + timedelta(days=14),
    )  # fmt: skip
    return FundingMatched(**{**values, **overrides})


async def test_an_offer_on_kafka_reaches_whatsapp_is_reported_delivered_and_a_stop_reply_stops_what_is_not_required(
        whatsapp_notifier: WhatsAppNotifier) -> None:  # fmt: skip
    system, api = whatsapp_notifier, whatsapp_notifier.api
    async with httpx.AsyncClient(timeout=10) as http:
        handshake = await http.get(f"{system.notifier.url}/webhooks/whatsapp", params={
            "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "987654321"})  # fmt: skip
        channels = (await http.get(f"{system.notifier.url}/channels", headers=system.auth("operator"))).json()
    assert (handshake.status_code, handshake.text) == (200, "987654321")
    assert channels["local_only"] is False
    assert {c["name"]: c["configured"] for c in channels["channels"]} == {"whatsapp": True, "sms": False,
                                                                         "email": False, "local": True}  # fmt: skip

    # 1. An offer on Kafka -> a WhatsApp template message -> a delivered status -> GET /messages says delivered.
    pledge_id = uuid.uuid4()
    first = offer(pledge_id)
    await system.publish(first)

    async def delivered() -> bool:
        told = await system.messages(template="funding_offer")
        return bool(told) and told[0]["status"] == "delivered"

    assert await eventually(delivered, timeout=60), await system.messages(template="funding_offer")
    [message] = await system.messages(template="funding_offer")
    [sent] = api.to(WA_ID)
    assert (sent.template, sent.language) == ("berdaya_pesan", "id")
    assert "terpilih menerima bantuan hibah sebesar Rp5.000.000 dari Bank NTT" in sent.text
    [delivery] = message["deliveries"]
    assert (delivery["channel"], delivery["status"], delivery["provider_id"]) == ("whatsapp", "delivered", sent.wamid)
    assert message["channel"] == "whatsapp" and message["recipient_phone"] == PHONE
    assert (await system.messages(status="delivered", channel="whatsapp"))[0]["id"] == message["id"]

    # A forged webhook is refused and changes nothing.
    forged = json.dumps(api.status_payload(sent.wamid, WA_ID, "failed", errors=[{"code": 131026}])).encode()
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(api.webhook_url, content=forged, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign("guessed-secret", forged)})  # fmt: skip
    assert refused.status_code == 403
    assert (await system.messages(template="funding_offer"))[0]["status"] == "delivered"

    # 2. The owner replies STOP: a confirmation, then nothing that is not required.
    reply = await api.post_reply(WA_ID, "STOP")
    assert reply.status_code == 200 and reply.json()["replies"] == 1

    async def confirmed() -> bool:
        return any(m["status"] == "delivered" for m in await system.messages(template="opted_out"))

    assert await eventually(confirmed, timeout=60)

    second = offer(uuid.uuid4())
    await system.publish(second)
    await system.publish(FundsDisbursed(
        pledge_id=pledge_id, offer_id=first.offer_id, business_id=first.business_id, amount_rupiah=5_000_000,
        reference="TRF-E2E-1", disbursed_at=datetime.now(UTC), business_name="Sei Sapi Mama Yuli",
        contact_phone=PHONE, sponsor_name="Bank NTT"))  # fmt: skip

    async def settled() -> bool:
        offers = {m["offer_id"]: m["status"] for m in await system.messages(template="funding_offer")}
        paid = await system.messages(template="funds_disbursed")
        return offers.get(str(second.offer_id)) == "withheld" and bool(paid) and paid[0]["status"] == "delivered"

    assert await eventually(settled, timeout=60), await system.messages()
    await api.settle()
    texts_sent = [m.text for m in api.to(WA_ID)]
    assert len(texts_sent) == 3
    assert texts_sent[0] == sent.text and texts_sent[1].startswith("Baik, Anda tidak akan lagi menerima")
    assert texts_sent[2].startswith("Dana sebesar Rp5.000.000 dari Bank NTT")
    [withheld] = [m for m in await system.messages(template="funding_offer") if m["offer_id"] == str(second.offer_id)]
    assert "opted out" in withheld["deliveries"][0]["reason"]

    # Operators see counts by channel and status, and never a phone number, in metrics or logs.
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(f"{system.notifier.url}/metrics")).text
    assert 'berdaya_notifier_deliveries{channel="whatsapp",status="delivered"} 3.0' in metrics
    assert 'berdaya_notifier_deliveries{channel="whatsapp",status="withheld"} 1.0' in metrics
    logs = system.notifier.log_file.read_text()
    for shown in (metrics, logs):
        assert WA_ID not in shown and PHONE[3:] not in shown
    assert "Sei Sapi Mama Yuli" not in logs  # no message body either

"""An offer's answer that reached Kafka before its offer, on a real broker and PostgreSQL with the real relay and a
notifier process: the relay sends the offer again behind the answer, and the answer again behind that; the notifier
refuses the first answer (dead-lettered, not counted as handled) and applies the copy that follows the offer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import RequestTimedOutError

from berdaya.stack.process import stop_pid
from shared.contracts.funding import FundingAccepted
from shared.contracts.topics import FUNDING_PLEDGE, namespaced
from shared.messaging.kafka import ensure_topics, with_dead_letters
from shared.messaging.outbox import add_to_outbox
from tests.integration.funding_events import envelopes
from tests.integration.messaging_fixtures import prepare, relay
from tests.integration.test_funding_view import berdaya
from tests.support import drop_database, eventually, fresh_database, read_topic, service_env, start_service
from tests.unit.notifier_fakes import matched

pytestmark = pytest.mark.integration


class LosesItsFirstRequest(AIOKafkaProducer):
    """Kafka never takes the first request; the relay hands the next one over before it knows."""

    lost: list[tuple[str, int]] = []

    async def send_batch(self, batch, topic, *, partition):  # noqa: ANN001, ANN201
        if self.lost:
            return await super().send_batch(batch, topic, partition=partition)
        self.lost.append((topic, partition))
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(RequestTimedOutError())
        return failed


async def test_an_answer_the_relay_sends_again_behind_its_offer_still_leaves_the_offer_answered(
    infra, database_url, tmp_path: Path  # noqa: ANN001
):
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    topic = namespaced(FUNDING_PLEDGE, namespace)
    await ensure_topics(infra.kafka, with_dead_letters([topic], 2, 1))
    env = {**service_env(infra.kafka, namespace), "BERDAYA_CONSUMER_MAX_ATTEMPTS": "2",
           "NOTIFIER_LOCAL_OUTBOX_DIR": str(tmp_path / "outbox")}  # fmt: skip
    database = await fresh_database(infra.postgres_url)
    notifier = start_service("notifier", env, database, tmp_path / "notifier.log")
    conn = await asyncpg.connect(database)
    try:
        now = datetime.now(UTC)
        offer = matched(business_id=uuid.uuid4(), offered_at=now, expires_at=now + timedelta(days=14))
        accepted = FundingAccepted(pledge_id=offer.pledge_id, offer_id=offer.offer_id, business_id=offer.business_id,
                                   amount_rupiah=offer.amount_rupiah, accepted_at=now + timedelta(minutes=5))  # fmt: skip
        outbox = await prepare(database_url)
        async with outbox.acquire() as c:
            await add_to_outbox(c, envelopes([offer, accepted], producer="funding"), route=lambda _: topic)
        # One row a batch, so the answer is handed over before the offer's failure is known.
        publishing = relay(outbox, database_url, infra.kafka, batch_size=1, producer=LosesItsFirstRequest)
        stop = asyncio.Event()
        running = asyncio.create_task(publishing.run(stop))
        try:
            sent = await read_topic(infra.kafka, topic, expect=3)
        finally:
            stop.set()
            await running
            await outbox.close()
        sent.sort(key=lambda r: (r.partition, r.offset))
        assert [dict(r.headers)["event_type"] for r in sent] == [b"FundingAccepted", b"FundingMatched",
                                                                 b"FundingAccepted"]  # fmt: skip

        async def state() -> str | None:
            return await conn.fetchval("SELECT state FROM offer_fact WHERE offer_id = $1", offer.offer_id)

        async def answered() -> bool:
            return await state() == "accepted"

        assert await eventually(answered, timeout=60), await state()
        shown = None
        for _ in range(120):  # the answer that came first, dead-lettered with what to do
            shown = berdaya("dlq", "show", topic, "0", bootstrap=infra.kafka)
            if "FundingAccepted" in shown.stdout:
                break
            await asyncio.sleep(0.5)
        assert "never heard of the offer" in shown.stdout and "dlq redrive" in shown.stdout, shown.stdout
    finally:
        await conn.close()
        stop_pid(notifier.pid)
        await drop_database(infra.postgres_url, database)

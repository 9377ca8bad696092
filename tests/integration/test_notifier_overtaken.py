"""An offer's answer that reached Kafka before its offer, on a real broker and PostgreSQL with the real relay and a
notifier process: the relay sends the offer again behind the answer, and the answer again behind that; the notifier
refuses the first answer (dead-lettered, not counted as handled) and applies the copy that follows the offer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from berdaya.stack.process import stop_pid
from shared.contracts.funding import FundingAccepted
from shared.contracts.topics import FUNDING_PLEDGE, namespaced
from shared.messaging.kafka import ensure_topics, with_dead_letters
from tests.integration.funding_events import envelopes
from tests.integration.messaging_fixtures import publish_overtaken
from tests.integration.test_funding_view import first_dead_letter_shown
from tests.support import drop_database, eventually, fresh_database, service_env, start_service
from tests.unit.notifier_fakes import matched

pytestmark = pytest.mark.integration


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
        sent = await publish_overtaken(database_url, infra.kafka, topic,
                                       envelopes([offer, accepted], producer="funding"))  # fmt: skip
        assert [dict(r.headers)["event_type"] for r in sent] == [b"FundingAccepted", b"FundingMatched",
                                                                 b"FundingAccepted"]  # fmt: skip

        async def state() -> str | None:
            return await conn.fetchval("SELECT state FROM offer_fact WHERE offer_id = $1", offer.offer_id)

        async def answered() -> bool:
            return await state() == "accepted"

        assert await eventually(answered, timeout=60), await state()
        shown = await first_dead_letter_shown(infra.kafka, topic, "FundingAccepted")  # the answer that came first
        assert "never heard of the offer" in shown and "dlq redrive" in shown, shown
    finally:
        await conn.close()
        stop_pid(notifier.pid)
        await drop_database(infra.postgres_url, database)

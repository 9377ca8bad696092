"""The notifier's batch writes on real PostgreSQL: a batch's deliveries and message statuses go in one statement each,
and leave what writing them one at a time left; a fallback may now also name a delivery later in its batch (one at a
time, that insert failed on the foreign key)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.notifier.domain.delivery import Delivery
from services.notifier.domain.messages import Message
from services.notifier.store_pg import PgNotifierStore
from shared.db import load_migrations, migrate
from tests.support import drop_database, fresh_database

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)


@pytest.fixture
async def conn(infra) -> AsyncIterator[asyncpg.Connection]:
    database = await fresh_database(infra.postgres_url)
    connection = await asyncpg.connect(database)
    try:
        await migrate(connection, load_migrations("shared.messaging.migrations", "messaging")
                      + load_migrations("services.notifier.migrations", "notifier"))  # fmt: skip
        yield connection
    finally:
        await connection.close()
        await drop_database(infra.postgres_url, database)


def _message(n: int) -> Message:
    return Message(uuid.uuid4(), uuid.uuid4(), uuid.UUID(int=n), "welcome", "none", f"+62813000000{n:02d}",
                   "Selamat datang", NOW)  # fmt: skip


def _delivery(message: Message, channel: str = "whatsapp", **fields: object) -> Delivery:
    recipient = message.recipient_phone or ""
    return Delivery(uuid.uuid4(), message.id, channel, recipient, "queued", NOW, **fields)  # type: ignore[arg-type]


async def _deliveries(conn: asyncpg.Connection) -> dict[uuid.UUID, asyncpg.Record]:
    return {r["id"]: r for r in await conn.fetch("SELECT * FROM delivery")}


async def test_deliveries_added_at_once_keep_the_one_already_stored_and_may_fall_back_to_one_later_in_the_batch(conn):
    store = PgNotifierStore(conn)
    first, second = _message(1), _message(2)
    assert await store.add_messages([first, second]) == [first, second]
    stored = _delivery(first)
    await store.add_deliveries([stored])

    whatsapp = _delivery(second, attempts=2, provider_id="wamid.1", reason="no answer", retries_from=1, critical=True)
    sms = _delivery(second, "sms", fallback_of=whatsapp.id)  # named before the delivery it replaces
    again = _delivery(first)  # the same message, channel and recipient as the one stored, under another id
    twice = _delivery(second, "whatsapp")  # the same as `whatsapp`, later in the same batch: the first one stays
    await store.add_deliveries([sms, again, whatsapp, twice])

    rows = await _deliveries(conn)
    assert set(rows) == {stored.id, whatsapp.id, sms.id}
    assert rows[sms.id]["fallback_of"] == whatsapp.id
    kept = {c: rows[whatsapp.id][c] for c in ("channel", "recipient", "status", "not_before", "attempts", "provider_id",
                                               "reason", "fallback_of", "retries_from", "critical")}  # fmt: skip
    assert kept == {"channel": "whatsapp", "recipient": "+6281300000002", "status": "queued", "not_before": NOW,
                    "attempts": 2, "provider_id": "wamid.1", "reason": "no answer", "fallback_of": None,
                    "retries_from": 1, "critical": True}  # fmt: skip
    await store.add_deliveries([])
    assert len(await _deliveries(conn)) == 3


async def test_statuses_set_at_once_give_a_message_named_twice_its_last_and_leave_an_unchanged_one_as_it_was(conn):
    store = PgNotifierStore(conn)
    unchanged, named_twice, changed = _message(1), _message(2), _message(3)
    await store.add_messages([unchanged, named_twice, changed])
    await store.set_message_statuses([(m.id, "waiting", "none") for m in (unchanged, named_twice, changed)], NOW)
    before = await conn.fetchval("SELECT updated_at FROM message WHERE id = $1", unchanged.id)

    later = NOW + timedelta(minutes=5)
    await store.set_message_statuses([(named_twice.id, "sent", "sms"), (unchanged.id, "waiting", "none"),
                                      (changed.id, "queued", "whatsapp"), (named_twice.id, "queued", "whatsapp")],
                                     later)  # fmt: skip

    rows = {r["id"]: r for r in await conn.fetch("SELECT id, status, channel, updated_at FROM message")}
    assert (rows[named_twice.id]["status"], rows[named_twice.id]["channel"]) == ("queued", "whatsapp")
    assert (rows[changed.id]["status"], rows[changed.id]["channel"], rows[changed.id]["updated_at"]) == (
        "queued", "whatsapp", later)
    assert (rows[unchanged.id]["status"], rows[unchanged.id]["updated_at"]) == ("waiting", before)
    await store.set_message_statuses([], later)

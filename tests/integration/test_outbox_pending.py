"""Which outbox rows wait for Kafka, on real PostgreSQL: every insert path gives each row its entry, and the
migration that introduced the entries carried over exactly the rows that were unpublished, with their retries."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import load_migrations, migrate, open_database
from shared.messaging import audit
from shared.messaging.audit import AuditEntry
from shared.messaging.outbox import COPY_FROM, add_to_outbox, add_with_audit, outbox_rows

from tests.integration.messaging_fixtures import prepare, relay, ticked

pytestmark = pytest.mark.integration


async def test_every_outbox_row_waits_for_kafka_whether_it_was_inserted_or_copied(database_url):
    db = await prepare(database_url)
    try:
        async with db.transaction() as conn:
            await add_to_outbox(conn, [ticked("few", i) for i in range(1, 4)], route=lambda _: "t")
            await add_to_outbox(conn, [ticked("many", i) for i in range(1, COPY_FROM + 2)], route=lambda _: "t")
            await add_to_outbox(conn, (ticked("streamed", i) for i in range(1, 41)), route=lambda _: "t")
        waiting = await db.fetch("SELECT p.aggregatetype, p.aggregateid, p.attempts, p.next_attempt_at, p.last_error,"
                                 " o.aggregateid AS row_key FROM outbox_pending p JOIN outbox o ON o.id = p.id")  # fmt: skip
        assert await db.fetchval("SELECT count(*) FROM outbox") == len(waiting) == 3 + COPY_FROM + 1 + 40
        assert {(r["aggregatetype"], r["aggregateid"] == r["row_key"], r["attempts"], r["next_attempt_at"],
                 r["last_error"]) for r in waiting} == {("counter", True, 0, None, None)}  # fmt: skip
    finally:
        await db.close()


async def test_a_few_events_and_their_audit_rows_written_in_one_statement_keep_their_order_and_wait_for_kafka(
    database_url,
):
    db = await prepare(database_url)
    events = [ticked("a", 1), ticked("b", 1), ticked("a", 2), ticked("a", 3)]
    revealed = AuditEntry("officer@kupang.go.id", "nik_revealed", "business", "b")
    try:
        async with db.transaction() as conn:
            await add_with_audit(conn, outbox_rows(events, lambda _: "t"), audit.rows_of(events, [revealed]))
        written = await db.fetch("SELECT o.event_id, o.aggregateid, o.aggregate_version, o.payload::text AS payload,"
                                 " p.id IS NOT NULL AS waiting FROM outbox o LEFT JOIN outbox_pending p USING (id)"
                                 " ORDER BY o.id")  # fmt: skip
        assert [r["event_id"] for r in written] == [e.event_id for e in events]  # ids in the order given
        assert all(r["waiting"] for r in written)
        assert [r["payload"] for r in written] == [e.model_dump_json() for e in events]  # the wire bytes, as before
        trail = await db.fetch("SELECT actor, action, aggregate_id, event_id FROM audit ORDER BY id")
        assert [(r["action"], r["aggregate_id"], r["event_id"]) for r in trail] == [
            *[(e.event_type, e.aggregate_id, e.event_id) for e in events], ("nik_revealed", "b", None)]
    finally:
        await db.close()


async def test_an_audit_row_alone_or_nothing_at_all_is_written_without_an_outbox_row(database_url):
    db = await prepare(database_url)
    try:
        async with db.transaction() as conn:
            await add_with_audit(conn, [], [])
            await add_with_audit(conn, [], audit.rows_of([], [AuditEntry("officer", "nik_revealed", "business", "b")]))
        assert await db.fetchval("SELECT count(*) FROM outbox") == 0
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 0
        assert await db.fetchval("SELECT count(*) FROM audit") == 1
    finally:
        await db.close()


async def test_an_audit_row_alone_wakes_no_relay(database_url):
    db = await prepare(database_url)
    listener = await asyncpg.connect(database_url)
    woken: list[str] = []
    await listener.add_listener("outbox", lambda *args: woken.append(args[2]))
    try:
        async with db.transaction() as conn:
            await add_with_audit(conn, [], audit.rows_of([], [AuditEntry("officer", "nik_revealed", "business", "b")]))
        await asyncio.sleep(0.3)
        assert woken == []
        async with db.transaction() as conn:  # the listener does hear an event written
            await add_with_audit(conn, outbox_rows([ticked("k", 1)], lambda _: "t"), [])
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        assert len(woken) == 1
    finally:
        await listener.close()
        await db.close()


async def test_a_rolled_back_commit_leaves_no_row_waiting(database_url):
    db = await prepare(database_url)
    try:
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with db.transaction() as conn:
                await add_to_outbox(conn, [ticked("k", i) for i in range(1, 50)], route=lambda _: "t")
                raise RuntimeError("changed my mind")
        assert await db.fetchval("SELECT count(*) FROM outbox_pending") == 0
    finally:
        await db.close()


async def test_the_migration_keeps_waiting_exactly_the_rows_that_were_unpublished_with_their_retries(database_url):
    migrations = load_migrations("shared.messaging.migrations", "messaging")
    before = [m for m in migrations if m.version < 5]
    assert [m.version for m in migrations if m.version >= 5][:1] == [5]
    db = await open_database(database_url, max_size=2)
    try:
        async with db.acquire() as conn:
            await migrate(conn, before)
            await conn.executemany(
                "INSERT INTO outbox (event_id, aggregatetype, aggregateid, type, event_version, topic, payload,"
                " aggregate_version, published_at, attempts, last_error, next_attempt_at)"
                " VALUES (gen_random_uuid(), 'counter', $1, 'Ticked', 1, 't', '{}', $2, $3::text::timestamptz, $4, $5,"
                " $6::text::timestamptz)",
                [
                    ("published", 1, "2026-11-30T00:00:00Z", 1, None, None),
                    ("failing", 1, None, 3, "MessageSizeTooLargeError", "2026-12-31T00:00:00Z"),
                    ("failing", 2, None, 0, None, None),
                    ("fresh", 1, None, 0, None, None),
                ],
            )
            await migrate(conn, migrations)
            waiting = await conn.fetch(
                "SELECT p.aggregateid, o.aggregate_version, p.attempts, p.last_error, p.next_attempt_at IS NOT NULL AS"
                " held FROM outbox_pending p JOIN outbox o ON o.id = p.id ORDER BY p.id"
            )
            assert [tuple(r) for r in waiting] == [
                ("failing", 1, 3, "MessageSizeTooLargeError", True),
                ("failing", 2, 0, None, False),
                ("fresh", 1, 0, None, False),
            ]
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 4  # the published row is kept for its retention
            columns = {r["column_name"] for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'outbox'")}  # fmt: skip
            assert not columns & {"published_at", "attempts", "last_error", "next_attempt_at"}
    finally:
        await db.close()


async def test_the_backlog_figures_look_up_only_the_rows_waiting_not_the_week_of_published_ones(infra, database_url):
    """Read after nearly every round and at every scrape: the outbox keeps a week of published rows, and the
    figures must not read them."""
    db = await prepare(database_url)
    async with db.transaction() as conn:
        # As after a pledge's thousands of offers went out: the statistics still count them waiting (autovacuum,
        # which would count again, is off so that it cannot do so in the middle of the test).
        await conn.execute("ALTER TABLE outbox_pending SET (autovacuum_enabled = false)")
        await add_to_outbox(conn, [ticked(f"k{i}", 1) for i in range(5_000)], route=lambda _: "t")
    async with db.acquire() as conn:
        await conn.execute("ANALYZE outbox; ANALYZE outbox_pending")
        await conn.execute("DELETE FROM outbox_pending WHERE id > 3")  # published, kept for the week
        created = await conn.fetchval("SELECT min(created_at) FROM outbox")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        before = await conn.fetchval("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'outbox'")
    running = relay(db, database_url, infra.kafka)
    backlog, oldest = await running.refresh_backlog()
    async with db.acquire() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        after = await conn.fetchval("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'outbox'")
        age = await conn.fetchval("SELECT extract(epoch FROM now() - $1::timestamptz)::float8", created)
    assert backlog == 3 and running._metrics.outbox_failing._value.get() == 0
    assert abs(oldest - age) < 1.0  # the age of the oldest row waiting
    assert after == before  # the published rows were not read
    await db.close()

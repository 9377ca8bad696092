"""The migration runner on real PostgreSQL: applies what is new once, and refuses a migration edited after it ran."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import LockWaits, Migration, MigrationError, migrate

pytestmark = pytest.mark.integration

FIRST = Migration("demo", 1, "create_thing", "CREATE TABLE thing (id integer PRIMARY KEY)")
SECOND = Migration("demo", 2, "add_name", "ALTER TABLE thing ADD COLUMN name text")


async def test_migrations_are_applied_once_in_order_and_recorded(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, [FIRST]) == [FIRST]
        assert await migrate(conn, [FIRST, SECOND]) == [SECOND]
        assert await migrate(conn, [FIRST, SECOND]) == []
        await conn.execute("INSERT INTO thing (id, name) VALUES (1, 'ok')")
        rows = await conn.fetch("SELECT namespace, version, name FROM schema_migrations ORDER BY version")
        assert [tuple(r) for r in rows] == [("demo", 1, "create_thing"), ("demo", 2, "add_name")]
    finally:
        await conn.close()


async def test_a_migration_edited_after_it_was_applied_is_refused(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, [FIRST])
        edited = Migration("demo", 1, "create_thing", "CREATE TABLE thing (id bigint PRIMARY KEY)")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn, [edited])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(database_url):
    conn = await asyncpg.connect(database_url)
    broken = Migration("demo", 2, "broken", "ALTER TABLE thing ADD COLUMN a text; ALTER TABLE nothing ADD COLUMN b text")
    try:
        await migrate(conn, [FIRST])
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, [FIRST, broken])
        columns = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'thing'")
        assert [r["column_name"] for r in columns] == ["id"]
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_a_migration_longer_than_the_connections_timeouts_is_applied_and_the_timeouts_kept(database_url):
    # A pooled connection's timeouts (the server's 60 s, asyncpg's 65 s), scaled down.
    conn = await asyncpg.connect(database_url, server_settings={"statement_timeout": "300"}, command_timeout=0.6)
    slow = Migration("demo", 2, "rewrite_thing", "ALTER TABLE thing ADD COLUMN name text; SELECT pg_sleep(1)")
    try:
        await migrate(conn, [FIRST])
        assert await migrate(conn, [FIRST, slow]) == [slow]
        assert await conn.fetchval("SHOW statement_timeout") == "300ms"
    finally:
        await conn.close()


async def test_a_second_migrator_waits_for_the_first_however_long_it_takes(database_url):
    first, second = [await asyncpg.connect(database_url, server_settings={"statement_timeout": "300"},
                                           command_timeout=0.6) for _ in range(2)]  # fmt: skip
    slow = Migration("demo", 1, "create_thing", "CREATE TABLE thing (id integer PRIMARY KEY); SELECT pg_sleep(1)")
    try:
        done = await asyncio.gather(migrate(first, [slow]), migrate(second, [slow]))
        assert sorted(len(applied) for applied in done) == [0, 1]  # one applied it, the other found it applied
    finally:
        await first.close()
        await second.close()


async def _holding_thing(database_url) -> asyncpg.Connection:
    """A session in a long transaction that has read `thing`: an ALTER of it must wait for the session to end."""
    holder = await asyncpg.connect(database_url)
    await holder.execute("BEGIN")
    await holder.fetch("SELECT * FROM thing")
    return holder


async def test_a_migration_waiting_for_a_long_transaction_lets_the_tables_other_users_through(database_url):
    setup = await asyncpg.connect(database_url)
    await migrate(setup, [FIRST])
    holder = await _holding_thing(database_url)
    writer = await asyncpg.connect(database_url)
    try:
        migrating = asyncio.create_task(migrate(setup, [FIRST, SECOND], LockWaits(each=0.3, pause=0.3)))
        await asyncio.sleep(0.5)  # the ALTER has queued for its lock at least once
        # Without a bound on the ALTER's wait this insert queues behind it until the long transaction ends.
        await asyncio.wait_for(writer.execute("INSERT INTO thing (id) VALUES (1)"), timeout=5)
        assert not migrating.done()
        await holder.execute("COMMIT")
        assert await asyncio.wait_for(migrating, timeout=10) == [SECOND]
        assert await writer.fetchval("SELECT count(*) FROM thing") == 1
    finally:
        for conn in (holder, writer, setup):
            await conn.close()


async def test_a_migration_that_cannot_take_its_locks_in_time_names_who_holds_them_and_applies_nothing(database_url):
    setup = await asyncpg.connect(database_url, server_settings={"statement_timeout": "300"})
    await migrate(setup, [FIRST])
    holder = await _holding_thing(database_url)
    try:
        with pytest.raises(MigrationError, match=r"demo/002_add_name could not take its table locks.*pid \d+"):
            await migrate(setup, [FIRST, SECOND], LockWaits(each=0.2, pause=0.2, give_up_after=1.0))
        assert await setup.fetchval("SELECT max(version) FROM schema_migrations") == 1
        assert await setup.fetchval("SHOW statement_timeout") == "300ms"
    finally:
        await holder.close()
        await setup.close()

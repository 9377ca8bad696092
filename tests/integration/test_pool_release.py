"""A connection given back to a service's pool, on real PostgreSQL: the pool no longer resets the session on every
release, so what the next user of the connection relies on is checked here."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import _MIGRATION_LOCK, Migration, MigrationError, migrate, open_database

pytestmark = pytest.mark.integration

FIRST = Migration("demo", 1, "create_thing", "CREATE TABLE thing (id integer PRIMARY KEY)")
_ADVISORY_LOCKS_HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"


async def test_a_transaction_left_open_is_rolled_back_before_the_connection_is_used_again(database_url):
    db = await open_database(database_url, max_size=1)
    try:
        await db.execute("CREATE TABLE thing (id integer PRIMARY KEY)")
        conn = await db.connect()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO thing VALUES (1)")
        await db.release(conn)  # as a handler that died mid-transaction gives it back: the pool's only connection

        async with db.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM thing") == 0
    finally:
        await db.close()


async def test_the_migrations_leave_no_session_lock_or_timeout_on_the_pooled_connection_they_ran_on(database_url):
    db = await open_database(database_url, max_size=1, statement_timeout_ms=4321)
    try:
        async with db.acquire() as conn:
            assert await migrate(conn, [FIRST]) == [FIRST]
        async with db.acquire() as conn:
            assert await conn.fetchval(_ADVISORY_LOCKS_HELD) == 0
            assert await conn.fetchval("SHOW statement_timeout") == "4321ms"
    finally:
        await db.close()


async def test_a_refused_migration_leaves_no_session_lock_or_timeout_either(database_url):
    db = await open_database(database_url, max_size=1, statement_timeout_ms=4321)
    edited = Migration("demo", 1, "create_thing", "CREATE TABLE thing (id bigint PRIMARY KEY)")
    try:
        async with db.acquire() as conn:
            await migrate(conn, [FIRST])
            with pytest.raises(MigrationError):
                await migrate(conn, [edited])
        async with db.acquire() as conn:
            assert await conn.fetchval(_ADVISORY_LOCKS_HELD) == 0
            assert await conn.fetchval("SHOW statement_timeout") == "4321ms"
            # Another service starting now would wait on the migration lock for ever if it were still held.
            other = await asyncpg.connect(database_url)
            try:
                assert await other.fetchval("SELECT pg_try_advisory_lock($1)", _MIGRATION_LOCK) is True
            finally:
                await other.close()
    finally:
        await db.close()


async def test_a_migration_cancelled_while_another_instance_migrates_leaves_the_pooled_connection_clean(database_url):
    db = await open_database(database_url, max_size=1, statement_timeout_ms=4321)
    other = await asyncpg.connect(database_url)  # another instance, migrating
    try:
        await other.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        async with db.acquire() as conn:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):  # a start given up on, as by a SIGTERM
                    await migrate(conn, [FIRST])
        await other.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        async with db.acquire() as conn:  # the same connection, reset, or a new one in its place
            assert await conn.fetchval(_ADVISORY_LOCKS_HELD) == 0
            assert await conn.fetchval("SHOW statement_timeout") == "4321ms"
    finally:
        await other.close()
        await db.close()

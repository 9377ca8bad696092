"""Two transactions of one service raced on real PostgreSQL in a chosen order: the first does all its work and has
not committed when the second starts, which must then wait for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from shared.db import load_migrations, migrate
from tests.support import drop_database, eventually, fresh_database

Work = Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def two_connections(infra: Any, service: str) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    """One for the request (or the matcher), one for the consumer's batch, on a fresh database of `service`."""
    database = await fresh_database(infra.postgres_url)
    request, batch = await asyncpg.connect(database), await asyncpg.connect(database)
    try:
        await migrate(request, load_migrations("shared.messaging.migrations", "messaging")
                      + load_migrations(f"services.{service}.migrations", service))  # fmt: skip
        yield request, batch
    finally:
        await request.close()
        await batch.close()
        await drop_database(infra.postgres_url, database)


async def held_back(task: asyncio.Future, database: str | asyncpg.Connection) -> None:
    """Assert that `task` is held back by a lock: once PostgreSQL shows a session of `database` waiting for one (a
    sleep would let a slow machine pass the test without the task ever reaching the lock), the task must not be done."""
    watcher = database if isinstance(database, asyncpg.Connection) else await asyncpg.connect(database)
    try:

        async def waiting() -> bool:
            return task.done() or await watcher.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")  # fmt: skip

        assert await eventually(waiting, timeout=30), "nothing waited for a lock within 30 s"
        assert not task.done(), "it went ahead without waiting for the lock"
    finally:
        if watcher is not database:
            await watcher.close()


async def race(batch_first: bool, request: Work, on: asyncpg.Connection, batch: Work,
               batch_on: asyncpg.Connection) -> None:  # fmt: skip
    """Each work runs in a transaction of its connection; the first must hold the second back until it commits."""

    async def committed(conn: asyncpg.Connection, work: Work) -> None:
        async with conn.transaction():
            await work()

    (opener, work), (other, later) = (((batch_on, batch), (on, request)) if batch_first
                                      else ((on, request), (batch_on, batch)))  # fmt: skip
    async with opener.transaction():
        await work()
        waiting = asyncio.create_task(committed(other, later))

        async def settled() -> bool:
            # Done, or waiting for a lock the first holds: which one, PostgreSQL says, not a clock.
            return waiting.done() or await opener.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", other.get_server_pid())

        assert await eventually(settled, timeout=30)
        first = "the batch" if batch_first else "the request"
        assert not waiting.done(), f"{first} had not committed, yet the other went ahead"
    await asyncio.wait_for(waiting, timeout=30)

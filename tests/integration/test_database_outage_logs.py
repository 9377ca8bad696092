"""What a service's log holds while its database is away, on real asyncpg and PostgreSQL: the pool's attempts to
reconnect are single lines in the error's own words, so a traceback in the log still means something unexpected."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from shared.db import open_database
from shared.observability import log_handler

pytestmark = pytest.mark.integration


class Outage:
    """A TCP hop between the pool and PostgreSQL that can go away, as a restarting server does: the connections
    through it are cut and new ones refused."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, host: str, port: int) -> int:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        async def connected(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            server_reader, server_writer = await asyncio.open_connection(host, port)
            self._writers += [client_writer, server_writer]
            await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

        self._server = await asyncio.start_server(connected, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def begin(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()


@contextlib.asynccontextmanager
async def pool_log() -> AsyncIterator[io.StringIO]:
    """asyncpg's pool logging through the services' own handler, into a string."""
    text, logger = io.StringIO(), logging.getLogger("asyncpg.pool")
    handler = log_handler("probe", text)
    logger.addHandler(handler)
    try:
        yield text
    finally:
        logger.removeHandler(handler)


async def test_the_pool_s_attempts_to_reconnect_while_the_database_is_away_are_single_lines(database_url):
    url = urlsplit(database_url)
    outage = Outage()
    port = await outage.start(url.hostname or "127.0.0.1", url.port or 5432)
    through = urlunsplit(url._replace(netloc=f"{url.username or ''}{'@' if url.username else ''}127.0.0.1:{port}"))
    db = await open_database(through, max_size=2)
    try:
        async with pool_log() as text:
            assert await db.fetchval("SELECT 1") == 1
            await outage.begin()
            for _ in range(100):  # the pool notices the cut connection and tries again at once, then after 1 s
                if "Failed to restore the pool connection floor" in text.getvalue():
                    break
                await asyncio.sleep(0.05)
            lines = text.getvalue().splitlines()
    finally:
        await db.close()

    assert lines, "asyncpg's pool logged nothing about reconnecting"
    assert "Traceback" not in "\n".join(lines)
    assert all(" probe WARNING asyncpg.pool: Failed to restore the pool connection floor; retrying: " in line
               for line in lines), lines  # fmt: skip
    assert "ConnectionRefusedError" in lines[0]

"""What a service's HTTP API answers, on real PostgreSQL, when the connection a request holds is cut in the middle of
its read: a 503 telling the client to try again, whatever asyncpg raises for it, never a bare 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.db import Database, open_database
from shared.web import install_error_handlers

pytestmark = pytest.mark.integration


def snapshot_app(db: Database, cutter: asyncpg.Connection) -> FastAPI:
    """A route reading in one snapshot, as funding's page of a pledge's offers does, whose connection is cut
    (pg_terminate_backend, as an operator or a failover does) between its two statements."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/count-and-page")
    async def count_and_page() -> int:
        async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval("SELECT count(*) FROM pg_class")
            assert await cutter.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            await conn.fetch("SELECT relname FROM pg_class ORDER BY relname LIMIT 10")
            return int(total)

    return app


async def test_a_read_whose_connection_is_cut_mid_transaction_is_a_503_telling_the_client_to_try_again(
    database_url: str,
) -> None:
    db = await open_database(database_url, max_size=2)
    cutter = await asyncpg.connect(database_url)
    try:
        transport = httpx.ASGITransport(app=snapshot_app(db, cutter), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://berdaya.test") as client:
            response = await client.get("/count-and-page")
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "database_unavailable"
            assert response.headers["retry-after"] == "5"
    finally:
        await cutter.close()
        await db.close()

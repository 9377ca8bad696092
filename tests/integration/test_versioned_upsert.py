"""The versioned upsert every service's view is saved with, on a real PostgreSQL: only a newer version overwrites."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import newer_version_upsert
from tests.support import drop_database, fresh_database

pytestmark = pytest.mark.integration

UPSERT = newer_version_upsert("business_view", ("business_id", "version", "status"), key="business_id")


async def test_a_view_row_is_overwritten_by_a_newer_version_and_never_by_an_older_or_equal_one(infra):
    database = await fresh_database(infra.postgres_url)
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("CREATE TABLE business_view (business_id text PRIMARY KEY, version int NOT NULL, status text)")
        await conn.execute(UPSERT, "a", 2, "active")
        await conn.executemany(UPSERT, [("a", 1, "stale"), ("a", 2, "replayed"), ("b", 1, "active")])
        assert await conn.fetch("SELECT * FROM business_view ORDER BY business_id") == [("a", 2, "active"), ("b", 1, "active")]
        await conn.execute(UPSERT, "a", 3, "closed")
        assert await conn.fetchval("SELECT status FROM business_view WHERE business_id = 'a'") == "closed"
    finally:
        await conn.close()
        await drop_database(infra.postgres_url, database)

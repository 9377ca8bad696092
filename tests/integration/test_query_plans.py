"""How a pool's statements are planned on real PostgreSQL when their table grows from nearly empty, as in a new
deployment: a plan kept from the small table must not scan the grown one."""

from __future__ import annotations

import os

import pytest

from shared.db import open_database

pytestmark = pytest.mark.integration

# The registry's look-up before a registration, on a table of the same shape. Autovacuum is off for it: an ANALYZE
# in the middle would make PostgreSQL plan again, and hide what happens until one comes.
TABLE = """
CREATE TABLE business (id bigserial PRIMARY KEY, nik_digest bytea NOT NULL, phone text NOT NULL, nib text UNIQUE)
    WITH (autovacuum_enabled = false);
CREATE INDEX business_nik_digest ON business (nik_digest);
CREATE INDEX business_phone ON business (phone);
"""
LOOKUP = "SELECT id FROM business WHERE nik_digest = ANY($1::bytea[]) OR phone = ANY($2::text[]) OR nib = ANY($3::text[])"
GROW = ("INSERT INTO business (nik_digest, phone) SELECT sha256(g::text::bytea), '+62812' || lpad(g::text, 8, '0')"
        " FROM generate_series($1::int, $2::int) AS g")
SCANS = "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'business'"


async def _scans_after_growth(database_url: str, *, custom_plans: bool) -> tuple[int, int]:
    """(sequential scans, index scans) of one look-up on 20,000 rows, by a connection that prepared it while the
    table had its first twenty rows (analyzed: a new deployment's first minute) and used it often enough there for
    PostgreSQL to settle on a plan."""
    db = await open_database(database_url, max_size=1, custom_plans=custom_plans)
    try:
        async with db.acquire() as conn:
            await conn.execute(TABLE)
            await conn.execute(GROW, 1, 20)
            await conn.execute("ANALYZE business")
            for _ in range(10):
                await conn.fetch(LOOKUP, [os.urandom(32)], ["+6281200000000"], [])
            await conn.execute(GROW, 21, 20_000)
            await conn.execute("SELECT pg_stat_force_next_flush()")
            seq_before, idx_before = await conn.fetchrow(SCANS)
            assert await conn.fetch(LOOKUP, [os.urandom(32)], ["+6281200000001"], []) != []
            await conn.execute("SELECT pg_stat_force_next_flush()")
            seq_after, idx_after = await conn.fetchrow(SCANS)
            return seq_after - seq_before, idx_after - idx_before
    finally:
        await db.close()


async def test_a_look_up_prepared_on_an_empty_table_reads_its_indexes_once_the_table_has_grown(database_url):
    assert await _scans_after_growth(database_url, custom_plans=True) == (0, 2)  # the NIK's and the phone's indexes


async def test_without_custom_plans_the_plan_kept_from_the_empty_table_scans_the_whole_grown_one(database_url):
    """Why the registry plans every statement for its parameters (RegistrySettings.db_custom_plans)."""
    assert await _scans_after_growth(database_url, custom_plans=False) == (1, 0)

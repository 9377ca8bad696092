"""The identity locks on real PostgreSQL: registrations of different owners go side by side even on one stripe, while
two of one value, or a registration and an import chunk over its stripe, wait for each other."""

from __future__ import annotations

import asyncio
import itertools
import zlib

import asyncpg
import pytest

from services.registry.store import PgBusinessStore
from shared.reference.wilayah import kota_kupang
from tests.integration.races import held_back, two_connections

pytestmark = pytest.mark.integration

# Different phones on one of the 128 stripes: with stripes alone, each of these registrations waited for the other.
ONE, OTHER, THIRD = itertools.islice(
    (p for p in (f"0813{i:08d}" for i in itertools.count()) if zlib.crc32(p.encode()) % 128 == 7), 3)


def _store(conn: asyncpg.Connection) -> PgBusinessStore:
    return PgBusinessStore(conn, kota_kupang())


def _chunk(*phones: str) -> tuple[list[bytes], list[str], list[str]]:
    """An import chunk big enough to lock whole stripes, holding these phones among its rows."""
    rows = range(40)
    return [f"nik{i}".encode() for i in rows], [*phones, *(f"0822{i:08d}" for i in rows)], []


async def _locked(conn: asyncpg.Connection, values: tuple[list[bytes], list[str], list[str]]) -> None:
    async with conn.transaction():
        await _store(conn).lock_identities(*values)


async def test_a_registration_of_another_owner_on_the_same_stripe_goes_ahead_while_the_first_is_open(infra):
    async with two_connections(infra, "registry") as (first, second):
        async with first.transaction():
            await _store(first).lock_identities([b"nik-a"], [ONE], ["9120000000001"])
            await asyncio.wait_for(_locked(second, ([b"nik-b"], [OTHER], ["9120000000002"])), timeout=10)


@pytest.mark.parametrize(
    "second_values",
    [([b"nik-b"], [ONE], []), ([b"nik-a"], [THIRD], []), ([], [], ["9120000000001"]), _chunk(THIRD, ONE)],
    ids=["same phone", "same NIK", "same NIB", "an import chunk over the phone's stripe"],
)
async def test_a_second_transaction_over_the_same_value_waits_until_the_first_commits(infra, second_values):
    async with two_connections(infra, "registry") as (first, second):
        async with first.transaction():
            await _store(first).lock_identities([b"nik-a"], [ONE], ["9120000000001"])
            waiting = asyncio.create_task(_locked(second, second_values))
            await held_back(waiting, first)
        await asyncio.wait_for(waiting, timeout=10)


async def test_a_registration_waits_for_an_import_chunk_over_its_stripe_though_its_phone_is_not_in_it(infra):
    async with two_connections(infra, "registry") as (importing, registering):
        async with importing.transaction():
            await _store(importing).lock_identities(*_chunk(ONE))
            waiting = asyncio.create_task(_locked(registering, ([], [OTHER], [])))
            await held_back(waiting, importing)
        await asyncio.wait_for(waiting, timeout=10)


async def test_a_small_import_chunk_waits_for_a_registration_of_one_of_its_owners_and_two_chunks_wait_for_each_other(
        infra):  # fmt: skip
    small_chunk = ([b"nik-x", b"nik-y"], [OTHER, "082200000001"], [])  # few enough values to be locked one by one
    async with two_connections(infra, "registry") as (first, second):
        async with first.transaction():
            await _store(first).lock_identities([b"nik-a"], [OTHER], [])
            waiting = asyncio.create_task(_locked(second, small_chunk))
            await held_back(waiting, first)
        await asyncio.wait_for(waiting, timeout=10)
        async with first.transaction():
            await _store(first).lock_identities(*_chunk(ONE))
            waiting = asyncio.create_task(_locked(second, _chunk(THIRD)))
            await held_back(waiting, first)
        await asyncio.wait_for(waiting, timeout=10)


async def test_a_unit_of_work_takes_its_identity_locks_once_as_a_second_call_could_deadlock_with_another(infra):
    async with two_connections(infra, "registry") as (conn, _):
        async with conn.transaction():
            store = _store(conn)
            await store.lock_identities([b"nik-a"], [ONE], [])
            with pytest.raises(RuntimeError, match="once per unit of work"):
                await store.lock_identities(*_chunk(THIRD))

"""Sponsors' names on real PostgreSQL: unique whatever their case, even when two registrations race, and a database
that already holds two such names is told which before the rule is added."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from services.funding import handlers
from services.funding.domain.pledges import SponsorForm
from services.funding.matching import Deps
from services.funding.store_pg import PgFundingUnitOfWork
from shared.auth import Principal
from shared.db import load_migrations, migrate
from shared.errors import Conflict
from shared.messaging.consumer import BatchTransaction
from shared.reference.wilayah import kota_kupang
from shared.unit_of_work import Cause, Publisher
from tests.integration.races import race, two_connections
from tests.support import drop_database, fresh_database

pytestmark = pytest.mark.integration

PROGRAMME_OFFICE = Principal("it-officer", frozenset({"officer"}))

PUBLISHER: Publisher[object] = Publisher("funding", lambda _: [], lambda _: "none")
DEPS = Deps(wilayah=kota_kupang(), clock=lambda: datetime.now(UTC))


def registering(conn: asyncpg.Connection, name: str, outcomes: list[object]):  # noqa: ANN201 - a race's work
    async def register() -> None:
        uow = PgFundingUnitOfWork(BatchTransaction(conn), PUBLISHER, Cause.timer("test"))
        try:
            outcomes.append(await handlers.register_sponsor(
                handlers.RegisterSponsor(SponsorForm(name=name, kind="bank"), PROGRAMME_OFFICE), uow, DEPS))  # fmt: skip
        except Conflict as refused:
            outcomes.append(refused)

    return register


@pytest.mark.parametrize("first", ["Bank NTT", "BANK NTT"])
async def test_two_registrations_of_one_name_in_different_cases_at_once_make_one_sponsor(infra, first) -> None:
    async with two_connections(infra, "funding") as (one, other):
        outcomes: list[object] = []
        second = "BANK NTT" if first == "Bank NTT" else "Bank NTT"

        await race(True, registering(other, second, outcomes), other, registering(one, first, outcomes), one)

        [made, refused] = outcomes  # the first commits before the second can finish
        assert isinstance(made, uuid.UUID) and isinstance(refused, Conflict)
        assert (refused.code, refused.details) == ("sponsor_exists", {"existing_sponsor_id": str(made)})
        assert await one.fetch("SELECT id, name FROM sponsor") == [(made, first)]


async def test_a_database_already_holding_names_that_differ_only_in_case_is_told_which_before_the_rule(infra):
    url = await fresh_database(infra.postgres_url)
    conn = await asyncpg.connect(url)
    try:
        funding = load_migrations("services.funding.migrations", "funding")
        before = [m for m in funding if m.name != "sponsor_name_any_case"]
        assert len(before) == len(funding) - 1
        await migrate(conn, load_migrations("shared.messaging.migrations", "messaging") + before)
        await conn.executemany("INSERT INTO sponsor (id, name, kind, created_at) VALUES ($1, $2, 'bank', now())",
                               [(uuid.uuid4(), "Bank NTT"), (uuid.uuid4(), "bank ntt"), (uuid.uuid4(), "BRI")])

        with pytest.raises(asyncpg.RaiseError, match=r"differ only in case: Bank NTT \(.*\), bank ntt \(.*\)\. Keep"):
            await migrate(conn, funding)

        assert await conn.fetchval("SELECT count(*) FROM sponsor") == 3  # nothing changed, the rule not added
        await conn.execute("UPDATE sponsor SET name = 'Bank NTT (Kupang)' WHERE name = 'bank ntt'")
        assert [m.name for m in await migrate(conn, funding)] == ["sponsor_name_any_case"]
    finally:
        await conn.close()
        await drop_database(infra.postgres_url, url)

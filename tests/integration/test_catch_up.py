"""Settling what a consumer held back while it caught up after a rebuild, on real PostgreSQL: nothing before every
partition is caught up, then a batch per transaction, kept if the settling fails, and never one aggregate twice."""

from __future__ import annotations

import asyncio

import pytest

from shared.db import Database
from shared.messaging.catch_up import PgCatchUp, settle_all_held, settle_held
from shared.messaging.consumer import BatchTransaction
from tests.integration.messaging_fixtures import prepare

pytestmark = pytest.mark.integration

VIEW, TRAINING = "funding-view", "funding-training"


@pytest.fixture
async def db(database_url: str) -> Database:
    db = await prepare(database_url)
    await db.execute("CREATE TABLE settled (id text)")  # what a service's settling writes
    yield db
    await db.close()


async def held(db: Database, consumer: str, *ids: str, ends: dict[tuple[str, int], int] | None = None) -> None:
    """What a rebuild and a consumer's replayed batches leave: partitions still to read, aggregates held back."""
    async with db.transaction() as conn:
        await PgCatchUp(db).hold(conn, consumer, ids)
        for (topic, partition), end in (ends or {}).items():
            await conn.execute("INSERT INTO catch_up VALUES ($1, $2, $3, $4)", consumer, topic, partition, end)


class Settling:
    """A service's settling: what it was given, in which transaction, and whether it fails."""

    def __init__(self, fails: bool = False, pause: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.fails, self.pause = fails, pause

    async def __call__(self, tx: BatchTransaction, ids: list[str]) -> None:
        await asyncio.sleep(self.pause)
        await tx.conn.executemany("INSERT INTO settled VALUES ($1)", [(i,) for i in ids])
        if self.fails:
            raise RuntimeError("the view's database refused")
        self.batches.append(ids)


async def test_nothing_is_settled_while_a_partition_is_still_being_caught_up_on(db: Database):
    await held(db, VIEW, "a", "b", ends={("registry.business.v1", 2): 40})
    settling = Settling()

    assert await settle_held(db, VIEW, settling) == 0

    await PgCatchUp(db).reached(VIEW, [("registry.business.v1", 2)])
    assert await settle_all_held(db, VIEW, settling, batch=1) == 2
    assert settling.batches == [["a"], ["b"]]
    assert await db.fetchval("SELECT count(*) FROM catch_up_held") == 0


async def test_a_consumer_whose_settling_reads_another_s_facts_waits_for_that_one_too(db: Database):
    await held(db, VIEW, "a")
    await held(db, TRAINING, ends={("training.participant.v1", 0): 9})
    settling = Settling()

    assert await settle_held(db, VIEW, settling, also_waits_for=[TRAINING]) == 0
    assert await settle_held(db, VIEW, settling) == 1  # on its own, it would not have waited


async def test_a_settling_that_fails_keeps_what_was_held_back_for_the_next_try(db: Database):
    await held(db, VIEW, "a", "b")

    with pytest.raises(RuntimeError):
        await settle_held(db, VIEW, Settling(fails=True))

    assert await db.fetchval("SELECT count(*) FROM catch_up_held") == 2
    assert await db.fetchval("SELECT count(*) FROM settled") == 0  # its writes went with the rollback
    assert await settle_held(db, VIEW, Settling()) == 2


async def test_two_instances_settling_at_once_never_take_one_aggregate_twice(db: Database):
    ids = [f"business-{i:03d}" for i in range(50)]
    await held(db, VIEW, *ids)
    first, second = Settling(pause=0.05), Settling(pause=0.05)

    await asyncio.gather(settle_all_held(db, VIEW, first, batch=5), settle_all_held(db, VIEW, second, batch=5))

    taken = [i for s in (first, second) for batch in s.batches for i in batch]
    assert sorted(taken) == ids and first.batches and second.batches

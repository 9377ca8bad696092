"""Holding back what a rebuilt view's history would set off, until its consumer has caught up.

A rebuild (replay.py) empties a view and has its consumers read their topics from the start. Read again in batches,
that history shows an aggregate as it was long ago: a business recorded medium, corrected to small three batches
later. Acting on it (withdrawing the business from a halal cohort, telling its owner) acts on the past, again. So the
rebuild writes, for each partition, how far the topic reached (`catch_up`). A delivery below that offset is
`replayed`: the service rebuilds its view from it and sets nothing off, and the consumer notes the aggregate
(`catch_up_held`) in the same transaction. Once the consumer has read every partition that far, the service settles
each held aggregate once, on the view as it then stands (`settle_held`), a batch per transaction, so a stop half-way
resumes where it was.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Collection

import asyncpg

from shared.db import Database
from shared.messaging.consumer import BatchTransaction

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class CatchUp(abc.ABC):
    """Where a consumer stands in catching up after a rebuild (the fakes in unit tests implement it too)."""

    @abc.abstractmethod
    async def ends(self, consumer: str) -> dict[TopicPartition, int]:
        """Per partition still being caught up on, the offset below which an event is history read again."""

    @abc.abstractmethod
    async def hold(self, conn: asyncpg.Connection, consumer: str, aggregate_ids: Collection[str]) -> None:
        """In the consumer's transaction: these aggregates are to be settled once it has caught up."""

    @abc.abstractmethod
    async def reached(self, consumer: str, partitions: Collection[TopicPartition]) -> None:
        """The consumer has committed every event below its offset on these partitions."""


class PgCatchUp(CatchUp):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ends(self, consumer: str) -> dict[TopicPartition, int]:
        rows = await self._db.fetch("SELECT topic, partition, end_offset FROM catch_up WHERE consumer = $1", consumer)
        return {(r["topic"], r["partition"]): r["end_offset"] for r in rows}

    async def hold(self, conn: asyncpg.Connection, consumer: str, aggregate_ids: Collection[str]) -> None:
        await conn.execute(
            "INSERT INTO catch_up_held (consumer, aggregate_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            consumer, sorted(aggregate_ids),
        )  # fmt: skip

    async def reached(self, consumer: str, partitions: Collection[TopicPartition]) -> None:
        topics, numbers = zip(*sorted(partitions), strict=True)
        await self._db.execute(
            "DELETE FROM catch_up WHERE consumer = $1"
            " AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::integer[]))",
            consumer, list(topics), list(numbers),
        )  # fmt: skip


async def catching_up(conn: asyncpg.Connection, consumers: Collection[str]) -> bool:
    """Whether any of these consumers is still reading history after a rebuild: a partition not yet read as far as
    the rebuild found it. Its view then knows only some aggregates, and those only as they were."""
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM catch_up WHERE consumer = ANY($1::text[]))",
                               sorted(consumers))  # fmt: skip


async def caught_up_holding(db: Database, consumers: Collection[str]) -> bool:
    """Whether these consumers have read every partition as far as their rebuild found it, and still hold aggregates
    back to settle: the moment for what a service put off while they read history."""
    return await db.fetchval(
        "SELECT NOT EXISTS (SELECT 1 FROM catch_up WHERE consumer = ANY($1::text[]))"
        " AND EXISTS (SELECT 1 FROM catch_up_held WHERE consumer = ANY($1::text[]))", list(consumers))  # fmt: skip


# What a service does for the aggregates a consumer held back: in the given transaction, on its view as it stands.
Settle = Callable[[BatchTransaction, list[str]], Awaitable[None]]


async def settle_held(db: Database, consumer: str, settle: Settle, batch: int = 200,
                      also_waits_for: Collection[str] = ()) -> int:  # fmt: skip
    """Settle one batch of what `consumer` held back, once it (and the consumers it `also_waits_for`: those whose
    facts the settling reads too) has caught up on every partition; returns how many (0: nothing held, or still
    catching up). Two instances never take the same aggregates (SKIP LOCKED)."""
    waiting = sorted({consumer, *also_waits_for})
    async with db.acquire() as conn:
        async with conn.transaction():
            if await catching_up(conn, waiting):
                return 0
            keys = [r["aggregate_id"] for r in await conn.fetch(
                "SELECT aggregate_id FROM catch_up_held WHERE consumer = $1 ORDER BY aggregate_id LIMIT $2"
                " FOR UPDATE SKIP LOCKED", consumer, batch)]  # fmt: skip
            if not keys:
                return 0
            tx = BatchTransaction(conn)
            await settle(tx, keys)
            await conn.execute("DELETE FROM catch_up_held WHERE consumer = $1 AND aggregate_id = ANY($2::text[])",
                               consumer, keys)  # fmt: skip
    for callback in tx.after_commit:
        callback()
    return len(keys)


async def settle_all_held(db: Database, consumer: str, settle: Settle, batch: int = 200,
                          also_waits_for: Collection[str] = ()) -> int:  # fmt: skip
    """Every batch `settle_held` finds, logging the progress of a long settling; returns how many in all."""
    done = 0
    while settled := await settle_held(db, consumer, settle, batch, also_waits_for):
        done += settled
        if done // 5000 != (done - settled) // 5000:
            log.info("%s: settled %d aggregates held back while catching up", consumer, done)
    if done:
        log.info("%s: caught up; settled the %d aggregates held back meanwhile", consumer, done)
    return done

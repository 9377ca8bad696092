"""One PostgreSQL transaction whose commit writes its events to the outbox first: the heart of every unit of work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from shared.contracts.envelope import Envelope
from shared.messaging.outbox import add_to_outbox


class PgTransaction:
    """Own a pooled connection and transaction, or join one that is already open (a consumer's inbox transaction,
    which commits the effects, the inbox row and the outbox rows together)."""

    def __init__(
        self,
        pool: asyncpg.Pool | None = None,
        *,
        joined: asyncpg.Connection | None = None,
        route: Callable[[Envelope], str] | None = None,
    ) -> None:
        if (pool is None) == (joined is None):
            raise ValueError("give a pool to open a transaction, or the connection of one to join")
        self._pool, self._joined, self._route = pool, joined, route
        self._conn: asyncpg.Connection | None = None
        self._tx: Any = None

    async def begin(self) -> asyncpg.Connection:
        if self._joined is not None:
            self._conn = self._joined
            return self._joined
        assert self._pool is not None
        self._conn = await self._pool.acquire()
        self._tx = self._conn.transaction()
        await self._tx.start()
        return self._conn

    async def commit(self, envelopes: Sequence[Envelope]) -> None:
        assert self._conn is not None, "begin() first"
        await add_to_outbox(self._conn, envelopes, self._route)
        if self._tx is not None:
            await self._tx.commit()
            self._tx = None

    async def rollback(self) -> None:
        """Undo what is not committed and give the connection back; a joined transaction is its owner's to undo."""
        if self._tx is not None:
            await self._tx.rollback()
            self._tx = None
        if self._pool is not None and self._conn is not None:
            await self._pool.release(self._conn)
        self._conn = None

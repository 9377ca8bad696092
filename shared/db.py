"""PostgreSQL access shared by services: the connection pool with bounded waits, a WHERE builder, and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from importlib import resources
import uuid
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram

# Held while migrating, so two instances starting together don't both apply a migration.
_MIGRATION_LOCK = 0x42_65_72_64  # "Berd"

log = logging.getLogger(__name__)


class DatabaseBusy(RuntimeError):
    """No connection came free within the acquire timeout: the database is down, slow or the pool too small."""


# What a request meets while the database restarts, fails over, has its connection cut, or cancels a statement
# (statement timeout, operator): the database's state, not the request's fault.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # class 08, including a connection that no longer exists
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, cannot connect now, query cancelled
    asyncpg.exceptions.InternalClientError,  # the protocol's state after a connection dropped mid-query
    OSError,  # refused or reset connections
)


def connection_closed(error: BaseException) -> bool:
    """Whether asyncpg refused because the connection had already closed under the caller. asyncpg has no class of
    its own for that, only InterfaceError's text: a statement on a connection found closed ("cannot perform
    operation: connection is closed"), and the end of a `conn.transaction()` block whose connection a restart or a
    cut closed ("cannot call Transaction.__aexit__(): the underlying connection is closed"), which replaces the
    failure that closed it. And a statement on a connection the pool took back because it closed while in use
    ("connection has been released back to the pool": asyncpg detaches the caller's proxy when the server ends the
    session). Every other InterfaceError is a misuse of the connection, a bug to be seen."""
    said = str(error)
    return isinstance(error, asyncpg.InterfaceError) and ("connection is closed" in said
                                                          or "released back to the pool" in said)  # fmt: skip


class DatabaseMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.acquire_wait = Histogram(
            "berdaya_db_pool_acquire_seconds",
            "Time spent waiting for a pooled database connection.",
            buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.acquire_timeouts = Counter(
            "berdaya_db_pool_acquire_timeouts",
            "Waits for a pooled connection that gave up (the database is down, slow or the pool too small).",
            registry=registry,
        )


class Database:
    """A service's connection pool. Every wait for a connection is bounded and measured, and every connection
    handed out comes back on every path, including a failed COMMIT (the pool resets or discards it)."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = 10.0, metrics: DatabaseMetrics | None = None) -> None:
        self.pool = pool
        self._timeout = acquire_timeout
        self._metrics = metrics

    async def connect(self) -> asyncpg.Connection:
        """A connection the caller must give back with `release`; prefer `acquire()`."""
        started = time.perf_counter()
        try:
            return await self.pool.acquire(timeout=self._timeout)
        except TimeoutError:
            if self._metrics:
                self._metrics.acquire_timeouts.inc()
            raise DatabaseBusy(
                f"no database connection free within {self._timeout:g}s; check that PostgreSQL is up and not "
                "overloaded, or raise the pool size"
            ) from None
        finally:
            if self._metrics:
                self._metrics.acquire_wait.observe(time.perf_counter() - started)

    async def release(self, conn: asyncpg.Connection) -> None:
        # asyncpg rolls back an open transaction on release, and closes the connection if even that fails.
        await self.pool.release(conn, timeout=self._timeout)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self.connect()
        try:
            yield conn
        finally:
            await self.release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.acquire() as conn, conn.transaction():
            yield conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return await conn.execute(query, *args)

    async def unreachable(self, within: float) -> str | None:
        """Why the database does not answer `SELECT 1` within `within` seconds, a free connection included, or None
        if it does: what /ready reports, and what a consumer asks after a timeout before blaming the record."""
        try:
            async with asyncio.timeout(within):
                await self.fetchval("SELECT 1")
        except TimeoutError:
            return f"no answer to SELECT 1 within {within:g} s"
        except Exception as exc:  # noqa: BLE001 - not answering, whatever the reason
            return f"{type(exc).__name__}: {exc}"
        return None

    async def close(self) -> None:
        await self.pool.close()


async def open_database(
    dsn: str, *, max_size: int = 10, acquire_timeout: float = 10.0, statement_timeout_ms: int = 60_000,
    metrics: DatabaseMetrics | None = None, custom_plans: bool = False,
) -> Database:  # fmt: skip
    """`custom_plans`: plan every statement for its own parameters (`PlatformSettings.db_custom_plans` says why)."""
    settings = {"statement_timeout": str(statement_timeout_ms),
                "idle_in_transaction_session_timeout": str(statement_timeout_ms), "jit": "off"}
    if custom_plans:
        settings["plan_cache_mode"] = "force_custom_plan"
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, command_timeout=statement_timeout_ms / 1000 + 5,
        # The server ends a statement that runs away, and a session left idle inside a transaction, so neither
        # can hold locks for long after its client is gone. No JIT: every query here is an index look-up or a short
        # scan, and compiling one costs more than it saves; a new pledge's ranking spent 220-320 ms of its 400-500
        # ms compiling.
        server_settings=settings,
        reset=_session_left_as_it_was,
    )  # fmt: skip
    return Database(pool, acquire_timeout=acquire_timeout, metrics=metrics)


async def _session_left_as_it_was(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, after rolling back any transaction left open: nothing more.

    asyncpg's default sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release: a
    round trip for each unit of work, a quarter of a small one's time (acquire, BEGIN, INSERT, COMMIT, release: 578
    -> 433 us, and 305 -> 238 us of the client's CPU). Nothing here leaves session state on a pooled connection:
    settings are SET LOCAL, locks are the transaction's, LISTEN has a connection of its own (the relay's), and the
    migrations reset their session on every way out (`migrate`). Anything that changes a session must undo it too."""


class Where:
    """A WHERE clause from optional filters; each value becomes the next numbered parameter ($1, $2, ...).

    `where.add("kecamatan_code = {}", code)` puts the parameter where the braces are.
    """

    def __init__(self, *clauses: str, args: list[Any] | None = None) -> None:
        self.clauses = list(clauses)
        self.args: list[Any] = list(args or [])

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str, *values: Any) -> Where:
        self.clauses.append(clause.format(*(self.param(v) for v in values)))
        return self

    def add_if(self, value: Any, clause: str) -> Where:
        """Add `clause` with `value` as its parameter unless the value is None (the filter was not given)."""
        return self if value is None else self.add(clause, value)

    @property
    def condition(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"

    @property
    def sql(self) -> str:
        return f" WHERE {self.condition}" if self.clauses else ""


async def delete_in_batches(db: Database, select_keys: str, *args: Any, table: str, key: str, batch: int = 5000) -> int:
    """Delete the rows `select_keys` finds (it selects `key` and takes its batch size as the last parameter), a batch
    per statement, so no lock is held for long; returns how many went."""
    deleted = 0
    while True:
        status = await db.execute(f"DELETE FROM {table} WHERE {key} IN ({select_keys})", *args, batch)
        count = int(status.split()[-1])
        deleted += count
        if count < batch:
            return deleted


def newer_version_upsert(table: str, columns: tuple[str, ...], key: str, version: str = "version") -> str:
    """An upsert of one row by `key` that only a newer `version` may overwrite, so an event read late (a redelivery,
    another partition's replay) never rolls a view back. Parameters are the columns in order."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        f" WHERE {table}.{version} < excluded.{version}"
    )


def like_pattern(text: str) -> str:
    """`text` as a literal inside a LIKE pattern: its % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


# ---------------------------------------------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------------------------------------------


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    namespace: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_NO_LIMIT = 7 * 24 * 3600.0  # seconds: asyncpg's own timeout of a call, which None would leave at the pool's


def load_migrations(package: str, namespace: str) -> list[Migration]:
    """Files named NNN_what.sql in a package's folder, in version order. Any other .sql file there is refused: skipped,
    the service would start without its schema change."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(namespace, int(match[1]), match[2], entry.read_text(encoding="utf-8")))
        elif entry.name.lower().endswith(".sql"):
            raise MigrationError(f"{package}: {entry.name} is not named NNN_what.sql (three or more digits, then "
                                 "lower-case letters, digits and underscores); rename it")  # fmt: skip
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{package}: two migrations share a version number")
    return found


@dataclass(frozen=True, slots=True)
class LockWaits:
    """How long a migration may queue for a table's lock before it steps back, and for how long it keeps trying.

    A waiting `ALTER TABLE` makes every later reader and writer of that table queue behind it: during a rolling start
    the old instance's writes would stall until whatever long transaction the migration waits for ends. Waiting a
    little at a time, and stepping back in between, lets them through."""

    each: float = 2.0  # seconds one attempt queues for its locks
    pause: float = 3.0  # seconds between attempts, while the tables' users go on
    give_up_after: float = 900.0  # seconds; then the service stops with the sessions in the way named


async def migrate(
    conn: asyncpg.Connection, migrations: list[Migration], waits: LockWaits = LockWaits()
) -> list[Migration]:
    """Apply what is new, each in its own transaction; refuse if an applied migration was edited since.

    Free of the connection's statement timeout (a pooled one's is 60 s), for the session: a migration rewriting a
    large table was cancelled, rolled back and tried again at every start, and a second instance waiting for the
    first one's migrations gave up and exited. Its lock waits are bounded instead (`LockWaits`).

    The session is reset on the way out, whatever happens: the pool no longer resets connections given back."""
    try:
        await conn.execute("SET statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK, timeout=_NO_LIMIT)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   namespace text NOT NULL,
                   version integer NOT NULL,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (namespace, version))"""
        )
        rows = await conn.fetch("SELECT namespace, version, checksum FROM schema_migrations")
        applied = {(r["namespace"], r["version"]): r["checksum"] for r in rows}
        done = []
        for migration in migrations:
            key = (migration.namespace, migration.version)
            if key in applied:
                if applied[key] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.namespace}/{migration.version:03d}_{migration.name} was edited "
                        "after it was applied; restore it and add a new migration instead"
                    )
                continue
            await _apply(conn, migration, waits)
            done.append(migration)
        return done
    finally:
        await _reset_session(conn)


async def _reset_session(conn: asyncpg.Connection) -> None:
    """Release the session's locks and return its settings to the connection's own (a migration's SQL may set some
    too); a connection that can't be reset (a cancel arrived mid-wait, the server went away) is closed, never used
    again with the migration lock held and no statement timeout."""
    try:
        await conn.reset()
    except BaseException:
        conn.terminate()
        raise


async def _apply(conn: asyncpg.Connection, migration: Migration, waits: LockWaits) -> None:
    """One migration in one transaction, tried again while other sessions hold the locks it needs."""
    label = f"{migration.namespace}/{migration.version:03d}_{migration.name}"
    deadline = time.monotonic() + waits.give_up_after
    while True:
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {max(1, round(waits.each * 1000))}")
                await conn.execute(migration.sql, timeout=_NO_LIMIT)
                await conn.execute(
                    "INSERT INTO schema_migrations (namespace, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    migration.namespace,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            return
        except asyncpg.LockNotAvailableError:
            in_the_way = await _long_transactions(conn)
            if time.monotonic() + waits.pause >= deadline:
                raise MigrationError(
                    f"migration {label} could not take its table locks in {waits.give_up_after:.0f} s: other sessions "
                    f"hold them ({in_the_way or 'none found open now'}). End or wait for those sessions, then start "
                    "the service again"
                ) from None
            log.warning("migration %s waits for table locks held by %s; trying again in %g s",
                        label, in_the_way or "another session", waits.pause)  # fmt: skip
            await asyncio.sleep(waits.pause)


async def _long_transactions(conn: asyncpg.Connection) -> str:
    """The oldest open transactions of this database but ours: what a migration's lock most likely waits for."""
    rows = await conn.fetch(
        """SELECT pid, coalesce(nullif(application_name, ''), usename::text, '?') AS who, state,
                  round(extract(epoch FROM now() - xact_start)) AS seconds
             FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
            ORDER BY xact_start LIMIT 3"""
    )
    return "; ".join(f"pid {r['pid']} ({r['who']}, {r['state']}, open {r['seconds']:.0f} s)" for r in rows)


async def lock_ids(conn: asyncpg.Connection, kind: int, ids: Iterable[uuid.UUID], *, shared: bool = False) -> None:
    """Hold a lock on each id (of one `kind`) until the transaction ends, whether or not a row for it exists yet:
    two consumers writing different tables about one business then never read each other's write as missing.
    Taken in key order, so two transactions can't each hold what the other waits for. `shared`: held with others
    holding it shared, waiting only for (and holding back) whoever holds it alone."""
    how = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(
        f"""SELECT {how}($1, k)
              FROM (SELECT DISTINCT hashtext(i::text) AS k FROM unnest($2::uuid[]) AS i) AS keys ORDER BY k""",
        kind, list(set(ids)),
    )


async def hold_gate(conn: asyncpg.Connection, gate: tuple[int, int], alone: bool) -> None:
    """Hold `gate` until the transaction ends: alone (waits for every holder, and holds every other back) or shared
    with others holding it shared. The work that must see every change holds it alone; the changes hold it shared, so
    they never wait for each other."""
    how = "pg_advisory_xact_lock" if alone else "pg_advisory_xact_lock_shared"
    await conn.execute(f"SELECT {how}($1, $2)", *gate)

"""The faults, injected at random moments while the load runs:

- kill -9 of a service process, restarted right after; for the registry sometimes while its outbox relay is in the
  middle of publishing a heavy import's batch, for funding sometimes the replica that holds the relay lease;
- SIGSTOP of a consumer replica for longer than its Kafka session timeout, then SIGCONT;
- a PostgreSQL connection cut under running transactions (pg_terminate_backend of the services' sessions);
- when the run owns its infrastructure: PostgreSQL restarts (pg_ctl stop -m fast and -m immediate) and Kafka broker
  restarts (SIGTERM, and kill -9).

"Mid-batch" is observed, not assumed: the relay claims its rows with a query marked with `CLAIM_MARKER` and keeps
that transaction open while Kafka acknowledges the batch, so a session of the service's database idle in a
transaction whose last statement is that claim, with rows still unpublished, is a relay mid-batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg

from chaos.load import Load
from chaos.system import LocalInfra, Replica, System
from shared.messaging.relay import CLAIM_MARKER

KILL = "kill -9"
KILL_MID_IMPORT = "kill -9 registry, relay mid-batch in a heavy import"
KILL_RELAY = "kill -9 funding relay lease holder"
FREEZE = "SIGSTOP, SIGCONT"
PG_CUT = "pg_terminate_backend"
PG_FAST = "PostgreSQL restart (-m fast)"
PG_IMMEDIATE = "PostgreSQL restart (-m immediate)"
KAFKA_RESTART = "Kafka broker restart (SIGTERM)"
KAFKA_KILL = "Kafka broker kill -9 and start"
KILLS = (KILL, KILL_MID_IMPORT, KILL_RELAY)
INFRA = (PG_FAST, PG_IMMEDIATE, KAFKA_RESTART, KAFKA_KILL)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load started
    kind: str
    target: str | None = None  # a replica, or "funding" for whichever funding replica holds the relay lease


@dataclass
class Injected:
    fault: Fault
    started: float  # seconds after the load started
    seconds: float  # the fault itself, until the system was whole again (a restarted replica ready)
    detail: str
    ok: bool = True
    mid_batch: bool = False
    hit: str = ""  # the replica it hit, for process faults
    waited: float = 0.0  # seconds it waited for faults on the same parts to finish first


def plan(*, kills: int, seconds: float, seed: int, freezes: tuple[str, ...] = ("funding", "notifier-1"),
         cuts: int | None = None, infrastructure: bool = True) -> list[Fault]:  # fmt: skip
    """Faults at random moments in the first nine tenths of the load. Kills go round the replicas; one registry kill
    in three waits for its relay to be mid-batch in a heavy import, one funding kill in three hits the relay lease
    holder."""
    rng = random.Random(seed)

    def moment(low: float = 0.05, high: float = 0.9) -> float:
        return rng.uniform(low, high) * seconds

    faults: list[Fault] = []
    replicas = ["registry", "funding-1", "notifier-1", "funding-2", "notifier-2"]
    counts: Counter[str] = Counter()
    for i in range(kills):
        target = replicas[i % len(replicas)]
        counts[target.split("-")[0]] += 1
        kind = KILL
        if target == "registry" and counts["registry"] % 3 == 1:
            kind = KILL_MID_IMPORT
        elif target.startswith("funding") and counts["funding"] % 3 == 1:
            kind, target = KILL_RELAY, "funding"
        faults.append(Fault(moment(), kind, target))
    faults += [Fault(moment(0.1, 0.8), FREEZE, target) for target in freezes]
    faults += [Fault(moment(), PG_CUT) for _ in range(max(2, kills // 10) if cuts is None else cuts)]
    if infrastructure:
        for kind, around in ((PG_FAST, 0.3), (KAFKA_RESTART, 0.42), (PG_IMMEDIATE, 0.55), (KAFKA_KILL, 0.7)):
            faults.append(Fault(moment(around - 0.03, around + 0.03), kind))
    return sorted(faults, key=lambda f: f.at)


class Injector:
    def __init__(self, system: System, load: Load, infra: LocalInfra | None, *, freeze_seconds: float = 15.0) -> None:
        self.system = system
        self.load = load
        self.infra = infra
        self.freeze_seconds = freeze_seconds
        self.injected: list[Injected] = []
        self._infra_lock = asyncio.Lock()

    async def run(self, faults: list[Fault]) -> list[Injected]:
        tasks = []
        for fault in faults:
            await asyncio.sleep(max(0.0, fault.at - self.load.elapsed()))
            tasks.append(asyncio.create_task(self._inject(fault)))
        await asyncio.gather(*tasks)
        return self.injected

    async def _inject(self, fault: Fault) -> None:
        started = self.load.elapsed()
        clock = time.monotonic()
        try:
            record = await self._dispatch(fault)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be made is reported, not fatal
            record = Injected(fault, started, 0.0, f"could not inject: {type(exc).__name__}: {exc}", ok=False)
        record.started, record.seconds = started + record.waited, time.monotonic() - clock - record.waited
        self.injected.append(record)

    @contextlib.asynccontextmanager
    async def _holding(self, *locks: asyncio.Lock) -> AsyncIterator[Callable[[Injected], Injected]]:
        """Hold the locks (one fault at a time per replica; nothing else during an infrastructure restart); what
        it yields stamps a record with how long the fault waited for them."""
        asked = time.monotonic()
        held: list[asyncio.Lock] = []
        try:
            for lock in locks:
                await lock.acquire()
                held.append(lock)
            waited = time.monotonic() - asked

            def stamp(record: Injected) -> Injected:
                record.waited = waited
                return record

            yield stamp
        finally:
            for lock in reversed(held):
                lock.release()

    async def _dispatch(self, fault: Fault) -> Injected:
        if fault.kind == KILL:
            return await self._kill(self.system.replicas[fault.target or ""], fault)
        if fault.kind == KILL_MID_IMPORT:
            return await self._kill_mid_import(fault)
        if fault.kind == KILL_RELAY:
            return await self._kill_relay_holder(fault)
        if fault.kind == FREEZE:
            return await self._freeze(fault)
        if fault.kind == PG_CUT:
            return await self._cut(fault)
        return await self._restart_infrastructure(fault)

    # -- processes -------------------------------------------------------------------------------------------------

    async def _kill(self, replica: Replica, fault: Fault) -> Injected:
        async with self._holding(replica.lock) as stamp:
            return stamp(await self._kill_locked(replica, fault))

    async def _kill_locked(self, replica: Replica, fault: Fault, *, before: str = "", mid_batch: bool = False) -> Injected:
        pid = replica.pid
        if pid is None:  # its last start failed: try again rather than kill nothing
            start = await self.system.start(replica)
            return Injected(fault, 0, 0, f"{replica.name} was down; started again: {start.error or 'ok'}", ok=start.ok,
                            hit=replica.name)  # fmt: skip
        start = await self.system.kill(replica)
        if not start.ok:
            return Injected(fault, 0, 0, f"{replica.name} (pid {pid}){before}; DID NOT COME BACK after "
                                         f"{start.attempts} starts: {start.error}", ok=False, mid_batch=mid_batch,
                            hit=replica.name)  # fmt: skip
        return Injected(fault, 0, 0, f"{replica.name} (pid {pid}){before}; ready again in {start.seconds:.1f}s",
                        mid_batch=mid_batch, hit=replica.name)  # fmt: skip

    async def _kill_mid_import(self, fault: Fault) -> Injected:
        replica = self.system.replicas["registry"]
        async with self._holding(replica.lock) as stamp:
            self.load.heavy_import_wanted.set()
            # At least a relay batch's worth unpublished: the rows of the import, not a registration passing by.
            seen = await self._relay_mid_batch("registry", timeout=60, min_backlog=200)
            before = f", relay mid-batch ({seen} rows unpublished)" if seen else ", relay not seen mid-batch within 60s"
            return stamp(await self._kill_locked(replica, fault, before=before, mid_batch=seen is not None))

    async def _kill_relay_holder(self, fault: Fault) -> Injected:
        holder = await self._lease_holder("funding", wait=20)
        replica = holder or self.system.of("funding")[0]
        async with self._holding(replica.lock) as stamp:
            seen = await self._relay_mid_batch("funding", timeout=20)
            role = "relay lease holder" if holder else "lease holder unknown"
            state = f"mid-batch ({seen} rows unpublished)" if seen else "not seen mid-batch within 20s"
            return stamp(await self._kill_locked(replica, fault, before=f", {role}, {state}", mid_batch=seen is not None))

    async def _freeze(self, fault: Fault) -> Injected:
        holder = await self._lease_holder("funding", wait=20) if fault.target == "funding" else None
        replica = holder or self.system.replicas[fault.target if fault.target != "funding" else "funding-1"]
        async with self._holding(replica.lock) as stamp:
            pid = replica.pid
            if pid is None:
                return stamp(Injected(fault, 0, 0, f"{replica.name} was down; nothing to freeze", ok=False,
                                      hit=replica.name))  # fmt: skip
            await self.system.freeze(replica, self.freeze_seconds)
        role = " (relay lease holder)" if holder else ""
        return stamp(Injected(fault, 0, 0, f"{replica.name}{role} (pid {pid}) stopped {self.freeze_seconds:g}s, then "
                                           "continued", hit=replica.name))  # fmt: skip

    async def _lease_holder(self, service: str, wait: float) -> Replica | None:
        """The replica whose relay holds the outbox lease now (its holder id is host:pid:nonce); after a kill the
        lease is free until a relay takes it, so this waits up to `wait` seconds for one to."""
        deadline = time.monotonic() + wait
        while True:
            holder = None
            try:
                conn = await asyncpg.connect(self.system.target.databases[service], timeout=5)
                try:
                    holder = await conn.fetchval(
                        "SELECT holder FROM relay_lease WHERE name = 'outbox' AND expires_at > now()")  # fmt: skip
                finally:
                    await conn.close()
            except Exception:  # noqa: BLE001 - our session cut by a pg_terminate_backend fault: ask again
                pass
            pid = holder.split(":")[1] if holder and holder.count(":") >= 2 else None
            found = next((r for r in self.system.of(service) if pid is not None and str(r.pid) == pid), None)
            if found is not None or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.5)

    async def _relay_mid_batch(self, service: str, timeout: float, min_backlog: int = 1) -> int | None:
        """Wait until the service's relay is mid-batch; the unpublished rows then, or None if it never was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = await asyncpg.connect(self.system.target.databases[service], timeout=5)
                try:
                    while time.monotonic() < deadline:
                        row = await conn.fetchrow(
                            """SELECT (SELECT count(*) FROM pg_stat_activity
                                        WHERE datname = current_database() AND pid <> pg_backend_pid()
                                          AND state = 'idle in transaction'
                                          AND query LIKE $1) AS claims,
                                      (SELECT count(*) FROM outbox_pending) AS backlog""",
                            f"%{CLAIM_MARKER}%",
                        )  # fmt: skip
                        if row["claims"] and row["backlog"] >= min_backlog:
                            return row["backlog"]
                        await asyncio.sleep(0.01)
                finally:
                    await conn.close()
            except Exception:  # noqa: BLE001 - our own session cut by a pg_terminate_backend fault: watch again
                await asyncio.sleep(0.2)
        return None

    # -- the database and the broker -------------------------------------------------------------------------------

    async def _cut(self, fault: Fault) -> Injected:
        """Terminate every session of the services' databases at a moment when at least one is inside a
        transaction (one statement, one snapshot of pg_stat_activity: the sessions seen are the sessions cut)."""
        databases = [self.system.target.database_name(s) for s in self.system.target.databases]
        async with self._holding(self._infra_lock) as stamp:
            conn = await asyncpg.connect(self.system.target.postgres_url, timeout=5)
            try:
                rows: list = []
                deadline = time.monotonic() + 10
                while not rows:
                    anyway = time.monotonic() > deadline  # nothing in a transaction for 10s: cut what is there
                    rows = await conn.fetch(
                        """WITH s AS (SELECT pid, datname, xact_start IS NOT NULL AS in_transaction
                                        FROM pg_stat_activity WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid())
                           SELECT datname, in_transaction, pg_terminate_backend(pid) AS cut FROM s
                            WHERE $2 OR (SELECT bool_or(in_transaction) FROM s)""",
                        databases, anyway,
                    )  # fmt: skip
                    if not rows and not anyway:
                        await asyncio.sleep(0.01)
                    elif anyway:
                        break
            finally:
                await conn.close()
        cut = [r for r in rows if r["cut"]]
        in_tx = Counter(r["datname"] for r in cut if r["in_transaction"])
        names = {self.system.target.database_name(s): s for s in self.system.target.databases}
        where = ", ".join(f"{names[d]} {n}" for d, n in sorted(in_tx.items()))
        return stamp(Injected(fault, 0, 0, f"terminated {len(cut)} sessions, {sum(in_tx.values())} inside a "
                                           "transaction" + (f" ({where})" if where else "")))  # fmt: skip

    async def _restart_infrastructure(self, fault: Fault) -> Injected:
        if self.infra is None:
            return Injected(fault, 0, 0, "not injected: this run does not own its PostgreSQL and Kafka", ok=False)
        replicas = sorted(self.system.replicas.values(), key=lambda r: r.name)
        # No other fault runs meanwhile, and every replica is up before.
        async with self._holding(self._infra_lock, *(r.lock for r in replicas)) as stamp:
            started = time.monotonic()
            if fault.kind in (PG_FAST, PG_IMMEDIATE):
                mode = "fast" if fault.kind == PG_FAST else "immediate"
                await asyncio.to_thread(self.infra.restart_postgres, mode, 2.0)
            else:
                await asyncio.to_thread(self.infra.restart_kafka, hard=fault.kind == KAFKA_KILL, down=3.0)
            back = time.monotonic() - started
            missing = await self._wait_ready(replicas, timeout=120)
            ready = time.monotonic() - started
        if missing:
            return stamp(Injected(fault, 0, 0, f"stopped and up again in {back:.1f}s; replicas NOT READY 120s later: "
                                               f"{', '.join(missing)}", ok=False))  # fmt: skip
        return stamp(Injected(fault, 0, 0, f"stopped and up again in {back:.1f}s; every replica ready {ready:.1f}s "
                                           "after the stop"))  # fmt: skip

    async def _wait_ready(self, replicas: list[Replica], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        waiting = list(replicas)
        while waiting and time.monotonic() < deadline:
            waiting = [r for r in waiting if not await self.system.ready(r)]
            if waiting:
                await asyncio.sleep(0.5)
        return [r.name for r in waiting]

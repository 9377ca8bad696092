"""The system under chaos: the registry and two replicas each of funding and the notifier as real processes
(berdaya.stack.local.run_service), replicas of one service sharing its database, and the PostgreSQL and Kafka they
run on. Everything here is what an operator could do by hand: start, kill -9, freeze, restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import httpx

from berdaya.stack.kafka import LocalKafka, broker_pids
from berdaya.stack.local import run_service, throwaway_env
from berdaya.stack.postgres import LocalPostgres
from berdaya.stack.process import alive, free_port, stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.auth import TokenService
from shared.messaging.kafka import KafkaAccess

SECRET = "chaos-run-secret-chaos-run-secret-chaos-run"
REPLICAS = {"registry": 1, "funding": 2, "notifier": 2}
SERVICES = tuple(REPLICAS)


@dataclass(frozen=True)
class Target:
    """Where the system runs: a PostgreSQL server with one database per service, a Kafka cluster and a topic
    namespace of its own, and a folder for the services' logs."""

    postgres_url: str  # the server, database "postgres"
    kafka: KafkaAccess  # as the cluster's admin; each service gets a user of its own
    namespace: str
    databases: dict[str, str]  # service -> database URL
    workdir: Path

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    def database_name(self, service: str) -> str:
        return self.databases[service].rsplit("/", 1)[1]


@dataclass
class Replica:
    name: str  # e.g. funding-2
    service: str
    port: int
    log_file: Path
    pid: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one fault at a time per replica

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Start:
    """One (re)start of a replica: how long until /ready answered, and what went wrong on the way."""

    replica: str
    seconds: float
    attempts: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class System:
    def __init__(self, target: Target) -> None:
        self.target = target
        # One environment for the whole run: the NIK keys must survive restarts, or duplicates go unnoticed.
        self.env = throwaway_env(target.kafka, target.namespace, SECRET)
        self.tokens = TokenService(SECRET)
        self.replicas: dict[str, Replica] = {}
        ports: set[int] = set()
        for service, count in REPLICAS.items():
            for i in range(1, count + 1):
                name = service if count == 1 else f"{service}-{i}"
                while (port := free_port()) in ports:  # two calls can hand out the same free port
                    pass
                ports.add(port)
                self.replicas[name] = Replica(name, service, port, target.workdir / "logs" / f"{name}.log")
        self.starts: list[Start] = []

    def of(self, service: str) -> list[Replica]:
        return [r for r in self.replicas.values() if r.service == service]

    def urls(self, service: str) -> list[str]:
        return [r.url for r in self.of(service)]

    def token(self, role: str, sponsor_id: object = None) -> str:
        return self.tokens.mint(f"chaos-{role}", [role], sponsor_id=sponsor_id)  # type: ignore[arg-type]

    @property
    def nik_digest_key(self) -> str:
        return self.env["REGISTRY_NIK_DIGEST_KEY"]

    # -- starting and stopping -----------------------------------------------------------------------------------

    async def start_all(self) -> None:
        starts = await asyncio.gather(*(self.start(r, attempts=1) for r in self.replicas.values()))
        failed = [s for s in starts if not s.ok]
        if failed:
            raise RuntimeError("replicas did not start: " + "; ".join(f"{s.replica}: {s.error}" for s in failed))

    async def start(self, replica: Replica, attempts: int = 3) -> Start:
        """Start the replica on its own port and wait for /ready; a start that fails is cleaned up and tried again."""
        started = time.monotonic()
        error = None
        for attempt in range(1, attempts + 1):
            try:
                process = await asyncio.to_thread(run_service, replica.service, self.env,
                                                  self.target.databases[replica.service], replica.log_file,
                                                  replica.port)  # fmt: skip
                replica.pid = process.pid
                error = None
                break
            except RuntimeError as exc:
                error = str(exc).splitlines()[0] + " | " + " | ".join(str(exc).splitlines()[-3:])
                for pid in _processes_of(replica):  # one that never became ready still holds the port
                    _signal(pid, signal.SIGKILL)
                await asyncio.sleep(2)
        record = Start(replica.name, time.monotonic() - started, attempt, error)
        self.starts.append(record)
        return record

    async def kill(self, replica: Replica) -> Start:
        """kill -9, then start it again at once."""
        pid = replica.pid
        assert pid is not None, f"{replica.name} is not running"
        _signal(pid, signal.SIGKILL)
        await _gone(pid)
        replica.pid = None
        return await self.start(replica)

    async def freeze(self, replica: Replica, seconds: float) -> None:
        """SIGSTOP for `seconds`, then SIGCONT: the process is alive but answers nothing, heartbeats included."""
        assert replica.pid is not None
        _signal(replica.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            _signal(replica.pid, signal.SIGCONT)

    async def ready(self, replica: Replica) -> bool:
        try:
            async with httpx.AsyncClient(timeout=3) as http:
                return (await http.get(f"{replica.url}/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    async def stop_all(self) -> None:
        async def stop(replica: Replica) -> None:
            for pid in {replica.pid, *_processes_of(replica)} - {None}:
                _signal(pid, signal.SIGCONT)  # a frozen process can't act on SIGTERM
                await asyncio.to_thread(stop_pid, pid)

        await asyncio.gather(*(stop(r) for r in self.replicas.values()))


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


async def _gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _processes_of(replica: Replica) -> Iterator[int]:
    """Processes running this replica (found by its port in their environment), whether or not we know their pid."""
    marker = f"{replica.service.upper()}_HTTP_PORT={replica.port}".encode()
    module = f"services.{replica.service}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if module in (entry / "cmdline").read_bytes() and marker in (entry / "environ").read_bytes().split(b"\0"):
                if alive(int(entry.name)):
                    yield int(entry.name)
        except OSError:
            continue


# ---------------------------------------------------------------------------------------------------------------
# The infrastructure, when the run owns it
# ---------------------------------------------------------------------------------------------------------------


class LocalInfra:
    """The PostgreSQL and the Kafka broker of a throwaway stack, which the full run stops and starts again.

    throwaway_stack keeps its handles to itself, so they are found again from its folder: PostgreSQL by its data
    directory (pg_ctl needs nothing else), the broker by its config file (ports) and its command line (pid).
    """

    def __init__(self, stack: Throwaway) -> None:
        port = urlparse(stack.postgres_url).port
        assert port is not None
        self.postgres = LocalPostgres(stack.base / "pg" / "data", port, durable=True)
        config = stack.base / "kafka" / "kafka-1" / "server.properties"
        ports = re.search(r"(?:PLAINTEXT|CLIENT)://127\.0\.0\.1:(\d+),CONTROLLER://127\.0\.0\.1:(\d+)", config.read_text())
        assert ports, f"no listeners in {config}"
        self.kafka = LocalKafka(stack.base / "kafka", port=int(ports[1]), size=1, controller_port=int(ports[2]),
                                credentials=stack.credentials)  # fmt: skip

    def restart_postgres(self, mode: Literal["fast", "immediate"], down: float) -> None:
        self.postgres.stop(mode)
        time.sleep(down)
        self.postgres.start()

    def restart_kafka(self, *, hard: bool, down: float) -> None:
        for pid in self._broker_pids():
            if hard:
                _signal(pid, signal.SIGKILL)
                deadline = time.monotonic() + 15
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
            else:
                stop_pid(pid, timeout=60)
        time.sleep(down)
        self.kafka.start()

    def close(self) -> None:
        """Stop a broker this object started (throwaway_stack stops only the one it started itself)."""
        self.kafka.stop()

    def _broker_pids(self) -> list[int]:
        return broker_pids(self.kafka.base_dir)

"""A PostgreSQL and a Kafka broker on free ports in a temporary folder, gone afterwards: for tests and benchmarks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berdaya.stack.kafka import BrokerCredentials, LocalKafka, broker_pids
from berdaya.stack.postgres import LocalPostgres
from berdaya.stack.process import free_ports, stop_pid
from shared.messaging.kafka import KafkaAccess

_TEMP = Path("/tmp")
_OWNER = "owner.lock"  # locked by the run that owns the stack for as long as it lives


@dataclass(frozen=True)
class Throwaway:
    postgres_url: str  # the server, database "postgres"
    kafka: KafkaAccess  # as the cluster's admin
    base: Path
    credentials: BrokerCredentials | None  # the broker's own accounts, to start it again

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers


@contextlib.contextmanager
def throwaway_stack(*, durable: bool, kafka_nodes: int = 1, secured: bool = True,
                    commit_timestamps: bool = False) -> Iterator[Throwaway]:  # fmt: skip
    """Secured as a real deployment is (SCRAM users, ACLs, deny by default) unless `secured` is False."""
    reap_abandoned()
    # Under /tmp so that PostgreSQL's own user can enter it when we run as root.
    base = Path(tempfile.mkdtemp(prefix="berdaya-", dir=_TEMP))
    base.chmod(0o755)
    owner = _hold(base)
    pg_port, *kafka_ports = free_ports(1 + 2 * kafka_nodes)
    postgres = LocalPostgres(base / "pg" / "data", pg_port, durable=durable, commit_timestamps=commit_timestamps)
    credentials = BrokerCredentials.generate() if secured else None
    kafka = LocalKafka(base / "kafka", node_ports=list(zip(kafka_ports[::2], kafka_ports[1::2], strict=True)),
                       credentials=credentials)
    try:
        postgres.start()
        kafka.start()
        yield Throwaway(postgres.url(), kafka.admin, base, credentials)
    finally:
        kafka.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)
        os.close(owner)


def _hold(base: Path) -> int:
    """Lock the stack's owner file for as long as this run lives: the kernel lets go when the run ends, however it
    ends, and whatever user or PID namespace looks. The file appears already locked, so a stack being set up is never
    taken for an abandoned one."""
    staged = base / f".{_OWNER}"
    fd = os.open(staged, os.O_CREAT | os.O_WRONLY, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())  # for a person looking; the lock is what counts
    os.rename(staged, base / _OWNER)
    return fd


def reap_abandoned(parent: Path = _TEMP) -> list[Path]:
    """Stop the servers of every throwaway stack whose run is gone, and remove its folder; returns those folders.

    A run killed with SIGKILL, or crashed in native code (librdkafka's SIGSEGV), never reaches its `finally`: its
    PostgreSQL and Kafka broker ran on for good, a JVM and a postmaster each, and a machine that ran the tests often
    slowed down under them. Left alone: a stack whose run still holds its lock, one without an owner file (made by
    another version of this code, or a chaos run's logs), another user's, and anything reached through a symbolic
    link. A folder whose servers would not stop is kept, and said so."""
    if not Path("/proc").is_dir():
        return []  # the brokers are found through /proc: without it, a folder removed could hide a broker running on
    reaped = []
    for base in sorted(parent.glob("berdaya-*")):
        try:
            if any(p.is_symlink() for p in (base, base / "pg", base / "pg" / "data", base / "kafka")):
                continue
            if base.lstat().st_uid != os.geteuid():
                continue
            lock = os.open(base / _OWNER, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # no owner file, or not ours to read
            continue
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its run is alive
            if _stop_servers(base):
                shutil.rmtree(base, ignore_errors=True)
                reaped.append(base)
                print(f"stopped the PostgreSQL and Kafka a run that ended without stopping them left in {base}",
                      file=sys.stderr)  # fmt: skip
            else:
                print(f"a run that ended left PostgreSQL or Kafka running in {base} and they would not stop; stop them "
                      "by hand (see the folder's logs) and remove the folder", file=sys.stderr)  # fmt: skip
        finally:
            os.close(lock)
    return reaped


def _stop_servers(base: Path) -> bool:
    """True once no broker of the folder runs and its PostgreSQL is down."""
    for pid in broker_pids(base / "kafka"):
        stop_pid(pid, timeout=20)
    postgres = LocalPostgres(base / "pg" / "data", 0, durable=False)
    if postgres.data_dir.is_dir():
        postgres.stop("immediate")
    return not broker_pids(base / "kafka") and postgres.server() in ("none", "stale")

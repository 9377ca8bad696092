"""A PostgreSQL and a Kafka broker on free ports in a temporary folder, gone afterwards: for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berdaya.stack.kafka import BrokerCredentials, LocalKafka, broker_pids
from berdaya.stack.postgres import LocalPostgres
from berdaya.stack.process import PidFile, free_ports, stop_pid
from shared.messaging.kafka import KafkaAccess

_TEMP = Path("/tmp")
_OWNER = "owner.pid"


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
    PidFile(base / _OWNER).write(os.getpid())
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


def reap_abandoned(parent: Path = _TEMP) -> list[Path]:
    """Stop the servers of every throwaway stack whose owner is gone, and remove its folder; returns those folders.

    A run killed with SIGKILL, or crashed in native code (librdkafka's SIGSEGV), never reaches its `finally`: its
    PostgreSQL and Kafka broker ran on for good, a JVM and a postmaster each, and a machine that ran the tests often
    slowed down under them. A stack whose owner still runs, or which another version of this code made (no owner
    written), is left alone."""
    reaped = []
    for base in sorted(parent.glob("berdaya-*")):
        owner = PidFile(base / _OWNER)
        if not owner.path.is_file() or owner.pid() is not None:
            continue
        for pid in broker_pids(base / "kafka"):
            stop_pid(pid, timeout=20)
        data_dir = base / "pg" / "data"
        if data_dir.is_dir():
            LocalPostgres(data_dir, 0, durable=False).stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
        print(f"stopped the PostgreSQL and Kafka a run that ended without stopping them left in {base}", file=sys.stderr)
    return reaped

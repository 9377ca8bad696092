"""A PostgreSQL and a Kafka broker on free ports in a temporary folder, gone afterwards: for tests and benchmarks."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berdaya.stack.kafka import BrokerCredentials, LocalKafka
from berdaya.stack.postgres import LocalPostgres
from berdaya.stack.process import free_ports
from shared.messaging.kafka import KafkaAccess


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
    # Under /tmp so that PostgreSQL's own user can enter it when we run as root.
    base = Path(tempfile.mkdtemp(prefix="berdaya-", dir="/tmp"))
    base.chmod(0o755)
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

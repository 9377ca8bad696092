"""The benchmarks' own PostgreSQL and Kafka, on free ports in a temporary folder, torn down afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berdaya.stack.kafka import LocalKafka
from berdaya.stack.postgres import LocalPostgres
from berdaya.stack.process import free_port


@dataclass(frozen=True)
class BenchInfra:
    postgres_url: str
    bootstrap_servers: str
    base: Path


@contextlib.contextmanager
def bench_infra() -> Iterator[BenchInfra]:
    if os.environ.get("BERDAYA_BENCH_POSTGRES_URL") and os.environ.get("BERDAYA_BENCH_KAFKA"):
        base = Path(tempfile.mkdtemp(prefix="berdaya-bench-"))
        yield BenchInfra(os.environ["BERDAYA_BENCH_POSTGRES_URL"], os.environ["BERDAYA_BENCH_KAFKA"], base)
        shutil.rmtree(base, ignore_errors=True)
        return
    base = Path(tempfile.mkdtemp(prefix="berdaya-bench-", dir="/tmp"))
    base.chmod(0o755)
    # Durable settings (fsync on): the figures should be what a real deployment sees.
    postgres = LocalPostgres(base / "pg" / "data", free_port(), durable=True)
    kafka = LocalKafka(base / "kafka", port=free_port(), controller_port=free_port())
    try:
        postgres.start()
        kafka.start()
        yield BenchInfra(postgres.url(), kafka.bootstrap_servers, base)
    finally:
        kafka.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)

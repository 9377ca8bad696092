"""The benchmarks' PostgreSQL and Kafka: their own throwaway ones, or existing ones named in the environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from berdaya.stack.throwaway import Throwaway, throwaway_stack
from shared.messaging.kafka import KafkaAccess


@contextlib.contextmanager
def bench_infra() -> Iterator[Throwaway]:
    if os.environ.get("BERDAYA_BENCH_POSTGRES_URL") and os.environ.get("BERDAYA_BENCH_KAFKA"):
        base = Path(tempfile.mkdtemp(prefix="berdaya-bench-"))
        try:
            # An existing broker is taken as one without authentication: a benchmark creates its services' topics
            # and users as the cluster's admin, and a secured cluster's admin account is not the benchmark's to hold.
            kafka = KafkaAccess.of(os.environ["BERDAYA_BENCH_KAFKA"])
            yield Throwaway(os.environ["BERDAYA_BENCH_POSTGRES_URL"], kafka, base, credentials=None)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    # Durable settings (fsync on): the figures should be what a real deployment sees. Commit times kept, for the
    # latency benchmark's end: a row is recorded once its transaction commits.
    with throwaway_stack(durable=True, commit_timestamps=True) as stack:
        yield stack

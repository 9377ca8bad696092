"""Import speed: the officer's path (berdaya import -> registry HTTP -> validation -> business + outbox rows) against a
raw PostgreSQL COPY of the same rows into a table of the same columns, in the same run on the same server."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench import table
from bench.cpu import CpuMeter, kafka_pids, postgres_pids
from berdaya.dataset import COLUMNS, write_csv
from berdaya.importer import import_file, read_rows
from berdaya.stack.local import run_service, throwaway_env
from berdaya.stack.postgres import ensure_database
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.auth import TokenService

SECRET = "benchmark-secret-benchmark-secret-benchmark"


async def raw_copy(postgres_url: str, path: Path) -> float:
    """Seconds to COPY the file's rows, as text, into an unindexed table: the floor for getting rows into PostgreSQL."""
    url = await ensure_database(postgres_url, "bench_copy")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS raw_rows")
        await conn.execute(f"CREATE TABLE raw_rows ({', '.join(f'{c} text' for c in COLUMNS)})")
        _, records = read_rows(path)
        rows = [tuple(values) for _, values in records]
        started = time.perf_counter()
        await conn.copy_records_to_table("raw_rows", records=rows, columns=list(COLUMNS))
        return time.perf_counter() - started
    finally:
        await conn.close()


def bench_import(infra: Throwaway, rows: int) -> dict[str, object]:
    path = infra.base / f"kupang_{rows}.csv"
    started = time.perf_counter()
    write_csv(path, rows, seed=rows)
    print(f"  generated {rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)

    copy_seconds = asyncio.run(raw_copy(infra.postgres_url, path))

    # A name of its own each run: on a server the benchmark does not own (BERDAYA_BENCH_POSTGRES_URL) a database left
    # by an earlier run would turn the import into a re-import and report that as the import's figure.
    run = uuid.uuid4().hex[:6]
    database_url = asyncio.run(ensure_database(infra.postgres_url, f"bench_registry_{rows}_{run}"))
    env = throwaway_env(infra.kafka, f"bench-{rows}-{run}", SECRET)
    registry = run_service("registry", env, database_url, infra.base / f"registry_{rows}.log")
    port = registry.url.rsplit(":", 1)[1]
    try:
        token = TokenService(SECRET).mint("bench", ["officer"])
        done = [0]

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 100_000 < n:
                print(f"  imported {done[0]:,} rows", flush=True)

        meter = CpuMeter({"registry": [registry.pid], "PostgreSQL": lambda: postgres_pids(infra),
                          "Kafka": kafka_pids(infra), "berdaya import": [os.getpid()]})  # fmt: skip
        meter.start()
        started = time.perf_counter()
        summary = import_file(path, base_url=f"http://127.0.0.1:{port}", token=token, chunk_size=2000, progress=progress)
        import_seconds = time.perf_counter() - started
        meter.stop()
        print(f"  {meter.summary(import_seconds)}", flush=True)
        again_started = time.perf_counter()
        again = import_file(path, base_url=f"http://127.0.0.1:{port}", token=token, chunk_size=2000)
        reimport_seconds = time.perf_counter() - again_started
    finally:
        stop_pid(registry.pid)
    assert summary.registered + summary.rejected_rows == rows, summary
    assert again.registered == 0 and again.unchanged == summary.registered, "a re-import changed something"
    return {
        "rows": rows,
        "registered": summary.registered,
        "import_s": import_seconds,
        "reimport_s": reimport_seconds,
        "copy_s": copy_seconds,
        "cpu": meter.summary(import_seconds),
    }


# The targets: 17,000 rows (Kupang) in under 2 s, 1,000,000 in under 60 s.
TARGET_SECONDS = {17_000: 2.0, 1_000_000: 60.0}


def report(results: list[dict[str, Any]]) -> None:
    print()
    table.header()
    for r in results:
        rows, target = r["rows"], TARGET_SECONDS.get(int(r["rows"]))
        table.row(f"import of {rows:,.0f} rows", f"{r['import_s']:.2f} s", f"COPY {r['copy_s']:.3f} s",
                  f"{r['copy_s'] / r['import_s']:.1%}", f"< {target:.0f} s" if target else "",
                  r["import_s"] < target if target else None)  # fmt: skip
        table.row("  = rows/s", f"{rows / r['import_s']:,.0f}", f"{rows / r['copy_s']:,.0f}", "", "", None)
        table.row(f"re-import of the same {rows:,.0f} rows", f"{r['reimport_s']:.2f} s", "", "", "", None)
        print(f"    {r['cpu']}")
    print("import: berdaya import over HTTP, validated, duplicate-checked, NIK encrypted, business + outbox + audit rows")
    print("COPY: the same rows as text into an unindexed table, no validation (the floor)")

"""A throwaway stack whose run died without stopping it (SIGKILL, a crash in native code) is stopped and removed when
the next run starts, and a stack whose run is alive is never touched."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from berdaya.stack.kafka import broker_pids
from berdaya.stack.process import alive
from berdaya.stack.throwaway import reap_abandoned

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# A run that starts its stack, says where, and waits: the test kills it as SIGKILL or a segfault would end it.
RUN = """
import time
from berdaya.stack.throwaway import throwaway_stack
with throwaway_stack(durable=False, secured=False) as stack:
    print(stack.base, flush=True)
    time.sleep(600)
"""


def started_run() -> tuple[subprocess.Popen, Path]:
    run = subprocess.Popen([sys.executable, "-c", RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    ready, _, _ = select.select([run.stdout], [], [], 180)
    if not ready:
        run.kill()
        pytest.fail("the run's stack did not start within 180 s")
    return run, Path(run.stdout.readline().strip())


async def test_the_servers_a_killed_run_left_running_are_stopped_and_its_folder_removed_and_a_live_run_keeps_its_own(
    infra,  # noqa: ANN001
) -> None:  # fmt: skip
    run, base = started_run()
    postmaster = int((base / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    brokers = broker_pids(base / "kafka")
    run.kill()
    run.wait()
    assert brokers and alive(postmaster) and all(alive(pid) for pid in brokers)  # what the killed run left behind

    reaped = reap_abandoned()

    assert base in reaped and not base.exists()
    assert not alive(postmaster) and not any(alive(pid) for pid in brokers)
    conn = await asyncpg.connect(infra.postgres_url)  # this session's own stack, whose run is alive, still answers
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    assert infra.base_dir not in reaped


async def test_a_live_run_s_stack_is_never_taken_for_an_abandoned_one() -> None:
    run, base = started_run()
    try:
        brokers = broker_pids(base / "kafka")

        assert base not in reap_abandoned()

        assert base.exists() and brokers and all(alive(pid) for pid in brokers)
    finally:
        run.send_signal(signal.SIGINT)  # as Ctrl-C: the run's own `finally` stops its stack
        run.wait(timeout=120)
    assert not base.exists()

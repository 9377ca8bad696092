"""What a service's log holds after its Kafka broker was down: a line per kind of client error, then the count of
those held back, not one line per reconnect attempt of every client."""

from __future__ import annotations

import asyncio
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from berdaya.stack.kafka import broker_pids
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import throwaway_stack
from shared.messaging.kafka import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# A consumer and a producer, as every service has, logging through the services' own logging set-up (a window of
# 5 s instead of 30, so the held-back count shows within the test).
CLIENTS = """
import asyncio, logging, sys
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from shared import observability
from shared.observability import RepeatFilter, configure_logging

configure_logging("probe")
handler = logging.getLogger().handlers[0]
handler.filters[:] = [f for f in handler.filters if not isinstance(f, RepeatFilter)]
if sys.argv[2] == "held back":
    handler.addFilter(RepeatFilter(window=5))

async def main():
    consumer = AIOKafkaConsumer("outage-probe", bootstrap_servers=sys.argv[1], group_id="outage-probe",
                                retry_backoff_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1])
    await consumer.start()
    await producer.start()
    print("started", flush=True)
    while True:
        await consumer.getmany(timeout_ms=200)

asyncio.run(main())
"""


def error_lines_over_an_outage(held: str, log: Path) -> tuple[list[str], float]:
    """The clients' ERROR lines from aiokafka, and the seconds from the broker's stop to the clients' end. The log
    goes to a file: a pipe read only at the end would stall the clients once 64 KiB of it filled."""
    with throwaway_stack(durable=False, secured=False) as stack, log.open("w") as err:
        asyncio.run(ensure_topics(stack.kafka, [TopicSpec("outage-probe", 1, 1)]))
        clients = subprocess.Popen([sys.executable, "-c", CLIENTS, stack.bootstrap_servers, held], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
        try:
            assert clients.stdout is not None and select.select([clients.stdout], [], [], 60)[0], "clients not up"
            assert clients.stdout.readline().strip() == "started", log.read_text()
            time.sleep(3)  # the consumer joins its group
            down = time.monotonic()
            for pid in broker_pids(stack.base / "kafka"):
                stop_pid(pid, timeout=30)
            time.sleep(12)
        finally:
            clients.send_signal(signal.SIGKILL)
            clients.wait(timeout=30)
            outage = time.monotonic() - down
    return [line for line in log.read_text().splitlines() if " ERROR aiokafka" in line], outage


def test_twelve_seconds_without_a_broker_leave_a_line_per_kind_of_error_and_then_how_many_were_held_back(
    tmp_path: Path,
) -> None:  # fmt: skip
    every, _ = error_lines_over_an_outage("every line", tmp_path / "every.log")
    held, outage = error_lines_over_an_outage("held back", tmp_path / "held.log")

    kinds = {re.sub(r"\d+", "N", line.split(" ERROR ", 1)[1])[:60] for line in held}
    assert len(every) > 10 * len(kinds), f"the outage made only {len(every)} lines without the filter"
    # Per kind, a first line and at most one a window (5 s) with the count of those held back.
    assert len(held) <= len(kinds) * (2 + outage // 5), (len(held), len(kinds), outage)
    counted = [int(n) for n in re.findall(r"\(and (\d+) more like it in the \d+ s before\)", "\n".join(held))]
    assert counted and sum(counted) + len(held) >= len(every) // 2, (len(every), len(held), counted, outage)

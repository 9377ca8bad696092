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
# 5 s instead of 30, so the held-back count shows within the test). The same records also go, unfiltered, to a
# second file: aiokafka's reconnect loop has spun 150 times faster in one run than in another, so the filtered log
# is measured against its own run. On SIGTERM the clients say how many lines are still held back in windows that
# have not closed; the loop's signal handler runs between callbacks, never in the middle of a log call.
CLIENTS = """
import asyncio, logging, os, signal, sys
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from shared.observability import RepeatFilter, configure_logging

class Held(RepeatFilter):
    def still_held(self):
        return sum(held for (name, level, _, _), (_, held) in self._seen.items() if level == logging.ERROR)

configure_logging("probe")
handler = logging.getLogger().handlers[0]
handler.filters[:] = [f for f in handler.filters if not isinstance(f, RepeatFilter)]
held = Held(window=5)
handler.addFilter(held)
every = logging.StreamHandler(open(sys.argv[2], "w"))
every.setFormatter(handler.formatter)
logging.getLogger().addHandler(every)

def report():
    print(held.still_held(), flush=True)
    every.flush()
    os._exit(0)

async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, report)
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


def aiokafka_errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " ERROR aiokafka" in line]


def an_outage(tmp: Path) -> tuple[list[str], list[str], int, float]:
    """The clients' ERROR lines from aiokafka with the repeat filter and without it, in one run; how many the filter
    still held back at the end; and the seconds from the broker's stop to the clients' end. The logs go to files: a
    pipe read only at the end would stall the clients once 64 KiB of it filled."""
    held_log, every_log = tmp / "held.log", tmp / "every.log"
    with throwaway_stack(durable=False, secured=False) as stack, held_log.open("w") as err:
        asyncio.run(ensure_topics(stack.kafka, [TopicSpec("outage-probe", 1, 1)]))
        clients = subprocess.Popen([sys.executable, "-c", CLIENTS, stack.bootstrap_servers, str(every_log)], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
        try:
            assert clients.stdout is not None and select.select([clients.stdout], [], [], 60)[0], "clients not up"
            assert clients.stdout.readline().strip() == "started", held_log.read_text()
            time.sleep(3)  # the consumer joins its group
            down = time.monotonic()
            for pid in broker_pids(stack.base / "kafka"):
                stop_pid(pid, timeout=30)
            time.sleep(12)
            clients.send_signal(signal.SIGTERM)
            still_held, _ = clients.communicate(timeout=30)
            outage = time.monotonic() - down
        finally:
            if clients.poll() is None:
                clients.kill()
                clients.wait(timeout=30)
    return aiokafka_errors(held_log), aiokafka_errors(every_log), int(still_held), outage


def test_twelve_seconds_without_a_broker_leave_a_line_per_kind_of_error_and_then_how_many_were_held_back(
    tmp_path: Path,
) -> None:  # fmt: skip
    held, every, still_held, outage = an_outage(tmp_path)

    kinds = {re.sub(r"\d+", "N", line.split(" ERROR ", 1)[1])[:60] for line in held}
    assert len(every) > 10 * len(kinds), f"the outage made only {len(every)} lines without the filter"
    # Per kind, a first line and at most one a window (5 s) with the count of those held back.
    assert len(held) <= len(kinds) * (2 + outage // 5), (len(held), len(kinds), outage)
    counted = [int(n) for n in re.findall(r"\(and (\d+) more like it in the \d+ s before\)", "\n".join(held))]
    assert counted, held
    # Every line is either in the filtered log, counted in a later line of it, or in a window still open at the end.
    assert len(held) + sum(counted) + still_held == len(every), (len(every), len(held), counted, still_held, outage)

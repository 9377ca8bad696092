"""python -m chaos [--events N] [--kills K] [--seconds S] [--seed X]

Starts its own PostgreSQL and Kafka, runs the registry and two replicas each of funding and the notifier as real
processes, drives a realistic load through their HTTP APIs while killing, freezing and cutting them off and
restarting PostgreSQL and Kafka, lets the system settle, checks every invariant and prints the figures. Exits 1 if
any loss or duplication figure is not 0. Not part of the test run (tests/e2e/test_chaos_short.py runs a short one).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

from berdaya.stack.postgres import ensure_database
from berdaya.stack.throwaway import throwaway_stack
from chaos.report import render
from chaos.run import Config, run_chaos
from chaos.system import SERVICES, LocalInfra, Target


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--events", type=int, default=10_000, help="events the load produces, at least (10,000)")
    parser.add_argument("--kills", type=int, default=50, help="kill -9 of service processes (50)")
    parser.add_argument("--seconds", type=float, default=300, help="how long the load runs, at least (300)")
    parser.add_argument("--seed", type=int, default=None, help="the same seed gives the same load and fault plan")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    config = Config(events=args.events, kills=args.kills, seconds=args.seconds, seed=seed)
    # The logs outlive the throwaway stack: they are the evidence for whatever the run finds.
    workdir = Path(tempfile.mkdtemp(prefix=f"berdaya-chaos-{seed}-"))
    print(f"chaos run, seed {seed}: starting a PostgreSQL and a Kafka broker of its own", flush=True)
    with throwaway_stack(durable=True) as stack:
        infra = LocalInfra(stack)
        try:
            databases = {s: asyncio.run(ensure_database(stack.postgres_url, f"chaos_{s}")) for s in SERVICES}
            target = Target(stack.postgres_url, stack.kafka, f"chaos-{seed}", databases, workdir)
            result = asyncio.run(run_chaos(target, config, infra, say=lambda m: print(m, flush=True)))
        finally:
            infra.close()
    print(render(result), flush=True)
    sys.exit(1 if result.failures else 0)


if __name__ == "__main__":
    main()

"""One chaos run, start to end: start the system, run the load and the faults together, let it settle, check."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.checker import SERVICES, Line, Settled, check, gather_facts, settle_lines, wait_until_settled, zero_line
from chaos.faults import KILLS, Fault, Injected, Injector, plan
from chaos.load import Load, LoadStats, Mix, ServerError
from chaos.system import LocalInfra, Start, System, Target


@dataclass(frozen=True)
class Config:
    events: int = 10_000  # events the load's acknowledged requests produce, at least
    kills: int = 50  # kill -9 of service processes
    seconds: float = 300  # the load runs this long at least
    seed: int = 1
    freezes: tuple[str, ...] = ("funding", "notifier-1")  # "funding": whichever replica holds the relay lease
    cuts: int | None = None  # pg_terminate_backend cuts (default: one per ten kills, at least two)
    infrastructure: bool = True  # restart PostgreSQL and Kafka too (only a run that owns them)
    freeze_seconds: float = 15.0  # aiokafka's session timeout is 10 s
    settle_timeout: float = 600.0
    import_chunk: tuple[int, int] = (300, 2000)  # rows per import request; a heavy import is the larger

    def mix(self) -> Mix:
        return Mix(import_chunk=self.import_chunk)

    @classmethod
    def short(cls, seed: int = 1) -> Config:
        """The version the test suite runs on the session's PostgreSQL and Kafka, which it must not restart."""
        return cls(events=1_000, kills=3, seconds=30, seed=seed, freezes=("funding",), cuts=1, infrastructure=False,
                   settle_timeout=300, import_chunk=(150, 600))  # fmt: skip

    def faults(self) -> list[Fault]:
        return plan(kills=self.kills, seconds=self.seconds, seed=self.seed, freezes=self.freezes, cuts=self.cuts,
                    infrastructure=self.infrastructure)  # fmt: skip


@dataclass
class Result:
    config: Config
    target: Target
    planned: list[Fault]
    injected: list[Injected]
    load: LoadStats
    settled: Settled
    lines: list[Line]
    restarts: list[Start]
    log_lines: dict[str, Counter] = field(default_factory=dict)  # replica -> ERROR / Traceback lines in its log

    @property
    def failures(self) -> list[Line]:
        return [line for line in self.lines if line.failed]


async def run_chaos(target: Target, config: Config, infra: LocalInfra | None = None,
                    say: Callable[[str], None] = print) -> Result:  # fmt: skip
    system = System(target)
    say(f"starting {', '.join(system.replicas)} (logs in {target.workdir / 'logs'})")
    try:
        await system.start_all()
        initial = len(system.starts)
        load = Load(system, events=config.events, seconds=config.seconds, seed=config.seed, mix=config.mix())
        faults = config.faults()
        say(f"load: at least {config.events:,} events over at least {config.seconds:g}s; {len(faults)} faults")
        injector = Injector(system, load, infra if config.infrastructure else None, freeze_seconds=config.freeze_seconds)
        load.begin()
        load.held = True
        running = asyncio.create_task(load.run())
        try:
            injected = await injector.run(faults)
        except BaseException:
            running.cancel()
            raise
        finally:
            load.held = False
        say(f"faults done at {load.elapsed():.0f}s; waiting for the load to finish")
        stats = await running
        say(f"load done after {stats.seconds:.0f}s ({stats.events_produced:,} events acknowledged); settling")
        settled = await wait_until_settled(system, config.settle_timeout)
        say(f"settled in {settled.seconds:.1f}s" if settled.settled else "NOT settled; checking anyway")
        facts = await gather_facts(system)
        restarts = system.starts[initial:]
        lines = [*settle_lines(settled), *check(facts, load.acked, system.nik_digest_key),
                 *_service_lines(config, injected, restarts, stats, _names_by_url(system))]
    finally:
        await system.stop_all()
    return Result(config, target, faults, injected, stats, settled, lines, restarts, _log_lines(system))


def _service_lines(config: Config, injected: list[Injected], restarts: list[Start], stats: LoadStats,
                   replicas: dict[str, str]) -> list[Line]:
    """Whether the run did what it set out to do, and how the services took it."""
    kills_made = sum(1 for i in injected if i.fault.kind in KILLS and i.ok)
    return [
        zero_line(SERVICES, "restarts that did not come back", [f"{s.replica}: {s.error}" for s in restarts if not s.ok]),
        zero_line(SERVICES, "faults that could not be injected as planned",
                  [f"{i.fault.kind} {i.fault.target or ''}: {i.detail}" for i in injected if not i.ok]),
        Line(SERVICES, "kill -9 faults planned, not made", config.kills - kills_made, True,
             [f"{i.fault.kind}: {i.detail}" for i in injected if i.fault.kind in KILLS and not i.ok]),
        zero_line(SERVICES, "requests given up after retrying (the service never answered)",
                  [f"{action}: {n}" for action, c in stats.requests.items() if (n := c["gave up"])]),
        zero_line(SERVICES, "load generator errors (a step of the load itself failed)",
                  [f"{n} x {e}" for e, n in stats.load_errors.items()]),
        # Kills and freezes leave requests unanswered and a database outage answers 503: any other 5xx is a case a
        # service did not expect, a bug even when the retry then succeeded, so it fails the run like a loss does.
        zero_line(SERVICES, "HTTP answers 5xx other than 503 (a database outage should answer 503)",
                  [_server_error(e, replicas) for e in stats.server_errors],
                  note="retried, so not a loss (see the load table); the replica's log has the traceback"),
    ]  # fmt: skip


def _names_by_url(system: System) -> dict[str, str]:
    return {replica.url: replica.name for replica in system.replicas.values()}


def _server_error(error: ServerError, replicas: dict[str, str]) -> str:
    replica = replicas.get(error.url, error.url)
    return f"{error.action} -> {error.status} from {replica} at {error.at:.0f}s: {error.body[:160]}"


def _log_lines(system: System) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for replica in system.replicas.values():
        found: Counter = Counter()
        try:
            for line in replica.log_file.read_text(errors="replace").splitlines():
                if line.startswith("Traceback"):
                    found["Traceback"] += 1
                elif match := re.search(r" (ERROR|WARNING|CRITICAL) ", line):
                    found[match[1]] += 1
        except OSError:
            pass
        counts[replica.name] = found
    return counts

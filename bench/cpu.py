"""CPU seconds used by the processes of a run (a service, PostgreSQL with its backends, the Kafka broker), from /proc:
where a benchmark's time went on a machine with few cores, and so what its ceiling is."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from berdaya.stack.kafka import broker_pids
from berdaya.stack.throwaway import Throwaway

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after its closing one are fixed.
    return text[text.rindex(")") + 2 :].split()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, its reaped children included (0 once it is gone)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 of stat; after the name they are 11-14 (0-based).
    return sum(int(f) for f in fields[11:15]) / _TICKS


def postgres_pids(stack: Throwaway) -> list[int]:
    """The postmaster of the stack's PostgreSQL and its backends and workers at this moment."""
    pid_file = stack.base / "pg" / "data" / "postmaster.pid"
    if not pid_file.exists():
        return []
    postmaster = int(pid_file.read_text().split()[0])
    return [postmaster, *_children(postmaster)]


def kafka_pids(stack: Throwaway) -> list[int]:
    return broker_pids(stack.base / "kafka")


class CpuMeter:
    """CPU seconds per named group of processes between start() and stop(). PostgreSQL's backends come and go, so
    its group is looked up again at each reading; a backend that exits in between is counted in the postmaster's
    reaped-children time."""

    def __init__(self, groups: Mapping[str, object]) -> None:
        # A group is a fixed list of pids or a function returning the pids of the moment.
        self._groups = groups
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _pids(self, name: str) -> Iterable[int]:
        group = self._groups[name]
        return group() if callable(group) else group  # type: ignore[return-value]

    def _read(self) -> dict[str, float]:
        return {name: sum(process_seconds(pid) for pid in self._pids(name)) for name in self._groups}

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        now = self._read()
        self.seconds = {name: now[name] - self._start.get(name, 0.0) for name in now}
        return self.seconds

    def summary(self, wall_seconds: float) -> str:
        cores = os.cpu_count() or 1
        used = sum(self.seconds.values())
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.seconds.items())
        return f"CPU seconds: {parts}; {used:.1f} in all over {wall_seconds:.1f} s on {cores} cores ({used / wall_seconds:.1f} busy)"

"""Small helpers for starting, finding and stopping background server processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all held open while choosing, so the kernel can't hand one out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    hint = f"; see {log_file}" if log_file else ""
    tail = ""
    if log_file and log_file.exists():
        tail = "\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s{hint}{tail}")


def spawn(argv: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start a process in its own session, so it outlives the command that started it and can be stopped as a group."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def started_at(pid: int) -> str | None:
    """When process `pid` began, as the system tells it; None when there is no such process or it can't be seen.
    With its PID it names one process: a PID alone is handed to another once its process is gone."""
    if Path("/proc/self/stat").exists():
        return _started_from_proc(pid)
    return _started_from_ps(pid)


def _started_from_proc(pid: int) -> str | None:
    try:
        # Field 22, counted after the command's name, which is in parentheses and may itself hold spaces or ')'.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _started_from_ps(pid: int) -> str | None:
    # Where there is no /proc (macOS, BSD): the start time to the second, which with the PID is as good.
    try:
        result = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return " ".join(result.stdout.split()) or None


def ours(pid: int, started: str | None) -> bool:
    """True if `pid` is still the process that began at `started`: anything else holding that PID (a login shell, a
    daemon, after a reboot) is a stranger, and so is a process we may not signal."""
    if not started or started_at(pid) != started:
        return False
    try:
        os.kill(pid, 0)
    except OSError:  # gone, or PermissionError: someone else's
        return False
    return alive(pid)  # which also takes a zombie for gone


@dataclass(frozen=True)
class PidFile:
    """Where a background process we started is written down: its PID and when it began, so that a PID reused by
    another process after ours ended is never taken for ours, nor signalled."""

    path: Path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n{started_at(pid) or ''}\n")

    def pid(self) -> int | None:
        """The PID, if that process is still the one written down; a stale or unreadable file is removed."""
        found = self._read()
        if found and ours(*found):
            return found[0]
        self.path.unlink(missing_ok=True)
        return None

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the process if it is still ours, and forget it; True if it was running."""
        found = self._read()
        running = bool(found and ours(*found))
        if found and running:
            stop_pid(found[0], timeout, started=found[1])
        self.path.unlink(missing_ok=True)
        return running

    def _read(self) -> tuple[int, str] | None:
        try:
            pid, started = self.path.read_text().split("\n", 1)
            return int(pid), started.strip()
        except (OSError, ValueError):  # missing, unreadable, or written by an older Berdaya without a start time
            return None


def stop_pid(pid: int, timeout: float = 20.0, *, started: str | None = None) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout`. Given when the process `started`, each
    signal is sent only while `pid` is still that process: in the seconds of waiting, it may end and its PID be
    reused."""
    still_there = alive if started is None else (lambda p: ours(p, started))
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if started is not None and not ours(pid, started):
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            if started is not None:
                return  # not ours to signal
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not still_there(pid):
                return
            time.sleep(0.1)

"""A local PostgreSQL server from Debian's packages, run from a data directory of our own."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import asyncpg

from berdaya.stack.process import port_open, wait_until


class PostgresUnavailable(RuntimeError):
    pass


def bin_dir() -> Path:
    """The newest installed server's bin directory; installs Debian's postgresql when none is there (as root)."""
    found = _find_bin_dir()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
        found = _find_bin_dir()
        if found:
            return found
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: sudo apt-get install postgresql) "
        "or point Berdaya at a server with BERDAYA_POSTGRES_URL=postgresql://user:pass@host:port"
    )


def _find_bin_dir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root; as root we run it as the `postgres` user the package creates."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def server_user() -> str:
    return "postgres" if os.geteuid() == 0 else getpass.getuser()


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    # Tests trade durability for speed; the demo stack keeps PostgreSQL's defaults.
    durable: bool = True
    # Each transaction's commit time (pg_xact_commit_timestamp): the benchmarks time a row from its commit.
    commit_timestamps: bool = False

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{server_user()}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        subprocess.run([*_as_server_user(), *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        # First: on a fresh machine, installing the server is what makes the `postgres` user the directory is for.
        bindir = bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
            shutil.chown(self.data_dir.parent, "postgres", "postgres")
        try:
            self._run(str(bindir / "initdb"), "-D", str(self.data_dir), "-U", server_user(), "--auth=trust",
                      "--encoding=UTF8", "--no-locale")  # fmt: skip
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
            raise PostgresUnavailable(f"initdb could not make PostgreSQL's data directory {self.data_dir}: "
                                      f"{' '.join(said) or f'exit status {exc.returncode}'}; mend that (a full disk, "
                                      "a directory not empty or not writable) and run the command again") from exc  # fmt: skip
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.data_dir}'",
            "max_connections = 300",
            "shared_buffers = 256MB",
            "timezone = 'UTC'",
        ]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        if self.commit_timestamps:
            settings.append("track_commit_timestamp = on")
        with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")

    def start(self, timeout: float = 60) -> None:
        if port_open(self.port):
            if self.server() in ("ours", "unknown"):
                return
            # docker compose's database publishes this port too: taken for ours, it answered without a password.
            raise PostgresUnavailable(f"another program listens on 127.0.0.1:{self.port}, not the PostgreSQL of "
                                      f"{self.data_dir}; stop it (`docker compose down`, if it is the compose stack's) "
                                      "or choose another port (BERDAYA_PG_PORT), and run the command again")  # fmt: skip
        self.init()
        if self.server() == "stale":
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)  # else refused while another process has the PID
        try:
            self._run(str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t",
                      str(int(timeout)), "start")  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(self._why_not_started()) from exc
        wait_until(lambda: port_open(self.port), timeout, f"PostgreSQL on port {self.port}", self.log_file)

    def _why_not_started(self) -> str:
        """What the server's log says went wrong, in a line an operator can act on."""
        tail = self.log_file.read_text(errors="replace").splitlines()[-20:] if self.log_file.exists() else []
        if any("Address already in use" in line for line in tail):
            # The port may be held without anyone listening on it: inside Linux's ephemeral range, an outgoing
            # connection can take it for a moment.
            return (f"PostgreSQL could not listen on 127.0.0.1:{self.port}: another program holds that port. Stop it "
                    "or wait a moment, or choose another port (BERDAYA_PG_PORT for `berdaya up`), and run the command "
                    f"again; the server's log is {self.log_file}")  # fmt: skip
        fatal = next((line.split("FATAL:", 1)[1].strip() for line in reversed(tail) if "FATAL:" in line), None)
        return f"PostgreSQL did not start on port {self.port}: {fatal or 'no reason in its log'}; see {self.log_file}"

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """pg_ctl stop: "fast" rolls back open transactions and disconnects clients; "immediate" aborts every server
        process at once, as a crash would, and the next start recovers from the WAL."""
        server = self.server()
        if server == "stale":
            # Left by a server that was killed or a machine that rebooted; pg_ctl would signal whatever process has
            # that PID now (as root, as `postgres`: the package's own cluster, say). PostgreSQL would refuse to start
            # over it too while that PID lives.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        elif server in ("ours", "unknown"):
            subprocess.run([*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                            "-w", "stop"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


    def server(self) -> Literal["none", "ours", "stale", "unknown"]:
        """Whether postmaster.pid names a server of this data directory: a postmaster works in its data directory,
        so its PID's working directory says. "unknown" when that can't be read (no /proc, another user's process)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except FileNotFoundError:
            return "none"
        except ValueError:
            return "stale"  # half written: the server died as it began
        try:
            cwd = Path(f"/proc/{pid}/cwd").resolve(strict=True)
        except FileNotFoundError:
            return "stale" if Path("/proc/self").exists() else "unknown"
        except (PermissionError, OSError):
            return "unknown"
        return "ours" if cwd == self.data_dir.resolve() else "stale"


async def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server if missing; returns its URL."""
    conn = await asyncpg.connect(server_url, database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(server_url, name)


def database_url(server_url: str, name: str) -> str:
    """The server's URL naming database `name`; the rest (user, password, host, and its options such as
    ?sslmode=verify-full&sslrootcert=...) is kept as it was."""
    parts = urlsplit(server_url)
    query = f"?{parts.query}" if parts.query else ""
    # Put together by hand: urlunsplit drops the // of a URL without a host (postgresql:///db?host=/run/postgresql).
    return f"{parts.scheme}://{parts.netloc}/{quote(name)}{query}"


def masked_url(url: str) -> str:
    """The URL as it may be shown on a screen or in a log: a password, in it or among its options, shown as ***."""
    parts = urlsplit(url)
    if not parts.scheme:
        return "***"  # not a URL: there is no telling where a password would be in it
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rsplit('@', 1)[1]}"
    options = parse_qsl(parts.query, keep_blank_values=True)
    query = parts.query
    if any(key == "password" for key, _ in options):
        query = urlencode([(k, "***" if k == "password" else v) for k, v in options], safe="*/")
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")

"""The local PostgreSQL the stack and the tests start: a port another program holds ends in one line saying so,
not in pg_ctl's exit status."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from berdaya.stack.postgres import LocalPostgres, PostgresUnavailable, server_user
from berdaya.stack.process import free_ports, port_open

pytestmark = pytest.mark.integration


def test_a_port_another_program_holds_stops_postgresql_with_a_line_that_says_what_to_do():
    base = Path(tempfile.mkdtemp(prefix="berdaya-pg-port-", dir="/tmp"))
    base.chmod(0o755)  # the server runs as postgres when the tests run as root
    try:
        with socket.socket() as holder:  # bound, not listening: as an outgoing connection holds a port
            holder.bind(("127.0.0.1", 0))
            port = holder.getsockname()[1]
            postgres = LocalPostgres(base / "pg" / "data", port, durable=False)
            with pytest.raises(RuntimeError) as refused:
                postgres.start(timeout=30)
        message = str(refused.value)
        assert f"could not listen on 127.0.0.1:{port}: another program holds that port" in message
        assert "BERDAYA_PG_PORT" in message and "\n" not in message
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_program_listening_on_the_port_is_not_taken_for_our_server_and_is_named_with_what_to_do():
    base = Path(tempfile.mkdtemp(prefix="berdaya-pg-foreign-", dir="/tmp"))
    try:
        with socket.socket() as listener:  # another database, docker compose's say, on the port
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            with pytest.raises(PostgresUnavailable) as refused:
                LocalPostgres(base / "pg" / "data", port, durable=False).start(timeout=30)
        assert f"another program listens on 127.0.0.1:{port}" in str(refused.value)
        assert "BERDAYA_PG_PORT" in str(refused.value) and not (base / "pg" / "data").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_stale_pid_file_naming_another_process_of_the_server_user_neither_signals_it_nor_stops_a_start():
    base = Path(tempfile.mkdtemp(prefix="berdaya-pg-stale-", dir="/tmp"))
    base.chmod(0o755)
    [port] = free_ports(1)
    postgres = LocalPostgres(base / "pg" / "data", port, durable=False)
    try:
        postgres.start(timeout=30)
        postgres.stop("immediate")
        assert postgres.server() == "none"
        # After a reboot or a kill -9 the file survives, and its PID may now be any process of PostgreSQL's user.
        with subprocess.Popen(["sleep", "60"], cwd="/tmp", user=server_user()) as victim:
            try:
                (postgres.data_dir / "postmaster.pid").write_text(f"{victim.pid}\n{postgres.data_dir}\n")
                postgres.stop()
                assert victim.poll() is None, "down signalled a process that is not our server"
                (postgres.data_dir / "postmaster.pid").write_text(f"{victim.pid}\n{postgres.data_dir}\n")
                postgres.start(timeout=30)  # PostgreSQL itself would refuse the lock file while that PID lives
                assert port_open(port) and postgres.server() == "ours"
                postgres.stop()
                assert not port_open(port) and victim.poll() is None
            finally:
                victim.kill()
    finally:
        postgres.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)

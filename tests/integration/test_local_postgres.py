"""The local PostgreSQL the stack and the tests start: a port another program holds ends in one line saying so,
not in pg_ctl's exit status."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from berdaya.stack.postgres import LocalPostgres

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

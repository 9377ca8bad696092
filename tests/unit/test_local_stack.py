"""The local stack's small pieces that once broke a run or put an operator at risk: cluster ids, port choice, PID files,
secret files, which secret wins, and the URLs it shows."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from berdaya import cli_partners
from berdaya.partners import PartnerAccess
from berdaya.stack import kafka as kafka_stack
from berdaya.stack import postgres as postgres_stack
from berdaya.stack.kafka import (
    BrokerCredentials,
    KafkaNode,
    KafkaUnavailable,
    LocalKafka,
    ensure_jars,
    new_cluster_id,
)
from berdaya.stack.local import LocalStack, new_secrets, service
from berdaya.stack.postgres import database_url, masked_url
from berdaya.stack.process import PidFile, free_ports
from berdaya.stack.prometheus import LocalMonitoring
from berdaya.stack.secret_files import write_secret
from shared.auth import TokenService


def test_a_new_cluster_id_never_starts_with_a_dash_which_the_storage_tool_would_read_as_an_option() -> None:
    # About one id in seventy would start with '-' if left to chance.
    assert not any(new_cluster_id().startswith("-") for _ in range(5000))


def test_ports_chosen_together_are_all_different() -> None:
    for _ in range(200):
        ports = free_ports(7)
        assert len(set(ports)) == 7


def test_a_cluster_given_its_nodes_ports_uses_exactly_those() -> None:
    kafka = LocalKafka(Path("/tmp/unused"), node_ports=[(41001, 41101), (41002, 41102)])
    assert [(n.port, n.controller_port) for n in kafka.nodes] == [(41001, 41101), (41002, 41102)]
    assert kafka.bootstrap_servers == "127.0.0.1:41001,127.0.0.1:41002" and kafka.size == 2


# ---------------------------------------------------------------------------------------------------------------
# PID files
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """A stack at home in tmp_path, using a Kafka and a PostgreSQL that nobody listens for: nothing is reached."""
    monkeypatch.setenv("BERDAYA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("BERDAYA_POSTGRES_URL", "postgresql://berdaya:Sup3rS3cret@127.0.0.1:1/postgres")
    for name in new_secrets():
        monkeypatch.delenv(name, raising=False)
    return LocalStack()


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen]:
    """A process in a session of its own that the stack never started: what holds a PID reused after a reboot."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _registry_pid_file(stack: LocalStack) -> Path:
    path = stack.base / "run" / "registry.pid"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_pid_file_holding_a_bare_pid_is_stale_and_the_process_now_holding_it_is_left_alone(
        stack: LocalStack, stranger: subprocess.Popen) -> None:  # fmt: skip
    pid_file = _registry_pid_file(stack)
    pid_file.write_text(str(stranger.pid))  # as an older Berdaya wrote it: no telling whose the PID is now
    assert stack._pid("registry") is None
    assert not pid_file.exists()
    pid_file.write_text(str(stranger.pid))
    assert stack.stop_service(service("registry")) is False
    assert stranger.poll() is None


def test_a_pid_file_whose_process_began_at_another_time_is_stale_and_that_process_is_left_alone(
        stack: LocalStack, stranger: subprocess.Popen) -> None:  # fmt: skip
    pid_file = _registry_pid_file(stack)
    pid_file.write_text(f"{stranger.pid}\n1\n")
    # Nothing of ours answers on the registry's port, whatever else on this machine (a demo's stack) may.
    stack.readiness = lambda spec, timeout=2: None  # type: ignore[method-assign]
    assert stack.status()["registry"] == "down"
    assert not pid_file.exists()
    pid_file.write_text(f"{stranger.pid}\n1\n")
    stack.down(say=lambda _: None)
    assert stranger.poll() is None


def test_a_process_written_down_as_it_started_is_found_again_and_stopped(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        pid_file = PidFile(tmp_path / "run" / "registry.pid")
        pid_file.write(process.pid)
        assert pid_file.pid() == process.pid
        assert pid_file.stop(timeout=5) is True
        # Ended well before its minute: by the SIGTERM, or 0 when stop_pid, which reaps what it stops, got there first.
        assert process.wait(timeout=5) in (-signal.SIGTERM, 0)
        assert not pid_file.path.exists()
    finally:
        process.kill()
        process.wait()


def test_a_process_we_may_not_signal_is_not_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 stranger: subprocess.Popen) -> None:  # fmt: skip
    pid_file = PidFile(tmp_path / "registry.pid")
    pid_file.write(stranger.pid)
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:  # as the kernel answers for another user's process
        if pid == stranger.pid:
            raise PermissionError(1, "Operation not permitted")
        real_kill(pid, sig)

    with monkeypatch.context() as patched:
        patched.setattr(os, "kill", kill)
        assert pid_file.pid() is None
    assert not pid_file.path.exists()


def test_where_there_is_no_proc_ps_tells_when_a_process_began() -> None:
    from berdaya.stack.process import _started_from_ps

    began = _started_from_ps(os.getpid())
    assert began and began == _started_from_ps(os.getpid())
    assert _started_from_ps(2**22 + 12345) is None  # above Linux's largest PID: no such process


# ---------------------------------------------------------------------------------------------------------------
# Secret files
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def disk_full_after(size: int) -> Iterator[None]:
    """Writing a file past `size` bytes fails (EFBIG), as writing on a full disk does (ENOSPC)."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # or the process would be killed rather than told
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask: a file made without care is readable by everyone."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secrets_file_whose_rewrite_fails_part_way_keeps_every_key_it_had(stack: LocalStack) -> None:
    path = stack.base / "secrets.json"
    older = {k: make() for k, make in new_secrets().items() if k != "NOTIFIER_ALERTMANAGER_TOKEN"}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(older, indent=2))
    path.chmod(0o600)
    with disk_full_after(100), pytest.raises(OSError):
        stack.secrets()
    assert json.loads(path.read_text()) == older
    assert [p.name for p in stack.base.iterdir()] == ["secrets.json"]  # nothing half-written left beside it


def _partner_properties(home: Path) -> None:
    access = PartnerAccess("bri", "partner-bri", "pw-secret", "127.0.0.1:9092", ["public.x"], ["partner.bri.v1"],
                           "partner-bri.")
    cli_partners._show(access, home / "bri.properties")


SECRET_WRITERS: dict[str, Callable[[Path], object]] = {
    "secrets.json": lambda home: LocalStack().secrets(),
    "kafka-credentials.json": lambda home: LocalStack().broker_credentials(),
    "server.properties": lambda home: KafkaNode(1, home / "kafka-1", 9092, 9192, [(1, 9192)],
                                                credentials=BrokerCredentials.generate()).write_config(),
    "webhook-token": lambda home: LocalMonitoring(home).write_webhook_token("t" * 64),
    "partner properties": _partner_properties,
}


@pytest.fixture
def quiet_partner_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # In memory: the partner's table is printed before its file is written, and must not meet the full disk.
    monkeypatch.setattr(cli_partners, "console", Console(file=io.StringIO()))


@pytest.mark.parametrize("write", SECRET_WRITERS.values(), ids=SECRET_WRITERS.keys())
def test_a_secret_file_whose_first_write_fails_leaves_nothing_behind_that_others_could_read(
        write: Callable[[Path], object], stack: LocalStack, umask_022: None,
        quiet_partner_console: None) -> None:  # fmt: skip
    stack.base.mkdir(parents=True)
    with disk_full_after(20), pytest.raises(OSError):
        write(stack.base)
    assert [p for p in stack.base.rglob("*") if p.is_file() and _mode(p) & 0o077] == []


@pytest.mark.parametrize("write", SECRET_WRITERS.values(), ids=SECRET_WRITERS.keys())
def test_a_secret_file_is_written_whole_and_readable_by_its_owner_alone(
        write: Callable[[Path], object], stack: LocalStack, umask_022: None,
        quiet_partner_console: None) -> None:  # fmt: skip
    stack.base.mkdir(parents=True)
    write(stack.base)
    secret_files = [p for p in stack.base.rglob("*") if p.is_file() and p.name != "log4j2.properties"]
    assert len(secret_files) == 1 and secret_files[0].read_text()
    assert _mode(secret_files[0]) == 0o600


def test_a_secret_file_replaces_an_older_one_others_could_read(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "webhook-token"
    path.write_text("old")
    write_secret(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o600


def test_a_secrets_file_others_could_read_is_made_its_owner_s_alone_when_read(stack: LocalStack) -> None:
    complete = {k: make() for k, make in new_secrets().items()}
    broker = {"admin_password": "a", "controller_password": "c"}
    for name, content in (("secrets.json", complete), ("kafka-credentials.json", broker)):
        path = stack.base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
        path.chmod(0o644)
    assert stack.secrets() == complete
    assert stack.broker_credentials().admin_password == "a"
    assert _mode(stack.base / "secrets.json") == 0o600
    assert _mode(stack.base / "kafka-credentials.json") == 0o600


# ---------------------------------------------------------------------------------------------------------------
# Which secret wins
# ---------------------------------------------------------------------------------------------------------------


def test_a_secret_the_operator_exported_wins_over_the_local_file_for_the_services(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from_file = stack.secrets()
    monkeypatch.setenv("BERDAYA_JWT_SECRET", "operator-chosen-jwt-secret-0123456789abcdef")
    monkeypatch.setenv("REGISTRY_NIK_ENCRYPTION_KEY", "b3BlcmF0b3JzLXByb2R1Y3Rpb24ta2V5LTMyYnl0ZXM=")
    env = stack.service_env(service("registry"))
    assert env["BERDAYA_JWT_SECRET"] == "operator-chosen-jwt-secret-0123456789abcdef"
    assert env["REGISTRY_NIK_ENCRYPTION_KEY"] == "b3BlcmF0b3JzLXByb2R1Y3Rpb24ta2V5LTMyYnl0ZXM="
    assert env["REGISTRY_NIK_DIGEST_KEY"] == from_file["REGISTRY_NIK_DIGEST_KEY"]  # not exported: the file's


def test_a_token_berdaya_token_mints_is_accepted_by_the_services_it_started(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from berdaya import cli

    monkeypatch.setenv("BERDAYA_JWT_SECRET", "operator-chosen-jwt-secret-0123456789abcdef")
    token = cli._tokens().mint("officer@kupang", ["officer"])
    service_secret = stack.service_env(service("registry"))["BERDAYA_JWT_SECRET"]
    assert TokenService(service_secret).verify(token).subject == "officer@kupang"


def test_alertmanager_is_given_the_webhook_token_the_notifier_was_given(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("NOTIFIER_ALERTMANAGER_TOKEN", "operator-token")
    assert stack.secret("NOTIFIER_ALERTMANAGER_TOKEN") == "operator-token"
    assert stack.service_env(service("notifier"))["NOTIFIER_ALERTMANAGER_TOKEN"] == "operator-token"


def test_a_secret_exported_empty_counts_as_not_exported(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERDAYA_JWT_SECRET", "")
    assert stack.service_env(service("registry"))["BERDAYA_JWT_SECRET"] == stack.secrets()["BERDAYA_JWT_SECRET"]


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL URLs
# ---------------------------------------------------------------------------------------------------------------


def test_a_service_s_database_url_keeps_the_server_s_options() -> None:
    server = "postgresql://berdaya:s3cret@db.example:5432/postgres?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    assert database_url(server, "berdaya_registry") == (
        "postgresql://berdaya:s3cret@db.example:5432/berdaya_registry?sslmode=verify-full&sslrootcert=/etc/ca.pem")


def test_a_service_s_database_url_is_made_from_a_server_url_without_a_database() -> None:
    assert database_url("postgresql://berdaya:s3cret@db.example:5432?sslmode=require", "berdaya_registry") == (
        "postgresql://berdaya:s3cret@db.example:5432/berdaya_registry?sslmode=require")
    assert database_url("postgresql://me@127.0.0.1:55432/", "berdaya_funding") == (
        "postgresql://me@127.0.0.1:55432/berdaya_funding")
    assert database_url("postgresql:///postgres?host=/run/postgresql", "berdaya_training") == (
        "postgresql:///berdaya_training?host=/run/postgresql")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://berdaya:Sup3rS3cret@db.example:5432/postgres", "postgresql://berdaya:***@db.example:5432/postgres"),
    ("postgresql://berdaya@db.example/postgres?password=Sup3rS3cret&sslmode=require",
     "postgresql://berdaya@db.example/postgres?password=***&sslmode=require"),
    ("postgresql://me@127.0.0.1:55432/postgres", "postgresql://me@127.0.0.1:55432/postgres"),
    ("host=db.example password=Sup3rS3cret", "***"),
])  # fmt: skip
def test_a_postgresql_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_up_says_which_postgresql_it_uses_without_its_password(stack: LocalStack) -> None:
    said: list[str] = []
    with pytest.raises(OSError):  # nobody listens on port 1: up stops there
        stack.up(say=said.append)
    assert said == ["PostgreSQL: using postgresql://berdaya:***@127.0.0.1:1/postgres"]


# ---------------------------------------------------------------------------------------------------------------
# Kafka's jars
# ---------------------------------------------------------------------------------------------------------------


def test_kafka_s_jars_are_fetched_with_strict_checksums_so_a_corrupt_jar_is_never_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    bin_dir, asked = tmp_path / "bin", tmp_path / "mvn-arguments"
    bin_dir.mkdir()
    for tool, script in (("java", "exit 0"), ("mvn", f'printf "%s\\n" "$@" > {asked}; exit 1')):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("BERDAYA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(KafkaUnavailable):
        ensure_jars()
    assert "-C" in asked.read_text().splitlines()


# ---------------------------------------------------------------------------------------------------------------
# Formatting the broker's storage: the admin's password never on a command line
# ---------------------------------------------------------------------------------------------------------------


def _format_watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, returncode: int = 0) -> list[dict]:
    """Format a secured node's storage, keeping what each process would have been started with: its command line
    (which any local user can read in ps) and, while it runs, the argument files it names."""
    started: list[dict] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        files = {a[1:]: (Path(a[1:]).read_text(), _mode(Path(a[1:]))) for a in argv if a.startswith("@")}
        started.append({"argv": argv, "files": files})
        return subprocess.CompletedProcess(argv, returncode, "", "refused" if returncode else "")

    monkeypatch.setattr(kafka_stack.subprocess, "run", run)
    node = KafkaNode(1, tmp_path / "kafka-1", 9092, 9192, [(1, 9192)],
                     credentials=BrokerCredentials("s3cret-admin-pw", "s3cret-controller-pw"))  # fmt: skip
    if returncode:
        with pytest.raises(KafkaUnavailable):
            node.format(tmp_path / "libs", "cluster-id")
    else:
        node.format(tmp_path / "libs", "cluster-id")
    return started


@pytest.mark.parametrize("returncode", [0, 1])
def test_the_admin_s_password_is_given_to_the_storage_tool_in_a_file_of_ours_never_on_its_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None, returncode: int) -> None:  # fmt: skip
    [storage] = _format_watched(tmp_path, monkeypatch, returncode)
    assert not any("s3cret" in a for a in storage["argv"]), storage["argv"]
    [(path, (text, mode))] = storage["files"].items()
    assert "SCRAM-SHA-512=[name=admin,password=s3cret-admin-pw]" in text and "kafka.tools.StorageTool" in text
    assert mode == 0o600
    assert not Path(path).exists()  # gone once the tool has run, whether it worked or not


def test_an_argument_file_gives_the_java_launcher_back_each_argument_as_it_was(tmp_path: Path) -> None:
    from berdaya.stack.kafka import argfile_quoted

    if not shutil.which("java"):
        pytest.skip("no java here")
    echo = tmp_path / "Echo.java"
    echo.write_text('public class Echo { public static void main(String[] a) { for (String s : a) '
                    'System.out.print("<" + s + ">"); } }')  # fmt: skip
    arguments = ['pass "wo\'rd" \\ # x', "two\nlines\tand\rmore\f", "", "@not-a-file", "#not-a-comment", "-version"]
    argfile = tmp_path / "echo.args"
    argfile.write_text("".join(f"{argfile_quoted(a)}\n" for a in [str(echo), *arguments]))
    echoed = subprocess.run(["java", f"@{argfile}"], capture_output=True, timeout=120)  # bytes: \r kept as it is
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout.decode() == "".join(f"<{a}>" for a in arguments)


# ---------------------------------------------------------------------------------------------------------------
# The topic namespace: the services' Kafka users are the namespace's, the ones `berdaya partner add` grants to
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def secured_stack(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> tuple[LocalStack, list[tuple[str, str]]]:
    """The stack on a secured cluster as its admin; what it would provision there (service, namespace) is kept
    instead of reaching a broker."""
    from berdaya.stack import access

    monkeypatch.setenv("KAFKA_USERNAME", "admin")
    monkeypatch.setenv("KAFKA_PASSWORD", "admin-pw")
    provisioned: list[tuple[str, str]] = []

    def provision(security: object, definition: object, password: str, namespace: str = "", **_: object) -> None:
        provisioned.append((definition.name, namespace))  # type: ignore[attr-defined]

    monkeypatch.setattr(access, "KafkaSecurity", lambda admin: None)
    monkeypatch.setattr(access, "provision_service", provision)
    monkeypatch.setattr(access, "logs_in", lambda own, timeout=5: True)
    return LocalStack(), provisioned


def test_a_service_s_kafka_user_and_grants_are_its_namespace_s_as_partner_add_grants_them(
        secured_stack: tuple[LocalStack, list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from berdaya.stack.access import service_password
    from shared.messaging.acl import partner_links, service_grants
    from services.funding.bootstrap import SERVICE

    stack, provisioned = secured_stack
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    env = stack.service_env(service("funding"))
    assert env["KAFKA_USERNAME"] == "kupang.service-funding"
    assert env["KAFKA_USERNAME"] in partner_links("bri", "kupang")  # the user a partner's outcomes are granted to
    assert env["KAFKA_PASSWORD"] == service_password(stack.kafka_admin, "kupang.service-funding")
    assert env["BERDAYA_TOPIC_NAMESPACE"] == "kupang"  # the service's topics are the namespace its user may touch
    assert provisioned == [("funding", "kupang")]
    assert all(g.name.startswith("kupang.") for g in service_grants(SERVICE, "kupang"))


def test_service_definitions_asked_for_from_many_threads_at_once_are_imported_one_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """FastAPI silences pydantic's warnings while it builds routes by swapping the process's warning filters, which
    two imports on two threads undo for each other (replicas started at once printed them, one run in seven)."""
    from concurrent.futures import ThreadPoolExecutor
    from types import ModuleType, SimpleNamespace

    from berdaya.stack import access

    inside, most, guard = 0, 0, threading.Lock()

    class SlowImports(ModuleType):
        def import_module(self, name: str) -> SimpleNamespace:
            nonlocal inside, most
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)  # long enough for every other thread to arrive while this import runs
            with guard:
                inside -= 1
            return SimpleNamespace(SERVICE=name)

    monkeypatch.setattr(access, "importlib", SlowImports("importlib"))
    names = ["registry", "funding", "notifier", "training"]
    with ThreadPoolExecutor(len(names)) as pool:
        found = list(pool.map(access.service_definition, names))

    assert found == [f"services.{name}.bootstrap" for name in names]
    assert most == 1


def test_a_stack_without_a_namespace_keeps_the_users_and_passwords_it_had(
        secured_stack: tuple[LocalStack, list[tuple[str, str]]]) -> None:  # fmt: skip
    from berdaya.stack.access import service_password

    stack, provisioned = secured_stack
    env = stack.service_env(service("registry"))
    assert (env["KAFKA_USERNAME"], env["BERDAYA_TOPIC_NAMESPACE"]) == ("service-registry", "")
    assert env["KAFKA_PASSWORD"] == service_password(stack.kafka_admin, "service-registry")
    assert provisioned == [("registry", "")]


def test_a_namespace_the_services_would_refuse_stops_the_stack_before_any_user_is_made(
        secured_stack: tuple[LocalStack, list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    stack, provisioned = secured_stack
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kota.kupang")  # a dot: its names could pass for another's
    with pytest.raises(RuntimeError, match="BERDAYA_TOPIC_NAMESPACE='kota.kupang'"):
        stack.service_env(service("registry"))
    said: list[str] = []
    with pytest.raises(RuntimeError, match="BERDAYA_TOPIC_NAMESPACE"):
        stack.up(say=said.append)
    assert provisioned == [] and said == []


def test_up_refuses_to_run_services_of_two_namespaces_at_once_and_says_what_to_do(
        stack: LocalStack, stranger: subprocess.Popen, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from berdaya.stack import local

    monkeypatch.setattr(local, "port_open", lambda port: False)
    monkeypatch.setattr(local, "spawn", lambda argv, log, env, cwd: stranger)  # stands for the registry it starts
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    stack.start_service(service("registry"))
    monkeypatch.delenv("BERDAYA_TOPIC_NAMESPACE")
    said: list[str] = []
    with pytest.raises(RuntimeError) as refused:
        stack.up(say=said.append)
    assert said == []  # refused before anything started
    assert "registry is running in topic namespace kupang, but BERDAYA_TOPIC_NAMESPACE is (none)" in str(refused.value)
    assert "`berdaya down`" in str(refused.value)
    assert "set BERDAYA_TOPIC_NAMESPACE=kupang as before" in str(refused.value)
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    with pytest.raises(OSError):  # the namespace it runs in: up goes on, to the PostgreSQL nobody listens for
        stack.up(say=said.append)


def test_up_in_a_namespace_refuses_a_service_an_older_berdaya_started_outside_any(
        stack: LocalStack, stranger: subprocess.Popen, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    PidFile(stack.base / "run" / "notifier.pid").write(stranger.pid)  # no record of its namespace: none was used
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    with pytest.raises(RuntimeError, match=r"notifier is running in topic namespace \(none\).*unset BERDAYA_TOPIC_NAM"):
        stack.up(say=lambda _: None)
    monkeypatch.delenv("BERDAYA_TOPIC_NAMESPACE")
    with pytest.raises(OSError):  # outside a namespace, as it runs: up goes on
        stack.up(say=lambda _: None)


def test_postgresql_is_installed_before_its_data_directory_is_given_to_the_postgres_user_it_creates(
        tmp_path, monkeypatch) -> None:  # fmt: skip
    done: list[str] = []

    def install() -> Path:
        done.append("install")
        raise postgres_stack.PostgresUnavailable("no binaries here")

    monkeypatch.setattr(postgres_stack.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres_stack.shutil, "chown", lambda *_: done.append("chown"))
    monkeypatch.setattr(postgres_stack, "bin_dir", install)

    with pytest.raises(postgres_stack.PostgresUnavailable):
        postgres_stack.LocalPostgres(tmp_path / "pg" / "data", 1).init()

    assert done == ["install"]


def test_a_postmaster_pid_file_names_our_server_only_when_that_process_works_in_our_data_directory(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = postgres_stack.LocalPostgres(data, 1)
    assert server.server() == "none"
    with subprocess.Popen(["sleep", "30"], cwd=data) as inside, subprocess.Popen(["sleep", "30"], cwd=tmp_path) as other:
        try:
            (data / "postmaster.pid").write_text(f"{inside.pid}\n{data}\n")
            assert server.server() == "ours"
            (data / "postmaster.pid").write_text(f"{other.pid}\n{data}\n")
            assert server.server() == "stale"
        finally:
            inside.kill()
            other.kill()
    (data / "postmaster.pid").write_text(f"{other.pid}\n{data}\n")  # that process has ended
    assert server.server() == "stale"
    (data / "postmaster.pid").write_text("")  # the server died as it began writing it
    assert server.server() == "stale"


def test_kafkas_pids_are_told_before_the_wait_for_the_cluster_so_a_start_that_times_out_can_still_be_stopped(
        tmp_path, monkeypatch) -> None:  # fmt: skip
    told: list[list[int]] = []
    monkeypatch.setattr(kafka_stack, "port_open", lambda _: False)
    monkeypatch.setattr(kafka_stack, "ensure_jars", lambda: tmp_path)
    monkeypatch.setattr(KafkaNode, "write_config", lambda self: None)
    monkeypatch.setattr(KafkaNode, "format", lambda self, libs, cluster_id: None)
    monkeypatch.setattr(KafkaNode, "start", lambda self, libs: 4242 + self.node_id)

    def too_slow(*_: object) -> None:
        raise RuntimeError("Kafka node 1 on port 1 did not come up in 90 s")

    monkeypatch.setattr(kafka_stack, "wait_until", too_slow)

    with pytest.raises(RuntimeError):
        LocalKafka(tmp_path / "kafka", node_ports=[(1, 2), (3, 4)]).start(on_started=told.append)

    assert told == [[4243, 4244]]


def test_a_second_up_or_down_of_one_stack_waits_for_the_first_and_says_so(stack: LocalStack, monkeypatch) -> None:
    order: list[str] = []
    said: list[str] = []
    first_in = threading.Event()

    def slow_up(say) -> None:  # noqa: ANN001
        order.append("up begins")
        first_in.set()
        time.sleep(0.3)
        order.append("up ends")

    monkeypatch.setattr(stack, "_up", slow_up)
    monkeypatch.setattr(stack, "_down", lambda say: order.append("down"))
    first = threading.Thread(target=stack.up)
    first.start()
    assert first_in.wait(5)

    stack.down(say=said.append)
    first.join()

    assert order == ["up begins", "up ends", "down"]
    assert said and "waiting for it to finish" in said[0]


# ---------------------------------------------------------------------------------------------------------------
# Throwaway stacks a run left behind
# ---------------------------------------------------------------------------------------------------------------


def left_stack(parent: Path, name: str = "berdaya-left") -> Path:
    """A stack folder whose run is gone: its owner file there, nobody holding the lock, no server running."""
    base = parent / name
    (base / "pg" / "data").mkdir(parents=True)
    (base / "kafka").mkdir()
    (base / "owner.lock").write_text("4242\n")
    return base


def test_a_stack_whose_run_is_gone_is_removed_and_one_whose_run_holds_its_lock_is_left(tmp_path: Path) -> None:
    from berdaya.stack.throwaway import _hold, reap_abandoned

    gone = left_stack(tmp_path)
    alive = tmp_path / "berdaya-alive"
    alive.mkdir()
    held = _hold(alive)
    try:
        assert reap_abandoned(tmp_path) == [gone]
        assert not gone.exists() and (alive / "owner.lock").exists()
    finally:
        os.close(held)


def test_a_stack_being_set_up_is_never_reaped_its_owner_file_appears_already_locked(tmp_path: Path) -> None:
    from berdaya.stack.throwaway import _hold, reap_abandoned

    base = tmp_path / "berdaya-new"
    base.mkdir()
    held = _hold(base)
    try:
        assert not (base / ".owner.lock").exists()  # staged under another name, renamed once locked
        assert reap_abandoned(tmp_path) == [] and base.exists()
    finally:
        os.close(held)


def test_folders_without_an_owner_file_or_reached_through_a_link_are_never_touched(tmp_path: Path) -> None:
    from berdaya.stack.throwaway import reap_abandoned

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = left_stack(elsewhere, "someone-else")
    (tmp_path / "berdaya-link").symlink_to(target)  # the folder itself a link
    linked_data = left_stack(tmp_path, "berdaya-data-link")
    shutil.rmtree(linked_data / "pg" / "data")
    (linked_data / "pg" / "data").symlink_to(elsewhere)  # another cluster's data directory, say
    no_owner = tmp_path / "berdaya-chaos-logs"
    no_owner.mkdir()

    assert reap_abandoned(tmp_path) == []
    assert target.exists() and linked_data.exists() and no_owner.exists()


def test_a_running_service_whose_readiness_fails_is_shown_not_ready_naming_its_log_not_starting(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(stack, "_pid", lambda name: 4242)
    monkeypatch.setattr(stack, "readiness", lambda spec, timeout=2: 503 if spec.name == "registry" else None)
    monkeypatch.setattr(stack.monitoring, "status", lambda: {})

    parts = stack.status()

    assert parts["registry"].startswith("not ready") and str(stack.log_file("registry")) in parts["registry"]
    assert parts["funding"] == "starting"

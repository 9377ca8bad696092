"""The whole local stack: PostgreSQL, Kafka and the services, started in the background and found again later."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from berdaya.partners import PartnerRefused, deployment_topics
from berdaya.stack.access import access_env, access_from_env, service_access
from berdaya.stack.kafka import BrokerCredentials, LocalKafka
from berdaya.stack.postgres import LocalPostgres, database_url, ensure_database, masked_url
from berdaya.stack.process import PidFile, port_open, spawn, wait_until
from berdaya.stack.prometheus import WEBHOOK_PATH, LocalMonitoring, MonitoringUnavailable, Target
from berdaya.stack.secret_files import read_secret, write_secret
from services.funding.settings import FundingSettings
from services.notifier.settings import NotifierSettings
from services.registry.settings import RegistrySettings
from services.training.settings import TrainingSettings
from shared.messaging.kafka import KafkaAccess
from shared.settings import PlatformSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServiceSpec:
    """A service as the local stack runs it; its port and variable prefix come from the service's own settings."""

    name: str
    settings: type[PlatformSettings]

    @property
    def env_prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    @property
    def port(self) -> int:
        configured = os.environ.get(f"{self.env_prefix}HTTP_PORT")
        return int(configured) if configured else int(self.settings.model_fields["http_port"].default)

    @property
    def database(self) -> str:
        return f"berdaya_{self.name}"


SERVICES = (
    ServiceSpec("registry", RegistrySettings),
    ServiceSpec("funding", FundingSettings),
    ServiceSpec("training", TrainingSettings),
    ServiceSpec("notifier", NotifierSettings),
)


def service(name: str) -> ServiceSpec:
    return next(s for s in SERVICES if s.name == name)


class StackSettings(BaseSettings):
    """Where the local stack lives and listens; with KAFKA_BOOTSTRAP_SERVERS and BERDAYA_POSTGRES_URL set, it starts
    nothing and uses those."""

    # Only the aliases are read: a field named `home` must not pick up the shell's HOME.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False)

    home: Path = Field(Path.home() / ".local" / "share" / "berdaya", validation_alias="BERDAYA_HOME")
    pg_port: int = Field(55432, validation_alias="BERDAYA_PG_PORT")
    kafka_port: int = Field(9092, validation_alias="BERDAYA_KAFKA_PORT")
    prometheus_port: int = Field(59090, validation_alias="BERDAYA_PROMETHEUS_PORT")
    alertmanager_port: int = Field(59093, validation_alias="BERDAYA_ALERTMANAGER_PORT")
    external_kafka: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    # On an external cluster, the operator's own credential: it makes each service's user and grants.
    external_kafka_username: str | None = Field(None, validation_alias="KAFKA_USERNAME")
    external_kafka_password: str | None = Field(None, validation_alias="KAFKA_PASSWORD")
    external_kafka_tls: bool = Field(False, validation_alias="KAFKA_TLS")
    external_postgres: str | None = Field(None, validation_alias="BERDAYA_POSTGRES_URL")


def home() -> Path:
    return StackSettings().home


@dataclass
class LocalStack:
    settings: StackSettings = field(default_factory=StackSettings)

    @property
    def base(self) -> Path:
        return self.settings.home

    @property
    def pg_port(self) -> int:
        return self.settings.pg_port

    @property
    def kafka_port(self) -> int:
        return self.settings.kafka_port

    @property
    def external_kafka(self) -> str | None:
        return self.settings.external_kafka

    @property
    def external_postgres(self) -> str | None:
        return self.settings.external_postgres

    @property
    def postgres(self) -> LocalPostgres:
        # PostgreSQL runs as the `postgres` user when we are root, and that user can't enter /root.
        data = Path(f"/var/lib/postgresql/berdaya-{self.pg_port}/data") if os.geteuid() == 0 else self.base / "postgres" / "data"
        return LocalPostgres(data, self.pg_port)

    @property
    def kafka(self) -> LocalKafka:
        return LocalKafka(self.base / "kafka", port=self.kafka_port, credentials=self.broker_credentials())

    @property
    def kafka_admin(self) -> KafkaAccess:
        """The cluster as its admin: the operator's commands (replay, dead letters, partners) and services' users."""
        s = self.settings
        if s.external_kafka:
            return KafkaAccess(s.external_kafka, s.external_kafka_username, s.external_kafka_password, s.external_kafka_tls)
        return self.kafka.admin

    def broker_credentials(self) -> BrokerCredentials:
        """The local broker's admin and controller passwords, made with its storage and kept beside it (never given
        to a service: each gets a user of its own)."""
        path = self.base / "kafka-credentials.json"
        if path.exists():
            return BrokerCredentials(**json.loads(read_secret(path)))
        if (self.base / "kafka" / "cluster.id").exists():
            raise RuntimeError(
                f"the local Kafka in {self.base / 'kafka'} was made by an older Berdaya, without authentication. "
                f"Stop it (./run down), then remove that folder (rm -rf {self.base / 'kafka'}) and run again: "
                "the services publish their events again from their own databases only if asked to, so replay "
                "or re-import what you need afterwards.")
        credentials = BrokerCredentials.generate()
        write_secret(path, json.dumps({"admin_password": credentials.admin_password,
                                       "controller_password": credentials.controller_password}))  # fmt: skip
        return credentials

    @property
    def monitoring(self) -> LocalMonitoring:
        return LocalMonitoring(self.base, self.settings.prometheus_port, self.settings.alertmanager_port)

    @property
    def postgres_url(self) -> str:
        return self.external_postgres or self.postgres.url()

    @property
    def bootstrap_servers(self) -> str:
        return self.external_kafka or self.kafka.bootstrap_servers

    def _pid_file(self, name: str) -> PidFile:
        return PidFile(self.base / "run" / f"{name}.pid")

    def _pid(self, name: str) -> int | None:
        return self._pid_file(name).pid()

    def log_file(self, name: str) -> Path:
        return self.base / "logs" / f"{name}.log"

    def secrets(self) -> dict[str, str]:
        """Local secrets, made once per machine and kept outside the repository; a secret a newer Berdaya needs is
        added to an older machine's file, and none is ever replaced. What the stack uses is `secret()`: a secret set
        in the environment comes before this file's."""
        path = self.base / "secrets.json"
        values = json.loads(read_secret(path)) if path.exists() else {}
        missing = {k: make() for k, make in new_secrets().items() if k not in values}
        if missing:
            values.update(missing)
            write_secret(path, json.dumps(values, indent=2))
        return values

    def secret(self, name: str) -> str:
        """The secret the stack uses: the operator's, when exported (BERDAYA_JWT_SECRET, REGISTRY_NIK_*...), else
        the local file's. The services, `berdaya token` and `berdaya import` all go by this one rule, so that a
        token minted by one is accepted by the others."""
        return self.secrets_in_use()[name]

    def secrets_in_use(self) -> dict[str, str]:
        """Every secret as `secret()` gives it, from one read of the file."""
        return {name: os.environ.get(name) or value for name, value in self.secrets().items()}

    def topic_namespace(self) -> str:
        """The deployment's topic namespace (BERDAYA_TOPIC_NAMESPACE), read and checked as the services and
        `berdaya partner` read it; a bad one stops the stack before anything is made with it."""
        try:
            return deployment_topics().namespace
        except PartnerRefused as exc:
            raise RuntimeError(str(exc)) from None

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        """A service's settings; on a secured cluster its own Kafka user is made (or brought up to date) first. Each
        secret is `secret()`'s: one exported in the environment wins over the local file's.

        The user is the namespace's (`<namespace>.service-<name>`, shared/messaging/acl.py), granted the namespace's
        topics and groups: the one `berdaya partner add` grants a partner's topics to, and the one the service's own
        BERDAYA_TOPIC_NAMESPACE needs. The service's password is derived from the admin's and the user's name, so a
        stack made before namespaced users existed gets the new user made at its next start; no file changes."""
        namespace = self.topic_namespace()
        env = {**os.environ, **self.secrets_in_use()}
        env.update({
            **access_env(service_access(self.kafka_admin, spec.name, namespace)),
            "BERDAYA_TOPIC_NAMESPACE": namespace,
            f"{spec.env_prefix}DATABASE_URL": database_url(self.postgres_url, spec.database),
            f"{spec.env_prefix}HTTP_PORT": str(spec.port),
            "PYTHONUNBUFFERED": "1",
        })  # fmt: skip
        # On a machine of one's own, a stalled halal pathway shows within seconds rather than minutes.
        env.setdefault("TRAINING_SWEEP_INTERVAL_SECONDS", "5")
        return env

    def url(self, spec: ServiceSpec) -> str:
        return f"http://127.0.0.1:{spec.port}"

    # -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _alone(self, say=print) -> Iterator[None]:  # noqa: ANN001
        """One `up` or `down` of this stack at a time: two at once both found nothing running, both started every
        service (one failing to bind), and whichever PID was written last was kept, maybe the dead one's."""
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "stack.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"another `berdaya up` or `down` of {self.base} is running; waiting for it to finish")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self, say=print) -> None:  # noqa: ANN001 - any print-like callable
        with self._alone(say):
            self._up(say)

    def _up(self, say) -> None:  # noqa: ANN001
        namespace = self.topic_namespace()
        # Before anything starts: a stack half in one namespace and half in another works in neither.
        for spec in SERVICES:
            if self._pid(spec.name):
                self._check_namespace(spec, namespace)
        if self.external_postgres:
            say(f"PostgreSQL: using {masked_url(self.external_postgres)}")
        else:
            say(f"PostgreSQL: starting on 127.0.0.1:{self.pg_port} ({self.postgres.data_dir})")
            self.postgres.start()
        for spec in SERVICES:
            asyncio.run(ensure_database(self.postgres_url, spec.database))
        if self.external_kafka:
            say(f"Kafka: using {self.external_kafka}")
        elif port_open(self.kafka_port):
            say(f"Kafka: already running on 127.0.0.1:{self.kafka_port}")
        else:
            say(f"Kafka: starting a KRaft broker on 127.0.0.1:{self.kafka_port} (first run downloads its jars with Maven)")
            self.kafka.start(on_started=lambda pids: self._pid_file("kafka").write(pids[0]))
        for spec in SERVICES:
            if self._pid(spec.name):
                say(f"{spec.name}: already running on {self.url(spec)}")
                continue
            say(f"{spec.name}: starting on {self.url(spec)}")
            self.start_service(spec)
        for spec in SERVICES:
            self.wait_ready(spec)
        self.start_monitoring(say)

    def start_monitoring(self, say=print) -> None:  # noqa: ANN001
        """Prometheus scraping every service, Alertmanager sending to the notifier's webhook; a machine where they
        can't be installed still gets the rest of the stack, and is told why."""
        try:
            self.monitoring.start(
                [Target(spec.name, f"127.0.0.1:{spec.port}") for spec in SERVICES],
                webhook_url=self.url(service("notifier")) + WEBHOOK_PATH,
                webhook_token=self.secret("NOTIFIER_ALERTMANAGER_TOKEN"), say=say,
            )  # fmt: skip
        except (MonitoringUnavailable, RuntimeError, OSError, httpx.HTTPError) as exc:
            say(f"Prometheus and Alertmanager: not started: {exc}")

    def _namespace_file(self, name: str) -> Path:
        return self.base / "run" / f"{name}.namespace"

    def running(self, spec: ServiceSpec) -> bool:
        """Whether this stack started the service and it is still running."""
        return bool(self._pid(spec.name))

    def running_namespace(self, spec: ServiceSpec) -> str:
        """The topic namespace the running service was started in. A service started by an older Berdaya left no
        record: its Kafka user was made outside any namespace, so only outside one could it work."""
        path = self._namespace_file(spec.name)
        return path.read_text(encoding="utf-8").strip() if path.exists() else ""

    def _check_namespace(self, spec: ServiceSpec, namespace: str) -> None:
        running = self.running_namespace(spec)
        if running != namespace:
            raise RuntimeError(
                f"{spec.name} is running in topic namespace {running or '(none)'}, but BERDAYA_TOPIC_NAMESPACE is "
                f"{namespace or '(none)'} now: its topics, Kafka user and grants are the other namespace's. Stop the "
                f"stack (`berdaya down`) and run `berdaya up` again to run every service in "
                f"{namespace or 'no namespace'}, or " + (f"set BERDAYA_TOPIC_NAMESPACE={running}" if running else
                                                          "unset BERDAYA_TOPIC_NAMESPACE") + " as before")

    def start_service(self, spec: ServiceSpec) -> None:
        if self._pid(spec.name):
            return
        if port_open(spec.port):
            raise RuntimeError(f"port {spec.port} for {spec.name} is taken by another program; stop it first")
        env = self.service_env(spec)
        process = spawn([sys.executable, "-m", f"services.{spec.name}"], self.log_file(spec.name),
                        env=env, cwd=REPO_ROOT)  # fmt: skip
        self._pid_file(spec.name).write(process.pid)
        self._namespace_file(spec.name).write_text(env["BERDAYA_TOPIC_NAMESPACE"], encoding="utf-8")

    def stop_service(self, spec: ServiceSpec) -> bool:
        """Stop the service if this stack started it; True if it was running."""
        stopped = self._pid_file(spec.name).stop()
        self._namespace_file(spec.name).unlink(missing_ok=True)  # it went with its PID file
        return stopped

    def wait_ready(self, spec: ServiceSpec, timeout: float = 90) -> None:
        wait_until(lambda: self.ready(spec), timeout, f"{spec.name} /ready", self.log_file(spec.name))

    def ready(self, spec: ServiceSpec) -> bool:
        return self.readiness(spec) == 200

    def readiness(self, spec: ServiceSpec, timeout: float = 2) -> int | None:
        """The status /ready answers with, or None when the service does not answer."""
        try:
            return httpx.get(self.url(spec) + "/ready", timeout=timeout).status_code
        except httpx.HTTPError:
            return None

    def down(self, say=print) -> None:  # noqa: ANN001
        with self._alone(say):
            self._down(say)

    def _down(self, say) -> None:  # noqa: ANN001
        self.monitoring.stop(say)
        for spec in reversed(SERVICES):
            if self._pid(spec.name):
                say(f"{spec.name}: stopping")
            self.stop_service(spec)
        if self._pid("kafka") and not self.external_kafka:
            say("Kafka: stopping")
            self._pid_file("kafka").stop(timeout=30)
        self._pid_file("kafka").path.unlink(missing_ok=True)
        if not self.external_postgres and (self.postgres.data_dir / "postmaster.pid").exists():
            say("PostgreSQL: stopping")
            self.postgres.stop()

    def status(self) -> dict[str, str]:
        parts = {
            "postgres": "external" if self.external_postgres else ("up" if port_open(self.pg_port) else "down"),
            "kafka": "external" if self.external_kafka else ("up" if port_open(self.kafka_port) else "down"),
        }
        for spec in SERVICES:
            # Longer than the service's own checks (3 s each), so a hung Kafka shows as "not ready", not "starting".
            answer = self.readiness(spec, timeout=8) if self._pid(spec.name) else self.readiness(spec)
            parts[spec.name] = ("ready" if answer == 200 else
                                f"not ready: its database or Kafka fails ({self.log_file(spec.name)} says which)"
                                if answer is not None else "starting" if self._pid(spec.name) else "down")  # fmt: skip
        parts.update(self.monitoring.status())
        return parts



@dataclass
class ServiceProcess:
    name: str
    url: str
    log_file: Path
    pid: int


def run_service(name: str, env: dict[str, str], database_url: str, log_file: Path, port: int | None = None) -> ServiceProcess:
    """`python -m services.<name>` with its own database, on `port` (a free one if None), once /ready answers."""
    from berdaya.stack.process import free_port

    port = port or free_port()
    prefix = name.upper()
    # `env` speaks for whoever runs the stack; the service gets a Kafka user of its own, made with that credential.
    kafka = service_access(access_from_env(env), name, env.get("BERDAYA_TOPIC_NAMESPACE", ""))
    own_env = {**env, **access_env(kafka), f"{prefix}_DATABASE_URL": database_url, f"{prefix}_HTTP_PORT": str(port)}
    process = spawn([sys.executable, "-m", f"services.{name}"], log_file, env=own_env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 60, f"{name} /ready", log_file)
    return ServiceProcess(name, url, log_file, process.pid)


def new_secrets() -> dict[str, Callable[[], str]]:
    """How each secret the services need is made."""
    return {
        "BERDAYA_JWT_SECRET": lambda: secrets.token_urlsafe(48),
        "BERDAYA_PSEUDONYM_KEY": lambda: base64.b64encode(os.urandom(32)).decode(),
        "REGISTRY_NIK_DIGEST_KEY": lambda: base64.b64encode(os.urandom(32)).decode(),
        "REGISTRY_NIK_ENCRYPTION_KEY": lambda: base64.b64encode(os.urandom(32)).decode(),
        # Alertmanager's bearer token on the notifier's webhook (deploy/prometheus/alertmanager.yml).
        "NOTIFIER_ALERTMANAGER_TOKEN": lambda: secrets.token_urlsafe(32),
    }


def throwaway_env(kafka: KafkaAccess | str, namespace: str, jwt_secret: str) -> dict[str, str]:
    """Settings for services on a throwaway stack: fresh keys, topics of their own, and the admin's Kafka access
    (which run_service turns into each service's own)."""
    return {
        **os.environ,
        **{name: make() for name, make in new_secrets().items()},
        **access_env(KafkaAccess.of(kafka)),
        "BERDAYA_JWT_SECRET": jwt_secret,
        "BERDAYA_RELAY_IDLE_WAIT_SECONDS": "0.2",
        "BERDAYA_TOPIC_NAMESPACE": namespace,
        "PYTHONUNBUFFERED": "1",
    }

"""A real Apache Kafka broker (KRaft) from Maven Central jars, run with the machine's Java; no Docker needed."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from berdaya.stack.process import alive, port_open, spawn, stop_pid, wait_until
from berdaya.stack.secret_files import write_secret
from shared.messaging.kafka import KafkaAccess

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_VERSION = "4.1.1"


class KafkaUnavailable(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("BERDAYA_CACHE", Path.home() / ".cache" / "berdaya"))


def libs_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars(quiet: bool = True) -> Path:
    """Fetch the broker's jars with Maven once; later runs use the cache (outside the repository)."""
    libs = libs_dir()
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    for tool, hint in (("java", "install a Java 17+ runtime"), ("mvn", "install Maven (apt-get install maven)")):
        if not shutil.which(tool):
            raise KafkaUnavailable(f"`{tool}` not found: {hint}, or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker")
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    # -C (strict checksums): a jar whose checksum does not match fails the fetch; Maven 3 would only warn, and the
    # corrupt jar would stay in its cache for every later run.
    argv = ["mvn", "-B", "-C", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}", f"-Dkafka.version={KAFKA_VERSION}"]  # fmt: skip
    if quiet:
        argv.insert(1, "-q")
    result = subprocess.run(argv, capture_output=quiet, text=True)
    if result.returncode != 0:
        raise KafkaUnavailable(f"Maven could not fetch Kafka {KAFKA_VERSION}: {(result.stdout or '')[-2000:]}")
    libs.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def new_cluster_id() -> str:
    # A leading '-' would be read by StorageTool as an option; Kafka's own ids avoid it the same way.
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


def argfile_quoted(argument: str) -> str:
    """One argument as the `java` launcher reads it back from an argument file: quoted, with its escapes."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}
    return '"' + "".join(escapes.get(c, c) for c in argument) + '"'


_LOG4J = """\
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
"""


@dataclass(frozen=True)
class BrokerCredentials:
    """The secured broker's own accounts: the admin (a SCRAM user, super user) and the controllers' (PLAIN)."""

    admin_password: str
    controller_password: str
    admin_user: str = "admin"
    controller_user: str = "controller"

    @classmethod
    def generate(cls) -> BrokerCredentials:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24))


@dataclass
class KafkaNode:
    """One KRaft node acting as broker and controller; a cluster is one to three of them."""

    node_id: int
    data_dir: Path
    port: int
    controller_port: int
    voters: list[tuple[int, int]] = field(default_factory=list)  # (node id, controller port) of every node
    pid: int | None = None
    # With credentials, clients must authenticate (SCRAM-SHA-512) and are authorised by ACLs, deny by default.
    credentials: BrokerCredentials | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    def write_config(self) -> None:
        replication = min(3, len(self.voters) or 1)
        voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in self.voters)
        lines = [
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            *(self._secured_listeners() if self.credentials else self._plain_listeners()),
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=6",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={2 if replication >= 3 else 1}",
            f"offsets.topic.replication.factor={replication}",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={2 if replication >= 3 else 1}",
            "group.initial.rebalance.delay.ms=0",
            # Topics are created on purpose (with their .dlq), never by a typo in a consumer.
            "auto.create.topics.enable=false",
            "log.retention.hours=168",
            # A consumer group's offsets outlive any stop of its service (Kafka's default forgets them after 7 days
            # idle): forgotten, the group reads its topics, kept whole, from the start, and every event older than
            # the inbox's retention (BERDAYA_INBOX_RETENTION_DAYS, 30) would be applied again.
            "offsets.retention.minutes=525600",
        ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_secret(self.config_file, "\n".join(lines) + "\n")  # it holds the admin's and the controllers' passwords
        (self.data_dir / "log4j2.properties").write_text(_LOG4J)

    def _plain_listeners(self) -> list[str]:
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]

    def _secured_listeners(self) -> list[str]:
        """SCRAM-SHA-512 for clients and between brokers; PLAIN between controllers (KRaft controllers can't use
        SCRAM: its credentials live in the metadata they serve). StandardAuthorizer, deny by default."""
        c = self.credentials
        assert c is not None
        return [
            f"listeners=CLIENT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=CLIENT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=CLIENT",
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule"
            f' required username="{c.admin_user}" password="{c.admin_password}";',
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule"
            f' required username="{c.controller_user}" password="{c.controller_password}"'
            f' user_{c.controller_user}="{c.controller_password}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{c.admin_user};User:{c.controller_user}",
        ]

    def _java(self, libs: Path, *args: str, heap: str = "512m") -> list[str]:
        return ["java", f"-Xmx{heap}", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                "-cp", f"{libs}/*", *args]  # fmt: skip

    def format(self, libs: Path, cluster_id: str) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        self.write_config()
        # The first admin's SCRAM credential is written with the storage: nobody can talk to a secured broker before.
        scram = ([] if self.credentials is None else [
            "--add-scram", f"SCRAM-SHA-512=[name={self.credentials.admin_user},password={self.credentials.admin_password}]"])  # fmt: skip
        # StorageTool (Kafka 4.1) takes that credential on its command line only, which any local user can read
        # (ps, /proc/PID/cmdline). So its class and arguments go to the JVM in an argument file (`java @FILE`,
        # expanded by the launcher itself), readable by us alone and removed as soon as the tool has run.
        arguments = self.data_dir / "format.args"
        write_secret(arguments, "".join(f"{argfile_quoted(a)}\n" for a in (
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_file), "--ignore-formatted",
            *scram)))  # fmt: skip
        try:
            result = subprocess.run(self._java(libs, f"@{arguments}", heap="256m"), capture_output=True, text=True)
        finally:
            arguments.unlink(missing_ok=True)
        if result.returncode != 0:
            raise KafkaUnavailable(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")

    def start(self, libs: Path) -> int:
        process = spawn(self._java(libs, "kafka.Kafka", str(self.config_file)), self.log_file)
        self.pid = process.pid
        return process.pid

    def stop(self) -> None:
        if self.pid:
            stop_pid(self.pid)
            self.pid = None


@dataclass
class LocalKafka:
    """A KRaft cluster of `size` nodes on 127.0.0.1, with client ports starting at `port`."""

    base_dir: Path
    port: int = 9092
    size: int = 1
    controller_port: int | None = None  # defaults to port + 100
    credentials: BrokerCredentials | None = None
    nodes: list[KafkaNode] = field(default_factory=list)
    node_ports: list[tuple[int, int]] | None = None  # (client, controller) per node, instead of counting up from port

    def __post_init__(self) -> None:
        if not self.nodes:
            controller = self.controller_port or self.port + 100
            ports = self.node_ports or [(self.port + i, controller + i) for i in range(self.size)]
            self.size, self.port = len(ports), ports[0][0]
            voters = [(i + 1, cp) for i, (_, cp) in enumerate(ports)]
            self.nodes = [
                KafkaNode(i + 1, self.base_dir / f"kafka-{i + 1}", p, cp, voters, credentials=self.credentials)
                for i, (p, cp) in enumerate(ports)
            ]

    @property
    def admin(self) -> KafkaAccess:
        """How to reach the cluster as its admin (anonymous when it is not secured)."""
        c = self.credentials
        return KafkaAccess(self.bootstrap_servers, c.admin_user, c.admin_password) if c else KafkaAccess(self.bootstrap_servers)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 90, on_started: Callable[[list[int]], None] | None = None) -> list[int]:
        """`on_started`: told the nodes' PIDs as soon as they run, before the wait for the cluster: a start that times
        out leaves them running, and whoever stops the cluster must know them."""
        if all(port_open(n.port) for n in self.nodes):
            return []
        libs = ensure_jars()
        cluster_file = self.base_dir / "cluster.id"
        if not cluster_file.exists():
            self.base_dir.mkdir(parents=True, exist_ok=True)
            cluster_file.write_text(new_cluster_id())
        cluster_id = cluster_file.read_text().strip()
        pids = []
        for node in self.nodes:
            node.write_config()
            node.format(libs, cluster_id)
            pids.append(node.start(libs))
        if on_started:
            on_started(pids)
        for node in self.nodes:
            wait_until(lambda n=node: port_open(n.port), timeout, f"Kafka node {node.node_id} on port {node.port}", node.log_file)
        wait_until(lambda: brokers_ready(self.admin, self.size), timeout, "Kafka cluster metadata", self.nodes[0].log_file)
        return pids

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def broker_pids(base_dir: Path) -> list[int]:
    """The running brokers of the cluster in `base_dir`, found by their command line (their config files are there):
    after a restart, the only record of them."""
    if not Path("/proc").is_dir():
        return []
    marker = str(base_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"kafka.Kafka" in argv and any(arg.startswith(marker + b"/") for arg in argv) and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def brokers_ready(access: KafkaAccess, expected: int) -> bool:
    """True once `expected` brokers are in the cluster metadata, i.e. the cluster can take topics."""
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({**access.confluent(), "log_level": 0}).list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return len(metadata.brokers) >= expected

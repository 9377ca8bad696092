"""Kafka clients with the safety settings Berdaya relies on, and topic creation."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.messaging.partitioner import partition_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaAccess:
    """Where the brokers are and who this client is: a SCRAM-SHA-512 user when the cluster authenticates.

    One value handed to every client library, so aiokafka, FastStream and confluent's admin client can never
    disagree about the credentials.
    """

    bootstrap_servers: str
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"KafkaAccess({self.bootstrap_servers!r}, user={self.username!r}, tls={self.tls})"

    @classmethod
    def of(cls, access: KafkaAccess | str) -> KafkaAccess:
        return access if isinstance(access, KafkaAccess) else cls(access)

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    def as_user(self, username: str, password: str) -> KafkaAccess:
        return KafkaAccess(self.bootstrap_servers, username, password, self.tls)

    def _protocol(self) -> str:
        if self.authenticated:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self._protocol()}
        if self.tls:
            kwargs["ssl_context"] = ssl.create_default_context()
        if self.authenticated:
            kwargs |= {"sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": self.username,
                       "sasl_plain_password": self.password}  # fmt: skip
        return kwargs

    def confluent(self) -> dict[str, str]:
        """Configuration for confluent-kafka's clients (librdkafka names)."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self._protocol()}
        if self.authenticated:
            config |= {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": self.username or "",
                       "sasl.password": self.password or ""}  # fmt: skip
        return config

    def faststream(self):  # noqa: ANN201 - faststream.security.BaseSecurity | None
        """FastStream's `security=` for KafkaBroker."""
        from faststream.security import BaseSecurity, SASLScram512

        if self.authenticated:
            return SASLScram512(self.username or "", self.password or "", use_ssl=self.tls,
                                ssl_context=ssl.create_default_context() if self.tls else None)  # fmt: skip
        return BaseSecurity(ssl_context=ssl.create_default_context(), use_ssl=True) if self.tls else None


# The largest request a producer sends, and so the largest event (aiokafka's default): the relay refuses a bigger one
# itself, since it hands the producer whole batches, which aiokafka does not measure record by record.
MAX_REQUEST_BYTES = 1_048_576
# The largest event the relay publishes: a request's worth less room for what a dead-letter copy adds (the error, up
# to 2,000 characters, and where the record came from), so any event a consumer refuses can be dead-lettered whole.
MAX_EVENT_BYTES = MAX_REQUEST_BYTES - 16 * 1024


def safe_producer(
    kafka: KafkaAccess | str, client_id: str, *, cls: type[AIOKafkaProducer] = AIOKafkaProducer
) -> AIOKafkaProducer:
    """acks=all with idempotence: a broker retry never duplicates or reorders within one producer session.

    aiokafka defaults to enable_idempotence=False, so it is set here on purpose.
    """
    return cls(
        **KafkaAccess.of(kafka).aiokafka(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=MAX_REQUEST_BYTES,
        request_timeout_ms=30_000,
        partitioner=partition_for,
    )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_days: int | None = None
    # Only each key's latest record is kept (a partner's referrals: a withdrawal, keyed by its consent's id like the
    # referral, supersedes the owner's name, phone and NIK link the referral carried).
    compacted: bool = False

    def configs(self) -> dict[str, str]:
        configs = {}
        if self.replication_factor >= 3:
            # With three copies, a write needs two of them: one broker may fail without losing acked events.
            configs["min.insync.replicas"] = "2"
        if self.compacted:
            return configs | COMPACTED
        # An aggregate's topic is kept whole: a view is rebuilt by replaying it from the beginning.
        configs["retention.ms"] = "-1" if self.retention_days is None else str(self.retention_days * 24 * 3600 * 1000)
        return configs


# A compacted topic keeps each key's latest record. The cleaner only reads segments no longer written to, so a
# segment is closed once its first record is a day old (at the next record after that) and cleaned within the day.
COMPACTED = {"cleanup.policy": "compact", "max.compaction.lag.ms": str(24 * 3600 * 1000)}


# Topics whose every record is superseded by the next of its key: a partner's referrals, in any namespace.
_COMPACTED_TOPIC = re.compile(r"(?:^|\.)partner\.[a-z][a-z0-9-]*\.referral\.v1$")


def with_dead_letters(topics: list[str], partitions: int, replication_factor: int) -> list[TopicSpec]:
    """Each topic and its `.dlq`; dead letters are kept longer so someone can look at them."""
    specs = []
    for name in topics:
        compacted = _COMPACTED_TOPIC.search(name) is not None
        specs.append(TopicSpec(name, partitions, replication_factor, compacted=compacted))
        specs.append(TopicSpec(f"{name}.dlq", 1, replication_factor, retention_days=30))
    return specs


async def ensure_topics(kafka: KafkaAccess | str, specs: list[TopicSpec]) -> None:
    admin = AIOKafkaAdminClient(**KafkaAccess.of(kafka).aiokafka(), client_id="berdaya-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs()) for s in missing]
        )
        for topic, code, *rest in response.topic_errors:
            # Another service instance may have created the topic first; that is fine.
            if code not in (0, TopicAlreadyExistsError.errno):
                message = rest[0] if rest else ""
                raise RuntimeError(f"could not create topic {topic}: error {code} {message}")
        log.info("created topics %s", ", ".join(s.name for s in missing))
    finally:
        await admin.close()


def enforce_compaction(kafka: KafkaAccess | str, specs: list[TopicSpec], timeout: float = 30) -> list[str]:
    """Make the compacted topics of `specs` compacted, those made before the rule included, with Kafka's incremental
    alter configs (the topics' other settings stay as they are). Needs ALTER_CONFIGS: the cluster's admin. Returns
    the topics it set; raises what the cluster answered for any it could not."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    resources = [
        ConfigResource(ResourceType.TOPIC, spec.name, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in COMPACTED.items()])
        for spec in specs if spec.compacted
    ]  # fmt: skip
    if not resources:
        return []
    admin = confluent_admin(kafka)  # kept referenced until every answer arrived
    for future in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
        future.result(timeout=timeout)
    return [r.name for r in resources]


async def kafka_reachable(kafka: KafkaAccess | str, timeout: float = 3.0) -> str | None:
    """None when a broker answers a metadata request, else why not (for /ready)."""
    client = AIOKafkaClient(**KafkaAccess.of(kafka).aiokafka(), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=timeout)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported as text
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.close()


def confluent_admin(kafka: KafkaAccess | str, settings: Mapping[str, Any] | None = None):  # noqa: ANN201
    """Confluent's AdminClient; `settings`: librdkafka settings of the caller's own, over the defaults here."""
    from confluent_kafka.admin import AdminClient

    # Warnings and errors only: librdkafka's notices (such as a handle destroyed with an event it was never asked to
    # serve) printed on about one call in ten, in front of operators who could do nothing about them.
    return AdminClient({**KafkaAccess.of(kafka).confluent(), "log_level": 4, **(settings or {})})


def kafka_said(exc: BaseException) -> str:
    """What went wrong, in words: a confluent error's own text rather than its repr, and a bare timeout said so."""
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return exc.args[0].str()
    return str(exc) or "no answer in time"


T = TypeVar("T")


def until_coordinator_settles(ask: Callable[[], T], patience: float = 30, pause: float = 0.5,
                              sleep: Callable[[float], None] = time.sleep) -> T:  # fmt: skip
    """`ask()`, and again while the consumer group's coordinator is moving or loading, for up to `patience` seconds.

    Right after a broker starts, or while leadership moves, Kafka answers a group request with "not the coordinator"
    or "loading"; its own clients ask again, and so does an operator's command rather than stop half-way.
    """
    from confluent_kafka import KafkaError, KafkaException

    settling = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                KafkaError.COORDINATOR_LOAD_IN_PROGRESS)  # fmt: skip
    deadline = time.monotonic() + patience
    while True:
        try:
            return ask()
        except KafkaException as exc:
            if exc.args[0].code() not in settling or time.monotonic() >= deadline:
                raise
        sleep(pause)


def active_group_members(kafka: KafkaAccess | str, group: str) -> int:
    """How many members a consumer group has now (0 when no process is consuming with it).

    Any other failure is raised: a caller that goes on to empty a view must not take "could not ask" for "nobody".
    """
    from confluent_kafka import KafkaError, KafkaException

    admin = confluent_admin(kafka)  # kept referenced until the answer arrives

    def ask() -> int:
        try:
            return len(admin.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30).members)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return 0  # a group nobody has used, or one already forgotten
            raise

    return until_coordinator_settles(ask)


def consumer_group_known(kafka: KafkaAccess | str, group: str) -> bool:
    """Whether Kafka knows a consumer group: it has members, or offsets committed (one never used, or forgotten, is
    not). Any failure to ask is raised."""
    from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException

    admin = confluent_admin(kafka)  # kept referenced until the answer arrives

    def ask() -> bool:
        try:
            state = admin.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30).state
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return False
            raise
        return state not in (ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN)

    return until_coordinator_settles(ask)


def forget_consumer_group(kafka: KafkaAccess | str, group: str) -> None:
    """Delete a consumer group's committed offsets, so its next start reads its topics from the beginning.

    Kafka refuses while the group has members, which protects a running service.
    """
    from confluent_kafka import KafkaError, KafkaException

    admin = confluent_admin(kafka)  # kept referenced until the answer arrives

    def ask() -> None:
        try:
            admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise  # a group that never committed anything already reads from the beginning

    until_coordinator_settles(ask)


def consumer_lag(
    kafka: KafkaAccess | str, group: str, topics: list[str], timeout: float = 30
) -> dict[tuple[str, int], int]:
    """Records on each partition of `topics` that `group` has not committed yet (all of them if it never committed)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException

    # Only an admin client, and a quiet one: a consumer made just to read offsets looks up its group's coordinator
    # as it starts, and closing it mid-handshake printed authentication errors on most calls. What the client met on
    # the way (a refused login) is told in the error raised instead.
    met: list[KafkaError] = []
    admin = confluent_admin(kafka, {"log_level": 0, "error_cb": met.append})

    def answer(future):  # noqa: ANN001, ANN202 - a confluent future and its result
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            admin.poll(0)  # serves error_cb
            why = f"; the client met: {met[-1].str()}" if met else ""
            raise TimeoutError(f"Kafka did not say within {timeout:.0f} s how far consumer group {group} has read"
                               f"{why}") from None

    def group_known() -> None:
        try:
            answer(admin.describe_consumer_groups([group])[group])
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise

    # librdkafka crashes the whole process (SIGSEGV in rd_kafka_cgrp_op, confluentinc/librdkafka#5040) when an
    # answer to the offsets request says "not the coordinator", as a cluster's first answer about a group does. So
    # the group is asked after first with a request that fails cleanly, again while its coordinator settles.
    until_coordinator_settles(group_known)
    found = answer(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group])
    committed = {(tp.topic, tp.partition): tp.offset for tp in found.topic_partitions or []}
    extent = _extent(admin, topics, answer, timeout)
    return {tp: high - max(committed.get(tp, -1), low) for tp, (low, high) in sorted(extent.items())}


def topic_extent(
    kafka: KafkaAccess | str, topics: list[str], timeout: float = 30
) -> dict[tuple[str, int], tuple[int, int]]:
    """Each partition of `topics` (those that exist): the offset of its first record kept and its end offset."""
    admin = confluent_admin(kafka)

    def answer(future):  # noqa: ANN001, ANN202 - a confluent future and its result
        return future.result(timeout=timeout)

    return _extent(admin, topics, answer, timeout)


def _extent(admin, topics: list[str], answer, timeout: float) -> dict[tuple[str, int], tuple[int, int]]:  # noqa: ANN001
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    metadata = admin.list_topics(timeout=timeout)
    partitions = [TopicPartition(topic, p) for topic in topics if topic in metadata.topics
                  for p in metadata.topics[topic].partitions]  # fmt: skip
    if not partitions:
        return {}

    def offsets(spec: OffsetSpec) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout)
        return {(tp.topic, tp.partition): answer(future).offset for tp, future in futures.items()}

    low, high = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
    return {tp: (low[tp], high[tp]) for tp in high}

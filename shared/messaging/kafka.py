"""Kafka clients with the safety settings Berdaya relies on, and topic creation."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def safe_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """acks=all with idempotence: a broker retry never duplicates or reorders within one producer session.

    aiokafka defaults to enable_idempotence=False, so it is set here on purpose.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_days: int | None = None

    def configs(self) -> dict[str, str]:
        configs = {}
        if self.replication_factor >= 3:
            # With three copies, a write needs two of them: one broker may fail without losing acked events.
            configs["min.insync.replicas"] = "2"
        # An aggregate's topic is kept whole: a view is rebuilt by replaying it from the beginning.
        configs["retention.ms"] = "-1" if self.retention_days is None else str(self.retention_days * 24 * 3600 * 1000)
        return configs


def with_dead_letters(topics: list[str], partitions: int, replication_factor: int) -> list[TopicSpec]:
    """Each topic and its `.dlq`; dead letters are kept longer so someone can look at them."""
    specs = []
    for name in topics:
        specs.append(TopicSpec(name, partitions, replication_factor))
        specs.append(TopicSpec(f"{name}.dlq", 1, replication_factor, retention_days=30))
    return specs


async def ensure_topics(bootstrap_servers: str, specs: list[TopicSpec]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="berdaya-admin")
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


async def kafka_reachable(bootstrap_servers: str, timeout: float = 3.0) -> str | None:
    """None when a broker answers a metadata request, else why not (for /ready)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=timeout)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported as text
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.close()


def _admin(bootstrap_servers: str, security: dict | None = None):  # noqa: ANN202 - confluent's AdminClient
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, **(security or {})})


def active_group_members(bootstrap_servers: str, group: str, security: dict | None = None) -> int:
    """How many members a consumer group has now (0 when no process is consuming with it)."""
    from confluent_kafka import KafkaException

    admin = _admin(bootstrap_servers, security)  # kept referenced until the answer arrives
    futures = admin.describe_consumer_groups([group], request_timeout=15)
    try:
        return len(futures[group].result(timeout=30).members)
    except KafkaException:
        return 0


def forget_consumer_group(bootstrap_servers: str, group: str, security: dict | None = None) -> None:
    """Delete a consumer group's committed offsets, so its next start reads its topics from the beginning.

    Kafka refuses while the group has members, which protects a running service.
    """
    from confluent_kafka import KafkaError, KafkaException

    admin = _admin(bootstrap_servers, security)  # kept referenced until the answer arrives
    futures = admin.delete_consumer_groups([group], request_timeout=15)
    try:
        futures[group].result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
            raise  # a group that never committed anything already reads from the beginning


def consumer_lag(bootstrap_servers: str, group: str, topics: list[str], security: dict | None = None) -> dict[tuple[str, int], int]:
    """Records on each partition of `topics` that `group` has not committed yet (all of them if it never committed)."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

    admin = _admin(bootstrap_servers, security)  # kept referenced until the answer arrives
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    committed = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or []}
    probe = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"{group}.lag-probe",
                      "enable.auto.commit": False, **(security or {})})  # fmt: skip
    try:
        metadata = probe.list_topics(timeout=10)
        lag = {}
        for topic in topics:
            for partition in metadata.topics[topic].partitions if topic in metadata.topics else {}:
                low, high = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                done = committed.get((topic, partition), -1)
                lag[(topic, partition)] = high - max(done, low)
        return lag
    finally:
        probe.close()

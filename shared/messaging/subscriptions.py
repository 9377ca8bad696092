"""Wiring an EventConsumer to a topic through FastStream, with offsets committed only after the work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.messaging.consumer import EventConsumer, Record
from shared.observability import MessagingMetrics


async def _tolerant_parser(record: Any, original: Any) -> Any:
    """FastStream decodes headers as UTF-8 before any handler runs; a record with binary headers would
    otherwise fail forever before reaching the dead-letter logic. The original record is kept for the DLQ."""
    try:
        return await original(record)
    except UnicodeDecodeError:
        readable = dataclasses.replace(
            record, headers=[(k, v.decode("utf-8", errors="replace").encode()) for k, v in record.headers]
        )
        message = await original(readable)
        message.raw_message = record
        return message


@dataclass
class Subscription:
    """A consumer group on a topic. Declared when the app is built (so AsyncAPI documents it); the consumer
    itself is attached when the service starts, since it needs the database pool."""

    topic: str
    consumer_name: str
    event_types: tuple[str, ...]
    consumer: EventConsumer | None = None
    metrics: MessagingMetrics | None = None
    group: str = ""  # the Kafka consumer group; the consumer's name unless a namespace prefixes it

    @property
    def group_id(self) -> str:
        return self.group or self.consumer_name


def declare(broker: KafkaBroker, sub: Subscription) -> None:
    async def on_record(msg: KafkaMessage) -> None:
        if sub.consumer is None:
            raise RuntimeError(f"{sub.consumer_name} received a record before it was started")  # nack: redelivered
        raw = msg.raw_message
        await sub.consumer.handle(Record.from_kafka(raw))
        if sub.metrics is not None:
            _observe_lag(msg, raw, sub.consumer_name, sub.metrics)

    on_record.__name__ = f"{sub.consumer_name}_on_{sub.topic.replace('.', '_')}"
    broker.subscriber(
        sub.topic,
        group_id=sub.group_id,
        auto_offset_reset="earliest",
        # Commit after the transaction (or the dead-letter write); on an infrastructure failure seek back.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_tolerant_parser,
        title=f"{sub.consumer_name} <- {sub.topic}",
        description=f"{sub.consumer_name} applies {', '.join(sub.event_types)} once each (inbox), "
        f"retries failures, then dead-letters them to {sub.topic}.dlq.",
    )(on_record)


def subscribe(broker: KafkaBroker, consumer: EventConsumer, topic: str, metrics: MessagingMetrics) -> Subscription:
    """Declare and attach in one go, for a consumer that already exists."""
    sub = Subscription(topic, consumer.name, tuple(consumer.event_types), consumer, metrics)
    declare(broker, sub)
    return sub


def _observe_lag(msg: Any, raw: Any, consumer_name: str, metrics: MessagingMetrics) -> None:
    kafka_consumer = getattr(msg, "consumer", None)
    highwater = getattr(kafka_consumer, "highwater", None)
    if highwater is None:
        return  # the in-memory test broker has no real consumer
    end = highwater(TopicPartition(raw.topic, raw.partition))
    if end is not None:
        metrics.consumer_lag.labels(consumer_name, raw.topic, str(raw.partition)).set(max(0, end - raw.offset - 1))

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


async def _tolerant_parser(message: Any, original: Any) -> Any:
    """FastStream decodes headers as UTF-8 before any handler runs; a record with binary headers would
    otherwise fail forever before reaching the dead-letter logic. The original records are kept for the DLQ."""
    try:
        return await original(message)
    except UnicodeDecodeError:
        records = message if isinstance(message, tuple) else (message,)
        readable = tuple(
            dataclasses.replace(r, headers=[(k, v.decode("utf-8", errors="replace").encode()) for k, v in r.headers])
            for r in records
        )
        parsed = await original(readable if isinstance(message, tuple) else readable[0])
        parsed.raw_message = message
        return parsed


async def _no_decoding(message: Any, original: Any) -> Any:
    """The handler reads the raw records itself (they must reach the DLQ as they came); decoding them here would
    be wasted work, and would fail on the same undecodable headers."""
    return message.body


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


def declare(broker: KafkaBroker, sub: Subscription, max_records: int = 200) -> None:
    async def on_batch(msg: KafkaMessage) -> None:
        if sub.consumer is None:
            raise RuntimeError(f"{sub.consumer_name} received records before it was started")  # nack: redelivered
        raw = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        await sub.consumer.handle_batch([Record.from_kafka(r) for r in raw])
        if sub.metrics is not None:
            for last in {(r.topic, r.partition): r for r in raw}.values():
                _observe_lag(msg, last, sub.consumer_name, sub.metrics)

    on_batch.__name__ = f"{sub.consumer_name}_on_{sub.topic.replace('.', '_')}"
    broker.subscriber(
        sub.topic,
        group_id=sub.group_id,
        auto_offset_reset="earliest",
        # Batches: one database commit and one offset commit for up to max_records records.
        batch=True,
        max_records=max_records,
        batch_timeout_ms=100,
        # Commit after the transaction (or the dead-letter writes); on an infrastructure failure seek back.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_tolerant_parser,
        decoder=_no_decoding,
        title=f"{sub.consumer_name} <- {sub.topic}",
        description=f"{sub.consumer_name} applies {', '.join(sub.event_types)} once each (inbox), "
        f"retries failures, then dead-letters them to {sub.topic}.dlq.",
    )(on_batch)


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

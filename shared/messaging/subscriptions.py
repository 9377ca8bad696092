"""Wiring an EventConsumer to a topic through FastStream, with offsets committed only after the work."""

from __future__ import annotations

import dataclasses
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


def subscribe(broker: KafkaBroker, consumer: EventConsumer, topic: str, metrics: MessagingMetrics) -> None:
    async def on_record(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        await consumer.handle(Record.from_kafka(raw))
        _observe_lag(msg, raw, consumer.name, metrics)

    on_record.__name__ = f"{consumer.name}_on_{topic.replace('.', '_')}"
    broker.subscriber(
        topic,
        group_id=consumer.name,
        auto_offset_reset="earliest",
        # Commit after the transaction (or the dead-letter write); on an infrastructure failure seek back.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_tolerant_parser,
        title=f"{consumer.name} <- {topic}",
        description=f"{consumer.name} applies {', '.join(consumer.event_types)} once each (inbox), "
        f"retries failures, then dead-letters them to {topic}.dlq.",
    )(on_record)


def _observe_lag(msg: Any, raw: Any, consumer_name: str, metrics: MessagingMetrics) -> None:
    kafka_consumer = getattr(msg, "consumer", None)
    highwater = getattr(kafka_consumer, "highwater", None)
    if highwater is None:
        return  # the in-memory test broker has no real consumer
    end = highwater(TopicPartition(raw.topic, raw.partition))
    if end is not None:
        metrics.consumer_lag.labels(consumer_name, raw.topic, str(raw.partition)).set(max(0, end - raw.offset - 1))

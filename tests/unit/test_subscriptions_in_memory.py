"""Tests a subscription declared as the services declare theirs, on FastStream's in-memory broker: every record of a
batch reaches the consumer, and the batch handler refuses to run without FastStream's message."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from shared.contracts import Envelope, new_envelope
from shared.contracts.registry import NIBIssued
from shared.messaging.consumer import BatchTransaction, Delivery
from shared.messaging.subscriptions import Consumers, Subscription, declare

from .fakes import new_consumer

TOPIC = "registry.business.v1"


class Applied:
    """The events a batch applied, in order."""

    def __init__(self) -> None:
        self.event_ids: list[uuid.UUID] = []

    async def __call__(self, tx: BatchTransaction, deliveries: Sequence[Delivery]) -> None:
        self.event_ids += [d.envelope.event_id for d in deliveries]


def issued(n: int) -> bytes:
    payload = NIBIssued(business_id=uuid.uuid4(), business_version=2, application_id=None,
                        nib=f"{9_200_000_000_000 + n}", issued_on="2026-03-10", kecamatan_code="53.71.04")  # fmt: skip
    return new_envelope(payload, producer="registry", correlation_id=uuid.uuid4()).to_json_bytes()


def subscribed(applied: Applied) -> tuple[KafkaBroker, Consumers]:
    broker, consumers = KafkaBroker(), Consumers()
    consumers.by_name["funding-view"] = new_consumer(applied, ["NIBIssued"], name="funding-view")
    declare(broker, Subscription(TOPIC, "funding-view", (NIBIssued,)), consumers)
    return broker, consumers


async def test_every_record_of_a_batch_from_the_in_memory_broker_is_applied_in_order() -> None:
    applied = Applied()
    broker, consumers = subscribed(applied)
    values = [issued(n) for n in range(4)]
    async with TestKafkaBroker(broker) as test_broker:
        # The in-memory broker hands a batch over as a list; aiokafka's batches are tuples.
        await test_broker.publish_batch(*values[:3], topic=TOPIC)
        await test_broker.publish(values[3], topic=TOPIC)
    assert applied.event_ids == [Envelope.from_bytes(v).event_id for v in values]
    assert consumers.by_name["funding-view"].inbox == set(applied.event_ids)  # type: ignore[attr-defined]


async def test_the_batch_handler_called_outside_a_subscriber_says_so() -> None:
    broker, _ = subscribed(Applied())
    handler = broker.subscribers[0].calls[0].handler._original_call
    with pytest.raises(RuntimeError, match="funding-view: no message in FastStream's context"):
        await handler()

"""Reading a dead-letter topic on a real secured broker, as `berdaya dlq list|redrive` and the chaos checker do: every
dead letter or an error, never part of them presented as all; a topic named wrong is said to be wrong; and with
Kafka unreachable the command says so in a line instead of a traceback."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from berdaya import partners
from berdaya.stack.access import service_access
from berdaya.stack.process import free_ports
from shared.contracts.topics import dlq, namespaced, partner_topic
from shared.messaging.dead_letters import UnknownTopic, read_dead_letters, redrive
from shared.messaging.kafka import KafkaAccess, TopicSpec, ensure_topics, with_dead_letters
from tests.integration.test_funding_view import berdaya
from tests.support import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def free_port() -> int:
    return free_ports(1)[0]


async def put_dead_letters(kafka: KafkaAccess, topic: str, count: int, partitions: int) -> None:
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, f"letter {n}".encode(), key=f"k{n}".encode(), partition=n % partitions,
                                    headers=[("dlq.consumer", b"funding-view"), ("dlq.error", f"failed {n}".encode())])
                for n in range(count)]  # fmt: skip
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def test_every_dead_letter_of_a_large_topic_is_read_in_partition_and_offset_order(infra):  # noqa: ANN001
    topic = f"dl-{uuid.uuid4().hex[:8]}.registry.business.v1"
    await ensure_topics(infra.kafka, [TopicSpec(topic, 3, 1), TopicSpec(dlq(topic), 3, 1)])
    await put_dead_letters(infra.kafka, dlq(topic), 30_000, 3)

    letters = await read_dead_letters(infra.kafka, topic)

    assert len(letters) == 30_000
    assert [(d.partition, d.offset) for d in letters] == [(p, o) for p in range(3) for o in range(10_000)]
    assert {d.consumer for d in letters} == {"funding-view"} and letters[0].value == b"letter 0"


async def test_a_dead_letter_with_a_header_of_no_value_is_listed_and_redriven_with_its_headers_as_they_were(
    infra,  # noqa: ANN001
):
    topic = f"dl-{uuid.uuid4().hex[:8]}.partner.bri.outcomes.v1"
    await ensure_topics(infra.kafka, with_dead_letters([topic], 1, 1))
    theirs = [("x-trace", None), ("bin", b"\xff\xfe"), ("dup", b"1"), ("dup", b"2")]  # a partner's, as Kafka allows
    producer = AIOKafkaProducer(**infra.kafka.aiokafka(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(dlq(topic), b"{}", key=b"k", headers=[
            *theirs, ("dlq.consumer", b"funding-partners"), ("dlq.original_topic", topic.encode())])
    finally:
        await producer.stop()

    [letter] = await read_dead_letters(infra.kafka, topic)
    assert (letter.consumer, letter.headers["x-trace"]) == ("funding-partners", "")
    assert await redrive(infra.kafka, [letter]) == 1

    [again] = await read_topic(infra.kafka, topic, expect=1)
    assert list(again.headers) == [*theirs, ("redriven_from", f"{dlq(topic)}:0:0".encode())]


async def test_thousands_of_dead_letters_are_redriven_each_once_in_their_order_per_key(infra):  # noqa: ANN001
    topic = f"dl-{uuid.uuid4().hex[:8]}.registry.business.v1"
    await ensure_topics(infra.kafka, [TopicSpec(topic, 3, 1), TopicSpec(dlq(topic), 1, 1)])
    producer = AIOKafkaProducer(**infra.kafka.aiokafka(), acks="all", linger_ms=5)
    await producer.start()
    try:  # 2,500 dead letters of five businesses, in the order their consumer failed them
        await asyncio.gather(*[await producer.send(dlq(topic), f"{n}".encode(), key=f"business-{n % 5}".encode(),
                                                   headers=[("dlq.original_topic", topic.encode())])
                               for n in range(2500)])  # fmt: skip
    finally:
        await producer.stop()
    letters = await read_dead_letters(infra.kafka, topic)
    told: list[int] = []

    assert await redrive(infra.kafka, letters, progress=told.append) == 2500

    assert told == [1000, 2000, 2500]
    again = await read_topic(infra.kafka, topic, expect=2500)
    assert len(again) == 2500
    for key in {r.key for r in again}:
        values = [int(r.value) for r in sorted(again, key=lambda r: r.offset) if r.key == key]
        assert values == sorted(values) and len(set(values)) == 500, key


async def test_a_topic_named_wrong_is_refused_with_the_dead_letter_topics_there_are(infra):  # noqa: ANN001
    topic = f"dl-{uuid.uuid4().hex[:8]}.registry.business.v1"
    await ensure_topics(infra.kafka, with_dead_letters([topic], 1, 1))

    with pytest.raises(UnknownTopic) as wrong:
        await read_dead_letters(infra.kafka, topic.replace("business", "bisnis"))

    assert "there is no topic" in str(wrong.value) and dlq(topic) in str(wrong.value)


async def test_a_reader_kafka_lets_see_a_dead_letter_topic_but_not_read_it_gets_the_refusal_not_an_empty_list(
    infra,  # noqa: ANN001
):
    namespace = f"dl-{uuid.uuid4().hex[:8]}"
    await partners.add(infra.kafka, "bri", namespace=namespace, partitions=1)
    outcomes_dlq = dlq(namespaced(partner_topic("bri", "outcomes"), namespace))
    await put_dead_letters(infra.kafka, outcomes_dlq, 3, 1)
    # Funding writes dead letters of a partner's outcomes and may describe that topic, but never read it.
    funding = await asyncio.to_thread(service_access, infra.kafka, "funding", namespace)

    with pytest.raises(TopicAuthorizationFailedError):
        await read_dead_letters(funding, outcomes_dlq, patience=3)


def test_listing_dead_letters_with_kafka_unreachable_ends_in_one_line_saying_what_to_do(free_port: int):
    listed = berdaya("dlq", "list", "registry.business.v1", bootstrap=f"127.0.0.1:{free_port}")

    assert listed.returncode == 1
    assert "Traceback" not in listed.stdout + listed.stderr
    assert f"error: Kafka (127.0.0.1:{free_port}): KafkaConnectionError" in listed.stdout
    assert "run the command again" in listed.stdout

"""The raw producer the relay is measured against: aiokafka at its cheapest, record batches of one partition each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from shared.messaging.kafka import partition_for

# (topic, partition or None for the key's, key, value, headers)
Record = tuple[str, int | None, bytes, bytes, list[tuple[str, bytes]]]


async def warm(producer: AIOKafkaProducer, topics: Sequence[str]) -> None:
    """One record to every partition: a new topic's leaders are elected meanwhile, not on the clock."""
    for topic in topics:
        await asyncio.gather(*[await producer.send(topic, b"warm-up", partition=p)
                               for p in await producer.partitions_for(topic)])  # fmt: skip


async def produce(producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
    """Every record, acknowledged, as the relay hands records over (`OutboxRelay._enqueue`): filled into one batch per
    partition and sent a batch at a time, one future per batch. `send` per record makes a future each, about three
    times the producer's work; a baseline that slow would flatter the relay."""
    partitions = {t: sorted(await producer.partitions_for(t)) for t in {r[0] for r in records}}
    filling: dict[tuple[str, int], object] = {}
    acks = []

    async def submit(tp: tuple[str, int]) -> None:
        batch = filling.pop(tp)
        batch.close()  # type: ignore[attr-defined]
        acks.append(await producer.send_batch(batch, tp[0], partition=tp[1]))  # type: ignore[arg-type]

    for topic, partition, key, value, headers in records:
        tp = (topic, partition if partition is not None else partition_for(key, partitions[topic], ()))
        batch = filling.get(tp)
        if batch is not None and batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # type: ignore[attr-defined]
            await submit(tp)
            batch = None
        if batch is None:
            batch = filling[tp] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)  # type: ignore[attr-defined]
    for tp in list(filling):
        await submit(tp)
    await asyncio.gather(*acks)

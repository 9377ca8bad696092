"""Registry and training events for funding's integration tests, and producing them as the services would."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared.contracts import Envelope, EventPayload, new_envelope
from shared.contracts.registry import BusinessClosed, BusinessRegistered, NIBIssued
from shared.contracts.training import TrainingCompleted
from shared.messaging.kafka import KafkaAccess

KECAMATAN = [("Oebobo", "53.71.04", "5371030", "Fatululi", "53.71.04.1011"),
             ("Alak", "53.71.01", "5371010", "Namosain", "53.71.01.1001")]  # fmt: skip


def registered(i: int, *, youth: bool = True, kec: int = 0, kbli: str = "56102") -> BusinessRegistered:
    name, code, bps, kel, kel_code = KECAMATAN[kec]
    return BusinessRegistered(
        business_id=uuid.uuid4(), business_version=1, business_name=f"Usaha {i:04d}", kbli_code=kbli, kbli_version=2020,
        kecamatan=name, kecamatan_code=code, kecamatan_bps=bps, kelurahan=kel, kelurahan_code=kel_code, scale="micro",
        scale_basis="annual_sales", annual_sales_rupiah=100_000_000, youth_owned=youth, women_owned=i % 2 == 0,
        nib_status="none", contact_phone=f"+62812{i:08d}", status="active",
        registered_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i), source="import",
    )  # fmt: skip


def nib_issued(b: BusinessRegistered, version: int = 2) -> NIBIssued:
    return NIBIssued(business_id=b.business_id, business_version=version, application_id=uuid.uuid4(),
                     nib=f"{9100000000000 + int(b.business_name[-4:])}", issued_on=date(2026, 2, 1),
                     kecamatan_code=b.kecamatan_code)  # fmt: skip


def closed(b: BusinessRegistered, version: int) -> BusinessClosed:
    return BusinessClosed(business_id=b.business_id, business_version=version, reason="usaha tutup",
                          closed_at=datetime.now(UTC), kecamatan_code=b.kecamatan_code)  # fmt: skip


def completed(b: BusinessRegistered, topic: str, version: int) -> TrainingCompleted:
    return TrainingCompleted(business_id=b.business_id, participant_version=version, cohort_id=uuid.uuid4(),
                             topic=topic, completed_on=date(2026, 3, 1))  # fmt: skip


def envelopes(payloads: list[EventPayload], producer: str = "registry") -> list[Envelope]:
    return [new_envelope(p, producer=producer, correlation_id=uuid.uuid4()) for p in payloads]


async def produce(bootstrap: KafkaAccess | str, topic: str, events: list) -> None:  # noqa: ANN001
    """Payloads get a new envelope each; envelopes go as they are (sending one twice is a duplicate delivery)."""
    producer = AIOKafkaProducer(**KafkaAccess.of(bootstrap).aiokafka(), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for event in events:
            envelope = event if isinstance(event, Envelope) else envelopes([event])[0]
            futures.append(await producer.send(topic, envelope.to_json_bytes(), key=envelope.aggregate_id.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

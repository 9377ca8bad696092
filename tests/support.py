"""Helpers the integration and end-to-end tests share: databases, topics, and reading what is on Kafka."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from berdaya.stack.access import service_access
from berdaya.stack.local import ServiceProcess as RunningService
from berdaya.stack.local import run_service, throwaway_env
from berdaya.stack.postgres import database_url
from shared.messaging.kafka import KafkaAccess, TopicSpec, ensure_topics


@dataclass(frozen=True)
class Infra:
    postgres_url: str  # the server, database "postgres"
    kafka: KafkaAccess  # as the cluster's admin; each service started gets a user of its own
    base_dir: Path

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers


async def fresh_database(server_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_url, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def new_topic(bootstrap: KafkaAccess | str, prefix: str = "test", partitions: int = 3) -> str:
    """A topic (and its .dlq) no other test uses."""
    name = f"{prefix}.{uuid.uuid4().hex[:10]}.v1"
    await ensure_topics(bootstrap, [TopicSpec(name, partitions, 1), TopicSpec(f"{name}.dlq", 1, 1)])
    return name


async def read_topic(bootstrap: KafkaAccess | str, topic: str, *, expect: int, timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record on `topic` from the beginning, waiting until at least `expect` have arrived."""
    consumer = AIOKafkaConsumer(topic, **KafkaAccess.of(bootstrap).aiokafka(), auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)  # fmt: skip
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
            if len(records) >= expect:
                # Anything more (a duplicate we must notice) would already be in the same fetch or the next.
                for partition_records in (await consumer.getmany(timeout_ms=1000)).values():
                    records.extend(partition_records)
                break
    finally:
        await consumer.stop()
    return records


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0, interval: float = 0.2) -> bool:
    """Poll `check` until it holds; False if it never did (the caller asserts, so the failure names the condition)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(interval)
    return False


_serials = iter(range(1, 10_000))


def nik(birth: date, gender: str, region: str = "537104", serial: int | None = None) -> str:
    """A structurally valid NIK: region, DDMMYY with +40 on the day for women, serial."""
    day = birth.day + (40 if gender == "P" else 0)
    return f"{region}{day:02d}{birth:%m%y}{serial or next(_serials):04d}"


def registration(
    *, birth: date = date(1998, 5, 14), gender: str = "P", name: str | None = None, **overrides: object
) -> dict[str, object]:
    """A valid registration body with an owner no other call shares (unique NIK and phone)."""
    serial = next(_serials)
    body: dict[str, object] = {
        "business_name": name or f"Tenun Ikat Ina Ndao {serial}",
        "owner_name": "Yuliana Manafe",
        "owner_nik": nik(birth, gender, serial=serial),
        "owner_gender": gender,
        "owner_birth_date": birth.isoformat(),
        "phone": f"0813{serial:08d}",
        "kbli_code": "13122",
        "kbli_version": 2020,
        "kecamatan": "Oebobo",
        "kelurahan": "Fatululi",
        "annual_sales_rupiah": 80_000_000,
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------------------------------------------
# Services as real processes
# ---------------------------------------------------------------------------------------------------------------

TEST_SECRET = "end-to-end-secret-end-to-end-secret-end-to-end"


def service_env(bootstrap: KafkaAccess | str, namespace: str) -> dict[str, str]:
    return throwaway_env(bootstrap, namespace, TEST_SECRET)


def kafka_settings(admin: KafkaAccess, service: str, namespace: str = "") -> dict[str, object]:
    """Settings fields for a service run in the test's own process, as its own Kafka user."""
    own = service_access(admin, service, namespace)
    return {"kafka_bootstrap_servers": own.bootstrap_servers, "kafka_username": own.username,
            "kafka_password": own.password}  # fmt: skip


def start_service(name: str, env: dict[str, str], database_url: str, log_file: Path) -> RunningService:
    return run_service(name, env, database_url, log_file)

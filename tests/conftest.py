"""Test session infrastructure: a real PostgreSQL and a real Kafka, brought up once per session by the project's own
code (or reached through BERDAYA_TEST_POSTGRES_URL / BERDAYA_TEST_KAFKA, or started with testcontainers when
BERDAYA_TEST_INFRA=docker on a machine with a Docker engine)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import Infra, drop_database, fresh_database


def _local() -> Iterator[Infra]:
    from berdaya.stack.kafka import LocalKafka
    from berdaya.stack.postgres import LocalPostgres
    from berdaya.stack.process import free_port

    # Under /tmp so that PostgreSQL's own user can enter it when the tests run as root.
    base = Path(tempfile.mkdtemp(prefix="berdaya-test-", dir="/tmp"))
    base.chmod(0o755)
    postgres = LocalPostgres(base / "pg" / "data", free_port(), durable=False)
    kafka = LocalKafka(base / "kafka", port=free_port(), controller_port=free_port())
    try:
        postgres.start()
        kafka.start()
        yield Infra(postgres.url(), kafka.bootstrap_servers, base)
    finally:
        kafka.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


def _docker() -> Iterator[Infra]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as pg, KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
        base = Path(tempfile.mkdtemp(prefix="berdaya-test-"))
        yield Infra(pg.get_connection_url(), kafka.get_bootstrap_server(), base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    postgres_url, kafka = os.environ.get("BERDAYA_TEST_POSTGRES_URL"), os.environ.get("BERDAYA_TEST_KAFKA")
    if postgres_url and kafka:
        base = Path(tempfile.mkdtemp(prefix="berdaya-test-"))
        yield Infra(postgres_url, kafka, base)
        shutil.rmtree(base, ignore_errors=True)
    elif os.environ.get("BERDAYA_TEST_INFRA") == "docker":
        yield from _docker()
    else:
        yield from _local()


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A new, empty database for one test."""
    url = await fresh_database(infra.postgres_url)
    yield url
    await drop_database(infra.postgres_url, url)

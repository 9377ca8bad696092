"""Test session infrastructure: a real PostgreSQL and a real Kafka (secured: SCRAM users, ACLs, deny by default),
brought up once per session by the project's own code (or reached through BERDAYA_TEST_POSTGRES_URL and
BERDAYA_TEST_KAFKA, with BERDAYA_TEST_KAFKA_USERNAME/PASSWORD for its admin if it is secured, or started with
testcontainers when BERDAYA_TEST_INFRA=docker on a machine with a Docker engine)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.messaging.kafka import KafkaAccess
from tests.support import Infra, drop_database, fresh_database


def _local() -> Iterator[Infra]:
    from berdaya.stack.throwaway import throwaway_stack

    # Durability off: the tests check behaviour, not what survives a power cut.
    with throwaway_stack(durable=False) as stack:
        yield Infra(stack.postgres_url, stack.kafka, stack.base)


def _docker() -> Iterator[Infra]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as pg, KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
        base = Path(tempfile.mkdtemp(prefix="berdaya-test-"))
        yield Infra(pg.get_connection_url(), KafkaAccess(kafka.get_bootstrap_server()), base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    postgres_url, kafka = os.environ.get("BERDAYA_TEST_POSTGRES_URL"), os.environ.get("BERDAYA_TEST_KAFKA")
    if postgres_url and kafka:
        base = Path(tempfile.mkdtemp(prefix="berdaya-test-"))
        yield Infra(postgres_url, KafkaAccess(kafka, os.environ.get("BERDAYA_TEST_KAFKA_USERNAME"),
                                                os.environ.get("BERDAYA_TEST_KAFKA_PASSWORD")), base)
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

"""The services as real processes on the session's PostgreSQL and Kafka, each with its own database and all on
topics of their own (a namespace), so other tests' events never reach them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from shared.contracts.topics import namespaced
from tests.support import TEST_SECRET, Infra, RunningService, drop_database, fresh_database, service_env, start_service
from shared.messaging.kafka import KafkaAccess


@dataclass
class System:
    registry: RunningService
    funding: RunningService
    training: RunningService
    notifier: RunningService
    bootstrap: KafkaAccess | str
    namespace: str
    env: dict[str, str]
    tokens: TokenService

    def auth(self, role: str = "officer", sponsor_id: str | None = None) -> dict[str, str]:
        sponsor = uuid.UUID(sponsor_id) if sponsor_id else None
        return {"Authorization": f"Bearer {self.tokens.mint(f'e2e-{role}', [role], sponsor_id=sponsor)}"}

    def topic(self, name: str) -> str:
        return namespaced(name, self.namespace)

    def logs(self) -> str:
        return "".join(s.log_file.read_text() for s in (self.registry, self.funding, self.training, self.notifier))


@pytest.fixture
async def system(infra: Infra, tmp_path: Path) -> AsyncIterator[System]:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    env = service_env(infra.kafka, namespace)
    databases = {name: await fresh_database(infra.postgres_url) for name in ("registry", "funding", "training", "notifier")}
    services: dict[str, RunningService] = {}
    try:
        for name, url in databases.items():
            services[name] = start_service(name, env, url, tmp_path / f"{name}.log")
        yield System(services["registry"], services["funding"], services["training"], services["notifier"],
                     infra.kafka, namespace, env, TokenService(TEST_SECRET))  # fmt: skip
    finally:
        for service in services.values():
            stop_pid(service.pid)
        for url in databases.values():
            await drop_database(infra.postgres_url, url)

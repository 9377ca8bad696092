"""The services as real processes on the session's PostgreSQL and Kafka, each with its own database."""

from __future__ import annotations

import base64
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from berdaya.stack.process import free_port, spawn, stop_pid, wait_until
from shared.auth import TokenService
from shared.contracts.topics import namespaced
from tests.support import Infra, drop_database, fresh_database

REPO = Path(__file__).resolve().parents[2]
SECRET = "end-to-end-secret-end-to-end-secret-end-to-end"


@dataclass
class RunningService:
    name: str
    url: str
    log_file: Path


@dataclass
class System:
    registry: RunningService
    funding: RunningService
    notifier: RunningService
    bootstrap: str
    namespace: str
    env: dict[str, str]
    tokens: TokenService

    def auth(self, role: str = "officer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint('e2e', [role])}"}

    def topic(self, name: str) -> str:
        return namespaced(name, self.namespace)

    def logs(self) -> str:
        return "".join(s.log_file.read_text() for s in (self.registry, self.funding, self.notifier))


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
async def system(infra: Infra, tmp_path: Path) -> AsyncIterator[System]:
    databases = {name: await fresh_database(infra.postgres_url) for name in ("registry", "funding", "notifier")}
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"  # topics of their own: other tests' events never reach these services
    ports = {name: free_port() for name in databases}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "BERDAYA_JWT_SECRET": SECRET,
        "BERDAYA_RELAY_IDLE_WAIT_SECONDS": "0.2",
        "BERDAYA_TOPIC_NAMESPACE": namespace,
        "REGISTRY_NIK_DIGEST_KEY": base64.b64encode(os.urandom(32)).decode(),
        "REGISTRY_NIK_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PYTHONUNBUFFERED": "1",
    }
    for name, url in databases.items():
        env[f"{name.upper()}_DATABASE_URL"] = url
        env[f"{name.upper()}_HTTP_PORT"] = str(ports[name])
    processes, services = [], {}
    try:
        for name in databases:
            log_file = tmp_path / f"{name}.log"
            processes.append(spawn([sys.executable, "-m", f"services.{name}"], log_file, env=env, cwd=REPO))
            services[name] = RunningService(name, f"http://127.0.0.1:{ports[name]}", log_file)
        for service in services.values():
            wait_until(lambda s=service: _ready(s.url), 60, f"{service.name} /ready", service.log_file)
        yield System(services["registry"], services["funding"], services["notifier"], infra.bootstrap_servers, namespace,
                     env, TokenService(SECRET))
    finally:
        for process in processes:
            stop_pid(process.pid)
        for url in databases.values():
            await drop_database(infra.postgres_url, url)

"""A notifier assembled around the local gateways, for the integration tests: the real store on a real PostgreSQL
database, the real gateway clients pointed at the local servers, the real delivery worker (driven one pass at a time,
with a clock the test moves) and the real webhook routes served on a local port the gateways can post to.

Only what bootstrap.py does from settings is done here by hand, so a test can choose each piece."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.notifier import webhooks
from services.notifier.bootstrap import SERVICE, channel_infos
from services.notifier.channels import Gateway
from services.notifier.channels.email import Smtp
from services.notifier.channels.local import LocalOutboxFiles
from services.notifier.channels.sms import Zenziva
from services.notifier.channels.whatsapp import WhatsAppCloud
from services.notifier.delivery import DeliveryWorker, WorkerSettings
from services.notifier.domain.channels import AT_LEAST_ONCE, AT_MOST_ONCE, EMAIL, SMS, WHATSAPP, Available, Guarantee
from services.notifier.domain.delivery import RetryPolicy
from services.notifier.domain.planning import DeliveryRules
from services.notifier.domain.ratelimit import RateLimit
from services.notifier.domain.schedule import QuietHours
from services.notifier.figures import NotifierFigures
from services.notifier.recording import Deps
from services.notifier.queries import MessageQueries
from services.notifier.routes import NotifierContext
from services.notifier.store_pg import PgNotifierUnitOfWork
from shared.contracts import EventPayload, new_envelope
from shared.db import Database, migrate, open_database
from shared.unit_of_work import Cause, Publisher
from shared.web import BoundedInput, install_error_handlers
from tests.gateways import LocalServer
from tests.gateways.smtp import LocalSmtp
from tests.gateways.whatsapp_cloud import CloudApi
from tests.gateways.zenziva import ZenzivaApi

VERIFY_TOKEN = "verify-me-please"
SMS_TOKEN = "sms-inbound-token"


@dataclass
class Clock:
    """The notifier's wall clock, moved by the test (the gateways' own waits stay real)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 2, 0, tzinfo=UTC))  # 10.00 WITA

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Notifier:
    db: Database
    clock: Clock
    deps: Deps
    gateways: dict[str, Gateway]
    figures: NotifierFigures
    queries: MessageQueries
    files: LocalOutboxFiles
    webhook_url: str
    retry: RetryPolicy
    _workers: list[DeliveryWorker] = field(default_factory=list)

    def uow(self, cause: Cause | None = None) -> PgNotifierUnitOfWork:
        publisher: Publisher[object] = Publisher("notifier", lambda _: [], lambda _: "none")
        return PgNotifierUnitOfWork(self.db, publisher, cause or Cause.timer("notifier"))

    def worker(self, holder: str = "worker-1", *, lease: timedelta = timedelta(seconds=60), batch: int = 50,
               cls: type[DeliveryWorker] = DeliveryWorker, **kwargs: Any) -> DeliveryWorker:  # fmt: skip
        settings = WorkerSettings(holder=holder, batch=batch, concurrency=8, lease=lease, poll_seconds=0.1, retry=self.retry)
        worker = cls(self.uow, self.gateways, self.files, self.deps, settings, self.figures, jitter=lambda: 0.0, **kwargs)
        self._workers.append(worker)
        return worker

    async def handle(self, handler: Callable[..., Any], event: EventPayload, producer: str = "funding") -> uuid.UUID:
        """Run an event handler as the consumer does; returns the event id."""
        envelope = new_envelope(event, producer=producer, correlation_id=uuid.uuid4(), occurred_at=self.clock())
        await handler(event, self.uow(Cause.event(envelope)), self.deps)
        return envelope.event_id

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.db.fetch(sql, *args)

    async def deliveries(self, **where: Any) -> list[asyncpg.Record]:
        clause = " AND ".join(f"m.{k} = ${i}" for i, k in enumerate(where, start=1)) or "TRUE"
        return await self.db.fetch(
            "SELECT d.*, m.template, m.status AS message_status, m.channel AS message_channel FROM delivery d"
            f" JOIN message m ON m.id = d.message_id WHERE {clause} ORDER BY d.created_at, d.id", *where.values())  # fmt: skip

    async def message_status(self, message_id: uuid.UUID) -> str:
        return await self.db.fetchval("SELECT status FROM message WHERE id = $1", message_id)


def whatsapp_client(api: CloudApi, url: str, *, timeout: float = 2.0, guarantee: Guarantee = AT_MOST_ONCE,
                    rate: RateLimit = RateLimit(1000, 1000)) -> WhatsAppCloud:  # fmt: skip
    return WhatsAppCloud(token=SecretStr(api.token), phone_number_id=api.phone_number_id, base_url=url,
                         api_version="v21.0", template="berdaya_pesan", language="id", timeout=timeout,
                         guarantee=guarantee, rate=rate)  # fmt: skip


def zenziva_client(api: ZenzivaApi, url: str, *, timeout: float = 2.0, guarantee: Guarantee = AT_MOST_ONCE) -> Zenziva:
    return Zenziva(userkey=SecretStr(api.userkey), passkey=SecretStr(api.passkey), base_url=url, timeout=timeout,
                   guarantee=guarantee, rate=RateLimit(1000, 1000))  # fmt: skip


def smtp_client(smtp: LocalSmtp, *, timeout: float = 5.0, guarantee: Guarantee = AT_LEAST_ONCE) -> Smtp:
    return Smtp(host="127.0.0.1", port=smtp.port, username=None, password=None, security="none",
                sender="Berdaya Kota Kupang <berdaya@kupangkota.go.id>", domain="notifier.berdaya.test",
                timeout=timeout, guarantee=guarantee, rate=RateLimit(1000, 1000))  # fmt: skip


@contextlib.asynccontextmanager
async def notifier(database_url: str, gateways: Mapping[str, Gateway] | None = None, *,
                   app_secret: str | None = "test-app-secret", quiet: QuietHours = QuietHours(),
                   outbox_dir: Path | None = None, retry: RetryPolicy = RetryPolicy(10, 600, 4),
                   clock: Clock | None = None,
                   phone_number_id: str = CloudApi.phone_number_id) -> AsyncIterator[Notifier]:  # fmt: skip
    """The notifier's parts on a fresh database, its webhooks served on a free port."""
    db = await open_database(database_url, max_size=20)
    async with db.acquire() as conn:
        await migrate(conn, SERVICE.migrations())
    gateways = dict(gateways or {})
    clock = clock or Clock()
    rules = DeliveryRules(available=Available(whatsapp=WHATSAPP in gateways, sms=SMS in gateways, email=EMAIL in gateways),
                          quiet=quiet)  # fmt: skip
    deps = Deps(clock=clock, rules=rules)
    files = LocalOutboxFiles(outbox_dir)
    figures = NotifierFigures(CollectorRegistry(), db)
    queries = MessageQueries(db)
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=10 * 1024 * 1024)  # as every service's app has it
    app.include_router(webhooks.router)
    server = LocalServer(app)
    found = Notifier(db, clock, deps, gateways, figures, queries, files, f"{server.url}/webhooks/whatsapp", retry)
    app.state.service = NotifierContext(
        queries=queries, deps=deps, unit_of_work=found.uow, figures=figures, channels=channel_infos(gateways, files),
        whatsapp_app_secret=app_secret.encode() if app_secret else None, whatsapp_phone_number_id=phone_number_id,
        whatsapp_verify_token=VERIFY_TOKEN, sms_inbound_token=SMS_TOKEN,
    )  # fmt: skip
    try:
        async with server:
            yield found
    finally:
        for gateway in gateways.values():
            await gateway.close()
        await db.close()


@pytest.fixture
async def cloud() -> AsyncIterator[tuple[CloudApi, LocalServer]]:
    """The WhatsApp Cloud API on a local port; at the end, its status callbacks still on their way are let through."""
    api = CloudApi()
    async with LocalServer(api.app) as server:
        yield api, server
        await api.settle()


@pytest.fixture
async def sms() -> AsyncIterator[tuple[ZenzivaApi, LocalServer]]:
    """Zenziva's console API on a local port."""
    api = ZenzivaApi()
    async with LocalServer(api.app) as server:
        yield api, server

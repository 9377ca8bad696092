"""The lifecycle every service shares: pool, migrations, topics, outbox relay, consumers, and the FastAPI app around them.

A service's own bootstrap.py is its composition root; it hands this module its migrations, topics,
routes and consumers, and gets back an ASGI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import asyncpg
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CollectorRegistry
from pydantic import create_model

from shared.auth import TokenService
from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import Envelope
from shared.contracts.topics import namespaced, topic_for
from shared.db import Migration, create_pool, load_migrations, migrate
from shared.messaging.consumer import EventConsumer, KafkaDeadLetters
from shared.messaging.kafka import ensure_topics, kafka_reachable, safe_producer, with_dead_letters
from shared.messaging.outbox import OutboxRelay
from shared.messaging.subscriptions import Subscription, declare
from shared.observability import MessagingMetrics, configure_logging
from shared.settings import PlatformSettings
from shared.web import Platform, ScrapeHook, install_error_handlers, platform_routes

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The live infrastructure of one service process, handed to its routes and consumers."""

    name: str
    settings: PlatformSettings
    pool: asyncpg.Pool
    metrics: MessagingMetrics
    broker: KafkaBroker
    relay: OutboxRelay

    def topic(self, name: str) -> str:
        return namespaced(name, self.settings.topic_namespace)

    def route(self, envelope: Envelope) -> str:
        """The topic an event goes to: its aggregate's, in this deployment's namespace."""
        return self.topic(topic_for(envelope.aggregate_type))


# Builds a service's consumers, by consumer name, once the pool exists.
ConsumerFactory = Callable[[Runtime, KafkaDeadLetters], dict[str, EventConsumer]]


def all_migrations(service_package: str, service: str) -> list[Migration]:
    return load_migrations("shared.messaging.migrations", "messaging") + load_migrations(
        f"{service_package}.migrations", service
    )


def documented_envelope(topic: str) -> type[Envelope]:
    """An envelope model whose payload is the union of the payloads on `topic`, for the AsyncAPI document."""
    models = [m for m in CATALOG.models() if topic_for(m.aggregate_type) == topic]
    payload_type: Any = Union[tuple(models)] if len(models) > 1 else models[0]  # noqa: UP007
    name = "".join(part.capitalize() for part in topic.replace(".", "_").split("_")) + "Envelope"
    return create_model(name, __base__=Envelope, payload=(payload_type, ...))


def new_broker(
    name: str,
    bootstrap_servers: str,
    registry: CollectorRegistry,
    produces: Sequence[str],
    subscriptions: Sequence[Subscription],
    namespace: str = "",
) -> KafkaBroker:
    broker = KafkaBroker(
        bootstrap_servers,
        client_id=f"berdaya-{name}",
        acks="all",
        enable_idempotence=True,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=name)],
        # Per-message "Received/Processed" lines would drown the log at import volumes; metrics count them.
        log_level=logging.DEBUG,
        description=f"Berdaya {name} service",
    )
    for topic in produces:
        # Publishing goes through the outbox relay; these declarations document the topic in AsyncAPI.
        broker.publisher(
            namespaced(topic, namespace),
            title=f"{name} -> {topic}",
            description=f"Events published by {name} through its transactional outbox; key = aggregate id.",
            schema=documented_envelope(topic),
        )
    for subscription in subscriptions:
        declare(broker, subscription)
    return broker


def docs_app(name: str, produces: Sequence[str], subscriptions: Sequence[Subscription]) -> FastStream:
    """A FastStream app that only describes the service's topics: `faststream docs gen services.X.bootstrap:asyncapi`."""
    copies = [Subscription(s.topic, s.consumer_name, s.event_types) for s in subscriptions]
    broker = new_broker(name, "127.0.0.1:9092", CollectorRegistry(), produces, copies)
    return FastStream(broker, specification=AsyncAPI(broker, title=f"Berdaya {name} events", version="1.0"))


def service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: PlatformSettings,
    migrations: list[Migration],
    produces: Sequence[str],
    subscriptions: Sequence[Subscription] = (),
    routers: Sequence[APIRouter] = (),
    consumers: ConsumerFactory | None = None,
    scrape_hooks: Callable[[Runtime], list[ScrapeHook]] = lambda _: [],
    on_start: Callable[[Runtime, FastAPI], None] = lambda *_: None,
    background: Callable[[Runtime], list[Callable[[asyncio.Event], Awaitable[None]]]] = lambda _: [],
) -> FastAPI:
    configure_logging(name, settings.log_level)
    registry = CollectorRegistry()
    # Fresh copies: the same declarations may back several apps (tests build more than one per process).
    ns = settings.topic_namespace
    subscriptions = [
        Subscription(namespaced(s.topic, ns), s.consumer_name, s.event_types, group=namespaced(s.consumer_name, ns))
        for s in subscriptions
    ]
    broker = new_broker(name, settings.kafka_bootstrap_servers, registry, produces, subscriptions, ns)
    consumes = [s.topic for s in subscriptions]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_size)
        stop = asyncio.Event()
        dlq_producer = None
        relay_task = None
        tasks: list[asyncio.Task] = []
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn, migrations)
            if applied:
                log.info("applied migrations %s", ", ".join(f"{m.namespace}/{m.version:03d}" for m in applied))
            await ensure_topics(
                settings.kafka_bootstrap_servers,
                with_dead_letters(
                    sorted({namespaced(t, ns) for t in produces} | set(consumes)), settings.topic_partitions, settings.topic_replication_factor
                ),
            )
            metrics = MessagingMetrics(registry)
            relay = OutboxRelay(
                pool=pool,
                dsn=settings.database_url,
                producer_factory=lambda: safe_producer(settings.kafka_bootstrap_servers, f"berdaya-{name}-relay"),
                metrics=metrics,
                batch_size=settings.relay_batch_size,
                idle_wait=settings.relay_idle_wait_seconds,
            )
            runtime = Runtime(name, settings, pool, metrics, broker, relay)
            app.state.runtime = runtime
            app.state.platform.readiness.update(
                database=lambda: _database_ok(pool),
                kafka=lambda: kafka_reachable(settings.kafka_bootstrap_servers),
            )
            app.state.platform.scrape_hooks.extend([relay.refresh_backlog, *scrape_hooks(runtime)])
            on_start(runtime, app)
            relay_task = asyncio.create_task(relay.run(stop), name=f"{name}-outbox-relay")
            tasks = [asyncio.create_task(job(stop)) for job in background(runtime)]
            if subscriptions and consumers is not None:
                dlq_producer = safe_producer(settings.kafka_bootstrap_servers, f"berdaya-{name}-dlq")
                await dlq_producer.start()
                built = consumers(runtime, KafkaDeadLetters(dlq_producer))
                for subscription in subscriptions:
                    subscription.consumer, subscription.metrics = built[subscription.consumer_name], metrics
                await broker.start()
            log.info("%s ready on http://%s:%d", name, settings.http_host, settings.http_port)
            yield
        finally:
            stop.set()
            if subscriptions and consumers is not None:
                await broker.stop()
            if relay_task is not None:
                await relay_task
            await asyncio.gather(*tasks, return_exceptions=True)
            if dlq_producer is not None:
                await dlq_producer.stop()
            await pool.close()

    app = FastAPI(title=title, description=description, version="1.0", lifespan=lifespan)
    app.state.platform = Platform(tokens=TokenService(settings.jwt_secret.get_secret_value(), settings.jwt_issuer), metrics=registry)
    install_error_handlers(app)
    app.include_router(platform_routes())
    app.include_router(asyncapi_routes(name, broker))
    for router in routers:
        app.include_router(router)
    return app


def asyncapi_routes(name: str, broker: KafkaBroker) -> APIRouter:
    router = APIRouter(tags=["operations"])

    def document() -> Any:
        return AsyncAPI(broker, title=f"Berdaya {name} events", version="1.0").to_specification()

    @router.get("/asyncapi.json", summary="AsyncAPI 3.0 document of the topics this service publishes and consumes")
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(document().to_jsonable())

    @router.get("/asyncapi", response_class=HTMLResponse, include_in_schema=False)
    async def asyncapi_html() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(document(), try_it_out_path=None))

    return router


async def _database_ok(pool: asyncpg.Pool) -> str | None:
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=3)
        return None
    except Exception as exc:  # noqa: BLE001 - reported as text by /ready
        return f"{type(exc).__name__}: {exc}"

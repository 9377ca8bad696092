"""The host every service runs in: pool, migrations, topics, outbox relay, consumers, housekeeping, and the FastAPI
app around them.

A service describes itself once (`ServiceDefinition`: its topics, subscriptions, routes) and says in one `build`
step what it makes of the running infrastructure (`Parts`: the context its routes use, what each consumer does,
its background jobs). Its bootstrap.py is that description, read top to bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Union

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics
from pydantic import create_model

from shared.auth import TokenService
from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.topics import TOPIC_BY_AGGREGATE, namespaced, topic_for, topic_of
from shared.db import Database, DatabaseMetrics, Migration, load_migrations, migrate, open_database
from shared.messaging import inbox
from shared.messaging.catch_up import PgCatchUp
from shared.messaging.consumer import Apply, EventConsumer, RetryPolicy
from shared.messaging.dead_letters import KafkaDeadLetters
from shared.messaging.kafka import ensure_topics, kafka_reachable, safe_producer, with_dead_letters
from shared.messaging.lag import KafkaLagProbe, LagMonitor, LagSettings, Watched, lag_job
from shared.messaging.outbox import prune_published
from shared.messaging.relay import OutboxRelay
from shared.messaging.subscriptions import GRACEFUL_STOP_SECONDS, Consumers, Subscription, declare_all
from shared.observability import (HttpMetrics, HttpMetricsMiddleware, LagMetrics, MessagingMetrics, configure_logging,
                                  scrub)  # fmt: skip
from shared.settings import PlatformSettings
from shared.unit_of_work import Publisher
from shared.web import PROBLEM_RESPONSES, BoundedInput, Platform, Problem, ScrapeHook, install_error_handlers, platform_routes

log = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Awaitable[None]]  # a background loop that returns once the event is set


@dataclass
class Runtime:
    """The live infrastructure of one service process, handed to its build step."""

    name: str
    settings: PlatformSettings
    db: Database
    metrics: MessagingMetrics

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def topic(self, name: str) -> str:
        return namespaced(name, self.settings.topic_namespace)

    def route(self, envelope: Envelope) -> str:
        """The topic an event goes to: its aggregate's (or its partner's), in this deployment's namespace."""
        return self.topic(topic_of(envelope.aggregate_type, envelope.payload))

    def publisher(self, translate: Callable[[Any], Sequence[EventPayload]]) -> Publisher:
        return Publisher(self.name, translate, self.route)


@dataclass
class Parts:
    """What a service makes of its runtime."""

    context: object  # what its routes read from request.app.state.service
    consumers: dict[str, Apply] = field(default_factory=dict)  # by consumer name (as in its subscriptions)
    jobs: list[Job] = field(default_factory=list)
    scrape_hooks: list[ScrapeHook] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    description: str
    package: str  # e.g. services.funding; its migrations live in <package>.migrations
    produces: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]
    routers: tuple[APIRouter, ...]
    build: Callable[[Runtime], Parts]

    def migrations(self) -> list[Migration]:
        return load_migrations("shared.messaging.migrations", "messaging") + load_migrations(
            f"{self.package}.migrations", self.name
        )


def periodic(name: str, interval: float, work: Callable[[], Awaitable[object]]) -> Job:
    """A job doing `work` every `interval` seconds; it survives an outage and tries again at the next tick."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await work()
            except Exception as exc:  # noqa: BLE001 - a background job must outlive any outage
                log.warning("%s: %s", name, scrub(f"{type(exc).__name__}: {exc}"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    return run


# ---------------------------------------------------------------------------------------------------------------
# Kafka declarations and the AsyncAPI document
# ---------------------------------------------------------------------------------------------------------------


def documented_envelope(topic: str) -> type[Envelope]:
    """An envelope model whose payload is the union of the payloads on `topic`, for the AsyncAPI document."""
    models = [m for m in CATALOG.models() if m.aggregate_type in TOPIC_BY_AGGREGATE and topic_for(m.aggregate_type) == topic]
    payload_type: Any = Union[tuple(models)] if len(models) > 1 else models[0]  # noqa: UP007
    name = "".join(part.capitalize() for part in topic.replace(".", "_").split("_")) + "Envelope"
    return create_model(name, __base__=Envelope, payload=(payload_type, ...))


def new_broker(service: ServiceDefinition, settings: PlatformSettings, registry: CollectorRegistry,
               consumers: Consumers) -> KafkaBroker:  # fmt: skip
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=settings.kafka_access().faststream(),
        client_id=f"berdaya-{service.name}",
        # A pattern subscription (funding's partner outcomes) sees a partner admitted while it runs at the next
        # metadata refresh: 30 s rather than aiokafka's 5 minutes.
        metadata_max_age_ms=30_000,
        graceful_timeout=GRACEFUL_STOP_SECONDS,
        acks="all",
        enable_idempotence=True,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=service.name)],
        # Per-message "Received/Processed" lines would drown the log at import volumes; metrics count them.
        log_level=logging.DEBUG,
        description=f"Berdaya {service.name} service",
    )
    for topic in service.produces:
        # Publishing goes through the outbox relay; these declarations document the topic in AsyncAPI.
        broker.publisher(
            namespaced(topic, settings.topic_namespace),
            title=f"{service.name} -> {topic}",
            description=f"Events published by {service.name} through its transactional outbox; key = aggregate id.",
            schema=documented_envelope(topic),
        )
    declare_all(broker, [s.in_namespace(settings.topic_namespace) for s in service.subscriptions], consumers)
    return broker


def asyncapi_app(service: ServiceDefinition) -> FastStream:
    """Only describes the service's topics: `faststream docs gen services.X.bootstrap:asyncapi`."""
    placeholder = "-" * 32  # the document needs no secret
    settings = PlatformSettings(BERDAYA_JWT_SECRET=placeholder, BERDAYA_PSEUDONYM_KEY=placeholder)
    broker = new_broker(service, settings, CollectorRegistry(), Consumers())
    return FastStream(broker, specification=AsyncAPI(broker, title=f"Berdaya {service.name} events", version="1.0"))


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


# ---------------------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------------------


# A batch (a pledge's 35,000 offers, an import's chunk) makes hundreds of thousands of objects that live until it
# commits. At CPython's default thresholds (700, 10, 10) the cyclic collector walks them again and again: a quarter
# of matching's Python time. Reference counting frees almost everything anyway; the collector is for the rare cycle.
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """What start-up made (modules, models, schemas) is frozen out of the collector's walks, and the collector runs
    less often. For a service's own process only: a test process starting apps would keep its cyclic garbage."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(app: FastAPI, settings: PlatformSettings) -> None:
    """Run a service as its own process (`python -m services.<name>`)."""
    tune_gc()
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")


def create_service_app(service: ServiceDefinition, settings: PlatformSettings) -> FastAPI:
    configure_logging(service.name, settings.log_level)
    registry = CollectorRegistry()
    http_metrics = HttpMetrics(registry)
    consumers = Consumers()
    broker = new_broker(service, settings, registry, consumers)
    ns = settings.topic_namespace
    subscriptions = [s.in_namespace(ns) for s in service.subscriptions]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await open_database(
            settings.database_url, max_size=settings.db_pool_size, acquire_timeout=settings.db_acquire_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms, metrics=DatabaseMetrics(registry),
            custom_plans=settings.db_custom_plans,
        )  # fmt: skip
        stop = asyncio.Event()
        dlq_producer = None
        tasks: list[asyncio.Task] = []
        try:
            async with db.acquire() as conn:
                applied = await migrate(conn, service.migrations())
            if applied:
                log.info("applied migrations %s", ", ".join(f"{m.namespace}/{m.version:03d}" for m in applied))
            # A pattern's topics are made by whoever adds them (a partner's, by `berdaya partner add`).
            topics = sorted({namespaced(t, ns) for t in service.produces} | {s.topic for s in subscriptions if not s.pattern})
            await ensure_topics(settings.kafka_access(), with_dead_letters(
                topics, settings.topic_partitions, settings.topic_replication_factor))  # fmt: skip
            metrics = MessagingMetrics(registry)
            consumers.metrics = metrics
            runtime = Runtime(service.name, settings, db, metrics)
            relay = OutboxRelay(
                db=db, dsn=settings.database_url, metrics=metrics, batch_size=settings.relay_batch_size,
                producer_factory=lambda: safe_producer(settings.kafka_access(), f"berdaya-{service.name}-relay"),
                idle_wait=settings.relay_idle_wait_seconds, lease_seconds=settings.relay_lease_seconds,
            )  # fmt: skip
            parts = service.build(runtime)
            http_metrics.prime(app)
            app.state.runtime = runtime
            app.state.service = parts.context
            platform: Platform = app.state.platform
            platform.readiness.update(database=lambda: db.unreachable(3),
                                      kafka=lambda: kafka_reachable(settings.kafka_access()))  # fmt: skip
            platform.scrape_hooks.extend([relay.refresh_backlog, *parts.scrape_hooks])
            housekeeping = periodic(f"{service.name} housekeeping", settings.housekeeping_interval_seconds,
                                    lambda: _housekeeping(db, settings))  # fmt: skip
            lag = LagSettings()
            # Every consuming service watches every consumer group of its deployment: a stopped one's lag still shows.
            watch_lag = [lag_job(LagMonitor(
                KafkaLagProbe(settings.kafka_access(), client_id=f"berdaya-{service.name}-lag", timeout=lag.timeout_seconds),
                LagMetrics(registry), own=[Watched(s.consumer, s.group_id, s.topic, s.pattern) for s in subscriptions],
                namespace=ns), lag.interval_seconds, lag.timeout_seconds)] if subscriptions else []  # fmt: skip
            tasks = [asyncio.create_task(job(stop)) for job in (relay.run, housekeeping, *watch_lag, *parts.jobs)]
            if subscriptions:
                dlq_producer = safe_producer(settings.kafka_access(), f"berdaya-{service.name}-dlq")
                await dlq_producer.start()
                policy = RetryPolicy(
                    max_attempts=settings.consumer_max_attempts, backoff=settings.consumer_retry_backoff_seconds,
                    handler_timeout=settings.consumer_handler_timeout_seconds,
                    transient_budget=settings.consumer_transient_budget_seconds,
                )  # fmt: skip
                for sub in subscriptions:
                    metrics.prime(sub.consumer, None if sub.pattern else sub.topic)
                    consumers.by_name[sub.consumer] = EventConsumer(
                        name=sub.consumer, db=db, apply=parts.consumers[sub.consumer], event_types=sub.event_types,
                        dead_letters=KafkaDeadLetters(dlq_producer), metrics=metrics, policy=policy,
                        catch_up=PgCatchUp(db),
                    )  # fmt: skip
                await broker.start()
            log.info("%s ready on http://%s:%d", service.name, settings.http_host, settings.http_port)
            yield
        finally:
            stop.set()
            if subscriptions:
                await broker.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            if dlq_producer is not None:
                await dlq_producer.stop()
            await db.close()

    app = FastAPI(title=service.title, description=service.description, version="1.0", lifespan=lifespan)
    app.state.platform = Platform(tokens=TokenService(settings.jwt_secret.get_secret_value(), settings.jwt_issuer),
                                  metrics=registry)  # fmt: skip
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=settings.max_body_bytes)
    # Outermost, so requests refused before routing (413, a NUL) are counted against their route too.
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics, router_app=lambda: app)
    ProcessCollector(registry=registry)  # CPU, memory, open files, start time: a restart shows
    disable_created_metrics()  # no x_created gauge beside every counter and histogram: half the series per scrape
    app.include_router(platform_routes(), responses=_problems(401, 403, 422))
    app.include_router(asyncapi_routes(service.name, broker))
    for router in service.routers:
        app.include_router(router, responses=_problems(400, 401, 403, 413, 422, 503))
    app.openapi = lambda: _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: PROBLEM_RESPONSES[s] for s in statuses}


def _openapi_with_problems(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents its own 422 body; every Berdaya error is a problem document instead."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}))
    components["Problem"].pop("$defs", None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = PROBLEM_RESPONSES[422]
    app.openapi_schema = schema
    return schema


async def _housekeeping(db: Database, settings: PlatformSettings) -> None:
    outbox_rows = await prune_published(db, timedelta(days=settings.outbox_retention_days))
    inbox_rows = await inbox.prune(db, timedelta(days=settings.inbox_retention_days))
    if outbox_rows or inbox_rows:
        log.info("pruned %d published outbox rows and %d inbox rows past their retention", outbox_rows, inbox_rows)

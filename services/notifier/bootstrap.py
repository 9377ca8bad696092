"""Composition root of the notifier: what it consumes, its routes, and what it builds from the running infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI

from services.notifier import subscribers
from services.notifier.handlers import Deps
from services.notifier.queries import MessageQueries
from services.notifier.routes import NotifierContext, router
from services.notifier.settings import NotifierSettings
from services.notifier.store import PgNotifierUnitOfWork
from shared.messaging.consumer import BatchTransaction
from shared.service import Parts, Runtime, ServiceDefinition, asyncapi_app, create_service_app
from shared.unit_of_work import Cause


def build(runtime: Runtime) -> Parts:
    deps = Deps(clock=lambda: datetime.now(UTC))
    publisher = runtime.publisher(lambda _: [])  # the notifier publishes nothing

    def joined(tx: BatchTransaction, cause: Cause) -> PgNotifierUnitOfWork:
        return PgNotifierUnitOfWork(tx, publisher, cause)

    return Parts(context=NotifierContext(MessageQueries(runtime.db)), consumers=subscribers.consumers(joined, deps))


SERVICE = ServiceDefinition(
    name="notifier",
    title="Berdaya notifier",
    description="Records one message per event an owner should hear of, in Bahasa Indonesia, times in WITA.",
    package="services.notifier",
    produces=(),
    subscriptions=subscribers.SUBSCRIPTIONS,
    routers=(router,),
    build=build,
)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or NotifierSettings())  # type: ignore[call-arg]


# For `faststream docs gen services.notifier.bootstrap:asyncapi`.
asyncapi = asyncapi_app(SERVICE)

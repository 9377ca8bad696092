"""Composition root of the notifier: its consumer, its routes, and the shared host around them."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI

from services.notifier import subscribers
from services.notifier.handlers import Deps
from services.notifier.routes import router
from services.notifier.settings import NotifierSettings
from services.notifier.store import MessageQueries
from shared.messaging.consumer import KafkaDeadLetters
from shared.service import Runtime, all_migrations, docs_app, service_app


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()  # type: ignore[call-arg]
    deps = Deps(clock=lambda: datetime.now(UTC))

    def on_start(runtime: Runtime, app: FastAPI) -> None:
        app.state.notifier_queries = MessageQueries(runtime.pool)

    def consumers(runtime: Runtime, dead_letters: KafkaDeadLetters):  # noqa: ANN202
        return subscribers.consumers(
            runtime.pool, dead_letters, runtime.metrics, deps,
            max_attempts=settings.consumer_max_attempts, backoff=settings.consumer_retry_backoff_seconds,
        )  # fmt: skip

    return service_app(
        name="notifier",
        title="Berdaya notifier",
        description="Records one message per event an owner should hear of, in Bahasa Indonesia, times in WITA.",
        settings=settings,
        migrations=all_migrations("services.notifier", "notifier"),
        produces=[],
        subscriptions=subscribers.SUBSCRIPTIONS,
        routers=[router],
        consumers=consumers,
        on_start=on_start,
    )


# For `faststream docs gen services.notifier.bootstrap:asyncapi`.
asyncapi = docs_app("notifier", [], subscribers.SUBSCRIPTIONS)

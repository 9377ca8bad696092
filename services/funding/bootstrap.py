"""Composition root of funding: its consumers, routes, figures and the sweeper that lets time pass."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from services.funding import handlers, subscribers
from services.funding.figures import FundingFigures
from services.funding.handlers import Deps
from services.funding.routes import FundingContext, router
from services.funding.settings import FundingSettings
from services.funding.store import FundingQueries, PgFundingUnitOfWork
from shared.contracts.topics import FUNDING_PLEDGE
from shared.messaging.consumer import KafkaDeadLetters
from shared.messaging.transaction import PgTransaction
from shared.observability import scrub
from shared.reference.wilayah import kota_kupang
from shared.service import Runtime, all_migrations, docs_app, service_app

log = logging.getLogger(__name__)


def create_app(settings: FundingSettings | None = None) -> FastAPI:
    settings = settings or FundingSettings()  # type: ignore[call-arg]
    wilayah = kota_kupang()
    state: dict[str, object] = {}

    def deps_for(runtime: Runtime) -> Deps:
        if "deps" not in state:
            figures = FundingFigures(runtime.metrics.registry)
            state["figures"] = figures
            state["deps"] = Deps(wilayah=wilayah, clock=lambda: datetime.now(UTC), offer_days=settings.offer_days,
                                 matched=figures.matched)  # fmt: skip
        return state["deps"]  # type: ignore[return-value]

    def unit_of_work(runtime: Runtime):  # noqa: ANN202
        return lambda correlation=None: PgFundingUnitOfWork(
            PgTransaction(runtime.pool, route=runtime.route), correlation_id=correlation or uuid.uuid4()
        )

    def on_start(runtime: Runtime, app: FastAPI) -> None:
        app.state.funding = FundingContext(deps_for(runtime), FundingQueries(runtime.pool), wilayah, unit_of_work(runtime))

    def consumers(runtime: Runtime, dead_letters: KafkaDeadLetters):  # noqa: ANN202
        return subscribers.consumers(
            runtime.pool, dead_letters, runtime.metrics, deps_for(runtime), runtime.route,
            max_attempts=settings.consumer_max_attempts, backoff=settings.consumer_retry_backoff_seconds,
        )  # fmt: skip

    def sweeper(runtime: Runtime):  # noqa: ANN202
        async def run(stop: asyncio.Event) -> None:
            # Offers expire and windows open and close with time, not with events; every instance sweeps, and the
            # pledge locks make that safe.
            factory = unit_of_work(runtime)
            while not stop.is_set():
                try:
                    await handlers.expire_due_offers(factory, deps_for(runtime))
                    await handlers.follow_pledge_windows(factory, deps_for(runtime))
                except Exception as exc:  # noqa: BLE001 - the sweeper must survive an outage and try again
                    log.warning("funding sweeper: %s", scrub(f"{type(exc).__name__}: {exc}"))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=settings.sweep_interval_seconds)
                except TimeoutError:
                    pass

        return [run]

    def scrape_hooks(runtime: Runtime):  # noqa: ANN202
        return [lambda: state["figures"].refresh(FundingQueries(runtime.pool))]  # type: ignore[attr-defined]

    return service_app(
        name="funding",
        title="Berdaya funding",
        description="Sponsors' CSR pledges and financing matched to eligible businesses, explainably and never "
        "over-spent. Publishes funding.pledge.v1.",
        settings=settings,
        migrations=all_migrations("services.funding", "funding"),
        produces=[FUNDING_PLEDGE],
        subscriptions=subscribers.SUBSCRIPTIONS,
        routers=[router],
        consumers=consumers,
        scrape_hooks=scrape_hooks,
        on_start=on_start,
        background=sweeper,
    )


# For `faststream docs gen services.funding.bootstrap:asyncapi`.
asyncapi = docs_app("funding", [FUNDING_PLEDGE], subscribers.SUBSCRIPTIONS)

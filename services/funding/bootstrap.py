"""Composition root of funding: what it publishes and consumes, its routes, and what it builds from the running
infrastructure (units of work, consumers, the sweeper that lets time pass, figures)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from services.funding import handlers, integration, subscribers
from services.funding.figures import FundingFigures
from services.funding.matching import Deps
from services.funding.queries import FundingQueries
from services.funding.routes import FundingContext, router
from services.funding.settings import FundingSettings
from services.funding.store_pg import PgFundingUnitOfWork
from shared.contracts.topics import FUNDING_PLEDGE, PUBLIC_PLEDGE
from shared.messaging.catch_up import caught_up_holding, settle_all_held
from shared.messaging.consumer import BatchTransaction
from shared.reference.wilayah import kota_kupang
from shared.service import Parts, Runtime, ServiceDefinition, asyncapi_app, create_service_app, periodic
from shared.unit_of_work import Cause


def build(runtime: Runtime) -> Parts:
    settings: FundingSettings = runtime.settings  # type: ignore[assignment]
    wilayah = kota_kupang()
    queries = FundingQueries(runtime.db, wilayah)
    figures = FundingFigures(runtime.registry, queries)
    deps = Deps(wilayah=wilayah, clock=lambda: datetime.now(UTC), offer_days=settings.offer_days, matched=figures.matched)
    key = settings.pseudonym_key.get_secret_value().encode()
    publisher = runtime.publisher(lambda event: integration.translate(event, key))

    def unit_of_work(cause: Cause) -> PgFundingUnitOfWork:
        return PgFundingUnitOfWork(runtime.db, publisher, cause)

    def joined(tx: BatchTransaction, cause: Cause) -> PgFundingUnitOfWork:
        return PgFundingUnitOfWork(tx, publisher, cause)

    def by_time() -> PgFundingUnitOfWork:
        return unit_of_work(Cause.timer("funding"))

    async def sweep() -> None:
        # Offers expire and windows open and close with time, not with events; every instance sweeps, and the
        # pledge locks make that safe.
        await handlers.expire_due_offers(by_time, deps)
        await handlers.follow_pledge_windows(by_time, deps)

    async def settle(tx: BatchTransaction, business_ids: list[str]) -> None:
        await handlers.settle_caught_up([uuid.UUID(b) for b in business_ids], joined(tx, Cause.timer("funding")), deps)

    async def catch_up() -> None:
        # After `berdaya replay funding-view`, once both view consumers have read their history: first the matching
        # put off meanwhile, in rank order on the whole view, then each business read of, settled once. Settling
        # reads the registry's facts and training's, so each consumer's held businesses wait for both. Every
        # instance looks; pledges are locked, and the held rows taken with SKIP LOCKED.
        views = (subscribers.VIEW, subscribers.TRAINING)
        if not await caught_up_holding(runtime.db, views):
            return
        await handlers.rank_after_catch_up(by_time, deps)
        for consumer, other in (views, views[::-1]):
            await settle_all_held(runtime.db, consumer, settle, also_waits_for=(other,))

    return Parts(
        context=FundingContext(deps, queries, unit_of_work),
        consumers=subscribers.consumers(joined, deps),
        jobs=[periodic("funding sweeper", settings.sweep_interval_seconds, sweep),
              periodic("funding catch-up after a rebuild", 2.0, catch_up)],
        scrape_hooks=[figures.refresh],
    )


SERVICE = ServiceDefinition(
    name="funding",
    title="Berdaya funding",
    description="Sponsors' CSR pledges and financing matched to eligible businesses, explainably and never "
    "over-spent. Publishes funding.pledge.v1.",
    package="services.funding",
    produces=(FUNDING_PLEDGE, PUBLIC_PLEDGE),
    subscriptions=subscribers.SUBSCRIPTIONS,
    routers=(router,),
    build=build,
)


def create_app(settings: FundingSettings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or FundingSettings())  # type: ignore[call-arg]


# For `faststream docs gen services.funding.bootstrap:asyncapi`.
asyncapi = asyncapi_app(SERVICE)

"""Composition root of training: what it publishes and consumes, its routes, and what it builds from the running
infrastructure (units of work, consumers, the sweeper that finds stalled pathways, figures)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from services.training import (
    business_changes,
    halal_pathway,
    integration,
    routes,
    routes_mentoring,
    routes_pathway,
    routes_reports,
    subscribers,
)
from services.training.figures import TrainingFigures
from services.training.queries import TrainingQueries
from services.training.routes import TrainingContext
from services.training.seating import Deps
from services.training.settings import TrainingSettings
from services.training.store_pg import PgTrainingUnitOfWork
from shared.contracts.topics import PUBLIC_TRAINING, TRAINING_COHORT, TRAINING_PARTICIPANT, TRAINING_PROGRAMME
from shared.messaging.catch_up import settle_all_held
from shared.messaging.consumer import BatchTransaction
from shared.reference.wilayah import kota_kupang
from shared.service import Parts, Runtime, ServiceDefinition, asyncapi_app, create_service_app, periodic
from shared.unit_of_work import Cause


def build(runtime: Runtime) -> Parts:
    settings: TrainingSettings = runtime.settings  # type: ignore[assignment]
    wilayah = kota_kupang()
    queries = TrainingQueries(runtime.db, wilayah)
    figures = TrainingFigures(runtime.registry, queries)
    deps = Deps(wilayah=wilayah, clock=lambda: datetime.now(UTC), waitlist_per_seat=settings.waitlist_per_seat,
                stall_days=settings.stall_days)  # fmt: skip
    key = runtime.settings.pseudonym_key.get_secret_value().encode()
    publisher = runtime.publisher(lambda event: integration.translate(event, key))

    def unit_of_work(cause: Cause) -> PgTrainingUnitOfWork:
        return PgTrainingUnitOfWork(runtime.db, publisher, cause)

    def joined(tx: BatchTransaction, cause: Cause) -> PgTrainingUnitOfWork:
        return PgTrainingUnitOfWork(tx, publisher, cause)

    def by_time() -> PgTrainingUnitOfWork:
        return unit_of_work(Cause.timer("training"))

    async def sweep() -> None:
        # Every instance sweeps; the pathway rows are claimed with SKIP LOCKED, so a stall is reported once.
        await halal_pathway.flag_stalled_pathways(by_time, deps)

    async def settle(tx: BatchTransaction, business_ids: list[str]) -> None:
        await business_changes.settle_caught_up([uuid.UUID(b) for b in business_ids],
                                                joined(tx, Cause.timer("training")), deps)  # fmt: skip

    async def catch_up() -> None:
        # After `berdaya replay training-view`: every instance looks; the held rows are taken with SKIP LOCKED.
        await settle_all_held(runtime.db, subscribers.VIEW, settle)

    return Parts(
        context=TrainingContext(deps, queries, unit_of_work),
        consumers=subscribers.consumers(joined, deps),
        jobs=[periodic("training pathway sweeper", settings.sweep_interval_seconds, sweep),
              periodic("training catch-up after a rebuild", 2.0, catch_up)],
        scrape_hooks=[figures.refresh],
    )


SERVICE = ServiceDefinition(
    name="training",
    title="Berdaya training",
    description="Programmes, cohorts filled by need from the register, attendance, completion and assessment, "
    "mentoring after training, and the halal self-declare pathway. Publishes training.programme.v1, "
    "training.cohort.v1 and training.participant.v1 (key = business id).",
    package="services.training",
    produces=(TRAINING_PROGRAMME, TRAINING_COHORT, TRAINING_PARTICIPANT, PUBLIC_TRAINING),
    subscriptions=subscribers.SUBSCRIPTIONS,
    routers=(routes.router, routes_mentoring.router, routes_pathway.router, routes_reports.router),
    build=build,
)


def create_app(settings: TrainingSettings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or TrainingSettings())  # type: ignore[call-arg]


# For `faststream docs gen services.training.bootstrap:asyncapi`.
asyncapi = asyncapi_app(SERVICE)

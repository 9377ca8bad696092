"""Composition root of the registry: what it publishes, its routes, and what it builds from the running infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI

from services.registry import handlers, integration
from services.registry.domain.registration import RegistrationRules
from services.registry.domain.scale import YouthRange
from services.registry.figures import ProgrammeFigures
from services.registry.handlers import Deps
from services.registry.nik_vault import NikVault
from services.registry.queries import RegisterQueries
from services.registry import routes, routes_partners
from services.registry.routes import RegistryContext
from services.registry.settings import RegistrySettings
from services.registry.store import PgRegistryUnitOfWork
from shared.contracts.topics import PUBLIC_BUSINESS, PUBLIC_FIGURES, REGISTRY_BUSINESS
from shared.reference.wilayah import kota_kupang
from shared.service import Parts, Runtime, ServiceDefinition, asyncapi_app, create_service_app, periodic
from shared.unit_of_work import Cause


def utc_now() -> datetime:
    return datetime.now(UTC)


def build(runtime: Runtime) -> Parts:
    settings: RegistrySettings = runtime.settings  # type: ignore[assignment]
    wilayah = kota_kupang()
    youth = YouthRange(settings.youth_min_age, settings.youth_max_age)
    deps = Deps(
        rules=RegistrationRules(wilayah, youth, settings.duplicate_name_similarity),
        vault=NikVault(settings.key_bytes(settings.nik_digest_key), settings.key_bytes(settings.nik_encryption_key)),
        clock=utc_now,
    )
    key = settings.pseudonym_key.get_secret_value().encode()
    publisher = runtime.publisher(lambda event: integration.translate(event, key))
    queries = RegisterQueries(runtime.db, wilayah, youth)
    figures = ProgrammeFigures(runtime.registry, queries)

    def unit_of_work(cause: Cause) -> PgRegistryUnitOfWork:
        return PgRegistryUnitOfWork(runtime.db, publisher, cause, wilayah=wilayah)

    async def refresh_youth_flags() -> None:
        command = handlers.RefreshYouthFlags()
        while await handlers.refresh_youth_flags(command, unit_of_work(Cause.timer("registry")), deps) >= command.limit:
            pass

    async def publish_coverage() -> None:
        await handlers.publish_coverage(handlers.PublishCoverage(), unit_of_work(Cause.timer("registry")), deps)

    return Parts(
        context=RegistryContext(deps, queries, wilayah, unit_of_work, settings.import_max_rows_per_request),
        jobs=[periodic("registry youth flags", settings.youth_sweep_interval_seconds, refresh_youth_flags),
              periodic("registry public figures", settings.figures_interval_seconds, publish_coverage)],  # fmt: skip
        scrape_hooks=[figures.refresh],
    )


SERVICE = ServiceDefinition(
    name="registry",
    title="Berdaya registry",
    description="Kota Kupang's register of UMKM: registration, NIB applications and coverage. "
    "Every change is an event on registry.business.v1.",
    package="services.registry",
    produces=(REGISTRY_BUSINESS, PUBLIC_BUSINESS, PUBLIC_FIGURES),
    subscriptions=(),
    routers=(routes.router, routes_partners.router),
    build=build,
)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or RegistrySettings())  # type: ignore[call-arg]


# For `faststream docs gen services.registry.bootstrap:asyncapi`.
asyncapi = asyncapi_app(SERVICE)

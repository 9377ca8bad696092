"""Composition root of the registry: builds its dependencies from settings and hands them to the shared host."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from services.registry import events
from services.registry.domain import RegistrationRules, YouthRange
from services.registry.figures import ProgrammeFigures
from services.registry.handlers import Deps
from services.registry.nik_vault import NikVault
from services.registry.routes import RegistryContext, router
from services.registry.settings import RegistrySettings
from services.registry.store import PgUnitOfWork, RegisterQueries
from shared.contracts.topics import REGISTRY_BUSINESS
from shared.reference.wilayah import kota_kupang
from shared.service import Runtime, all_migrations, docs_app, service_app


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()  # type: ignore[call-arg]
    wilayah = kota_kupang()
    youth = YouthRange(settings.youth_min_age, settings.youth_max_age)
    deps = Deps(
        rules=RegistrationRules(wilayah, youth, settings.duplicate_name_similarity),
        vault=NikVault(settings.key_bytes(settings.nik_digest_key), settings.key_bytes(settings.nik_encryption_key)),
        clock=utc_now,
    )
    translate = events.translator(youth)
    figures: list[ProgrammeFigures] = []

    def on_start(runtime: Runtime, app: FastAPI) -> None:
        queries = RegisterQueries(runtime.pool, wilayah, youth)
        figures.append(ProgrammeFigures(runtime.metrics.registry, queries, wilayah))
        app.state.registry = RegistryContext(
            deps=deps,
            queries=queries,
            wilayah=wilayah,
            unit_of_work=lambda correlation: PgUnitOfWork(
                runtime.pool, wilayah, translate, correlation or uuid.uuid4(), route=runtime.route
            ),
            import_max_rows=settings.import_max_rows_per_request,
        )

    return service_app(
        name="registry",
        title="Berdaya registry",
        description="Kota Kupang's register of UMKM: registration, NIB applications and coverage. "
        "Every change is an event on registry.business.v1.",
        settings=settings,
        migrations=all_migrations("services.registry", "registry"),
        produces=[REGISTRY_BUSINESS],
        routers=[router],
        scrape_hooks=lambda _: [lambda: figures[0].refresh()],
        on_start=on_start,
    )


# For `faststream docs gen services.registry.bootstrap:asyncapi`.
asyncapi = docs_app("registry", [REGISTRY_BUSINESS], [])

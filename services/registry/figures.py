"""The programme figures the registry exports to Prometheus: businesses registered and NIB coverage per kecamatan."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from services.registry.queries import RegisterQueries


class ProgrammeFigures:
    def __init__(self, registry: CollectorRegistry, queries: RegisterQueries) -> None:
        self._queries = queries
        self.registered = Gauge(
            "berdaya_businesses_registered", "Active businesses in the register.", ["kecamatan"], registry=registry
        )
        self.with_nib = Gauge(
            "berdaya_businesses_with_nib", "Active businesses holding an NIB.", ["kecamatan"], registry=registry
        )
        self.coverage = Gauge(
            "berdaya_nib_coverage_ratio", "Businesses with an NIB / businesses registered.", ["kecamatan"], registry=registry
        )
        self.by_nib_status = Gauge(
            "berdaya_businesses_by_nib_status", "Active businesses by NIB status.", ["nib_status"], registry=registry
        )

    async def refresh(self) -> None:
        report = await self._queries.coverage()
        for k in report.by_kecamatan:
            self.registered.labels(k.kecamatan.name).set(k.registered)
            self.with_nib.labels(k.kecamatan.name).set(k.with_nib)
            self.coverage.labels(k.kecamatan.name).set(k.coverage)
        self.registered.labels("all").set(report.registered)
        self.with_nib.labels("all").set(report.with_nib)
        self.coverage.labels("all").set(report.coverage)
        counts = await self._queries.counts_by_status()
        for status in ("none", "applied", "issued", "rejected"):
            self.by_nib_status.labels(status).set(counts.get(status, 0))

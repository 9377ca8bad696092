"""The programme figures the registry exports to Prometheus: businesses registered and NIB coverage per kecamatan."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from services.registry.store import RegisterQueries
from shared.reference.wilayah import Wilayah


class ProgrammeFigures:
    def __init__(self, registry: CollectorRegistry, queries: RegisterQueries, wilayah: Wilayah) -> None:
        self._queries = queries
        self._names = {k.code: k.name for k in wilayah.kecamatan}
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
        total_reg = total_nib = 0
        for code, registered, with_nib in await self._queries.coverage():
            name = self._names[code]
            self.registered.labels(name).set(registered)
            self.with_nib.labels(name).set(with_nib)
            self.coverage.labels(name).set(with_nib / registered if registered else 0)
            total_reg += registered
            total_nib += with_nib
        self.registered.labels("all").set(total_reg)
        self.with_nib.labels("all").set(total_nib)
        self.coverage.labels("all").set(total_nib / total_reg if total_reg else 0)
        counts = await self._queries.counts_by_status()
        for status in ("none", "applied", "issued", "rejected"):
            self.by_nib_status.labels(status).set(counts.get(status, 0))

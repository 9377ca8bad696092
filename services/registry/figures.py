"""The programme figures the registry exports to Prometheus: businesses registered and NIB coverage per kecamatan, and
when coverage last rose there (officers are told when it has not moved for 30 days)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from services.registry.domain.coverage import KecamatanCoverage, NibCoverage
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
        self.last_nib = Gauge(
            "berdaya_nib_last_issued_timestamp_seconds",
            "When the latest NIB of an active business in the kecamatan was recorded (Unix time); before its first NIB, "
            "when its first business was registered. Absent for a kecamatan with no business.",
            ["kecamatan"], registry=registry,
        )  # fmt: skip

    async def refresh(self) -> None:
        """One pass over the register per scrape (it runs on every /metrics): counts by kecamatan and NIB status, and
        when each kecamatan's latest NIB was recorded."""
        rows = await self._queries._db.fetch(_FIGURES)  # noqa: SLF001 - the figures' own query
        counts: dict[str, list[int]] = {}  # kecamatan code -> [registered, with NIB]
        by_status: dict[str, int] = {}
        last: dict[str, datetime] = {}
        first: dict[str, datetime] = {}
        for r in rows:
            code = r["kecamatan_code"]
            pair = counts.setdefault(code, [0, 0])
            pair[0] += r["n"]
            pair[1] += r["n"] if r["nib_status"] == "issued" else 0
            by_status[r["nib_status"]] = by_status.get(r["nib_status"], 0) + r["n"]
            if r["last_nib"] is not None:
                last[code] = max(r["last_nib"], last.get(code, r["last_nib"]))
            first[code] = min(r["first_registered"], first.get(code, r["first_registered"]))
        kecamatan = self._queries._wilayah.kecamatan  # noqa: SLF001
        report = NibCoverage([KecamatanCoverage(k, *counts.get(k.code, (0, 0))) for k in kecamatan])
        self.last_nib.clear()
        for k in report.by_kecamatan:
            self.registered.labels(k.kecamatan.name).set(k.registered)
            self.with_nib.labels(k.kecamatan.name).set(k.with_nib)
            self.coverage.labels(k.kecamatan.name).set(k.coverage)
            since = last.get(k.kecamatan.code) or first.get(k.kecamatan.code)
            if since is not None:
                self.last_nib.labels(k.kecamatan.name).set(since.timestamp())
        self.registered.labels("all").set(report.registered)
        self.with_nib.labels("all").set(report.with_nib)
        self.coverage.labels("all").set(report.coverage)
        for status in ("none", "applied", "issued", "rejected"):
            self.by_nib_status.labels(status).set(by_status.get(status, 0))


# Active businesses by kecamatan and NIB status, in one scan. An NIB recorded through an application counts from its
# decision; one a business came with, from its registration.
_FIGURES = """
    WITH issued AS (SELECT business_id, max(decided_at) AS at FROM nib_application WHERE status = 'issued' GROUP BY 1)
    SELECT b.kecamatan_code, b.nib_status, count(*) AS n,
           max(coalesce(i.at, b.registered_at)) FILTER (WHERE b.nib_status = 'issued') AS last_nib,
           min(b.registered_at) AS first_registered
      FROM business b LEFT JOIN issued i ON b.nib_status = 'issued' AND i.business_id = b.id
     WHERE b.status = 'active'
     GROUP BY 1, 2"""

"""Funding's figures for Prometheus: rupiah per sponsor by state, matches, and time from eligibility to match."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge
from services.funding.queries import FundingQueries


class FundingFigures:
    def __init__(self, registry: CollectorRegistry, queries: FundingQueries) -> None:
        self._queries = queries
        self.rupiah = Gauge("berdaya_funding_rupiah", "Rupiah per sponsor by state (pledged, reserved, accepted, disbursed).",
                            ["sponsor", "state"], registry=registry)  # fmt: skip
        self.matches = Counter("berdaya_funding_matches", "Offers made (FundingMatched); rate() gives matches per minute.",
                               ["sponsor"], registry=registry)  # fmt: skip
        self.time_to_match = Histogram(
            "berdaya_funding_eligibility_to_match_seconds",
            "From the later of a business becoming eligible (last relevant change) and its pledge opening, to its offer.",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
            registry=registry,
        )

    def matched(self, offer: Offer, pledge: Pledge, eligible_since: datetime | None) -> None:
        self.matches.labels(pledge.sponsor_name).inc()
        starts = [t for t in (eligible_since, pledge.created_at) if t is not None]
        if starts:
            self.time_to_match.observe(max(0.0, (offer.offered_at - max(starts)).total_seconds()))

    async def refresh(self) -> None:
        for row in await self._queries.money_by_sponsor():
            for state in ("pledged", "reserved", "accepted", "disbursed"):
                self.rupiah.labels(row["name"], state).set(int(row[state] or 0))

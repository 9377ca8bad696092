"""Funding's figures for Prometheus: rupiah per sponsor by state, matches, time from eligibility to match, offers by
kecamatan and status, and what is about to run out: the next pledge of each sponsor to end with money unallocated,
the next unanswered offer of each kecamatan to expire. Labels are sponsors (organisations), kecamatan and statuses:
never a business or a person."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge
from services.funding.queries import FundingQueries

OFFER_STATUSES = ("offered", "accepted", "declined", "expired", "withdrawn", "disbursed")
UNKNOWN_KECAMATAN = "unknown"


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
        self.offers = Gauge("berdaya_funding_offers", "Offers by the business's kecamatan and status (offered = waiting "
                            "for the business's answer).", ["kecamatan", "status"], registry=registry)  # fmt: skip
        self.next_offer_expiry = Gauge(
            "berdaya_funding_unanswered_offer_next_expiry_timestamp_seconds",
            "When the next unanswered offer to a business of the kecamatan expires (Unix time); absent when none waits.",
            ["kecamatan"], registry=registry,
        )  # fmt: skip
        self.next_pledge_end = Gauge(
            "berdaya_funding_pledge_next_end_timestamp_seconds",
            "When the sponsor's next open pledge with money still unallocated ends (the end of its last valid day in "
            "Kupang, Unix time); absent when none.",
            ["sponsor"], registry=registry,
        )  # fmt: skip
        self.next_pledge_unallocated = Gauge(
            "berdaya_funding_pledge_next_end_unallocated_rupiah",
            "Rupiah not yet offered, accepted or disbursed in that pledge (total - reserved - accepted - disbursed).",
            ["sponsor"], registry=registry,
        )  # fmt: skip

    def matched(self, offer: Offer, pledge: Pledge, eligible_since: datetime | None) -> None:
        self.matches.labels(pledge.sponsor_name).inc()
        starts = [t for t in (eligible_since, pledge.created_at) if t is not None]
        if starts:
            self.time_to_match.observe(max(0.0, (offer.offered_at - max(starts)).total_seconds()))

    async def refresh(self) -> None:
        db = self._queries._db  # noqa: SLF001 - the figures' own queries
        names = self._queries._names  # noqa: SLF001 - Kemendagri code -> kecamatan name
        # Everything is read before any figure changes: a query that fails or times out (or a scrape running
        # alongside) must leave the last figures standing, never some of them cleared or zeroed.
        money = await self._queries.money_by_sponsor()
        offers = await db.fetch(_OFFERS)
        pledge_ends = await db.fetch(_NEXT_PLEDGE_END)
        for row in money:
            for state in ("pledged", "reserved", "accepted", "disbursed"):
                self.rupiah.labels(row["name"], state).set(int(row[state] or 0))
        # Every kecamatan and status has a series from the start, so the first expiry is an increase rules can see;
        # offers of businesses not yet in the view count as "unknown" until it catches up, and then 0 again.
        counts = {(name, status): 0 for name in [*names.values(), UNKNOWN_KECAMATAN] for status in OFFER_STATUSES}
        expiries: dict[str, float] = {}
        for row in offers:
            name = names.get(row["kecamatan_code"], UNKNOWN_KECAMATAN)
            counts[(name, row["status"])] = counts.get((name, row["status"]), 0) + row["n"]
            if row["next_expiry"] is not None:
                at = row["next_expiry"].timestamp()
                expiries[name] = min(at, expiries.get(name, at))
        for (name, status), n in counts.items():
            self.offers.labels(name, status).set(n)
        self.next_offer_expiry.clear()
        for name, at in expiries.items():
            self.next_offer_expiry.labels(name).set(at)
        self.next_pledge_end.clear()
        self.next_pledge_unallocated.clear()
        for row in pledge_ends:
            self.next_pledge_end.labels(row["name"]).set(row["ends_at"].timestamp())
            self.next_pledge_unallocated.labels(row["name"]).set(int(row["unallocated"]))


_OFFERS = """
    SELECT v.kecamatan_code, o.status, count(*) AS n,
           min(o.expires_at) FILTER (WHERE o.status = 'offered') AS next_expiry
      FROM offer o LEFT JOIN business_view v ON v.business_id = o.business_id
     GROUP BY 1, 2"""

# A pledge is valid through its last day in Kupang (WITA, Asia/Makassar): it ends at the next midnight there.
_NEXT_PLEDGE_END = """
    SELECT DISTINCT ON (s.name) s.name,
           ((p.valid_until + 1)::timestamp AT TIME ZONE 'Asia/Makassar') AS ends_at,
           p.total_rupiah - p.reserved_rupiah - p.accepted_rupiah - p.disbursed_rupiah AS unallocated
      FROM pledge p JOIN sponsor s ON s.id = p.sponsor_id
     WHERE p.status = 'open' AND p.total_rupiah - p.reserved_rupiah - p.accepted_rupiah - p.disbursed_rupiah > 0
       AND ((p.valid_until + 1)::timestamp AT TIME ZONE 'Asia/Makassar') > now()
     ORDER BY s.name, p.valid_until, p.id"""

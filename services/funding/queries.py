"""Funding's read side: pledges, offers, 'why', simulations and sponsor reports, each built in one place."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.funding.domain import offers, reports
from services.funding.domain.earmarks import Check, evaluate
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge, PledgeForm, new_pledge
from services.funding.domain.view import READINESS_RULES, BusinessView, readiness
from services.funding.store_pg import PLEDGE_SELECT, PgFundingStore, offer_from_row, pledge_from_row
from shared.db import Database, Where
from shared.errors import NotFound
from shared.reference.wilayah import Wilayah


@dataclass(frozen=True, slots=True)
class Explanation:
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    checks: list[Check]
    readiness: int
    readiness_parts: dict[str, int]
    readiness_rules: list[dict[str, Any]]
    offer: Offer | None  # with the ranking inputs recorded when it was made

    @property
    def eligible_now(self) -> bool:
        return all(c.passed for c in self.checks)


class FundingQueries:
    def __init__(self, db: Database, wilayah: Wilayah) -> None:
        self._db = db
        self._names = {k.code: k.name for k in wilayah.kecamatan}
        self._wilayah = wilayah
        # One simulation at a time: each reads and ranks every eligible business, and many at once would hold the
        # connections and the CPU the consumers and the relay need.
        self._simulating = asyncio.Semaphore(1)

    async def sponsors(self) -> list[asyncpg.Record]:
        return await self._db.fetch("SELECT id, name, kind FROM sponsor ORDER BY name")

    async def pledges(self, sponsor_id: uuid.UUID | None = None) -> list[Pledge]:
        where = Where().add_if(sponsor_id, "p.sponsor_id = {}")
        rows = await self._db.fetch(PLEDGE_SELECT + where.sql + " ORDER BY p.created_at", *where.args)
        return [pledge_from_row(r) for r in rows]

    async def pledge(self, pledge_id: uuid.UUID) -> Pledge:
        async with self._db.acquire() as conn:
            found = await PgFundingStore(conn).pledge(pledge_id)
        if found is None:
            raise NotFound(f"no pledge {pledge_id}")
        return found

    async def offers(self, *, business_id: uuid.UUID, pledge_id: uuid.UUID | None = None,
                     sponsor_id: uuid.UUID | None = None) -> list[Offer]:  # fmt: skip
        """A business's offers (of one pledge, or one sponsor's pledges, if given): one per pledge at most."""
        where = Where().add_if(business_id, "o.business_id = {}").add_if(pledge_id, "o.pledge_id = {}")
        where.add_if(sponsor_id, "p.sponsor_id = {}")
        rows = await self._db.fetch(
            f"SELECT o.* FROM offer o JOIN pledge p ON p.id = o.pledge_id{where.sql}"
            " ORDER BY o.offered_at, o.rank NULLS LAST, o.id",
            *where.args,
        )
        return [offer_from_row(r) for r in rows]

    async def offers_page(self, pledge_id: uuid.UUID, status: str | None, *, page: int, page_size: int,
                          by_rank: bool = True) -> tuple[int, list[Offer]]:  # fmt: skip
        """How many of the pledge's offers match, and one page of them in the order they were made: those made at
        once by rank, or (`by_rank` False, for whoever may not see the ranking) by id."""
        where = Where().add_if(pledge_id, "pledge_id = {}").add_if(status, "status = {}")
        async with self._db.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):  # the count and the page agree
                total = await conn.fetchval(f"SELECT count(*) FROM offer{where.sql}", *where.args)
                order = "offered_at, rank NULLS LAST, id" if by_rank else "offered_at, id"
                rows = await conn.fetch(f"SELECT * FROM offer{where.sql} ORDER BY {order}"
                                        f" LIMIT {page_size} OFFSET {(page - 1) * page_size}", *where.args)  # fmt: skip
        return total, [offer_from_row(r) for r in rows]

    async def business(self, business_id: uuid.UUID) -> BusinessView:
        async with self._db.acquire() as conn:
            found = await PgFundingStore(conn).business(business_id)
        if found is None:
            raise NotFound(f"funding has heard of no business {business_id} (it learns of businesses from registry events)")
        return found

    async def simulate(self, form: PledgeForm, sponsor: tuple[str, str], today: date) -> reports.Simulation:
        """Who the pledge would fund now and with how much, committing nothing."""
        draft = new_pledge(form, self._wilayah, today, pledge_id=uuid.uuid4(), sponsor=sponsor)
        async with self._simulating:
            async with self._db.acquire() as conn:
                candidates = await PgFundingStore(conn).candidates(draft)
            # Ranking 100,000 businesses takes most of a second: off the event loop, so the consumers keep going.
            return await asyncio.to_thread(self._simulation, draft, candidates, today)

    def _simulation(self, draft: Pledge, candidates: list[BusinessView], today: date) -> reports.Simulation:
        ranked = offers.rank_candidates(draft.earmarks, candidates, today)
        funded, amounts, remaining = offers.simulate(draft, ranked)
        return reports.simulation(funded, amounts, remaining, len(ranked), self._names)

    async def explain(self, pledge_id: uuid.UUID, business_id: uuid.UUID, today: date) -> Explanation:
        pledge = await self.pledge(pledge_id)
        business = await self.business(business_id)
        score = readiness(business, today)
        made = await self.offers(pledge_id=pledge_id, business_id=business_id)
        return Explanation(
            pledge_id=pledge_id, business_id=business_id, checks=evaluate(pledge.earmarks, business, today),
            readiness=score.score, readiness_parts=score.parts,
            readiness_rules=[{"part": p, "points": n, "why": w} for p, n, w in READINESS_RULES],
            offer=made[0] if made else None,
        )  # fmt: skip

    async def report(self, subject: str, pledges: list[Pledge]) -> reports.Report:
        rows = await self._db.fetch(
            """SELECT o.status, coalesce(b.kecamatan_code, '?') AS kecamatan_code, coalesce(b.scale, '?') AS scale,
                      count(*) AS offers, sum(o.amount_rupiah) AS amount
                 FROM offer o LEFT JOIN business_view b ON b.business_id = o.business_id
                WHERE o.pledge_id = ANY($1::uuid[])
                GROUP BY 1, 2, 3""",
            [p.id for p in pledges],
        )
        groups = [reports.OfferGroup(r["status"], r["kecamatan_code"], r["scale"], r["offers"], int(r["amount"]))
                  for r in rows]  # fmt: skip
        # Businesses, not offers, are what a small count would identify: each counted once per row.
        held = await self._db.fetch(
            """SELECT GROUPING(b.kecamatan_code) AS by_scale, coalesce(b.kecamatan_code, '?') AS kecamatan_code,
                      coalesce(b.scale, '?') AS scale, count(DISTINCT o.business_id) AS businesses
                 FROM offer o LEFT JOIN business_view b ON b.business_id = o.business_id
                WHERE o.pledge_id = ANY($1::uuid[]) AND o.status IN ('offered', 'accepted', 'disbursed')
                GROUP BY GROUPING SETS ((b.kecamatan_code), (b.scale))""",
            [p.id for p in pledges],
        )  # fmt: skip
        holders = reports.Holders({r["kecamatan_code"]: r["businesses"] for r in held if not r["by_scale"]},
                                  {r["scale"]: r["businesses"] for r in held if r["by_scale"]})  # fmt: skip
        # A partner may report one offer's outcome more than once (sent again as a new event, corrected, or under
        # another consent: a referral made twice, a partner's system re-keying its records): the report of each kind
        # funding recorded last for the offer counts, once, so the amount agrees with the count of businesses.
        # Not the one dated last: the date is the partner's to type, and a typo far ahead would outrank every
        # correction (dates past tomorrow are refused, but a correction may well carry an earlier date).
        outcomes = await self._db.fetch(
            """SELECT partner_id, kind, count(DISTINCT business_id) AS businesses,
                      coalesce(sum(amount_rupiah), 0) AS amount
                 FROM (SELECT DISTINCT ON (po.partner_id, po.offer_id, po.kind)
                              po.partner_id, po.kind, po.amount_rupiah, o.business_id
                         FROM partner_outcome po JOIN offer o ON o.id = po.offer_id
                        WHERE o.pledge_id = ANY($1::uuid[])
                        ORDER BY po.partner_id, po.offer_id, po.kind, po.recorded_order DESC) latest
                GROUP BY 1, 2""",
            [p.id for p in pledges],
        )
        return reports.report(subject, pledges, groups, self._names, holders,
                              [(r["partner_id"], r["kind"], r["businesses"], int(r["amount"])) for r in outcomes])  # fmt: skip

    async def money_by_sponsor(self) -> list[asyncpg.Record]:
        return await self._db.fetch(
            """SELECT s.name, sum(p.total_rupiah) AS pledged, sum(p.reserved_rupiah) AS reserved,
                      sum(p.accepted_rupiah) AS accepted, sum(p.disbursed_rupiah) AS disbursed
                 FROM sponsor s JOIN pledge p ON p.sponsor_id = s.id GROUP BY s.name"""
        )

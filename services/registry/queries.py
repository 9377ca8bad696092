"""The registry's read side: searching the register and the NIB coverage report, each computed in one place."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from services.registry.domain.business import Business, NibApplication
from services.registry.domain.consent import Consent, Partner
from services.registry.domain.coverage import NibCoverage
from services.registry.domain.scale import YouthRange
from services.registry.store import COVERAGE_COUNTS, SELECT_BUSINESS, business_from_row
from shared.db import Database, Where, like_pattern
from shared.reference.wilayah import Wilayah


@dataclass(frozen=True, slots=True)
class SearchFilters:
    kecamatan_code: str | None = None
    kelurahan_code: str | None = None
    kbli: str | None = None  # a code or a prefix
    scale: str | None = None
    nib_status: str | None = None
    status: str | None = None
    youth_owned: bool | None = None
    women_owned: bool | None = None
    name: str | None = None


class RegisterQueries:
    """Searches and figures over the register, straight from SQL."""

    def __init__(self, db: Database, wilayah: Wilayah, youth: YouthRange) -> None:
        self._db = db
        self._wilayah = wilayah
        self._youth = youth

    def _where(self, f: SearchFilters, today: date) -> Where:
        where = Where()
        where.add_if(f.kecamatan_code, "kecamatan_code = {}").add_if(f.kelurahan_code, "kelurahan_code = {}")
        where.add_if(f.kbli and like_pattern(f.kbli) + "%", "kbli_code LIKE {}")
        where.add_if(f.scale, "scale = {}").add_if(f.nib_status, "nib_status = {}").add_if(f.status, "status = {}")
        if f.women_owned is not None:
            where.add("owner_gender = {}", "P" if f.women_owned else "L")
        if f.youth_owned is not None:
            # As of the month's first day, like the flag every answer and event carries: a flag that turned on the
            # day itself would let any caller find an owner's birthday by asking daily.
            after, up_to = self._youth.birth_dates(today.replace(day=1))
            where.add(("" if f.youth_owned else "NOT ") + "(owner_birth_date > {} AND owner_birth_date <= {})", after, up_to)
        if f.name:  # an empty `?name=` is no filter, not a name that is empty
            where.add("business_name ILIKE {}", "%" + like_pattern(f.name) + "%")
        return where

    async def search(self, f: SearchFilters, today: date, *, page: int, page_size: int) -> tuple[int, list[Business]]:
        where = self._where(f, today)
        async with self._db.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM business" + where.sql, *where.args)
            rows = await conn.fetch(
                SELECT_BUSINESS + where.sql
                + f" ORDER BY registered_at DESC, id LIMIT {page_size} OFFSET {(page - 1) * page_size}",
                *where.args,
            )
        return total, [business_from_row(r, self._wilayah) for r in rows]

    async def get(self, business_id: uuid.UUID) -> Business | None:
        row = await self._db.fetchrow(SELECT_BUSINESS + " WHERE id = $1", business_id)
        return business_from_row(row, self._wilayah) if row else None

    async def nib_applications(self, business_id: uuid.UUID) -> list[NibApplication]:
        rows = await self._db.fetch(
            "SELECT * FROM nib_application WHERE business_id = $1 ORDER BY applied_at", business_id
        )
        return [NibApplication(**dict(r)) for r in rows]

    async def coverage(self) -> NibCoverage:
        """Active businesses and those with an NIB, for every kecamatan (those with none too)."""
        rows = await self._db.fetch(COVERAGE_COUNTS)
        return NibCoverage.of(self._wilayah.kecamatan, {r[0]: (r[1], r[2]) for r in rows})

    async def counts_by_status(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT nib_status, count(*) FROM business WHERE status = 'active' GROUP BY 1")
        return {r[0]: r[1] for r in rows}

    async def partners(self) -> list[Partner]:
        return [Partner(**dict(r)) for r in await self._db.fetch("SELECT id, name, active FROM partner ORDER BY id")]

    async def referrals_waiting(self, partner_id: str) -> int:
        """Events for the partner's referral topic still waiting in the outbox for Kafka."""
        return await self._db.fetchval(
            """SELECT count(*) FROM outbox_pending p JOIN outbox o ON o.id = p.id
                WHERE p.aggregatetype = 'referral' AND o.payload -> 'payload' ->> 'partner_id' = $1""", partner_id)

    async def consents(self, business_id: uuid.UUID) -> list[Consent]:
        rows = await self._db.fetch("SELECT * FROM consent WHERE business_id = $1 ORDER BY given_at", business_id)
        return [Consent(**dict(r)) for r in rows]

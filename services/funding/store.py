"""Funding's SQL: the business view, sponsors, pledges and offers, the unit of work, and report queries.

Every change to a pledge's money happens with that pledge's row locked (`FOR UPDATE`), pledges always locked in
id order, so concurrent consumers and HTTP calls serialise per pledge and never deadlock.
"""

from __future__ import annotations

import abc
import json
import uuid
from functools import lru_cache
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Self

import asyncpg

from services.funding.domain import BusinessView, Offer, Pledge
from shared.contracts import EventPayload, new_envelope
from shared.contracts.envelope import Envelope
from shared.contracts.funding import Earmarks
from shared.messaging.transaction import PgTransaction
from shared.unit_of_work import UnitOfWork

_VIEW_COLUMNS = (
    "business_id", "version", "business_name", "contact_phone", "kecamatan_code", "kbli_code", "scale", "youth_owned",
    "youth_until", "women_owned", "nib_status", "status", "annual_sales_rupiah", "registered_at", "trainings",
    "funded_count", "eligible_since",
)  # fmt: skip
_OFFER_COLUMNS = (
    "id", "pledge_id", "business_id", "amount_rupiah", "status", "offered_at", "expires_at", "readiness", "rank",
    "ranking", "decided_at", "reason", "disbursed_at", "reference",
)  # fmt: skip
_PLEDGE_SELECT = """
SELECT p.*, s.name AS sponsor_name, s.kind AS sponsor_kind
  FROM pledge p JOIN sponsor s ON s.id = p.sponsor_id
"""


def view_from_row(row: asyncpg.Record) -> BusinessView:
    data = {k: row[k] for k in _VIEW_COLUMNS}
    data["trainings"] = frozenset(data["trainings"] or ())
    return BusinessView(**data)


def pledge_from_row(row: asyncpg.Record) -> Pledge:
    return Pledge(
        id=row["id"], sponsor_id=row["sponsor_id"], sponsor_name=row["sponsor_name"], sponsor_kind=row["sponsor_kind"],
        title=row["title"], instrument=row["instrument"], financing_programme=row["financing_programme"],
        total_rupiah=row["total_rupiah"], amount_mode=row["amount_mode"],
        amount_per_business_rupiah=row["amount_per_business_rupiah"], min_offer_rupiah=row["min_offer_rupiah"],
        valid_from=row["valid_from"], valid_until=row["valid_until"],
        earmarks=_earmarks(row["earmarks"]), status=row["status"],
        reserved_rupiah=row["reserved_rupiah"], accepted_rupiah=row["accepted_rupiah"],
        disbursed_rupiah=row["disbursed_rupiah"], created_at=row["created_at"], closed_at=row["closed_at"],
        close_reason=row["close_reason"], matched_at=row["matched_at"],
    )  # fmt: skip


@lru_cache(maxsize=1024)
def _earmarks(text: str) -> Earmarks:
    # Every registry event looks at every open pledge; their earmarks rarely change, so parse each text once.
    return Earmarks.model_validate_json(text)


def offer_from_row(row: asyncpg.Record) -> Offer:
    data = {k: row[k] for k in _OFFER_COLUMNS}
    data["ranking"] = json.loads(data["ranking"]) if isinstance(data["ranking"], str) else data["ranking"]
    return Offer(**data)


def _prefilter(earmarks: Earmarks) -> tuple[str, list[Any]]:
    """SQL that narrows the candidates cheaply; the domain rules then decide (they are the only source of truth)."""
    clauses, args = ["status = 'active'"], []
    if earmarks.kecamatan_codes:
        args.append(list(earmarks.kecamatan_codes))
        clauses.append(f"kecamatan_code = ANY(${len(args)}::text[])")
    if earmarks.kbli_prefixes:
        args.append([p + "%" for p in earmarks.kbli_prefixes])
        clauses.append(f"kbli_code LIKE ANY(${len(args)}::text[])")
    if earmarks.scales:
        args.append(list(earmarks.scales))
        clauses.append(f"scale = ANY(${len(args)}::text[])")
    if earmarks.youth_owned_only:
        clauses.append("youth_owned")
    if earmarks.women_owned_only:
        clauses.append("women_owned")
    if earmarks.nib_required:
        clauses.append("nib_status = 'issued'")
    if earmarks.trainings_completed:
        args.append(list(earmarks.trainings_completed))
        clauses.append(f"trainings @> ${len(args)}::text[]")
    return " AND ".join(clauses), args


class FundingStore(abc.ABC):
    @abc.abstractmethod
    async def business(self, business_id: uuid.UUID, *, for_update: bool = False) -> BusinessView | None: ...

    @abc.abstractmethod
    async def save_business(self, business: BusinessView) -> None:
        """Write what registry and training events say; funded_count is left to add_funded."""

    @abc.abstractmethod
    async def add_funded(self, business_id: uuid.UUID, delta: int) -> None:
        """Atomic, so it never loses a concurrent view update (and needs no lock on the view row)."""

    @abc.abstractmethod
    async def candidates(self, pledge: Pledge) -> list[BusinessView]:
        """Businesses that may match the pledge and have no offer from it yet."""

    @abc.abstractmethod
    async def pledge(self, pledge_id: uuid.UUID, *, for_update: bool = False) -> Pledge | None: ...

    @abc.abstractmethod
    async def lock_pledges(self, pledge_ids: Sequence[uuid.UUID]) -> list[Pledge]:
        """Lock in id order (the one order every path uses) and return them in that order."""

    @abc.abstractmethod
    async def unclosed_pledges(self) -> list[Pledge]:
        """Without locks: a first look, re-read under lock before any money moves."""

    @abc.abstractmethod
    async def add_pledge(self, pledge: Pledge) -> None: ...

    @abc.abstractmethod
    async def save_pledge(self, pledge: Pledge) -> None: ...

    @abc.abstractmethod
    async def offer(self, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer | None: ...

    @abc.abstractmethod
    async def has_offer(self, pledge_id: uuid.UUID, business_id: uuid.UUID) -> bool: ...

    @abc.abstractmethod
    async def add_offers(self, offers: Sequence[Offer]) -> None: ...

    @abc.abstractmethod
    async def save_offer(self, offer: Offer) -> None: ...

    @abc.abstractmethod
    async def open_offers_of(self, business_id: uuid.UUID) -> list[Offer]:
        """Offered or accepted (not yet disbursed) offers of a business."""

    @abc.abstractmethod
    async def due_offers(self, pledge_id: uuid.UUID, now: datetime) -> list[Offer]: ...

    @abc.abstractmethod
    async def unanswered_offers(self, pledge_id: uuid.UUID) -> list[Offer]: ...

    @abc.abstractmethod
    async def pledges_with_due_offers(self, now: datetime, limit: int) -> list[uuid.UUID]: ...

    @abc.abstractmethod
    async def sponsor(self, sponsor_id: uuid.UUID) -> tuple[str, str] | None:
        """(name, kind)"""

    @abc.abstractmethod
    async def add_sponsor(self, sponsor_id: uuid.UUID, name: str, kind: str, now: datetime) -> uuid.UUID | None:
        """None if the name is new; else the id of the sponsor that already has it."""

    @abc.abstractmethod
    async def pledges_to_start(self, today: date) -> list[uuid.UUID]:
        """Pledges whose window has opened since they were last matched."""

    @abc.abstractmethod
    async def pledges_past_window(self, today: date) -> list[uuid.UUID]: ...


class PgFundingStore(FundingStore):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def business(self, business_id: uuid.UUID, *, for_update: bool = False) -> BusinessView | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM business_view WHERE business_id = $1" + (" FOR UPDATE" if for_update else ""), business_id
        )
        return view_from_row(row) if row else None

    async def save_business(self, b: BusinessView) -> None:
        placeholders = ", ".join(f"${i}" for i in range(1, len(_VIEW_COLUMNS) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _VIEW_COLUMNS[1:] if c != "funded_count")
        await self._conn.execute(
            f"INSERT INTO business_view ({', '.join(_VIEW_COLUMNS)}) VALUES ({placeholders})"
            f" ON CONFLICT (business_id) DO UPDATE SET {updates}",
            *[sorted(v) if isinstance(v, frozenset) else v for v in (getattr(b, c) for c in _VIEW_COLUMNS)],
        )

    async def add_funded(self, business_id: uuid.UUID, delta: int) -> None:
        await self._conn.execute(
            "UPDATE business_view SET funded_count = greatest(0, funded_count + $2) WHERE business_id = $1",
            business_id, delta,
        )  # fmt: skip

    async def candidates(self, pledge: Pledge) -> list[BusinessView]:
        where, args = _prefilter(pledge.earmarks)
        args.append(pledge.id)
        rows = await self._conn.fetch(
            f"SELECT * FROM business_view b WHERE {where}"
            f" AND NOT EXISTS (SELECT 1 FROM offer o WHERE o.pledge_id = ${len(args)} AND o.business_id = b.business_id)",
            *args,
        )
        return [view_from_row(r) for r in rows]

    async def pledge(self, pledge_id: uuid.UUID, *, for_update: bool = False) -> Pledge | None:
        row = await self._conn.fetchrow(
            _PLEDGE_SELECT + " WHERE p.id = $1" + (" FOR UPDATE OF p" if for_update else ""), pledge_id
        )
        return pledge_from_row(row) if row else None

    async def lock_pledges(self, pledge_ids: Sequence[uuid.UUID]) -> list[Pledge]:
        if not pledge_ids:
            return []
        rows = await self._conn.fetch(
            _PLEDGE_SELECT + " WHERE p.id = ANY($1::uuid[]) ORDER BY p.id FOR UPDATE OF p", list(pledge_ids)
        )
        return [pledge_from_row(r) for r in rows]

    async def unclosed_pledges(self) -> list[Pledge]:
        return [pledge_from_row(r) for r in await self._conn.fetch(_PLEDGE_SELECT + " WHERE p.status <> 'closed' ORDER BY p.id")]

    async def add_pledge(self, p: Pledge) -> None:
        await self._conn.execute(
            """INSERT INTO pledge (id, sponsor_id, title, instrument, financing_programme, total_rupiah, amount_mode,
                   amount_per_business_rupiah, min_offer_rupiah, valid_from, valid_until, earmarks, status, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)""",
            p.id, p.sponsor_id, p.title, p.instrument, p.financing_programme, p.total_rupiah, p.amount_mode,
            p.amount_per_business_rupiah, p.min_offer_rupiah, p.valid_from, p.valid_until, p.earmarks.model_dump_json(),
            p.status, p.created_at,
        )  # fmt: skip

    async def save_pledge(self, p: Pledge) -> None:
        await self._conn.execute(
            """UPDATE pledge SET status = $2, reserved_rupiah = $3, accepted_rupiah = $4, disbursed_rupiah = $5,
                      closed_at = $6, close_reason = $7, matched_at = $8 WHERE id = $1""",
            p.id, p.status, p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah, p.closed_at, p.close_reason,
            p.matched_at,
        )  # fmt: skip

    async def offer(self, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer | None:
        row = await self._conn.fetchrow("SELECT * FROM offer WHERE id = $1" + (" FOR UPDATE" if for_update else ""), offer_id)
        return offer_from_row(row) if row else None

    async def has_offer(self, pledge_id: uuid.UUID, business_id: uuid.UUID) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT 1 FROM offer WHERE pledge_id = $1 AND business_id = $2", pledge_id, business_id))  # fmt: skip

    async def add_offers(self, offers: Sequence[Offer]) -> None:
        if not offers:
            return
        records = [tuple(json.dumps(o.ranking) if c == "ranking" else getattr(o, c) for c in _OFFER_COLUMNS) for o in offers]
        if len(records) < 32:
            placeholders = ", ".join(f"${i}" + ("::jsonb" if c == "ranking" else "") for i, c in enumerate(_OFFER_COLUMNS, 1))
            await self._conn.executemany(f"INSERT INTO offer ({', '.join(_OFFER_COLUMNS)}) VALUES ({placeholders})", records)
        else:
            await self._conn.copy_records_to_table("offer", records=records, columns=_OFFER_COLUMNS)

    async def save_offer(self, o: Offer) -> None:
        await self._conn.execute(
            "UPDATE offer SET status = $2, decided_at = $3, reason = $4, disbursed_at = $5, reference = $6 WHERE id = $1",
            o.id, o.status, o.decided_at, o.reason, o.disbursed_at, o.reference,
        )  # fmt: skip

    async def open_offers_of(self, business_id: uuid.UUID) -> list[Offer]:
        rows = await self._conn.fetch(
            "SELECT * FROM offer WHERE business_id = $1 AND status IN ('offered', 'accepted') ORDER BY pledge_id",
            business_id,
        )
        return [offer_from_row(r) for r in rows]

    async def due_offers(self, pledge_id: uuid.UUID, now: datetime) -> list[Offer]:
        rows = await self._conn.fetch(
            "SELECT * FROM offer WHERE pledge_id = $1 AND status = 'offered' AND expires_at <= $2 ORDER BY id FOR UPDATE",
            pledge_id, now,
        )  # fmt: skip
        return [offer_from_row(r) for r in rows]

    async def unanswered_offers(self, pledge_id: uuid.UUID) -> list[Offer]:
        rows = await self._conn.fetch(
            "SELECT * FROM offer WHERE pledge_id = $1 AND status = 'offered' ORDER BY id FOR UPDATE", pledge_id
        )
        return [offer_from_row(r) for r in rows]

    async def pledges_with_due_offers(self, now: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT DISTINCT pledge_id FROM offer WHERE status = 'offered' AND expires_at <= $1 ORDER BY pledge_id LIMIT $2",
            now, limit,
        )  # fmt: skip
        return [r["pledge_id"] for r in rows]

    async def sponsor(self, sponsor_id: uuid.UUID) -> tuple[str, str] | None:
        row = await self._conn.fetchrow("SELECT name, kind FROM sponsor WHERE id = $1", sponsor_id)
        return (row["name"], row["kind"]) if row else None

    async def add_sponsor(self, sponsor_id: uuid.UUID, name: str, kind: str, now: datetime) -> uuid.UUID | None:
        existing = await self._conn.fetchval("SELECT id FROM sponsor WHERE lower(name) = lower($1)", name)
        if existing:
            return existing
        await self._conn.execute("INSERT INTO sponsor (id, name, kind, created_at) VALUES ($1, $2, $3, $4)",
                                 sponsor_id, name, kind, now)  # fmt: skip
        return None

    async def pledges_to_start(self, today: date) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            """SELECT id FROM pledge WHERE status <> 'closed' AND valid_from <= $1 AND valid_until >= $1
                 AND (matched_at IS NULL OR (matched_at AT TIME ZONE 'Asia/Makassar')::date < valid_from) ORDER BY id""",
            today,
        )
        return [r["id"] for r in rows]

    async def pledges_past_window(self, today: date) -> list[uuid.UUID]:
        rows = await self._conn.fetch("SELECT id FROM pledge WHERE status <> 'closed' AND valid_until < $1 ORDER BY id", today)
        return [r["id"] for r in rows]


class FundingUnitOfWork(UnitOfWork[EventPayload]):
    """Handlers emit integration-event payloads; the envelopes are made at commit."""

    store: FundingStore


class PgFundingUnitOfWork(FundingUnitOfWork):
    def __init__(
        self,
        transaction: PgTransaction,
        *,
        correlation_id: uuid.UUID,
        causation: Envelope | None = None,
    ) -> None:
        super().__init__()
        self._transaction = transaction
        self._correlation_id = causation.correlation_id if causation else correlation_id
        self._causation_id = causation.event_id if causation else None

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.store = PgFundingStore(await self._transaction.begin())
        return self

    async def commit(self) -> None:
        envelopes = [
            new_envelope(p, producer="funding", correlation_id=self._correlation_id, causation_id=self._causation_id)
            for p in self.events
        ]
        await self._transaction.commit(envelopes)
        self.events = []

    async def rollback(self) -> None:
        await self._transaction.rollback()


# ---------------------------------------------------------------------------------------------------------------
# Read side
# ---------------------------------------------------------------------------------------------------------------


class FundingQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def sponsors(self) -> list[asyncpg.Record]:
        return await self._pool.fetch("SELECT * FROM sponsor ORDER BY name")

    async def pledges(self, sponsor_id: uuid.UUID | None = None) -> list[Pledge]:
        rows = await self._pool.fetch(
            _PLEDGE_SELECT + (" WHERE p.sponsor_id = $1" if sponsor_id else "") + " ORDER BY p.created_at",
            *([sponsor_id] if sponsor_id else []),
        )
        return [pledge_from_row(r) for r in rows]

    async def pledge(self, pledge_id: uuid.UUID) -> Pledge | None:
        async with self._pool.acquire() as conn:
            return await PgFundingStore(conn).pledge(pledge_id)

    async def offers(self, *, pledge_id: uuid.UUID | None = None, business_id: uuid.UUID | None = None,
                     status: str | None = None) -> list[Offer]:  # fmt: skip
        clauses, args = [], []
        for column, value in (("pledge_id", pledge_id), ("business_id", business_id), ("status", status)):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = await self._pool.fetch(f"SELECT * FROM offer{where} ORDER BY offered_at, rank NULLS LAST, id", *args)
        return [offer_from_row(r) for r in rows]

    async def business(self, business_id: uuid.UUID) -> BusinessView | None:
        row = await self._pool.fetchrow("SELECT * FROM business_view WHERE business_id = $1", business_id)
        return view_from_row(row) if row else None

    async def candidates(self, pledge: Pledge) -> list[BusinessView]:
        async with self._pool.acquire() as conn:
            return await PgFundingStore(conn).candidates(pledge)

    async def breakdown(self, pledge_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
        """Offers by state, kecamatan and scale (of the business as funding knows it) for the report."""
        return await self._pool.fetch(
            """SELECT o.status, coalesce(b.kecamatan_code, '?') AS kecamatan_code, coalesce(b.scale, '?') AS scale,
                      count(*) AS businesses, sum(o.amount_rupiah) AS amount
                 FROM offer o LEFT JOIN business_view b ON b.business_id = o.business_id
                WHERE o.pledge_id = ANY($1::uuid[])
                GROUP BY 1, 2, 3""",
            list(pledge_ids),
        )

    async def offer_sums(self, pledge_id: uuid.UUID) -> dict[str, int]:
        rows = await self._pool.fetch(
            "SELECT status, sum(amount_rupiah) AS amount FROM offer WHERE pledge_id = $1 GROUP BY status", pledge_id
        )
        return {r["status"]: int(r["amount"]) for r in rows}

    async def money_by_sponsor(self) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            """SELECT s.name, sum(p.total_rupiah) AS pledged, sum(p.reserved_rupiah) AS reserved,
                      sum(p.accepted_rupiah) AS accepted, sum(p.disbursed_rupiah) AS disbursed
                 FROM sponsor s JOIN pledge p ON p.sponsor_id = s.id GROUP BY s.name"""
        )

"""Funding's store on PostgreSQL: the SQL of changes, and the row mappings its read side shares."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache

import asyncpg

from services.funding.domain.events import DomainEvent
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge
from services.funding.domain.view import BusinessView
from shared import idempotency
from shared.contracts.funding import Earmarks
from shared.db import Where, hold_gate, lock_ids, newer_version_upsert
from shared.messaging.catch_up import catching_up
from shared.unit_of_work import PgUnitOfWork
from services.funding.store import FundingStore, FundingUnitOfWork, PartnerOutcome, TrainingFact
from services.funding.subscribers import TRAINING, VIEW

_BUSINESS_LOCK = 0x66_75_6E_64  # "fund"
_RANKING_LOCK = (0x72_61_6E_6B, 0)  # "rank"
_VIEWS_ON_LOOP_BELOW = 2_000  # candidates read into views on the event loop: a few milliseconds
_VIEW_COLUMNS = (
    "business_id", "version", "business_name", "contact_phone", "kecamatan_code", "kbli_code", "scale", "youth_owned",
    "women_owned", "nib_status", "status", "annual_sales_rupiah", "registered_at", "eligible_since",
)  # fmt: skip
# The registry's facts, the topics completed and the offers taken up, put together.
VIEW_SELECT = """
SELECT b.*, coalesce(t.topics, '{}') AS trainings, t.assessment, coalesce(f.funded, 0) AS funded_count
  FROM business_view b
  LEFT JOIN LATERAL (SELECT array_agg(topic) AS topics,
                            max(((assessment->>'management')::int + (assessment->>'leadership')::int
                                 + (assessment->>'business_prospects')::int) / 3) AS assessment
                       FROM business_training t WHERE t.business_id = b.business_id) t ON true
  LEFT JOIN LATERAL (SELECT count(*) AS funded FROM offer o
                      WHERE o.business_id = b.business_id AND o.status IN ('accepted', 'disbursed')) f ON true
"""
_SAVE_VIEW = newer_version_upsert("business_view", _VIEW_COLUMNS, key="business_id")
_OFFER_COLUMNS = (
    "id", "pledge_id", "business_id", "amount_rupiah", "status", "offered_at", "expires_at", "readiness", "rank",
    "ranking", "decided_at", "reason", "disbursed_at", "reference",
)  # fmt: skip
PLEDGE_SELECT = """
SELECT p.*, s.name AS sponsor_name, s.kind AS sponsor_kind
  FROM pledge p JOIN sponsor s ON s.id = p.sponsor_id
"""


def view_from_row(row: asyncpg.Record) -> BusinessView:
    return BusinessView(**{k: row[k] for k in _VIEW_COLUMNS}, trainings=frozenset(row["trainings"]),
                        assessment=row["assessment"], funded_count=row["funded_count"])  # fmt: skip


def pledge_from_row(row: asyncpg.Record) -> Pledge:
    fields = {f: row[f] for f in Pledge.__dataclass_fields__ if f != "earmarks"}
    return Pledge(**fields, earmarks=_earmarks(row["earmarks"]))


@lru_cache(maxsize=1024)
def _earmarks(text: str) -> Earmarks:
    # Every registry event looks at every open pledge; their earmarks rarely change, so parse each text once.
    return Earmarks.model_validate_json(text)


def offer_from_row(row: asyncpg.Record) -> Offer:
    data = {k: row[k] for k in _OFFER_COLUMNS}
    data["ranking"] = json.loads(data["ranking"]) if isinstance(data["ranking"], str) else data["ranking"]
    return Offer(**data)


def prefilter(earmarks: Earmarks) -> Where:
    """SQL that narrows the candidates cheaply; the domain rules then decide (they are the only source of truth)."""
    where = Where("b.status = 'active'")
    if earmarks.kecamatan_codes:
        where.add("b.kecamatan_code = ANY({}::text[])", list(earmarks.kecamatan_codes))
    if earmarks.kbli_prefixes:
        where.add("b.kbli_code LIKE ANY({}::text[])", [p + "%" for p in earmarks.kbli_prefixes])
    if earmarks.scales:
        where.add("b.scale = ANY({}::text[])", list(earmarks.scales))
    if earmarks.youth_owned_only:
        where.add("b.youth_owned")
    if earmarks.women_owned_only:
        where.add("b.women_owned")
    if earmarks.nib_required:
        where.add("b.nib_status = 'issued'")
    return where


_SAVE_PLEDGE = """UPDATE pledge SET status = $2, reserved_rupiah = $3, accepted_rupiah = $4, disbursed_rupiah = $5,
                         closed_at = $6, close_reason = $7, matched_at = $8 WHERE id = $1"""


def _pledge_counters(p: Pledge) -> tuple:
    return (p.id, p.status, p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah, p.closed_at, p.close_reason,
            p.matched_at)  # fmt: skip


class PgFundingStore(FundingStore):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lock_views(self, business_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        # Also the ids with no view row yet: a TrainingCompleted applied while the business's registration is
        # being applied would otherwise be read as missing by both, and the business matched without its training.
        await lock_ids(self._conn, _BUSINESS_LOCK, business_ids)
        rows = await self._conn.fetch(
            VIEW_SELECT + " WHERE b.business_id = ANY($1::uuid[]) ORDER BY b.business_id FOR UPDATE OF b",
            sorted(set(business_ids)),
        )
        return {r["business_id"]: view_from_row(r) for r in rows}

    async def business(self, business_id: uuid.UUID) -> BusinessView | None:
        row = await self._conn.fetchrow(VIEW_SELECT + " WHERE b.business_id = $1", business_id)
        return view_from_row(row) if row else None

    async def save_view(self, view: BusinessView) -> None:
        await self._conn.execute(_SAVE_VIEW, *(getattr(view, c) for c in _VIEW_COLUMNS))

    async def save_views(self, views: Sequence[BusinessView]) -> None:
        if len(views) == 1:
            return await self.save_view(views[0])
        if views:
            await self._conn.executemany(_SAVE_VIEW, [tuple(getattr(v, c) for c in _VIEW_COLUMNS) for v in views])

    async def add_training(self, fact: TrainingFact) -> bool:
        status = await self._conn.execute(
            """INSERT INTO business_training (business_id, topic, cohort_id, programme_id, completed_on,
                   participant_version, assessment) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
               ON CONFLICT (business_id, topic) DO UPDATE SET cohort_id = excluded.cohort_id,
                   programme_id = excluded.programme_id, completed_on = excluded.completed_on,
                   participant_version = excluded.participant_version, assessment = excluded.assessment
               WHERE business_training.participant_version < excluded.participant_version""",
            fact.business_id, fact.topic, fact.cohort_id, fact.programme_id, fact.completed_on,
            fact.participant_version, fact.assessment.model_dump_json() if fact.assessment else None,
        )  # fmt: skip
        return status.endswith(" 1")

    async def candidates(self, pledge: Pledge) -> list[BusinessView]:
        where = prefilter(pledge.earmarks)
        where.add("NOT EXISTS (SELECT 1 FROM offer o WHERE o.pledge_id = {} AND o.business_id = b.business_id)", pledge.id)
        rows = await self._conn.fetch(VIEW_SELECT + where.sql, *where.args)
        if len(rows) < _VIEWS_ON_LOOP_BELOW:
            return [view_from_row(r) for r in rows]
        return await asyncio.to_thread(lambda: [view_from_row(r) for r in rows])  # the city's: off the event loop

    async def sponsor(self, sponsor_id: uuid.UUID) -> tuple[str, str] | None:
        row = await self._conn.fetchrow("SELECT name, kind FROM sponsor WHERE id = $1", sponsor_id)
        return (row["name"], row["kind"]) if row else None

    async def add_sponsor(self, sponsor_id: uuid.UUID, name: str, kind: str, now: datetime) -> uuid.UUID | None:
        same_name = "SELECT id FROM sponsor WHERE lower(name) = lower($1)"
        existing = await self._conn.fetchval(same_name, name)
        if existing:
            return existing
        inserted = await self._conn.fetchval(
            "INSERT INTO sponsor (id, name, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
            sponsor_id, name, kind, now,
        )  # fmt: skip
        return None if inserted else await self._conn.fetchval(same_name, name)

    async def pledge(self, pledge_id: uuid.UUID) -> Pledge | None:
        row = await self._conn.fetchrow(PLEDGE_SELECT + " WHERE p.id = $1", pledge_id)
        return pledge_from_row(row) if row else None

    async def view_catching_up(self) -> bool:
        return await catching_up(self._conn, (VIEW, TRAINING))

    async def hold_ranking(self, alone: bool) -> None:
        await hold_gate(self._conn, _RANKING_LOCK, alone)

    async def lock_pledges(self, pledge_ids: Sequence[uuid.UUID]) -> list[Pledge]:
        if not pledge_ids:
            return []
        rows = await self._conn.fetch(
            PLEDGE_SELECT + " WHERE p.id = ANY($1::uuid[]) ORDER BY p.id FOR UPDATE OF p", sorted(set(pledge_ids))
        )
        return [pledge_from_row(r) for r in rows]

    async def unclosed_pledges(self) -> list[Pledge]:
        return [pledge_from_row(r) for r in await self._conn.fetch(PLEDGE_SELECT + " WHERE p.status <> 'closed' ORDER BY p.id")]

    async def add_pledge(self, p: Pledge) -> None:
        await self._conn.execute(
            """INSERT INTO pledge (id, sponsor_id, title, instrument, financing_programme, total_rupiah, amount_mode,
                   amount_per_business_rupiah, min_offer_rupiah, valid_from, valid_until, earmarks, status, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)""",
            p.id, p.sponsor_id, p.title, p.instrument, p.financing_programme, p.total_rupiah, p.amount_mode,
            p.amount_per_business_rupiah, p.min_offer_rupiah, p.valid_from, p.valid_until, p.earmarks.model_dump_json(),
            p.status, p.created_at,
        )  # fmt: skip

    async def claim_pledge_request(self, actor: str, key: str, fingerprint: bytes,
                                   pledge_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
        return await idempotency.claim_row(self._conn, "pledge_request", "pledge_id", actor, key, fingerprint,
                                           pledge_id)  # fmt: skip

    async def save_pledge(self, p: Pledge) -> None:
        await self._conn.execute(_SAVE_PLEDGE, *_pledge_counters(p))

    async def save_pledges(self, pledges: Sequence[Pledge]) -> None:
        if len(pledges) == 1:
            return await self.save_pledge(pledges[0])
        if pledges:
            await self._conn.executemany(_SAVE_PLEDGE, [_pledge_counters(p) for p in pledges])

    async def pledges_to_start(self, today: date) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            """SELECT id FROM pledge WHERE status <> 'closed' AND valid_from <= $1 AND valid_until >= $1
                 AND (matched_at IS NULL OR (matched_at AT TIME ZONE 'Asia/Makassar')::date < valid_from) ORDER BY id""",
            today,
        )
        return [r["id"] for r in rows]

    async def pledges_to_rematch(self, today: date) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            """SELECT id FROM pledge WHERE status = 'open' AND valid_from <= $1 AND valid_until >= $1
                 AND (matched_at AT TIME ZONE 'Asia/Makassar')::date >= valid_from
                 AND (matched_at AT TIME ZONE 'Asia/Makassar')::date < $1 ORDER BY id""",
            today,
        )
        return [r["id"] for r in rows]

    async def pledges_past_window(self, today: date) -> list[uuid.UUID]:
        rows = await self._conn.fetch("SELECT id FROM pledge WHERE status <> 'closed' AND valid_until < $1 ORDER BY id", today)
        return [r["id"] for r in rows]

    async def pledges_with_due_offers(self, now: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT DISTINCT pledge_id FROM offer WHERE status = 'offered' AND expires_at <= $1 ORDER BY pledge_id LIMIT $2",
            now, limit,
        )  # fmt: skip
        return [r["pledge_id"] for r in rows]

    async def offer(self, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer | None:
        row = await self._conn.fetchrow("SELECT * FROM offer WHERE id = $1" + (" FOR UPDATE" if for_update else ""), offer_id)
        return offer_from_row(row) if row else None

    async def has_offer(self, pledge_id: uuid.UUID, business_id: uuid.UUID) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT 1 FROM offer WHERE pledge_id = $1 AND business_id = $2", pledge_id, business_id))  # fmt: skip

    async def offered_pairs(self, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        if not pairs:
            return set()
        rows = await self._conn.fetch(
            "SELECT o.pledge_id, o.business_id FROM offer o"
            " JOIN unnest($1::uuid[], $2::uuid[]) AS w(pledge_id, business_id)"
            " ON o.pledge_id = w.pledge_id AND o.business_id = w.business_id",
            [p for p, _ in pairs], [b for _, b in pairs],
        )  # fmt: skip
        return {(r["pledge_id"], r["business_id"]) for r in rows}

    async def add_offers(self, offers: Sequence[Offer]) -> None:
        if not offers:
            return
        records = [tuple(json.dumps(o.ranking) if c == "ranking" else getattr(o, c) for c in _OFFER_COLUMNS) for o in offers]
        if len(records) < 32:
            placeholders = ", ".join(f"${i}" + ("::json" if c == "ranking" else "") for i, c in enumerate(_OFFER_COLUMNS, 1))
            await self._conn.executemany(f"INSERT INTO offer ({', '.join(_OFFER_COLUMNS)}) VALUES ({placeholders})", records)
        else:
            await self._conn.copy_records_to_table("offer", records=records, columns=_OFFER_COLUMNS)

    async def save_offer(self, o: Offer) -> None:
        await self._conn.execute(
            "UPDATE offer SET status = $2, decided_at = $3, reason = $4, disbursed_at = $5, reference = $6 WHERE id = $1",
            o.id, o.status, o.decided_at, o.reason, o.disbursed_at, o.reference,
        )  # fmt: skip

    async def unanswered_offers_of(self, business_ids: Sequence[uuid.UUID]) -> list[Offer]:
        rows = await self._conn.fetch(
            "SELECT * FROM offer WHERE business_id = ANY($1::uuid[]) AND status = 'offered'"
            " ORDER BY pledge_id, id",
            list(business_ids),
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


    async def add_partner_outcome(self, o: PartnerOutcome) -> None:
        await self._conn.execute(
            """INSERT INTO partner_outcome (event_id, partner_id, consent_id, offer_id, kind, amount_rupiah, happened_on)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
            o.event_id, o.partner_id, o.consent_id, o.offer_id, o.kind, o.amount_rupiah, o.happened_on,
        )  # fmt: skip


class PgFundingUnitOfWork(PgUnitOfWork[DomainEvent], FundingUnitOfWork):
    def bind(self, conn: asyncpg.Connection) -> None:
        self.store = PgFundingStore(conn)

"""The registry's SQL: the unit of work that commits a change with its outbox events, and the read queries."""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

import asyncpg

from services.registry.domain import (
    Business,
    DomainEvent,
    DuplicateCandidate,
    NibApplication,
    YouthRange,
    name_key,
)
from shared.contracts.envelope import Envelope
from shared.messaging.transaction import PgTransaction
from shared.unit_of_work import UnitOfWork as BaseUnitOfWork
from shared.reference.wilayah import Wilayah


@dataclass(frozen=True, slots=True)
class StoredIdentity:
    """What only the store holds about an owner's NIK."""

    digest: bytes
    ciphertext: bytes


class BusinessStore(abc.ABC):
    """The businesses and NIB applications a unit of work reads and changes."""

    @abc.abstractmethod
    async def lock_identities(self) -> None:
        """Serialise duplicate checks with concurrent registrations and imports."""

    @abc.abstractmethod
    async def duplicate_candidates(self, nik_digests: Sequence[bytes], phones: Sequence[str]) -> list[tuple[bytes, str, DuplicateCandidate]]:
        """Businesses sharing any of these NIK digests or phones, as (digest, phone, candidate)."""

    @abc.abstractmethod
    async def add(self, businesses: Sequence[tuple[Business, StoredIdentity, str]]) -> None:
        """Insert new businesses with their protected NIK and source (officer, import)."""

    @abc.abstractmethod
    async def get(self, business_id: uuid.UUID, *, for_update: bool = False) -> Business | None: ...

    @abc.abstractmethod
    async def get_many_by_identity(self, keys: Sequence[tuple[bytes, str]]) -> dict[tuple[bytes, str], Business]:
        """Existing businesses by (NIK digest, name key), locked for update; how an import recognises its rows."""

    @abc.abstractmethod
    async def save(self, business: Business) -> None: ...

    @abc.abstractmethod
    async def nib_holders(self, nibs: Sequence[str]) -> dict[str, uuid.UUID]: ...

    @abc.abstractmethod
    async def pending_application(self, business_id: uuid.UUID) -> NibApplication | None: ...

    @abc.abstractmethod
    async def get_application(self, application_id: uuid.UUID) -> NibApplication | None: ...

    @abc.abstractmethod
    async def save_application(self, application: NibApplication) -> None: ...

    @abc.abstractmethod
    async def nik_ciphertext(self, business_id: uuid.UUID) -> bytes | None: ...


class UnitOfWork(BaseUnitOfWork[DomainEvent]):
    businesses: BusinessStore


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------------

_IDENTITY_LOCK = 0x72_65_67_69  # "regi"

_BUSINESS_COLUMNS = (
    "id", "version", "business_name", "name_key", "owner_name", "owner_gender", "owner_birth_date", "nik_digest",
    "nik_ciphertext", "nik_masked", "phone", "kbli_code", "kbli_version", "kecamatan_code", "kelurahan_code",
    "address", "capital_rupiah", "annual_sales_rupiah", "scale", "scale_basis", "nib_status", "nib", "status",
    "registered_at", "updated_at", "closed_at", "closed_reason", "source",
)  # fmt: skip

_SELECT_BUSINESS = """
SELECT id, version, business_name, owner_name, owner_gender, owner_birth_date, nik_masked, phone, kbli_code,
       kbli_version, kecamatan_code, kelurahan_code, address, capital_rupiah, annual_sales_rupiah, scale,
       scale_basis, nib_status, nib, status, registered_at, updated_at, closed_at, closed_reason
  FROM business
"""


def business_from_row(row: asyncpg.Record, wilayah: Wilayah) -> Business:
    data = dict(row)
    kelurahan = wilayah.find_kelurahan(data.pop("kelurahan_code"))
    data.pop("kecamatan_code")
    data.pop("nik_digest", None)
    data.pop("name_key", None)
    assert kelurahan is not None, "stored kelurahan codes come from the reference data"
    return Business(**data, kecamatan=kelurahan.kecamatan, kelurahan=kelurahan)


def _business_record(business: Business, identity: StoredIdentity, source: str) -> tuple[Any, ...]:
    return (
        business.id, business.version, business.business_name, name_key(business.business_name), business.owner_name,
        business.owner_gender, business.owner_birth_date, identity.digest, identity.ciphertext, business.nik_masked,
        business.phone, business.kbli_code, business.kbli_version, business.kecamatan.code, business.kelurahan.code,
        business.address, business.capital_rupiah, business.annual_sales_rupiah, business.scale,
        business.scale_basis, business.nib_status, business.nib, business.status, business.registered_at,
        business.updated_at, business.closed_at, business.closed_reason, source,
    )  # fmt: skip


class PgBusinessStore(BusinessStore):
    def __init__(self, conn: asyncpg.Connection, wilayah: Wilayah) -> None:
        self._conn = conn
        self._wilayah = wilayah

    async def lock_identities(self) -> None:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", _IDENTITY_LOCK)

    async def duplicate_candidates(self, nik_digests: Sequence[bytes], phones: Sequence[str]) -> list[tuple[bytes, str, DuplicateCandidate]]:
        rows = await self._conn.fetch(
            "SELECT id, business_name, nik_digest, phone, status FROM business"
            " WHERE nik_digest = ANY($1::bytea[]) OR phone = ANY($2::text[])",
            list(nik_digests),
            list(phones),
        )
        digests, phone_set = set(nik_digests), set(phones)
        return [
            (
                r["nik_digest"],
                r["phone"],
                DuplicateCandidate(r["id"], r["business_name"], r["nik_digest"] in digests, r["phone"] in phone_set, r["status"]),
            )
            for r in rows
        ]

    async def add(self, businesses: Sequence[tuple[Business, StoredIdentity, str]]) -> None:
        records = [_business_record(b, identity, source) for b, identity, source in businesses]
        if len(records) == 1:
            placeholders = ", ".join(f"${i}" for i in range(1, len(_BUSINESS_COLUMNS) + 1))
            await self._conn.execute(
                f"INSERT INTO business ({', '.join(_BUSINESS_COLUMNS)}) VALUES ({placeholders})", *records[0]
            )
        elif records:
            await self._conn.copy_records_to_table("business", records=records, columns=_BUSINESS_COLUMNS)

    async def get(self, business_id: uuid.UUID, *, for_update: bool = False) -> Business | None:
        row = await self._conn.fetchrow(_SELECT_BUSINESS + " WHERE id = $1" + (" FOR UPDATE" if for_update else ""), business_id)
        return business_from_row(row, self._wilayah) if row else None

    async def get_many_by_identity(self, keys: Sequence[tuple[bytes, str]]) -> dict[tuple[bytes, str], Business]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            _SELECT_BUSINESS.replace("SELECT id,", "SELECT nik_digest, name_key, id,")
            + " WHERE (nik_digest, name_key) IN (SELECT * FROM unnest($1::bytea[], $2::text[])) ORDER BY id FOR UPDATE",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        found = {}
        for row in rows:
            key = (row["nik_digest"], row["name_key"])
            found.setdefault(key, business_from_row(row, self._wilayah))
        return found

    async def save(self, business: Business) -> None:
        await self._conn.execute(
            """UPDATE business SET version = $2, business_name = $3, name_key = $4, owner_name = $5, phone = $6,
                      kbli_code = $7, kbli_version = $8, kecamatan_code = $9, kelurahan_code = $10, address = $11,
                      capital_rupiah = $12, annual_sales_rupiah = $13, scale = $14, scale_basis = $15,
                      nib_status = $16, nib = $17, status = $18, updated_at = $19, closed_at = $20,
                      closed_reason = $21
                WHERE id = $1""",
            business.id, business.version, business.business_name, name_key(business.business_name),
            business.owner_name, business.phone, business.kbli_code, business.kbli_version, business.kecamatan.code,
            business.kelurahan.code, business.address, business.capital_rupiah, business.annual_sales_rupiah,
            business.scale, business.scale_basis, business.nib_status, business.nib, business.status,
            business.updated_at, business.closed_at, business.closed_reason,
        )  # fmt: skip

    async def nib_holders(self, nibs: Sequence[str]) -> dict[str, uuid.UUID]:
        rows = await self._conn.fetch("SELECT nib, id FROM business WHERE nib = ANY($1::text[])", list(nibs))
        return {r["nib"]: r["id"] for r in rows}

    async def pending_application(self, business_id: uuid.UUID) -> NibApplication | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM nib_application WHERE business_id = $1 AND status = 'pending'", business_id
        )
        return NibApplication(**dict(row)) if row else None

    async def get_application(self, application_id: uuid.UUID) -> NibApplication | None:
        row = await self._conn.fetchrow("SELECT * FROM nib_application WHERE id = $1 FOR UPDATE", application_id)
        return NibApplication(**dict(row)) if row else None

    async def save_application(self, application: NibApplication) -> None:
        await self._conn.execute(
            """INSERT INTO nib_application (id, business_id, applied_at, status, nib, issued_on, reason, decided_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (id) DO UPDATE SET status = excluded.status, nib = excluded.nib,
                   issued_on = excluded.issued_on, reason = excluded.reason, decided_at = excluded.decided_at""",
            application.id, application.business_id, application.applied_at, application.status, application.nib,
            application.issued_on, application.reason, application.decided_at,
        )  # fmt: skip

    async def nik_ciphertext(self, business_id: uuid.UUID) -> bytes | None:
        return await self._conn.fetchval("SELECT nik_ciphertext FROM business WHERE id = $1", business_id)


EventTranslator = Callable[[list[DomainEvent], uuid.UUID], list[Envelope]]


class PgUnitOfWork(UnitOfWork):
    def __init__(
        self,
        pool: asyncpg.Pool,
        wilayah: Wilayah,
        translate: EventTranslator,
        correlation_id: uuid.UUID,
        route: Callable[[Envelope], str] | None = None,
    ) -> None:
        super().__init__()
        self._transaction = PgTransaction(pool, route=route)
        self._wilayah = wilayah
        self._translate = translate
        self.correlation_id = correlation_id

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.businesses = PgBusinessStore(await self._transaction.begin(), self._wilayah)
        return self

    async def commit(self) -> None:
        await self._transaction.commit(self._translate(self.events, self.correlation_id))

    async def rollback(self) -> None:
        await self._transaction.rollback()


# ---------------------------------------------------------------------------------------------------------------
# Read side
# ---------------------------------------------------------------------------------------------------------------


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


def _youth_bounds(youth: YouthRange, today: date) -> tuple[date, date]:
    """Birth dates of owners within the youth range today: after the first (exclusive), up to the second."""
    # age >= min_age  <=>  born on or before today minus min_age years; age <= max_age  <=>  born after
    # today minus (max_age + 1) years.
    return _years_before(today, youth.max_age + 1), _years_before(today, youth.min_age)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class RegisterQueries:
    """Searches and figures over the register, straight from SQL."""

    def __init__(self, pool: asyncpg.Pool, wilayah: Wilayah, youth: YouthRange) -> None:
        self._pool = pool
        self._wilayah = wilayah
        self._youth = youth

    def _where(self, f: SearchFilters, today: date) -> tuple[str, list[Any]]:
        clauses, args = [], []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.replace("?", f"${len(args)}"))

        if f.kecamatan_code:
            add("kecamatan_code = ?", f.kecamatan_code)
        if f.kelurahan_code:
            add("kelurahan_code = ?", f.kelurahan_code)
        if f.kbli:
            add("kbli_code LIKE ?", f.kbli + "%")
        if f.scale:
            add("scale = ?", f.scale)
        if f.nib_status:
            add("nib_status = ?", f.nib_status)
        if f.status:
            add("status = ?", f.status)
        if f.women_owned is not None:
            add("owner_gender = ?", "P" if f.women_owned else "L")
        if f.youth_owned is not None:
            lower, upper = _youth_bounds(self._youth, today)
            args.extend([lower, upper])
            inside = f"(owner_birth_date > ${len(args) - 1} AND owner_birth_date <= ${len(args)})"
            clauses.append(inside if f.youth_owned else f"NOT {inside}")
        if f.name:
            add("business_name ILIKE ?", "%" + f.name.replace("%", r"\%").replace("_", r"\_") + "%")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def search(self, f: SearchFilters, today: date, *, page: int, page_size: int) -> tuple[int, list[Business]]:
        where, args = self._where(f, today)
        async with self._pool.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM business" + where, *args)
            rows = await conn.fetch(
                _SELECT_BUSINESS + where + f" ORDER BY registered_at DESC, id LIMIT {page_size} OFFSET {(page - 1) * page_size}",
                *args,
            )
        return total, [business_from_row(r, self._wilayah) for r in rows]

    async def get(self, business_id: uuid.UUID) -> Business | None:
        row = await self._pool.fetchrow(_SELECT_BUSINESS + " WHERE id = $1", business_id)
        return business_from_row(row, self._wilayah) if row else None

    async def nib_applications(self, business_id: uuid.UUID) -> list[NibApplication]:
        rows = await self._pool.fetch(
            "SELECT * FROM nib_application WHERE business_id = $1 ORDER BY applied_at", business_id
        )
        return [NibApplication(**dict(r)) for r in rows]

    async def coverage(self) -> list[tuple[str, int, int]]:
        """(kecamatan code, active businesses, of which with an NIB), for every kecamatan."""
        rows = await self._pool.fetch(
            "SELECT kecamatan_code, count(*) AS registered, count(*) FILTER (WHERE nib_status = 'issued') AS with_nib"
            " FROM business WHERE status = 'active' GROUP BY kecamatan_code"
        )
        by_code = {r["kecamatan_code"]: (r["registered"], r["with_nib"]) for r in rows}
        return [(k.code, *by_code.get(k.code, (0, 0))) for k in self._wilayah.kecamatan]

    async def counts_by_status(self) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT nib_status, count(*) FROM business WHERE status = 'active' GROUP BY 1")
        return {r[0]: r[1] for r in rows}

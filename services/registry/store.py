"""The registry's SQL for changes: the businesses and NIB applications a unit of work reads and writes."""

from __future__ import annotations

import abc
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.registry.domain.business import Business, DomainEvent, NibApplication
from services.registry.domain.consent import Consent, Partner
from services.registry.domain.duplicates import DuplicateCandidate, Identity, business_identity, business_name_key
from services.registry.domain.scale import YouthRange
from shared.errors import Conflict
from shared.reference.wilayah import Wilayah
from shared.unit_of_work import PgUnitOfWork, UnitOfWork


@dataclass(frozen=True, slots=True)
class StoredIdentity:
    """What only the store holds about an owner's NIK."""

    digest: bytes
    ciphertext: bytes


class BusinessStore(abc.ABC):
    """The businesses and NIB applications a unit of work reads and changes."""

    @abc.abstractmethod
    async def lock_identities(self, nik_digests: Sequence[bytes], phones: Sequence[str], nibs: Sequence[str]) -> None:
        """Until the unit of work ends, no other registration or import sharing one of these NIKs, phones or NIBs
        checks for duplicates: of two that would each find the other, one waits and finds it. Once per unit of work:
        a second call could ask alone for a stripe the first holds shared, and two doing so wait for each other."""

    @abc.abstractmethod
    async def nik_digest(self, business_id: uuid.UUID) -> bytes | None:
        """The owner's NIK digest, without a lock: for the identity lock a rename takes before the business's row."""

    @abc.abstractmethod
    async def duplicate_candidates(self, nik_digests: Sequence[bytes], phones: Sequence[str]) -> list[tuple[bytes, str, DuplicateCandidate]]:
        """Businesses sharing any of these NIK digests or phones, as (digest, phone, candidate)."""

    @abc.abstractmethod
    async def add(self, businesses: Sequence[tuple[Business, StoredIdentity, str]]) -> None:
        """Insert new businesses with their protected NIK and source (officer, import)."""

    @abc.abstractmethod
    async def get(self, business_id: uuid.UUID) -> Business | None:
        """The business, locked until the unit of work ends."""

    @abc.abstractmethod
    async def get_many_by_identity(self, keys: Sequence[Identity]) -> dict[Identity, Business]:
        """Existing businesses by `business_identity`, locked; how an import recognises its rows."""

    @abc.abstractmethod
    async def save(self, business: Business) -> None:
        """Raises Conflict if its NIB is already another business's (two outcomes racing with one NIB)."""

    @abc.abstractmethod
    async def nib_holders(self, nibs: Sequence[str]) -> dict[str, uuid.UUID]: ...

    async def clashes(self, nik_digests: Sequence[bytes], phones: Sequence[str], nibs: Sequence[str],
                      ) -> tuple[list[tuple[bytes, str, DuplicateCandidate]], dict[str, uuid.UUID]]:  # fmt: skip
        """`duplicate_candidates` and `nib_holders` at once: what a registration checks before it is added. The
        PostgreSQL store reads both in one statement (a round trip less per registration)."""
        return await self.duplicate_candidates(nik_digests, phones), await self.nib_holders(nibs) if nibs else {}

    @abc.abstractmethod
    async def pending_application(self, business_id: uuid.UUID) -> NibApplication | None: ...

    @abc.abstractmethod
    async def get_application(self, application_id: uuid.UUID) -> NibApplication | None: ...

    @abc.abstractmethod
    async def save_application(self, application: NibApplication) -> None: ...

    @abc.abstractmethod
    async def nik_ciphertext(self, business_id: uuid.UUID) -> bytes | None: ...

    @abc.abstractmethod
    async def partner(self, partner_id: str, *, to_change: bool = False) -> Partner | None:
        """Locked until the unit of work ends: shared, or exclusively when it is `to_change` (two changes that
        each held a shared lock would wait for each other)."""

    @abc.abstractmethod
    async def save_partner(self, partner: Partner) -> None: ...

    @abc.abstractmethod
    async def add_consent(self, consent: Consent) -> None: ...

    @abc.abstractmethod
    async def consent(self, consent_id: uuid.UUID) -> Consent | None:
        """Locked until the unit of work ends."""

    @abc.abstractmethod
    async def save_consent(self, consent: Consent) -> None: ...

    @abc.abstractmethod
    async def active_consents(self, business_id: uuid.UUID) -> list[Consent]:
        """The business's consents not withdrawn, oldest first."""

    @abc.abstractmethod
    async def withdrawn_consents(self, partner_id: str) -> list[Consent]:
        """The partner's consents that were withdrawn, oldest withdrawal first."""

    @abc.abstractmethod
    async def published_coverage(self) -> dict[str, tuple[int, int]]:
        """(registered, with NIB) as last published, by region code; locked, so two publishers don't both publish."""

    @abc.abstractmethod
    async def coverage_counts(self) -> dict[str, tuple[int, int]]:
        """(active businesses, those with an NIB) by kecamatan code, as they are now."""

    @abc.abstractmethod
    async def save_published_coverage(self, region_code: str, registered: int, with_nib: int, at: datetime) -> None: ...

    @abc.abstractmethod
    async def youth_flag_stale(self, youth: YouthRange, first_of_month: date, limit: int) -> list[Business]:
        """Active businesses whose published youth flag differs from this month's, locked (skipping rows another
        sweep holds)."""


class RegistryUnitOfWork(UnitOfWork[DomainEvent]):
    businesses: BusinessStore


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------------

# Registrations and imports lock what makes two businesses duplicates (NIK, phone, NIB) rather than the whole
# register, so officers registering different owners do not queue behind one another (one lock for all capped
# single registrations at about 140/s). Each value hashes to one of 128 stripes of its kind, with crc32, the same in
# every replica (Python's hash() is not). An import's chunk holds its stripes alone: at most 3 x 128 locks however
# many rows it has. A registration holds its few stripes shared and each value's own lock alone: with the stripes
# alone, one registration in nine at 200/s waited for another's commit that merely shared a stripe (35 ms at p99),
# while two registrations of one value, or a registration and an import over its stripe, still wait for each other.
_IDENTITY_STRIPES = 128
_IDENTITY_LOCK_KINDS = {"nik": 0x72_65_67_69, "phone": 0x72_65_67_70, "nib": 0x72_65_67_71}  # "regi", "regp", "regq"
# A value's own lock: the same kinds with the high bit set (still an int4), and its whole crc32 as the second key.
_VALUE_LOCK = -(1 << 31)
# Up to this many values, each is locked on its own; past it (an import's chunk), whole stripes.
_FEW_VALUES = 16


@dataclass(frozen=True, order=True, slots=True)
class IdentityLock:
    """One advisory lock (two int4 keys), held shared or alone until the transaction ends."""

    kind: int
    key: int
    shared: bool = False


def _int4(crc: int) -> int:
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def identity_locks(nik_digests: Sequence[bytes], phones: Sequence[str], nibs: Sequence[str]) -> list[IdentityLock]:
    """The advisory locks covering these values, in the order to take them: every stripe before any value's own lock,
    each part sorted, so a transaction only ever waits for a lock above all it holds and two never wait for each
    other."""
    crcs = {(_IDENTITY_LOCK_KINDS["nik"], zlib.crc32(d)) for d in nik_digests}
    crcs |= {(_IDENTITY_LOCK_KINDS["phone"], zlib.crc32(p.encode())) for p in phones}
    crcs |= {(_IDENTITY_LOCK_KINDS["nib"], zlib.crc32(n.encode())) for n in nibs}
    few = len(crcs) <= _FEW_VALUES
    stripes = sorted({IdentityLock(kind, crc % _IDENTITY_STRIPES, shared=few) for kind, crc in crcs})
    if not few:
        return stripes
    return stripes + sorted(IdentityLock(kind | _VALUE_LOCK, _int4(crc)) for kind, crc in crcs)


# The one mapping between a Business and its row; inserts, updates and reads all follow it.
_FIELDS = (
    "id", "version", "business_name", "owner_name", "owner_gender", "owner_birth_date", "nik_masked", "phone",
    "kbli_code", "kbli_version", "address", "capital_rupiah", "annual_sales_rupiah", "scale", "scale_basis",
    "nib_status", "nib", "status", "registered_at", "updated_at", "youth_owned", "closed_at", "closed_reason",
)  # fmt: skip
_DERIVED = ("name_key", "kecamatan_code", "kelurahan_code")  # columns computed from the business
_ONCE = ("nik_digest", "nik_ciphertext", "source")  # written at registration, never changed
# Identity never changes: a different owner is a different registration.
_UPDATABLE = tuple(c for c in (*_FIELDS, *_DERIVED) if c not in ("id", "owner_gender", "owner_birth_date", "nik_masked",
                                                                  "registered_at"))  # fmt: skip
COVERAGE_COUNTS = ("SELECT kecamatan_code, count(*), count(*) FILTER (WHERE nib_status = 'issued') FROM business"
                   " WHERE status = 'active' GROUP BY kecamatan_code")
SELECT_BUSINESS = f"SELECT {', '.join(_FIELDS)}, kelurahan_code, nik_digest, name_key FROM business"


def business_from_row(row: asyncpg.Record, wilayah: Wilayah) -> Business:
    kelurahan = wilayah.find_kelurahan(row["kelurahan_code"])
    assert kelurahan is not None, "stored kelurahan codes come from the reference data"
    return Business(**{f: row[f] for f in _FIELDS}, kecamatan=kelurahan.kecamatan, kelurahan=kelurahan)


def _values(business: Business, columns: Sequence[str]) -> list[Any]:
    derived = {"name_key": business_name_key(business.business_name), "kecamatan_code": business.kecamatan.code,
               "kelurahan_code": business.kelurahan.code}  # fmt: skip
    return [derived[c] if c in derived else getattr(business, c) for c in columns]


_INSERT_COLUMNS = (*_FIELDS, *_DERIVED, *_ONCE)
_UPDATE = (
    "UPDATE business SET "
    + ", ".join(f"{c} = ${i}" for i, c in enumerate(_UPDATABLE, 2))
    + " WHERE id = $1"
)


_CANDIDATE = "id, business_name, nik_digest, phone, status, kecamatan_code"


def _candidate(r: asyncpg.Record, digests: set[bytes], phones: set[str]) -> tuple[bytes, str, DuplicateCandidate]:
    """(digest, phone, candidate) of a business row found by a NIK digest or a phone."""
    return (r["nik_digest"], r["phone"], DuplicateCandidate(r["id"], r["business_name"], r["nik_digest"] in digests,
                                                            r["phone"] in phones, r["status"],
                                                            kecamatan_code=r["kecamatan_code"]))  # fmt: skip


class PgBusinessStore(BusinessStore):
    def __init__(self, conn: asyncpg.Connection, wilayah: Wilayah) -> None:
        self._conn = conn
        self._wilayah = wilayah
        self._identities_locked = False

    def _business(self, row: asyncpg.Record) -> Business:
        return business_from_row(row, self._wilayah)

    async def lock_identities(self, nik_digests: Sequence[bytes], phones: Sequence[str], nibs: Sequence[str]) -> None:
        if self._identities_locked:
            raise RuntimeError("identity locks are taken once per unit of work, all at once: a second call may upgrade "
                               "a stripe held shared, and two transactions doing that deadlock")
        self._identities_locked = True
        locks = identity_locks(nik_digests, phones, nibs)
        # unnest yields the rows in the arrays' order, so the locks are taken in identity_locks' order.
        await self._conn.execute(
            "SELECT count(CASE WHEN shared THEN pg_advisory_xact_lock_shared(k, s)"
            " ELSE pg_advisory_xact_lock(k, s) END) FROM unnest($1::int[], $2::int[], $3::bool[]) AS t(k, s, shared)",
            [lock.kind for lock in locks], [lock.key for lock in locks], [lock.shared for lock in locks],
        )  # fmt: skip

    async def nik_digest(self, business_id: uuid.UUID) -> bytes | None:
        return await self._conn.fetchval("SELECT nik_digest FROM business WHERE id = $1", business_id)

    async def duplicate_candidates(self, nik_digests: Sequence[bytes], phones: Sequence[str]) -> list[tuple[bytes, str, DuplicateCandidate]]:
        rows = await self._conn.fetch(
            # Oldest first: where an owner has more businesses than are compared, the latest are (MOST_COMPARED).
            f"SELECT {_CANDIDATE} FROM business WHERE nik_digest = ANY($1::bytea[]) OR phone = ANY($2::text[])"
            " ORDER BY registered_at, id",
            list(nik_digests), list(phones),
        )  # fmt: skip
        digests, phone_set = set(nik_digests), set(phones)
        return [_candidate(r, digests, phone_set) for r in rows]

    async def add(self, businesses: Sequence[tuple[Business, StoredIdentity, str]]) -> None:
        records = [
            (*_values(b, (*_FIELDS, *_DERIVED)), identity.digest, identity.ciphertext, source)
            for b, identity, source in businesses
        ]
        if len(records) == 1:
            placeholders = ", ".join(f"${i}" for i in range(1, len(_INSERT_COLUMNS) + 1))
            await self._write(f"INSERT INTO business ({', '.join(_INSERT_COLUMNS)}) VALUES ({placeholders})", records[0])
        elif records:
            await self._conn.copy_records_to_table("business", records=records, columns=_INSERT_COLUMNS)

    async def get(self, business_id: uuid.UUID) -> Business | None:
        row = await self._conn.fetchrow(SELECT_BUSINESS + " WHERE id = $1 FOR UPDATE", business_id)
        return self._business(row) if row else None

    async def get_many_by_identity(self, keys: Sequence[Identity]) -> dict[Identity, Business]:
        if not keys:
            return {}
        looked_up = sorted({(digest, name_key) for digest, name_key, _ in keys})
        rows = await self._conn.fetch(
            SELECT_BUSINESS
            # An active business first: the one an import updates when the owner started again after closing one.
            + " WHERE (nik_digest, name_key) IN (SELECT * FROM unnest($1::bytea[], $2::text[]))"
            " ORDER BY status = 'closed', id FOR UPDATE",
            [k[0] for k in looked_up],
            [k[1] for k in looked_up],
        )
        wanted, found = set(keys), {}
        for row in rows:
            # The stored key leaves names in other scripts alike: the owner's 豆花 is not its 珍珠.
            key = business_identity(row["nik_digest"], row["business_name"], row["name_key"])
            if key in wanted:
                found.setdefault(key, self._business(row))
        return found

    async def save(self, business: Business) -> None:
        await self._write(_UPDATE, [business.id, *_values(business, _UPDATABLE)])

    async def _write(self, sql: str, args: Sequence[Any]) -> None:
        try:
            await self._conn.execute(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "business_nib_key":
                raise
            raise Conflict("this NIB was just recorded for another business; check the number", "nib_taken") from exc

    async def clashes(self, nik_digests: Sequence[bytes], phones: Sequence[str], nibs: Sequence[str],
                      ) -> tuple[list[tuple[bytes, str, DuplicateCandidate]], dict[str, uuid.UUID]]:  # fmt: skip
        rows = await self._conn.fetch(
            f"SELECT {_CANDIDATE}, nib FROM business"
            " WHERE nik_digest = ANY($1::bytea[]) OR phone = ANY($2::text[]) OR nib = ANY($3::text[])"
            " ORDER BY registered_at, id",
            list(nik_digests), list(phones), list(nibs),
        )  # fmt: skip
        digests, phone_set, nib_set = set(nik_digests), set(phones), set(nibs)
        candidates = [_candidate(r, digests, phone_set) for r in rows
                      if r["nik_digest"] in digests or r["phone"] in phone_set]  # fmt: skip
        return candidates, {r["nib"]: r["id"] for r in rows if r["nib"] in nib_set}

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

    async def partner(self, partner_id: str, *, to_change: bool = False) -> Partner | None:
        # FOR SHARE: a revoke committing meanwhile waits for this consent, or this consent sees the partner revoked;
        # without it the consent went out to a partner revoked a moment before.
        lock = "FOR UPDATE" if to_change else "FOR SHARE"
        row = await self._conn.fetchrow(f"SELECT id, name, active FROM partner WHERE id = $1 {lock}", partner_id)
        return Partner(**dict(row)) if row else None

    async def save_partner(self, partner: Partner) -> None:
        await self._conn.execute(
            "INSERT INTO partner (id, name, active) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, active = excluded.active",
            partner.id, partner.name, partner.active,
        )  # fmt: skip

    async def add_consent(self, c: Consent) -> None:
        await self._conn.execute(
            """INSERT INTO consent (id, business_id, partner_id, purpose, financing_programme, amount_sought_rupiah,
                   offer_id, given_at, given_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            c.id, c.business_id, c.partner_id, c.purpose, c.financing_programme, c.amount_sought_rupiah, c.offer_id,
            c.given_at, c.given_by,
        )  # fmt: skip

    async def consent(self, consent_id: uuid.UUID) -> Consent | None:
        row = await self._conn.fetchrow("SELECT * FROM consent WHERE id = $1 FOR UPDATE", consent_id)
        return Consent(**dict(row)) if row else None

    async def save_consent(self, c: Consent) -> None:
        await self._conn.execute("UPDATE consent SET withdrawn_at = $2, withdrawn_by = $3 WHERE id = $1",
                                 c.id, c.withdrawn_at, c.withdrawn_by)  # fmt: skip

    async def active_consents(self, business_id: uuid.UUID) -> list[Consent]:
        rows = await self._conn.fetch("SELECT * FROM consent WHERE business_id = $1 AND withdrawn_at IS NULL"
                                      " ORDER BY given_at, id", business_id)  # fmt: skip
        return [Consent(**dict(r)) for r in rows]

    async def withdrawn_consents(self, partner_id: str) -> list[Consent]:
        rows = await self._conn.fetch("SELECT * FROM consent WHERE partner_id = $1 AND withdrawn_at IS NOT NULL"
                                      " ORDER BY withdrawn_at, id", partner_id)  # fmt: skip
        return [Consent(**dict(r)) for r in rows]

    async def published_coverage(self) -> dict[str, tuple[int, int]]:
        await self._conn.execute("LOCK TABLE published_coverage IN SHARE ROW EXCLUSIVE MODE")
        rows = await self._conn.fetch("SELECT region_code, registered, with_nib FROM published_coverage")
        return {r["region_code"]: (r["registered"], r["with_nib"]) for r in rows}

    async def coverage_counts(self) -> dict[str, tuple[int, int]]:
        return {r[0]: (r[1], r[2]) for r in await self._conn.fetch(COVERAGE_COUNTS)}

    async def save_published_coverage(self, region_code: str, registered: int, with_nib: int, at: datetime) -> None:
        await self._conn.execute(
            """INSERT INTO published_coverage (region_code, registered, with_nib, published_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (region_code) DO UPDATE SET registered = excluded.registered, with_nib = excluded.with_nib,
                   published_at = excluded.published_at""",
            region_code, registered, with_nib, at,
        )  # fmt: skip

    async def youth_flag_stale(self, youth: YouthRange, first_of_month: date, limit: int) -> list[Business]:
        after, up_to = youth.birth_dates(first_of_month)
        rows = await self._conn.fetch(
            SELECT_BUSINESS + " WHERE status = 'active'"
            " AND youth_owned <> (owner_birth_date > $1 AND owner_birth_date <= $2)"
            " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
            after, up_to, limit,
        )  # fmt: skip
        return [self._business(r) for r in rows]


class PgRegistryUnitOfWork(PgUnitOfWork[DomainEvent], RegistryUnitOfWork):
    def __init__(self, *args: Any, wilayah: Wilayah, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wilayah = wilayah

    def bind(self, conn: asyncpg.Connection) -> None:
        self.businesses = PgBusinessStore(conn, self._wilayah)

"""The registry's use cases: each takes a command and its dependencies, runs the rules, and commits one unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from pydantic import ValidationError

from services.registry import domain
from services.registry.domain import (
    Business,
    BusinessChanges,
    DuplicateCandidate,
    NewBusiness,
    NibApplication,
    RegistrationForm,
    RegistrationRules,
)
from services.registry.nik_vault import NikVault
from services.registry.store import StoredIdentity, UnitOfWork
from shared.errors import Conflict, InvalidInput, NotFound
from shared.reference.wita import today_in_kupang


@dataclass(frozen=True)
class Deps:
    rules: RegistrationRules
    vault: NikVault
    clock: Callable[[], datetime]
    new_id: Callable[[], uuid.UUID] = uuid.uuid4


async def _load(uow: UnitOfWork, business_id: uuid.UUID) -> Business:
    business = await uow.businesses.get(business_id, for_update=True)
    if business is None:
        raise NotFound(f"no business {business_id}")
    return business


async def register_business(form: RegistrationForm, uow: UnitOfWork, deps: Deps, source: str = "officer") -> Business:
    now = deps.clock()
    new = domain.validate_registration(form, deps.rules, today_in_kupang(now))
    digest = deps.vault.digest(new.nik.digits)
    async with uow:
        await uow.businesses.lock_identities()
        if not form.confirm_distinct:
            found = await uow.businesses.duplicate_candidates([digest], [new.phone])
            duplicate = domain.probable_duplicate(form.business_name, [c for _, _, c in found], deps.rules)
            if duplicate:
                raise domain.duplicate_conflict(duplicate)
        if new.nib:
            holder = (await uow.businesses.nib_holders([new.nib])).get(new.nib)
            if holder:
                raise Conflict(f"NIB {new.nib} is already registered to business {holder}", "nib_taken",
                               {"existing_business_id": str(holder)})
        business = domain.register(new, deps.new_id(), now)
        await uow.businesses.add([(business, StoredIdentity(digest, deps.vault.encrypt(new.nik.digits)), source)])
        uow.emit(domain.Registered(business, source))
        await uow.commit()
    return business


async def update_business(business_id: uuid.UUID, changes: BusinessChanges, uow: UnitOfWork, deps: Deps) -> Business:
    async with uow:
        business = await _load(uow, business_id)
        updated, changed = domain.change(business, changes, deps.rules, deps.clock())
        if changed:
            await uow.businesses.save(updated)
            uow.emit(domain.Updated(updated, changed))
            await uow.commit()
    return updated


async def apply_for_nib(business_id: uuid.UUID, uow: UnitOfWork, deps: Deps) -> NibApplication:
    async with uow:
        business = await _load(uow, business_id)
        pending = await uow.businesses.pending_application(business_id)
        business, application = domain.apply_for_nib(business, pending, deps.new_id(), deps.clock())
        await uow.businesses.save(business)
        await uow.businesses.save_application(application)
        uow.emit(domain.NibApplied(business, application))
        await uow.commit()
    return application


async def _load_application(uow: UnitOfWork, business_id: uuid.UUID, application_id: uuid.UUID) -> NibApplication:
    application = await uow.businesses.get_application(application_id)
    if application is None or application.business_id != business_id:
        raise NotFound(f"no NIB application {application_id} for business {business_id}")
    return application


async def record_nib_issued(
    business_id: uuid.UUID, application_id: uuid.UUID, nib: str, issued_on: date | None, uow: UnitOfWork, deps: Deps
) -> NibApplication:
    now = deps.clock()
    async with uow:
        business = await _load(uow, business_id)
        application = await _load_application(uow, business_id, application_id)
        business, application = domain.issue_nib(business, application, nib, issued_on or today_in_kupang(now), now)
        holder = (await uow.businesses.nib_holders([application.nib or ""])).get(application.nib or "")
        if holder and holder != business_id:
            raise Conflict(f"NIB {application.nib} is already registered to business {holder}; check the number",
                           "nib_taken", {"existing_business_id": str(holder)})
        await uow.businesses.save(business)
        await uow.businesses.save_application(application)
        uow.emit(domain.NibIssued(business, application.id, application.nib or "", application.issued_on or now.date()))
        await uow.commit()
    return application


async def record_nib_rejected(
    business_id: uuid.UUID, application_id: uuid.UUID, reason: str, uow: UnitOfWork, deps: Deps
) -> NibApplication:
    async with uow:
        business = await _load(uow, business_id)
        application = await _load_application(uow, business_id, application_id)
        business, application = domain.reject_nib(business, application, reason, deps.clock())
        await uow.businesses.save(business)
        await uow.businesses.save_application(application)
        uow.emit(domain.NibRejected(business, application))
        await uow.commit()
    return application


async def close_business(business_id: uuid.UUID, reason: str, uow: UnitOfWork, deps: Deps) -> Business:
    async with uow:
        business = domain.close(await _load(uow, business_id), reason, deps.clock())
        await uow.businesses.save(business)
        uow.emit(domain.Closed(business))
        await uow.commit()
    return business


async def reveal_nik(business_id: uuid.UUID, uow: UnitOfWork, deps: Deps) -> str:
    async with uow:
        blob = await uow.businesses.nik_ciphertext(business_id)
    if blob is None:
        raise NotFound(f"no business {business_id}")
    return deps.vault.decrypt(blob)


# ---------------------------------------------------------------------------------------------------------------
# Bulk import
# ---------------------------------------------------------------------------------------------------------------

IMPORT_COLUMNS = tuple(RegistrationForm.model_fields)
REQUIRED_COLUMNS = tuple(n for n, f in RegistrationForm.model_fields.items() if f.is_required())


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    code: str
    message: str


@dataclass
class ImportReport:
    received: int = 0
    registered: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


def check_columns(columns: Sequence[str]) -> None:
    """Refuse a file whose header would make every row fail, before any row is looked at."""
    unknown = [c for c in columns if c not in IMPORT_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    duplicated = sorted({c for c in columns if list(columns).count(c) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {unknown}")
    if missing:
        problems.append(f"missing required column(s) {missing}")
    if duplicated:
        problems.append(f"column(s) {duplicated} appear twice")
    if problems:
        raise InvalidInput.one(
            "columns", "import.header", "; ".join(problems) + f". The columns are: {', '.join(IMPORT_COLUMNS)}"
        )


@dataclass
class _Row:
    line: int
    new: NewBusiness
    digest: bytes

    @property
    def identity(self) -> tuple[bytes, str]:
        return self.digest, domain.name_key(self.new.form.business_name)


def _validate_rows(rows: Sequence[tuple[int, dict[str, str]]], deps: Deps, today: date, report: ImportReport) -> list[_Row]:
    valid = []
    for line, values in rows:
        try:
            form = RegistrationForm.model_validate(values)
            new = domain.validate_registration(form, deps.rules, today)
        except ValidationError as exc:
            report.errors.extend(RowError(line, e.field, e.code, e.message) for e in domain.form_errors(exc))
            continue
        except InvalidInput as exc:
            report.errors.extend(RowError(line, e.field, e.code, e.message) for e in exc.errors)
            continue
        valid.append(_Row(line, new, deps.vault.digest(new.nik.digits)))
    return valid


def _changes_from(form: RegistrationForm) -> BusinessChanges:
    return BusinessChanges(
        business_name=form.business_name, owner_name=form.owner_name, phone=form.phone, kbli_code=form.kbli_code,
        kbli_version=form.kbli_version, kecamatan=form.kecamatan, kelurahan=form.kelurahan, address=form.address,
        capital_rupiah=form.capital_rupiah, annual_sales_rupiah=form.annual_sales_rupiah,
    )  # fmt: skip


async def import_rows(rows: Sequence[tuple[int, dict[str, str]]], uow: UnitOfWork, deps: Deps) -> ImportReport:
    """Register the good rows, report each bad one by line; a row already registered changes nothing
    (or, if the city's list now says something new about it, updates it)."""
    now = deps.clock()
    today = today_in_kupang(now)
    report = ImportReport(received=len(rows))
    valid = _validate_rows(rows, deps, today, report)
    if not valid:
        return report

    def reject(row: _Row, field_name: str, code: str, message: str) -> None:
        report.errors.append(RowError(row.line, field_name, code, message))

    async with uow:
        await uow.businesses.lock_identities()
        existing = await uow.businesses.get_many_by_identity([r.identity for r in valid])
        found = await uow.businesses.duplicate_candidates([r.digest for r in valid], [r.new.phone for r in valid])
        by_digest: dict[bytes, list[DuplicateCandidate]] = {}
        by_phone: dict[str, list[DuplicateCandidate]] = {}
        for digest, phone, candidate in found:
            by_digest.setdefault(digest, []).append(candidate)
            by_phone.setdefault(phone, []).append(candidate)
        nib_holders = await uow.businesses.nib_holders([r.new.nib for r in valid if r.new.nib])
        first_line_of: dict[tuple[bytes, str], int] = {}
        to_add: list[tuple[Business, StoredIdentity, str]] = []

        for row in valid:
            form, nib = row.new.form, row.new.nib
            if row.identity in existing:
                outcome = await _reimport(existing[row.identity], row, nib_holders, uow, deps, now)
                if isinstance(outcome, RowError):
                    report.errors.append(outcome)
                elif outcome:
                    report.updated += 1
                else:
                    report.unchanged += 1
                continue
            if row.identity in first_line_of:
                reject(row, "business_name", "import.repeated_row",
                       f"the same business as line {first_line_of[row.identity]} of this import")
                continue
            if not form.confirm_distinct:
                candidates = {c.business_id: c for c in by_digest.get(row.digest, []) + by_phone.get(row.new.phone, [])}
                duplicate = domain.probable_duplicate(form.business_name, list(candidates.values()), deps.rules)
                if duplicate:
                    conflict = domain.duplicate_conflict(duplicate)
                    reject(row, "business_name", conflict.code, conflict.message.replace("send again", "import again"))
                    continue
            if nib and nib in nib_holders:
                reject(row, "nib", "nib_taken", f"NIB {nib} is already registered to another business; check the number")
                continue
            business = domain.register(row.new, deps.new_id(), now)
            to_add.append((business, StoredIdentity(row.digest, deps.vault.encrypt(row.new.nik.digits)), "import"))
            uow.emit(domain.Registered(business, "import"))
            first_line_of[row.identity] = row.line
            if nib:
                nib_holders[nib] = business.id
            # Later rows of this import are checked against this one as if it were already registered.
            candidate = DuplicateCandidate(business.id, business.business_name, True, True, "active", import_line=row.line)
            by_digest.setdefault(row.digest, []).append(replace(candidate, same_phone=False))
            by_phone.setdefault(row.new.phone, []).append(replace(candidate, same_nik=False))

        await uow.businesses.add(to_add)
        report.registered = len(to_add)
        await uow.commit()
    report.errors.sort(key=lambda e: e.line)
    return report


async def _reimport(
    business: Business, row: _Row, nib_holders: dict[str, uuid.UUID], uow: UnitOfWork, deps: Deps, now: datetime
) -> bool | RowError:
    """Apply what the import says about a business already registered; True if it changed anything."""
    if business.status == "closed":
        return False
    try:
        updated, changed = domain.change(business, _changes_from(row.new.form), deps.rules, now)
    except InvalidInput as exc:
        first = exc.errors[0]
        return RowError(row.line, first.field, first.code, first.message)
    events: list[domain.DomainEvent] = []
    if changed:
        events.append(domain.Updated(updated, changed))
    nib = row.new.nib
    if nib and updated.nib != nib:
        if updated.nib is not None:
            return RowError(row.line, "nib", "nib.differs",
                            f"the business already has NIB {updated.nib}; this row says {nib}. Check which is right")
        if nib_holders.get(nib, business.id) != business.id:
            return RowError(row.line, "nib", "nib_taken", f"NIB {nib} is already registered to another business")
        updated = replace(updated, nib=nib, nib_status="issued", version=updated.version + 1, updated_at=now)
        nib_holders[nib] = business.id
        events.append(domain.NibIssued(updated, None, nib, today_in_kupang(now)))
    if not events:
        return False
    await uow.businesses.save(updated)
    uow.emit(*events)
    return True

"""Importing the city's UMKM list: good rows go in, each bad row is reported by line and field, and a row already
registered changes nothing (or, where the list now says something new about the business, updates it)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from pydantic import ValidationError

from services.registry.domain import business as aggregate
from services.registry.domain.business import Business
from services.registry.domain.duplicates import (
    DuplicateCandidate,
    Identity,
    business_identity,
    comparable,
    duplicate_conflict,
    probable_duplicate,
    repeated_row,
    spelled_alike,
)
from services.registry.domain.forms import BusinessChanges, RegistrationForm, form_errors
from services.registry.domain.registration import NewBusiness, validate_registration
from services.registry.handlers import Deps
from services.registry.store import RegistryUnitOfWork, StoredIdentity
from shared.auth import Principal
from shared.errors import InvalidInput
from shared.reference.wita import today_in_kupang

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


@dataclass(frozen=True)
class ImportRows:
    """Rows of the city's list: (line number in the officer's file, values by column)."""

    rows: Sequence[tuple[int, dict[str, str]]]
    by: Principal


def check_columns(columns: Sequence[str]) -> None:
    """Refuse a file whose header would make every row fail, before any row is looked at."""
    counts = Counter(columns)
    unknown = [c for c in counts if c not in IMPORT_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in counts]
    duplicated = sorted(c for c, n in counts.items() if n > 1)
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {unknown[:10]}" + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
    if missing:
        problems.append(f"missing required column(s) {missing}")
    if duplicated:
        problems.append(f"column(s) {duplicated[:10]} appear twice")
    if problems:
        raise InvalidInput.one(
            "columns", "import.header", "; ".join(problems) + f". The columns are: {', '.join(IMPORT_COLUMNS)}"
        )


@dataclass
class _Row:
    line: int
    new: NewBusiness
    digest: bytes
    # Computed once, with the validation (off the event loop): the import looks it up several times per row.
    identity: Identity = field(init=False)

    def __post_init__(self) -> None:
        self.identity = business_identity(self.digest, self.new.form.business_name)


def _validate_rows(rows: Sequence[tuple[int, dict[str, str]]], deps: Deps, by: Principal, today: date) -> tuple[list[_Row], list[RowError]]:
    valid, errors = [], []
    for line, values in rows:
        try:
            form = RegistrationForm.model_validate(values)
            new = validate_registration(form, deps.rules, today, scale_required=False)  # see the loop below
        except ValidationError as exc:
            errors.extend(RowError(line, e.field, e.code, e.message) for e in form_errors(exc))
            continue
        except InvalidInput as exc:
            errors.extend(RowError(line, e.field, e.code, e.message) for e in exc.errors)
            continue
        if not by.acts_in_kecamatan(new.kecamatan.code):
            errors.append(RowError(line, "kecamatan", "scope.kecamatan",
                                   f"{new.kecamatan.name} is outside the kecamatan your token allows"))  # fmt: skip
            continue
        valid.append(_Row(line, new, deps.vault.digest(new.nik.digits)))
    return valid, errors


_CHANGEABLE = tuple(BusinessChanges.model_fields)


def _changes_from(form: RegistrationForm) -> BusinessChanges:
    """What the row says about the business. An empty cell or a missing column says nothing, as for the NIB: the
    address, capital or sales an officer recorded are kept, never cleared by a list that lacks them."""
    said = {name: getattr(form, name) for name in _CHANGEABLE}
    return BusinessChanges(**{name: value for name, value in said.items() if value is not None})


async def import_rows(cmd: ImportRows, uow: RegistryUnitOfWork, deps: Deps) -> ImportReport:
    now = deps.clock()
    report = ImportReport(received=len(cmd.rows))
    # Validation is CPU work (pydantic, the rules, HMAC): off the event loop, so the service keeps answering.
    valid, errors = await asyncio.to_thread(_validate_rows, cmd.rows, deps, cmd.by, today_in_kupang(now))
    report.errors.extend(errors)
    if not valid:
        return report

    def reject(row: _Row, field_name: str, code: str, message: str) -> None:
        report.errors.append(RowError(row.line, field_name, code, message))

    async with uow:
        await uow.businesses.lock_identities([r.digest for r in valid], [r.new.phone for r in valid],
                                             [r.new.nib for r in valid if r.new.nib])
        existing = await uow.businesses.get_many_by_identity([r.identity for r in valid])
        found = await uow.businesses.duplicate_candidates([r.digest for r in valid], [r.new.phone for r in valid])
        by_digest: dict[bytes, list[DuplicateCandidate]] = {}
        by_phone: dict[str, list[DuplicateCandidate]] = {}
        for digest, phone, candidate in found:
            by_digest.setdefault(digest, []).append(candidate)
            by_phone.setdefault(phone, []).append(candidate)
        nib_holders = await uow.businesses.nib_holders([r.new.nib for r in valid if r.new.nib])
        first_line_of: dict[Identity, int] = {}
        to_add: list[tuple[Business, StoredIdentity, str]] = []
        changed: dict[uuid.UUID, Business] = {}

        abandoned = threading.Event()

        def decide() -> None:
            """Each row's fate, in the file's order (a later row is checked against the earlier ones). Pure CPU:
            thousands of rows sharing one phone are each compared with every earlier one."""
            for row in valid:
                if abandoned.is_set():  # the request was cancelled and its transaction rolled back: nothing to do
                    return
                form, nib = row.new.form, row.new.nib
                if row.identity in first_line_of:
                    # Whatever became of the earlier line: were this one applied after it, each import of the file
                    # would change the business again, and the outcome would depend on how often it was sent.
                    reject(row, "business_name", "import.repeated_row", repeated_row(first_line_of[row.identity]))
                    continue
                first_line_of[row.identity] = row.line
                if row.identity in existing:
                    outcome = _reimport(existing[row.identity], row, nib_holders, uow, now, deps, cmd.by)
                    if isinstance(outcome, RowError):
                        report.errors.append(outcome)
                    elif outcome is None:
                        report.unchanged += 1
                    else:
                        changed[outcome.id] = outcome
                        report.updated += 1
                    continue
                if row.new.scale is None:  # a new business needs its scale; one already registered keeps its own
                    reject(row, "annual_sales_rupiah", "scale.missing",
                           "give annual_sales_rupiah (running business) or capital_rupiah (new business) to set "
                           "the scale")  # fmt: skip
                    continue
                if not form.confirm_distinct:
                    candidates = comparable(by_digest.get(row.digest, []), by_phone.get(row.new.phone, []))
                    duplicate = probable_duplicate(form.business_name, candidates,
                                                   deps.rules.duplicate_similarity)  # fmt: skip
                    if duplicate:
                        hidden = (duplicate.kecamatan_code is not None
                                  and not cmd.by.acts_in_kecamatan(duplicate.kecamatan_code))  # fmt: skip
                        conflict = duplicate_conflict(duplicate, outside_scope=hidden)
                        reject(row, "business_name", conflict.code,
                               conflict.message.replace("send again", "import again"))  # fmt: skip
                        continue
                if nib and nib in nib_holders:
                    reject(row, "nib", "nib_taken",
                           f"NIB {nib} is already registered to another business; check the number")  # fmt: skip
                    continue
                business = aggregate.register(row.new, deps.new_id(), now, deps.rules.youth)
                stored = StoredIdentity(row.digest, deps.vault.encrypt(row.new.nik.digits))
                to_add.append((business, stored, "import"))
                uow.emit(aggregate.Registered(business, "import"))
                if nib:
                    nib_holders[nib] = business.id
                # Later rows of this import are checked against this one as if it were already registered.
                candidate = DuplicateCandidate(business.id, business.business_name, True, True, "active",
                                               import_line=row.line)  # fmt: skip
                by_digest.setdefault(row.digest, []).append(replace(candidate, same_phone=False))
                by_phone.setdefault(row.new.phone, []).append(replace(candidate, same_nik=False))

        try:
            await asyncio.to_thread(decide)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        await uow.businesses.add(to_add)
        for business in changed.values():
            await uow.businesses.save(business)
        report.registered = len(to_add)
        await uow.commit()
    report.errors.sort(key=lambda e: e.line)
    return report


def _reimport(business: Business, row: _Row, nib_holders: dict[str, uuid.UUID], uow: RegistryUnitOfWork,
              now: datetime, deps: Deps, by: Principal) -> Business | RowError | None:  # fmt: skip
    """What the import says about a business already registered: the business changed (its events emitted), an
    error for the row, or None when nothing is new."""
    # First: what a row would change tells whoever sent it what the business's record holds.
    if not by.acts_in_kecamatan(business.kecamatan.code):
        # Not named, nor where: the row's NIK and name would otherwise tell an officer of one kecamatan where an
        # owner's business is.
        return RowError(row.line, "kecamatan", "scope.kecamatan",
                        "the business is registered outside the kecamatan your token allows; ask an officer of the "
                        "city")  # fmt: skip
    if business.status != "closed" and not spelled_alike(business.business_name, row.new.form.business_name):
        # The same identity, other words: the business renamed, or another of the owner's ("Kios Ani" beside
        # "Warung Ani"). Taken as a rename, a second business would overwrite the first; registration refuses it too.
        return RowError(row.line, "business_name", "already_registered",
                        f"the owner already has {business.business_name!r} ({business.id}), the same name once case, "
                        f"punctuation and words like 'Warung' or 'Ibu' are left out, and this row calls it "
                        f"{row.new.form.business_name!r}. If it is that business renamed, rename it "
                        f"(PATCH /businesses/{business.id}) and import again; if it is another of the owner's "
                        "businesses, give it a name of its own")  # fmt: skip
    if business.status == "closed":
        try:  # what the row would change, were the business still running
            _, differs = aggregate.change(replace(business, status="active"), _changes_from(row.new.form), deps.rules, now)
        except InvalidInput:
            differs = ("a field",)
        if not differs:
            return None
        return RowError(row.line, "business_name", "business_closed",
                        f"business {business.id} was closed, so this row changes nothing ({', '.join(differs)} "
                        "differ); if it runs again, register it with POST /businesses")  # fmt: skip
    try:
        updated, changed = aggregate.change(business, _changes_from(row.new.form), deps.rules, now)
    except InvalidInput as exc:
        first = exc.errors[0]
        return RowError(row.line, first.field, first.code, first.message)
    events: list[aggregate.DomainEvent] = []
    if changed:
        events.append(aggregate.Updated(updated, changed))
    nib = row.new.nib
    if nib and updated.nib != nib:
        if updated.nib is not None:
            return RowError(row.line, "nib", "nib.differs",
                            f"the business already has NIB {updated.nib}; this row says {nib}. Check which is right")  # fmt: skip
        if nib_holders.get(nib, business.id) != business.id:
            return RowError(row.line, "nib", "nib_taken", f"NIB {nib} is already registered to another business")
        updated = replace(updated, nib=nib, nib_status="issued", version=updated.version + 1, updated_at=now)
        nib_holders[nib] = business.id
        events.append(aggregate.NibIssued(updated, None, nib, today_in_kupang(now)))
    if not events:
        return None
    uow.emit(*events)
    return updated

"""The business aggregate: registration, corrections, the NIB application's life, closing, and the domain events
each change raises (integration.py turns them into the shared contracts)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from services.registry.domain.forms import BusinessChanges
from services.registry.domain.identity import check_nib, normalise_phone
from services.registry.domain.registration import NewBusiness, RegistrationRules, resolve_region
from services.registry.domain.scale import YouthRange, classify_scale
from shared.errors import Conflict, FieldError, InvalidInput
from shared.reference.kbli import check_kbli
from shared.reference.wilayah import Kecamatan, Kelurahan
from shared.reference.wita import today_in_kupang


@dataclass(frozen=True, slots=True)
class Business:
    id: uuid.UUID
    version: int
    business_name: str
    owner_name: str
    owner_gender: str
    owner_birth_date: date
    nik_masked: str
    phone: str
    kbli_code: str
    kbli_version: int
    kecamatan: Kecamatan
    kelurahan: Kelurahan
    address: str | None
    capital_rupiah: int | None
    annual_sales_rupiah: int | None
    scale: str
    scale_basis: str
    nib_status: str  # none | applied | issued | rejected
    nib: str | None
    status: str  # active | closed
    registered_at: datetime
    updated_at: datetime
    youth_owned: bool  # as published: youth on the first day of the month it was last evaluated in
    closed_at: datetime | None = None
    closed_reason: str | None = None

    @property
    def women_owned(self) -> bool:
        return self.owner_gender == "P"

    def require_active(self) -> None:
        if self.status != "active":
            raise Conflict(f"business {self.id} is closed; it can't be changed", "business_closed")


def register(new: NewBusiness, business_id: uuid.UUID, now: datetime, youth: YouthRange) -> Business:
    form = new.form
    return Business(
        id=business_id,
        version=1,
        business_name=" ".join(form.business_name.split()),
        owner_name=" ".join(form.owner_name.split()),
        owner_gender=form.owner_gender,
        owner_birth_date=form.owner_birth_date,
        nik_masked=new.nik.masked,
        phone=new.phone,
        kbli_code=form.kbli_code,
        kbli_version=form.kbli_version,
        kecamatan=new.kecamatan,
        kelurahan=new.kelurahan,
        address=" ".join(form.address.split()) if form.address else form.address,  # as a change stores it
        capital_rupiah=form.capital_rupiah,
        annual_sales_rupiah=form.annual_sales_rupiah,
        scale=new.scale,
        scale_basis=new.scale_basis,
        nib_status="issued" if new.nib else "none",
        nib=new.nib,
        status="active",
        registered_at=now,
        updated_at=now,
        youth_owned=youth.youth_flag(form.owner_birth_date, today_in_kupang(now)),
    )


def change(business: Business, changes: BusinessChanges, rules: RegistrationRules, now: datetime) -> tuple[Business, tuple[str, ...]]:
    """The business after the changes, and the names of the fields that really changed."""
    business.require_active()
    given = changes.model_dump(exclude_unset=True)
    updated: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name in ("business_name", "owner_name", "address"):
        if name in given:
            updated[name] = " ".join(given[name].split()) if given[name] else given[name]
    if "phone" in given:
        try:
            updated["phone"] = normalise_phone(given["phone"])
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if "kbli_code" in given or "kbli_version" in given:
        code = given.get("kbli_code") or business.kbli_code
        version = given.get("kbli_version") or business.kbli_version
        problem = check_kbli(code, version)
        if problem:
            errors.append(FieldError("kbli_code", problem.code, problem.message))
        updated.update(kbli_code=code, kbli_version=version)
    if "kecamatan" in given and "kelurahan" not in given:
        errors.append(FieldError("kelurahan", "wilayah.kelurahan_missing", "give the kelurahan too when changing kecamatan"))
    elif "kecamatan" in given or "kelurahan" in given:
        try:
            kec, kel = resolve_region(
                rules.wilayah, given.get("kecamatan") or business.kecamatan.code, given.get("kelurahan") or ""
            )
            updated.update(kecamatan=kec, kelurahan=kel)
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if "capital_rupiah" in given or "annual_sales_rupiah" in given:
        capital = given.get("capital_rupiah", business.capital_rupiah)
        sales = given.get("annual_sales_rupiah", business.annual_sales_rupiah)
        try:
            scale, basis = classify_scale(capital, sales)
            updated.update(capital_rupiah=capital, annual_sales_rupiah=sales, scale=scale, scale_basis=basis)
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors)
    changed = tuple(sorted(k for k, v in updated.items() if getattr(business, k) != v))
    if not changed:
        return business, ()
    return replace(business, **updated, version=business.version + 1, updated_at=now), changed


# ---------------------------------------------------------------------------------------------------------------
# NIB applications
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NibApplication:
    id: uuid.UUID
    business_id: uuid.UUID
    applied_at: datetime
    status: str = "pending"  # pending | issued | rejected
    nib: str | None = None
    issued_on: date | None = None
    reason: str | None = None
    decided_at: datetime | None = None


def apply_for_nib(
    business: Business, pending: NibApplication | None, application_id: uuid.UUID, now: datetime
) -> tuple[Business, NibApplication]:
    business.require_active()
    if business.nib_status == "issued":
        raise Conflict(f"business {business.id} already has NIB {business.nib}", "nib_already_issued")
    if pending is not None:
        raise Conflict(
            f"business {business.id} already has a pending NIB application ({pending.id}); record its outcome first",
            "nib_application_pending",
            {"application_id": str(pending.id)},
        )
    application = NibApplication(application_id, business.id, now)
    return replace(business, nib_status="applied", version=business.version + 1, updated_at=now), application


def _decidable(business: Business, application: NibApplication) -> None:
    business.require_active()
    if application.status != "pending":
        raise Conflict(
            f"NIB application {application.id} was already decided ({application.status})", "nib_application_decided"
        )
    if business.nib is not None:
        # The city's list may bring the NIB while the application waits: OSS's answer must neither reject the
        # business nor replace its NIB.
        raise Conflict(f"the business already has NIB {business.nib}, recorded after application {application.id} was "
                       "made (by an import of the city's list); OSS's outcome changes nothing. Check that NIB on the "
                       "business", "nib_already_recorded")  # fmt: skip


# NIBs exist since OSS began issuing them (PP 24/2018).
OSS_STARTED = date(2018, 7, 9)


def issue_nib(
    business: Business, application: NibApplication, nib: str, issued_on: date, now: datetime
) -> tuple[Business, NibApplication]:
    _decidable(business, application)
    nib = check_nib(nib)
    if issued_on > today_in_kupang(now):
        raise InvalidInput.one("issued_on", "date.future", "issued_on is in the future")
    if issued_on < OSS_STARTED:
        raise InvalidInput.one("issued_on", "date.before_oss",
                               f"NIBs are issued through OSS, which began on {OSS_STARTED.isoformat()}; check the date")  # fmt: skip
    return (
        replace(business, nib_status="issued", nib=nib, version=business.version + 1, updated_at=now),
        replace(application, status="issued", nib=nib, issued_on=issued_on, decided_at=now),
    )


def reject_nib(
    business: Business, application: NibApplication, reason: str, now: datetime
) -> tuple[Business, NibApplication]:
    _decidable(business, application)
    if not reason.strip():
        raise InvalidInput.one("reason", "reason.missing", "say why OSS rejected the application, so it can be fixed")
    return (
        replace(business, nib_status="rejected", version=business.version + 1, updated_at=now),
        replace(application, status="rejected", reason=reason.strip(), decided_at=now),
    )


def close(business: Business, reason: str, now: datetime) -> Business:
    business.require_active()
    if not reason.strip():
        raise InvalidInput.one("reason", "reason.missing", "say why the business is closed")
    return replace(
        business, status="closed", closed_reason=reason.strip(), closed_at=now, version=business.version + 1, updated_at=now
    )


def refresh_youth(business: Business, youth: YouthRange, now: datetime) -> Business | None:
    """The business with its youth flag as of this month, or None if the flag has not changed (or it is closed)."""
    flag = youth.youth_flag(business.owner_birth_date, today_in_kupang(now))
    if business.status != "active" or flag == business.youth_owned:
        return None
    return replace(business, youth_owned=flag, version=business.version + 1, updated_at=now)


# Domain events: what happened inside the registry. integration.py turns them into the shared contracts.


@dataclass(frozen=True, slots=True)
class Registered:
    business: Business
    source: str


@dataclass(frozen=True, slots=True)
class Updated:
    business: Business
    changed_fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NibApplied:
    business: Business
    application: NibApplication


@dataclass(frozen=True, slots=True)
class NibIssued:
    business: Business
    application_id: uuid.UUID | None  # None when the NIB came in with an import rather than an application
    nib: str
    issued_on: date


@dataclass(frozen=True, slots=True)
class NibRejected:
    business: Business
    application: NibApplication


@dataclass(frozen=True, slots=True)
class Closed:
    business: Business


@dataclass(frozen=True, slots=True)
class CoverageChanged:
    """NIB coverage of a kecamatan (or of the city, code 53.71) is not what was last published."""

    region_code: str
    region: str
    registered: int
    with_nib: int
    at: datetime


BusinessEvent = Registered | Updated | NibApplied | NibIssued | NibRejected | Closed
DomainEvent = BusinessEvent | CoverageChanged

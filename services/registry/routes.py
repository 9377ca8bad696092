"""The registry's HTTP API: thin routes that turn requests into handler calls and businesses into responses."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.registry import handlers
from services.registry.domain import Business, BusinessChanges, NibApplication, RegistrationForm, age_on
from services.registry.handlers import Deps
from services.registry.store import RegisterQueries, SearchFilters, UnitOfWork
from shared.auth import Principal
from shared.errors import InvalidInput, NotFound
from shared.reference.wilayah import Wilayah
from shared.reference.wita import WITA, today_in_kupang
from shared.web import correlation_id, principal, require_role

log = logging.getLogger(__name__)


@dataclass
class RegistryContext:
    """What the routes need, put on app.state by the composition root."""

    deps: Deps
    queries: RegisterQueries
    wilayah: Wilayah
    unit_of_work: Callable[[uuid.UUID], UnitOfWork]
    import_max_rows: int


def context(request: Request) -> RegistryContext:
    return request.app.state.registry


Ctx = Annotated[RegistryContext, Depends(context)]
Officer = Annotated[Principal, Depends(require_role("officer"))]
Anyone = Annotated[Principal, Depends(principal)]
Correlation = Annotated[uuid.UUID, Depends(correlation_id)]


def _uow(ctx: RegistryContext, correlation: uuid.UUID) -> UnitOfWork:
    return ctx.unit_of_work(correlation)


# ---------------------------------------------------------------------------------------------------------------
# Response bodies
# ---------------------------------------------------------------------------------------------------------------


class KecamatanOut(BaseModel):
    name: str
    code: str = Field(description="Kemendagri code")
    bps_code: str


class KelurahanOut(BaseModel):
    name: str
    code: str


class OwnerOut(BaseModel):
    """Personal data: only for roles that may see it."""

    name: str
    gender: Literal["L", "P"]
    birth_date: date
    age: int
    nik_masked: str
    phone: str
    address: str | None


class BusinessOut(BaseModel):
    id: uuid.UUID
    version: int
    business_name: str
    kbli_code: str
    kbli_version: int
    kecamatan: KecamatanOut
    kelurahan: KelurahanOut
    scale: str
    scale_basis: str
    capital_rupiah: int | None
    annual_sales_rupiah: int | None
    youth_owned: bool
    women_owned: bool
    nib_status: str
    nib: str | None
    status: str
    closed_reason: str | None
    registered_at: datetime = Field(description="WITA (UTC+8)")
    updated_at: datetime = Field(description="WITA (UTC+8)")
    owner: OwnerOut | None = Field(None, description="Present only for roles allowed to see personal data")


def business_out(b: Business, ctx: RegistryContext, who: Principal, now: datetime) -> BusinessOut:
    today = today_in_kupang(now)
    owner = None
    if who.may_see_personal_data:
        owner = OwnerOut(
            name=b.owner_name, gender=b.owner_gender, birth_date=b.owner_birth_date,  # type: ignore[arg-type]
            age=age_on(b.owner_birth_date, today), nik_masked=b.nik_masked, phone=b.phone, address=b.address,
        )  # fmt: skip
    return BusinessOut(
        id=b.id, version=b.version, business_name=b.business_name, kbli_code=b.kbli_code, kbli_version=b.kbli_version,
        kecamatan=KecamatanOut(name=b.kecamatan.name, code=b.kecamatan.code, bps_code=b.kecamatan.bps_code),
        kelurahan=KelurahanOut(name=b.kelurahan.name, code=b.kelurahan.code), scale=b.scale, scale_basis=b.scale_basis,
        capital_rupiah=b.capital_rupiah, annual_sales_rupiah=b.annual_sales_rupiah,
        youth_owned=ctx.deps.rules.youth.is_youth(b.owner_birth_date, today), women_owned=b.women_owned,
        nib_status=b.nib_status, nib=b.nib, status=b.status, closed_reason=b.closed_reason,
        registered_at=b.registered_at.astimezone(WITA), updated_at=b.updated_at.astimezone(WITA), owner=owner,
    )  # fmt: skip


class Page(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[BusinessOut]


class NibApplicationOut(BaseModel):
    id: uuid.UUID
    business_id: uuid.UUID
    status: str
    applied_at: datetime
    nib: str | None
    issued_on: date | None
    reason: str | None
    decided_at: datetime | None


def application_out(a: NibApplication) -> NibApplicationOut:
    return NibApplicationOut(
        id=a.id, business_id=a.business_id, status=a.status, applied_at=a.applied_at.astimezone(WITA), nib=a.nib,
        issued_on=a.issued_on, reason=a.reason, decided_at=a.decided_at.astimezone(WITA) if a.decided_at else None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------------------------


class CloseRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500, examples=["Pemilik pindah ke Atambua"])


class NibOutcome(BaseModel):
    outcome: Literal["issued", "rejected"]
    nib: str | None = Field(None, description="The 13-digit NIB, when issued")
    issued_on: date | None = Field(None, description="Date on the NIB; defaults to today in WITA")
    reason: str | None = Field(None, description="Why OSS rejected it, when rejected")


class ImportRow(BaseModel):
    line: int = Field(ge=1, description="Line number in the officer's file, used in the error report")
    values: list[str]


class ImportRequest(BaseModel):
    columns: list[str] = Field(description="The CSV header")
    rows: list[ImportRow]


class RowErrorOut(BaseModel):
    line: int
    field: str
    code: str
    message: str


class ImportReportOut(BaseModel):
    received: int
    registered: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut]


class KecamatanCoverage(BaseModel):
    kecamatan: str
    code: str
    bps_code: str
    registered: int
    with_nib: int
    coverage: float = Field(description="with_nib / registered, 0..1")


class Coverage(BaseModel):
    registered: int
    with_nib: int
    coverage: float
    by_kecamatan: list[KecamatanCoverage]


# ---------------------------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------------------------

router = APIRouter()


@router.post("/businesses", status_code=201, tags=["businesses"], summary="Register a business",
             responses={409: {"description": "Probable duplicate, or NIB already registered"}})
async def register(form: RegistrationForm, who: Officer, ctx: Ctx, correlation: Correlation) -> BusinessOut:
    business = await handlers.register_business(form, _uow(ctx, correlation), ctx.deps)
    return business_out(business, ctx, who, ctx.deps.clock())


@router.get("/businesses", tags=["businesses"], summary="Search and filter the register")
async def search(
    who: Anyone,
    ctx: Ctx,
    kecamatan: str | None = Query(None, description="Name or Kemendagri code"),
    kelurahan: str | None = Query(None, description="Name (within kecamatan) or Kemendagri code"),
    kbli: str | None = Query(None, pattern=r"^\d{1,5}$", description="KBLI code or prefix"),
    scale: Literal["micro", "small", "medium"] | None = None,
    nib_status: Literal["none", "applied", "issued", "rejected"] | None = None,
    status: Literal["active", "closed"] | None = None,
    youth_owned: bool | None = None,
    women_owned: bool | None = None,
    name: str | None = Query(None, max_length=100, description="Part of the business name"),
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=500),
) -> Page:
    kec = ctx.wilayah.find_kecamatan(kecamatan) if kecamatan else None
    if kecamatan and kec is None:
        raise InvalidInput.one("kecamatan", "wilayah.unknown_kecamatan", f"{kecamatan!r} is not a kecamatan of Kota Kupang")
    kel = ctx.wilayah.find_kelurahan(kelurahan, kec) if kelurahan else None
    if kelurahan and kel is None:
        raise InvalidInput.one("kelurahan", "wilayah.unknown_kelurahan",
                               f"{kelurahan!r} is not a kelurahan of Kota Kupang (give kecamatan too if the name is shared)")
    filters = SearchFilters(
        kecamatan_code=kec.code if kec else None, kelurahan_code=kel.code if kel else None, kbli=kbli, scale=scale,
        nib_status=nib_status, status=status, youth_owned=youth_owned, women_owned=women_owned, name=name,
    )  # fmt: skip
    now = ctx.deps.clock()
    total, items = await ctx.queries.search(filters, today_in_kupang(now), page=page, page_size=page_size)
    return Page(total=total, page=page, page_size=page_size, items=[business_out(b, ctx, who, now) for b in items])


@router.get("/businesses/{business_id}", tags=["businesses"], summary="One business")
async def get_business(business_id: uuid.UUID, who: Anyone, ctx: Ctx) -> BusinessOut:
    business = await ctx.queries.get(business_id)
    if business is None:
        raise NotFound(f"no business {business_id}")
    return business_out(business, ctx, who, ctx.deps.clock())


@router.patch("/businesses/{business_id}", tags=["businesses"], summary="Correct a business's details")
async def update(business_id: uuid.UUID, changes: BusinessChanges, who: Officer, ctx: Ctx, correlation: Correlation) -> BusinessOut:
    business = await handlers.update_business(business_id, changes, _uow(ctx, correlation), ctx.deps)
    return business_out(business, ctx, who, ctx.deps.clock())


@router.post("/businesses/{business_id}/close", tags=["businesses"], summary="Record that a business has closed")
async def close(business_id: uuid.UUID, body: CloseRequest, who: Officer, ctx: Ctx, correlation: Correlation) -> BusinessOut:
    business = await handlers.close_business(business_id, body.reason, _uow(ctx, correlation), ctx.deps)
    return business_out(business, ctx, who, ctx.deps.clock())


@router.get("/businesses/{business_id}/nik", tags=["businesses"], summary="Reveal the owner's full NIK (audited)")
async def reveal_nik(business_id: uuid.UUID, who: Officer, ctx: Ctx) -> dict[str, str]:
    nik = await handlers.reveal_nik(business_id, _uow(ctx, uuid.uuid4()), ctx.deps)
    log.info("audit: %s revealed the NIK of business %s", who.subject, business_id)
    return {"nik": nik}


@router.post("/businesses/{business_id}/nib-applications", status_code=201, tags=["nib"],
             summary="Record that the business applied for an NIB through OSS")
async def apply_for_nib(business_id: uuid.UUID, _: Officer, ctx: Ctx, correlation: Correlation) -> NibApplicationOut:
    return application_out(await handlers.apply_for_nib(business_id, _uow(ctx, correlation), ctx.deps))


@router.get("/businesses/{business_id}/nib-applications", tags=["nib"], summary="NIB applications of a business")
async def list_applications(business_id: uuid.UUID, _: Anyone, ctx: Ctx) -> list[NibApplicationOut]:
    return [application_out(a) for a in await ctx.queries.nib_applications(business_id)]


@router.post("/businesses/{business_id}/nib-applications/{application_id}/outcome", tags=["nib"],
             summary="Record the outcome of an NIB application: issued with its NIB, or rejected with a reason")
async def record_outcome(
    business_id: uuid.UUID, application_id: uuid.UUID, body: NibOutcome, _: Officer, ctx: Ctx, correlation: Correlation
) -> NibApplicationOut:
    uow = _uow(ctx, correlation)
    if body.outcome == "issued":
        if not body.nib:
            raise InvalidInput.one("nib", "nib.missing", "give the 13-digit NIB that OSS issued")
        application = await handlers.record_nib_issued(business_id, application_id, body.nib, body.issued_on, uow, ctx.deps)
    else:
        application = await handlers.record_nib_rejected(business_id, application_id, body.reason or "", uow, ctx.deps)
    return application_out(application)


@router.post("/imports/businesses", tags=["import"], summary="Import rows of the city's UMKM list",
             description="Good rows are registered; each bad row is reported with its line, field and reason. "
             "Importing the same rows again changes nothing. `berdaya import FILE.csv` sends a file in chunks.")
async def import_businesses(body: ImportRequest, _: Officer, ctx: Ctx, correlation: Correlation) -> ImportReportOut:
    handlers.check_columns(body.columns)
    if len(body.rows) > ctx.import_max_rows:
        raise InvalidInput.one("rows", "import.too_many_rows",
                               f"send at most {ctx.import_max_rows} rows per request (berdaya import splits files)")
    width = len(body.columns)
    rows, report_errors = [], []
    for row in body.rows:
        if len(row.values) != width:
            report_errors.append(RowErrorOut(line=row.line, field="row", code="import.width",
                                             message=f"has {len(row.values)} values but the header has {width} columns"))
            continue
        rows.append((row.line, dict(zip(body.columns, row.values, strict=True))))
    report = await handlers.import_rows(rows, _uow(ctx, correlation), ctx.deps)
    errors = sorted([*report_errors, *(RowErrorOut(**asdict(e)) for e in report.errors)], key=lambda e: e.line)
    return ImportReportOut(received=len(body.rows), registered=report.registered, updated=report.updated,
                           unchanged=report.unchanged, errors=errors)


@router.get("/stats/nib-coverage", tags=["figures"], summary="Businesses with an NIB / businesses registered")
async def nib_coverage(ctx: Ctx) -> Coverage:
    rows = await ctx.queries.coverage()
    by_code = {k.code: k for k in ctx.wilayah.kecamatan}
    per = [
        KecamatanCoverage(kecamatan=by_code[code].name, code=code, bps_code=by_code[code].bps_code, registered=reg,
                          with_nib=nib, coverage=round(nib / reg, 4) if reg else 0.0)
        for code, reg, nib in rows
    ]
    registered, with_nib = sum(k.registered for k in per), sum(k.with_nib for k in per)
    return Coverage(registered=registered, with_nib=with_nib,
                    coverage=round(with_nib / registered, 4) if registered else 0.0, by_kecamatan=per)

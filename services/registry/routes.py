"""The registry's HTTP API: each route turns a request into a command or a query, and the answer into a response."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.registry import bulk_import, handlers
from services.registry.domain.business import Business, NibApplication
from services.registry.domain.forms import BusinessChanges, RegistrationForm
from services.registry.domain.scale import age_on
from services.registry.handlers import Deps
from services.registry.domain.coverage import NibCoverage
from services.registry.queries import RegisterQueries, SearchFilters
from services.registry.store import RegistryUnitOfWork
from shared.auth import Principal
from shared.errors import InvalidInput, NotFound
from shared.reference.wilayah import Wilayah
from shared.reference.wita import WITA, today_in_kupang
from shared.unit_of_work import Cause
from shared.web import PROBLEM_RESPONSES, Page, PageSize, correlation_id, principal, require_role


@dataclass
class RegistryContext:
    """What the routes need, built by the composition root."""

    deps: Deps
    queries: RegisterQueries
    wilayah: Wilayah
    unit_of_work: Callable[[Cause], RegistryUnitOfWork]
    import_max_rows: int


async def context(request: Request) -> RegistryContext:
    return request.app.state.service


Ctx = Annotated[RegistryContext, Depends(context)]
Officer = Annotated[Principal, Depends(require_role("officer"))]
Anyone = Annotated[Principal, Depends(principal)]
Correlation = Annotated[uuid.UUID, Depends(correlation_id)]


def _uow(ctx: RegistryContext, who: Principal, correlation: uuid.UUID) -> RegistryUnitOfWork:
    return ctx.unit_of_work(Cause.request(correlation, who.actor))


# ---------------------------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------------------------


class KecamatanOut(BaseModel):
    name: str
    code: str = Field(description="Kemendagri code, e.g. 53.71.04")
    bps_code: str = Field(description="BPS code, e.g. 5371030")


class KelurahanOut(BaseModel):
    name: str
    code: str = Field(description="Kemendagri code, e.g. 53.71.04.1001")


class OwnerOut(BaseModel):
    """Personal data: only for officers, and only for businesses in their kecamatan."""

    name: str
    gender: Literal["L", "P"]
    birth_date: date
    age: int
    nik_masked: str = Field(description="First 4 and last 4 digits, e.g. 5371********0001")
    phone: str = Field(description="E.164, e.g. +6281234567890")
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
    youth_owned: bool = Field(description="Owner aged within the youth range today")
    women_owned: bool
    nib_status: str
    nib: str | None
    status: str
    closed_reason: str | None = Field(description="Present only for officers acting in the business's kecamatan: an "
                                      "officer's words may be of the owner (\"pemilik meninggal\")")
    registered_at: datetime = Field(description="WITA (UTC+8)")
    updated_at: datetime = Field(description="WITA (UTC+8)")
    owner: OwnerOut | None = Field(None, description="Present only for officers acting in the business's kecamatan")


def _near_owner(who: Principal, kecamatan_code: str) -> bool:
    """What may be of the owner (their person, an officer's free words about them) is for the officers who work with
    the business's owners; the public contract leaves it out too."""
    return who.may_see_personal_data and who.acts_in_kecamatan(kecamatan_code)


def business_out(b: Business, ctx: RegistryContext, who: Principal, now: datetime) -> BusinessOut:
    today = today_in_kupang(now)
    owner = None
    near = _near_owner(who, b.kecamatan.code)
    if near:
        owner = OwnerOut(
            name=b.owner_name, gender=b.owner_gender, birth_date=b.owner_birth_date,  # type: ignore[arg-type]
            age=age_on(b.owner_birth_date, today), nik_masked=b.nik_masked, phone=b.phone, address=b.address,
        )  # fmt: skip
    return BusinessOut(
        id=b.id, version=b.version, business_name=b.business_name, kbli_code=b.kbli_code, kbli_version=b.kbli_version,
        kecamatan=KecamatanOut(name=b.kecamatan.name, code=b.kecamatan.code, bps_code=b.kecamatan.bps_code),
        kelurahan=KelurahanOut(name=b.kelurahan.name, code=b.kelurahan.code), scale=b.scale, scale_basis=b.scale_basis,
        capital_rupiah=b.capital_rupiah, annual_sales_rupiah=b.annual_sales_rupiah,
        youth_owned=ctx.deps.rules.youth.youth_flag(b.owner_birth_date, today), women_owned=b.women_owned,
        nib_status=b.nib_status, nib=b.nib, status=b.status, closed_reason=b.closed_reason if near else None,
        registered_at=b.registered_at.astimezone(WITA), updated_at=b.updated_at.astimezone(WITA), owner=owner,
    )  # fmt: skip


class BusinessPage(BaseModel):
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
    reason: str | None = Field(description="Why OSS rejected it; present only for officers acting in the business's "
                               "kecamatan")
    decided_at: datetime | None


def application_out(a: NibApplication) -> NibApplicationOut:
    return NibApplicationOut(
        id=a.id, business_id=a.business_id, status=a.status, applied_at=a.applied_at.astimezone(WITA), nib=a.nib,
        issued_on=a.issued_on, reason=a.reason, decided_at=a.decided_at.astimezone(WITA) if a.decided_at else None,
    )  # fmt: skip


class CloseRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500, examples=["Pemilik pindah ke Atambua"])


class NibOutcome(BaseModel):
    outcome: Literal["issued", "rejected"]
    nib: str | None = Field(None, max_length=20, description="The 13-digit NIB, when issued", examples=["9120001234567"])
    issued_on: date | None = Field(None, description="Date on the NIB; defaults to today in WITA")
    reason: str | None = Field(None, max_length=500, description="Why OSS rejected it, when rejected")


# An import request is bounded in every direction, so no file can stall the registry.
MAX_COLUMNS = 2 * len(bulk_import.IMPORT_COLUMNS)
MAX_ROWS_PER_REQUEST = 10_000


class ImportRow(BaseModel):
    line: int = Field(ge=1, le=100_000_000, description="Line number in the officer's file, used in the error report")
    values: list[Annotated[str, Field(max_length=1000)]] = Field(max_length=MAX_COLUMNS)


class ImportRequest(BaseModel):
    columns: list[Annotated[str, Field(max_length=100)]] = Field(max_length=MAX_COLUMNS, description="The CSV header")
    rows: list[ImportRow] = Field(max_length=MAX_ROWS_PER_REQUEST)


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


class KecamatanCoverageOut(BaseModel):
    kecamatan: str
    code: str
    bps_code: str
    registered: int
    with_nib: int
    coverage: float = Field(description="with_nib / registered, 0..1")


class CoverageOut(BaseModel):
    registered: int
    with_nib: int
    coverage: float
    by_kecamatan: list[KecamatanCoverageOut]


def coverage_out(report: NibCoverage) -> CoverageOut:
    return CoverageOut(
        registered=report.registered, with_nib=report.with_nib, coverage=report.coverage,
        by_kecamatan=[KecamatanCoverageOut(kecamatan=k.kecamatan.name, code=k.kecamatan.code,
                                           bps_code=k.kecamatan.bps_code, registered=k.registered,
                                           with_nib=k.with_nib, coverage=k.coverage) for k in report.by_kecamatan],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------------------------

router = APIRouter()
_404 = {404: PROBLEM_RESPONSES[404]}
_404_409 = {404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]}


@router.post("/businesses", status_code=201, tags=["businesses"], summary="Register a business",
             responses={409: PROBLEM_RESPONSES[409]})
async def register(form: RegistrationForm, who: Officer, ctx: Ctx, correlation: Correlation) -> BusinessOut:
    business = await handlers.register_business(handlers.RegisterBusiness(form, who), _uow(ctx, who, correlation), ctx.deps)
    return business_out(business, ctx, who, ctx.deps.clock())


@router.get("/businesses", tags=["businesses"], summary="Search and filter the register")
async def search(
    who: Anyone,
    ctx: Ctx,
    kecamatan: str | None = Query(None, max_length=100, description="Name or Kemendagri code, e.g. Oebobo or 53.71.04"),
    kelurahan: str | None = Query(None, max_length=100, description="Name (within kecamatan) or Kemendagri code"),
    kbli: str | None = Query(None, pattern=r"^[0-9]{1,5}$", description="KBLI code or prefix"),
    scale: Literal["micro", "small", "medium"] | None = None,
    nib_status: Literal["none", "applied", "issued", "rejected"] | None = None,
    status: Literal["active", "closed"] | None = None,
    youth_owned: bool | None = None,
    women_owned: bool | None = None,
    name: str | None = Query(None, max_length=100, description="Part of the business name"),
    page: Page = 1,
    page_size: PageSize = 50,
) -> BusinessPage:
    kec = ctx.wilayah.find_kecamatan(kecamatan) if kecamatan else None
    if kecamatan and kec is None:
        raise InvalidInput.one("kecamatan", "wilayah.unknown_kecamatan", f"{kecamatan!r} is not a kecamatan of Kota Kupang")
    kel = ctx.wilayah.find_kelurahan(kelurahan, kec) if kelurahan else None
    if kelurahan and kel is None:
        raise InvalidInput.one("kelurahan", "wilayah.unknown_kelurahan",
                               f"{kelurahan!r} is not a kelurahan of Kota Kupang (give kecamatan too if the name is shared)")  # fmt: skip
    filters = SearchFilters(
        kecamatan_code=kec.code if kec else None, kelurahan_code=kel.code if kel else None, kbli=kbli, scale=scale,
        nib_status=nib_status, status=status, youth_owned=youth_owned, women_owned=women_owned, name=name,
    )  # fmt: skip
    now = ctx.deps.clock()
    total, items = await ctx.queries.search(filters, today_in_kupang(now), page=page, page_size=page_size)
    return BusinessPage(total=total, page=page, page_size=page_size, items=[business_out(b, ctx, who, now) for b in items])


@router.get("/businesses/{business_id}", tags=["businesses"], summary="One business", responses=_404)
async def get_business(business_id: uuid.UUID, who: Anyone, ctx: Ctx) -> BusinessOut:
    business = await ctx.queries.get(business_id)
    if business is None:
        raise NotFound(f"no business {business_id}")
    return business_out(business, ctx, who, ctx.deps.clock())


@router.patch("/businesses/{business_id}", tags=["businesses"], summary="Correct a business's details", responses=_404_409)
async def update(business_id: uuid.UUID, changes: BusinessChanges, who: Officer, ctx: Ctx, correlation: Correlation) -> BusinessOut:
    command = handlers.UpdateBusiness(business_id, changes, who)
    business = await handlers.update_business(command, _uow(ctx, who, correlation), ctx.deps)
    return business_out(business, ctx, who, ctx.deps.clock())


@router.post("/businesses/{business_id}/close", tags=["businesses"], summary="Record that a business has closed",
             responses=_404_409)
async def close(business_id: uuid.UUID, body: CloseRequest, who: Officer, ctx: Ctx, correlation: Correlation) -> BusinessOut:
    command = handlers.CloseBusiness(business_id, body.reason, who)
    business = await handlers.close_business(command, _uow(ctx, who, correlation), ctx.deps)
    return business_out(business, ctx, who, ctx.deps.clock())


@router.get("/businesses/{business_id}/nik", tags=["businesses"], summary="Reveal the owner's full NIK (audited)",
            responses=_404)
async def reveal_nik(business_id: uuid.UUID, who: Officer, ctx: Ctx, correlation: Correlation) -> dict[str, str]:
    nik = await handlers.reveal_nik(handlers.RevealNik(business_id, who), _uow(ctx, who, correlation), ctx.deps)
    return {"nik": nik}


@router.post("/businesses/{business_id}/nib-applications", status_code=201, tags=["nib"],
             summary="Record that the business applied for an NIB through OSS", responses=_404_409)
async def apply_for_nib(business_id: uuid.UUID, who: Officer, ctx: Ctx, correlation: Correlation) -> NibApplicationOut:
    command = handlers.ApplyForNib(business_id, who)
    return application_out(await handlers.apply_for_nib(command, _uow(ctx, who, correlation), ctx.deps))


@router.get("/businesses/{business_id}/nib-applications", tags=["nib"], summary="NIB applications of a business",
            responses=_404)
async def list_applications(business_id: uuid.UUID, who: Anyone, ctx: Ctx) -> list[NibApplicationOut]:
    business = await ctx.queries.get(business_id)
    if business is None:
        raise NotFound(f"no business {business_id}")
    near = _near_owner(who, business.kecamatan.code)
    applications = await ctx.queries.nib_applications(business_id)
    return [application_out(a if near else replace(a, reason=None)) for a in applications]


@router.post("/businesses/{business_id}/nib-applications/{application_id}/outcome", tags=["nib"],
             summary="Record the outcome of an NIB application: issued with its NIB, or rejected with a reason",
             responses=_404_409)
async def record_outcome(
    business_id: uuid.UUID, application_id: uuid.UUID, body: NibOutcome, who: Officer, ctx: Ctx, correlation: Correlation
) -> NibApplicationOut:
    uow = _uow(ctx, who, correlation)
    if body.outcome == "issued":
        if not body.nib:
            raise InvalidInput.one("nib", "nib.missing", "give the 13-digit NIB that OSS issued")
        command = handlers.RecordNibIssued(business_id, application_id, body.nib, body.issued_on, who)
        return application_out(await handlers.record_nib_issued(command, uow, ctx.deps))
    rejected = handlers.RecordNibRejected(business_id, application_id, body.reason or "", who)
    return application_out(await handlers.record_nib_rejected(rejected, uow, ctx.deps))


@router.post("/imports/businesses", tags=["import"], summary="Import rows of the city's UMKM list",
             description="Good rows are registered; each bad row is reported with its line, field and reason. "
             "Importing the same rows again changes nothing. `berdaya import FILE.csv` sends a file in chunks.")
async def import_businesses(body: ImportRequest, who: Officer, ctx: Ctx, correlation: Correlation) -> ImportReportOut:
    bulk_import.check_columns(body.columns)
    if len(body.rows) > ctx.import_max_rows:
        raise InvalidInput.one("rows", "import.too_many_rows",
                               f"send at most {ctx.import_max_rows} rows per request (berdaya import sends "
                               "smaller chunks by itself)")  # fmt: skip
    width = len(body.columns)
    rows, width_errors = [], []
    for row in body.rows:
        if len(row.values) != width:
            width_errors.append(RowErrorOut(line=row.line, field="row", code="import.width",
                                            message=f"has {len(row.values)} values but the header has {width} columns"))  # fmt: skip
            continue
        rows.append((row.line, dict(zip(body.columns, row.values, strict=True))))
    report = await bulk_import.import_rows(bulk_import.ImportRows(rows, who), _uow(ctx, who, correlation), ctx.deps)
    errors = sorted([*width_errors, *(RowErrorOut(**asdict(e)) for e in report.errors)], key=lambda e: e.line)
    return ImportReportOut(received=len(body.rows), registered=report.registered, updated=report.updated,
                           unchanged=report.unchanged, errors=errors)  # fmt: skip


@router.get("/stats/nib-coverage", tags=["figures"], summary="Businesses with an NIB / businesses registered")
async def nib_coverage(ctx: Ctx) -> CoverageOut:
    return coverage_out(await ctx.queries.coverage())

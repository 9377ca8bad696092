"""Registry rules with no I/O: NIK, phone, KBLI, wilayah, business scale, youth and duplicate detection, and the
business aggregate whose changes become events."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from rapidfuzz import fuzz

from shared.errors import Conflict, FieldError, InvalidInput
from shared.reference.kbli import check_kbli
from shared.reference.wilayah import Kecamatan, Kelurahan, Wilayah
from shared.reference.wita import today_in_kupang

# ---------------------------------------------------------------------------------------------------------------
# Input parsing that both the HTTP API and the CSV import accept
# ---------------------------------------------------------------------------------------------------------------


def _rupiah(value: Any) -> Any:
    """Integer rupiah. Accepts 50000000, "50000000", "50.000.000" or "Rp 50.000.000"; refuses fractions and floats."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("must be a whole number of rupiah")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise ValueError("money is whole rupiah: send an integer, not a decimal number")
    if isinstance(value, str):
        text = re.sub(r"^rp\.?\s*", "", value.strip().lower())
        if re.fullmatch(r"\d+", text):
            return int(text)
        if re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
            return int(text.replace(".", ""))
        raise ValueError("must be whole rupiah, digits only (e.g. 50000000 or 50.000.000)")
    raise ValueError("must be whole rupiah")


def _gender(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("l", "laki-laki", "laki laki", "pria", "male", "m"):
            return "L"
        if text in ("p", "perempuan", "wanita", "female", "f", "w"):
            return "P"
    raise ValueError("must be L (laki-laki) or P (perempuan), as on the KTP")


def _date(value: Any) -> Any:
    """ISO dates, or the DD-MM-YYYY / DD/MM/YYYY that Indonesian spreadsheets use."""
    if isinstance(value, str):
        text = value.strip()
        match = re.fullmatch(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})", text)
        if match:
            try:
                return date(int(match[3]), int(match[2]), int(match[1]))
            except ValueError as exc:
                raise ValueError(f"{text} is not a real date") from exc
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "0", "no", "tidak", "false", "n"):
            return False
        if text in ("1", "yes", "ya", "true", "y"):
            return True
    return value


def _whole_number(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


Rupiah = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(_rupiah)]
Gender = Annotated[Literal["L", "P"], BeforeValidator(_gender)]
Flag = Annotated[bool, BeforeValidator(_flag)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
KbliEdition = Annotated[Literal[2020, 2025], BeforeValidator(_whole_number)]


class RegistrationForm(BaseModel):
    """What an officer enters to register a business (HTTP body, or one CSV row)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    business_name: str = Field(min_length=2, max_length=150, examples=["Sei Sapi Ibu Maria"])
    owner_name: str = Field(min_length=2, max_length=150, examples=["Maria Goreti Ndun"])
    owner_nik: str = Field(description="16-digit NIK from the owner's KTP; stored encrypted, never published.",
                           examples=["5371045708900001"])
    owner_gender: Gender = Field(description="L (laki-laki) or P (perempuan), as on the KTP.")
    owner_birth_date: Annotated[date, BeforeValidator(_date)] = Field(examples=["1990-08-17"])
    phone: str = Field(description="Owner's Indonesian mobile number; stored as +62...", examples=["0812-3456-7890"])
    kbli_code: str = Field(description="5-digit KBLI code", examples=["10130"])
    kbli_version: KbliEdition = Field(description="KBLI edition the code is from: 2020 or 2025")
    kecamatan: str = Field(description="Name or Kemendagri code, e.g. Oebobo or 53.71.04", examples=["Oebobo"])
    kelurahan: str = Field(description="Name or Kemendagri code within the kecamatan", examples=["Fatululi"])
    address: OptionalText = Field(default=None, max_length=300)
    capital_rupiah: Rupiah = Field(default=None, description="Business capital excluding land and buildings.")
    annual_sales_rupiah: Rupiah = Field(default=None, description="Annual sales (hasil penjualan tahunan).")
    nib: OptionalText = Field(default=None, description="13-digit NIB if the business already has one.")
    confirm_distinct: Flag = Field(
        default=False, description="Set after checking that a reported probable duplicate is really another business."
    )


def form_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as field errors with messages an officer can act on."""
    errors = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "row"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required"
        elif err["type"] == "extra_forbidden":
            message = "is not a known field; check the column name"
        errors.append(FieldError(name, err["type"], message))
    return errors


# ---------------------------------------------------------------------------------------------------------------
# Single rules
# ---------------------------------------------------------------------------------------------------------------

# Kemendagri province codes, including the 2022 Papua provinces.
PROVINCES = frozenset(
    "11 12 13 14 15 16 17 18 19 21 31 32 33 34 35 36 51 52 53 61 62 63 64 65 71 72 73 74 75 76 81 82 91 92 93 94 95 96".split()
)


@dataclass(frozen=True, slots=True)
class Nik:
    digits: str

    @property
    def region(self) -> str:
        """Province, regency/city and kecamatan where the NIK was first issued (not where the owner lives now)."""
        return self.digits[:6]

    @property
    def masked(self) -> str:
        return f"{self.digits[:4]}********{self.digits[12:]}"


def check_nik(raw: str, birth_date: date, gender: str) -> Nik:
    """Structure per Permendagri: PPKKCC DDMMYY SSSS, women's day of birth + 40; cross-checked with the form."""
    nik = re.sub(r"[\s.-]", "", raw)

    def bad(code: str, message: str) -> InvalidInput:
        return InvalidInput.one("owner_nik", code, message)

    if not re.fullmatch(r"\d{16}", nik):
        raise bad("nik.format", "NIK must be exactly 16 digits; copy it from the owner's KTP")
    if nik[:2] not in PROVINCES:
        raise bad("nik.province", f"NIK starts with {nik[:2]}, which is not an Indonesian province code")
    if nik[2:4] == "00" or nik[4:6] == "00":
        raise bad("nik.region", "NIK digits 3-6 (regency/city and kecamatan) cannot be 00")
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    is_woman = day > 40
    if is_woman:
        day -= 40
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise bad("nik.birth_date", "NIK digits 7-12 are not a valid date of birth (DDMMYY, +40 on the day for women)")
    if nik[12:] == "0000":
        raise bad("nik.serial", "NIK serial (last 4 digits) cannot be 0000")
    if (day, month, year) != (birth_date.day, birth_date.month, birth_date.year % 100):
        raise bad(
            "nik.birth_date_mismatch",
            f"NIK says born {day:02d}-{month:02d}-{year:02d} but owner_birth_date is {birth_date:%d-%m-%y}; "
            "check both against the KTP",
        )
    if is_woman != (gender == "P"):
        said = "a woman (day of birth + 40)" if is_woman else "a man"
        raise bad("nik.gender_mismatch", f"NIK marks the owner as {said} but owner_gender is {gender}; check the KTP")
    return Nik(nik)


def normalise_phone(raw: str) -> str:
    """An Indonesian mobile number in E.164 (+628...): 08..., 628..., +62 8..., with any spacing or dashes."""
    digits = re.sub(r"[\s().-]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.startswith("62"):
        national = digits[2:].removeprefix("0")  # "+62 0812..." is a common way of writing it
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        national = digits
    if not national.isdigit():
        raise InvalidInput.one("phone", "phone.format", "phone may contain only digits, spaces, dashes and a leading +")
    if not national.startswith("8") or national[:2] == "84":
        raise InvalidInput.one(
            "phone", "phone.not_mobile", "a mobile number (08...) is needed so the owner can get messages; landlines can't"
        )
    if not 9 <= len(national) <= 12:
        raise InvalidInput.one("phone", "phone.length", "an Indonesian mobile number has 10 to 13 digits starting 08")
    return f"+62{national}"


# PP 7/2021 art. 35: capital excludes land and buildings; ceilings inclusive. Rupiah.
CAPITAL_CEILINGS = (("micro", 1_000_000_000), ("small", 5_000_000_000), ("medium", 10_000_000_000))
SALES_CEILINGS = (("micro", 2_000_000_000), ("small", 15_000_000_000), ("medium", 50_000_000_000))


def classify_scale(capital: int | None, annual_sales: int | None) -> tuple[str, str]:
    """(scale, basis). Annual sales decide when known (art. 35(5), the criterion for empowerment programmes of
    running businesses); otherwise capital (art. 35(3), for new businesses)."""
    if annual_sales is not None:
        amount, ceilings, basis, field_name = annual_sales, SALES_CEILINGS, "annual_sales", "annual_sales_rupiah"
    elif capital is not None:
        amount, ceilings, basis, field_name = capital, CAPITAL_CEILINGS, "capital", "capital_rupiah"
    else:
        raise InvalidInput.one(
            "annual_sales_rupiah",
            "scale.missing",
            "give annual_sales_rupiah (running business) or capital_rupiah (new business) to set the scale",
        )
    for scale, ceiling in ceilings:
        if amount <= ceiling:
            return scale, basis
    raise InvalidInput.one(
        field_name,
        "scale.not_umkm",
        f"Rp{amount:,} is above the medium-business ceiling of Rp{ceilings[-1][1]:,} (PP 7/2021): "
        "not a UMKM".replace(",", "."),
    )


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True, slots=True)
class YouthRange:
    """UU 40/2009: youth are 16 to 30; kept in settings because a revision is being discussed."""

    min_age: int = 16
    max_age: int = 30

    def is_youth(self, birth_date: date, on: date) -> bool:
        return self.min_age <= age_on(birth_date, on) <= self.max_age

    def last_day(self, birth_date: date) -> date:
        """The day before the owner turns max_age + 1 (someone born on 29 February turns a year older on 1 March
        in other years, as age_on counts it)."""
        year = birth_date.year + self.max_age + 1
        try:
            birthday = birth_date.replace(year=year)
        except ValueError:
            birthday = date(year, 3, 1)
        return date.fromordinal(birthday.toordinal() - 1)


def check_nib(raw: str, field_name: str = "nib") -> str:
    nib = re.sub(r"[\s.-]", "", raw)
    if not re.fullmatch(r"\d{13}", nib):
        raise InvalidInput.one(field_name, "nib.format", "NIB must be exactly 13 digits, as printed by OSS")
    return nib


_GENERIC_WORDS = frozenset(
    "ud cv pt toko warung kios usaha kedai depot rumah makan rm ibu bapak bpk bu pak mama mlater om tanta".split()
)


def name_key(name: str) -> str:
    """A business name reduced to what identifies it: no case, punctuation or generic words like 'UD' or 'Warung'."""
    words = re.sub(r"[^a-z0-9 ]", " ", name.lower()).split()
    kept = [w for w in words if w not in _GENERIC_WORDS]
    return " ".join(kept or words)


def name_similarity(a: str, b: str) -> float:
    return fuzz.token_set_ratio(name_key(a), name_key(b))


def resolve_region(wilayah: Wilayah, kecamatan: str, kelurahan: str) -> tuple[Kecamatan, Kelurahan]:
    kec = wilayah.find_kecamatan(kecamatan)
    if kec is None:
        names = ", ".join(k.name for k in wilayah.kecamatan)
        raise InvalidInput.one("kecamatan", "wilayah.unknown_kecamatan", f"{kecamatan!r} is not a kecamatan of Kota Kupang ({names})")
    kel = wilayah.find_kelurahan(kelurahan, kec)
    if kel is None:
        raise InvalidInput.one(
            "kelurahan",
            "wilayah.unknown_kelurahan",
            f"{kelurahan!r} is not a kelurahan of {kec.name}; it has "
            + ", ".join(k.name for k in wilayah.kelurahan_of(kec)),
        )
    return kec, kel


# ---------------------------------------------------------------------------------------------------------------
# The business aggregate
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistrationRules:
    wilayah: Wilayah
    youth: YouthRange
    duplicate_similarity: float = 85.0


@dataclass(frozen=True, slots=True)
class NewBusiness:
    """A validated registration, before it has an id."""

    form: RegistrationForm
    nik: Nik
    phone: str
    kecamatan: Kecamatan
    kelurahan: Kelurahan
    scale: str
    scale_basis: str
    nib: str | None


def validate_registration(form: RegistrationForm, rules: RegistrationRules, today: date) -> NewBusiness:
    """Every rule at once, so an officer fixes all fields in one go."""
    errors: list[FieldError] = []

    def attempt(check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            return None

    if form.owner_birth_date > today:
        errors.append(FieldError("owner_birth_date", "date.future", "birth date is in the future"))
    elif age_on(form.owner_birth_date, today) > 120:
        errors.append(FieldError("owner_birth_date", "date.implausible", "owner would be over 120 years old"))
    nik = attempt(check_nik, form.owner_nik, form.owner_birth_date, form.owner_gender)
    phone = attempt(normalise_phone, form.phone)
    problem = check_kbli(form.kbli_code, form.kbli_version)
    if problem:
        errors.append(FieldError("kbli_code", problem.code, problem.message))
    region = attempt(resolve_region, rules.wilayah, form.kecamatan, form.kelurahan)
    scale = attempt(classify_scale, form.capital_rupiah, form.annual_sales_rupiah)
    nib = attempt(check_nib, form.nib) if form.nib else None
    if errors:
        raise InvalidInput(errors)
    return NewBusiness(form, nik, phone, region[0], region[1], scale[0], scale[1], nib)


@dataclass(frozen=True, slots=True)
class DuplicateCandidate:
    business_id: uuid.UUID
    business_name: str
    same_nik: bool
    same_phone: bool
    status: str
    import_line: int | None = None  # set when the candidate is an earlier row of the same import


def probable_duplicate(
    name: str, candidates: list[DuplicateCandidate], rules: RegistrationRules
) -> DuplicateCandidate | None:
    """The same NIK or the same phone with a similar business name: probably the same business entered twice."""
    best: tuple[float, DuplicateCandidate] | None = None
    for candidate in candidates:
        if not (candidate.same_nik or candidate.same_phone):
            continue
        score = name_similarity(name, candidate.business_name)
        if score >= rules.duplicate_similarity and (best is None or score > best[0]):
            best = (score, candidate)
    return best[1] if best else None


def duplicate_conflict(candidate: DuplicateCandidate) -> Conflict:
    basis = "NIK" if candidate.same_nik else "phone number"
    where = f"line {candidate.import_line} of this import" if candidate.import_line else str(candidate.business_id)
    return Conflict(
        f"probably the same business as {candidate.business_name!r} ({where}, {candidate.status}): "
        f"same owner {basis} and a similar name. If it really is another business, send again with "
        "confirm_distinct=true",
        "probable_duplicate",
        {"existing_business_id": str(candidate.business_id), "existing_business_name": candidate.business_name},
    )


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
    closed_at: datetime | None = None
    closed_reason: str | None = None

    @property
    def women_owned(self) -> bool:
        return self.owner_gender == "P"

    def require_active(self) -> None:
        if self.status != "active":
            raise Conflict(f"business {self.id} is closed; it can't be changed", "business_closed")


def register(new: NewBusiness, business_id: uuid.UUID, now: datetime) -> Business:
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
        address=form.address,
        capital_rupiah=form.capital_rupiah,
        annual_sales_rupiah=form.annual_sales_rupiah,
        scale=new.scale,
        scale_basis=new.scale_basis,
        nib_status="issued" if new.nib else "none",
        nib=new.nib,
        status="active",
        registered_at=now,
        updated_at=now,
    )


class BusinessChanges(BaseModel):
    """Fields an officer may correct after registration. The owner's identity (NIK, birth date, gender) is not
    among them: a different owner is a different registration."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    business_name: str | None = Field(default=None, min_length=2, max_length=150)
    owner_name: str | None = Field(default=None, min_length=2, max_length=150)
    phone: str | None = None
    kbli_code: str | None = None
    kbli_version: KbliEdition | None = None
    kecamatan: str | None = None
    kelurahan: str | None = None
    address: OptionalText = Field(default=None, max_length=300)
    capital_rupiah: Rupiah = None
    annual_sales_rupiah: Rupiah = None

    @field_validator("business_name", "owner_name", "phone", "kbli_code", "kbli_version", "kecamatan", "kelurahan")
    @classmethod
    def _not_cleared(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be emptied; leave the field out to keep it as it is")
        return value


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


def issue_nib(
    business: Business, application: NibApplication, nib: str, issued_on: date, now: datetime
) -> tuple[Business, NibApplication]:
    _decidable(business, application)
    nib = check_nib(nib)
    if issued_on > today_in_kupang(now):
        raise InvalidInput.one("issued_on", "date.future", "issued_on is in the future")
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


# Domain events: what happened inside the registry. events.py turns them into the shared contracts.


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


DomainEvent = Registered | Updated | NibApplied | NibIssued | NibRejected | Closed


@dataclass
class EventLog:
    """Domain events raised during one unit of work, in order."""

    events: list[DomainEvent] = field(default_factory=list)

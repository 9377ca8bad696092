"""Input as officers give it, over HTTP or as a CSV row: parsed leniently (Indonesian spreadsheet habits), bounded,
and refused field by field with a reason an officer can act on."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from shared.contracts.envelope import MAX_RUPIAH
from shared.errors import FieldError
from shared.names import Name

_RP = re.compile(r"^rp\.?\s*")
_PLAIN_RUPIAH = re.compile(r"[0-9]+")
_DOTTED_RUPIAH = re.compile(r"[0-9]{1,3}(\.[0-9]{3})+")
_DAY_FIRST_DATE = re.compile(r"([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4})")


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
        text = _RP.sub("", value.strip().lower())
        if _PLAIN_RUPIAH.fullmatch(text):
            return int(text)
        if _DOTTED_RUPIAH.fullmatch(text):
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


_ISO_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")


def _date(value: Any) -> Any:
    """ISO dates, or the DD-MM-YYYY / DD/MM/YYYY that Indonesian spreadsheets use."""
    if isinstance(value, str):
        text = value.strip()
        match = _DAY_FIRST_DATE.fullmatch(text)
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
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.isascii() and text.isdigit():
        return int(text)
    return value


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


Rupiah = Annotated[Annotated[int, Field(ge=0, le=MAX_RUPIAH)] | None, BeforeValidator(_rupiah)]
Gender = Annotated[Literal["L", "P"], BeforeValidator(_gender)]
Flag = Annotated[bool, BeforeValidator(_flag)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
KbliEdition = Annotated[Literal[2020, 2025], BeforeValidator(_whole_number)]


class RegistrationForm(BaseModel):
    """What an officer enters to register a business (HTTP body, or one CSV row)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    business_name: Name = Field(min_length=2, max_length=150, examples=["Sei Sapi Ibu Maria"])
    owner_name: Name = Field(min_length=2, max_length=150, examples=["Maria Goreti Ndun"])
    owner_nik: str = Field(max_length=40, description="16-digit NIK from the owner's KTP; stored encrypted, never "
                           "published.", examples=["5371045708900001"])  # fmt: skip
    owner_gender: Gender = Field(description="L (laki-laki) or P (perempuan), as on the KTP.")
    owner_birth_date: Annotated[date, BeforeValidator(_date)] = Field(examples=["1990-08-17"])
    phone: str = Field(max_length=40, description="Owner's Indonesian mobile number; stored as +62...",
                       examples=["0812-3456-7890"])  # fmt: skip
    kbli_code: str = Field(max_length=20, description="5-digit KBLI code", examples=["10130"])
    kbli_version: KbliEdition = Field(description="KBLI edition the code is from: 2020 or 2025")
    kecamatan: str = Field(max_length=100, description="Name or Kemendagri code, e.g. Oebobo or 53.71.04",
                           examples=["Oebobo"])  # fmt: skip
    kelurahan: str = Field(max_length=100, description="Name or Kemendagri code within the kecamatan",
                           examples=["Fatululi"])  # fmt: skip
    address: OptionalText = Field(default=None, max_length=300)
    capital_rupiah: Rupiah = Field(default=None, description="Business capital excluding land and buildings.")
    annual_sales_rupiah: Rupiah = Field(default=None, description="Annual sales (hasil penjualan tahunan).")
    nib: OptionalText = Field(default=None, max_length=40, description="13-digit NIB if the business already has one.")
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
        elif err["type"].startswith("date_"):
            # Pydantic's own words ("input is too short", "should have zero time") name no format an officer can use.
            text = str(err.get("input"))[:40]
            message = (f"{text} is not a real date" if _ISO_DATE.fullmatch(text.strip()) else
                       f"{text!r} is not a date: write it as YYYY-MM-DD (1990-08-17) or "
                       "DD-MM-YYYY (17-08-1990)")  # fmt: skip
        errors.append(FieldError(name, err["type"], message))
    return errors


class BusinessChanges(BaseModel):
    """Fields an officer may correct after registration. The owner's identity (NIK, birth date, gender) is not
    among them: a different owner is a different registration."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    business_name: Name | None = Field(default=None, min_length=2, max_length=150)
    owner_name: Name | None = Field(default=None, min_length=2, max_length=150)
    phone: str | None = Field(default=None, max_length=40)
    kbli_code: str | None = Field(default=None, max_length=20)
    kbli_version: KbliEdition | None = None
    kecamatan: str | None = Field(default=None, max_length=100)
    kelurahan: str | None = Field(default=None, max_length=100)
    address: OptionalText = Field(default=None, max_length=300)
    capital_rupiah: Rupiah = None
    annual_sales_rupiah: Rupiah = None

    @field_validator("business_name", "owner_name", "phone", "kbli_code", "kbli_version", "kecamatan", "kelurahan")
    @classmethod
    def _not_cleared(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be emptied; leave the field out to keep it as it is")
        return value

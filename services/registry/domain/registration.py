"""A registration checked against every rule at once, so an officer fixes all fields in one go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.registry.domain.forms import RegistrationForm
from services.registry.domain.identity import Nik, check_nib, check_nik, normalise_phone
from services.registry.domain.scale import YouthRange, age_on, classify_scale
from shared.errors import FieldError, InvalidInput
from shared.reference.kbli import check_kbli
from shared.reference.wilayah import Kecamatan, Kelurahan, Wilayah

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
    scale: str | None  # None only where the caller allowed it: an import row about a business already registered
    scale_basis: str | None
    nib: str | None


def validate_registration(form: RegistrationForm, rules: RegistrationRules, today: date, *,
                          scale_required: bool = True) -> NewBusiness:  # fmt: skip
    """Every rule at once, so an officer fixes all fields in one go. `scale_required=False`: a form giving neither
    capital nor sales is valid without a scale (an import's row may be about a business already registered, for
    which a missing column says nothing); the caller then decides."""
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
    no_money = form.capital_rupiah is None and form.annual_sales_rupiah is None
    scale = (None, None) if no_money and not scale_required else attempt(classify_scale, form.capital_rupiah,
                                                                          form.annual_sales_rupiah)  # fmt: skip
    nib = attempt(check_nib, form.nib) if form.nib else None
    if errors:
        raise InvalidInput(errors)
    return NewBusiness(form, nik, phone, region[0], region[1], scale[0], scale[1], nib)


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

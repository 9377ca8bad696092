"""Valid test data for the registry: registration rows, forms, rules and businesses that individual tests vary."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from typing import Any

from services.registry.domain import business as aggregate
from services.registry.domain.business import Business
from services.registry.domain.forms import RegistrationForm
from services.registry.domain.registration import RegistrationRules, validate_registration
from services.registry.domain.scale import YouthRange
from services.registry.nik_vault import NikVault
from shared.auth import Principal
from shared.reference.wilayah import kota_kupang

# 2026-03-10 10.00 WITA.
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
TODAY = date(2026, 3, 10)

# A woman born 17 August 1990 whose KTP was issued in Oebobo (53.71.04): day 17 + 40 = 57.
MARIA_NIK = "5371045708900001"
MARIA = {
    "business_name": "Sei Sapi Ibu Maria",
    "owner_name": "Maria Goreti Ndun",
    "owner_nik": MARIA_NIK,
    "owner_gender": "P",
    "owner_birth_date": "1990-08-17",
    "phone": "0812-3456-7890",
    "kbli_code": "10130",
    "kbli_version": 2020,
    "kecamatan": "Oebobo",
    "kelurahan": "Fatululi",
    "annual_sales_rupiah": "Rp 50.000.000",
    "capital_rupiah": "10.000.000",
}

# A man born 1 January 2000 whose KTP was issued in Alak (53.71.01): a youth in 2026.
YOHANES_NIK = "5371010101000002"
YOHANES = {
    "business_name": "Bengkel Motor Yohanes",
    "owner_name": "Yohanes Fanggidae",
    "owner_nik": YOHANES_NIK,
    "owner_gender": "L",
    "owner_birth_date": "01-01-2000",
    "phone": "+62 813 3333 4444",
    "kbli_code": "95210",
    "kbli_version": 2020,
    "kecamatan": "Alak",
    "kelurahan": "Namosain",
    "annual_sales_rupiah": "120000000",
    "capital_rupiah": "25000000",
}


# An officer for the whole city, and one whose token names only Oebobo (53.71.04).
OFFICER = Principal("petugas-kota-01", frozenset({"officer"}))
OEBOBO_OFFICER = Principal("petugas-oebobo-01", frozenset({"officer"}), kecamatan_codes=frozenset({"53.71.04"}))


def rules() -> RegistrationRules:
    return RegistrationRules(wilayah=kota_kupang(), youth=YouthRange())


def vault() -> NikVault:
    return NikVault(os.urandom(32), os.urandom(32))


def form(base: dict[str, Any] | None = None, **overrides: Any) -> RegistrationForm:
    return RegistrationForm.model_validate({**(base or MARIA), **overrides})


def business(base: dict[str, Any] | None = None, *, business_id: uuid.UUID | None = None, **overrides: Any) -> Business:
    """A freshly registered, active business (version 1)."""
    new = validate_registration(form(base, **overrides), rules(), TODAY)
    return aggregate.register(new, business_id or uuid.uuid4(), NOW, YouthRange())

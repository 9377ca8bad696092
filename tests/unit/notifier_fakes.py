"""Registry and funding events as the notifier hears them, for its unit and integration tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.funding import FundingMatched
from shared.contracts.registry import BusinessRegistered, BusinessUpdated
from shared.reference.wita import WITA


def wita(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=WITA).astimezone(UTC)


MORNING = wita(2026, 11, 23, 10)  # a Monday, 10.00 WITA
NIGHT = wita(2026, 11, 23, 22)
PHONE = "+6281234567890"
BUSINESS = uuid.UUID("3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f")
def matched(**overrides: Any) -> FundingMatched:
    values: dict[str, Any] = dict(
        pledge_id=uuid.UUID(int=500), offer_id=uuid.uuid4(), business_id=BUSINESS, amount_rupiah=5_000_000,
        business_name="Sei Sapi Ibu Maria", contact_phone=PHONE, kecamatan_code="53.71.04", sponsor_name="Bank NTT",
        instrument="grant", financing_programme=None, readiness=72, rank=1, offered_at=MORNING,
        expires_at=MORNING + timedelta(days=14),
    )  # fmt: skip
    return FundingMatched(**{**values, **overrides})


def registered(**overrides: Any) -> BusinessRegistered:
    values: dict[str, Any] = dict(
        business_id=BUSINESS, business_version=1, business_name="Sei Sapi Ibu Maria", kbli_code="10130",
        kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, youth_owned=False, women_owned=True, nib_status="none", nib=None,
        contact_phone=PHONE, status="active", registered_at=MORNING, source="officer",
    )  # fmt: skip
    return BusinessRegistered(**{**values, **overrides})


def number_changed(phone: str, version: int = 2, **overrides: Any) -> BusinessUpdated:
    values = registered(contact_phone=phone, business_version=version, **overrides).model_dump(exclude={"source"})
    return BusinessUpdated(**values, changed_fields=("contact_phone",))

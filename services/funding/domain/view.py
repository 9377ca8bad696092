"""What funding knows of a business (built only from registry and training events), and how ready it is."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from shared.contracts.envelope import EventPayload
from shared.contracts.registry import (
    BusinessClosed, BusinessSnapshot, NIBApplied, NIBIssued, NIBRejected, require_next,
)
from shared.reference.wita import today_in_kupang


@dataclass(frozen=True, slots=True)
class BusinessView:
    """The registry's facts (at `version`), the training topics completed, and the offers taken up."""

    business_id: uuid.UUID
    version: int
    business_name: str
    contact_phone: str
    kecamatan_code: str
    kbli_code: str
    scale: str
    youth_owned: bool  # as the registry last published it (it re-publishes when the flag changes)
    women_owned: bool
    nib_status: str
    status: str
    annual_sales_rupiah: int | None
    registered_at: datetime
    eligible_since: datetime | None = None  # when the registry's facts last changed
    trainings: frozenset[str] = frozenset()  # topics completed, from training's events
    assessment: int | None = None  # the best trainer's assessment at a completion: its three parts' mean, 0..100
    funded_count: int = 0  # offers accepted or disbursed, over all pledges


def updated_view(current: BusinessView | None, event: EventPayload, occurred_at: datetime) -> BusinessView | None:
    """The view after a registry event; None when the event changes nothing (it is older than what the view holds).
    A single change with one before it missing, its registration included, raises `MissedVersion`."""
    if isinstance(event, BusinessSnapshot):
        if current is not None and current.version >= event.business_version:
            return None
        return BusinessView(
            business_id=event.business_id, version=event.business_version, business_name=event.business_name,
            contact_phone=event.contact_phone, kecamatan_code=event.kecamatan_code, kbli_code=event.kbli_code,
            scale=event.scale, youth_owned=event.youth_owned, women_owned=event.women_owned,
            nib_status=event.nib_status, status=event.status, annual_sales_rupiah=event.annual_sales_rupiah,
            registered_at=event.registered_at, eligible_since=occurred_at,
            trainings=current.trainings if current else frozenset(),
            assessment=current.assessment if current else None,
            funded_count=current.funded_count if current else 0,
        )  # fmt: skip
    version = getattr(event, "business_version", 0)
    if current is not None and current.version >= version:
        return None  # an older event changes nothing
    require_next(None if current is None else current.version, event)  # type: ignore[arg-type]
    assert current is not None  # refused above: a single change needs the registration before it
    match event:
        case NIBApplied():
            return replace(current, version=version, nib_status="applied")
        case NIBIssued():
            return replace(current, version=version, nib_status="issued", eligible_since=occurred_at)
        case NIBRejected():
            return replace(current, version=version, nib_status="rejected")
        case BusinessClosed():
            return replace(current, version=version, status="closed")
    return None


# ---------------------------------------------------------------------------------------------------------------
# Readiness: what the service knows of management, leadership and prospects
# ---------------------------------------------------------------------------------------------------------------

READINESS_RULES = (
    ("nib", 25, "holds an NIB: the business is legal and can take credit and certification"),
    ("trainings", 30, "10 per completed training topic (packaging, product quality, halal, digital marketing, ...), up to 30"),
    ("assessment", 15, "the trainer's assessment of management, leadership and business prospects (best mean of the "
                       "three, 0 to 100) times 15/100: capital should weigh these, not only assets"),
    ("sales_reported", 10, "annual sales are reported: the owner keeps figures"),
    ("youth", 10, "youth-owned: the city's stated priority"),
    ("track_record", 10, "registered at least a year ago"),
)


@dataclass(frozen=True, slots=True)
class Readiness:
    score: int
    parts: dict[str, int]


def readiness(business: BusinessView, today: date) -> Readiness:
    """0 to 100, documented in READINESS_RULES; a funding decision must be explainable to the business."""
    parts = {
        "nib": 25 if business.nib_status == "issued" else 0,
        "trainings": min(30, 10 * len(business.trainings)),
        "assessment": round(15 * business.assessment / 100) if business.assessment is not None else 0,
        "sales_reported": 10 if business.annual_sales_rupiah is not None else 0,
        "youth": 10 if business.youth_owned else 0,
        "track_record": 10 if (today - today_in_kupang(business.registered_at)).days >= 365 else 0,
    }
    return Readiness(sum(parts.values()), parts)


def rank_key(business: BusinessView, score: int) -> tuple[Any, ...]:
    """Never funded before first, then higher readiness, then earlier registration, then id: fully deterministic."""
    return (business.funded_count > 0, -score, business.registered_at, str(business.business_id))

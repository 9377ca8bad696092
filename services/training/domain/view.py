"""What training knows of a business: the registry's public facts, kept from `registry.business.v1` only.

No phone and no person's name: training tells owners nothing itself (the notifier does), so it keeps neither.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from shared.contracts.envelope import EventPayload
from shared.contracts.registry import (
    BusinessClosed, BusinessSnapshot, NIBApplied, NIBIssued, NIBRejected, require_next,
)


@dataclass(frozen=True, slots=True)
class BusinessView:
    business_id: uuid.UUID
    version: int  # the registry's business_version this view is at
    business_name: str
    kbli_code: str
    kecamatan_code: str
    scale: str  # micro | small | medium: SEHATI self-declare is for micro and small businesses only
    youth_owned: bool
    women_owned: bool
    nib_status: str  # none | applied | issued | rejected
    status: str  # active | closed
    registered_at: datetime

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def has_nib(self) -> bool:
        return self.nib_status == "issued"


def updated_view(current: BusinessView | None, event: EventPayload) -> BusinessView | None:
    """The view after a registry event; None when the event changes nothing (it is not newer than what the view
    holds). A single change with one before it missing, its registration included, raises `MissedVersion`."""
    if isinstance(event, BusinessSnapshot):
        if current is not None and current.version >= event.business_version:
            return None
        return BusinessView(
            business_id=event.business_id, version=event.business_version, business_name=event.business_name,
            kbli_code=event.kbli_code, kecamatan_code=event.kecamatan_code, scale=event.scale,
            youth_owned=event.youth_owned, women_owned=event.women_owned, nib_status=event.nib_status,
            status=event.status, registered_at=event.registered_at,
        )  # fmt: skip
    version = getattr(event, "business_version", 0)
    if current is not None and current.version >= version:
        return None
    require_next(None if current is None else current.version, event)  # type: ignore[arg-type]
    assert current is not None  # refused above: a single change needs the registration before it
    match event:
        case NIBApplied():
            return replace(current, version=version, nib_status="applied")
        case NIBIssued():
            return replace(current, version=version, nib_status="issued")
        case NIBRejected():
            return replace(current, version=version, nib_status="rejected")
        case BusinessClosed():
            return replace(current, version=version, status="closed")
    return None

"""Turning the registry's domain events into the shared integration contracts, at the service boundary."""

from __future__ import annotations

import uuid
from datetime import date

from services.registry import domain
from shared.contracts import Envelope, EventPayload, new_envelope
from shared.contracts.registry import (
    BusinessClosed,
    BusinessRegistered,
    BusinessUpdated,
    NIBApplied,
    NIBIssued,
    NIBRejected,
)
from shared.reference.wita import today_in_kupang

PRODUCER = "registry"


def _snapshot(business: domain.Business, youth: domain.YouthRange) -> dict[str, object]:
    today: date = today_in_kupang(business.updated_at)
    return dict(
        business_id=business.id,
        business_version=business.version,
        business_name=business.business_name,
        kbli_code=business.kbli_code,
        kbli_version=business.kbli_version,
        kecamatan=business.kecamatan.name,
        kecamatan_code=business.kecamatan.code,
        kecamatan_bps=business.kecamatan.bps_code,
        kelurahan=business.kelurahan.name,
        kelurahan_code=business.kelurahan.code,
        scale=business.scale,
        scale_basis=business.scale_basis,
        capital_rupiah=business.capital_rupiah,
        annual_sales_rupiah=business.annual_sales_rupiah,
        youth_owned=youth.is_youth(business.owner_birth_date, today),
        youth_until=youth.last_day(business.owner_birth_date),
        women_owned=business.women_owned,
        nib_status=business.nib_status,
        nib=business.nib,
        contact_phone=business.phone,
        status=business.status,
        registered_at=business.registered_at,
    )


def to_payload(event: domain.DomainEvent, youth: domain.YouthRange) -> EventPayload:
    b = event.business
    match event:
        case domain.Registered(source=source):
            return BusinessRegistered(**_snapshot(b, youth), source=source)
        case domain.Updated(changed_fields=changed):
            return BusinessUpdated(**_snapshot(b, youth), changed_fields=changed)
        case domain.NibApplied(application=app):
            return NIBApplied(
                business_id=b.id, business_version=b.version, application_id=app.id, applied_at=app.applied_at,
                kecamatan_code=b.kecamatan.code,
            )  # fmt: skip
        case domain.NibIssued(application_id=application_id, nib=nib, issued_on=issued_on):
            return NIBIssued(
                business_id=b.id, business_version=b.version, application_id=application_id, nib=nib,
                issued_on=issued_on, kecamatan_code=b.kecamatan.code,
            )  # fmt: skip
        case domain.NibRejected(application=app):
            return NIBRejected(
                business_id=b.id, business_version=b.version, application_id=app.id, reason=app.reason or "",
                kecamatan_code=b.kecamatan.code,
            )  # fmt: skip
        case domain.Closed():
            assert b.closed_at is not None
            return BusinessClosed(
                business_id=b.id, business_version=b.version, reason=b.closed_reason or "", closed_at=b.closed_at,
                kecamatan_code=b.kecamatan.code,
            )  # fmt: skip
    raise TypeError(f"no contract for {event!r}")


def translator(youth: domain.YouthRange):  # noqa: ANN201 - returns store.EventTranslator
    def translate(events: list[domain.DomainEvent], correlation_id: uuid.UUID) -> list[Envelope]:
        return [
            new_envelope(
                to_payload(event, youth),
                producer=PRODUCER,
                correlation_id=correlation_id,
                occurred_at=event.business.updated_at,
            )
            for event in events
        ]

    return translate

"""Turning the registry's domain events into the shared integration contracts, at the service boundary."""

from __future__ import annotations

from services.registry.domain import business as aggregate
from services.registry.domain import consent
from services.registry.domain.business import Business
from shared.contracts import EventPayload
from shared.contracts.public import (
    BusinessListed,
    NibCoverageReported,
    ReferralConsented,
    ReferralConsentWithdrawn,
    pseudonym,
)
from shared.contracts.registry import (
    BusinessClosed,
    BusinessRegistered,
    BusinessUpdated,
    NIBApplied,
    NIBIssued,
    NIBRejected,
)
from shared.reference.wita import today_in_kupang

_CHANGE = {aggregate.Registered: "registered", aggregate.Updated: "updated", aggregate.NibApplied: "nib_applied",
           aggregate.NibIssued: "nib_issued", aggregate.NibRejected: "nib_rejected", aggregate.Closed: "closed"}  # fmt: skip


def _snapshot(business: Business) -> dict[str, object]:
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
        youth_owned=business.youth_owned,
        women_owned=business.women_owned,
        nib_status=business.nib_status,
        nib=business.nib,
        contact_phone=business.phone,
        status=business.status,
        registered_at=business.registered_at,
    )


Event = aggregate.DomainEvent | consent.ConsentGiven | consent.ConsentWithdrawn


def translate(event: Event, pseudonym_key: bytes) -> list[EventPayload]:
    """The internal event for the services, and its redacted copy for partners (an allow-list: no name, phone or
    NIK, the business by its pseudonym); a figure goes to partners only, and a consented referral to the one partner
    the owner consented to."""
    if isinstance(event, consent.ConsentGiven | consent.ConsentWithdrawn):
        return [referral(event)]
    if isinstance(event, aggregate.CoverageChanged):
        return [NibCoverageReported(region_code=event.region_code, region=event.region, registered=event.registered,
                                    with_nib=event.with_nib, as_of=event.at)]  # fmt: skip
    return [_internal(event), listed(event, pseudonym_key)]


def referral(event: consent.ConsentGiven | consent.ConsentWithdrawn) -> EventPayload:
    c = event.consent
    if isinstance(event, consent.ConsentWithdrawn):
        assert c.withdrawn_at is not None
        return ReferralConsentWithdrawn(consent_id=c.id, partner_id=c.partner_id, withdrawn_at=c.withdrawn_at)
    b = event.business
    return ReferralConsented(
        consent_id=c.id, partner_id=c.partner_id, purpose=c.purpose, owner_name=b.owner_name, owner_phone=b.phone,
        owner_nik_link=event.owner_nik_link, business_name=b.business_name, nib=b.nib, kecamatan_code=b.kecamatan.code,
        financing_programme=c.financing_programme, amount_sought_rupiah=c.amount_sought_rupiah, offer_id=c.offer_id,
        consented_at=c.given_at, recorded_by=c.given_by,
    )  # fmt: skip


def listed(event: aggregate.BusinessEvent, pseudonym_key: bytes) -> BusinessListed:
    b = event.business
    return BusinessListed(
        business_ref=pseudonym(b.id, pseudonym_key), version=b.version, change=_CHANGE[type(event)],  # type: ignore[arg-type]
        kecamatan_code=b.kecamatan.code, kecamatan=b.kecamatan.name, kelurahan_code=b.kelurahan.code,
        kelurahan=b.kelurahan.name, kbli_code=b.kbli_code, kbli_version=b.kbli_version, scale=b.scale,  # type: ignore[arg-type]
        youth_owned=b.youth_owned, women_owned=b.women_owned, nib_status=b.nib_status, status=b.status,  # type: ignore[arg-type]
        registered_on=today_in_kupang(b.registered_at),
    )  # fmt: skip


def _internal(event: aggregate.BusinessEvent) -> EventPayload:
    b = event.business
    match event:
        case aggregate.Registered(source=source):
            return BusinessRegistered(**_snapshot(b), source=source)
        case aggregate.Updated(changed_fields=changed):
            return BusinessUpdated(**_snapshot(b), changed_fields=changed)
        case aggregate.NibApplied(application=app):
            return NIBApplied(business_id=b.id, business_version=b.version, application_id=app.id,
                              applied_at=app.applied_at, kecamatan_code=b.kecamatan.code)  # fmt: skip
        case aggregate.NibIssued(application_id=application_id, nib=nib, issued_on=issued_on):
            return NIBIssued(business_id=b.id, business_version=b.version, application_id=application_id, nib=nib,
                             issued_on=issued_on, kecamatan_code=b.kecamatan.code)  # fmt: skip
        case aggregate.NibRejected(application=app):
            return NIBRejected(business_id=b.id, business_version=b.version, application_id=app.id,
                               reason=app.reason or "", kecamatan_code=b.kecamatan.code)  # fmt: skip
        case aggregate.Closed():
            assert b.closed_at is not None
            return BusinessClosed(business_id=b.id, business_version=b.version, reason=b.closed_reason or "",
                                  closed_at=b.closed_at, kecamatan_code=b.kecamatan.code)  # fmt: skip
    raise TypeError(f"no contract for {event!r}")

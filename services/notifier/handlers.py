"""The notifier's use cases: one per event type an owner should hear of (or that keeps its contacts current)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from services.notifier import domain
from services.notifier.domain import Contact
from services.notifier.store import NotifierStore
from shared.contracts import Envelope
from shared.contracts.funding import FundingMatched, FundsDisbursed
from shared.contracts.registry import BusinessClosed, BusinessSnapshot, NIBIssued, NIBRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    clock: Callable[[], datetime]
    new_id: Callable[[], uuid.UUID] = uuid.uuid4


def _contact(snapshot: BusinessSnapshot) -> Contact:
    return Contact(
        business_id=snapshot.business_id, business_version=snapshot.business_version,
        business_name=snapshot.business_name, phone=snapshot.contact_phone, kecamatan=snapshot.kecamatan,
        kelurahan=snapshot.kelurahan, status=snapshot.status,
    )  # fmt: skip


async def _record(store: NotifierStore, deps: Deps, envelope: Envelope, contact: Contact, template: str, body: str) -> None:
    await store.add_message(
        domain.compose(template, body, contact.business_id, contact.phone, envelope.event_id, deps.new_id(), deps.clock())
    )


async def welcome(envelope: Envelope, event: BusinessSnapshot, store: NotifierStore, deps: Deps) -> None:
    contact = _contact(event)
    await store.save_contact(contact)
    body = domain.welcome_text(contact, event.registered_at, event.nib_status, event.nib)
    await _record(store, deps, envelope, contact, "welcome", body)


async def keep_contact(envelope: Envelope, event: BusinessSnapshot, store: NotifierStore, deps: Deps) -> None:
    await store.save_contact(_contact(event))


async def nib_issued(envelope: Envelope, event: NIBIssued, store: NotifierStore, deps: Deps) -> None:
    contact = await store.contact(event.business_id)
    if contact is None:
        # Registration always precedes this on the same partition; no contact means it predates our retention.
        log.warning("no contact for business %s; NIB message not recorded", event.business_id)
        return
    await _record(store, deps, envelope, contact, "nib_issued", domain.nib_issued_text(contact, event.nib, event.issued_on))


async def nib_rejected(envelope: Envelope, event: NIBRejected, store: NotifierStore, deps: Deps) -> None:
    contact = await store.contact(event.business_id)
    if contact is None:
        log.warning("no contact for business %s; NIB rejection message not recorded", event.business_id)
        return
    await _record(store, deps, envelope, contact, "nib_rejected", domain.nib_rejected_text(contact, event.reason))


async def business_closed(envelope: Envelope, event: BusinessClosed, store: NotifierStore, deps: Deps) -> None:
    contact = await store.contact(event.business_id)
    if contact is not None:
        await store.save_contact(replace(contact, status="closed", business_version=event.business_version))


async def funding_offer(envelope: Envelope, event: FundingMatched, store: NotifierStore, deps: Deps) -> None:
    """The offer carries the phone: the owner hears of it even if registry events have not reached us yet."""
    body = domain.funding_offer_text(event.business_name, event.amount_rupiah, event.instrument,
                                     event.financing_programme, event.sponsor_name, event.expires_at)  # fmt: skip
    await store.add_message(domain.compose("funding_offer", body, event.business_id, event.contact_phone,
                                           envelope.event_id, deps.new_id(), deps.clock()))  # fmt: skip


async def funds_disbursed(envelope: Envelope, event: FundsDisbursed, store: NotifierStore, deps: Deps) -> None:
    body = domain.funds_disbursed_text(event.business_name, event.amount_rupiah, event.sponsor_name, event.reference)
    await store.add_message(domain.compose("funds_disbursed", body, event.business_id, event.contact_phone,
                                           envelope.event_id, deps.new_id(), deps.clock()))  # fmt: skip

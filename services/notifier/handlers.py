"""The notifier's use cases: one per event an owner should hear of (or that keeps its contacts current).

Every handler has the shape of every handler in Berdaya: `async def handle(message, uow, deps)`; the event that
caused a message is the unit of work's cause, and one event never yields the same message twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from services.notifier.domain import texts
from services.notifier.domain.messages import Contact, compose
from services.notifier.store import NotifierUnitOfWork
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


async def _record(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, phone: str, template: str, body: str) -> None:
    assert uow.cause.causation_id is not None, "a message always answers an event"
    await uow.store.add_message(compose(template, body, business_id, phone, uow.cause.causation_id, deps.new_id(),
                                        deps.clock()))  # fmt: skip


async def welcome(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    contact = _contact(event)
    async with uow:
        await uow.store.save_contact(contact)
        body = texts.welcome_text(contact, event.registered_at, event.nib_status, event.nib)
        await _record(uow, deps, contact.business_id, contact.phone, "welcome", body)
        await uow.commit()


async def keep_contact(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await uow.store.save_contact(_contact(event))
        await uow.commit()


async def nib_issued(event: NIBIssued, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await uow.store.contact(event.business_id)
        if contact is None:
            # Registration always precedes this on the same partition; no contact means it predates our retention.
            log.warning("no contact for business %s; NIB message not recorded", event.business_id)
            return
        body = texts.nib_issued_text(contact, event.nib, event.issued_on)
        await _record(uow, deps, contact.business_id, contact.phone, "nib_issued", body)
        await uow.commit()


async def nib_rejected(event: NIBRejected, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await uow.store.contact(event.business_id)
        if contact is None:
            log.warning("no contact for business %s; NIB rejection message not recorded", event.business_id)
            return
        await _record(uow, deps, contact.business_id, contact.phone, "nib_rejected",
                      texts.nib_rejected_text(contact, event.reason))  # fmt: skip
        await uow.commit()


async def business_closed(event: BusinessClosed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await uow.store.contact(event.business_id)
        if contact is not None:
            await uow.store.save_contact(replace(contact, status="closed", business_version=event.business_version))
        await uow.commit()


async def funding_offer(event: FundingMatched, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """The offer carries the phone: the owner hears of it even if registry events have not reached us yet."""
    body = texts.funding_offer_text(event.business_name, event.amount_rupiah, event.instrument,
                                    event.financing_programme, event.sponsor_name, event.expires_at)  # fmt: skip
    async with uow:
        await _record(uow, deps, event.business_id, event.contact_phone, "funding_offer", body)
        await uow.commit()


async def funds_disbursed(event: FundsDisbursed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    body = texts.funds_disbursed_text(event.business_name, event.amount_rupiah, event.sponsor_name, event.reference)
    async with uow:
        await _record(uow, deps, event.business_id, event.contact_phone, "funds_disbursed", body)
        await uow.commit()

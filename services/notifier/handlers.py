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
from services.notifier.domain.messages import Contact, compose, to_officers
from services.notifier.store import NotifierUnitOfWork
from shared.contracts.funding import FundingMatched, FundsDisbursed
from shared.contracts.registry import BusinessClosed, BusinessSnapshot, NIBIssued, NIBRejected
from shared.contracts.training import (
    PathwayNotEligible,
    PathwayStalled,
    TraineeEnrolled,
    TraineeInvited,
    TraineeWaitlisted,
    TraineeWithdrew,
    TrainingCompleted,
)

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


async def _record(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, phone: str | None, template: str,
                  body: str) -> None:  # fmt: skip
    assert uow.cause.causation_id is not None, "a message always answers an event"
    await uow.store.add_message(compose(template, body, business_id, phone, uow.cause.causation_id, deps.new_id(),
                                        deps.clock()))  # fmt: skip


async def _to_owner(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, template: str,
                    text: Callable[[str], str]) -> None:  # fmt: skip
    """A message to the owner, naming the business as the notifier knows it. A training event can arrive before the
    registry's events have told the notifier the owner's contact: the message then waits for it (addressed when the
    contact comes) rather than being lost."""
    contact = await uow.store.contact(business_id)
    await _record(uow, deps, business_id, contact.phone if contact else None, template,
                  text(contact.business_name if contact else "Anda"))  # fmt: skip


async def _save_contact(uow: NotifierUnitOfWork, contact: Contact) -> None:
    await uow.store.save_contact(contact)
    await uow.store.address_waiting(contact)


async def welcome(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    contact = _contact(event)
    async with uow:
        await _save_contact(uow, contact)
        body = texts.welcome_text(contact, event.registered_at, event.nib_status, event.nib)
        await _record(uow, deps, contact.business_id, contact.phone, "welcome", body)
        await uow.commit()


async def keep_contact(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await _save_contact(uow, _contact(event))
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


# ---------------------------------------------------------------------------------------------------------------
# Training and the halal pathway
# ---------------------------------------------------------------------------------------------------------------


async def training_invitation(event: TraineeInvited, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await _to_owner(uow, deps, event.business_id, "training_invitation", lambda name: texts.training_invitation_text(
            name, event.title, event.starts_at, event.venue, event.need))  # fmt: skip
        await uow.commit()


async def training_seat(event: TraineeEnrolled, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """Only a seat freed for someone waiting is news: an enrolment by need follows its invitation, and an officer
    enrolling by hand is with the owner."""
    if not event.from_waitlist:
        return
    async with uow:
        await _to_owner(uow, deps, event.business_id, "training_seat",
                        lambda name: texts.training_seat_text(name, event.title, event.starts_at, event.venue))  # fmt: skip
        await uow.commit()


async def training_waitlisted(event: TraineeWaitlisted, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await _to_owner(uow, deps, event.business_id, "training_waitlisted",
                        lambda name: texts.training_waitlisted_text(name, event.title, event.position))  # fmt: skip
        await uow.commit()


async def training_cancelled(event: TraineeWithdrew, uow: NotifierUnitOfWork, deps: Deps) -> None:
    if event.reason != "cohort_cancelled":
        return
    async with uow:
        await _to_owner(uow, deps, event.business_id, "training_cancelled", texts.training_cancelled_text)
        await uow.commit()


async def training_completed(event: TrainingCompleted, uow: NotifierUnitOfWork, deps: Deps) -> None:
    title = event.title or event.topic.replace("_", " ")
    async with uow:
        await _to_owner(uow, deps, event.business_id, "training_completed",
                        lambda name: texts.training_completed_text(name, title, event.attendance_percent))  # fmt: skip
        await uow.commit()


async def halal_stalled(event: PathwayStalled, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """The owner hears that someone will help; the kecamatan's officers hear that they must."""
    async with uow:
        await _to_owner(uow, deps, event.business_id, "halal_stalled",
                        lambda name: texts.halal_stalled_text(name, event.waiting_for, event.since))  # fmt: skip
        contact = await uow.store.contact(event.business_id)
        body = texts.halal_stalled_officer_text(contact.business_name if contact else "tanpa nama", event.business_id,
                                                event.waiting_for, event.since, event.days)  # fmt: skip
        assert uow.cause.causation_id is not None
        await uow.store.add_message(to_officers("halal_stalled_officer", body, event.business_id, event.kecamatan_code,
                                                uow.cause.causation_id, deps.new_id(), deps.clock()))  # fmt: skip
        await uow.commit()


async def halal_not_eligible(event: PathwayNotEligible, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await _to_owner(uow, deps, event.business_id, "halal_not_eligible", lambda name: texts.halal_not_eligible_text(
            name, event.reason, event.regular_route_possible))  # fmt: skip
        await uow.commit()

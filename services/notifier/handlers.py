"""The notifier's use cases for the events it consumes: what the registry, funding and training tell it.

One handler per event an owner or an officer should hear of, or that keeps what the notifier knows current
(contacts, pledges, offers). Every handler has the shape of every handler in Berdaya: `async def handle(message, uow,
deps)`; messages are recorded, and their deliveries planned, through recording.py. The other use cases have modules
of their own: delivery_outcomes.py (what gateways report, owners' replies, deliveries settled by hand), directory.py
(what officers and sponsors set) and sweeps.py (what time brings: offer reminders, sponsors' weekly digests).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from services.notifier.domain import texts
from services.notifier.domain.digest import (
    ACCEPTED,
    DECLINED,
    DISBURSED,
    EXPIRED,
    WITHDRAWN,
    OfferFact,
    PledgeFact,
    moved_on,
)
from services.notifier.domain.messages import Contact, compose, to_officers
from services.notifier.recording import (
    Deps,
    owner_phone,
    plan_deliveries,
    record,
    record_all,
    save_contact,
    to_owner,
    to_owner_at,
    withhold,
)
from services.notifier.store import NotifierUnitOfWork
from shared.contracts.envelope import RecordRefused
from shared.contracts.funding import (
    CSRPledged,
    FundingAccepted,
    FundingDeclined,
    FundingExpired,
    FundingMatched,
    FundingWithdrawn,
    FundsDisbursed,
    PledgeClosed,
)
from shared.contracts.registry import (
    BusinessClosed, BusinessEvent, BusinessSnapshot, NIBIssued, NIBRejected, never_registered,
)
from shared.contracts.training import (
    PathwayNotEligible,
    PathwayStalled,
    TraineeEnrolled,
    TraineeInvited,
    TraineeWaitlisted,
    TraineeWithdrew,
    TrainingCompleted,
)


def _contact(snapshot: BusinessSnapshot) -> Contact:
    return Contact(
        business_id=snapshot.business_id, business_version=snapshot.business_version,
        business_name=snapshot.business_name, phone=snapshot.contact_phone, kecamatan=snapshot.kecamatan,
        kelurahan=snapshot.kelurahan, status=snapshot.status, kecamatan_code=snapshot.kecamatan_code,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The registry's events
# ---------------------------------------------------------------------------------------------------------------


async def welcome(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    contact = _contact(event)
    async with uow:
        await save_contact(uow, deps, contact)
        body = texts.welcome_text(contact, event.registered_at, event.nib_status, event.nib)
        await to_owner_at(uow, deps, contact.business_id, contact.phone, "welcome", body)
        await uow.commit()


async def welcome_all(events: Sequence[tuple[BusinessSnapshot, uuid.UUID]], uow: NotifierUnitOfWork, deps: Deps) -> None:
    """`welcome` for a run of registrations (event, its id) at once: the same contacts, messages and deliveries, in a
    few round trips instead of a few per registration."""
    contacts = [_contact(event) for event, _ in events]
    async with uow:
        await uow.store.save_contacts(contacts)
        for waiting in await uow.store.address_waiting_for(contacts):
            await plan_deliveries(uow, deps, waiting)
        now = deps.clock()
        await record_all(uow, deps, [
            compose("welcome", texts.welcome_text(contact, event.registered_at, event.nib_status, event.nib),
                    contact.business_id, contact.phone, event_id, deps.new_id(), now)
            for (event, event_id), contact in zip(events, contacts, strict=True)
        ])  # fmt: skip
        await uow.commit()


async def keep_contact(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await save_contact(uow, deps, _contact(event))
        await uow.commit()


async def _known(event: BusinessEvent, uow: NotifierUnitOfWork) -> Contact:
    """The business's contact; an event for one the notifier has never heard of is refused, to be dead-lettered and
    not counted as handled: the registration it overtook may still come, and the event again behind it."""
    contact = await uow.store.contact(event.business_id)
    if contact is None:
        raise never_registered(event)
    return contact


async def nib_issued(event: NIBIssued, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await _known(event, uow)
        body = texts.nib_issued_text(contact, event.nib, event.issued_on)
        await to_owner_at(uow, deps, contact.business_id, contact.phone, "nib_issued", body)
        await uow.commit()


async def nib_rejected(event: NIBRejected, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await _known(event, uow)
        await to_owner_at(uow, deps, contact.business_id, contact.phone, "nib_rejected",
                          texts.nib_rejected_text(contact, event.reason))  # fmt: skip
        await uow.commit()


async def business_closed(event: BusinessClosed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await _known(event, uow)
        await uow.store.save_contact(replace(contact, status="closed", business_version=event.business_version))
        await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# Funding's events
# ---------------------------------------------------------------------------------------------------------------


async def pledge_made(event: CSRPledged, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """Kept for sponsors' digests: whose pledge it is and how much."""
    async with uow:
        await uow.store.save_pledge(PledgeFact(event.pledge_id, event.sponsor_id, event.sponsor_name, event.title,
                                               event.instrument, event.total_rupiah, event.pledged_at))  # fmt: skip
        await uow.commit()


async def pledge_closed(event: PledgeClosed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        pledge = await uow.store.pledge(event.pledge_id)
        if pledge is not None:
            await uow.store.save_pledge(replace(pledge, closed_at=event.closed_at))
        await uow.commit()


def _offer_fact(event: FundingMatched) -> OfferFact:
    return OfferFact(event.offer_id, event.pledge_id, event.business_id, event.business_name, event.contact_phone,
                     event.kecamatan_code, event.sponsor_name, event.instrument, event.financing_programme,
                     event.amount_rupiah, event.offered_at, event.expires_at)  # fmt: skip


def _offer_text(event: FundingMatched) -> str:
    return texts.funding_offer_text(event.business_name, event.amount_rupiah, event.instrument,
                                    event.financing_programme, event.sponsor_name, event.expires_at)  # fmt: skip


async def funding_offer(event: FundingMatched, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """The offer carries the phone: the owner hears of it even if registry events have not reached us yet."""
    assert uow.cause.causation_id is not None, "a message always answers an event"
    await funding_offers([(event, uow.cause.causation_id)], uow, deps)


async def funding_offers(events: Sequence[tuple[FundingMatched, uuid.UUID]], uow: NotifierUnitOfWork,
                         deps: Deps) -> None:  # fmt: skip
    """`funding_offer` for a run of offers (event, its id) at once, as a pledge matched against a city makes them, in
    a few round trips whatever their number. The owner's number is the registry's word if the notifier has it
    (`owner_phone`), else the offer's."""
    async with uow:
        await uow.store.add_offers([_offer_fact(event) for event, _ in events])
        contacts = await uow.store.contacts_of([event.business_id for event, _ in events])
        now = deps.clock()
        await record_all(uow, deps, [
            compose("funding_offer", _offer_text(event), event.business_id,
                    contacts[event.business_id].phone if event.business_id in contacts else event.contact_phone,
                    event_id, deps.new_id(), now, offer_id=event.offer_id, deadline=event.expires_at)
            for event, event_id in events
        ])  # fmt: skip
        await uow.commit()


OfferAnswer = FundingAccepted | FundingDeclined | FundingExpired | FundingWithdrawn


def _answer(event: OfferAnswer) -> tuple[str, datetime]:
    if isinstance(event, FundingAccepted):
        return ACCEPTED, event.accepted_at
    if isinstance(event, FundingDeclined):
        return DECLINED, event.declined_at
    if isinstance(event, FundingExpired):
        return EXPIRED, event.expired_at
    return WITHDRAWN, event.withdrawn_at


async def offer_answered(event: OfferAnswer, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """An offer accepted, declined, expired or withdrawn: no reminder any more, and whatever about it still waits
    (in quiet hours, say) is withheld.

    An answer to an offer the notifier has never heard of is refused, to be dead-lettered and not counted as handled:
    its offer may still come (sent again by the relay behind the answer, or re-driven), and the answer again behind
    it. Ignored, the answer was gone for good, and the owner was then told of an offer already answered, and
    reminded of it."""
    state, at = _answer(event)
    async with uow:
        offer = await uow.store.offer(event.offer_id)
        if offer is None:
            raise RecordRefused(
                f"offer {event.offer_id} of pledge {event.pledge_id}: {type(event).__name__}, but the notifier has "
                f"never heard of the offer; its FundingMatched never arrived here (dead-lettered, or sent again after "
                f"this answer, which then follows it and applies: a re-drive skips it). Re-drive the notifier's dead "
                f"letters of funding.pledge.v1, oldest first: `berdaya dlq redrive funding.pledge.v1 --consumer "
                f"notifier-funding` (`berdaya dlq list funding.pledge.v1` names them)")  # fmt: skip
        await uow.store.save_offer(moved_on(offer, state, at))
        await withhold(uow, await uow.store.queued_about_offer(event.offer_id),
                       f"the offer was {state} before this message went", deps.clock())  # fmt: skip
        await uow.commit()


async def funds_disbursed(event: FundsDisbursed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    body = texts.funds_disbursed_text(event.business_name, event.amount_rupiah, event.sponsor_name, event.reference)
    async with uow:
        offer = await uow.store.offer(event.offer_id)
        if offer is not None:
            await uow.store.save_offer(moved_on(offer, DISBURSED, event.disbursed_at))
        await to_owner_at(uow, deps, event.business_id, await owner_phone(uow, event.business_id, event.contact_phone),
                          "funds_disbursed", body)  # fmt: skip
        await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# Training and the halal pathway
# ---------------------------------------------------------------------------------------------------------------


async def training_invitation(event: TraineeInvited, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await to_owner(uow, deps, event.business_id, "training_invitation", lambda name: texts.training_invitation_text(
            name, event.title, event.starts_at, event.venue, event.need))  # fmt: skip
        await uow.commit()


async def training_seat(event: TraineeEnrolled, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """Only a seat freed for someone waiting is news: an enrolment by need follows its invitation, and an officer
    enrolling by hand is with the owner."""
    if not event.from_waitlist:
        return
    async with uow:
        await to_owner(uow, deps, event.business_id, "training_seat",
                       lambda name: texts.training_seat_text(name, event.title, event.starts_at, event.venue))  # fmt: skip
        await uow.commit()


async def training_waitlisted(event: TraineeWaitlisted, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await to_owner(uow, deps, event.business_id, "training_waitlisted",
                       lambda name: texts.training_waitlisted_text(name, event.title, event.position))  # fmt: skip
        await uow.commit()


async def training_cancelled(event: TraineeWithdrew, uow: NotifierUnitOfWork, deps: Deps) -> None:
    if event.reason != "cohort_cancelled":
        return
    async with uow:
        await to_owner(uow, deps, event.business_id, "training_cancelled", texts.training_cancelled_text)
        await uow.commit()


async def training_completed(event: TrainingCompleted, uow: NotifierUnitOfWork, deps: Deps) -> None:
    title = event.title or event.topic.replace("_", " ")
    async with uow:
        await to_owner(uow, deps, event.business_id, "training_completed",
                       lambda name: texts.training_completed_text(name, title, event.attendance_percent))  # fmt: skip
        await uow.commit()


async def halal_stalled(event: PathwayStalled, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """The owner hears that someone will help; the kecamatan's officers hear that they must."""
    async with uow:
        await to_owner(uow, deps, event.business_id, "halal_stalled",
                       lambda name: texts.halal_stalled_text(name, event.waiting_for, event.since))  # fmt: skip
        contact = await uow.store.contact(event.business_id)
        name = contact.business_name if contact else "tanpa nama"
        body = texts.halal_stalled_officer_text(name, event.business_id, event.waiting_for, event.since, event.days)
        assert uow.cause.causation_id is not None
        await record(uow, deps, to_officers("halal_stalled_officer", body, event.business_id, event.kecamatan_code,
                                            uow.cause.causation_id, deps.new_id(), deps.clock(),
                                            subject=texts.halal_stalled_officer_subject(name)))  # fmt: skip
        await uow.commit()


async def halal_not_eligible(event: PathwayNotEligible, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await to_owner(uow, deps, event.business_id, "halal_not_eligible", lambda name: texts.halal_not_eligible_text(
            name, event.reason, event.regular_route_possible))  # fmt: skip
        await uow.commit()

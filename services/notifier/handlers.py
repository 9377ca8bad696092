"""The notifier's use cases: one per event an owner, an officer or a sponsor should hear of (or that keeps what the
notifier knows current), what gateways report back, owners' replies, what officers set, and what time brings
(offer reminders, sponsors' weekly digests).

Every handler has the shape of every handler in Berdaya: `async def handle(message, uow, deps)`. A message is recorded
once per (event, template) and its deliveries are planned in the same transaction (domain/planning.py); the delivery
worker (delivery.py) sends them afterwards.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from services.notifier.domain import texts
from services.notifier.domain.channels import SMS, WHATSAPP
from services.notifier.domain.consent import LANGUAGES, Intent, Preference, reply_intent
from services.notifier.domain.delivery import (
    FAILED,
    QUEUED,
    SENT,
    UNKNOWN,
    WITHHELD,
    Delivery,
    advance,
    summarise,
)
from services.notifier.domain.digest import (
    ACCEPTED,
    DECLINED,
    DISBURSED,
    EXPIRED,
    WITHDRAWN,
    OfferFact,
    PledgeFact,
    digest_due,
    digest_event_id,
    moved_on,
    pledge_week,
    reminder_event_id,
    week_bounds,
    worth_a_digest,
)
from services.notifier.domain.messages import OFFICERS, OWNER, Contact, Message, compose, to_officers, to_sponsor
from services.notifier.domain.planning import DeliveryRules, Plan, plan_addresses, plan_fallback, plan_owner
from services.notifier.store import NotifierUnitOfWork
from shared.auth import Principal
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
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

UnitOfWorkFactory = Callable[[], NotifierUnitOfWork]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Deps:
    clock: Callable[[], datetime]
    new_id: Callable[[], uuid.UUID] = uuid.uuid4
    rules: DeliveryRules = field(default_factory=DeliveryRules)
    wake: Callable[[], None] = _nothing  # tells the delivery worker something was queued (after the commit)
    digest_weekday: int = 0  # Monday
    digest_hour: int = 8  # WITA


def _contact(snapshot: BusinessSnapshot) -> Contact:
    return Contact(
        business_id=snapshot.business_id, business_version=snapshot.business_version,
        business_name=snapshot.business_name, phone=snapshot.contact_phone, kecamatan=snapshot.kecamatan,
        kelurahan=snapshot.kelurahan, status=snapshot.status, kecamatan_code=snapshot.kecamatan_code,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Recording a message and planning its deliveries
# ---------------------------------------------------------------------------------------------------------------


async def refresh_message(uow: NotifierUnitOfWork, message_id: uuid.UUID, now: datetime) -> None:
    """The message's status from its deliveries."""
    status, channel = summarise(await uow.store.deliveries_of(message_id))
    await uow.store.set_message_status(message_id, status, channel, now)


async def _plan(uow: NotifierUnitOfWork, deps: Deps, message: Message, preference_channel: str | None = None) -> Plan | None:
    now = deps.clock()
    if message.audience == OWNER:
        if message.recipient_phone is None:
            return None  # it waits for the owner's contact (address_waiting)
        preference = await uow.store.preference(message.recipient_phone)
        if preference_channel:  # the answer to a reply goes back on the channel the owner wrote on
            preference = replace(preference or Preference(message.recipient_phone), channel=preference_channel)
        plan = plan_owner(message, preference, deps.rules, now, deps.new_id)
    elif message.audience == OFFICERS:
        plan = plan_addresses(message, await uow.store.officer_emails(message.kecamatan_code), deps.rules, now, deps.new_id)
    else:
        assert message.sponsor_id is not None
        email = await uow.store.sponsor_email(message.sponsor_id)
        plan = plan_addresses(message, [email] if email else [], deps.rules, now, deps.new_id)
    await uow.store.add_deliveries(plan.deliveries)
    await refresh_message(uow, message.id, now)
    if any(d.status == QUEUED for d in plan.deliveries):
        uow.after_commit(deps.wake)
    if plan.flag_officers:
        await _offer_at_risk(uow, deps, message, plan)
    return plan


async def _record(uow: NotifierUnitOfWork, deps: Deps, message: Message, preference_channel: str | None = None) -> bool:
    """Record the message and plan its deliveries; False (and nothing planned) if this event already made it."""
    if not await uow.store.add_message(message):
        return False
    await _plan(uow, deps, message, preference_channel)
    return True


async def _offer_at_risk(uow: NotifierUnitOfWork, deps: Deps, message: Message, plan: Plan) -> None:
    """Quiet hours keep an offer from its owner until (almost) too late: the kecamatan's officers hear of it."""
    offer = await uow.store.offer(message.offer_id) if message.offer_id else None
    if offer is None:
        return
    owner = plan.deliveries[0]
    body = texts.offer_at_risk_officer_text(offer.business_name, offer.business_id, offer.amount_rupiah,
                                            offer.sponsor_name, offer.expires_at,
                                            owner.not_before if owner.status == QUEUED else None)  # fmt: skip
    await _record(uow, deps, to_officers("offer_at_risk_officer", body, offer.business_id, offer.kecamatan_code,
                                         message.event_id, deps.new_id(), deps.clock(), offer_id=offer.offer_id,
                                         subject=texts.offer_at_risk_officer_subject(offer.business_name)))  # fmt: skip


async def _to_owner_at(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, phone: str | None, template: str,
                       body: str, *, offer_id: uuid.UUID | None = None, deadline: datetime | None = None) -> None:  # fmt: skip
    assert uow.cause.causation_id is not None, "a message always answers an event"
    await _record(uow, deps, compose(template, body, business_id, phone, uow.cause.causation_id, deps.new_id(),
                                     deps.clock(), offer_id=offer_id, deadline=deadline))  # fmt: skip


async def _to_owner(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, template: str,
                    text: Callable[[str], str]) -> None:  # fmt: skip
    """A message to the owner, naming the business as the notifier knows it. A training event can arrive before the
    registry's events have told the notifier the owner's contact: the message then waits for it (addressed and planned
    when the contact comes) rather than being lost."""
    contact = await uow.store.contact(business_id)
    await _to_owner_at(uow, deps, business_id, contact.phone if contact else None, template,
                       text(contact.business_name if contact else "Anda"))  # fmt: skip


async def _save_contact(uow: NotifierUnitOfWork, deps: Deps, contact: Contact) -> None:
    await uow.store.save_contact(contact)
    for message in await uow.store.address_waiting(contact):
        await _plan(uow, deps, message)


# ---------------------------------------------------------------------------------------------------------------
# The registry's events
# ---------------------------------------------------------------------------------------------------------------


async def welcome(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    contact = _contact(event)
    async with uow:
        await _save_contact(uow, deps, contact)
        body = texts.welcome_text(contact, event.registered_at, event.nib_status, event.nib)
        await _to_owner_at(uow, deps, contact.business_id, contact.phone, "welcome", body)
        await uow.commit()


async def keep_contact(event: BusinessSnapshot, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await _save_contact(uow, deps, _contact(event))
        await uow.commit()


async def nib_issued(event: NIBIssued, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await uow.store.contact(event.business_id)
        if contact is None:
            # Registration always precedes this on the same partition; no contact means it predates our retention.
            log.warning("no contact for business %s; NIB message not recorded", event.business_id)
            return
        body = texts.nib_issued_text(contact, event.nib, event.issued_on)
        await _to_owner_at(uow, deps, contact.business_id, contact.phone, "nib_issued", body)
        await uow.commit()


async def nib_rejected(event: NIBRejected, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await uow.store.contact(event.business_id)
        if contact is None:
            log.warning("no contact for business %s; NIB rejection message not recorded", event.business_id)
            return
        await _to_owner_at(uow, deps, contact.business_id, contact.phone, "nib_rejected",
                           texts.nib_rejected_text(contact, event.reason))  # fmt: skip
        await uow.commit()


async def business_closed(event: BusinessClosed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        contact = await uow.store.contact(event.business_id)
        if contact is not None:
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


async def funding_offer(event: FundingMatched, uow: NotifierUnitOfWork, deps: Deps) -> None:
    """The offer carries the phone: the owner hears of it even if registry events have not reached us yet."""
    body = texts.funding_offer_text(event.business_name, event.amount_rupiah, event.instrument,
                                    event.financing_programme, event.sponsor_name, event.expires_at)  # fmt: skip
    async with uow:
        if await uow.store.offer(event.offer_id) is None:
            await uow.store.save_offer(OfferFact(
                event.offer_id, event.pledge_id, event.business_id, event.business_name, event.contact_phone,
                event.kecamatan_code, event.sponsor_name, event.instrument, event.financing_programme,
                event.amount_rupiah, event.offered_at, event.expires_at))  # fmt: skip
        await _to_owner_at(uow, deps, event.business_id, event.contact_phone, "funding_offer", body,
                           offer_id=event.offer_id, deadline=event.expires_at)  # fmt: skip
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
    (in quiet hours, say) is withheld."""
    state, at = _answer(event)
    async with uow:
        offer = await uow.store.offer(event.offer_id)
        if offer is not None:
            await uow.store.save_offer(moved_on(offer, state, at))
        await _withhold_about_offer(uow, event.offer_id, f"the offer was {state} before this message went", deps.clock())
        await uow.commit()


async def _withhold_about_offer(uow: NotifierUnitOfWork, offer_id: uuid.UUID, reason: str, now: datetime) -> None:
    waiting = await uow.store.queued_about_offer(offer_id)
    for delivery in waiting:
        await uow.store.save_delivery(replace(delivery, status=WITHHELD, reason=reason), now)
    for message_id in sorted({d.message_id for d in waiting}):
        await refresh_message(uow, message_id, now)


async def funds_disbursed(event: FundsDisbursed, uow: NotifierUnitOfWork, deps: Deps) -> None:
    body = texts.funds_disbursed_text(event.business_name, event.amount_rupiah, event.sponsor_name, event.reference)
    async with uow:
        offer = await uow.store.offer(event.offer_id)
        if offer is not None:
            await uow.store.save_offer(moved_on(offer, DISBURSED, event.disbursed_at))
        await _to_owner_at(uow, deps, event.business_id, event.contact_phone, "funds_disbursed", body)
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
        name = contact.business_name if contact else "tanpa nama"
        body = texts.halal_stalled_officer_text(name, event.business_id, event.waiting_for, event.since, event.days)
        assert uow.cause.causation_id is not None
        await _record(uow, deps, to_officers("halal_stalled_officer", body, event.business_id, event.kecamatan_code,
                                             uow.cause.causation_id, deps.new_id(), deps.clock(),
                                             subject=texts.halal_stalled_officer_subject(name)))  # fmt: skip
        await uow.commit()


async def halal_not_eligible(event: PathwayNotEligible, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        await _to_owner(uow, deps, event.business_id, "halal_not_eligible", lambda name: texts.halal_not_eligible_text(
            name, event.reason, event.regular_route_possible))  # fmt: skip
        await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# What gateways report, and what owners reply
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    channel: str
    provider_id: str
    status: str
    error: str | None = None
    no_whatsapp: bool = False
    delivery_id: uuid.UUID | None = None  # ours, echoed by the gateway (WhatsApp's biz_opaque_callback_data)


async def record_status(report: GatewayStatus, uow: NotifierUnitOfWork, deps: Deps) -> bool:
    """A gateway's status for a message: moves its delivery forward (never back), falls back to SMS when WhatsApp says
    the number has none. A status for a message we do not know is recorded and otherwise ignored; returns whether it
    matched a delivery."""
    async with uow:
        now = deps.clock()
        delivery = await uow.store.delivery_by_provider(report.channel, report.provider_id)
        if delivery is None and report.delivery_id is not None:
            # The status came before we recorded the gateway's id for it, or a crash lost that answer.
            ours = await uow.store.delivery(report.delivery_id)
            if ours is not None and ours.channel == report.channel and ours.provider_id in (None, report.provider_id):
                delivery = replace(ours, provider_id=report.provider_id)
        await uow.store.record_status_report(report.channel, report.provider_id, report.status, report.error,
                                             delivery.id if delivery else None, now)  # fmt: skip
        if delivery is None:
            await uow.commit()
            return False
        status = advance(delivery.status, report.status)
        reason = delivery.reason
        if status == FAILED and delivery.status != FAILED:
            reason = report.error or "the gateway reported it failed"
        elif status != delivery.status and delivery.status in (UNKNOWN, QUEUED):
            reason = (f"the gateway reported it {status}: the attempt whose answer was lost reached it, so it is not "
                      "sent again")  # fmt: skip
        elif status != delivery.status and status != FAILED:
            reason = None
        updated = replace(delivery, status=status, reason=reason)
        await uow.store.save_delivery(updated, now)
        if status == FAILED and delivery.status != FAILED and report.no_whatsapp:
            await fall_back(uow, deps, updated, now)
        await refresh_message(uow, delivery.message_id, now)
        await uow.commit()
        return True


async def fall_back(uow: NotifierUnitOfWork, deps: Deps, failed: Delivery, now: datetime) -> None:
    """The number has no WhatsApp: remember it (the next messages go by SMS straight away) and send this one by SMS."""
    if failed.channel != WHATSAPP:
        return
    preference = await uow.store.preference(failed.recipient) or Preference(failed.recipient)
    await uow.store.save_preference(replace(preference, no_whatsapp_since=now))
    message = await uow.store.message(failed.message_id)
    assert message is not None
    again = plan_fallback(failed, message.template, deps.rules, now, deps.new_id)
    if again is not None:
        await uow.store.add_deliveries([again])
        uow.after_commit(deps.wake)


@dataclass(frozen=True, slots=True)
class Reply:
    """What an owner wrote back, on WhatsApp or by SMS."""

    channel: str  # whatsapp | sms
    phone: str | None  # +62..., None when not an Indonesian mobile
    text: str
    reply_id: uuid.UUID  # the same for a gateway's retry of the same reply


async def owner_replied(reply: Reply, uow: NotifierUnitOfWork, deps: Deps) -> Intent | None:
    """STOP / BERHENTI opts the number out of everything not required, MULAI / START back in; either way the owner
    gets a confirmation on the channel they wrote on. Anything else is left for an officer."""
    intent = reply_intent(reply.text)
    if intent is None or reply.phone is None:
        return None
    async with uow:
        now = deps.clock()
        preference = await uow.store.preference(reply.phone) or Preference(reply.phone)
        await uow.store.save_preference(replace(preference, opted_out_at=(preference.opted_out_at or now)
                                                if intent == "stop" else None))  # fmt: skip
        await uow.store.record_consent(reply.phone, intent, reply.channel, now)
        template, body = ("opted_out", texts.opted_out_text()) if intent == "stop" else ("opted_in", texts.opted_in_text())
        message = Message(deps.new_id(), reply.reply_id, None, template, "none", reply.phone, body, now)
        await _record(uow, deps, message, preference_channel=reply.channel if reply.channel in (WHATSAPP, SMS) else None)
        await uow.commit()
    return intent


# ---------------------------------------------------------------------------------------------------------------
# What officers (and sponsors) set
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetPreference:
    business_id: uuid.UUID
    by: Principal
    channel: Literal["whatsapp", "sms"] | None = None
    clear_channel: bool = False
    language: str | None = None
    opted_out: bool | None = None


async def owner_preference(business_id: uuid.UUID, by: Principal, uow: NotifierUnitOfWork) -> tuple[Contact, Preference]:
    contact = await uow.store.contact(business_id)
    if contact is None:
        raise NotFound(f"the notifier knows no business {business_id} (it learns of them from the registry's events)")
    if not by.acts_in_kecamatan(contact.kecamatan_code or ""):
        raise Forbidden("this business is outside the kecamatan your token acts in")
    return contact, await uow.store.preference(contact.phone) or Preference(contact.phone)


async def set_preference(cmd: SetPreference, uow: NotifierUnitOfWork, deps: Deps) -> Preference:
    """An officer records an owner's wishes: their channel, their language, or their consent (as the owner asked in
    person); audited, and a consent change is kept with who recorded it."""
    if cmd.language is not None and cmd.language not in LANGUAGES:
        raise InvalidInput.one("language", "language.unsupported",
                               f"messages are written in {', '.join(LANGUAGES)} only (Bahasa Indonesia: 'id')")  # fmt: skip
    async with uow:
        now = deps.clock()
        contact, preference = await owner_preference(cmd.business_id, cmd.by, uow)
        updated = preference
        if cmd.channel is not None or cmd.clear_channel:
            updated = replace(updated, channel=None if cmd.clear_channel else cmd.channel)
        if cmd.language is not None:
            updated = replace(updated, language=cmd.language)
        if cmd.opted_out is not None and cmd.opted_out != preference.opted_out:
            updated = replace(updated, opted_out_at=now if cmd.opted_out else None)
            await uow.store.record_consent(contact.phone, "stop" if cmd.opted_out else "start", f"officer:{cmd.by.actor}", now)
        await uow.store.save_preference(updated)
        uow.audit("preference_changed", "business", cmd.business_id)
        await uow.commit()
    return updated


Resolution = Literal["sent", "resend", "failed"]


@dataclass(frozen=True, slots=True)
class ResolveDelivery:
    delivery_id: uuid.UUID
    outcome: Resolution
    note: str
    by: Principal


async def resolve_delivery(cmd: ResolveDelivery, uow: NotifierUnitOfWork, deps: Deps) -> Delivery:
    """An operator settles a delivery the notifier could not: one left `unknown` by a crash mid-send (checked with the
    gateway: it was sent, or it was not and should go again), or a failed one to try again."""
    async with uow:
        now = deps.clock()
        delivery = await uow.store.delivery(cmd.delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {cmd.delivery_id}")
        if delivery.status not in (UNKNOWN, FAILED):
            raise Conflict(f"the delivery is {delivery.status}; only unknown or failed deliveries are resolved by hand",
                           "delivery.not_unresolved", {"delivery_status": delivery.status})  # fmt: skip
        note = f"{cmd.outcome} by {cmd.by.actor}: {cmd.note}" if cmd.note else f"{cmd.outcome} by {cmd.by.actor}"
        if cmd.outcome == "sent":
            updated = replace(delivery, status=SENT, reason=f"resolved as sent by hand ({note})")
        elif cmd.outcome == "resend":
            updated = replace(delivery, status=QUEUED, not_before=now, reason=f"queued again by hand ({note})")
            uow.after_commit(deps.wake)
        else:
            updated = replace(delivery, status=FAILED, reason=f"resolved as failed by hand ({note})")
        await uow.store.save_delivery(updated, now)
        await refresh_message(uow, delivery.message_id, now)
        uow.audit(f"delivery_resolved_{cmd.outcome}", "delivery", cmd.delivery_id)
        await uow.commit()
    return updated


@dataclass(frozen=True, slots=True)
class SaveOfficer:
    email: str
    name: str
    kecamatan_codes: tuple[str, ...]
    by: Principal


def _may_keep(by: Principal, codes: Sequence[str]) -> None:
    """An officer whose token names kecamatan keeps the directory of those only; city-wide entries need a city-wide
    officer or an admin."""
    if "admin" in by.roles or not by.kecamatan_codes:
        return
    if not codes or any(not by.acts_in_kecamatan(c) for c in codes):
        raise Forbidden("your token acts in kecamatan " + ", ".join(sorted(by.kecamatan_codes)) + " only")


async def save_officer(cmd: SaveOfficer, uow: NotifierUnitOfWork, deps: Deps) -> uuid.UUID:
    _may_keep(cmd.by, cmd.kecamatan_codes)
    async with uow:
        officer_id = await uow.store.save_officer(deps.new_id(), cmd.email, cmd.name, cmd.kecamatan_codes)
        uow.audit("officer_saved", "officer", officer_id)
        await uow.commit()
    return officer_id


async def remove_officer(officer_id: uuid.UUID, by: Principal, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        found = await uow.store.officer(officer_id)
        if found is None:
            raise NotFound(f"no officer {officer_id} in the directory")
        _may_keep(by, found[1])
        await uow.store.remove_officer(officer_id)
        uow.audit("officer_removed", "officer", officer_id)
        await uow.commit()


async def save_sponsor_contact(sponsor_id: uuid.UUID, email: str, name: str | None, by: Principal,
                               uow: NotifierUnitOfWork) -> None:  # fmt: skip
    """Where a sponsor's weekly digest goes: set by an officer or admin, or by the sponsor itself."""
    if not (by.has_any({"officer"}) or by.acts_for_sponsor(sponsor_id)):
        raise Forbidden("a sponsor sets its own address only")
    async with uow:
        await uow.store.save_sponsor_contact(sponsor_id, email, name)
        uow.audit("sponsor_contact_saved", "sponsor", sponsor_id)
        await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# What time brings
# ---------------------------------------------------------------------------------------------------------------


async def remind_offers(unit_of_work: UnitOfWorkFactory, deps: Deps, batch: int = 200) -> int:
    """Owners whose offer is still open `reminder_lead` before it expires get one reminder (an offer made with less
    time than that left gets none: its own message is fresh). Every process may sweep: the reminder's event id is
    derived from the offer, so two sweeps record one."""
    now = deps.clock()
    reminded = 0
    async with unit_of_work() as uow:
        for offer in await uow.store.offers_to_remind(now, now + deps.rules.reminder_lead, batch):
            if offer.offered_at > offer.expires_at - deps.rules.reminder_lead:
                continue
            body = texts.offer_reminder_text(offer.business_name, offer.amount_rupiah, offer.instrument,
                                             offer.financing_programme, offer.sponsor_name, offer.expires_at)  # fmt: skip
            message = compose("offer_reminder", body, offer.business_id, offer.contact_phone,
                              reminder_event_id(offer.offer_id), deps.new_id(), now, offer_id=offer.offer_id,
                              deadline=offer.expires_at)  # fmt: skip
            reminded += await _record(uow, deps, message)
        await uow.commit()
    return reminded


async def send_digests(unit_of_work: UnitOfWorkFactory, deps: Deps) -> int:
    """Each sponsor's digest of last week, once, after this week's digest moment (Monday 08.00 WITA by default)."""
    now = deps.clock()
    monday = digest_due(now, deps.digest_weekday, deps.digest_hour)
    if monday is None:
        return 0
    recorded = 0
    async with unit_of_work() as uow:
        for sponsor_id in await uow.store.sponsors():
            pledges = await uow.store.pledges_of(sponsor_id)
            weeks = []
            for pledge in pledges:
                week = pledge_week(pledge, await uow.store.offers_of(pledge.pledge_id), monday)
                if pledge.pledged_at < week_bounds(monday)[1] and worth_a_digest(pledge, week, monday):
                    weeks.append(week)
            if not weeks:
                continue
            sponsor_name = pledges[0].sponsor_name
            message = to_sponsor("sponsor_digest", texts.sponsor_digest_text(sponsor_name, monday, weeks), sponsor_id,
                                 digest_event_id(sponsor_id, monday), deps.new_id(), now,
                                 subject=texts.sponsor_digest_subject(sponsor_name, monday))  # fmt: skip
            recorded += await _record(uow, deps, message)
        await uow.commit()
    return recorded

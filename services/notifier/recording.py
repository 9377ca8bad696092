"""Recording a message and planning its deliveries: what every use case that tells someone something shares.

A message is recorded once per (event, template) and its deliveries are planned in the same transaction
(domain/planning.py); the delivery worker (delivery.py) sends them afterwards. `Deps`, what every use case of the
notifier is given, is here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.notifier.domain import texts
from services.notifier.domain.consent import SUPERSEDED, Preference
from services.notifier.domain.delivery import NUMBER_CHANGED, QUEUED, WITHHELD, Delivery, summarise
from services.notifier.domain.messages import OFFICERS, OWNER, Contact, Message, compose, to_officers
from services.notifier.domain.planning import DeliveryRules, Plan, plan_addresses, plan_owner
from services.notifier.store import NotifierUnitOfWork

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


async def refresh_message(uow: NotifierUnitOfWork, message_id: uuid.UUID, now: datetime) -> None:
    """The message's status from its deliveries."""
    await refresh_messages(uow, [message_id], now)


async def withhold(uow: NotifierUnitOfWork, queued: Sequence[Delivery], reason: str, now: datetime) -> None:
    """These queued deliveries will not go, for `reason`; their messages' statuses follow."""
    for delivery in queued:
        await uow.store.save_delivery(replace(delivery, status=WITHHELD, reason=reason), now)
    await refresh_messages(uow, {d.message_id for d in queued}, now)


async def withhold_confirmations(uow: NotifierUnitOfWork, phone: str, now: datetime) -> None:
    """The number's confirmations of a STOP or MULAI not sent yet: its choice just changed again, and they would
    contradict it (only the latest answer is confirmed)."""
    await withhold(uow, await uow.store.queued_confirmations(phone), SUPERSEDED, now)


async def refresh_messages(uow: NotifierUnitOfWork, message_ids: Collection[uuid.UUID], now: datetime) -> None:
    """`refresh_message` for each, in three round trips whatever their number (the messages locked in id order)."""
    if not message_ids:
        return
    found = await uow.store.deliveries_of_messages(message_ids)
    await uow.store.set_message_statuses([(i, *summarise(deliveries)) for i, deliveries in found.items()], now)


async def plan_deliveries(uow: NotifierUnitOfWork, deps: Deps, message: Message, preference_channel: str | None = None,
                          *, new: bool = False) -> Plan | None:  # fmt: skip
    """`new`: the message was added in this unit of work, so its deliveries are the ones planned here (no one else
    can see it yet) and its status needs no reading back."""
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
    if new:
        await uow.store.set_message_status(message.id, *summarise(plan.deliveries), now)
    else:
        await refresh_message(uow, message.id, now)
    if any(d.status == QUEUED for d in plan.deliveries):
        uow.after_commit(deps.wake)
    if plan.flag_officers:
        await _offer_at_risk(uow, deps, message, plan)
    return plan


async def record(uow: NotifierUnitOfWork, deps: Deps, message: Message, preference_channel: str | None = None) -> bool:
    """Record the message and plan its deliveries; False (and nothing planned) if this event already made it."""
    if not await uow.store.add_message(message):
        return False
    await plan_deliveries(uow, deps, message, preference_channel, new=True)
    return True


async def record_all(uow: NotifierUnitOfWork, deps: Deps, messages: Sequence[Message]) -> None:
    """`record` for many messages at once (a wave of registrations), in a few round trips rather than a few per
    message: the same rows, plans and statuses as recording them one by one."""
    # Owners' deliveries are planned first, with one read of their preferences, so that each message is written once,
    # with the status its deliveries give it (a message is new, so its deliveries are exactly the ones planned here).
    owners = [m for m in messages if m.audience == OWNER and m.recipient_phone is not None]
    phones = {m.recipient_phone for m in owners if m.recipient_phone}
    preferences = await uow.store.preferences_of(phones) if owners else {}
    now = deps.clock()
    plans = {m.id: plan_owner(m, preferences.get(m.recipient_phone or ""), deps.rules, now, deps.new_id)
             for m in owners}
    new = await uow.store.add_messages(messages, {i: summarise(plan.deliveries) for i, plan in plans.items()}, now)
    for message in new:
        if message.id not in plans:
            await plan_deliveries(uow, deps, message, new=True)
    planned = [(message, plans[message.id]) for message in new if message.id in plans]  # not an event applied again
    await uow.store.add_deliveries([d for _, plan in planned for d in plan.deliveries])
    if any(d.status == QUEUED for _, plan in planned for d in plan.deliveries):
        uow.after_commit(deps.wake)
    for message, plan in planned:
        if plan.flag_officers:
            await _offer_at_risk(uow, deps, message, plan)


async def offer_at_risk(uow: NotifierUnitOfWork, deps: Deps, owner: Delivery) -> None:
    """`_offer_at_risk` for a delivery held back when it was to be sent (claimed in quiet hours, say)."""
    message = await uow.store.message(owner.message_id)
    if message is not None:
        await _offer_at_risk(uow, deps, message, Plan((owner,), flag_officers=True))


async def _offer_at_risk(uow: NotifierUnitOfWork, deps: Deps, message: Message, plan: Plan) -> None:
    """Quiet hours keep an offer from its owner until (almost) too late: the kecamatan's officers hear of it."""
    offer = await uow.store.offer(message.offer_id) if message.offer_id else None
    if offer is None:
        return
    owner = plan.deliveries[0]
    body = texts.offer_at_risk_officer_text(offer.business_name, offer.business_id, offer.amount_rupiah,
                                            offer.sponsor_name, offer.expires_at,
                                            owner.not_before if owner.status == QUEUED else None)  # fmt: skip
    await record(uow, deps, to_officers("offer_at_risk_officer", body, offer.business_id, offer.kecamatan_code,
                                        message.event_id, deps.new_id(), deps.clock(), offer_id=offer.offer_id,
                                        subject=texts.offer_at_risk_officer_subject(offer.business_name)))  # fmt: skip


async def to_owner_at(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, phone: str | None, template: str,
                      body: str, *, offer_id: uuid.UUID | None = None, deadline: datetime | None = None) -> None:  # fmt: skip
    assert uow.cause.causation_id is not None, "a message always answers an event"
    await record(uow, deps, compose(template, body, business_id, phone, uow.cause.causation_id, deps.new_id(),
                                    deps.clock(), offer_id=offer_id, deadline=deadline))  # fmt: skip


async def owner_phone(uow: NotifierUnitOfWork, business_id: uuid.UUID, carried: str) -> str:
    """The owner's number as the registry last told it, else the one an event carried: funding's copy may be older
    than the registry's word (a number changed since the offer was matched)."""
    contact = await uow.store.contact(business_id)
    return contact.phone if contact is not None else carried


async def to_owner(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, template: str,
                   text: Callable[[str], str]) -> None:  # fmt: skip
    """A message to the owner, naming the business as the notifier knows it. A training event can arrive before the
    registry's events have told the notifier the owner's contact: the message then waits for it (addressed and planned
    when the contact comes) rather than being lost."""
    contact = await uow.store.contact(business_id)
    await to_owner_at(uow, deps, business_id, contact.phone if contact else None, template,
                      text(contact.business_name if contact else "Anda"))  # fmt: skip


async def save_contact(uow: NotifierUnitOfWork, deps: Deps, contact: Contact) -> None:
    """Keep the owner's contact; messages waiting for it are addressed, and those still queued to a number the owner
    no longer has go to the new one instead (a number given up is soon someone else's)."""
    was = await uow.store.contact(contact.business_id)
    await uow.store.save_contact(contact)
    for message in await uow.store.address_waiting(contact):
        await plan_deliveries(uow, deps, message)
    if was is not None and was.business_version < contact.business_version and was.phone != contact.phone:
        await _readdress(uow, deps, contact.business_id, contact.phone)


async def _readdress(uow: NotifierUnitOfWork, deps: Deps, business_id: uuid.UUID, phone: str) -> None:
    now = deps.clock()
    waiting = await uow.store.queued_to_another_phone(business_id, phone)
    for delivery in waiting:
        await uow.store.save_delivery(replace(delivery, status=WITHHELD, reason=NUMBER_CHANGED), now)
    await readdress(uow, deps, {d.message_id for d in waiting}, phone)


async def readdress(uow: NotifierUnitOfWork, deps: Deps, message_ids: Collection[uuid.UUID], phone: str) -> None:
    """Owners' messages planned again for the number the owner has now; their deliveries to the number given up are
    the caller's to withhold (`NUMBER_CHANGED`)."""
    for message in await uow.store.readdress(sorted(message_ids), phone):
        await plan_deliveries(uow, deps, message)

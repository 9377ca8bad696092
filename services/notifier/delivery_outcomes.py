"""What happens to deliveries after they go: gateways' status reports, owners' replies, and deliveries settled by hand.

A status moves a delivery forward only (gateways report out of order); WhatsApp saying a number has none falls back
to SMS. STOP/BERHENTI and MULAI/START replies change the owner's consent and are answered; a gateway's retry of a
reply never undoes what the owner said since. An operator settles what the worker could not (a delivery left
`unknown` by a crash mid-send, or a failed one to try again).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from services.notifier.domain import texts
from services.notifier.domain.channels import PHONE_CHANNELS, SMS, WHATSAPP
from services.notifier.domain.consent import Intent, Preference, confirmation_held, reply_intent
from services.notifier.domain.delivery import (
    FAILED, NUMBER_CHANGED, QUEUED, SENT, UNKNOWN, WITHHELD, Delivery, advance,
)
from services.notifier.domain.messages import OWNER, Message
from services.notifier.domain.planning import plan_fallback
from services.notifier.recording import Deps, plan_deliveries, readdress, refresh_message, withhold_confirmations
from services.notifier.store import NotifierUnitOfWork
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)

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
    preference = await uow.store.preference_to_change(failed.recipient) or Preference(failed.recipient)
    await uow.store.save_preference(replace(preference, no_whatsapp_since=now))
    message = await uow.store.message(failed.message_id)
    assert message is not None
    again = plan_fallback(failed, message.template, deps.rules, now, deps.new_id)
    if again is not None:
        await uow.store.add_deliveries([again])
        uow.after_commit(deps.wake)


# How long the same words from the same number, forwarded without the gateway's id, may be a retry of one reply.
# Gateways retry a callback for hours, so a day: an older MULAI retried after the owner's STOP must not opt them in.
REPEAT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Reply:
    """What an owner wrote back, on WhatsApp or by SMS."""

    channel: str  # whatsapp | sms
    phone: str | None  # +62..., None when not an Indonesian mobile
    text: str
    reply_id: uuid.UUID  # the same for a gateway's retry of the same reply
    # Set for a reply forwarded without the gateway's own id: reply_id is then the id of (number, words) in the
    # current window of REPEAT_WINDOW, and earlier_id their id in the window before.
    earlier_id: uuid.UUID | None = None
    written_at: datetime | None = None  # when the owner wrote it, where the gateway says

    @property
    def identified(self) -> bool:
        """Whether reply_id comes from the gateway's own id for the reply, so a seen one is certainly a retry."""
        return self.earlier_id is None


async def owner_replied(reply: Reply, uow: NotifierUnitOfWork, deps: Deps) -> Intent | None:
    """STOP / BERHENTI opts the number out of everything not required, MULAI / START back in; either way the owner
    gets a confirmation on the channel they wrote on. Anything else is left for an officer.

    A reply seen before changes nothing when the gateway named it (a retry). One it did not name is "seen" when the
    same words came from the number less than REPEAT_WINDOW ago: it may be a retry or the owner saying it again, and
    only STOP is applied again (the owner's wish, or harmless). START is not: a retried MULAI that arrives after the
    owner's STOP would opt them back in without their knowing; they can write it another way ("Mulai lagi") or ask
    an officer.

    Only the latest answer is confirmed, at most CONFIRMATIONS_PER_HOUR an hour (`confirmation_held`)."""
    intent = reply_intent(reply.text)
    if intent is None or reply.phone is None:
        return None
    async with uow:
        now = deps.clock()
        # The number's lock first: its replies (and an officer's change) apply one after the other, whatever order
        # their webhooks finish in.
        preference = await uow.store.preference_to_change(reply.phone) or Preference(reply.phone)
        said = min(reply.written_at, now) if reply.written_at is not None else None
        latest = await uow.store.latest_consent_at(reply.phone)
        if intent == "start" and said is not None and latest is not None and said < latest:
            # Written before the number's latest STOP (or an officer's change) and arriving after it (a gateway's
            # retry, a webhook held up): the owner's latest answer stands, and nothing is confirmed. A late STOP is
            # applied all the same: opting out is the owner's to ask at any time, and MULAI undoes it.
            log.info("a %s MULAI written before the number's latest change was not applied", reply.channel)
            return intent
        template, body = (("opted_out", texts.opted_out_text()) if intent == "stop"
                          else ("opted_in", texts.opted_in_text()))  # fmt: skip
        message = Message(deps.new_id(), reply.reply_id, None, template, "none", reply.phone, body, now)
        if reply.earlier_id is not None and await uow.store.recorded_since(
                (reply.reply_id, reply.earlier_id), template, now - REPEAT_WINDOW):  # fmt: skip
            first_time = False
        else:
            # The confirmation first: it is unique to this reply, so a gateway's retry or a replayed webhook of an
            # old STOP (or MULAI) finds it and changes nothing, where it would have undone the owner's later answer.
            first_time = await uow.store.add_message(message)
        if not first_time and (reply.identified or intent == "start"):
            return intent
        await uow.store.save_preference(replace(preference, opted_out_at=(preference.opted_out_at or now)
                                                if intent == "stop" else None))  # fmt: skip
        held = confirmation_held(await uow.store.consent_changes_since(reply.phone, now - timedelta(hours=1)), now)
        await uow.store.record_consent(reply.phone, intent, reply.channel, now, said)
        # A STOP said again (words seen before, so not confirmed again) withholds them too: a MULAI's confirmation
        # held for its hour would otherwise reach the owner after they opted out.
        await withhold_confirmations(uow, reply.phone, now)
        if first_time:
            back = reply.channel if reply.channel in (WHATSAPP, SMS) else None
            plan = await plan_deliveries(uow, deps, message, back, new=True)
            for delivery in plan.deliveries if held and plan else ():
                if delivery.status == QUEUED:
                    await uow.store.save_delivery(replace(delivery, not_before=held[0], reason=held[1]), now)
        await uow.commit()
    return intent


# ---------------------------------------------------------------------------------------------------------------
# Deliveries settled by hand
# ---------------------------------------------------------------------------------------------------------------


Resolution = Literal["sent", "resend", "failed"]


@dataclass(frozen=True, slots=True)
class ResolveDelivery:
    delivery_id: uuid.UUID
    outcome: Resolution
    note: str
    by: Principal


async def kecamatan_of(uow: NotifierUnitOfWork, message_id: uuid.UUID) -> str | None:
    """Where a message belongs: the officers' kecamatan it was for, else its business's; None for neither."""
    message = await uow.store.message(message_id)
    if message is None or message.kecamatan_code:
        return message.kecamatan_code if message else None
    contact = await uow.store.contact(message.business_id) if message.business_id else None
    return contact.kecamatan_code if contact else None


async def owners_new_phone(uow: NotifierUnitOfWork, delivery: Delivery) -> str | None:
    """The number an owner has now, if a delivery of a message to the owner went to another one. A delivery about to
    go there again (a retry, a resend, its SMS fallback) must not: a number given up is soon someone else's."""
    if delivery.channel not in PHONE_CHANNELS:
        return None
    message = await uow.store.message(delivery.message_id)
    if message is None or message.audience != OWNER or message.business_id is None:
        return None
    await uow.store.hold_owners([message.business_id], changing=False)  # the registry's change commits first
    contact = await uow.store.contact(message.business_id)
    return contact.phone if contact is not None and contact.phone != delivery.recipient else None


async def resolve_delivery(cmd: ResolveDelivery, uow: NotifierUnitOfWork, deps: Deps) -> Delivery:
    """An operator settles a delivery the notifier could not: one left `unknown` by a crash mid-send (checked with the
    gateway: it was sent, or it was not and should go again), or a failed one to try again."""
    async with uow:
        now = deps.clock()
        delivery = await uow.store.delivery(cmd.delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {cmd.delivery_id}")
        where = await kecamatan_of(uow, delivery.message_id) if cmd.by.limited_to_kecamatan else None
        if cmd.by.limited_to_kecamatan and not cmd.by.acts_in_kecamatan(where or ""):
            raise Forbidden("this delivery is for someone outside the kecamatan your token acts in; ask an officer "
                            "of that kecamatan or the programme office")  # fmt: skip
        if delivery.status not in (UNKNOWN, FAILED):
            raise Conflict(f"the delivery is {delivery.status}; only unknown or failed deliveries are resolved by hand",
                           "delivery.not_unresolved", {"delivery_status": delivery.status})  # fmt: skip
        if cmd.outcome == "resend" and delivery.channel not in deps.rules.available.names():
            # Queued there, no worker would ever claim it, and it could not be resolved again until one did.
            raise Conflict(f"the delivery is on {delivery.channel}, whose gateway is not configured here; configure "
                           f"it (see the notifier's README) or resolve it as failed", "delivery.channel_not_configured",
                           {"channel": delivery.channel})  # fmt: skip
        note = f"{cmd.outcome} by {cmd.by.actor}: {cmd.note}" if cmd.note else f"{cmd.outcome} by {cmd.by.actor}"
        moved_to = await owners_new_phone(uow, delivery) if cmd.outcome == "resend" else None
        if cmd.outcome == "sent":
            updated = replace(delivery, status=SENT, reason=f"resolved as sent by hand ({note})")
        elif moved_to is not None:
            # The owner gave this number up since: the message goes to the one the owner has now, never here.
            updated = replace(delivery, status=WITHHELD, reason=f"{NUMBER_CHANGED} ({note})")
        elif cmd.outcome == "resend":
            # With its full share of retries again: one that used them up in an outage would fail at the first.
            updated = replace(delivery, status=QUEUED, not_before=now, retries_from=delivery.attempts,
                              reason=f"queued again by hand ({note})")
            uow.after_commit(deps.wake)
        else:
            updated = replace(delivery, status=FAILED, reason=f"resolved as failed by hand ({note})")
        await uow.store.save_delivery(updated, now)
        if moved_to is not None:
            await readdress(uow, deps, [delivery.message_id], moved_to)
        await refresh_message(uow, delivery.message_id, now)
        uow.audit(f"delivery_resolved_{cmd.outcome}", "delivery", cmd.delivery_id)
        await uow.commit()
    return updated

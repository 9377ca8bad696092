"""Planning a message's deliveries when it is recorded, and the last look before each is sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.notifier.domain.channels import (
    LOCAL,
    PHONE_CHANNELS,
    WHATSAPP,
    Available,
    NoChannel,
    address_channel,
    fallback,
    phone_channel,
)
from services.notifier.domain.consent import Preference, withhold_reason
from services.notifier.domain.delivery import FAILED, QUEUED, WITHHELD, Delivery
from services.notifier.domain.digest import ANSWERED
from services.notifier.domain.messages import OFFICERS, Message
from services.notifier.domain.phones import sms_reaches
from services.notifier.domain.policy import any_hour, policy_of
from services.notifier.domain.schedule import QuietHours, Timing, next_send_time, timing

NewId = Callable[[], uuid.UUID]
OFFER_TEMPLATES = frozenset({"funding_offer", "offer_reminder"})


@dataclass(frozen=True, slots=True)
class DeliveryRules:
    """The settings that decide where and when messages go."""

    available: Available = field(default_factory=Available)
    quiet: QuietHours = field(default_factory=QuietHours)
    min_lead: timedelta = timedelta(hours=24)  # an offer must reach the owner with at least this long to answer
    no_whatsapp_recheck: timedelta = timedelta(days=30)
    reminder_lead: timedelta = timedelta(hours=48)  # remind an owner this long before an open offer expires


@dataclass(frozen=True, slots=True)
class Plan:
    deliveries: tuple[Delivery, ...]
    flag_officers: bool = False  # an offer at risk: tell the kecamatan's officers

    @property
    def channel(self) -> str:
        return self.deliveries[0].channel if self.deliveries else "none"


def plan_owner(message: Message, preference: Preference | None, rules: DeliveryRules, now: datetime, new_id: NewId) -> Plan:
    """One delivery to the owner's phone: on the channel that reaches them, withheld if they opted out of what is not
    required, not before quiet hours end unless urgent."""
    assert message.recipient_phone is not None, "an owner's message is planned once their phone is known"
    phone, policy = message.recipient_phone, policy_of(message.template)
    try:
        channel = phone_channel(rules.available, preference, now, rules.no_whatsapp_recheck,
                                sms_reaches=sms_reaches(phone))  # fmt: skip
    except NoChannel as no_channel:
        wanted = preference.channel if preference and preference.channel else WHATSAPP
        return Plan((Delivery(new_id(), message.id, wanted, phone, FAILED, now, reason=str(no_channel)),))
    withheld = withhold_reason(policy, preference)
    if withheld:
        return Plan((Delivery(new_id(), message.id, channel, phone, WITHHELD, now, reason=withheld),))
    when = timing(now, rules.quiet, urgent=policy.urgent, deadline=message.deadline, min_lead=rules.min_lead)
    status = WITHHELD if when.withhold_reason else QUEUED
    return Plan((Delivery(new_id(), message.id, channel, phone, status, when.not_before, reason=when.withhold_reason),),
                when.flag_officers)  # fmt: skip


def plan_addresses(message: Message, addresses: Sequence[str], rules: DeliveryRules, now: datetime, new_id: NewId) -> Plan:
    """Officers' and sponsors' messages: one email each (any hour), or the local outbox when SMTP is not configured.
    With nobody in the directory, the message still goes to the local outbox, addressed to the kecamatan's officers
    or the sponsor, and the reason says who to add."""
    channel = address_channel(rules.available)
    if not addresses:
        if message.audience == OFFICERS:
            who, where = f"officers:{message.kecamatan_code}", f"officers of kecamatan {message.kecamatan_code}"
        else:
            who, where = f"sponsor:{message.sponsor_id}", f"sponsor {message.sponsor_id}"
        reason = f"no email address in the directory for the {where}; kept in the local outbox (add one at /directory)"
        return Plan((Delivery(new_id(), message.id, LOCAL, who, QUEUED, now, reason=reason),))
    return Plan(tuple(Delivery(new_id(), message.id, channel, address, QUEUED, now) for address in sorted(set(addresses))))


def plan_fallback(failed: Delivery, template: str, rules: DeliveryRules, now: datetime, new_id: NewId) -> Delivery | None:
    """A number without WhatsApp: the same message by SMS, if an SMS gateway is configured and reaches it."""
    channel = fallback(failed.channel, rules.available, sms_reaches=sms_reaches(failed.recipient))
    if channel is None:
        return None
    when = next_send_time(now, rules.quiet, urgent=any_hour(template, failed.critical))
    return Delivery(new_id(), failed.message_id, channel, failed.recipient, QUEUED, when, fallback_of=failed.id,
                    critical=failed.critical)


def at_send_time(delivery: Delivery, template: str, deadline: datetime | None, rules: DeliveryRules,
                 now: datetime) -> Timing | None:  # fmt: skip
    """When a phone message claimed now may go instead, if not now, or why it must not go: quiet hours and an offer's
    deadline are kept when it is sent, not only when it was planned (a backlog of the day reaching the night, a
    retry, a resend, a send recovered after its lease). An offer that would expire before quiet hours end is
    withheld, and the officers told, as when it is planned; None: it goes now."""
    if delivery.channel not in PHONE_CHANNELS:
        return None
    when = timing(now, rules.quiet, urgent=any_hour(template, delivery.critical), deadline=deadline,
                  min_lead=rules.min_lead)  # fmt: skip
    return None if when.withhold_reason is None and when.not_before <= now else when


def last_look(template: str, audience: str, preference: Preference | None, offer_state: str | None) -> str | None:
    """Why a queued delivery must not go after all (the owner opted out since, or the offer it is about was answered
    while it waited); None to send it."""
    if audience != "owner":
        return None
    reason = withhold_reason(policy_of(template), preference)
    if reason:
        return reason
    if template in OFFER_TEMPLATES and offer_state in ANSWERED:
        return f"the offer was {offer_state} before this message went"
    return None

"""Which channel reaches whom, and what a gateway can answer. The gateways themselves (I/O) are in
services/notifier/channels/.

Owners are reached on their phone: WhatsApp first (owners in Kupang live on it), SMS for an owner who prefers it or
whose number has no WhatsApp (SMS reaches Indonesian mobiles only). Officers and sponsors get email. With no gateway
configured for a channel, its messages go to the local outbox instead: readable in the `local_outbox` table, at
`GET /messages`, and as files when `NOTIFIER_LOCAL_OUTBOX_DIR` is set, so a demo shows every message without any
account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from services.notifier.domain.consent import Preference

WHATSAPP, SMS, EMAIL, LOCAL = "whatsapp", "sms", "email", "local"
CHANNELS = (WHATSAPP, SMS, EMAIL, LOCAL)
PHONE_CHANNELS = frozenset({WHATSAPP, SMS})

Guarantee = Literal["at_most_once", "at_least_once"]
AT_MOST_ONCE: Guarantee = "at_most_once"
AT_LEAST_ONCE: Guarantee = "at_least_once"


@dataclass(frozen=True, slots=True)
class Available:
    """The channels whose gateway is configured; the local outbox always is."""

    whatsapp: bool = False
    sms: bool = False
    email: bool = False

    @property
    def any_phone_gateway(self) -> bool:
        return self.whatsapp or self.sms

    def names(self) -> tuple[str, ...]:
        return tuple(c for c, on in ((WHATSAPP, self.whatsapp), (SMS, self.sms), (EMAIL, self.email)) if on) + (LOCAL,)


class NoChannel(Exception):
    """No configured channel reaches this recipient; the message fails with this reason."""


def phone_channel(available: Available, preference: Preference | None, now: datetime, no_whatsapp_recheck: timedelta,
                  *, sms_reaches: bool = True) -> str:  # fmt: skip
    """The channel for a phone: the owner's preference where it is configured, WhatsApp by default, SMS when the
    number was found to have no WhatsApp (until `no_whatsapp_recheck` has passed: people install it), the local
    outbox when no phone gateway is configured at all. SMS only where `sms_reaches` the number: the SMS gateways
    reach Indonesian mobiles, and an operator's number may be another country's."""
    if not available.any_phone_gateway:
        return LOCAL
    sms = available.sms and sms_reaches
    wants = preference.channel if preference and preference.channel else WHATSAPP
    no_whatsapp = bool(preference and preference.no_whatsapp_since
                       and now - preference.no_whatsapp_since < no_whatsapp_recheck)  # fmt: skip
    whatsapp_ok = available.whatsapp and not no_whatsapp
    if wants == WHATSAPP and whatsapp_ok:
        return WHATSAPP
    if sms:
        return SMS
    if whatsapp_ok:
        return WHATSAPP
    if available.sms:
        raise NoChannel("SMS reaches Indonesian mobiles (+62...) only and this number is not one; "
                        + ("it has no WhatsApp" if available.whatsapp else "no WhatsApp gateway is configured "
                           "(NOTIFIER_WHATSAPP_*)"))  # fmt: skip
    raise NoChannel("this number has no WhatsApp and no SMS gateway is configured (NOTIFIER_SMS_*)")


def address_channel(available: Available) -> str:
    """Officers and sponsors: email when SMTP is configured, else the local outbox."""
    return EMAIL if available.email else LOCAL


def fallback(channel: str, available: Available, *, sms_reaches: bool = True) -> str | None:
    """Where a message goes when its channel cannot reach the number: SMS for a number without WhatsApp, where SMS
    reaches it (an Indonesian mobile)."""
    return SMS if channel == WHATSAPP and available.sms and sms_reaches else None


# ---------------------------------------------------------------------------------------------------------------
# What a gateway answers to one send
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    """The gateway took the message; `provider_id` names it in later status reports."""

    provider_id: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The gateway refused this message for good (a 4xx about the number or the content); retrying cannot help."""

    reason: str
    code: str | None = None
    no_whatsapp: bool = False  # the number has no WhatsApp: try SMS


@dataclass(frozen=True, slots=True)
class Transient:
    """The gateway could not take it now (5xx, a timeout, a rate limit, a connection refused): try again later."""

    reason: str
    retry_after: float | None = None  # seconds, when the gateway said
    ambiguous: bool = False  # the request went out and no answer came: the gateway may have taken it


SendResult = Accepted | Rejected | Transient


def classify_http(status: int, reason: str, retry_after: float | None = None) -> Transient | Rejected:
    """An HTTP failure of a gateway: 5xx, 408 and 429 pass; 401 and 403 are our credentials, and a redirect, 404 or
    405 the gateway's address in our settings, not the message's fault, so they are retried too (with backoff, and
    the operator sees the reason) rather than failing every message for good; any other 4xx is about this
    message."""
    if status >= 500 or status in (408, 425, 429, 401, 403):
        return Transient(f"HTTP {status}: {reason}", retry_after)
    if status < 400 or status in (404, 405):
        return Transient(f"HTTP {status}: {reason} (the gateway's address, not this message: check the channel's "
                         "NOTIFIER_*_BASE_URL and phone number id)", retry_after)  # fmt: skip
    return Rejected(f"HTTP {status}: {reason}", str(status))

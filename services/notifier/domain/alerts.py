"""Alerts from Alertmanager, told to the people who run Berdaya: who hears of an alert, what it says, when it may go,
and how a repeat is recognised. No I/O here: the webhook is in webhooks.py, the use case in alerts.py.

- **Audience.** The receiver Alertmanager routed the alert to decides (deploy/prometheus/alertmanager.yml):
  `operators` (who run the system) or `officers` (the programme office: alerts labelled audience="officers").
  Any other receiver is refused (422 naming `receiver`), so a route added to Alertmanager without a thought for the
  notifier shows in Alertmanager's log instead of reaching the wrong people.
- **Recipients** are settings, not a directory: `NOTIFIER_OPERATOR_CONTACTS` and `NOTIFIER_OFFICER_CONTACTS`, email
  addresses and phone numbers separated by commas, checked at start (a wrong entry stops the service, naming the
  setting and the entry's position). An alert is one message to its audience with one delivery per recipient: email
  by SMTP, a phone by WhatsApp (SMS for a number found to have none, or when only SMS is configured, if it is an
  Indonesian mobile: SMS reaches no other), each to the local outbox when its gateway is not configured. With no
  recipient at all the alert is still recorded, once, to the local outbox addressed `alerts:<audience>`, with a
  reason naming the setting to fill in (and a warning in the log): never dropped, never an error Alertmanager would
  retry for ever.
- **Once per (audience, fingerprint, status, startsAt).** Alertmanager retries a webhook that failed and sends a
  still-firing alert again every `repeat_interval`, each time with the same fingerprint and startsAt: neither makes
  a second message (a repeat is not a reminder; what still fires is on Alertmanager's page and the consoles). Its
  resolution is one more message; the same alert firing again later has a new startsAt, so it is news again.
- **When.** A critical alert goes at once, day or night, on every channel (at 03.00 it must wake someone). The
  others (an operators' warning is "act today"; the programme office's info, its working day) wait by phone for the
  end of quiet hours (WITA); email goes at any hour. Owners' rules do not apply: an
  owner's STOP is about owners, and these are not offers.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.notifier.domain import texts
from services.notifier.domain.channels import LOCAL, PHONE_CHANNELS, WHATSAPP, NoChannel, address_channel, phone_channel
from services.notifier.domain.consent import Preference
from services.notifier.domain.delivery import FAILED, QUEUED, Delivery
from services.notifier.domain.messages import OFFICERS, OPERATORS, Message
from services.notifier.domain.phones import mask, normalise, sms_reaches
from services.notifier.domain.planning import DeliveryRules, Plan
from services.notifier.domain.policy import any_hour
from services.notifier.domain.schedule import QuietHours
from shared.errors import InvalidInput

FIRING, RESOLVED = "firing", "resolved"
RECEIVERS: dict[str, str] = {"operators": OPERATORS, "officers": OFFICERS}  # Alertmanager's receiver -> audience
CONTACT_SETTINGS = {OPERATORS: "NOTIFIER_OPERATOR_CONTACTS", OFFICERS: "NOTIFIER_OFFICER_CONTACTS"}
TEMPLATES = {(OPERATORS, FIRING): "alert_firing", (OPERATORS, RESOLVED): "alert_resolved",
             (OFFICERS, FIRING): "alert_firing_officer", (OFFICERS, RESOLVED): "alert_resolved_officer"}  # fmt: skip
RUNBOOK = "deploy/prometheus/RUNBOOK.md"
SHOWN_APART = frozenset({"alertname", "severity", "audience"})  # said in the text's head, or implied by who gets it

# Bounds on what the webhook takes. Alertmanager sends at most max_alerts (50) alerts a call; far more is a bug or an
# attack, and so is a body past a megabyte.
MAX_BODY_BYTES = 1024 * 1024
MAX_ALERTS = 1000
MAX_CONTACTS = 50

_NAMESPACE = uuid.UUID("0b6f3c2e-8a41-4d0e-9c57-2f6e1a9d4b83")  # notice ids: uuid5 in this namespace
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")

NewId = Callable[[], uuid.UUID]


# ---------------------------------------------------------------------------------------------------------------
# Who: the audience of a receiver, the recipients of an audience
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRecipients:
    """The contacts of each audience, as the settings give them (already checked and normalised)."""

    operators: tuple[str, ...] = ()
    officers: tuple[str, ...] = ()

    def of(self, audience: str) -> tuple[str, ...]:
        return self.operators if audience == OPERATORS else self.officers


def audience_of(receiver: str) -> str:
    """The audience Alertmanager's receiver stands for; 422 naming `receiver` for any other."""
    audience = RECEIVERS.get(receiver)
    if audience is None:
        shown = receiver if len(receiver) <= 60 else receiver[:59] + "…"
        raise InvalidInput.one("receiver", "alertmanager.receiver_unknown",
                               f"no receiver {shown!r} here: the notifier knows "
                               f"{' and '.join(sorted(RECEIVERS))} (deploy/prometheus/alertmanager.yml)")  # fmt: skip
    return audience


def is_email(address: str) -> bool:
    return "@" in address


def parse_contacts(raw: str | None, setting: str) -> tuple[str, ...]:
    """Email addresses and phone numbers separated by commas: phones as +62… (an Indonesian mobile written any usual
    way: 0812…, 62812…, +62 812-…) or in E.164 (+61…, kept as given: +852 1234 5678 is Hong Kong's, never 0852…);
    duplicates dropped, order kept. A wrong entry is a ValueError naming the setting and the entry's position
    (masked: settings are logged at start)."""
    found: list[str] = []
    entries = [entry.strip() for entry in (raw or "").split(",")]
    for position, entry in enumerate(entries, start=1):
        if not entry:
            continue
        if is_email(entry):
            if not _EMAIL.fullmatch(entry):
                raise ValueError(f"{setting}: entry {position} ({mask(entry)}) is not a valid email address")
            found.append(entry)
            continue
        phone = normalise(entry)
        if phone is None:
            compact = re.sub(r"[\s().-]", "", entry)
            phone = compact if _E164.fullmatch(compact) else None
        if phone is None:
            raise ValueError(f"{setting}: entry {position} ({mask(entry)}) is neither an email address nor a phone "
                             "number (an Indonesian mobile such as 0812… or +62812…, or E.164 such as +61412345678); "
                             "separate entries with commas")  # fmt: skip
        found.append(phone)
    unique = tuple(dict.fromkeys(found))
    if len(unique) > MAX_CONTACTS:
        raise ValueError(f"{setting}: {len(unique)} contacts; at most {MAX_CONTACTS} (use a mailing list)")
    return unique


# ---------------------------------------------------------------------------------------------------------------
# What: an alert, its notice id, its message
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of Alertmanager's webhook (version 4), as the webhook checked it."""

    status: str  # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None  # Alertmanager's zero time (year 1) for a firing alert
    fingerprint: str | None = None  # Alertmanager's hash of the labels; derived from them when absent

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or "unnamed alert"

    @property
    def severity(self) -> str | None:
        return self.labels.get("severity") or None

    @property
    def identity(self) -> str:
        """Alertmanager's fingerprint, or a hash of the sorted labels (what the fingerprint hashes) without one."""
        if self.fingerprint:
            return self.fingerprint
        joined = "\xff".join(f"{k}\xff{v}" for k, v in sorted(self.labels.items()))
        return "labels:" + hashlib.sha256(joined.encode()).hexdigest()[:16]

    @property
    def ended_at(self) -> datetime | None:
        """When a resolved alert ended; None while it fires (or when Alertmanager sent no end)."""
        if self.firing or self.ends_at is None or self.ends_at <= self.starts_at:
            return None
        return self.ends_at


def notice_id(audience: str, alert: Alert) -> uuid.UUID:
    """The same for every call that tells this audience of this alert in this state since this start: Alertmanager's
    retries and its repeat notifications (repeat_interval) of an alert that still fires. Recorded as the message's
    event id, so the message table's unique (event_id, template) keeps one."""
    started = alert.starts_at.astimezone(UTC).isoformat()
    return uuid.uuid5(_NAMESPACE, f"alertmanager|{audience}|{alert.identity}|{alert.status}|{started}")


def template_of(audience: str, alert: Alert) -> str:
    return TEMPLATES[(audience, FIRING if alert.firing else RESOLVED)]


def runbook_of(alert: Alert) -> str:
    """The alert's runbook_url (or runbook) annotation, else the runbook's section for its name."""
    given = alert.annotations.get("runbook_url") or alert.annotations.get("runbook")
    if given:
        return given
    anchor = re.sub(r"[^a-z0-9_-]", "", alert.name.lower())
    return f"{RUNBOOK}#{anchor}" if "alertname" in alert.labels and anchor else RUNBOOK


def alert_message(audience: str, alert: Alert, message_id: uuid.UUID, now: datetime) -> Message:
    """The message telling `audience` of `alert`: for operators in plain English like the rules' annotations, for the
    programme office in Bahasa Indonesia; a subject for email."""
    officers = audience == OFFICERS
    labels = sorted((k, v) for k, v in alert.labels.items() if k not in SHOWN_APART)
    summary = alert.annotations.get("summary") or alert.annotations.get("message") or ""
    body = texts.alert_text(officers=officers, firing=alert.firing, name=alert.name, severity=alert.severity,
                            summary=summary, description=alert.annotations.get("description", ""),
                            starts_at=alert.starts_at, ends_at=alert.ended_at, labels=labels,
                            runbook=runbook_of(alert))  # fmt: skip
    subject = texts.alert_subject(officers=officers, firing=alert.firing, name=alert.name, severity=alert.severity,
                                  summary=summary)  # fmt: skip
    return Message(message_id, notice_id(audience, alert), None, template_of(audience, alert), "none", None, body, now,
                   audience, subject=subject)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# How and when: one delivery per recipient
# ---------------------------------------------------------------------------------------------------------------


def alert_not_before(template: str, severity: str | None, channel: str, now: datetime, quiet: QuietHours) -> datetime:
    """Critical alerts go at once; the others (warnings: act today) wait for the end of quiet hours on a phone, the
    operators' and the programme office's alike. Email and the local outbox: any hour."""
    if channel not in PHONE_CHANNELS or any_hour(template, severity == "critical"):
        return now
    return quiet.next_allowed(now)


def alert_channel(address: str, preference: Preference | None, rules: DeliveryRules, now: datetime) -> str:
    """Email for an address, the phone's channel for a number (WhatsApp first, SMS where it has none, never SMS to a
    number that is not an Indonesian mobile); the local outbox where the gateway is not configured. Raises NoChannel
    as phone_channel does."""
    if is_email(address):
        return address_channel(rules.available)
    return phone_channel(rules.available, preference, now, rules.no_whatsapp_recheck, sms_reaches=sms_reaches(address))


def plan_alert(message: Message, severity: str | None, recipients: Sequence[str],
               preferences: Mapping[str, Preference | None], rules: DeliveryRules, now: datetime,
               new_id: NewId) -> Plan:  # fmt: skip
    """One delivery per recipient; with none configured, one to the local outbox that says which setting to fill in.
    A phone's preference only chooses its channel (a number WhatsApp said has none gets SMS): an owner's STOP on the
    same number does not hold back an alert."""
    if not recipients:
        setting = CONTACT_SETTINGS[message.audience]
        reason = (f"no {message.audience} contacts configured: kept in the local outbox; set {setting} (email "
                  "addresses and phone numbers, separated by commas)")  # fmt: skip
        return Plan((Delivery(new_id(), message.id, LOCAL, f"alerts:{message.audience}", QUEUED, now, reason=reason),))
    deliveries = []
    for address in recipients:
        try:
            channel = alert_channel(address, preferences.get(address), rules, now)
        except NoChannel as no_channel:
            # Critical, too: an operator may resend it once a gateway is configured.
            deliveries.append(Delivery(new_id(), message.id, WHATSAPP, address, FAILED, now, reason=str(no_channel),
                                       critical=severity == "critical"))  # fmt: skip
            continue
        deliveries.append(Delivery(new_id(), message.id, channel, address, QUEUED,
                                   alert_not_before(message.template, severity, channel, now, rules.quiet),
                                   critical=severity == "critical"))  # fmt: skip
    return Plan(tuple(deliveries))

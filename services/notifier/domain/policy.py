"""What each template is: who it is for, whether an owner who replied STOP still gets it, and whether it may wake
someone at night.

**Required** (sent even to an owner who opted out): only what the owner must be told whatever they asked for --
the confirmation of their own STOP or MULAI (the answer to what they just wrote), and the record of money paid out
in their name (`funds_disbursed`: a transaction they must be able to check, and the first sign of misuse of their
identity). Everything else -- welcome, NIB news, funding offers and their reminders, training, the halal pathway --
is information or promotion and is withheld from an owner who opted out (the message is still recorded, with its
delivery `withheld`, so officers see what the owner did not hear). This is the programme's reading of UU PDP
27/2022 (consent, art. 20-22; withdrawal of consent, art. 9) and is listed here so a legal review changes one table.

**Urgent** (not held back by quiet hours): only the STOP/MULAI confirmations, which answer the owner's own message.
Quiet hours concern owners' phones; email to officers and sponsors is sent at any hour.

**Alerts** (from Alertmanager, domain/alerts.py) are for the people who run Berdaya, not for owners: an owner's STOP
has nothing to do with them (required), and on a phone they wait for the end of quiet hours unless critical (a
critical alert at 03.00 must wake someone; a warning is "act today"), the operators' and the programme office's
alike; email goes at any hour.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.notifier.domain.messages import OFFICERS, OPERATORS, OWNER, SPONSOR


@dataclass(frozen=True, slots=True)
class TemplatePolicy:
    audience: str
    required: bool = False
    urgent: bool = False


TEMPLATES: dict[str, TemplatePolicy] = {
    "welcome": TemplatePolicy(OWNER),
    "nib_issued": TemplatePolicy(OWNER),
    "nib_rejected": TemplatePolicy(OWNER),
    "funding_offer": TemplatePolicy(OWNER),
    "offer_reminder": TemplatePolicy(OWNER),
    "funds_disbursed": TemplatePolicy(OWNER, required=True),
    "training_invitation": TemplatePolicy(OWNER),
    "training_seat": TemplatePolicy(OWNER),
    "training_waitlisted": TemplatePolicy(OWNER),
    "training_cancelled": TemplatePolicy(OWNER),
    "training_completed": TemplatePolicy(OWNER),
    "halal_stalled": TemplatePolicy(OWNER),
    "halal_not_eligible": TemplatePolicy(OWNER),
    "opted_out": TemplatePolicy(OWNER, required=True, urgent=True),
    "opted_in": TemplatePolicy(OWNER, required=True, urgent=True),
    "halal_stalled_officer": TemplatePolicy(OFFICERS),
    "offer_at_risk_officer": TemplatePolicy(OFFICERS),
    "sponsor_digest": TemplatePolicy(SPONSOR),
    # A warning is "act today": on a phone it waits for the morning, as the programme office's do; a critical one
    # (its delivery marked critical) goes at any hour.
    "alert_firing": TemplatePolicy(OPERATORS, required=True),
    "alert_resolved": TemplatePolicy(OPERATORS, required=True),
    "alert_firing_officer": TemplatePolicy(OFFICERS, required=True),
    "alert_resolved_officer": TemplatePolicy(OFFICERS, required=True),
}

TEMPLATE_NAMES = tuple(TEMPLATES)


def policy_of(template: str) -> TemplatePolicy:
    return TEMPLATES[template]


def any_hour(template: str, critical: bool = False) -> bool:
    """Whether a phone message of this template goes in quiet hours too: when first queued, when retried and when
    sent by SMS in place of WhatsApp alike."""
    return policy_of(template).urgent or critical

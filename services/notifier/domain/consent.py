"""An owner's wishes: the channel they prefer, their language, and whether they want messages at all.

Consent belongs to the phone number (the person), not to one business: an owner of two businesses who replies STOP
hears nothing optional about either. They opt out by replying STOP or BERHENTI on WhatsApp or SMS, and opt in again
with MULAI or START; an officer can record either on their behalf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.notifier.domain.policy import TemplatePolicy

STOP_WORDS = frozenset({"STOP", "BERHENTI", "UNSUBSCRIBE"})
START_WORDS = frozenset({"MULAI", "START"})
LANGUAGES = ("id",)  # the texts reviewed so far: Bahasa Indonesia
Intent = Literal["stop", "start"]


@dataclass(frozen=True, slots=True)
class Preference:
    phone: str
    channel: str | None = None  # whatsapp | sms | None (WhatsApp first)
    language: str = "id"
    opted_out_at: datetime | None = None
    no_whatsapp_since: datetime | None = None  # the gateway said this number has no WhatsApp

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None


def reply_intent(text: str | None) -> Intent | None:
    """STOP / BERHENTI opt out and MULAI / START opt in, in any case, alone or as the first word ("stop ya", "Berhenti.");
    anything else is a reply for an officer to read, not a command."""
    words = re.findall(r"[A-Za-z]+", text or "")
    if not words or len(words) > 3:
        return None
    first = words[0].upper()
    if first in STOP_WORDS:
        return "stop"
    if first in START_WORDS:
        return "start"
    return None


def withhold_reason(policy: TemplatePolicy, preference: Preference | None) -> str | None:
    """Why an owner does not get this message, or None."""
    if preference is not None and preference.opted_out and not policy.required:
        return "the owner opted out (replied STOP); only required messages are sent"
    return None

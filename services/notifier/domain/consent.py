"""An owner's wishes: the channel they prefer, their language, and whether they want messages at all.

Consent belongs to the phone number (the person), not to one business: an owner of two businesses who replies STOP
hears nothing optional about either. They opt out by replying STOP or BERHENTI on WhatsApp or SMS, and opt in again
with MULAI or START, each as the whole reply (a question such as "Mulai kapan?" is for an officer); an officer can
record either on their behalf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from services.notifier.domain.policy import TemplatePolicy
from shared.reference.wita import WITA

STOP_WORDS = frozenset({"STOP", "BERHENTI", "UNSUBSCRIBE"})
START_WORDS = frozenset({"MULAI", "START"})
# Words an owner adds to a command without changing it: particles, "again", "for now", courtesies, forms of address.
KEEP_MEANING = frozenset({"YA", "YAH", "YAA", "AJA", "SAJA", "DULU", "LAGI", "SEKARANG", "TOLONG", "MOHON", "TERIMA",
                          "KASIH", "MAKASIH", "TRIMS", "THANKS", "PLEASE", "PAK", "BU", "KAK", "MIN"})  # fmt: skip
QUESTION_MARKS = ("?", "\uff1f", "\u061f")  # ASCII, full-width, Arabic
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
    """STOP / BERHENTI opt out and MULAI / START opt in, in any case, as the whole reply: alone, with punctuation, or
    followed only by words that keep the meaning ("stop ya", "Berhenti dulu, terima kasih", "mulai lagi pak").
    Anything else is a reply for an officer to read, not a command: a question above all ("Mulai jam berapa?",
    "Mulai kapan?" ask when something starts), and any other word ("Mulai besok", "Saya mau stop")."""
    if not text or any(mark in text for mark in QUESTION_MARKS):
        return None
    words = re.findall(r"\w+", text.upper())
    if not words or len(words) > 4 or any(word not in KEEP_MEANING for word in words[1:]):
        return None
    if words[0] in STOP_WORDS:
        return "stop"
    if words[0] in START_WORDS:
        return "start"
    return None


# The confirmations of an owner's STOP and MULAI. Each change is applied at once, and a newer reply withholds the
# confirmations still queued (only the latest answer is confirmed). Past CONFIRMATIONS_PER_HOUR changes in an hour,
# the confirmation waits an hour: a phone alternating STOP and MULAI (an owner testing, a child, a script) would
# otherwise get a message per reply at any hour, and hold up everyone's WhatsApp messages with them.
CONFIRMATIONS = ("opted_out", "opted_in")
CONFIRMATIONS_PER_HOUR = 4
SUPERSEDED = "the owner's choice changed again before this confirmation went: only the latest answer is confirmed"


def confirmation_held(changes_in_the_last_hour: int, now: datetime) -> tuple[datetime, str] | None:
    """When a confirmation goes, and why it waits, for a number that changed its choice that many times in the hour
    before this reply; None: it goes now."""
    if changes_in_the_last_hour < CONFIRMATIONS_PER_HOUR:
        return None
    goes = now + timedelta(hours=1)
    return goes, (f"the number changed its choice {changes_in_the_last_hour} times in the last hour: this confirmation "
                  f"waits until {goes.astimezone(WITA):%H.%M} WITA, and a newer reply replaces it")  # fmt: skip


def withhold_reason(policy: TemplatePolicy, preference: Preference | None) -> str | None:
    """Why an owner does not get this message, or None."""
    if preference is not None and preference.opted_out and not policy.required:
        return "the owner opted out (replied STOP); only required messages are sent"
    return None

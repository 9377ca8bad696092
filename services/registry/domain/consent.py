"""An owner's consent to share their contact with one partner, for one stated purpose (UU PDP 27/2022): what it
takes to give one, and what it takes to withdraw it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from services.registry.domain.business import Business
from shared.contracts.envelope import MAX_RUPIAH
from shared.contracts.public import PARTNER_ID_PATTERN
from shared.errors import Conflict, InvalidInput
from shared.names import LONGEST_CLEANED, without_invisibles

# Letters that show nothing (Hangul fillers, Khmer inherent vowels) and marks that change nothing (the combining
# grapheme joiner, variation selectors), beyond the format characters `without_invisibles` already drops.
_BLANK = frozenset("\u115f\u1160\u17b4\u17b5\u3164\uffa0\u034f\u180b\u180c\u180d\u180f"
                   + "".join(map(chr, range(0xFE00, 0xFE10))) + "".join(map(chr, range(0xE0100, 0xE01F0))))


def _visible(value: Any) -> Any:
    """Kept as typed less what no one can see, as names are: the partner reads the purpose the owner agreed to."""
    value = without_invisibles(value)
    # Longer than any purpose, it is left for the length check to refuse: cleaned a character at a time, 10 MB of it
    # held the event loop for 0.4 s.
    if isinstance(value, str) and len(value) <= LONGEST_CLEANED and not value.isascii():
        value = " ".join("".join(c for c in value if c not in _BLANK).split())
    return value


def _has_letters(value: str) -> str:
    if not any(c.isalpha() for c in value):
        raise PydanticCustomError("no_visible_letters", "must contain visible letters, not only invisible characters, "
                                                        "spaces, digits or punctuation")  # fmt: skip
    return value


# What an owner reads and agrees to: letters one can see.
VisibleText = Annotated[str, BeforeValidator(_visible), AfterValidator(_has_letters)]


class ConsentForm(BaseModel):
    """What an officer records with the owner: to whom, for what, and (for a financing referral) what is sought."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    partner_id: str = Field(pattern=PARTNER_ID_PATTERN, examples=["bri"])
    purpose: VisibleText = Field(min_length=10, max_length=300, examples=["Rujukan KUR Mikro BRI untuk modal kerja"])
    financing_programme: VisibleText | None = Field(default=None, max_length=100, examples=["KUR Mikro"])
    amount_sought_rupiah: int | None = Field(default=None, gt=0, le=MAX_RUPIAH)
    offer_id: uuid.UUID | None = Field(default=None, description="Funding's financing-referral offer this answers")


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    active: bool


@dataclass(frozen=True, slots=True)
class Consent:
    id: uuid.UUID
    business_id: uuid.UUID
    partner_id: str
    purpose: str
    financing_programme: str | None
    amount_sought_rupiah: int | None
    offer_id: uuid.UUID | None
    given_at: datetime
    given_by: str
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None


def give(form: ConsentForm, business: Business, partner: Partner | None, consent_id: uuid.UUID, by: str,
         now: datetime) -> Consent:  # fmt: skip
    business.require_active()
    if partner is None:
        raise InvalidInput.one("partner_id", "partner.unknown", f"no partner {form.partner_id!r}; `berdaya partner list` "
                                                               "shows those set up")  # fmt: skip
    if not partner.active:
        raise Conflict(f"partner {partner.id} was revoked; its referrals can't be made", "partner_revoked")
    return Consent(consent_id, business.id, partner.id, form.purpose, form.financing_programme,
                   form.amount_sought_rupiah, form.offer_id, now, by)  # fmt: skip


# How long after a consent the same one recorded again is a retry of it, not the owner applying again.
RETRY_WINDOW = timedelta(minutes=15)


def already_given(consent: Consent, active: Sequence[Consent]) -> Consent | None:
    """The active consent this one repeats (the same partner, purpose, programme, amount and offer, given less than
    RETRY_WINDOW before): an officer's retry after a timeout, or the same form sent twice. The partner would get the
    owner's data twice, and a withdrawal of one would leave the other's referral standing. Later, the same form is
    the owner applying again (a loan declined in January, asked for again in June): a new referral, with the
    owner's name and phone as they are now."""
    same = (consent.partner_id, consent.purpose, consent.financing_programme, consent.amount_sought_rupiah,
            consent.offer_id)  # fmt: skip
    return next((c for c in active if (c.partner_id, c.purpose, c.financing_programme, c.amount_sought_rupiah,
                                        c.offer_id) == same and c.given_at > consent.given_at - RETRY_WINDOW),
                None)  # fmt: skip


def withdraw(consent: Consent, by: str, now: datetime) -> Consent:
    if consent.withdrawn_at is not None:
        raise Conflict(f"consent {consent.id} was already withdrawn", "consent_withdrawn")
    return replace(consent, withdrawn_at=now, withdrawn_by=by)


@dataclass(frozen=True, slots=True)
class ConsentGiven:
    business: Business
    consent: Consent
    owner_nik_link: str  # keyed with the partner's own key; the NIK itself never leaves the registry


@dataclass(frozen=True, slots=True)
class ConsentWithdrawn:
    consent: Consent

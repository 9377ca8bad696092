"""Enrolment by need: which needs a business has, and whether a programme's cohort may take it. The ONE place these
rules live; the store's SQL only narrows the candidates cheaply, and every candidate is decided here.

The rules (NEED_RULES says them for people too), for an active business:

- `halal_uncertified`: a food or drink business (KBLI 10, 11, 561, 562, 563; `shared.reference.kbli`), micro or
  small (the free SEHATI self-declare route is for them; halal certification became compulsory for them on
  17 October 2026), without a halal certificate (the pathway's last step), and not recorded as unable to
  self-declare (pork, slaughtered-meat inputs without a certified abattoir, or another reason an officer gave).
  A medium food business is recorded as `not_micro_or_small` instead and is never invited.
- `no_nib`: no NIB issued yet (none, applied or rejected).
- `youth_digital`: youth-owned (the registry's flag, as of the first of the month).
- `funded_bookkeeping`: the business accepted funding from a sponsor's pledge (`FundingAccepted`).

A programme takes a business when it serves one of its needs (the first in the programme's own order is the reason
given in the invitation) and its prerequisites hold: `requires_nib` means an issued NIB. A halal programme (one
serving `halal_uncertified`) never takes a business that can't self-declare, whatever else it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.training.domain.programmes import Programme
from services.training.domain.view import BusinessView
from shared.reference.kbli import FOOD_AND_DRINK_PREFIXES, is_food_or_drink

SELF_DECLARE_SCALES = ("micro", "small")

NEED_RULES: tuple[tuple[str, str], ...] = (
    ("halal_uncertified", "food or drink (KBLI " + ", ".join(FOOD_AND_DRINK_PREFIXES) + "), micro or small, no halal "
     "certificate yet, and not recorded as unable to self-declare (pork, slaughtered meat without a certified "
     "abattoir, or another reason)"),
    ("no_nib", "no NIB issued yet"),
    ("youth_digital", "youth-owned"),
    ("funded_bookkeeping", "accepted funding from a sponsor's pledge"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Facts:
    """What training knows of a business besides the registry's view, each from its own table."""

    halal_certified: bool = False  # the pathway's certificate step is recorded
    halal_not_eligible: str | None = None  # why it can't self-declare, as recorded (pork, ..., not_micro_or_small)
    funding_accepted: bool = False  # a FundingAccepted arrived for it


def cannot_self_declare(business: BusinessView) -> str | None:
    """What the registry's facts alone say against halal self-declaration: a medium food business can't use SEHATI
    (the regular, paid route stays open). None when nothing does (pork or slaughtered meat only an officer knows)."""
    if is_food_or_drink(business.kbli_code) and business.scale not in SELF_DECLARE_SCALES:
        return "not_micro_or_small"
    return None


def halal_self_declare_possible(business: BusinessView, facts: Facts = Facts()) -> bool:
    return facts.halal_not_eligible is None and cannot_self_declare(business) is None


def needs_of(business: BusinessView, facts: Facts = Facts()) -> tuple[str, ...]:
    """The business's needs, in the order of NEED_RULES; none for a closed business."""
    if not business.active:
        return ()
    found = []
    if (is_food_or_drink(business.kbli_code) and business.scale in SELF_DECLARE_SCALES and not facts.halal_certified
            and facts.halal_not_eligible is None):  # fmt: skip
        found.append("halal_uncertified")
    if not business.has_nib:
        found.append("no_nib")
    if business.youth_owned:
        found.append("youth_digital")
    if facts.funding_accepted:
        found.append("funded_bookkeeping")
    return tuple(found)


def missing_prerequisites(programme: Programme, business: BusinessView) -> tuple[str, ...]:
    """The programme's prerequisites the business does not meet, by name (e.g. "nib")."""
    return ("nib",) if programme.requires_nib and not business.has_nib else ()


def need_served(programme: Programme, business: BusinessView, facts: Facts = Facts()) -> str | None:
    """Why a cohort of the programme would invite the business: the first of the programme's needs the business
    has, when it meets the prerequisites; None when the programme is not for it."""
    if missing_prerequisites(programme, business):
        return None
    if halal_programme(programme) and not halal_self_declare_possible(business, facts):
        return None  # whatever else it needs: a business that can't self-declare is never put in the halal cohort
    has = needs_of(business, facts)
    return next((n for n in programme.needs if n in has), None)


def halal_programme(programme: Programme) -> bool:
    """A programme for the halal self-declare route: a business that can't self-declare is never put in it."""
    return programme.serves("halal_uncertified")

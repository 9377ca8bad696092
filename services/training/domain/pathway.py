"""The halal pathway of a food or drink micro or small business, by the free SEHATI self-declare route:
NIB -> SIHALAL account -> the halal process companion (Pendamping PPH) verifies -> submission -> BPJPH's document
check -> the fatwa -> the certificate. Each step is recorded with its date, in order.

A step is stalled when the next one has not come within its number of days (per step, in settings) of the last
one done; it is reported once per stall (a new step clears it). A business that can't self-declare is recorded as
such and told whether the paid regular route is still open: pork can't be certified at all (se'i is often pork),
slaughtered-meat inputs need a certified abattoir, and a medium business is outside SEHATI.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.training.domain.cohorts import EARLIEST
from services.training.domain.needs import SELF_DECLARE_SCALES
from services.training.domain.view import BusinessView
from shared.contracts.training import HalalStep
from shared.errors import Conflict, InvalidInput
from shared.reference.kbli import is_food_or_drink

STEPS: tuple[str, ...] = ("nib", "sihalal_account", "companion_verified", "submitted", "document_check", "fatwa",
                          "certificate")  # fmt: skip
# Days the next step may take after the one before it; later than that, the pathway is stalled.
DEFAULT_STALL_DAYS: dict[str, int] = {
    "sihalal_account": 14,
    "companion_verified": 30,
    "submitted": 14,
    "document_check": 14,
    "fatwa": 21,
    "certificate": 14,
}
NotEligibleReason = Literal["pork", "slaughtered_meat_uncertified_abattoir", "not_micro_or_small", "other"]
REGISTRY_MARK = "not_micro_or_small"  # the one reason the registry's facts give, not an officer
# Whether the paid regular route (an LPH audit) remains open for each reason.
REGULAR_ROUTE: dict[str, bool] = {
    "pork": False,  # can't be certified halal at all
    "slaughtered_meat_uncertified_abattoir": True,  # with meat from a certified abattoir, or audited
    "not_micro_or_small": True,
    "other": True,
}


class StepForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: HalalStep
    done_on: date = Field(description="When it happened (WITA date)", examples=["2026-04-10"])


class NotEligibleForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Literal["pork", "slaughtered_meat_uncertified_abattoir", "other"] = Field(
        description="pork can't be certified at all; slaughtered meat needs a certified abattoir"
    )
    note: str | None = Field(None, max_length=500, description="What the officer saw (kept in training's database)")


@dataclass(frozen=True, slots=True)
class Pathway:
    business_id: uuid.UUID
    kecamatan_code: str
    steps: tuple[tuple[str, date], ...] = ()  # in order
    not_eligible: str | None = None
    regular_route_possible: bool | None = None
    stalled_for: str | None = None  # the step it was last reported stalled waiting for
    note: str | None = None

    def done_on(self, step: str) -> date | None:
        return dict(self.steps).get(step)

    @property
    def last(self) -> tuple[str, date] | None:
        return self.steps[-1] if self.steps else None

    @property
    def next_step(self) -> str | None:
        return STEPS[len(self.steps)] if len(self.steps) < len(STEPS) else None

    @property
    def certified(self) -> bool:
        return self.done_on("certificate") is not None


def require_self_declare_possible(business: BusinessView) -> None:
    """The pathway is for active food or drink businesses, micro or small."""
    require_on_pathway(business)
    if business.scale not in SELF_DECLARE_SCALES:
        raise Conflict(f"business {business.business_id} is {business.scale}; SEHATI self-declare is for micro and small "
                       "businesses (the regular route stays open)", "not_micro_or_small", {"scale": business.scale})  # fmt: skip


def require_on_pathway(business: BusinessView) -> None:
    """A step, or a finding that the business can't self-declare, is for an active food or drink business: a closed
    one or a barber's would tell its owner of a halal pathway it was never on."""
    if not business.active:
        raise Conflict(f"business {business.business_id} is closed", "business_closed")
    if not is_food_or_drink(business.kbli_code):
        raise Conflict(f"business {business.business_id} (KBLI {business.kbli_code}) is not a food or drink business; "
                       "the halal pathway here is for those", "not_food_or_drink", {"kbli_code": business.kbli_code})  # fmt: skip


def record_step(pathway: Pathway, step: str, done_on: date, today: date) -> Pathway:
    """The next step, in order (409 naming the missing step otherwise), dated no later than today and no earlier
    than the step before it (422 naming done_on)."""
    if pathway.not_eligible is not None:
        raise Conflict(f"business {pathway.business_id} was recorded as unable to self-declare ({pathway.not_eligible})",
                       "pathway_not_eligible", {"reason": pathway.not_eligible})  # fmt: skip
    if pathway.done_on(step) is not None:
        raise Conflict(f"{step} is already recorded, on {pathway.done_on(step).isoformat()}", "step_recorded",  # type: ignore[union-attr]
                       {"step": step, "done_on": pathway.done_on(step).isoformat()})  # type: ignore[union-attr]  # fmt: skip
    wanted = pathway.next_step
    if step != wanted:
        raise Conflict(f"{wanted} comes before {step}; record {wanted} first", "step_out_of_order",
                       {"missing_step": wanted, "step": step})  # fmt: skip
    if done_on > today:
        raise InvalidInput.one("done_on", "pathway.future", f"{done_on.isoformat()} is after today ({today.isoformat()})")
    if done_on < EARLIEST:
        raise InvalidInput.one("done_on", "pathway.too_early", f"a step is dated {EARLIEST.isoformat()} or later")
    if pathway.last is not None and done_on < pathway.last[1]:
        raise InvalidInput.one("done_on", "pathway.before_previous",
                               f"{pathway.last[0]} was done on {pathway.last[1].isoformat()}; {step} can't be earlier")  # fmt: skip
    return replace(pathway, steps=(*pathway.steps, (step, done_on)), stalled_for=None)


def mark_not_eligible(pathway: Pathway, reason: str, note: str | None = None) -> Pathway:
    if pathway.certified:
        raise Conflict(f"business {pathway.business_id} is already certified", "pathway_certified")
    # An officer's reason takes the place of the registry's: it stays once the scale is corrected, and pork closes
    # the regular route too, which the owner must be told.
    if pathway.not_eligible is not None and not (pathway.not_eligible == REGISTRY_MARK and reason != REGISTRY_MARK):
        raise Conflict(f"business {pathway.business_id} was already recorded as unable to self-declare "
                       f"({pathway.not_eligible})", "pathway_not_eligible", {"reason": pathway.not_eligible})  # fmt: skip
    return replace(pathway, not_eligible=reason, regular_route_possible=REGULAR_ROUTE[reason], note=note,
                   stalled_for=None)  # fmt: skip


def lift_registry_mark(pathway: Pathway) -> Pathway:
    """The registry's facts no longer say the business can't self-declare (its scale corrected back to micro or
    small): the mark they made goes. One an officer recorded (pork, ...) stays: only the officer knows it."""
    if pathway.not_eligible != REGISTRY_MARK:
        return pathway
    return replace(pathway, not_eligible=None, regular_route_possible=None)


@dataclass(frozen=True, slots=True)
class Stall:
    waiting_for: str
    since: date  # when the last step was done
    days: int  # days since then


def stall(pathway: Pathway, today: date, limits: Mapping[str, int]) -> Stall | None:
    """The stall to report now: the next step has not come within its days of the last one, and it was not
    reported yet for this step. None for a pathway not started, certified, not eligible, or within its time."""
    if pathway.not_eligible is not None or pathway.last is None or pathway.next_step is None:
        return None
    waiting_for, since = pathway.next_step, pathway.last[1]
    days = (today - since).days
    if days <= limits[waiting_for] or pathway.stalled_for == waiting_for:
        return None
    return Stall(waiting_for, since, days)


def stall_limits(configured: Mapping[str, int]) -> dict[str, int]:
    """The configured days per step over the defaults; every step after the first has one."""
    limits = {**DEFAULT_STALL_DAYS, **configured}
    unknown = set(limits) - set(STEPS[1:])
    if unknown:
        raise ValueError(f"no such step(s) {sorted(unknown)}; the steps after nib are {', '.join(STEPS[1:])}")
    if any(not 1 <= d <= 3650 for d in limits.values()):
        raise ValueError("each step's days are between 1 and 3650")
    return limits

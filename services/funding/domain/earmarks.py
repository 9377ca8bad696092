"""Who a pledge is for: every earmark checked against what funding knows of a business, with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.funding.domain.view import BusinessView, readiness
from shared.contracts.funding import Earmarks


@dataclass(frozen=True, slots=True)
class Check:
    earmark: str
    required: str
    value: str
    passed: bool


def evaluate(earmarks: Earmarks, business: BusinessView, today: date) -> list[Check]:
    """Every earmark of the pledge with the business's value and whether it passed; also the business's status."""
    checks = [Check("business_active", "active", business.status, business.status == "active")]
    if earmarks.kecamatan_codes:
        checks.append(Check("kecamatan", " or ".join(earmarks.kecamatan_codes), business.kecamatan_code,
                            business.kecamatan_code in earmarks.kecamatan_codes))  # fmt: skip
    if earmarks.kbli_prefixes:
        checks.append(Check("kbli", "starts with " + " or ".join(earmarks.kbli_prefixes), business.kbli_code,
                            business.kbli_code.startswith(tuple(earmarks.kbli_prefixes))))  # fmt: skip
    if earmarks.scales:
        checks.append(Check("scale", " or ".join(earmarks.scales), business.scale, business.scale in earmarks.scales))
    if earmarks.youth_owned_only:
        youth = business.youth_owned
        checks.append(Check("youth_owned", "youth owner", "yes" if youth else "no", youth))
    if earmarks.women_owned_only:
        checks.append(Check("women_owned", "woman owner", "yes" if business.women_owned else "no", business.women_owned))
    if earmarks.nib_required:
        checks.append(Check("nib", "issued", business.nib_status, business.nib_status == "issued"))
    for programme in earmarks.trainings_completed:
        done = programme in business.trainings
        checks.append(Check(f"training:{programme}", "completed", "completed" if done else "not completed", done))
    if earmarks.min_readiness:
        score = readiness(business, today).score
        checks.append(Check("min_readiness", f">= {earmarks.min_readiness}", str(score), score >= earmarks.min_readiness))
    return checks


def eligible(earmarks: Earmarks, business: BusinessView, today: date) -> bool:
    """The answer of `evaluate` (every check passed) without building the explanation: it runs for every open pledge
    on every change of a business, so it stops at the first earmark not met. The two must agree (a unit test checks)."""
    if business.status != "active":
        return False
    if earmarks.kecamatan_codes and business.kecamatan_code not in earmarks.kecamatan_codes:
        return False
    if earmarks.kbli_prefixes and not business.kbli_code.startswith(tuple(earmarks.kbli_prefixes)):
        return False
    if earmarks.scales and business.scale not in earmarks.scales:
        return False
    if (earmarks.youth_owned_only and not business.youth_owned) or (earmarks.women_owned_only and not business.women_owned):
        return False
    if earmarks.nib_required and business.nib_status != "issued":
        return False
    if any(programme not in business.trainings for programme in earmarks.trainings_completed):
        return False
    return not earmarks.min_readiness or readiness(business, today).score >= earmarks.min_readiness

"""The needs rules (services/training/domain/needs.py): which needs a business has, and which programmes take it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.training.domain.needs import NEED_RULES, Facts, cannot_self_declare, need_served, needs_of
from services.training.domain.programmes import Programme

from .training_fakes import view


def programme(*needs: str, requires_nib: bool = False, topic: str = "halal_certification") -> Programme:
    return Programme(uuid.uuid4(), topic, "Program", needs, requires_nib, 80, 4, 16, True, datetime(2026, 1, 1, tzinfo=UTC),
                     "pelatih")  # fmt: skip


def test_a_food_business_without_a_halal_certificate_needs_halal_certification():
    assert "halal_uncertified" in needs_of(view(kbli_code="10792"))
    assert "halal_uncertified" in needs_of(view(kbli_code="11040"))  # drinks
    assert "halal_uncertified" in needs_of(view(kbli_code="56102"))  # a warung


def test_a_business_that_is_not_food_or_drink_has_no_halal_need():
    assert "halal_uncertified" not in needs_of(view(kbli_code="13122"))  # tenun ikat
    assert "halal_uncertified" not in needs_of(view(kbli_code="47111"))


def test_a_certified_food_business_has_no_halal_need():
    assert "halal_uncertified" not in needs_of(view(), Facts(halal_certified=True))


def test_a_food_business_recorded_as_unable_to_self_declare_has_no_halal_need():
    for reason in ("pork", "slaughtered_meat_uncertified_abattoir", "other", "not_micro_or_small"):
        assert "halal_uncertified" not in needs_of(view(), Facts(halal_not_eligible=reason))


def test_a_medium_food_business_can_not_self_declare_and_has_no_halal_need():
    medium = view(scale="medium")
    assert cannot_self_declare(medium) == "not_micro_or_small"
    assert "halal_uncertified" not in needs_of(medium)
    assert cannot_self_declare(view(scale="small")) is None
    assert cannot_self_declare(view(scale="medium", kbli_code="13122")) is None  # not food: nothing to say


def test_a_business_without_an_nib_needs_nib_assistance_whatever_its_application_says():
    for status in ("none", "applied", "rejected"):
        assert "no_nib" in needs_of(view(nib_status=status))
    assert "no_nib" not in needs_of(view(nib_status="issued"))


def test_a_youth_owned_business_needs_digital_marketing():
    assert "youth_digital" in needs_of(view(youth_owned=True))
    assert "youth_digital" not in needs_of(view(youth_owned=False))


def test_a_business_that_accepted_funding_needs_bookkeeping():
    assert "funded_bookkeeping" in needs_of(view(), Facts(funding_accepted=True))
    assert "funded_bookkeeping" not in needs_of(view())


def test_a_closed_business_has_no_needs():
    assert needs_of(view(status="closed", youth_owned=True, nib_status="none"), Facts(funding_accepted=True)) == ()


def test_needs_come_in_the_documented_order():
    everything = view(nib_status="none", youth_owned=True)
    assert needs_of(everything, Facts(funding_accepted=True)) == tuple(n for n, _ in NEED_RULES)


def test_a_programme_takes_a_business_for_the_first_of_its_own_needs_the_business_has():
    youth_without_nib = view(nib_status="none", youth_owned=True, kbli_code="13122")
    assert need_served(programme("youth_digital", "no_nib", topic="digital_marketing"), youth_without_nib) == "youth_digital"
    assert need_served(programme("no_nib", "youth_digital", topic="nib_assistance"), youth_without_nib) == "no_nib"
    assert need_served(programme("funded_bookkeeping", topic="financial_bookkeeping"), youth_without_nib) is None


def test_a_programme_requiring_an_nib_does_not_take_a_business_without_one():
    halal = programme("halal_uncertified", requires_nib=True)
    assert need_served(halal, view(nib_status="applied")) is None
    assert need_served(halal, view(nib_status="issued")) == "halal_uncertified"


def test_a_halal_programme_never_takes_a_business_that_can_not_self_declare_even_for_another_need():
    mixed = programme("halal_uncertified", "youth_digital")
    pork = view(youth_owned=True)
    assert need_served(mixed, pork, Facts(halal_not_eligible="pork")) is None
    assert need_served(mixed, view(youth_owned=True, scale="medium")) is None
    assert need_served(programme("youth_digital", topic="digital_marketing"), pork, Facts(halal_not_eligible="pork")) == "youth_digital"


def test_a_programme_serving_no_need_invites_nobody():
    assert need_served(programme(topic="entrepreneurship"), view(nib_status="none", youth_owned=True)) is None

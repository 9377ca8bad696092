"""Tests a sponsor's pledge form: its pydantic checks and validate_pledge naming every bad field at once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from services.funding.domain.pledges import PledgeForm, new_pledge, validate_pledge
from shared.contracts.funding import Earmarks
from shared.errors import InvalidInput
from shared.reference.wilayah import kota_kupang

from .funding_fakes import ALAK, NOW, OEBOBO, SPONSOR_ID, TODAY

VALID: dict[str, Any] = {
    "sponsor_id": str(SPONSOR_ID),
    "title": "CSR Bank NTT untuk kuliner muda Oebobo",
    "instrument": "grant",
    "total_rupiah": 50_000_000,
    "amount_per_business_rupiah": 5_000_000,
    "valid_from": "2026-03-10",
    "valid_until": "2026-06-30",
}


def form(**overrides: Any) -> PledgeForm:
    return PledgeForm.model_validate({**VALID, **overrides})


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {e.field: e.code for e in exc.value.errors}


def test_a_valid_form_gives_canonical_earmarks_and_the_fixed_amount_as_minimum() -> None:
    earmarks, minimum = validate_pledge(
        form(earmarks={"kecamatan": ["Oebobo", "alak", "53.71.04"], "kbli": ["56", "10", "10"],
                       "scales": ["small", "micro"], "youth_owned_only": True, "nib_required": True,
                       "trainings_completed": ["packaging", "halal_certification"], "min_readiness": 40}),
        kota_kupang(), TODAY,
    )  # fmt: skip

    assert earmarks == Earmarks(
        kecamatan_codes=(ALAK, OEBOBO), kbli_prefixes=("10", "56"), scales=("micro", "small"), youth_owned_only=True,
        nib_required=True, trainings_completed=("halal_certification", "packaging"), min_readiness=40,
    )  # fmt: skip
    assert minimum == 5_000_000


def test_a_new_pledge_from_a_valid_form_is_open_with_its_sponsor_canonical_earmarks_and_minimum() -> None:
    pledge_id = uuid.uuid4()

    p = new_pledge(form(amount_mode="capped", earmarks={"kecamatan": ["oebobo"], "kbli": ["10"]}), kota_kupang(), TODAY,
                   pledge_id=pledge_id, sponsor=("Bank NTT", "bank"), created_at=NOW)  # fmt: skip

    assert (p.id, p.sponsor_id, p.sponsor_name, p.sponsor_kind, p.status, p.created_at) == (
        pledge_id, SPONSOR_ID, "Bank NTT", "bank", "open", NOW,
    )  # fmt: skip
    assert (p.earmarks, p.min_offer_rupiah, p.total_rupiah) == (
        Earmarks(kecamatan_codes=(OEBOBO,), kbli_prefixes=("10",)), 2_500_000, 50_000_000,
    )  # fmt: skip
    assert (p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah, p.matched_at) == (0, 0, 0, None)


def test_a_new_pledge_from_an_invalid_form_names_the_bad_fields() -> None:
    with pytest.raises(InvalidInput) as exc:
        new_pledge(form(total_rupiah=1_000_000), kota_kupang(), TODAY, pledge_id=uuid.uuid4(),
                   sponsor=("Bank NTT", "bank"))  # fmt: skip

    assert fields_of(exc) == {"amount_per_business_rupiah": "pledge.amount_above_total"}


def test_a_form_with_no_earmarks_gives_earmarks_that_admit_everyone() -> None:
    earmarks, _ = validate_pledge(form(), kota_kupang(), TODAY)

    assert earmarks == Earmarks()


@pytest.mark.parametrize(
    ("overrides", "minimum"),
    [
        ({"amount_mode": "capped"}, 2_500_000),
        ({"amount_mode": "capped", "min_offer_rupiah": 1_000_000}, 1_000_000),
        ({"amount_mode": "fixed", "min_offer_rupiah": 1_000_000}, 1_000_000),
        ({"amount_mode": "capped", "amount_per_business_rupiah": 1}, 1),
    ],
)
def test_the_minimum_offer_is_given_or_half_the_cap_for_a_capped_pledge(overrides, minimum) -> None:
    assert validate_pledge(form(**overrides), kota_kupang(), TODAY)[1] == minimum


def test_every_bad_field_is_named_at_once() -> None:
    bad = form(
        instrument="financing_referral", total_rupiah=4_000_000, amount_per_business_rupiah=5_000_000,
        valid_from="2026-01-01", valid_until="2026-03-09",
        earmarks={"kecamatan": ["Oebobo", "Atlantis"], "kbli": ["10", "00", "1a", "04", "1", "\u0665"]},
    )  # fmt: skip

    with pytest.raises(InvalidInput) as exc:
        validate_pledge(bad, kota_kupang(), TODAY)

    assert fields_of(exc) == {
        "earmarks.kecamatan.1": "wilayah.unknown_kecamatan",
        "earmarks.kbli.1": "kbli.unknown",
        "earmarks.kbli.2": "kbli.unknown",
        "earmarks.kbli.3": "kbli.unknown",  # KBLI has no division 04
        "earmarks.kbli.5": "kbli.unknown",  # an Arabic-Indic 5 no KBLI code starts with
        "amount_per_business_rupiah": "pledge.amount_above_total",
        "valid_until": "pledge.window_past",
        "financing_programme": "pledge.programme_missing",
    }
    assert "'Atlantis' is not a kecamatan of Kota Kupang" in str(exc.value)


def test_a_window_starting_over_a_year_ago_or_ending_over_five_years_ahead_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_pledge(form(valid_from="0001-01-01", valid_until="9999-12-31"), kota_kupang(), TODAY)
    assert fields_of(exc) == {"valid_from": "pledge.window_backdated", "valid_until": "pledge.window_too_long"}
    assert validate_pledge(form(valid_from="2025-03-10", valid_until="2031-03-09"), kota_kupang(), TODAY)[1] == 5_000_000


def test_a_window_ending_today_is_still_valid() -> None:
    assert validate_pledge(form(valid_from="2026-03-01", valid_until="2026-03-10"), kota_kupang(), TODAY) == (
        Earmarks(), 5_000_000,
    )  # fmt: skip


def test_a_financing_referral_naming_its_programme_is_valid() -> None:
    earmarks, _ = validate_pledge(form(instrument="financing_referral", financing_programme="KUR Mikro"),
                                  kota_kupang(), TODAY)  # fmt: skip

    assert earmarks == Earmarks()


def test_a_minimum_offer_above_the_cap_is_named() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_pledge(form(amount_mode="capped", min_offer_rupiah=6_000_000), kota_kupang(), TODAY)

    assert fields_of(exc) == {"min_offer_rupiah": "pledge.min_above_cap"}


@pytest.mark.parametrize("field", ["total_rupiah", "amount_per_business_rupiah", "min_offer_rupiah"])
def test_the_form_refuses_money_as_a_decimal_number(field) -> None:
    with pytest.raises(ValidationError) as exc:
        form(**{field: 5_000_000.0})

    assert [e["loc"] for e in exc.value.errors()] == [(field,)]
    assert "whole rupiah" in str(exc.value)


def test_the_form_refuses_a_boolean_as_money() -> None:
    with pytest.raises(ValidationError) as exc:
        form(total_rupiah=True)

    assert [e["loc"] for e in exc.value.errors()] == [("total_rupiah",)]


def test_the_form_refuses_a_window_ending_before_it_starts() -> None:
    with pytest.raises(ValidationError) as exc:
        form(valid_from="2026-06-30", valid_until="2026-03-10")

    [error] = exc.value.errors()
    assert "valid_until is before valid_from" in error["msg"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"total_rupiah": 0}, "total_rupiah"),
        ({"amount_per_business_rupiah": -5}, "amount_per_business_rupiah"),
        ({"instrument": "cash"}, "instrument"),
        ({"amount_mode": "proportional"}, "amount_mode"),
        ({"title": "ab"}, "title"),
        ({"surprise": 1}, "surprise"),
        ({"sponsor_id": "bank-ntt"}, "sponsor_id"),
    ],
)
def test_the_form_names_each_field_it_refuses(overrides, field) -> None:
    with pytest.raises(ValidationError) as exc:
        form(**overrides)

    assert [e["loc"][0] for e in exc.value.errors()] == [field]


def test_an_unknown_earmark_a_malformed_training_topic_or_a_readiness_above_100_is_refused_by_the_form() -> None:
    with pytest.raises(ValidationError) as exc:
        form(earmarks={"trainings_completed": ["Las Listrik"], "min_readiness": 101, "religion": "any"})

    assert {e["loc"][:2] for e in exc.value.errors()} == {
        ("earmarks", "trainings_completed"), ("earmarks", "min_readiness"), ("earmarks", "religion"),
    }  # fmt: skip


def test_a_topic_the_city_added_is_a_valid_training_earmark() -> None:
    earmarks, _ = validate_pledge(form(earmarks={"trainings_completed": ["welding"]}), kota_kupang(), TODAY)

    assert earmarks == Earmarks(trainings_completed=("welding",))


def test_a_kbli_entry_longer_than_a_code_is_refused_by_the_form() -> None:
    with pytest.raises(ValidationError) as exc:
        form(earmarks={"kbli": ["10", "123456"]})

    assert [e["loc"] for e in exc.value.errors()] == [("earmarks", "kbli", 1)]

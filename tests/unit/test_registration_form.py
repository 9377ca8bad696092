"""Tests what a registration form (HTTP body or CSV row) accepts, and that validate_registration reports every problem."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from services.registry.bulk_import import IMPORT_COLUMNS, REQUIRED_COLUMNS, check_columns
from services.registry.domain.forms import BusinessChanges, RegistrationForm, form_errors
from services.registry.domain.registration import validate_registration
from shared.contracts.envelope import MAX_RUPIAH
from shared.errors import InvalidInput
from shared.names import _general, without_invisibles

from .builders import MARIA, TODAY, form, rules


def refused_fields(**overrides: Any) -> dict[str, str]:
    """{field: error type} of a form built from MARIA with these values."""
    with pytest.raises(ValidationError) as exc:
        form(**overrides)
    return {".".join(str(p) for p in e["loc"]): e["type"] for e in exc.value.errors()}


# ---------------------------------------------------------------------------------------------------------------
# Names: as typed, less what no one can see
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "kept"), [
    ("Se\u200bi Sa\u200bpi Ibu Maria", "Sei Sapi Ibu Maria"),  # zero-width spaces
    ("\ufeffSei Sapi\u2060", "Sei Sapi"),  # a byte-order mark, a word joiner
    ("\u202eairaM ubI", "airaM ubI"),  # a right-to-left override: shown reversed, stored otherwise
    ("Sei   Sapi\tIbu\nMaria", "Sei Sapi Ibu Maria"),
    ("Kopi Tuak Oma Se\u0301ba", "Kopi Tuak Oma S\u00e9ba"),  # composed (NFC), as most keyboards type it
])  # fmt: skip
def test_a_name_is_kept_as_typed_less_invisible_characters_and_extra_spaces(given: str, kept: str) -> None:
    assert form(business_name=given, owner_name=given).business_name == kept
    assert form(owner_name=given).owner_name == kept


def test_a_name_in_plain_ascii_is_cleaned_as_any_other_name_is() -> None:
    every_ascii = "".join(chr(c) for c in range(128))
    for given in [every_ascii, every_ascii[::-1], *(f"Sei{chr(c)}{chr(c)}Sapi " for c in range(128))]:
        assert without_invisibles(given) == _general(given), repr(given)


@pytest.mark.parametrize("given", ["\u200b\u200b\u200b", "- -", "\u200b.\u200b"])
def test_a_name_without_a_letter_or_a_digit_is_refused_naming_the_field(given: str) -> None:
    assert set(refused_fields(business_name=given)) == {"business_name"}
    assert set(refused_fields(owner_name=given)) == {"owner_name"}


# ---------------------------------------------------------------------------------------------------------------
# Money: whole rupiah
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "rupiah"),
    [
        (50_000_000, 50_000_000),
        (0, 0),
        ("50000000", 50_000_000),
        ("50.000.000", 50_000_000),
        ("Rp 50.000.000", 50_000_000),
        ("Rp50.000.000", 50_000_000),
        ("rp. 1.000", 1_000),
        (" 750.000 ", 750_000),
    ],
)
def test_money_is_accepted_as_an_integer_or_as_rupiah_written_the_indonesian_way(given: Any, rupiah: int) -> None:
    assert form(capital_rupiah=given).capital_rupiah == rupiah
    assert form(annual_sales_rupiah=given).annual_sales_rupiah == rupiah


@pytest.mark.parametrize("given", [5000000.5, 5000000.0, "5,5", "5.000.000,50", "50.000.00", "lima juta", True, -5, "-5"])
def test_money_that_is_not_a_whole_non_negative_number_of_rupiah_is_refused(given: Any) -> None:
    assert set(refused_fields(capital_rupiah=given)) == {"capital_rupiah"}


def test_a_decimal_amount_is_refused_with_a_message_saying_money_is_whole_rupiah() -> None:
    with pytest.raises(ValidationError) as exc:
        form(annual_sales_rupiah=5000000.5)
    (error,) = form_errors(exc.value)
    assert error.field == "annual_sales_rupiah"
    assert "whole rupiah" in error.message
    assert not error.message.startswith("Value error")


def test_money_is_bounded_by_the_contracts_largest_rupiah_amount() -> None:
    assert form(capital_rupiah=MAX_RUPIAH).capital_rupiah == MAX_RUPIAH
    assert set(refused_fields(capital_rupiah=MAX_RUPIAH + 1)) == {"capital_rupiah"}
    with pytest.raises(ValidationError):
        BusinessChanges(annual_sales_rupiah=MAX_RUPIAH + 1)


def test_money_left_out_of_the_form_is_unknown() -> None:
    data = {k: v for k, v in MARIA.items() if k != "capital_rupiah"}
    assert RegistrationForm.model_validate(data).capital_rupiah is None


@pytest.mark.parametrize("blank", ["", None])
def test_a_blank_money_cell_or_a_null_amount_is_unknown(blank: Any) -> None:
    assert form(capital_rupiah=blank).capital_rupiah is None


# ---------------------------------------------------------------------------------------------------------------
# Gender, dates, flags
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["L", "l", "Laki-laki", "laki laki", "Pria", "male", " M "])
def test_a_man_may_be_written_in_the_usual_ways_and_becomes_l(given: str) -> None:
    assert form(owner_gender=given, owner_nik="5371041708900001").owner_gender == "L"


@pytest.mark.parametrize("given", ["P", "p", "Perempuan", "wanita", "female", "F", "W"])
def test_a_woman_may_be_written_in_the_usual_ways_and_becomes_p(given: str) -> None:
    assert form(owner_gender=given).owner_gender == "P"


@pytest.mark.parametrize("given", ["X", "", "laki", 1, None])
def test_any_other_gender_value_is_refused_asking_for_l_or_p(given: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        form(owner_gender=given)
    (error,) = form_errors(exc.value)
    assert error.field == "owner_gender"
    assert "L (laki-laki) or P (perempuan)" in error.message


@pytest.mark.parametrize("given", ["17-08-1990", "17/08/1990", "17.08.1990", "1990-08-17", date(1990, 8, 17)])
def test_a_birth_date_may_be_iso_or_day_month_year_as_indonesian_spreadsheets_write_it(given: Any) -> None:
    assert form(owner_birth_date=given).owner_birth_date == date(1990, 8, 17)


def test_a_single_digit_day_and_month_are_read_day_first() -> None:
    assert form(owner_birth_date="7-8-1990").owner_birth_date == date(1990, 8, 7)


def test_a_day_month_year_date_that_does_not_exist_is_refused_as_not_a_real_date() -> None:
    with pytest.raises(ValidationError) as exc:
        form(owner_birth_date="31-02-1990")
    (error,) = form_errors(exc.value)
    assert error.field == "owner_birth_date"
    assert "31-02-1990 is not a real date" in error.message


@pytest.mark.parametrize(("given", "flag"), [("ya", True), ("Y", True), ("1", True), ("tidak", False), ("", False), (True, True)])
def test_confirm_distinct_understands_indonesian_and_english_yes_and_no(given: Any, flag: bool) -> None:
    assert form(confirm_distinct=given).confirm_distinct is flag


def test_blank_optional_text_becomes_none() -> None:
    built = form(address="   ", nib="")
    assert built.address is None
    assert built.nib is None


def test_form_errors_say_a_missing_field_is_required_and_an_unknown_column_is_unknown() -> None:
    data = {k: v for k, v in MARIA.items() if k != "phone"} | {"telepon": "0812"}
    with pytest.raises(ValidationError) as exc:
        RegistrationForm.model_validate(data)

    errors = {e.field: (e.code, e.message) for e in form_errors(exc.value)}
    assert errors["phone"] == ("missing", "is required")
    assert errors["telepon"] == ("extra_forbidden", "is not a known field; check the column name")


@pytest.mark.parametrize(("given", "edition"), [("2020", 2020), (" 2025 ", 2025), (2025, 2025)])
def test_a_kbli_edition_may_be_given_as_text_like_a_csv_cell(given: Any, edition: int) -> None:
    assert form(kbli_version=given).kbli_version == edition


@pytest.mark.parametrize("given", ["2019", "20.20", 2021, ""])
def test_a_kbli_edition_other_than_2020_or_2025_is_refused(given: Any) -> None:
    assert set(refused_fields(kbli_version=given)) == {"kbli_version"}


# ---------------------------------------------------------------------------------------------------------------
# validate_registration
# ---------------------------------------------------------------------------------------------------------------


def test_a_valid_registration_is_normalised_and_classified() -> None:
    new = validate_registration(form(), rules(), TODAY)

    assert new.nik.digits == "5371045708900001"
    assert new.phone == "+6281234567890"
    assert (new.kecamatan.name, new.kelurahan.name) == ("Oebobo", "Fatululi")
    assert (new.scale, new.scale_basis) == ("micro", "annual_sales")
    assert new.nib is None


def test_a_registration_with_an_nib_keeps_it_without_separators() -> None:
    assert validate_registration(form(nib="1234-5678-90123"), rules(), TODAY).nib == "1234567890123"


def test_every_wrong_field_of_a_registration_is_reported_at_once() -> None:
    bad = form(
        owner_nik="5371045708900000",
        phone="0380 821234",
        kbli_code="45201",
        kbli_version=2025,
        kecamatan="Kupang Tengah",
        capital_rupiah=None,
        annual_sales_rupiah=60_000_000_000,
        nib="123",
    )
    with pytest.raises(InvalidInput) as exc:
        validate_registration(bad, rules(), TODAY)

    codes = {e.field: e.code for e in exc.value.errors}
    assert codes == {
        "owner_nik": "nik.serial",
        "phone": "phone.not_mobile",
        "kbli_code": "kbli.unknown_division",
        "kecamatan": "wilayah.unknown_kecamatan",
        "annual_sales_rupiah": "scale.not_umkm",
        "nib": "nib.format",
    }


def test_a_birth_date_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_registration(form(owner_birth_date="2026-03-11"), rules(), TODAY)
    assert ("owner_birth_date", "date.future") in {(e.field, e.code) for e in exc.value.errors}


def test_an_owner_over_a_hundred_and_twenty_is_refused_as_implausible() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_registration(
            form(owner_birth_date="1900-08-17", owner_nik="5371045708000001"), rules(), TODAY
        )
    assert [(e.field, e.code) for e in exc.value.errors] == [("owner_birth_date", "date.implausible")]


def test_a_kbli_code_valid_in_2020_but_not_in_2025_is_judged_by_its_edition() -> None:
    assert validate_registration(form(kbli_code="45201", kbli_version=2020), rules(), TODAY).form.kbli_code == "45201"
    with pytest.raises(InvalidInput) as exc:
        validate_registration(form(kbli_code="45201", kbli_version=2025), rules(), TODAY)
    assert [(e.field, e.code) for e in exc.value.errors] == [("kbli_code", "kbli.unknown_division")]


# ---------------------------------------------------------------------------------------------------------------
# CSV import header
# ---------------------------------------------------------------------------------------------------------------


def test_the_import_columns_are_the_registration_form_fields() -> None:
    assert set(IMPORT_COLUMNS) == set(RegistrationForm.model_fields)
    check_columns(list(MARIA))  # raises nothing


def test_an_import_header_with_unknown_missing_or_doubled_columns_is_refused_naming_each() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_columns(["business_name", "telepon", "business_name"])

    (error,) = exc.value.errors
    assert (error.field, error.code) == ("columns", "import.header")
    assert "unknown column(s) ['telepon']" in error.message
    assert "missing required column(s)" in error.message and "'owner_nik'" in error.message
    assert "['business_name'] appear twice" in error.message


def test_the_required_import_columns_are_the_form_fields_without_a_default() -> None:
    assert set(REQUIRED_COLUMNS) == set(MARIA) - {"capital_rupiah", "annual_sales_rupiah"}
    check_columns(list(REQUIRED_COLUMNS))  # raises nothing


def test_an_import_header_with_many_unknown_columns_names_ten_and_counts_the_rest() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_columns([*MARIA, *(f"kolom{i}" for i in range(13))])

    (error,) = exc.value.errors
    assert "'kolom9'" in error.message and "'kolom10'" not in error.message
    assert "and 3 more" in error.message

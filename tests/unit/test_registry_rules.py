"""Tests the registry's single rules: NIK structure, mobile numbers, business scale, youth age range and NIB format."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from services.registry.domain.forms import BusinessChanges, RegistrationForm, form_errors
from services.registry.domain.identity import check_nib, check_nik, normalise_phone
from services.registry.domain.scale import YouthRange, age_on, classify_scale
from shared import names
from shared.errors import InvalidInput
from shared.reference.wilayah import _place_key, place_key


def only_error(exc: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, str]:
    assert len(exc.value.errors) == 1, exc.value.errors
    error = exc.value.errors[0]
    return error.field, error.code


# ---------------------------------------------------------------------------------------------------------------
# NIK
# ---------------------------------------------------------------------------------------------------------------

MARIA_BORN = date(1990, 8, 17)


def test_a_kupang_nik_of_a_woman_born_17_august_1990_is_valid() -> None:
    nik = check_nik("5371045708900001", MARIA_BORN, "P")

    assert nik.digits == "5371045708900001"
    assert nik.region == "537104"  # Kota Kupang, Oebobo


def test_a_woman_s_nik_has_forty_added_to_her_day_of_birth() -> None:
    # Day 57 = 17 + 40: she is a woman born on the 17th.
    assert check_nik("5371045708900001", MARIA_BORN, "P").digits == "5371045708900001"
    # The same digits without the +40 are a man's NIK for the same birth date.
    assert check_nik("5371041708900001", MARIA_BORN, "L").digits == "5371041708900001"


def test_a_nik_is_shown_masked_keeping_only_its_first_and_last_four_digits() -> None:
    assert check_nik("5371045708900001", MARIA_BORN, "P").masked == "5371********0001"


def test_spaces_dots_and_dashes_typed_into_a_nik_are_ignored() -> None:
    assert check_nik("5371 0457.0890-0001", MARIA_BORN, "P").digits == "5371045708900001"


# Arabic-Indic and full-width digits: Python reads them as digits, but the same NIK in them would get another digest
# and slip past the duplicate check.
@pytest.mark.parametrize("raw", ["537104570890001", "53710457089000012", "53710457O8900001", "",
                                 "537104\u0665\u0667\u0660\u0668\u0669\u06600001", "\uff15371045708900001"])
def test_a_nik_that_is_not_exactly_sixteen_digits_0_to_9_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik(raw, MARIA_BORN, "P")
    assert only_error(exc) == ("owner_nik", "nik.format")


@pytest.mark.parametrize("province", ["00", "10", "20", "54", "99"])
def test_a_nik_whose_first_two_digits_are_not_a_province_code_is_refused(province: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik(province + "71045708900001", MARIA_BORN, "P")
    assert only_error(exc) == ("owner_nik", "nik.province")


@pytest.mark.parametrize("province", ["11", "31", "53", "92", "96"])
def test_every_listed_province_code_including_the_new_papua_provinces_is_accepted(province: str) -> None:
    assert check_nik(province + "71045708900001", MARIA_BORN, "P").region == province + "7104"


@pytest.mark.parametrize("raw", ["5300045708900001", "5371005708900001"])
def test_a_nik_with_00_as_regency_or_kecamatan_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik(raw, MARIA_BORN, "P")
    assert only_error(exc) == ("owner_nik", "nik.region")


@pytest.mark.parametrize(
    "raw",
    [
        "5371040008900001",  # day 00
        "5371043508900001",  # day 35: neither a man's day nor a woman's (41-71)
        "5371047208900001",  # day 72 = 32 + 40
        "5371045713900001",  # month 13
        "5371045700900001",  # month 00
    ],
)
def test_a_nik_whose_digits_7_to_12_are_not_a_date_of_birth_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik(raw, MARIA_BORN, "P")
    assert only_error(exc) == ("owner_nik", "nik.birth_date")


def test_a_nik_with_serial_0000_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik("5371045708900000", MARIA_BORN, "P")
    assert only_error(exc) == ("owner_nik", "nik.serial")


@pytest.mark.parametrize("born", [date(1990, 8, 18), date(1990, 9, 17), date(1991, 8, 17), date(1980, 8, 17)])
def test_a_nik_whose_birth_date_differs_from_the_form_is_refused_naming_both_dates(born: date) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik("5371045708900001", born, "P")
    assert only_error(exc) == ("owner_nik", "nik.birth_date_mismatch")
    assert "17-08-90" in exc.value.errors[0].message
    assert f"{born:%d-%m-%y}" in exc.value.errors[0].message


def test_a_woman_s_nik_with_the_gender_given_as_man_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik("5371045708900001", MARIA_BORN, "L")
    assert only_error(exc) == ("owner_nik", "nik.gender_mismatch")


def test_a_man_s_nik_with_the_gender_given_as_woman_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nik("5371041708900001", MARIA_BORN, "P")
    assert only_error(exc) == ("owner_nik", "nik.gender_mismatch")


def test_a_nik_of_someone_born_in_the_2000s_matches_on_the_last_two_digits_of_the_year() -> None:
    assert check_nik("5371010101000002", date(2000, 1, 1), "L").digits == "5371010101000002"


# ---------------------------------------------------------------------------------------------------------------
# Phone
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["0812-3456-7890", "0812 3456 7890", "+62 812-3456-7890", "+6281234567890", "6281234567890", "(0812) 3456.7890"],
)
def test_an_indonesian_mobile_number_written_any_usual_way_becomes_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+6281234567890"


@pytest.mark.parametrize("raw", ["0380 821234", "0380-8212345", "+62 380 821 234", "021 5551234"])
def test_a_landline_number_is_refused_because_it_cannot_receive_messages(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalise_phone(raw)
    assert only_error(exc) == ("phone", "phone.not_mobile")


@pytest.mark.parametrize("raw", ["0841-2345-6789", "+62 845 1234 5678"])
def test_a_number_starting_084_is_refused_as_not_a_mobile_number(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalise_phone(raw)
    assert only_error(exc) == ("phone", "phone.not_mobile")


@pytest.mark.parametrize("raw", ["0812345", "08123456", "08123456789012", "+62 812 3456 7890 123"])
def test_a_mobile_number_that_is_too_short_or_too_long_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalise_phone(raw)
    assert only_error(exc) == ("phone", "phone.length")


@pytest.mark.parametrize(("raw", "expected"), [("0812345678", "+62812345678"), ("0812345678901", "+62812345678901")])
def test_mobile_numbers_of_ten_and_of_thirteen_digits_are_the_accepted_extremes(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", ["0812-ABCD-7890", "\uff10\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", "0812\u00b2345678"])
def test_a_phone_number_with_anything_but_digits_0_to_9_and_separators_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalise_phone(raw)
    assert only_error(exc) == ("phone", "phone.format")


# ---------------------------------------------------------------------------------------------------------------
# Scale (PP 7/2021 art. 35)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capital", "scale"),
    [
        (0, "micro"),
        (1_000_000_000, "micro"),
        (1_000_000_001, "small"),
        (5_000_000_000, "small"),
        (5_000_000_001, "medium"),
        (10_000_000_000, "medium"),
    ],
)
def test_without_sales_the_capital_decides_the_scale_with_inclusive_ceilings(capital: int, scale: str) -> None:
    assert classify_scale(capital, None) == (scale, "capital")


@pytest.mark.parametrize(
    ("sales", "scale"),
    [
        (0, "micro"),
        (2_000_000_000, "micro"),
        (2_000_000_001, "small"),
        (15_000_000_000, "small"),
        (15_000_000_001, "medium"),
        (50_000_000_000, "medium"),
    ],
)
def test_annual_sales_decide_the_scale_with_inclusive_ceilings(sales: int, scale: str) -> None:
    assert classify_scale(None, sales) == (scale, "annual_sales")


def test_annual_sales_are_preferred_over_capital_when_both_are_known() -> None:
    assert classify_scale(1_000_000_001, 2_000_000_000) == ("micro", "annual_sales")
    # Even capital above the medium ceiling does not matter once sales are known.
    assert classify_scale(20_000_000_000, 1_000_000) == ("micro", "annual_sales")


def test_sales_above_the_medium_ceiling_are_refused_as_not_a_umkm() -> None:
    with pytest.raises(InvalidInput) as exc:
        classify_scale(None, 50_000_000_001)
    assert only_error(exc) == ("annual_sales_rupiah", "scale.not_umkm")
    assert "Rp50.000.000.001" in exc.value.errors[0].message
    assert "Rp50.000.000.000" in exc.value.errors[0].message


def test_capital_above_the_medium_ceiling_is_refused_on_the_capital_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        classify_scale(10_000_000_001, None)
    assert only_error(exc) == ("capital_rupiah", "scale.not_umkm")


def test_a_business_with_neither_sales_nor_capital_has_no_scale_and_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        classify_scale(None, None)
    assert only_error(exc) == ("annual_sales_rupiah", "scale.missing")


# ---------------------------------------------------------------------------------------------------------------
# Youth (UU 40/2009: 16 to 30)
# ---------------------------------------------------------------------------------------------------------------

YOUTH = YouthRange()
BORN = date(2000, 6, 15)


def test_an_owner_is_a_youth_from_the_day_they_turn_sixteen() -> None:
    assert YOUTH.is_youth(BORN, date(2016, 6, 15))


def test_an_owner_of_fifteen_is_not_yet_a_youth() -> None:
    assert not YOUTH.is_youth(BORN, date(2016, 6, 14))


def test_an_owner_is_still_a_youth_at_thirty_up_to_the_day_before_turning_thirty_one() -> None:
    assert YOUTH.is_youth(BORN, date(2030, 6, 15))
    assert YOUTH.is_youth(BORN, date(2031, 6, 14))


def test_an_owner_of_thirty_one_is_no_longer_a_youth() -> None:
    assert not YOUTH.is_youth(BORN, date(2031, 6, 15))


def test_age_counts_whole_years_so_a_birthday_is_the_day_the_age_changes() -> None:
    assert age_on(BORN, date(2031, 6, 14)) == 30
    assert age_on(BORN, date(2031, 6, 15)) == 31


def test_someone_born_on_29_february_turns_a_year_older_on_1_march_in_other_years() -> None:
    born = date(2000, 2, 29)
    assert age_on(born, date(2031, 2, 28)) == 30
    assert age_on(born, date(2031, 3, 1)) == 31


def test_the_youth_flag_is_youth_on_the_first_day_of_the_month() -> None:
    # 15 June 2000: 30 on 1 June 2031 and 31 from 15 June 2031.
    assert YOUTH.youth_flag(BORN, date(2031, 6, 1))
    assert YOUTH.youth_flag(BORN, date(2031, 6, 30))
    assert not YOUTH.youth_flag(BORN, date(2031, 7, 1))


def test_an_owner_thirty_on_the_first_but_thirty_one_later_that_month_keeps_the_flag_until_the_next_month() -> None:
    birthday = date(2031, 6, 15)
    assert not YOUTH.is_youth(BORN, birthday)  # 31 on the day itself...

    assert YOUTH.youth_flag(BORN, birthday)  # ...but the flag is as of 1 June, when the owner was 30
    assert not YOUTH.youth_flag(BORN, date(2031, 7, 1))


def test_the_youth_flag_of_someone_turning_sixteen_is_set_from_the_first_of_the_next_month() -> None:
    assert not YOUTH.youth_flag(BORN, date(2016, 6, 15))  # 16 today, but 15 on 1 June
    assert YOUTH.youth_flag(BORN, date(2016, 7, 1))


def test_the_youth_flag_of_someone_born_on_the_first_changes_on_their_birthday() -> None:
    born = date(2000, 7, 1)
    assert YOUTH.youth_flag(born, date(2031, 6, 30))
    assert not YOUTH.youth_flag(born, date(2031, 7, 1))


def test_youth_birth_dates_are_after_the_first_and_up_to_the_second() -> None:
    after, up_to = YOUTH.birth_dates(date(2026, 3, 1))

    assert (after, up_to) == (date(1995, 3, 1), date(2010, 3, 1))
    assert not YOUTH.is_youth(after, date(2026, 3, 1))  # 31 that day
    assert YOUTH.is_youth(after + timedelta(days=1), date(2026, 3, 1))
    assert YOUTH.is_youth(up_to, date(2026, 3, 1))  # 16 that day
    assert not YOUTH.is_youth(up_to + timedelta(days=1), date(2026, 3, 1))


@pytest.mark.parametrize("on", [date(2026, 3, 1), date(2024, 2, 29), date(2025, 12, 31), date(2031, 6, 15)])
def test_youth_birth_dates_agree_with_is_youth_around_both_ends(on: date) -> None:
    after, up_to = YOUTH.birth_dates(on)
    for born in (after - timedelta(days=1), after, after + timedelta(days=1),
                 up_to - timedelta(days=1), up_to, up_to + timedelta(days=1)):  # fmt: skip
        assert YOUTH.is_youth(born, on) == (after < born <= up_to), born


def test_a_changed_youth_range_moves_the_flag_and_the_birth_dates_with_it() -> None:
    wider = YouthRange(min_age=18, max_age=35)

    assert wider.youth_flag(BORN, date(2036, 6, 1))
    assert not wider.youth_flag(BORN, date(2036, 7, 1))
    assert not wider.is_youth(BORN, date(2017, 6, 15))
    assert wider.birth_dates(date(2026, 3, 1)) == (date(1990, 3, 1), date(2008, 3, 1))


# ---------------------------------------------------------------------------------------------------------------
# NIB
# ---------------------------------------------------------------------------------------------------------------


def test_an_nib_of_thirteen_digits_is_kept_without_its_separators() -> None:
    assert check_nib("1234 5678.9012-3") == "1234567890123"


@pytest.mark.parametrize("raw", ["123456789012", "12345678901234", "12345678901X3", "123456789012\u0663"])
def test_an_nib_that_is_not_thirteen_digits_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_nib(raw)
    assert only_error(exc) == ("nib", "nib.format")


def _registration(**overrides: object) -> dict[str, object]:
    return {"business_name": "Sei Sapi Ibu Maria", "owner_name": "Maria Goreti Ndun", "owner_nik": "5371045708900001",
            "owner_gender": "P", "owner_birth_date": "1990-08-17", "phone": "081234567890", "kbli_code": "10130",
            "kbli_version": 2020, "kecamatan": "Oebobo", "kelurahan": "Fatululi", **overrides}  # fmt: skip


@pytest.mark.parametrize("field", ["owner_nik", "phone", "kbli_code", "kecamatan", "kelurahan", "nib"])
def test_a_registration_field_megabytes_long_is_refused_by_its_length_naming_it(field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RegistrationForm.model_validate(_registration(**{field: "ab" * 5_000_000}))
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [((field,), "string_too_long")]


@pytest.mark.parametrize("field", ["phone", "kbli_code", "kecamatan", "kelurahan"])
def test_a_correction_field_megabytes_long_is_refused_by_its_length_naming_it(field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BusinessChanges.model_validate({field: "ab" * 5_000_000})
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [((field,), "string_too_long")]


def test_a_name_of_megabytes_of_non_ascii_is_refused_by_its_length_without_being_cleaned_a_character_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cleaned: list[int] = []
    monkeypatch.setattr(names, "_general", lambda value: cleaned.append(len(value)) or value)
    with pytest.raises(ValidationError) as refused:
        RegistrationForm.model_validate(_registration(business_name="é\u200b" * 5_000_000,
                                                      owner_name="Maria Ndun\u00e9"))  # fmt: skip
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("business_name",), "string_too_long")]
    assert cleaned == [11]  # the owner's name only: a character at a time, ten megabytes held the loop for seconds


def test_place_names_looked_up_are_remembered_only_when_a_place_name_could_be_that_long():
    _place_key.cache_clear()
    for i in range(50):
        place_key(f"{i}" + "x" * 200)
    place_key("Oebobo")
    assert _place_key.cache_info().currsize == 1
    assert place_key("Naikoten  II") == place_key("naikoten dua") and place_key("y" * 500) == "y"


@pytest.mark.parametrize("written", ["17-08-90", "33102", "17-08-1990 00:00", "17 Agustus 1990"])
def test_a_birth_date_in_no_accepted_form_is_refused_naming_both_forms_an_officer_can_write(written: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RegistrationForm.model_validate(_registration(owner_birth_date=written))

    [error] = form_errors(refused.value)
    assert error.field == "owner_birth_date" and "YYYY-MM-DD" in error.message and "DD-MM-YYYY" in error.message


def test_a_birth_date_in_the_iso_form_that_no_calendar_has_is_refused_as_not_a_real_date() -> None:
    with pytest.raises(ValidationError) as refused:
        RegistrationForm.model_validate(_registration(owner_birth_date="1990-02-30"))

    assert [e.message for e in form_errors(refused.value)] == ["1990-02-30 is not a real date"]

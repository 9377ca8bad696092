"""Tests the Kota Kupang reference data: kecamatan and kelurahan, their Kemendagri and BPS codes, and loose matching."""

from __future__ import annotations

import pytest

from shared.reference.kbli import check_kbli, is_food_or_drink
from shared.reference.wilayah import CITY_CODE, kota_kupang, place_key

KECAMATAN = {
    # name: (Kemendagri, BPS). BPS numbers them in a different order from Kemendagri.
    "Alak": ("53.71.01", "5371010"),
    "Maulafa": ("53.71.02", "5371020"),
    "Kelapa Lima": ("53.71.03", "5371040"),
    "Oebobo": ("53.71.04", "5371030"),
    "Kota Raja": ("53.71.05", "5371031"),
    "Kota Lama": ("53.71.06", "5371041"),
}


def test_kota_kupang_has_six_kecamatan_and_fifty_one_kelurahan() -> None:
    wilayah = kota_kupang()
    assert len(wilayah.kecamatan) == 6
    assert len(wilayah.kelurahan) == 51
    assert len({k.code for k in wilayah.kelurahan}) == 51


def test_kelurahan_per_kecamatan_add_up_to_the_city() -> None:
    wilayah = kota_kupang()
    counts = {k.name: len(wilayah.kelurahan_of(k)) for k in wilayah.kecamatan}
    assert counts == {"Alak": 12, "Maulafa": 9, "Kelapa Lima": 5, "Oebobo": 7, "Kota Raja": 8, "Kota Lama": 10}


def test_the_kecamatan_are_ordered_by_kemendagri_code_with_their_bps_codes() -> None:
    wilayah = kota_kupang()
    assert {k.name: (k.code, k.bps_code) for k in wilayah.kecamatan} == KECAMATAN
    assert [k.code for k in wilayah.kecamatan] == sorted(code for code, _ in KECAMATAN.values())


@pytest.mark.parametrize("text", ["Oebobo", "53.71.04", "537104", "5371030", " oebobo "])
def test_oebobo_is_found_by_name_kemendagri_code_nik_prefix_or_bps_code(text: str) -> None:
    oebobo = kota_kupang().find_kecamatan(text)
    assert oebobo is not None
    assert (oebobo.name, oebobo.code, oebobo.bps_code) == ("Oebobo", "53.71.04", "5371030")


@pytest.mark.parametrize("text", ["Kelapa Lima", "kelapalima", "53.71.03", "5371040"])
def test_kelapa_lima_is_found_by_name_kemendagri_code_or_bps_code(text: str) -> None:
    kelapa_lima = kota_kupang().find_kecamatan(text)
    assert kelapa_lima is not None
    assert (kelapa_lima.name, kelapa_lima.code, kelapa_lima.bps_code) == ("Kelapa Lima", "53.71.03", "5371040")


def test_the_bps_code_of_oebobo_is_not_mistaken_for_kelapa_lima_s_and_vice_versa() -> None:
    wilayah = kota_kupang()
    assert wilayah.find_kecamatan("5371030").name == "Oebobo"  # BPS 030 is Kemendagri 04
    assert wilayah.find_kecamatan("5371040").name == "Kelapa Lima"  # BPS 040 is Kemendagri 03


def test_a_kecamatan_s_nik_prefix_is_its_kemendagri_code_without_dots() -> None:
    assert kota_kupang().find_kecamatan("Oebobo").nik_prefix == "537104"
    assert all(k.code.startswith(CITY_CODE + ".") for k in kota_kupang().kecamatan)


def test_every_kelurahan_code_starts_with_its_kecamatan_s_code() -> None:
    assert all(k.code.startswith(k.kecamatan.code + ".") for k in kota_kupang().kelurahan)


@pytest.mark.parametrize(("a", "b"), [("Bello", "Belo"), ("Air Mata", "airmata"), ("Lai-Lai Bisi Kopan", "lailai bisi kopan")])
def test_place_names_spelled_differently_have_the_same_key(a: str, b: str) -> None:
    assert place_key(a) == place_key(b)


@pytest.mark.parametrize("name", ["Naikoten II", "Naikoten 2", "naikoten dua"])
def test_place_names_numbered_in_words_roman_or_arabic_numerals_have_the_same_key(name: str) -> None:
    assert place_key(name) == place_key("Naikoten II")
    assert place_key(name) != place_key("Naikoten I")


def test_a_kelurahan_code_finds_it_with_or_without_dots() -> None:
    wilayah = kota_kupang()
    assert wilayah.find_kelurahan("53.71.04.1011").name == "Fatululi"
    assert wilayah.find_kelurahan("5371041011").name == "Fatululi"


def test_a_kelurahan_name_is_found_without_a_kecamatan_when_it_is_unique_in_the_city() -> None:
    assert kota_kupang().find_kelurahan("Oesapa Selatan").kecamatan.name == "Kelapa Lima"


def test_a_kelurahan_sharing_its_name_with_its_kecamatan_is_found_in_it() -> None:
    wilayah = kota_kupang()
    alak = wilayah.find_kecamatan("Alak")
    assert wilayah.find_kelurahan("Alak", alak).code == "53.71.01.1008"


def test_an_unknown_place_is_not_found() -> None:
    wilayah = kota_kupang()
    assert wilayah.find_kecamatan("Kupang Tengah") is None
    assert wilayah.find_kelurahan("Oesao") is None


@pytest.mark.parametrize(("name", "code"), [("Naikoten I", "53.71.05.1004"), ("Naikoten II", "53.71.05.1005")])
def test_naikoten_i_and_naikoten_ii_are_told_apart_by_name(name: str, code: str) -> None:
    wilayah = kota_kupang()
    kelurahan = wilayah.find_kelurahan(name, wilayah.find_kecamatan("Kota Raja"))
    assert kelurahan is not None and kelurahan.code == code


def test_every_kelurahan_except_the_naikoten_pair_is_found_by_its_own_name_in_its_kecamatan() -> None:
    wilayah = kota_kupang()
    unresolved = {k.name for k in wilayah.kelurahan if wilayah.find_kelurahan(k.name, k.kecamatan) != k}
    assert unresolved == set()


# ---------------------------------------------------------------------------------------------------------------
# KBLI
# ---------------------------------------------------------------------------------------------------------------


def test_a_five_digit_code_of_a_real_division_is_a_plausible_kbli() -> None:
    assert check_kbli("10130", 2020) is None
    assert check_kbli("56102", 2025) is None


@pytest.mark.parametrize(
    ("code", "edition", "problem"),
    [
        ("1013", 2020, "kbli.format"),
        ("10130a", 2020, "kbli.format"),
        ("1013\u0660", 2020, "kbli.format"),
        ("04100", 2020, "kbli.unknown_division"),
        ("45201", 2025, "kbli.unknown_division"),
        ("10130", 2017, "kbli.unknown_edition"),
    ],
)
def test_an_implausible_kbli_code_is_reported_with_what_is_wrong(code: str, edition: int, problem: str) -> None:
    found = check_kbli(code, edition)
    assert found is not None and found.code == problem


def test_food_and_drink_codes_are_those_that_need_halal_certification() -> None:
    assert is_food_or_drink("10130") and is_food_or_drink("56102")
    assert not is_food_or_drink("95210") and not is_food_or_drink("56401")

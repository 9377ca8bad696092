"""Tests duplicate detection (business_name_key, probable_duplicate, duplicate_conflict) and resolving a kecamatan
and kelurahan from loose input."""

from __future__ import annotations

import uuid

import pytest

from services.registry.domain.duplicates import (
    MOST_COMPARED,
    DuplicateCandidate,
    business_identity,
    business_name_key,
    comparable,
    duplicate_conflict,
    name_identity,
    name_similarity,
    probable_duplicate,
)
from services.registry.domain.registration import resolve_region
from shared.errors import InvalidInput
from shared.reference.wilayah import kota_kupang

from .builders import rules

SIMILARITY = rules().duplicate_similarity  # 85, as configured by default


def candidate(name: str, *, same_nik: bool = False, same_phone: bool = False, status: str = "active") -> DuplicateCandidate:
    return DuplicateCandidate(uuid.uuid4(), name, same_nik, same_phone, status)


# ---------------------------------------------------------------------------------------------------------------
# business_name_key
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("UD. Sinar Jaya", "sinar jaya"),
        ("Toko SINAR JAYA", "sinar jaya"),
        ("Warung Sei Sapi Ibu Maria", "sei sapi maria"),
        ("RM Bu Ani", "ani"),
        ("Kios-Pulsa  Yohanes!", "pulsa yohanes"),
    ],
)
def test_a_business_name_key_drops_case_punctuation_and_generic_words_like_ud_or_warung(name: str, key: str) -> None:
    assert business_name_key(name) == key


def test_a_name_made_only_of_generic_words_keeps_them_rather_than_becoming_empty() -> None:
    assert business_name_key("Warung Makan") == "warung makan"
    assert business_name_key("Toko Kios") == "toko kios"


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("豆花", "豆花"),
        ("Warung 珍珠!", "珍珠"),
        ("ＵＤ Kafé Ndéso", "kafé ndéso"),
        ("Кафе Ольга", "кафе ольга"),
        ("Toko_Maju  Jaya", "maju jaya"),
    ],
)
def test_a_names_identity_keeps_letters_marks_and_digits_of_any_script_without_case_width_or_generic_words(
        name: str, identity: str) -> None:  # fmt: skip
    assert name_identity(name) == identity


@pytest.mark.parametrize("name", ["UD. Sinar Jaya", "RM Bu Ani", "Kios-Pulsa  Yohanes!", "Toko_Maju\tJaya", "Warung",
                                  "!!"])  # fmt: skip
def test_a_names_identity_is_its_stored_key_when_the_name_is_ascii_so_keys_stored_before_find_it(name: str) -> None:
    assert name_identity(name) == business_name_key(name)


@pytest.mark.parametrize(("one", "other"), [("ร้านข้าว", "ร้านขาว"), ("ꦱꦶꦠꦶ", "ꦱꦸꦠꦸ"), ("कमला", "कमल"), ("パン屋", "バン屋"),
                                          ("Phở Hà", "Phố Hạ")])  # fmt: skip
def test_names_that_differ_by_a_vowel_sign_tone_or_voicing_mark_alone_are_two_identities(one: str, other: str) -> None:
    assert name_identity(one) != name_identity(other)


@pytest.mark.parametrize(("one", "other"), [("Dapur Mama ❤️", "Dapur Mama ❤"), ("Kopi ☕️", "Kopi"),
                                          ("Toko 豆花\ufe0f", "Toko 豆花"), ("豆\u034f花", "豆花"), ("Toko 1️⃣", "Toko 1")])  # fmt: skip
def test_what_is_drawn_as_nothing_or_decorates_no_letter_is_no_part_of_a_names_identity(one: str, other: str) -> None:
    # A keyboard or a spreadsheet adds U+FE0F after an emoji, or not: the same owner's row must find the business.
    assert name_identity(one) == name_identity(other)


def test_a_name_of_no_letter_a_word_is_made_of_is_its_own_identity_rather_than_none() -> None:
    assert name_identity("ͺͺ") and name_identity("ͺͺ") != name_identity("ͺ")


def test_an_owners_businesses_named_in_another_script_have_different_identities_though_one_stored_key() -> None:
    assert business_name_key("Warung 豆花") == business_name_key("Warung 珍珠") == "warung"
    assert business_identity(b"nik", "Warung 豆花") != business_identity(b"nik", "Warung 珍珠")
    assert business_identity(b"nik", "Warung 豆花") == business_identity(b"nik", "WARUNG  豆花!")


# ---------------------------------------------------------------------------------------------------------------
# probable_duplicate
# ---------------------------------------------------------------------------------------------------------------


def test_a_second_registration_with_the_same_nik_and_a_similar_name_is_a_probable_duplicate() -> None:
    existing = candidate("Sei Sapi Ibu Maria", same_nik=True)
    assert probable_duplicate("Warung Sei Sapi Maria", [existing], SIMILARITY) == existing


@pytest.mark.parametrize("again", ["Se\u200bi Sa\u200bpi Ibu Maria", "ＳＥＩ ＳＡＰＩ Ibu Maria", "Séi Sápi Ibu María"])
def test_a_name_differing_only_in_invisible_characters_width_or_accents_is_a_probable_duplicate(again: str) -> None:
    existing = candidate("Sei Sapi Ibu Maria", same_nik=True)
    assert probable_duplicate(again, [existing], SIMILARITY) == existing


def test_a_second_business_of_the_same_owner_with_a_different_name_is_not_a_duplicate() -> None:
    existing = candidate("Sei Sapi Ibu Maria", same_nik=True)
    assert probable_duplicate("Tenun Ikat Maria", [existing], SIMILARITY) is None


def test_the_same_phone_and_a_similar_name_is_a_probable_duplicate() -> None:
    existing = candidate("UD Sinar Jaya", same_phone=True)
    assert probable_duplicate("Toko Sinar Jaya", [existing], SIMILARITY) == existing


def test_the_same_name_without_the_same_nik_or_phone_is_not_a_duplicate() -> None:
    assert probable_duplicate("Sinar Jaya", [candidate("Sinar Jaya")], SIMILARITY) is None


def test_a_closed_business_is_still_reported_as_a_probable_duplicate() -> None:
    closed = candidate("Sei Sapi Ibu Maria", same_nik=True, status="closed")
    assert probable_duplicate("Sei Sapi Ibu Maria", [closed], SIMILARITY) == closed


def test_of_several_similar_candidates_the_most_similar_one_is_reported() -> None:
    near = candidate("Sei Sapi Mariana", same_nik=True)
    exact = candidate("Sei Sapi Maria", same_phone=True)
    assert probable_duplicate("Warung Sei Sapi Maria", [near, exact], SIMILARITY) == exact


def test_a_phone_given_for_more_businesses_than_are_compared_says_nothing_of_whose_business_is_whose() -> None:
    existing = candidate("Toko Sinar Jaya", same_phone=True)
    office_phone = [existing, *(candidate(f"Usaha {i} Oesapa", same_phone=True) for i in range(MOST_COMPARED))]

    assert probable_duplicate("Sinar Jaya", comparable([], office_phone[:MOST_COMPARED]), SIMILARITY) == existing
    assert probable_duplicate("Sinar Jaya", comparable([], office_phone), SIMILARITY) is None


def test_of_an_owners_businesses_beyond_those_compared_the_latest_are_compared() -> None:
    many = [candidate(f"Usaha {i} Maria", same_nik=True) for i in range(MOST_COMPARED)]
    first, latest = candidate("Sei Sapi Maria", same_nik=True), candidate("Tenun Ikat Maria", same_nik=True)

    assert probable_duplicate("Sei Sapi Maria", comparable([first, *many], []), SIMILARITY) is None
    assert probable_duplicate("Tenun Ikat Maria", comparable([first, *many, latest], []), SIMILARITY) == latest


def test_no_candidates_means_no_duplicate() -> None:
    assert probable_duplicate("Sei Sapi Ibu Maria", [], SIMILARITY) is None


def test_an_owners_second_business_named_in_another_script_is_not_a_probable_duplicate_of_the_first() -> None:
    assert probable_duplicate("Toko 珍珠", [candidate("Toko 豆花", same_nik=True)], SIMILARITY) is None
    assert probable_duplicate("珍珠", [candidate("豆花", same_nik=True)], SIMILARITY) is None
    assert probable_duplicate("Toko 豆花!", [candidate("TOKO 豆花", same_nik=True)], SIMILARITY) is not None


def test_of_candidates_as_similar_as_each_other_the_first_is_reported_and_those_of_another_owner_never() -> None:
    other_owner = candidate("Sei Sapi Maria")
    first, second = candidate("Sei Sapi Maria", same_phone=True), candidate("Maria Sei Sapi", same_nik=True)
    assert probable_duplicate("Sei Sapi Maria", [other_owner, first, second], SIMILARITY) == first
    assert probable_duplicate("Sei Sapi Maria", [other_owner], SIMILARITY) is None


def test_a_name_less_similar_than_the_configured_threshold_is_not_a_duplicate() -> None:
    near = candidate("Sei Sapi Mariana", same_nik=True)
    score = name_similarity("Warung Sei Sapi Maria", near.business_name)

    assert probable_duplicate("Warung Sei Sapi Maria", [near], score) == near
    assert probable_duplicate("Warung Sei Sapi Maria", [near], score + 0.01) is None


def test_a_duplicate_conflict_names_the_existing_business_and_how_to_register_anyway() -> None:
    existing = candidate("Sei Sapi Ibu Maria", same_nik=True)

    conflict = duplicate_conflict(existing)

    assert conflict.code == "probable_duplicate"
    assert conflict.details == {"existing_business_id": str(existing.business_id),
                                "existing_business_name": "Sei Sapi Ibu Maria"}  # fmt: skip
    assert "same owner NIK" in conflict.message
    assert str(existing.business_id) in conflict.message
    assert "confirm_distinct=true" in conflict.message


def test_a_duplicate_conflict_with_an_earlier_row_of_an_import_names_its_line_and_the_shared_phone() -> None:
    earlier = DuplicateCandidate(uuid.uuid4(), "Sei Sapi Ibu Maria", False, True, "active", import_line=2)

    message = duplicate_conflict(earlier).message

    assert "line 2 of this import" in message
    assert "same owner phone number" in message


# ---------------------------------------------------------------------------------------------------------------
# resolve_region
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kecamatan", "kelurahan", "expected"),
    [
        ("Maulafa", "Bello", ("Maulafa", "Belo")),
        ("maulafa", "BELO", ("Maulafa", "Belo")),
        ("Kota Lama", "airmata", ("Kota Lama", "Air Mata")),
        ("kotalama", "Lai Lai Bisi Kopan", ("Kota Lama", "Lai-Lai Bisi Kopan")),
        ("53.71.04", "Fatululi", ("Oebobo", "Fatululi")),
        ("5371030", "53.71.04.1011", ("Oebobo", "Fatululi")),
        ("537103", "Oesapa Barat", ("Kelapa Lima", "Oesapa Barat")),
        (" Kelapa  Lima ", "kelapa lima", ("Kelapa Lima", "Kelapa Lima")),
    ],
)
def test_a_region_is_found_from_loosely_spelled_names_or_from_codes(
    kecamatan: str, kelurahan: str, expected: tuple[str, str]
) -> None:
    kec, kel = resolve_region(kota_kupang(), kecamatan, kelurahan)
    assert (kec.name, kel.name) == expected
    assert kel.kecamatan == kec


def test_a_kelurahan_that_is_not_in_the_given_kecamatan_is_refused_listing_the_kecamatan_s_kelurahan() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_region(kota_kupang(), "Oebobo", "Namosain")  # Namosain is in Alak

    (error,) = exc.value.errors
    assert (error.field, error.code) == ("kelurahan", "wilayah.unknown_kelurahan")
    assert "Fatululi" in error.message and "Oebufu" in error.message
    assert "Nunhila" not in error.message


def test_a_kelurahan_code_of_another_kecamatan_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_region(kota_kupang(), "Oebobo", "53.71.01.1001")
    assert [(e.field, e.code) for e in exc.value.errors] == [("kelurahan", "wilayah.unknown_kelurahan")]


def test_a_kecamatan_outside_kota_kupang_is_refused_listing_the_city_s_kecamatan() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_region(kota_kupang(), "Kupang Tengah", "Oesapa")

    (error,) = exc.value.errors
    assert (error.field, error.code) == ("kecamatan", "wilayah.unknown_kecamatan")
    for name in ("Alak", "Maulafa", "Kelapa Lima", "Oebobo", "Kota Raja", "Kota Lama"):
        assert name in error.message

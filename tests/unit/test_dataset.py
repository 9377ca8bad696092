"""Tests that the generated Kupang UMKM list is deterministic, passes the registry's validation and never repeats."""

from __future__ import annotations

import csv
import itertools
from datetime import date
from pathlib import Path

import pytest

from berdaya.dataset import COLUMNS, DEFAULT_NIB_SHARE, REFERENCE_DATE, generate, write_csv
from services.registry.domain.forms import RegistrationForm
from services.registry.domain.identity import normalise_phone
from services.registry.domain.registration import RegistrationRules, validate_registration
from services.registry.domain.scale import YouthRange
from shared.reference.wilayah import kota_kupang


@pytest.fixture(scope="module")
def many_rows() -> list[dict[str, str]]:
    return list(generate(200_000, seed=7))


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows() -> None:
    assert list(generate(500, seed=11)) == list(generate(500, seed=11))
    assert list(generate(500, seed=11)) != list(generate(500, seed=12))


def test_a_shorter_list_is_the_start_of_a_longer_one() -> None:
    assert list(generate(100)) == list(itertools.islice(generate(1_000), 100))


def test_every_row_has_the_registration_form_columns_as_text() -> None:
    assert COLUMNS == tuple(RegistrationForm.model_fields)
    for row in generate(1_000):
        assert tuple(row) == COLUMNS
        assert all(isinstance(v, str) for v in row.values())
        assert row["kbli_version"] == "2020"
        assert row["confirm_distinct"] == ""


def test_every_row_passes_the_registry_validation() -> None:
    rules = RegistrationRules(kota_kupang(), YouthRange())
    today = date.today()
    for row in generate(3_000, seed=3):
        new = validate_registration(RegistrationForm.model_validate(row), rules, today)
        assert new.scale in ("micro", "small", "medium")


def test_nik_phone_and_nib_are_never_repeated(many_rows: list[dict[str, str]]) -> None:
    niks = [r["owner_nik"] for r in many_rows]
    phones = [normalise_phone(r["phone"]) for r in many_rows]
    nibs = [r["nib"] for r in many_rows if r["nib"]]

    assert len(set(niks)) == len(niks)
    assert len(set(phones)) == len(phones)
    assert len(set(nibs)) == len(nibs)
    assert all(len(n) == 13 and n.isdigit() for n in nibs)


def test_most_niks_were_first_issued_in_kota_kupang_and_some_elsewhere(many_rows: list[dict[str, str]]) -> None:
    kupang = sum(r["owner_nik"].startswith("5371") for r in many_rows) / len(many_rows)
    elsewhere_in_ntt = sum(r["owner_nik"][:2] == "53" and r["owner_nik"][:4] != "5371" for r in many_rows)

    assert 0.65 < kupang < 0.85
    assert elsewhere_in_ntt > 0.1 * len(many_rows)


def test_the_nib_share_is_within_two_points_of_the_one_asked_for() -> None:
    for share in (DEFAULT_NIB_SHARE, 0.3, 0.95):
        rows = list(generate(50_000, seed=5, nib_share=share))
        assert abs(sum(bool(r["nib"]) for r in rows) / len(rows) - share) < 0.02


def test_between_a_fifth_and_a_third_of_owners_are_youth(many_rows: list[dict[str, str]]) -> None:
    youth = YouthRange()
    share = sum(youth.is_youth(date.fromisoformat(r["owner_birth_date"]), REFERENCE_DATE) for r in many_rows) / len(
        many_rows
    )
    assert 0.20 <= share <= 0.35


def test_most_owners_are_women_and_all_are_17_to_70(many_rows: list[dict[str, str]]) -> None:
    women = sum(r["owner_gender"] == "P" for r in many_rows) / len(many_rows)
    births = [date.fromisoformat(r["owner_birth_date"]) for r in many_rows]

    assert 0.5 < women < 0.6
    assert min(births) > date(REFERENCE_DATE.year - 71, REFERENCE_DATE.month, REFERENCE_DATE.day)
    assert max(births) <= date(REFERENCE_DATE.year - 17, REFERENCE_DATE.month, REFERENCE_DATE.day)


def test_all_six_kecamatan_appear_with_the_largest_ones_most(many_rows: list[dict[str, str]]) -> None:
    wilayah = kota_kupang()
    counts: dict[str, int] = {}
    for row in many_rows[:20_000]:
        kec = wilayah.find_kecamatan(row["kecamatan"])
        assert kec is not None
        assert wilayah.find_kelurahan(row["kelurahan"], kec) is not None
        counts[kec.name] = counts.get(kec.name, 0) + 1

    assert set(counts) == {k.name for k in wilayah.kecamatan}
    largest = min(counts["Oebobo"], counts["Maulafa"], counts["Kelapa Lima"])
    assert largest > max(counts["Kota Raja"], counts["Kota Lama"])


def test_flagship_products_get_their_kbli_codes(many_rows: list[dict[str, str]]) -> None:
    sei = [r for r in many_rows[:20_000] if r["business_name"].startswith(("Se'i Sapi", "Sei Babi", "Depot Se'i"))]
    tenun = [r for r in many_rows[:20_000] if r["business_name"].startswith("Tenun Ikat")]

    assert sei and {r["kbli_code"] for r in sei} == {"10130"}
    assert tenun and {r["kbli_code"] for r in tenun} == {"13122"}


def test_write_csv_writes_the_header_and_the_rows_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "kupang.csv"
    seen: list[int] = []

    written = write_csv(path, 25_000, seed=9, progress=seen.append)

    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert written == 25_000
    assert tuple(header) == COLUMNS
    assert len(rows) == 25_000
    assert dict(zip(COLUMNS, rows[0])) == next(generate(1, seed=9))
    assert seen == [10_000, 20_000, 25_000]


def test_a_count_or_nib_share_out_of_range_is_refused_before_any_row_or_file_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError):
        generate(10, nib_share=1.5)
    with pytest.raises(ValueError):
        write_csv(tmp_path / "none.csv", -1)
    assert not (tmp_path / "none.csv").exists()

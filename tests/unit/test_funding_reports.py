"""Tests sponsor reports: small counts suppressed, simulations that commit nothing, and KBLI sectors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.funding.domain import Candidate, ReportRow, rank_candidates, sector_of, simulate, suppressed_rows
from shared.contracts.funding import Earmarks

from .funding_fakes import TODAY, pledge, view


def ranked(n: int) -> list[Candidate]:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    return rank_candidates(Earmarks(), [view(registered_at=start + timedelta(days=i)) for i in range(n)], TODAY)


def test_counts_of_one_to_four_are_suppressed_with_their_amounts_and_zero_and_five_up_are_shown() -> None:
    rows = suppressed_rows({
        "Oebobo": (5, 25_000_000), "Alak": (1, 5_000_000), "Maulafa": (0, 0), "Kota Raja": (4, 20_000_000),
        "Kelapa Lima": (12, 60_000_000),
    })  # fmt: skip

    assert rows == [
        ReportRow("Alak", None, None, True),
        ReportRow("Kelapa Lima", 12, 60_000_000, False),
        ReportRow("Kota Raja", None, None, True),
        ReportRow("Maulafa", 0, 0, False),
        ReportRow("Oebobo", 5, 25_000_000, False),
    ]


@pytest.mark.parametrize(("count", "suppressed"), [(0, False), (1, True), (2, True), (3, True), (4, True), (5, False)])
def test_suppression_applies_exactly_to_counts_from_one_to_four(count, suppressed) -> None:
    [row] = suppressed_rows({"micro": (count, count * 1_000_000)})

    assert row.suppressed is suppressed
    assert (row.businesses, row.amount_rupiah) == ((None, None) if suppressed else (count, count * 1_000_000))


def test_no_groups_give_no_rows() -> None:
    assert suppressed_rows({}) == []


def test_simulating_a_fixed_pledge_funds_as_many_as_the_money_allows_and_changes_nothing() -> None:
    p = pledge(total_rupiah=50_000_000, amount_per_business_rupiah=5_000_000)
    before = replace(p)
    candidates = ranked(30)

    funded, amounts, remaining = simulate(p, candidates)

    assert funded == candidates[:10]
    assert amounts == [5_000_000] * 10
    assert remaining == 0
    assert p == before and p.reserved_rupiah == 0 and p.status == "open"


def test_simulating_a_capped_pledge_ends_with_the_remainder_when_it_reaches_the_minimum() -> None:
    p = pledge(amount_mode="capped", total_rupiah=12_000_000, amount_per_business_rupiah=5_000_000,
               min_offer_rupiah=2_000_000)  # fmt: skip

    funded, amounts, remaining = simulate(p, ranked(6))

    assert (len(funded), amounts, remaining) == (3, [5_000_000, 5_000_000, 2_000_000], 0)


def test_simulating_with_too_few_candidates_reports_the_money_left() -> None:
    p = pledge(reserved_rupiah=10_000_000)

    funded, amounts, remaining = simulate(p, ranked(3))

    assert (len(funded), sum(amounts), remaining) == (3, 15_000_000, 25_000_000)
    assert p.reserved_rupiah == 10_000_000


def test_simulating_without_candidates_funds_nobody() -> None:
    assert simulate(pledge(), []) == ([], [], 50_000_000)


@pytest.mark.parametrize(
    ("kbli", "sector"),
    [
        ("01111", "agriculture and fisheries"),
        ("03111", "agriculture and fisheries"),
        ("10130", "food and drink processing"),
        ("11050", "food and drink processing"),
        ("12011", "food and drink processing"),
        ("13912", "textiles, weaving and clothing"),
        ("15201", "textiles, weaving and clothing"),
        ("16291", "other manufacturing and crafts"),
        ("33121", "other manufacturing and crafts"),
        ("45401", "trade"),
        ("47111", "trade"),
        ("55110", "food service and lodging"),
        ("56102", "food service and lodging"),
        ("58110", "information and communication"),
        ("63122", "information and communication"),
        ("95210", "personal services and repair"),
        ("96111", "personal services and repair"),
        ("41011", "KBLI 41"),
        ("08101", "KBLI 08"),
        ("85131", "KBLI 85"),
    ],
)
def test_a_kbli_code_is_grouped_into_its_sector(kbli, sector) -> None:
    assert sector_of(kbli) == sector

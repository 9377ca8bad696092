"""Tests sponsor reports: small counts suppressed, simulations that commit nothing, and KBLI sectors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.funding.domain.offers import Candidate, rank_candidates, simulate
from services.funding.domain.reports import (
    SMALL_GROUPS,
    GroupRow,
    Holders,
    OfferGroup,
    Simulation,
    StateRow,
    grouped,
    reconciles,
    report,
    sector_of,
    simulation,
    suppressed,
    totals_of,
)
from shared.contracts.funding import Earmarks

from .funding_fakes import ALAK, MAULAFA, OEBOBO, TODAY, pledge, view

NAMES = {OEBOBO: "Oebobo", ALAK: "Alak", MAULAFA: "Maulafa"}


def ranked(n: int) -> list[Candidate]:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    return rank_candidates(Earmarks(), [view(registered_at=start + timedelta(days=i)) for i in range(n)], TODAY)


def pairs(group: str, count: int, amount: int = 5_000_000) -> list[tuple[str, int]]:
    return [(group, amount)] * count


def test_groups_of_one_to_four_are_suppressed_with_their_amounts_and_five_up_are_shown() -> None:
    rows = grouped([*pairs("Oebobo", 5), *pairs("Alak", 1), *pairs("Kota Raja", 4), *pairs("Kelapa Lima", 12)])

    assert rows == [
        GroupRow("Alak", None, None, True),
        GroupRow("Kelapa Lima", 12, 60_000_000, False),
        GroupRow("Kota Raja", None, None, True),
        GroupRow("Oebobo", 5, 25_000_000, False),
    ]


@pytest.mark.parametrize(("count", "hidden"), [(0, False), (1, True), (2, True), (3, True), (4, True), (5, False)])
def test_suppression_applies_exactly_to_counts_from_one_to_four(count, hidden) -> None:
    assert suppressed(count) is hidden
    if count:
        [row] = grouped(pairs("micro", count, 1_000_000))
        assert row.suppressed is hidden
        assert (row.businesses, row.amount_rupiah) == ((None, None) if hidden else (count, count * 1_000_000))


def test_no_groups_give_no_rows() -> None:
    assert grouped([]) == []


def test_a_report_shows_where_the_money_is_per_kecamatan_and_scale_hiding_small_groups() -> None:
    p = pledge(total_rupiah=100_000_000, reserved_rupiah=30_000_000, accepted_rupiah=10_000_000,
               disbursed_rupiah=5_000_000)  # fmt: skip
    groups = [
        OfferGroup("offered", OEBOBO, "micro", 6, 30_000_000),
        OfferGroup("accepted", ALAK, "micro", 2, 10_000_000),
        OfferGroup("disbursed", ALAK, "small", 1, 5_000_000),
        OfferGroup("declined", ALAK, "small", 9, 45_000_000),  # no money promised or paid: not in the rows
    ]

    r = report("CSR Bank NTT", [p], groups, NAMES, Holders({OEBOBO: 6, ALAK: 3}, {"micro": 8, "small": 1}))

    assert (r.subject, r.pledges, r.totals, r.reconciles) == ("CSR Bank NTT", [p.id], totals_of([p]), True)
    assert r.by_kecamatan == [
        StateRow("Alak", True, None, None, None, None),  # 3 businesses: suppressed with its amounts
        StateRow("Oebobo", False, 6, 30_000_000, 0, 0),
    ]
    assert r.by_scale == [
        StateRow("micro", False, 8, 30_000_000, 10_000_000, 0),
        StateRow("small", True, None, None, None, None),
    ]


def test_a_business_holding_offers_from_several_pledges_counts_once_and_so_stays_hidden() -> None:
    p, q = pledge(reserved_rupiah=15_000_000), pledge(accepted_rupiah=10_000_000)
    groups = [OfferGroup("offered", OEBOBO, "micro", 3, 15_000_000), OfferGroup("accepted", OEBOBO, "micro", 2, 10_000_000)]

    r = report("Bank NTT", [p, q], groups, NAMES, Holders({OEBOBO: 1}, {"micro": 1}))  # five offers, one business

    assert r.by_kecamatan == [StateRow("Oebobo", True, None, None, None, None)]
    assert r.by_scale == [StateRow("micro", True, None, None, None, None)]


def test_totals_reconcile_only_when_they_add_up_and_equal_the_offers_in_each_state() -> None:
    p = pledge(total_rupiah=20_000_000, reserved_rupiah=5_000_000, accepted_rupiah=5_000_000)
    matching = [
        OfferGroup("offered", OEBOBO, "micro", 1, 5_000_000), OfferGroup("accepted", OEBOBO, "micro", 1, 5_000_000),
    ]  # fmt: skip

    assert reconciles(totals_of([p]), matching) is True
    assert reconciles(totals_of([p]), matching[:1]) is False
    assert reconciles(totals_of([p]).model_copy(update={"remaining_rupiah": 1}), matching) is False


def test_a_simulation_groups_the_funded_by_kecamatan_and_sector_hiding_small_groups() -> None:
    funded = ranked(5) + rank_candidates(Earmarks(), [view(kecamatan_code=ALAK, kbli_code="95210")], TODAY)

    s = simulation(funded, [5_000_000] * 6, 20_000_000, 9, NAMES)

    assert (s.businesses_funded, s.amount_committed_rupiah, s.remaining_rupiah, s.eligible_businesses) == (
        6, 30_000_000, 20_000_000, 9,
    )  # fmt: skip
    assert s.by_kecamatan == [GroupRow("Oebobo", 5, 25_000_000, False), GroupRow(SMALL_GROUPS, None, None, True)]
    assert s.by_sector == [
        GroupRow("food and drink processing", 5, 25_000_000, False), GroupRow(SMALL_GROUPS, None, None, True),
    ]  # fmt: skip
    assert not s.suppressed


def test_a_simulation_names_no_small_group_and_shows_them_together_once_they_make_five() -> None:
    few = [view(kecamatan_code=code, kbli_code="95210") for code in (ALAK, ALAK, ALAK, MAULAFA, MAULAFA)]
    funded = ranked(5) + rank_candidates(Earmarks(), few, TODAY)

    s = simulation(funded, [5_000_000] * 10, 0, 10, NAMES)

    assert s.by_kecamatan == [GroupRow("Oebobo", 5, 25_000_000, False), GroupRow(SMALL_GROUPS, 5, 25_000_000, False)]


@pytest.mark.parametrize("eligible", [1, 2, 4])
def test_a_simulation_with_fewer_than_five_eligible_shows_no_figure_that_would_tell_who_ranks_first(eligible) -> None:
    funded = ranked(eligible)[:1]  # a budget for one: the one funded would be the first in rank

    s = simulation(funded, [5_000_000], 0, eligible, NAMES)

    assert s == Simulation(None, None, None, None, [], [], suppressed=True)


def test_a_simulation_with_no_one_eligible_says_so() -> None:
    s = simulation([], [], 50_000_000, 0, NAMES)

    assert (s.eligible_businesses, s.businesses_funded, s.remaining_rupiah, s.suppressed) == (0, 0, 50_000_000, False)


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

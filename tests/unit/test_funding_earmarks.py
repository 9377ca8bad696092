"""Tests funding's earmarks with their explanations, the readiness score and the ranking of candidates."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.funding.domain.earmarks import Check, eligible, evaluate
from services.funding.domain.offers import rank_candidates
from services.funding.domain.view import READINESS_RULES, BusinessView, rank_key, readiness
from shared.contracts.funding import Earmarks
from shared.reference.wita import WITA

from .funding_fakes import ALAK, MAULAFA, OEBOBO, TODAY, view

# ---------------------------------------------------------------------------------------------------------------
# Earmarks
# ---------------------------------------------------------------------------------------------------------------


def check(earmarks: Earmarks, business: BusinessView, name: str, today: date = TODAY) -> Check:
    [found] = [c for c in evaluate(earmarks, business, today) if c.earmark == name]
    return found


@pytest.mark.parametrize(
    ("earmarks", "name", "passing", "failing"),
    [
        (Earmarks(kecamatan_codes=(OEBOBO, MAULAFA)), "kecamatan",
         Check("kecamatan", f"{OEBOBO} or {MAULAFA}", OEBOBO, True),
         Check("kecamatan", f"{OEBOBO} or {MAULAFA}", ALAK, False)),
        (Earmarks(kbli_prefixes=("10", "56")), "kbli",
         Check("kbli", "starts with 10 or 56", "10130", True),
         Check("kbli", "starts with 10 or 56", "95210", False)),
        (Earmarks(scales=("micro",)), "scale",
         Check("scale", "micro", "micro", True),
         Check("scale", "micro", "small", False)),
        (Earmarks(youth_owned_only=True), "youth_owned",
         Check("youth_owned", "youth owner", "yes", True),
         Check("youth_owned", "youth owner", "no", False)),
        (Earmarks(women_owned_only=True), "women_owned",
         Check("women_owned", "woman owner", "yes", True),
         Check("women_owned", "woman owner", "no", False)),
        (Earmarks(nib_required=True), "nib",
         Check("nib", "issued", "issued", True),
         Check("nib", "issued", "applied", False)),
        (Earmarks(trainings_completed=("packaging",)), "training:packaging",
         Check("training:packaging", "completed", "completed", True),
         Check("training:packaging", "completed", "not completed", False)),
        (Earmarks(min_readiness=60), "min_readiness",
         Check("min_readiness", ">= 60", "65", True),
         Check("min_readiness", ">= 60", "20", False)),
    ],
)  # fmt: skip
def test_each_earmark_passes_or_fails_with_the_business_value_in_its_check(earmarks, name, passing, failing) -> None:
    good = view(kecamatan_code=OEBOBO, kbli_code="10130", scale="micro", trainings=frozenset({"packaging"}))
    bad = view(kecamatan_code=ALAK, kbli_code="95210", scale="small", youth_owned=False, women_owned=False,
               nib_status="applied")  # fmt: skip

    assert readiness(good, TODAY).score == 65 and readiness(bad, TODAY).score == 20
    assert check(earmarks, good, name) == passing
    assert check(earmarks, bad, name) == failing
    assert eligible(earmarks, good, TODAY) is True
    assert eligible(earmarks, bad, TODAY) is False


def test_empty_earmarks_admit_any_active_business_and_explain_only_that_it_is_active() -> None:
    plain = view(kecamatan_code=ALAK, kbli_code="95210", scale="medium", youth_owned=False,
                 women_owned=False, nib_status="none", annual_sales_rupiah=None)  # fmt: skip

    assert evaluate(Earmarks(), plain, TODAY) == [Check("business_active", "active", "active", True)]
    assert eligible(Earmarks(), plain, TODAY) is True


def test_a_closed_business_fails_business_active_whatever_else_it_meets() -> None:
    closed = view(status="closed")

    checks = evaluate(Earmarks(kecamatan_codes=(OEBOBO,)), closed, TODAY)

    assert checks[0] == Check("business_active", "active", "closed", False)
    assert checks[1].passed is True
    assert eligible(Earmarks(), closed, TODAY) is False


def test_the_youth_earmark_follows_the_registrys_flag_whatever_the_day() -> None:
    youth_only = Earmarks(youth_owned_only=True)
    far_ahead = date(2040, 1, 1)  # funding computes no ageing: the registry re-publishes when the flag changes

    assert eligible(youth_only, view(youth_owned=True), TODAY) is True
    assert eligible(youth_only, view(youth_owned=True), far_ahead) is True
    assert check(youth_only, view(youth_owned=False), "youth_owned") == Check("youth_owned", "youth owner", "no", False)
    assert eligible(youth_only, view(youth_owned=False), TODAY) is False


@pytest.mark.parametrize(
    ("prefixes", "code", "passes"),
    [
        (("1",), "10130", True),
        (("1",), "13912", True),
        (("101",), "10130", True),
        (("101",), "10792", False),
        (("10130",), "10130", True),
        (("10131",), "10130", False),
        (("47", "56"), "56102", True),
        (("56",), "05610", False),
    ],
)
def test_kbli_earmarks_match_the_code_by_prefix(prefixes, code, passes) -> None:
    assert eligible(Earmarks(kbli_prefixes=prefixes), view(kbli_code=code), TODAY) is passes


def test_every_required_training_must_be_completed_and_each_is_its_own_check() -> None:
    earmarks = Earmarks(trainings_completed=("halal_certification", "packaging"))
    partly = view(trainings=frozenset({"packaging", "digital_marketing"}))
    fully = view(trainings=frozenset({"packaging", "halal_certification"}))

    assert [(c.earmark, c.passed) for c in evaluate(earmarks, partly, TODAY)[1:]] == [
        ("training:halal_certification", False), ("training:packaging", True),
    ]  # fmt: skip
    assert eligible(earmarks, partly, TODAY) is False
    assert eligible(earmarks, fully, TODAY) is True


def test_min_readiness_compares_against_the_readiness_score_of_the_day() -> None:
    earmarks = Earmarks(min_readiness=55)
    # Registered 2025-03-11 10.00 WITA: 45 today, 55 tomorrow when a year's track record adds its points.
    business = view(registered_at=datetime(2025, 3, 11, 2, 0, tzinfo=UTC))

    assert check(earmarks, business, "min_readiness") == Check("min_readiness", ">= 55", "45", False)
    assert check(earmarks, business, "min_readiness", TODAY + timedelta(days=1)) == Check(
        "min_readiness", ">= 55", "55", True
    )


def test_a_business_failing_several_earmarks_has_each_failure_explained() -> None:
    earmarks = Earmarks(kecamatan_codes=(OEBOBO,), women_owned_only=True, nib_required=True)
    business = view(kecamatan_code=ALAK, women_owned=False, nib_status="none")

    failed = [c.earmark for c in evaluate(earmarks, business, TODAY) if not c.passed]

    assert failed == ["kecamatan", "women_owned", "nib"]


# ---------------------------------------------------------------------------------------------------------------
# Readiness
# ---------------------------------------------------------------------------------------------------------------


def test_the_readiness_rules_document_every_part_and_add_up_to_one_hundred() -> None:
    assert [name for name, _, _ in READINESS_RULES] == [
        "nib", "trainings", "assessment", "sales_reported", "youth", "track_record"]  # fmt: skip
    assert sum(points for _, points, _ in READINESS_RULES) == 100
    assert set(readiness(view(), TODAY).parts) == {name for name, _, _ in READINESS_RULES}


def test_the_best_prepared_business_scores_every_rule_in_full() -> None:
    best = view(trainings=frozenset({"packaging", "product_quality", "halal_certification"}), assessment=100)

    score = readiness(best, TODAY)

    assert score.parts == {name: points for name, points, _ in READINESS_RULES}
    assert score.score == 100


def test_a_business_with_nothing_to_show_scores_zero() -> None:
    bare = view(
        nib_status="none", annual_sales_rupiah=None, youth_owned=False, registered_at=datetime(2026, 3, 1, tzinfo=UTC)
    )

    assert readiness(bare, TODAY).score == 0
    assert set(readiness(bare, TODAY).parts.values()) == {0}


@pytest.mark.parametrize(
    ("change", "part", "points"),
    [
        ({"nib_status": "issued"}, "nib", 25),
        ({"nib_status": "applied"}, "nib", 0),
        ({"nib_status": "rejected"}, "nib", 0),
        ({"trainings": frozenset({"packaging"})}, "trainings", 10),
        ({"trainings": frozenset({"packaging", "halal_certification"})}, "trainings", 20),
        ({"trainings": frozenset({"packaging", "product_quality", "halal_certification"})}, "trainings", 30),
        ({"trainings": frozenset({"packaging", "product_quality", "halal_certification", "digital_marketing"})},
         "trainings", 30),
        ({"assessment": None}, "assessment", 0),
        ({"assessment": 0}, "assessment", 0),
        ({"assessment": 70}, "assessment", 10),
        ({"assessment": 100}, "assessment", 15),
        ({"annual_sales_rupiah": 120_000_000}, "sales_reported", 10),
        ({"annual_sales_rupiah": None}, "sales_reported", 0),
        ({"youth_owned": True}, "youth", 10),
        ({"youth_owned": False}, "youth", 0),
        ({"registered_at": datetime(2025, 3, 10, 2, 0, tzinfo=UTC)}, "track_record", 10),
        ({"registered_at": datetime(2025, 3, 11, 2, 0, tzinfo=UTC)}, "track_record", 0),
    ],
)  # fmt: skip
def test_each_readiness_part_scores_as_its_rule_says_and_the_total_is_their_sum(change, part, points) -> None:
    business = view(**change)

    score = readiness(business, TODAY)

    assert score.parts[part] == points
    assert score.score == sum(score.parts.values())


def test_four_trainings_are_capped_at_thirty_points() -> None:
    four = view(trainings=frozenset({"packaging", "product_quality", "halal_certification", "digital_marketing"}))

    assert readiness(four, TODAY).parts["trainings"] == 30
    assert readiness(four, TODAY).score == 85  # the assessment's 15 are still to earn


def test_track_record_counts_the_registration_day_in_kupang_whatever_zone_the_time_is_given_in() -> None:
    # 2025-03-11 00.30 WITA is 2025-03-10 16.30 UTC: on 2026-03-10 in Kupang, 364 days have passed.
    in_wita = datetime(2025, 3, 11, 0, 30, tzinfo=WITA)
    in_utc = in_wita.astimezone(UTC)

    assert in_wita == in_utc
    assert readiness(view(registered_at=in_wita), TODAY).parts["track_record"] == 0
    assert readiness(view(registered_at=in_utc), TODAY).parts["track_record"] == 0


# ---------------------------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------------------------


def test_a_business_never_funded_ranks_before_a_funded_one_even_with_lower_readiness() -> None:
    funded = view(funded_count=1)
    never = view(nib_status="none")

    assert rank_key(never, 30) < rank_key(funded, 100)


def test_among_the_never_funded_higher_readiness_ranks_first() -> None:
    assert rank_key(view(), 70) < rank_key(view(), 55)


def test_at_equal_readiness_the_earlier_registration_ranks_first() -> None:
    earlier = view(registered_at=datetime(2023, 5, 1, tzinfo=UTC))
    later = view(registered_at=datetime(2024, 5, 1, tzinfo=UTC))

    assert rank_key(earlier, 55) < rank_key(later, 55)


def test_at_equal_everything_the_id_decides_so_the_order_is_deterministic() -> None:
    low = view(business_id=uuid.UUID("00000000-0000-4000-8000-000000000001"))
    high = view(business_id=uuid.UUID("ffffffff-0000-4000-8000-000000000001"))

    assert rank_key(low, 55) < rank_key(high, 55)


def test_ranking_candidates_gives_the_same_order_whatever_order_they_come_in() -> None:
    registered = datetime(2024, 1, 15, 1, 0, tzinfo=UTC)
    businesses = [
        view(funded_count=1, trainings=frozenset({"packaging", "product_quality", "halal_certification"})),
        *[view(registered_at=registered) for _ in range(5)],  # equal but for id
        view(trainings=frozenset({"packaging"})),  # 70
        view(registered_at=registered - timedelta(days=30)),  # 55, earlier
        view(kecamatan_code=ALAK),  # not eligible
    ]
    earmarks = Earmarks(kecamatan_codes=(OEBOBO,))
    rng = random.Random(20260310)

    orders = set()
    for _ in range(20):
        shuffled = businesses[:]
        rng.shuffle(shuffled)
        orders.add(tuple(c.business.business_id for c in rank_candidates(earmarks, shuffled, TODAY)))

    [order] = orders
    ranked = rank_candidates(earmarks, businesses, TODAY)
    assert [c.rank for c in ranked] == list(range(1, 9))
    assert order[0] == businesses[6].business_id
    assert order[1] == businesses[7].business_id
    assert list(order[2:7]) == sorted((b.business_id for b in businesses[1:6]), key=str)
    assert order[7] == businesses[0].business_id
    assert businesses[8].business_id not in order


def test_eligible_agrees_with_every_check_passing():
    """`eligible` short-circuits for speed; it must give the answer of `evaluate` for every kind of earmark."""
    import itertools

    earmark_sets = [
        Earmarks(), Earmarks(kecamatan_codes=("53.71.04",)), Earmarks(kbli_prefixes=("10", "56")), Earmarks(scales=("small",)),
        Earmarks(youth_owned_only=True), Earmarks(women_owned_only=True), Earmarks(nib_required=True),
        Earmarks(trainings_completed=("packaging",)), Earmarks(min_readiness=40),
        Earmarks(kecamatan_codes=("53.71.04",), kbli_prefixes=("10",), nib_required=True, women_owned_only=True,
                 youth_owned_only=True, trainings_completed=("packaging",), min_readiness=30),
    ]  # fmt: skip
    businesses = [
        view(status=status, kecamatan_code=kec, kbli_code=kbli, nib_status=nib, youth_owned=youth, women_owned=women,
             trainings=frozenset(trainings))
        for status, kec, kbli, nib, youth, women, trainings in itertools.product(
            ("active", "closed"), ("53.71.04", "53.71.01"), ("10130", "47112"), ("issued", "none"), (True, False),
            (True, False), ((), ("packaging",)))
    ]  # fmt: skip
    for earmarks in earmark_sets:
        for business in businesses:
            expected = all(c.passed for c in evaluate(earmarks, business, TODAY))
            assert eligible(earmarks, business, TODAY) is expected, (earmarks, business)

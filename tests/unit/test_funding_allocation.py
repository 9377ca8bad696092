"""Tests how a pledge's money is allocated to ranked candidates: never more than the pledge, in rank order."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.funding.domain.offers import (
    Candidate,
    Offer,
    accept,
    allocate,
    decline,
    disburse,
    expire,
    rank_candidates,
    release,
    settle_status,
)
from services.funding.domain.pledges import Pledge
from shared.contracts.funding import Earmarks
from shared.errors import Conflict

from .funding_fakes import NOW, TODAY, pledge, view


def candidates(n: int) -> list[Candidate]:
    """n eligible businesses ranked 1..n (each registered a day after the one before)."""
    start = datetime(2023, 1, 1, tzinfo=UTC)
    return rank_candidates(Earmarks(), [view(registered_at=start + timedelta(days=i)) for i in range(n)], TODAY)


def assert_money_adds_up(p: Pledge, offers: list[Offer] = ()) -> None:
    assert min(p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah, p.remaining_rupiah) >= 0
    assert p.reserved_rupiah + p.accepted_rupiah + p.disbursed_rupiah <= p.total_rupiah
    assert p.total_rupiah == p.reserved_rupiah + p.accepted_rupiah + p.disbursed_rupiah + p.remaining_rupiah
    if offers:
        by_status = {
            s: sum(o.amount_rupiah for o in offers if o.status == s) for s in ("offered", "accepted", "disbursed")
        }
        assert (p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah) == (
            by_status["offered"], by_status["accepted"], by_status["disbursed"],
        )  # fmt: skip


def test_a_fixed_pledge_offers_exactly_as_many_fixed_amounts_as_it_can_pay_for() -> None:
    p = pledge(total_rupiah=50_000_000, amount_per_business_rupiah=5_000_000)
    ranked = candidates(30)

    after, offers = allocate(p, ranked, NOW, 14)

    assert len(offers) == 10
    assert {o.amount_rupiah for o in offers} == {5_000_000}
    assert [o.business_id for o in offers] == [c.business.business_id for c in ranked[:10]]
    assert (after.status, after.reserved_rupiah, after.remaining_rupiah) == ("exhausted", 50_000_000, 0)
    assert_money_adds_up(after, offers)


def test_a_fixed_pledge_leaves_a_remainder_too_small_for_one_more_offer_unspent() -> None:
    p = pledge(total_rupiah=12_000_000, amount_per_business_rupiah=5_000_000)

    after, offers = allocate(p, candidates(5), NOW, 14)

    assert [o.amount_rupiah for o in offers] == [5_000_000, 5_000_000]
    assert (after.status, after.remaining_rupiah) == ("exhausted", 2_000_000)


def test_a_capped_pledge_offers_the_remainder_last_when_it_is_at_least_the_minimum_offer() -> None:
    p = pledge(amount_mode="capped", total_rupiah=12_000_000, amount_per_business_rupiah=5_000_000,
               min_offer_rupiah=2_000_000)  # fmt: skip

    after, offers = allocate(p, candidates(5), NOW, 14)

    assert [o.amount_rupiah for o in offers] == [5_000_000, 5_000_000, 2_000_000]
    assert (after.status, after.reserved_rupiah, after.remaining_rupiah) == ("exhausted", 12_000_000, 0)


def test_a_capped_pledge_keeps_a_remainder_below_the_minimum_offer() -> None:
    p = pledge(amount_mode="capped", total_rupiah=12_000_000, amount_per_business_rupiah=5_000_000,
               min_offer_rupiah=3_000_000)  # fmt: skip

    after, offers = allocate(p, candidates(5), NOW, 14)

    assert [o.amount_rupiah for o in offers] == [5_000_000, 5_000_000]
    assert (after.status, after.remaining_rupiah) == ("exhausted", 2_000_000)


def test_a_pledge_with_fewer_candidates_than_money_stays_open_with_the_rest() -> None:
    after, offers = allocate(pledge(), candidates(3), NOW, 14)

    assert len(offers) == 3
    assert (after.status, after.reserved_rupiah, after.remaining_rupiah) == ("open", 15_000_000, 35_000_000)


@pytest.mark.parametrize(
    "window",
    [(date(2026, 3, 11), date(2026, 6, 30)), (date(2026, 1, 1), date(2026, 3, 9))],
    ids=["not yet open", "already ended"],
)
def test_a_pledge_outside_its_window_offers_nothing(window) -> None:
    p = pledge(valid_from=window[0], valid_until=window[1])

    after, offers = allocate(p, candidates(5), NOW, 14)

    assert offers == []
    assert after.reserved_rupiah == 0


def test_the_window_is_judged_by_the_day_in_kupang() -> None:
    p = pledge(valid_from=date(2026, 3, 11), valid_until=date(2026, 6, 30))
    # 2026-03-10 16.30 UTC is already 2026-03-11 00.30 in Kupang.
    after, offers = allocate(p, candidates(1), datetime(2026, 3, 10, 16, 30, tzinfo=UTC), 14)

    assert len(offers) == 1
    assert after.reserved_rupiah == 5_000_000


def test_a_closed_pledge_offers_nothing_and_stays_closed() -> None:
    after, offers = allocate(pledge(status="closed"), candidates(3), NOW, 14)

    assert (offers, after.status) == ([], "closed")


def test_offers_record_their_rank_readiness_expiry_and_why() -> None:
    ranked = candidates(3)
    ids = iter(uuid.UUID(int=i) for i in range(1, 10))

    _, offers = allocate(pledge(), ranked, NOW, 14, new_id=lambda: next(ids))

    assert [o.id for o in offers] == [uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)]
    assert [o.rank for o in offers] == [1, 2, 3]
    assert all(
        o.status == "offered" and o.offered_at == NOW and o.expires_at == NOW + timedelta(days=14) for o in offers
    )
    assert [o.readiness for o in offers] == [c.readiness.score for c in ranked]
    assert offers[1].ranking == {
        "rank": 2, "funded_before": False, "readiness": ranked[1].readiness.score,
        "readiness_parts": ranked[1].readiness.parts, "registered_at": ranked[1].business.registered_at.isoformat(),
        "evaluated_on": "2026-03-10",
    }  # fmt: skip


def test_an_offer_to_the_only_candidate_has_no_rank() -> None:
    _, [offer] = allocate(pledge(), candidates(1), NOW, 14)

    assert offer.rank is None
    assert offer.ranking["rank"] == 1


def test_the_reserved_counter_equals_the_sum_of_the_offers() -> None:
    p = pledge(amount_mode="capped", total_rupiah=23_500_000, amount_per_business_rupiah=4_000_000,
               min_offer_rupiah=1_000_000)  # fmt: skip

    after, offers = allocate(p, candidates(10), NOW, 14)

    assert after.reserved_rupiah == sum(o.amount_rupiah for o in offers) == 23_500_000
    assert offers[-1].amount_rupiah == 3_500_000


def test_allocating_again_after_an_allocation_only_spends_what_remains() -> None:
    ranked = candidates(12)
    first, offers = allocate(pledge(total_rupiah=30_000_000), ranked[:4], NOW, 14)

    second, more = allocate(first, ranked[4:], NOW, 14)

    assert (len(offers), len(more)) == (4, 2)
    assert (second.reserved_rupiah, second.status) == (30_000_000, "exhausted")


@pytest.mark.parametrize(
    ("before", "reserved", "status"),
    [("open", 50_000_000, "exhausted"), ("exhausted", 45_000_000, "open"), ("closed", 45_000_000, "closed")],
)
def test_settling_the_status_follows_whether_another_offer_is_affordable(before, reserved, status) -> None:
    assert settle_status(pledge(status=before, reserved_rupiah=reserved)).status == status


# ---------------------------------------------------------------------------------------------------------------
# Property: whatever happens, the money adds up and the pledge is never over-allocated
# ---------------------------------------------------------------------------------------------------------------


def random_pledge(rng: random.Random) -> Pledge:
    mode = rng.choice(["fixed", "capped"])
    per = rng.choice([250_000, 1_000_000, 2_500_000, 5_000_000, 7_500_000]) + rng.randrange(0, 1000)
    total = rng.randrange(per, per * 25 + 1)
    minimum = per if mode == "fixed" else rng.randrange(1, per + 1)
    return pledge(total_rupiah=total, amount_mode=mode, amount_per_business_rupiah=per, min_offer_rupiah=minimum)


def test_for_many_random_pledges_allocation_never_over_allocates() -> None:
    rng = random.Random(7171)
    for _ in range(500):
        p = random_pledge(rng)

        after, offers = allocate(p, candidates(rng.randrange(0, 40)), NOW, 14)

        assert_money_adds_up(after, offers)
        assert all(o.amount_rupiah <= p.amount_per_business_rupiah for o in offers)
        smallest = p.min_offer_rupiah if p.amount_mode == "capped" else p.amount_per_business_rupiah
        assert all(o.amount_rupiah >= smallest for o in offers)
        assert (after.status == "exhausted") == (after.next_offer_amount() is None)
        assert len({o.business_id for o in offers}) == len(offers)


def test_for_many_random_offer_lives_the_counters_match_the_offers_and_never_exceed_the_total() -> None:
    rng = random.Random(5371)
    succeeded: dict[str, int] = {}
    for _ in range(200):
        p = random_pledge(rng)
        pool = candidates(rng.randrange(1, 30))
        p, offers = allocate(p, pool[: rng.randrange(1, len(pool) + 1)], NOW, 14)
        offered_to = {o.business_id for o in offers}
        now = NOW
        for _ in range(40):
            now += timedelta(days=rng.choice([0, 1, 3]))
            if not offers:
                break
            i = rng.randrange(len(offers))
            offer = offers[i]
            action = rng.choice(["accept", "decline", "expire", "withdraw", "disburse", "refill"])
            try:
                if action == "accept":
                    p, offer = accept(p, offer, view(), now)
                elif action == "decline":
                    p, offer = decline(p, offer, "", now)
                elif action == "expire":
                    p, offer = expire(p, offer, now)
                elif action == "withdraw":
                    p, offer = release(p, offer, "withdrawn", now, "test")
                elif action == "disburse":
                    p, offer = disburse(p, offer, "TRF-1", now)
                else:
                    rest = [c for c in pool if c.business.business_id not in offered_to]
                    p, new = allocate(p, rest, now, 14)
                    offers += new
                    offered_to |= {o.business_id for o in new}
                succeeded[action] = succeeded.get(action, 0) + 1
            except Conflict:
                pass  # an action this offer's state refuses changes nothing
            offers[i] = offer
            assert_money_adds_up(p, offers)
    # The walk really went through every kind of step.
    assert set(succeeded) == {"accept", "decline", "expire", "withdraw", "disburse", "refill"}

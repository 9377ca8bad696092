"""Tests funding over longer stories: random walks through the use cases, event orderings, interleaved transactions."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any


from services.funding import domain, handlers
from services.funding.domain import Pledge, PledgeForm
from shared.contracts.funding import FundingMatched
from shared.errors import Conflict, InvalidInput, NotFound
from shared.reference.wita import today_in_kupang

from .funding_fakes import (
    ALAK,
    NOW,
    OEBOBO,
    SPONSOR_ID,
    FakeFundingStore,
    FundingWorld,
    business_closed,
    nib_issued,
    training_completed,
)

START = datetime(2023, 1, 1, 1, 0, tzinfo=UTC)
PROGRAMMES = ("packaging", "product_quality", "halal_certification", "digital_marketing")


def assert_consistent(world: FundingWorld) -> None:
    """What must hold after every committed use case."""
    store = world.store
    today = today_in_kupang(world.clock())
    for p in store.pledges.values():
        offers = store.offers_of_pledge(p.id)
        sums = {s: sum(o.amount_rupiah for o in offers if o.status == s) for s in ("offered", "accepted", "disbursed")}
        assert (p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah) == (
            sums["offered"], sums["accepted"], sums["disbursed"],
        ), f"pledge {p.id}'s counters disagree with its offers"  # fmt: skip
        assert p.reserved_rupiah + p.accepted_rupiah + p.disbursed_rupiah <= p.total_rupiah
        assert p.total_rupiah == p.reserved_rupiah + p.accepted_rupiah + p.disbursed_rupiah + p.remaining_rupiah
        if p.status != "closed":
            assert p.status == ("exhausted" if p.next_offer_amount() is None else "open")
        if p.status != "closed" and p.open_on(today) and p.matched_at is not None and p.next_offer_amount() is not None:
            # Greedy filling: a pledge that can still afford an offer has one out to every eligible business.
            for b in store.businesses.values():
                if domain.eligible(p.earmarks, b, today):
                    assert store.offer_to(p.id, b.business_id) is not None, "an eligible business was passed over"
    for b in store.businesses.values():
        mine = [o for o in store.offers.values() if o.business_id == b.business_id]
        assert b.funded_count == sum(o.status in ("accepted", "disbursed") for o in mine)
        if b.status == "closed":
            assert not [o for o in mine if o.status in ("offered", "accepted")]


def random_form(rng: random.Random, today: date) -> PledgeForm:
    per = rng.choice([1_000_000, 2_500_000, 5_000_000])
    mode = rng.choice(["fixed", "capped"])
    earmarks: dict[str, Any] = {}
    if rng.random() < 0.4:
        earmarks["kecamatan"] = [rng.choice(["Oebobo", "Alak"])]
    if rng.random() < 0.3:
        earmarks["nib_required"] = True
    if rng.random() < 0.3:
        earmarks["trainings_completed"] = [rng.choice(PROGRAMMES)]
    if rng.random() < 0.2:
        earmarks["kbli"] = ["10"]
    start = today + timedelta(days=rng.choice([-5, 0, 0, 0, 2]))
    return PledgeForm.model_validate({
        "sponsor_id": str(SPONSOR_ID), "title": "Pledge acak", "instrument": "grant",
        "total_rupiah": per * rng.randrange(1, 6) + rng.choice([0, per // 2]), "amount_mode": mode,
        "amount_per_business_rupiah": per, "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(days=rng.randrange(3, 30))).isoformat(), "earmarks": earmarks,
    })  # fmt: skip


async def bump(
    world: FundingWorld, versions: dict[uuid.UUID, int], business_id: uuid.UUID, make: Callable[[uuid.UUID, int], Any]
) -> None:
    """Consume the business's next registry event, one version up."""
    versions[business_id] += 1
    await world.consume(make(business_id, versions[business_id]))


async def test_random_walks_through_the_use_cases_keep_the_money_and_the_offers_consistent() -> None:
    done: dict[str, int] = {}
    for seed in range(30):
        rng = random.Random(seed)
        world = FundingWorld()
        await world.add_sponsor()
        versions: dict[uuid.UUID, int] = {}

        for _ in range(60):
            action = rng.choice(["register", "register", "nib", "training", "close_business", "pledge", "accept",
                                 "accept", "decline", "disburse", "time", "close_pledge"])  # fmt: skip
            offers = list(world.store.offers.values())
            businesses = [b for b in world.store.businesses.values() if b.status == "active"]
            try:
                if action == "register":
                    business_id = await world.register(
                        kecamatan_code=rng.choice([OEBOBO, ALAK]), kbli_code=rng.choice(["10130", "95210"]),
                        nib_status=rng.choice(["issued", "applied", "none"]),
                        registered_at=START + timedelta(days=rng.randrange(0, 900)),
                    )  # fmt: skip
                    versions[business_id] = 1
                elif action == "nib" and businesses:
                    await bump(world, versions, rng.choice(businesses).business_id, nib_issued)
                elif action == "training" and businesses:
                    await world.consume(training_completed(rng.choice(businesses).business_id, rng.choice(PROGRAMMES)))
                elif action == "close_business" and businesses and rng.random() < 0.5:
                    await bump(world, versions, rng.choice(businesses).business_id, business_closed)
                elif action == "pledge":
                    p = await handlers.make_pledge(random_form(rng, today_in_kupang(world.clock())), world.uow(),
                                                   world.deps)  # fmt: skip
                    await world.match(p.id)
                elif action == "accept" and offers:
                    await handlers.accept_offer(rng.choice(offers).id, world.uow(), world.deps)
                elif action == "decline" and offers:
                    await handlers.decline_offer(rng.choice(offers).id, "", world.uow(), world.deps)
                elif action == "disburse" and offers:
                    await handlers.disburse_offer(rng.choice(offers).id, "TRF", world.uow(), world.deps)
                elif action == "time":
                    world.clock.set(world.clock() + timedelta(days=rng.choice([1, 2, 5, 9])))
                    await handlers.expire_due_offers(world, world.deps)
                    await handlers.follow_pledge_windows(world, world.deps)
                elif action == "close_pledge" and world.store.pledges and rng.random() < 0.3:
                    await handlers.close_pledge(rng.choice(list(world.store.pledges)), "", world.uow(), world.deps)
                else:
                    continue
                done[action] = done.get(action, 0) + 1
            except (Conflict, InvalidInput, NotFound):
                pass  # refused: the state must be as before, which the checks below also cover
            assert_consistent(world)
    # The walks really exercised every use case, many times.
    assert all(done.get(a, 0) >= 10 for a in ("register", "nib", "training", "close_business", "pledge", "accept",
                                              "decline", "disburse", "time", "close_pledge"))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Event orderings
# ---------------------------------------------------------------------------------------------------------------


async def test_a_business_registered_before_a_new_pledge_is_first_matched_does_not_jump_the_ranking() -> None:
    world = FundingWorld()
    await world.add_sponsor()
    best = await world.register(registered_at=START)
    await world.consume(training_completed(best, "packaging"))  # readiness 70
    form = PledgeForm.model_validate({
        "sponsor_id": str(SPONSOR_ID), "title": "Satu hibah", "instrument": "grant", "total_rupiah": 5_000_000,
        "amount_per_business_rupiah": 5_000_000, "valid_from": "2026-03-10", "valid_until": "2026-06-30",
    })  # fmt: skip
    p = await handlers.make_pledge(form, world.uow(), world.deps)
    # A weaker business (readiness 20) is registered while CSRPledged is still on its way back from Kafka.
    weaker = await world.register(nib_status="none", youth_owned=False, registered_at=NOW)

    await world.match(p.id)

    assert [e.business_id for e in world.published if isinstance(e, FundingMatched)] == [best]
    assert world.store.offer_to(p.id, weaker) is None


# ---------------------------------------------------------------------------------------------------------------
# Interleaved transactions
# ---------------------------------------------------------------------------------------------------------------


class InterleavingStore(FakeFundingStore):
    """A store whose next lock_pledges first lets `meanwhile` run and commit, as a row lock makes a transaction wait
    for another that already holds the pledge."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def lock_pledges(self, pledge_ids: Sequence[uuid.UUID]) -> list[Pledge]:
        if self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            await run()
        return await super().lock_pledges(pledge_ids)


async def test_a_decline_committed_while_a_business_closure_waits_for_the_pledge_lock_is_not_released_twice() -> None:
    store = InterleavingStore()
    world = FundingWorld(store=store)
    await world.add_sponsor()
    closing, second, third, fourth = [await world.register(registered_at=START + timedelta(days=i)) for i in range(4)]
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    offer = store.offer_to(p.id, closing)

    async def owner_declines() -> None:
        await handlers.decline_offer(offer.id, "", world.uow(), world.deps)

    store.meanwhile = owner_declines
    await world.consume(business_closed(closing, 2))

    assert store.offers[offer.id].status == "declined"
    assert store.offer_to(p.id, second).status == store.offer_to(p.id, third).status == "offered"
    stored = store.pledges[p.id]
    offered = sum(o.amount_rupiah for o in store.offers_of_pledge(p.id, "offered"))
    assert offered == stored.reserved_rupiah <= stored.total_rupiah
    assert store.offer_to(p.id, fourth) is None

"""Tests funding over longer stories: random walks through the use cases, event orderings, interleaved transactions."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.funding import handlers
from services.funding.domain.earmarks import eligible
from services.funding.domain.pledges import Pledge, PledgeForm
from shared.contracts import EventPayload
from shared.contracts.funding import Earmarks, FundingMatched
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.reference.wita import today_in_kupang

from .funding_fakes import (
    ALAK,
    ALAK_OFFICER,
    MAULAFA,
    NOW,
    OEBOBO,
    OFFICER,
    OTHER_SPONSOR,
    SPONSOR,
    SPONSOR_ID,
    FakeFundingStore,
    FundingWorld,
    business_closed,
    delivery,
    nib_applied,
    nib_issued,
    nib_rejected,
    registered,
    training_completed,
    updated,
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
                if eligible(p.earmarks, b, today):
                    assert store.offer_to(p.id, b.business_id) is not None, "an eligible business was passed over"
    for b in store.businesses.values():
        mine = [o for o in store.offers.values() if o.business_id == b.business_id]
        assert b.funded_count == sum(o.status in ("accepted", "disbursed") for o in mine)  # as the view reads it
        if b.status == "closed":  # an accepted offer stays, for its sponsor to pay or withdraw
            assert not [o for o in mine if o.status == "offered"]


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
    if rng.random() < 0.3:
        # Around the track record's 10 points, so passing time alone makes some businesses eligible.
        earmarks["min_readiness"] = rng.choice([30, 55])
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
        trainings: dict[uuid.UUID, int] = {}  # each business's participant version

        for _ in range(60):
            action = rng.choice(["register", "register", "nib", "training", "close_business", "pledge", "accept",
                                 "accept", "decline", "disburse", "withdraw", "time", "close_pledge",
                                 "intrude"])  # fmt: skip
            offers = list(world.store.offers.values())
            businesses = [b for b in world.store.businesses.values() if b.status == "active"]
            try:
                if action == "register":
                    business_id = await world.register(
                        kecamatan_code=rng.choice([OEBOBO, ALAK]), kbli_code=rng.choice(["10130", "95210"]),
                        nib_status=rng.choice(["issued", "applied", "none"]),
                        # Some a year old within the walk's days, so their readiness grows as time passes.
                        registered_at=rng.choice([START + timedelta(days=rng.randrange(0, 900)),
                                                  NOW - timedelta(days=rng.randrange(340, 366))]),
                    )  # fmt: skip
                    versions[business_id] = 1
                elif action == "nib" and businesses:
                    await bump(world, versions, rng.choice(businesses).business_id, nib_issued)
                elif action == "training" and world.store.businesses:
                    # Any business, closed or not yet known too: training knows nothing of the registry's status.
                    business_id = rng.choice([*world.store.businesses, uuid.uuid4()])
                    trainings[business_id] = trainings.get(business_id, 0) + 1
                    await world.consume(training_completed(business_id, rng.choice(PROGRAMMES), trainings[business_id]))
                elif action == "close_business" and businesses and rng.random() < 0.5:
                    await bump(world, versions, rng.choice(businesses).business_id, business_closed)
                elif action == "pledge":
                    form = random_form(rng, today_in_kupang(world.clock()))
                    p = await handlers.make_pledge(handlers.MakePledge(form, SPONSOR), world.uow(), world.deps)
                    await world.match(p.id)
                elif action == "accept" and offers:
                    command = handlers.AcceptOffer(rng.choice(offers).id, OFFICER)
                    await handlers.accept_offer(command, world.uow(), world.deps)
                elif action == "decline" and offers:
                    command = handlers.DeclineOffer(rng.choice(offers).id, "", OFFICER)
                    await handlers.decline_offer(command, world.uow(), world.deps)
                elif action == "disburse" and offers:
                    command = handlers.DisburseOffer(rng.choice(offers).id, "TRF", SPONSOR)
                    await handlers.disburse_offer(command, world.uow(), world.deps)
                elif action == "withdraw" and offers:
                    command = handlers.WithdrawOffer(rng.choice(offers).id, "usaha tutup", SPONSOR)
                    await handlers.withdraw_offer(command, world.uow(), world.deps)
                elif action == "time":
                    world.clock.set(world.clock() + timedelta(days=rng.choice([1, 2, 5, 9])))
                    await handlers.expire_due_offers(world, world.deps)
                    await handlers.follow_pledge_windows(world, world.deps)
                elif action == "close_pledge" and world.store.pledges and rng.random() < 0.3:
                    command = handlers.ClosePledge(rng.choice(list(world.store.pledges)), "", SPONSOR)
                    await handlers.close_pledge(command, world.uow(), world.deps)
                elif action == "intrude" and offers and world.store.pledges:
                    await intrude(world, rng, offers)
                else:
                    continue
                done[action] = done.get(action, 0) + 1
            except (Conflict, InvalidInput, NotFound):
                pass  # refused: the state must be as before, which the checks below also cover
            assert_consistent(world)
    # The walks really exercised every use case, many times.
    assert all(done.get(a, 0) >= 10 for a in ("register", "nib", "training", "close_business", "pledge", "accept",
                                              "decline", "disburse", "withdraw", "time", "close_pledge",
                                              "intrude"))  # fmt: skip


async def intrude(world: FundingWorld, rng: random.Random, offers: Sequence[Any]) -> None:
    """Another sponsor closes, pays out or takes back this sponsor's money, or an Alak officer answers for an Oebobo
    business: refused, and nothing changes."""
    oebobo = [o for o in offers if world.store.rows[o.business_id].kecamatan_code == OEBOBO]
    handler, command = rng.choice([
        (handlers.close_pledge, handlers.ClosePledge(rng.choice(list(world.store.pledges)), "", OTHER_SPONSOR)),
        (handlers.disburse_offer, handlers.DisburseOffer(rng.choice(offers).id, "TRF", OTHER_SPONSOR)),
        (handlers.withdraw_offer, handlers.WithdrawOffer(rng.choice(offers).id, "bukan punya kami", OTHER_SPONSOR)),
        *([(handlers.accept_offer, handlers.AcceptOffer(rng.choice(oebobo).id, ALAK_OFFICER)),
           (handlers.decline_offer, handlers.DeclineOffer(rng.choice(oebobo).id, "", ALAK_OFFICER))] if oebobo else []),
    ])  # fmt: skip
    before = world.store.snapshot()
    uow = world.uow()
    try:
        await handler(command, uow, world.deps)
    except Forbidden:
        pass
    else:
        raise AssertionError(f"{command} was allowed")
    assert (uow.committed, world.store.snapshot()) == ([], before)


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
    p = await handlers.make_pledge(handlers.MakePledge(form, SPONSOR), world.uow(), world.deps)
    # A weaker business (readiness 20) is registered while CSRPledged is still on its way back from Kafka.
    weaker = await world.register(nib_status="none", youth_owned=False, registered_at=NOW)

    await world.match(p.id)

    assert [e.business_id for e in world.published if isinstance(e, FundingMatched)] == [best]
    assert world.store.offer_to(p.id, weaker) is None


@dataclass
class Story:
    """One business's events, as its two producers publish them, and what funding should end up knowing."""

    business_id: uuid.UUID
    registry: list[EventPayload] = field(default_factory=list)
    training: list[EventPayload] = field(default_factory=list)
    status: str = "active"
    nib_status: str = "none"
    kecamatan_code: str = OEBOBO
    scale: str = "micro"
    topics: set[str] = field(default_factory=set)


def random_story(rng: random.Random) -> Story:
    story = Story(uuid.uuid4(), nib_status=rng.choice(["none", "applied"]), kecamatan_code=rng.choice([OEBOBO, ALAK]))
    first = registered(story.business_id, nib_status=story.nib_status, kecamatan_code=story.kecamatan_code)
    story.registry.append(first)
    for _ in range(rng.randrange(0, 6)):
        version = len(story.registry) + 1
        step = rng.choice(["update", "apply", "issue", "reject", "close", "close_in_snapshot"])
        if step == "update":
            story.kecamatan_code, story.scale = rng.choice([OEBOBO, ALAK, MAULAFA]), rng.choice(["micro", "small"])
            event: EventPayload = updated(
                story.business_id, version, ("kecamatan", "scale"), nib_status=story.nib_status,
                kecamatan_code=story.kecamatan_code, scale=story.scale,
            )  # fmt: skip
        elif step == "close_in_snapshot":
            story.status = "closed"
            event = updated(story.business_id, version, ("status",), status="closed", nib_status=story.nib_status,
                            kecamatan_code=story.kecamatan_code, scale=story.scale)  # fmt: skip
        elif step == "close":
            story.status = "closed"
            event = business_closed(story.business_id, version, story.kecamatan_code)
        else:
            story.nib_status = {"apply": "applied", "issue": "issued", "reject": "rejected"}[step]
            make = {"apply": nib_applied, "issue": nib_issued, "reject": nib_rejected}[step]
            event = make(story.business_id, version, story.kecamatan_code)
        story.registry.append(event)
        if story.status == "closed":
            break  # the registry publishes nothing after a closure
    for version in range(1, rng.randrange(0, 6) + 1):
        topic = rng.choice(PROGRAMMES)  # sometimes the same topic again, completed anew
        story.topics.add(topic)
        story.training.append(training_completed(story.business_id, topic, version))
    return story


def merged(rng: random.Random, streams: list[list[EventPayload]]) -> list[EventPayload]:
    """The streams interleaved at random, each kept in its own order (as one Kafka partition keeps a key's)."""
    queues = [list(s) for s in streams if s]
    out = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return out


async def test_whatever_order_registry_and_training_events_arrive_in_the_view_equals_what_they_say() -> None:
    for seed in range(60):
        rng = random.Random(seed)
        world = FundingWorld()
        await world.add_sponsor()
        # Money enough for everyone, for those who completed packaging: offers follow the view as it changes.
        p = await world.add_pledge(total_rupiah=100_000_000, earmarks=Earmarks(trainings_completed=("packaging",)))
        await world.match(p.id)
        stories = [random_story(rng) for _ in range(rng.randrange(1, 6))]
        registry = merged(rng, [s.registry for s in stories])
        training = merged(rng, [s.training for s in stories])
        delivered: list[EventPayload] = []

        # The two consumers take batches of their own topic in turns no one controls.
        while registry or training:
            stream = rng.choice([s for s in (registry, training) if s])
            batch = [stream.pop(0) for _ in range(min(len(stream), rng.randrange(1, 5)))]
            if stream is registry:
                if delivered and rng.random() < 0.2:
                    batch.append(rng.choice(delivered))  # an older event again (a replay): changes nothing
                delivered += batch
            await world.consume_batch([delivery(e) for e in batch])
            assert_consistent(world)

        for story in stories:
            seen = world.store.businesses[story.business_id]
            assert (seen.status, seen.nib_status, seen.version, seen.kecamatan_code, seen.scale) == (
                story.status, story.nib_status, len(story.registry), story.kecamatan_code, story.scale,
            ), f"seed {seed}"  # fmt: skip
            assert seen.trainings == frozenset(story.topics), f"seed {seed}"
            offer = world.store.offer_to(p.id, story.business_id)
            open_offer = offer is not None and offer.status == "offered"
            assert open_offer == (story.status == "active" and "packaging" in story.topics), f"seed {seed}"
        assert {o.business_id for o in world.store.offers.values()} <= {s.business_id for s in stories}


async def test_a_training_completed_before_the_business_registers_counts_once_it_does() -> None:
    world = FundingWorld()
    await world.add_sponsor()
    p = await world.add_pledge(earmarks=Earmarks(trainings_completed=("halal_certification",)))
    await world.match(p.id)
    business_id = uuid.uuid4()

    await world.consume_batch([delivery(training_completed(business_id, "halal_certification"))])
    await world.consume_batch([delivery(registered(business_id)), delivery(nib_issued(business_id, 2))])

    assert world.store.businesses[business_id].trainings == frozenset({"halal_certification"})
    assert [e.business_id for e in world.published if isinstance(e, FundingMatched)] == [business_id]


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
        await handlers.decline_offer(handlers.DeclineOffer(offer.id, "", OFFICER), world.uow(), world.deps)

    store.meanwhile = owner_declines
    await world.consume(business_closed(closing, 2))

    assert store.offers[offer.id].status == "declined"
    assert store.offer_to(p.id, second).status == store.offer_to(p.id, third).status == "offered"
    stored = store.pledges[p.id]
    offered = sum(o.amount_rupiah for o in store.offers_of_pledge(p.id, "offered"))
    assert offered == stored.reserved_rupiah <= stored.total_rupiah
    assert store.offer_to(p.id, fourth) is None

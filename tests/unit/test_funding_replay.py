"""Funding while its view is rebuilt: history read again rebuilds the view and offers nothing, and once both view
consumers have caught up each business is settled once, on the view as it then stands."""

from __future__ import annotations

import uuid
from dataclasses import replace

from services.funding import handlers
from shared.contracts import EventPayload
from shared.contracts.funding import Earmarks

from .funding_fakes import ALAK, OEBOBO, OFFICER, FundingWorld, business_closed, delivery, registered, training_completed, updated


async def replay(world: FundingWorld, *events: EventPayload) -> None:
    """One batch of history read again after a rebuild."""
    await world.consume_batch([replace(delivery(e), replayed=True) for e in events])


async def settle(world: FundingWorld, *business_ids: uuid.UUID) -> None:
    """What the catch-up job does once both view consumers have read every partition as far as the rebuild found it."""
    await handlers.settle_caught_up(list(business_ids), world.uow(), world.deps)


def rebuild(world: FundingWorld) -> None:
    """`berdaya replay funding-view` empties the view and the trainings; pledges and offers stay."""
    world.store.rows.clear()
    world.store.trainings.clear()


async def test_history_read_again_never_offers_a_pledge_to_a_business_that_has_moved_out_of_its_kecamatan():
    world = FundingWorld()
    business = uuid.uuid4()
    history = [registered(business, kecamatan_code=OEBOBO), updated(business, 2, kecamatan_code=ALAK)]
    for event in history:
        await world.consume(event)
    oebobo = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(OEBOBO,)))
    await world.match(oebobo.id)  # opened after the move: the business is in Alak, no offer
    assert world.store.offer_to(oebobo.id, business) is None
    told = list(world.published)
    rebuild(world)

    for event in history:
        await replay(world, event)  # each in its own batch: for a moment the view shows it in Oebobo
    await settle(world, business)

    assert world.store.offer_to(oebobo.id, business) is None
    assert world.published == told
    assert world.store.businesses[business].kecamatan_code == ALAK


async def test_once_caught_up_a_newcomer_is_offered_and_a_closed_business_s_offer_is_withdrawn():
    world = FundingWorld()
    p = await world.add_pledge()
    await world.match(p.id)
    newcomer, closing = uuid.uuid4(), uuid.uuid4()
    # An offer to a business whose closure the registry recorded while funding was stopped for the rebuild.
    await world.consume(registered(closing))
    assert world.store.offer_to(p.id, closing).status == "offered"
    rebuild(world)

    await replay(world, registered(newcomer), registered(closing))
    await replay(world, business_closed(closing, 2))
    assert world.store.offer_to(p.id, newcomer) is None, "nothing is offered while catching up"
    assert world.store.offer_to(p.id, closing).status == "offered", "nor withdrawn"
    await settle(world, newcomer, closing)

    assert world.store.offer_to(p.id, newcomer).status == "offered"
    assert world.store.offer_to(p.id, closing).status == "withdrawn"
    assert len(world.of_type("FundingMatched")) == 2 and len(world.of_type("FundingWithdrawn")) == 1


async def test_a_training_read_again_is_recorded_and_offers_nothing_until_it_is_settled():
    world = FundingWorld()
    business = await world.register()
    packaging = await world.add_pledge(earmarks=Earmarks(trainings_completed=("packaging",)))
    await world.match(packaging.id)
    assert world.store.offer_to(packaging.id, business) is None

    await replay(world, training_completed(business))
    assert world.store.businesses[business].trainings == {"packaging"}
    assert world.store.offer_to(packaging.id, business) is None
    await settle(world, business)

    assert world.store.offer_to(packaging.id, business).status == "offered"


async def test_a_live_event_after_history_in_one_batch_is_acted_on_at_once():
    world = FundingWorld()
    p = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(ALAK,)))
    await world.match(p.id)
    business = uuid.uuid4()
    old = replace(delivery(registered(business, kecamatan_code=OEBOBO)), replayed=True)
    moved = delivery(updated(business, 2, kecamatan_code=ALAK))

    await world.consume_batch([old, moved])

    assert world.store.offer_to(p.id, business).status == "offered"


async def test_settling_a_business_funding_never_heard_of_changes_nothing():
    world = FundingWorld()
    p = await world.add_pledge()
    await world.match(p.id)
    told = list(world.published)

    await settle(world, uuid.uuid4())

    assert world.published == told and world.store.offers == {}


async def test_a_pledge_made_while_the_view_reads_history_is_ranked_once_it_has_caught_up_on_the_whole_view():
    world = FundingWorld()
    rebuild(world)
    world.store.catching_up = True
    weaker, stronger = uuid.uuid4(), uuid.uuid4()
    await replay(world, registered(weaker, nib_status="none"))
    p = await world.add_pledge(total_rupiah=5_000_000)  # one offer's worth
    await world.match(p.id)
    assert world.store.offers == {} and world.store.pledges[p.id].matched_at is None, "not ranked on part of the view"
    await replay(world, registered(stronger))  # an NIB: 25 points more
    world.store.catching_up = False

    await handlers.rank_after_catch_up(world, world.deps)

    assert world.store.offer_to(p.id, stronger).status == "offered"
    assert world.store.offer_to(p.id, weaker) is None


async def test_money_a_decline_gives_back_while_the_view_reads_history_goes_to_the_best_ranked_once_caught_up():
    world = FundingWorld()
    p = await world.add_pledge(total_rupiah=5_000_000)
    first = await world.register()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, first)
    rebuild(world)
    world.store.catching_up = True
    weaker, stronger = uuid.uuid4(), uuid.uuid4()
    await replay(world, registered(first), registered(weaker, nib_status="none"))

    await handlers.decline_offer(handlers.DeclineOffer(offer.id, "tidak perlu", OFFICER), world.uow(), world.deps)
    assert [o.business_id for o in world.store.offers.values()] == [first], "kept while the view reads history"
    await replay(world, registered(stronger))
    world.store.catching_up = False
    await handlers.rank_after_catch_up(world, world.deps)

    assert world.store.offer_to(p.id, stronger).status == "offered"
    assert world.store.offer_to(p.id, weaker) is None


async def test_ranking_after_the_catch_up_offers_nothing_twice():
    world = FundingWorld()
    p = await world.add_pledge()
    businesses = [await world.register() for _ in range(3)]
    await world.match(p.id)
    told = list(world.published)

    await handlers.rank_after_catch_up(world, world.deps)
    await handlers.rank_after_catch_up(world, world.deps)

    assert world.published == told
    assert {o.business_id for o in world.store.offers.values()} == set(businesses)

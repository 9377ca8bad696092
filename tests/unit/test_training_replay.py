"""Training while its view is rebuilt: history read again rebuilds the view and sets nothing off, and once the view
has caught up each business is settled once, on the view as it then stands."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.training import business_changes
from shared.contracts import EventPayload

from .training_fakes import TrainingWorld, delivery, registered, updated


async def replay(world: TrainingWorld, *events: EventPayload) -> None:
    """One batch of history read again after a rebuild."""
    deliveries = [replace(delivery(e), replayed=True) for e in events]
    await business_changes.apply_registry_events(deliveries, world.uow(), world.deps)


async def settle(world: TrainingWorld, *business_ids: uuid.UUID) -> None:
    """What the catch-up job does once the consumer has read every partition as far as the rebuild found it."""
    await business_changes.settle_caught_up(list(business_ids), world.by_time(), world.deps)


def history(business_id: uuid.UUID, **fields: Any) -> list[EventPayload]:
    """Registered small, typed in as medium by mistake, then corrected: what the registry's topic holds."""
    return [registered(business_id, **fields), updated(business_id, 2, scale="medium"),
            updated(business_id, 3, scale="small")]  # fmt: skip


async def test_history_read_again_in_batches_neither_withdraws_a_trainee_nor_tells_the_owner_again():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5)
    business, other = uuid.uuid4(), uuid.uuid4()
    for event in history(business):
        await world.consume(event)  # live: withdrawn and told once marked medium; the mark lifted once corrected
    await world.consume(registered(other))
    assert world.seated(cohort.id) == {other}
    assert len(world.of_type("PathwayNotEligible", business)) == 1
    told = list(world.published)
    world.store.views.clear()  # `berdaya replay training-view` empties the view

    for event in [*history(business), registered(other)]:
        await replay(world, event)  # each in its own batch: for a moment the view shows it medium
    await settle(world, business, other)

    assert world.published == told
    assert world.seated(cohort.id) == {other}
    assert world.store.pathways[business].not_eligible is None
    assert world.store.views[business].scale == "small"


async def test_once_caught_up_a_business_is_settled_on_its_view_as_it_now_stands():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5)
    grown, newcomer = uuid.uuid4(), uuid.uuid4()
    before = len(world.published)

    await replay(world, registered(grown), registered(newcomer))
    await replay(world, updated(grown, 2, scale="medium"))
    assert len(world.published) == before and world.seated(cohort.id) == set()
    await settle(world, grown, newcomer)

    assert world.seated(cohort.id) == {newcomer}
    assert [e.reason for e in world.of_type("PathwayNotEligible", grown)] == ["not_micro_or_small"]


async def test_a_live_event_after_history_in_one_batch_is_acted_on_at_once():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=5)
    business = uuid.uuid4()
    old = replace(delivery(registered(business, scale="medium")), replayed=True)
    corrected = delivery(updated(business, 2, scale="small"))

    await business_changes.apply_registry_events([old, corrected], world.uow(), world.deps)

    assert world.seated(cohort.id) == {business}


async def test_a_cohort_opened_while_the_view_reads_history_is_filled_by_need_from_the_whole_view_once_caught_up():
    world = TrainingWorld()
    world.store.catching_up = True
    newer, older = uuid.uuid4(), uuid.uuid4()
    await replay(world, registered(newer, registered_at=datetime(2025, 6, 1, tzinfo=UTC)))
    _, cohort = await world.open_cohort(capacity=1)
    assert world.seated(cohort.id) == set() and world.seated(cohort.id, "waitlisted") == set(), "not from part of it"
    await replay(world, registered(older, registered_at=datetime(2024, 6, 1, tzinfo=UTC)))
    world.store.catching_up = False

    await settle(world, newer, older)

    assert world.seated(cohort.id) == {older}, "earlier registration first, as on a whole view"
    assert world.seated(cohort.id, "waitlisted") == {newer}


async def test_a_seat_freed_while_the_view_reads_history_goes_to_the_waitlist_but_not_to_anyone_read_so_far():
    world = TrainingWorld()
    _, cohort = await world.open_cohort(capacity=1)
    first, queued = await world.register(), await world.register()
    assert world.seated(cohort.id) == {first} and world.seated(cohort.id, "waitlisted") == {queued}
    world.store.views.clear()
    world.store.catching_up = True
    await replay(world, registered(uuid.uuid4()))

    await world.withdraw(cohort.id, first)

    assert world.seated(cohort.id) == {queued} and world.seated(cohort.id, "waitlisted") == set()

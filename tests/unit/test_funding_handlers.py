"""Tests funding's use cases (view upkeep, pledges, matching, an offer's life, time passing) against in-memory fakes."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.funding import handlers
from services.funding.domain import offers
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge, PledgeForm, SponsorForm
from services.funding.domain.view import readiness
from services.funding.store import FundingStore
from shared.auth import Principal
from shared.contracts import EventPayload, new_envelope
from shared.contracts.funding import (
    CSRPledged,
    Earmarks,
    FundingAccepted,
    FundingDeclined,
    FundingExpired,
    FundingMatched,
    FundingWithdrawn,
    FundsDisbursed,
    PledgeClosed,
    PledgeExhausted,
    PledgeTotals,
)
from shared.contracts.envelope import ContractError
from shared.contracts.public import FinancingApproved, FinancingDisbursed
from shared.contracts.training import Assessment
from shared.messaging.consumer import Delivery, Outcome, RecordRefused
from shared.messaging.dead_letters import Record
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.reference.wita import today_in_kupang

from .fakes import FakeDeadLetters, RecordingSleep, new_consumer
from .funding_fakes import (
    ADMIN,
    ALAK,
    ALAK_OFFICER,
    MAULAFA,
    NOW,
    OEBOBO,
    OEBOBO_OFFICER,
    OFFICER,
    OTHER_SPONSOR,
    OTHER_SPONSOR_ID,
    SPONSOR,
    SPONSOR_ID,
    TODAY,
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


@pytest.fixture
async def world() -> FundingWorld:
    w = FundingWorld()
    await w.add_sponsor()
    return w


async def register_ranked(world: FundingWorld, n: int, **fields: Any) -> list[uuid.UUID]:
    """n businesses that rank in the order returned: same readiness, each registered a day after the one before."""
    return [await world.register(registered_at=START + timedelta(days=i), **fields) for i in range(n)]


def summary(events: list[Any]) -> list[tuple[str, uuid.UUID | None]]:
    """(event type, business) for each event, enough to compare what was published."""
    return [(type(e).__name__, getattr(e, "business_id", None)) for e in events]


def pledge_form(**overrides: Any) -> PledgeForm:
    return PledgeForm.model_validate({
        "sponsor_id": str(SPONSOR_ID), "title": "CSR Bank NTT untuk kuliner Oebobo", "instrument": "grant",
        "total_rupiah": 50_000_000, "amount_per_business_rupiah": 5_000_000, "valid_from": "2026-03-10",
        "valid_until": "2026-06-30", **overrides,
    })  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Sponsors and pledges
# ---------------------------------------------------------------------------------------------------------------


async def test_registering_a_sponsor_twice_under_the_same_name_is_a_conflict_naming_the_first() -> None:
    world = FundingWorld()
    first = await handlers.register_sponsor(
        handlers.RegisterSponsor(SponsorForm(name="Bank NTT", kind="bank"), OFFICER), world.uow(), world.deps
    )

    for again in ("bank ntt", "Bank\u200b NTT", " Bank  NTT\ufeff"):  # in another case, or with what no one sees
        with pytest.raises(Conflict) as exc:
            await handlers.register_sponsor(
                handlers.RegisterSponsor(SponsorForm(name=again, kind="state_owned"), OFFICER), world.uow(), world.deps
            )
        assert (exc.value.code, exc.value.details) == ("sponsor_exists", {"existing_sponsor_id": str(first)})
    assert world.store.sponsors == {first: ("Bank NTT", "bank")}


async def test_an_officer_of_one_kecamatan_may_not_record_a_sponsor_and_so_take_its_name() -> None:
    world = FundingWorld()
    with pytest.raises(Forbidden):
        await handlers.register_sponsor(handlers.RegisterSponsor(SponsorForm(name="Bank NTT", kind="bank"),
                                                                 ALAK_OFFICER), world.uow(), world.deps)  # fmt: skip
    assert world.store.sponsors == {}


async def test_making_a_pledge_stores_it_publishes_csr_pledged_and_commits(world) -> None:
    uow = world.uow()
    form = pledge_form(amount_mode="capped", earmarks={"kecamatan": ["Oebobo"], "kbli": ["10"]})

    p = await handlers.make_pledge(handlers.MakePledge(form, SPONSOR), uow, world.deps)

    assert world.store.pledges[p.id] == p
    assert (p.status, p.sponsor_name, p.sponsor_kind, p.min_offer_rupiah, p.created_at) == (
        "open", "Bank NTT", "bank", 2_500_000, NOW,
    )  # fmt: skip
    assert p.earmarks == Earmarks(kecamatan_codes=(OEBOBO,), kbli_prefixes=("10",))
    assert uow.commits == 1
    [event] = uow.committed
    assert isinstance(event, CSRPledged)
    assert (event.pledge_id, event.total_rupiah, event.min_offer_rupiah, event.earmarks) == (
        p.id, 50_000_000, 2_500_000, p.earmarks,
    )  # fmt: skip
    assert world.store.offers == {}  # matching waits for the event to come back


async def test_a_pledge_from_an_unknown_sponsor_is_refused_and_nothing_is_stored(world) -> None:
    unknown = uuid.uuid4()
    # A token naming a sponsor funding has no record of.
    by = Principal("csr@unknown", frozenset({"sponsor"}), sponsor_id=unknown)
    uow = world.uow()

    with pytest.raises(InvalidInput) as exc:
        await handlers.make_pledge(handlers.MakePledge(pledge_form(sponsor_id=str(unknown)), by), uow, world.deps)

    assert [e.field for e in exc.value.errors] == ["sponsor_id"]
    assert (world.store.pledges, uow.commits, uow.committed) == ({}, 0, [])


async def test_an_invalid_pledge_is_refused_and_nothing_is_stored_or_published(world) -> None:
    uow = world.uow()

    with pytest.raises(InvalidInput) as exc:
        await handlers.make_pledge(handlers.MakePledge(pledge_form(total_rupiah=1_000_000), SPONSOR), uow, world.deps)

    assert [e.field for e in exc.value.errors] == ["amount_per_business_rupiah"]
    assert (world.store.pledges, uow.commits, uow.committed) == ({}, 0, [])


async def test_a_pledge_sent_again_under_its_idempotency_key_gives_the_first_pledge_and_publishes_nothing_more(world) -> None:
    first = await handlers.make_pledge(handlers.MakePledge(pledge_form(), SPONSOR, "order-7"), world.uow(), world.deps)
    again = handlers.MakePledge(pledge_form(), SPONSOR, "order-7")  # the answer was lost to a timeout: sent again

    second = await handlers.make_pledge(again, world.uow(), world.deps)

    assert second == first
    assert list(world.store.pledges) == [first.id]
    assert [type(e).__name__ for e in world.published] == ["CSRPledged"]


async def test_a_one_day_pledge_sent_again_after_midnight_under_its_key_gives_the_first_pledge(world) -> None:
    today = today_in_kupang(world.clock()).isoformat()
    first = await handlers.make_pledge(handlers.MakePledge(pledge_form(valid_from=today, valid_until=today), SPONSOR,
                                                           "order-8"), world.uow(), world.deps)  # fmt: skip
    world.clock.set(world.clock() + timedelta(days=1))  # the answer was lost, and the retry came after midnight

    again = await handlers.make_pledge(handlers.MakePledge(pledge_form(valid_from=today, valid_until=today), SPONSOR,
                                                           "order-8"), world.uow(), world.deps)  # fmt: skip

    assert again == first and list(world.store.pledges) == [first.id]


async def test_a_pledge_refused_under_a_key_leaves_the_key_for_the_pledge_sent_right(world) -> None:
    with pytest.raises(InvalidInput):
        await handlers.make_pledge(handlers.MakePledge(pledge_form(total_rupiah=1_000_000), SPONSOR, "order-9"),
                                   world.uow(), world.deps)  # fmt: skip

    made = await handlers.make_pledge(handlers.MakePledge(pledge_form(), SPONSOR, "order-9"), world.uow(), world.deps)

    assert list(world.store.pledges) == [made.id]


async def test_another_pledge_under_a_used_idempotency_key_is_a_conflict_naming_the_first_and_makes_nothing(world) -> None:
    first = await handlers.make_pledge(handlers.MakePledge(pledge_form(), SPONSOR, "order-7"), world.uow(), world.deps)
    uow = world.uow()

    with pytest.raises(Conflict) as exc:
        await handlers.make_pledge(handlers.MakePledge(pledge_form(total_rupiah=90_000_000), SPONSOR, "order-7"), uow,
                                   world.deps)  # fmt: skip

    assert (exc.value.code, exc.value.details) == ("idempotency_key_reused", {"pledge_id": str(first.id)})
    assert list(world.store.pledges) == [first.id] and uow.commits == 0


async def test_one_idempotency_key_used_by_two_sponsors_makes_a_pledge_for_each(world) -> None:
    await world.add_sponsor(OTHER_SPONSOR_ID, "Bank BRI")
    mine = await handlers.make_pledge(handlers.MakePledge(pledge_form(), SPONSOR, "1"), world.uow(), world.deps)
    theirs = await handlers.make_pledge(handlers.MakePledge(pledge_form(sponsor_id=str(OTHER_SPONSOR_ID)),
                                                            OTHER_SPONSOR, "1"), world.uow(), world.deps)  # fmt: skip

    assert mine.id != theirs.id and len(world.store.pledges) == 2


async def test_a_pledge_without_an_idempotency_key_sent_twice_is_two_pledges(world) -> None:
    for _ in range(2):
        await handlers.make_pledge(handlers.MakePledge(pledge_form(), SPONSOR), world.uow(), world.deps)

    assert len(world.store.pledges) == 2


# ---------------------------------------------------------------------------------------------------------------
# match_pledge
# ---------------------------------------------------------------------------------------------------------------


async def test_matching_offers_to_the_best_ranked_eligible_businesses_up_to_the_money(world) -> None:
    elsewhere = await register_ranked(world, 3, kecamatan_code=ALAK)  # registered earliest, but not in Oebobo
    oebobo = [await world.register(registered_at=START + timedelta(days=10 + i)) for i in range(12)]
    star = await world.register(registered_at=START + timedelta(days=100))
    await world.consume(training_completed(star, "packaging"))  # 65 against everyone else's 55
    p = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(OEBOBO,)))

    uow = await world.match(p.id)

    expected = [star, *oebobo[:9]]
    matched = [e for e in uow.committed if isinstance(e, FundingMatched)]
    assert [e.business_id for e in matched] == expected
    assert [e.rank for e in matched] == list(range(1, 11))
    assert [e.readiness for e in matched] == [65] + [55] * 9
    assert all(e.amount_rupiah == 5_000_000 and e.expires_at == NOW + timedelta(days=14) for e in matched)
    assert summary(uow.committed)[-1] == ("PledgeExhausted", None)
    assert len([e for e in uow.committed if isinstance(e, PledgeExhausted)]) == 1
    assert uow.committed[-1].totals == PledgeTotals(
        pledged_rupiah=50_000_000, reserved_rupiah=50_000_000, accepted_rupiah=0, disbursed_rupiah=0, remaining_rupiah=0
    )
    stored = world.store.pledges[p.id]
    assert (stored.status, stored.reserved_rupiah, stored.matched_at) == ("exhausted", 50_000_000, NOW)
    assert {o.business_id for o in world.store.offers.values()} == set(expected)
    assert not set(elsewhere) & {o.business_id for o in world.store.offers.values()}
    assert [offer.business_id for offer, _, _ in world.matches] == expected  # the eligibility-to-match metric


async def test_matching_with_fewer_eligible_businesses_than_money_leaves_the_pledge_open(world) -> None:
    await register_ranked(world, 3)
    p = await world.add_pledge()

    uow = await world.match(p.id)

    assert [type(e) for e in uow.committed] == [FundingMatched] * 3  # no PledgeExhausted
    assert [e.rank for e in uow.committed] == [1, 2, 3]
    assert (world.store.pledges[p.id].status, world.store.pledges[p.id].remaining_rupiah) == ("open", 35_000_000)


async def test_matching_an_unknown_pledge_is_not_found(world) -> None:
    with pytest.raises(NotFound):
        await world.match(uuid.uuid4())


async def test_matching_a_pledge_whose_window_has_not_opened_offers_nothing_and_leaves_it_unmatched(world) -> None:
    await register_ranked(world, 3)
    p = await world.add_pledge(valid_from=date(2026, 3, 11))

    uow = await world.match(p.id)

    assert (uow.committed, world.store.offers) == ([], {})
    assert world.store.pledges[p.id].matched_at is None


# ---------------------------------------------------------------------------------------------------------------
# The view, from registry and training events
# ---------------------------------------------------------------------------------------------------------------


async def test_an_nib_that_makes_a_business_eligible_brings_an_offer_from_an_open_pledge_not_an_exhausted_one(
    world,
) -> None:
    first, second = await register_ranked(world, 2)
    waiting = await world.register(nib_status="applied", registered_at=START + timedelta(days=5))
    open_pledge = await world.add_pledge(total_rupiah=15_000_000, earmarks=Earmarks(nib_required=True))
    spent_pledge = await world.add_pledge(total_rupiah=5_000_000, earmarks=Earmarks(nib_required=True))
    await world.match(open_pledge.id)
    await world.match(spent_pledge.id)
    assert world.store.pledges[spent_pledge.id].status == "exhausted"
    assert world.store.offer_to(open_pledge.id, waiting) is None
    later = NOW + timedelta(hours=1)

    uow = await world.consume(nib_issued(waiting, 2), occurred_at=later)

    assert summary(uow.committed) == [("FundingMatched", waiting), ("PledgeExhausted", None)]
    matched = uow.committed[0]
    assert (matched.pledge_id, matched.rank, matched.amount_rupiah) == (open_pledge.id, None, 5_000_000)
    assert world.store.offer_to(spent_pledge.id, waiting) is None
    assert world.store.pledges[open_pledge.id].status == "exhausted"
    business = world.store.businesses[waiting]
    assert (business.nib_status, business.version, business.eligible_since) == ("issued", 2, later)
    assert {world.store.offer_to(open_pledge.id, b).status for b in (first, second)} == {"offered"}


async def test_a_stale_snapshot_changes_nothing(world) -> None:
    business_id = await world.register(business_version=3)
    p = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(ALAK,)))
    await world.match(p.id)
    before = world.store.businesses[business_id]

    older = await world.consume(updated(business_id, 2, kecamatan_code=ALAK))
    same = await world.consume(updated(business_id, 3, kecamatan_code=ALAK))

    assert world.store.businesses[business_id] == before
    assert (older.committed, same.committed, world.store.offers) == ([], [], {})

    newer = await world.consume(updated(business_id, 4, kecamatan_code=ALAK))

    assert summary(newer.committed) == [("FundingMatched", business_id)]
    assert world.store.businesses[business_id].kecamatan_code == ALAK


async def test_a_single_change_arriving_with_the_one_before_it_missing_is_refused_and_changes_nothing(world) -> None:
    # Its predecessor was dead-lettered. Applied, the NIB would move the view past version 2, and version 2 re-driven
    # later would be "older" and change nothing: the business would keep its old kecamatan for good.
    business_id = await world.register(kecamatan_code=OEBOBO)
    before = world.store.businesses[business_id]

    with pytest.raises(RecordRefused, match=r"version 3, but this view holds version 1; version 2 never arrived"):
        await world.consume(nib_issued(business_id, 3))
    assert world.store.businesses[business_id] == before

    await world.consume(updated(business_id, 2, changed=("kecamatan_code",), kecamatan_code=ALAK))  # re-driven
    await world.consume(nib_issued(business_id, 3, kecamatan_code=ALAK))
    business = world.store.businesses[business_id]
    assert (business.version, business.kecamatan_code, business.nib_status) == (3, ALAK, "issued")


async def test_a_snapshot_applies_over_missing_versions_because_it_carries_the_whole_business(world) -> None:
    business_id = await world.register()

    await world.consume(updated(business_id, 4, kecamatan_code=ALAK))

    business = world.store.businesses[business_id]
    assert (business.version, business.kecamatan_code) == (4, ALAK)


async def test_a_single_change_for_a_business_never_registered_here_is_refused_and_applies_behind_its_registration(
    world,
) -> None:
    # Ignored, it counted as handled: the relay sends a registration that failed to publish again behind the NIB Kafka
    # had already taken, then the NIB again, which the inbox skipped, and the business stayed without its NIB for good.
    first = registered(kecamatan_code=OEBOBO)

    with pytest.raises(RecordRefused, match=r"NIBIssued is version 2, but this view has never heard of the business"):
        await world.consume(nib_issued(first.business_id, 2))
    assert world.store.businesses == {}

    await world.consume(first)
    await world.consume(nib_issued(first.business_id, 2))  # sent again behind the registration
    business = world.store.businesses[first.business_id]
    assert (business.version, business.nib_status) == (2, "issued")


async def test_a_snapshot_keeps_what_funding_learnt_from_training_and_acceptance(world) -> None:
    business_id = await world.register()
    await world.consume(training_completed(business_id, "halal_certification"))
    p = await world.add_pledge()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)

    await world.consume(updated(business_id, 2, changed=("scale",), scale="small"))

    business = world.store.businesses[business_id]
    assert (business.scale, business.trainings, business.funded_count) == (
        "small",
        frozenset({"halal_certification"}),
        1,
    )


@pytest.mark.parametrize(("make", "status"), [(nib_applied, "applied"), (nib_rejected, "rejected")])
async def test_nib_applications_and_rejections_update_the_view(world, make, status) -> None:
    business_id = await world.register(nib_status="none")

    await world.consume(make(business_id, 2))

    assert (world.store.businesses[business_id].nib_status, world.store.businesses[business_id].version) == (status, 2)


async def test_a_closed_business_loses_its_unanswered_offers_to_the_next_in_line_and_keeps_its_accepted_one(
    world,
) -> None:  # fmt: skip
    closing = await world.register(registered_at=START)
    await world.consume(training_completed(closing, "packaging"))
    next_in_line = await world.register(registered_at=START + timedelta(days=1))
    p1 = await world.add_pledge(total_rupiah=5_000_000)
    p2 = await world.add_pledge(total_rupiah=5_000_000)
    await world.match(p1.id)
    await world.match(p2.id)
    accepted = world.store.offer_to(p2.id, closing)
    await handlers.accept_offer(handlers.AcceptOffer(accepted.id, OFFICER), world.uow(), world.deps)
    assert world.store.businesses[closing].funded_count == 1

    uow = await world.consume(business_closed(closing, 2))

    # Per pledge (the key of funding's events, so the order consumers see): the withdrawal, then the next in line.
    assert [(type(e).__name__, e.business_id) for e in uow.committed] == [
        ("FundingWithdrawn", closing), ("FundingMatched", next_in_line)]  # fmt: skip
    assert {e.pledge_id for e in uow.committed} == {p1.id}
    assert [e.reason for e in uow.committed if isinstance(e, FundingWithdrawn)] == ["the business closed"]
    assert world.store.offer_to(p1.id, closing).status == "withdrawn"
    assert world.store.offer_to(p1.id, next_in_line).status == "offered"
    # The sponsor may have paid already: the accepted offer stays, to be recorded as paid or withdrawn by it.
    assert world.store.offer_to(p2.id, closing).status == "accepted"
    after_p1, after_p2 = world.store.pledges[p1.id], world.store.pledges[p2.id]
    assert (after_p1.reserved_rupiah, after_p1.status) == (5_000_000, "exhausted")
    assert (after_p2.reserved_rupiah, after_p2.accepted_rupiah, after_p2.status) == (0, 5_000_000, "exhausted")
    assert world.store.businesses[closing].status == "closed"
    assert world.store.businesses[closing].funded_count == 1
    assert len(world.of_type("PledgeExhausted")) == 2  # one per pledge, from the first matching only


async def test_a_sponsor_withdraws_an_accepted_offer_it_will_not_pay_and_the_money_goes_to_the_next_in_line(
    world,
) -> None:  # fmt: skip
    closing = await world.register(registered_at=START)
    next_in_line = await world.register(registered_at=START + timedelta(days=1))
    pledge = await world.add_pledge(total_rupiah=5_000_000)
    await world.match(pledge.id)
    offer = world.store.offer_to(pledge.id, closing)
    await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)
    await world.consume(business_closed(closing, 2))
    with pytest.raises(Forbidden):
        await handlers.withdraw_offer(handlers.WithdrawOffer(offer.id, "usaha tutup", OTHER_SPONSOR), world.uow(),
                                      world.deps)  # fmt: skip
    uow = world.uow()
    withdrawn = await handlers.withdraw_offer(handlers.WithdrawOffer(offer.id, " usaha sudah tutup ", SPONSOR), uow,
                                              world.deps)  # fmt: skip

    assert (withdrawn.status, withdrawn.reason) == ("withdrawn", "usaha sudah tutup")
    assert [(type(e).__name__, e.business_id) for e in uow.committed] == [
        ("FundingWithdrawn", closing), ("FundingMatched", next_in_line)]  # fmt: skip
    after = world.store.pledges[pledge.id]
    assert (after.accepted_rupiah, after.reserved_rupiah) == (0, 5_000_000)
    with pytest.raises(Conflict) as again:  # an offer only offered, or withdrawn already, is not the sponsor's to take
        await handlers.withdraw_offer(handlers.WithdrawOffer(offer.id, "usaha tutup", SPONSOR), world.uow(), world.deps)
    assert again.value.code == "offer_not_accepted" and "usaha sudah tutup" in again.value.message
    retried = world.uow()  # the same withdrawal, its answer lost: answered again, the money not offered twice
    same = await handlers.withdraw_offer(handlers.WithdrawOffer(offer.id, "usaha sudah tutup", SPONSOR), retried,
                                         world.deps)  # fmt: skip
    assert (same, retried.committed) == (withdrawn, [])


async def test_a_business_closed_in_a_snapshot_is_withdrawn_too(world) -> None:
    business_id = await world.register()
    p = await world.add_pledge()
    await world.match(p.id)

    uow = await world.consume(updated(business_id, 2, changed=("status",), status="closed"))

    assert summary(uow.committed) == [("FundingWithdrawn", business_id)]
    assert world.store.pledges[p.id].reserved_rupiah == 0


async def test_a_business_that_moves_away_keeps_its_offer_but_can_no_longer_accept_it(world) -> None:
    business_id = await world.register()
    p = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(OEBOBO,)))
    await world.match(p.id)
    await world.consume(updated(business_id, 2, kecamatan_code=ALAK))
    offer = world.store.offer_to(p.id, business_id)
    assert offer.status == "offered"

    with pytest.raises(Conflict) as exc:
        await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)

    assert exc.value.details["problems"] == [f"earmark kecamatan not met: needs {OEBOBO}, is {ALAK}"]


async def test_a_completed_training_adds_its_topic_to_the_view_once(world) -> None:
    business_id = await world.register()
    registered_view = world.store.businesses[business_id]
    p = await world.add_pledge(earmarks=Earmarks(trainings_completed=("packaging",)))
    await world.match(p.id)
    first_time = NOW + timedelta(days=1)

    first = await world.consume(training_completed(business_id, "packaging"), occurred_at=first_time)
    redelivered = await world.consume(training_completed(business_id, "packaging"), occurred_at=first_time)
    again = await world.consume(
        training_completed(business_id, "packaging", version=2), occurred_at=first_time + timedelta(days=1)
    )

    business = world.store.businesses[business_id]
    # eligible_since is when the registry's facts last changed (view.py); a training is not one of them.
    assert (business.trainings, business.eligible_since, business.version) == (
        frozenset({"packaging"}), registered_view.eligible_since, 1,
    )  # fmt: skip
    assert summary(first.committed) == [("FundingMatched", business_id)]
    assert (redelivered.committed, again.committed) == ([], [])
    assert len(world.store.offers) == 1


async def test_a_newer_completion_of_a_topic_replaces_the_older_and_an_older_one_changes_nothing(world) -> None:
    business_id = await world.register()

    await world.consume(training_completed(business_id, "packaging", version=3))
    await world.consume(training_completed(business_id, "packaging", version=2))
    kept = world.store.trainings[(business_id, "packaging")]
    await world.consume(training_completed(business_id, "packaging", version=4))

    assert kept.participant_version == 3
    assert world.store.trainings[(business_id, "packaging")].participant_version == 4
    assert world.store.businesses[business_id].trainings == frozenset({"packaging"})


async def test_a_training_of_a_business_funding_has_not_heard_of_is_kept_and_counts_once_it_registers(world) -> None:
    business_id = uuid.uuid4()
    p = await world.add_pledge(earmarks=Earmarks(trainings_completed=("packaging",)))
    await world.match(p.id)

    early = await world.consume(training_completed(business_id, "packaging"))

    assert (world.store.businesses, early.committed) == ({}, [])  # nothing to show or offer to yet

    later = await world.consume(registered(business_id))

    assert world.store.businesses[business_id].trainings == frozenset({"packaging"})
    assert summary(later.committed) == [("FundingMatched", business_id)]
    assert later.committed[0].readiness == 65  # 55 and the training's 10


async def test_a_trainers_assessment_at_completion_raises_readiness_and_the_best_one_counts(world) -> None:
    business_id = await world.register()
    await world.consume(training_completed(business_id, "packaging", 1, Assessment(management=60, leadership=70,
                                                                                   business_prospects=80)))  # fmt: skip
    await world.consume(training_completed(business_id, "halal_certification", 2, Assessment(
        management=40, leadership=40, business_prospects=40)))  # fmt: skip

    view = world.store.businesses[business_id]
    parts = readiness(view, TODAY).parts
    assert (view.assessment, parts["assessment"], parts["trainings"]) == (70, 10, 20)  # round(15 * 70 / 100)


# ---------------------------------------------------------------------------------------------------------------
# accept, decline, disburse
# ---------------------------------------------------------------------------------------------------------------


async def test_accepting_moves_the_money_counts_the_business_as_funded_and_publishes_funding_accepted(world) -> None:
    business_id = await world.register()
    p = await world.add_pledge()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    uow = world.uow()

    accepted = await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), uow, world.deps)

    assert (accepted.status, world.store.offers[offer.id].status) == ("accepted", "accepted")
    assert summary(uow.committed) == [("FundingAccepted", business_id)]
    assert uow.committed[0] == FundingAccepted(pledge_id=p.id, offer_id=offer.id, business_id=business_id,
                                               amount_rupiah=5_000_000, accepted_at=NOW)  # fmt: skip
    assert (world.store.pledges[p.id].reserved_rupiah, world.store.pledges[p.id].accepted_rupiah) == (0, 5_000_000)
    assert world.store.businesses[business_id].funded_count == 1  # counted from its accepted offer
    assert world.store.locked[-1] == [p.id]


async def test_a_business_that_aged_out_of_youth_cannot_accept_and_nothing_changes(world) -> None:
    business_id = await world.register(youth_owned=True)
    p = await world.add_pledge(earmarks=Earmarks(youth_owned_only=True))
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    # On the first of the month the owner is no longer youth, the registry publishes the new flag.
    world.clock.set(NOW + timedelta(days=3))
    aged_out = await world.consume(updated(business_id, 2, changed=("youth_owned",), youth_owned=False))
    assert (aged_out.committed, world.store.offer_to(p.id, business_id).status) == ([], "offered")
    before = world.store.snapshot()
    uow = world.uow()

    with pytest.raises(Conflict) as exc:
        await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), uow, world.deps)

    assert exc.value.details["problems"] == ["earmark youth_owned not met: needs youth owner, is no"]
    assert world.store.snapshot() == before
    assert (uow.commits, uow.committed, uow.rollbacks) == (0, [], 1)


async def test_accepting_an_unknown_offer_is_not_found(world) -> None:
    with pytest.raises(NotFound):
        await handlers.accept_offer(handlers.AcceptOffer(uuid.uuid4(), OFFICER), world.uow(), world.deps)


async def test_a_decline_offers_the_money_to_the_next_ranked_without_a_second_pledge_exhausted(world) -> None:
    first, second, third, fourth = await register_ranked(world, 4)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    assert len(world.of_type("PledgeExhausted")) == 1
    world.clock.set(NOW + timedelta(days=2))
    uow = world.uow()

    decline = handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "sudah dapat KUR", OFFICER)

    declined = await handlers.decline_offer(decline, uow, world.deps)

    assert summary(uow.committed) == [("FundingDeclined", first), ("FundingMatched", third)]
    assert isinstance(uow.committed[0], FundingDeclined) and uow.committed[0].reason == "sudah dapat KUR"
    assert uow.committed[1].rank == 1  # ranked again among those without an offer
    assert declined.status == "declined"
    assert world.store.offer_to(p.id, second).status == "offered"
    assert world.store.offer_to(p.id, fourth) is None
    stored = world.store.pledges[p.id]
    assert (stored.status, stored.reserved_rupiah, stored.matched_at) == (
        "exhausted",
        10_000_000,
        NOW + timedelta(days=2),
    )
    assert len(world.of_type("PledgeExhausted")) == 1


async def test_a_decline_ranks_the_businesses_off_the_event_loop(world, monkeypatch) -> None:
    # A city's ranking takes a second of CPU per 100,000 businesses: on the loop it held HTTP, consumers and relay.
    ranked_on: list[int] = []
    rank = offers.rank_candidates

    def noting_thread(*args: Any) -> Any:
        ranked_on.append(threading.get_ident())
        return rank(*args)

    first, *_ = await register_ranked(world, 3)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    monkeypatch.setattr(offers, "rank_candidates", noting_thread)

    await handlers.decline_offer(handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "sudah dapat KUR",
                                                       OFFICER), world.uow(), world.deps)  # fmt: skip

    assert ranked_on and threading.get_ident() not in ranked_on


async def test_a_decline_with_nobody_left_reopens_the_pledge(world) -> None:
    first, second = await register_ranked(world, 2)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    uow = world.uow()

    decline = handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "", OFFICER)

    await handlers.decline_offer(decline, uow, world.deps)

    assert summary(uow.committed) == [("FundingDeclined", first)]
    assert uow.committed[0].reason == "declined by the business"
    assert world.store.offer_to(p.id, second).status == "offered"
    assert (world.store.pledges[p.id].status, world.store.pledges[p.id].remaining_rupiah) == ("open", 5_000_000)


async def test_declining_an_offer_past_its_expiry_records_it_as_expired_and_refuses_the_decline(world) -> None:
    first, second, third = await register_ranked(world, 3)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    world.clock.set(NOW + timedelta(days=14, seconds=1))  # the sweep has not run yet
    uow = world.uow()
    decline = handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "sudah dapat KUR", OFFICER)

    with pytest.raises(Conflict) as exc:
        await handlers.decline_offer(decline, uow, world.deps)

    assert (exc.value.code, exc.value.details) == ("offer_not_open", {"offer_status": "expired"})
    assert "expired at" in str(exc.value)
    assert summary(uow.committed) == [("FundingExpired", first), ("FundingMatched", third)]
    offer = world.store.offer_to(p.id, first)
    assert (offer.status, offer.reason) == ("expired", None)
    assert world.store.offer_to(p.id, second).status == "offered"  # its own expiry is the sweep's to record
    assert world.store.pledges[p.id].reserved_rupiah == 10_000_000


async def test_a_decline_in_the_offers_last_second_is_a_decline(world) -> None:
    first, _ = await register_ranked(world, 2)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    world.clock.set(NOW + timedelta(days=14, seconds=-1))
    uow = world.uow()

    declined = await handlers.decline_offer(
        handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "", OFFICER), uow, world.deps)

    assert (declined.status, summary(uow.committed)) == ("declined", [("FundingDeclined", first)])


async def test_a_pledge_reopened_by_a_decline_is_exhausted_again_by_a_newcomer_and_says_so(world) -> None:
    first, _ = await register_ranked(world, 2)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)
    decline = handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "", OFFICER)
    await handlers.decline_offer(decline, world.uow(), world.deps)

    newcomer = await world.register()

    assert summary(world.uows[-1].committed) == [("FundingMatched", newcomer), ("PledgeExhausted", None)]
    assert len(world.of_type("PledgeExhausted")) == 2


async def accepted_offer(world: FundingWorld) -> tuple[Pledge, Offer]:
    """One business, one pledge, its offer accepted."""
    business_id = await world.register()
    p = await world.add_pledge()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    return p, await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)


async def test_declining_an_accepted_offer_is_a_conflict_and_changes_nothing(world) -> None:
    _, offer = await accepted_offer(world)
    before = world.store.snapshot()

    with pytest.raises(Conflict) as exc:
        await handlers.decline_offer(handlers.DeclineOffer(offer.id, "no", OFFICER), world.uow(), world.deps)

    assert exc.value.code == "offer_not_open"
    assert world.store.snapshot() == before


async def test_disbursing_an_accepted_offer_publishes_funds_disbursed_for_the_notifier(world) -> None:
    business_id = await world.register(business_name="Tenun Ikat Ibu Yuli", contact_phone="+6281339998888")
    p = await world.add_pledge()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)
    uow = world.uow()

    disbursed = await handlers.disburse_offer(
        handlers.DisburseOffer(offer.id, " TRF-2026-0042 ", SPONSOR), uow, world.deps
    )

    assert (disbursed.status, disbursed.reference) == ("disbursed", "TRF-2026-0042")
    [event] = uow.committed
    assert isinstance(event, FundsDisbursed)
    assert (event.reference, event.business_name, event.contact_phone, event.sponsor_name, event.amount_rupiah) == (
        "TRF-2026-0042", "Tenun Ikat Ibu Yuli", "+6281339998888", "Bank NTT", 5_000_000,
    )  # fmt: skip
    stored = world.store.pledges[p.id]
    assert (stored.reserved_rupiah, stored.accepted_rupiah, stored.disbursed_rupiah) == (0, 0, 5_000_000)
    assert world.store.businesses[business_id].funded_count == 1


async def test_an_offer_not_yet_accepted_cannot_be_disbursed(world) -> None:
    business_id = await world.register()
    p = await world.add_pledge()
    await world.match(p.id)
    uow = world.uow()

    with pytest.raises(Conflict) as exc:
        await handlers.disburse_offer(
            handlers.DisburseOffer(world.store.offer_to(p.id, business_id).id, "TRF-1", SPONSOR), uow, world.deps
        )

    assert exc.value.code == "offer_not_accepted"
    assert (uow.committed, world.store.pledges[p.id].disbursed_rupiah) == ([], 0)


async def test_a_retried_accept_answers_the_accepted_offer_and_records_nothing_twice(world) -> None:
    _, first = await accepted_offer(world)
    offer = first
    before = world.store.snapshot()
    uow = world.uow()

    again = await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), uow, world.deps)

    assert again == first and again.status == "accepted"
    assert uow.committed == [] and world.store.snapshot() == before


async def test_a_retried_payment_with_the_same_reference_is_recorded_once_and_another_reference_is_refused(world) -> None:
    p, offer = await accepted_offer(world)
    await handlers.disburse_offer(handlers.DisburseOffer(offer.id, "TRF-2026-0042", SPONSOR), world.uow(), world.deps)
    before = world.store.snapshot()
    uow = world.uow()

    again = await handlers.disburse_offer(handlers.DisburseOffer(offer.id, " TRF-2026-0042 ", SPONSOR), uow, world.deps)
    with pytest.raises(Conflict) as other:
        await handlers.disburse_offer(handlers.DisburseOffer(offer.id, "TRF-2026-0043", SPONSOR), world.uow(),
                                      world.deps)  # fmt: skip
    with pytest.raises(Forbidden):  # the retry is still only the pledge's sponsor's
        await handlers.disburse_offer(handlers.DisburseOffer(offer.id, "TRF-2026-0042", OTHER_SPONSOR), world.uow(),
                                      world.deps)  # fmt: skip

    assert (again.status, again.reference, uow.committed) == ("disbursed", "TRF-2026-0042", [])
    assert world.store.snapshot() == before and world.store.pledges[p.id].disbursed_rupiah == 5_000_000
    assert other.value.code == "offer_not_accepted" and "TRF-2026-0042" in other.value.message
    assert other.value.details == {"offer_status": "disbursed", "reference": "TRF-2026-0042"}


async def test_a_retried_decline_with_the_same_reason_offers_the_money_once(world) -> None:
    business_id = await world.register()
    p = await world.add_pledge()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    await handlers.decline_offer(handlers.DeclineOffer(offer.id, "sudah dapat KUR", OFFICER), world.uow(), world.deps)
    before = world.store.snapshot()
    uow = world.uow()

    again = await handlers.decline_offer(handlers.DeclineOffer(offer.id, " sudah dapat KUR ", OFFICER), uow,
                                         world.deps)  # fmt: skip
    with pytest.raises(Conflict) as other:
        await handlers.decline_offer(handlers.DeclineOffer(offer.id, "tidak butuh", OFFICER), world.uow(), world.deps)

    assert (again.status, again.reason, uow.committed) == ("declined", "sudah dapat KUR", [])
    assert world.store.snapshot() == before
    assert other.value.code == "offer_not_open" and "sudah dapat KUR" in other.value.message


# ---------------------------------------------------------------------------------------------------------------
# close_pledge
# ---------------------------------------------------------------------------------------------------------------


async def test_closing_a_pledge_withdraws_unanswered_offers_keeps_accepted_ones_and_reports_the_totals(world) -> None:
    kept, unanswered_1, unanswered_2 = await register_ranked(world, 3)
    p = await world.add_pledge(total_rupiah=15_000_000)
    await world.match(p.id)
    await handlers.accept_offer(
        handlers.AcceptOffer(world.store.offer_to(p.id, kept).id, OFFICER), world.uow(), world.deps
    )
    uow = world.uow()

    closed = await handlers.close_pledge(handlers.ClosePledge(p.id, "program selesai", SPONSOR), uow, world.deps)

    assert sorted(summary(uow.committed[:-1]), key=str) == sorted(
        [("FundingWithdrawn", unanswered_1), ("FundingWithdrawn", unanswered_2)], key=str
    )
    assert {e.reason for e in uow.committed[:-1]} == {"the pledge was closed"}
    last = uow.committed[-1]
    assert isinstance(last, PledgeClosed)
    assert (last.reason, last.closed_at) == ("program selesai", NOW)
    assert last.totals == PledgeTotals(pledged_rupiah=15_000_000, reserved_rupiah=0, accepted_rupiah=5_000_000,
                                       disbursed_rupiah=0, remaining_rupiah=10_000_000)  # fmt: skip
    assert (closed.status, world.store.pledges[p.id].status) == ("closed", "closed")
    assert world.store.offer_to(p.id, kept).status == "accepted"
    # The accepted offer is still disbursed after the close.
    await handlers.disburse_offer(
        handlers.DisburseOffer(world.store.offer_to(p.id, kept).id, "TRF-9", SPONSOR), world.uow(), world.deps
    )
    assert world.store.pledges[p.id].disbursed_rupiah == 5_000_000


async def test_closing_a_pledge_twice_is_a_conflict_that_publishes_nothing(world) -> None:
    p = await world.add_pledge()
    await handlers.close_pledge(handlers.ClosePledge(p.id, "", SPONSOR), world.uow(), world.deps)
    before = world.store.snapshot()
    uow = world.uow()

    with pytest.raises(Conflict) as exc:
        await handlers.close_pledge(handlers.ClosePledge(p.id, "again", SPONSOR), uow, world.deps)

    assert exc.value.code == "pledge_closed"
    assert (uow.committed, world.store.snapshot()) == ([], before)


async def test_closing_an_unknown_pledge_is_not_found(world) -> None:
    with pytest.raises(NotFound):
        await handlers.close_pledge(handlers.ClosePledge(uuid.uuid4(), "", SPONSOR), world.uow(), world.deps)


async def test_a_closed_pledge_offers_nothing_to_a_newly_eligible_business(world) -> None:
    p = await world.add_pledge()
    await handlers.close_pledge(handlers.ClosePledge(p.id, "", SPONSOR), world.uow(), world.deps)

    uow = await world.consume(registered())

    assert (uow.committed, world.store.offers) == ([], {})


# ---------------------------------------------------------------------------------------------------------------
# Time passing
# ---------------------------------------------------------------------------------------------------------------


async def test_only_offers_past_their_expiry_expire_and_their_money_goes_to_the_next_in_line(world) -> None:
    a, b, c, d, e = await register_ranked(world, 5)
    p = await world.add_pledge(total_rupiah=10_000_000)
    await world.match(p.id)  # a and b, until NOW + 14 days
    world.clock.set(NOW + timedelta(days=3))
    decline = handlers.DeclineOffer(world.store.offer_to(p.id, a).id, "", OFFICER)
    await handlers.decline_offer(decline, world.uow(), world.deps)  # c, until NOW + 17 days

    world.clock.set(NOW + timedelta(days=14) - timedelta(seconds=1))
    assert await handlers.expire_due_offers(world, world.deps) == 0
    world.clock.set(NOW + timedelta(days=14))
    published_before = len(world.published)

    expired = await handlers.expire_due_offers(world, world.deps)

    assert expired == 1
    assert summary(world.published[published_before:]) == [("FundingExpired", b), ("FundingMatched", d)]
    assert isinstance(world.published[published_before], FundingExpired)
    assert world.store.offer_to(p.id, b).status == "expired"
    assert world.store.offer_to(p.id, c).status == "offered"
    assert world.store.offer_to(p.id, e) is None
    stored = world.store.pledges[p.id]
    assert (stored.status, stored.reserved_rupiah) == ("exhausted", 10_000_000)
    assert len(world.of_type("PledgeExhausted")) == 1


async def test_expiring_when_nothing_is_due_publishes_nothing(world) -> None:
    await register_ranked(world, 2)
    p = await world.add_pledge()
    await world.match(p.id)
    published_before = len(world.published)

    assert await handlers.expire_due_offers(world, world.deps) == 0
    assert len(world.published) == published_before


async def test_expiry_handles_each_pledge_in_its_own_transaction(world) -> None:
    business_id = await world.register()
    pledges = [await world.add_pledge() for _ in range(3)]
    for p in pledges:
        await world.match(p.id)
    world.clock.set(NOW + timedelta(days=15))
    uows_before = len(world.uows)

    assert await handlers.expire_due_offers(world, world.deps) == 3

    per_pledge = world.uows[uows_before + 1 :]
    assert [u.commits for u in per_pledge] == [1, 1, 1]
    assert [[e.pledge_id for e in u.committed] for u in per_pledge] == [[p] for p in sorted(p.id for p in pledges)]
    assert {o.status for o in world.store.offers.values() if o.business_id == business_id} == {"expired"}


async def test_following_pledge_windows_matches_a_pledge_that_opened_and_closes_one_that_ended_its_offers_expired(
    world,
) -> None:
    a, b = await register_ranked(world, 2)
    starting = await world.add_pledge(valid_from=date(2026, 3, 11))
    ending = await world.add_pledge(total_rupiah=5_000_000, valid_from=date(2026, 3, 1), valid_until=date(2026, 3, 10))
    await world.match(starting.id)
    await world.match(ending.id)
    published_before = len(world.published)

    await handlers.follow_pledge_windows(world, world.deps)
    assert len(world.published) == published_before  # neither window has moved yet today

    world.clock.set(NOW + timedelta(days=1))  # 2026-03-11 10.00 WITA
    await handlers.follow_pledge_windows(world, world.deps)

    events = world.published[published_before:]
    opened = [e for e in events if e.pledge_id == starting.id]
    ended = [e for e in events if e.pledge_id == ending.id]
    assert summary(opened) == [("FundingMatched", a), ("FundingMatched", b)]
    # The offer ran until the window's end: it expired, whether or not the expiry sweep came first.
    assert summary(ended) == [("FundingExpired", a), ("PledgeClosed", None)]
    assert ended[1].reason == "the validity window ended"
    assert world.store.pledges[starting.id].matched_at == NOW + timedelta(days=1)
    assert world.store.pledges[ending.id].status == "closed"

    again = len(world.published)
    world.clock.set(NOW + timedelta(days=2))
    await handlers.follow_pledge_windows(world, world.deps)
    assert len(world.published) == again


async def test_a_business_that_time_alone_makes_eligible_is_offered_on_the_first_sweep_of_that_day_in_kupang(
    world,
) -> None:
    # Readiness 45 without the track record's 10 (NIB 25, sales 10, youth 10); the pledge asks 50.
    veteran = await world.register(registered_at=datetime(2024, 1, 15, 1, 0, tzinfo=UTC))
    newcomer = await world.register(registered_at=datetime(2025, 3, 12, 1, 0, tzinfo=UTC))  # a year old on 12 March
    p = await world.add_pledge(earmarks=Earmarks(min_readiness=50))
    await world.match(p.id)
    assert {o.business_id for o in world.store.offers.values()} == {veteran}

    world.clock.set(NOW + timedelta(days=1))  # 11 March: not a year yet
    await handlers.follow_pledge_windows(world, world.deps)
    assert {o.business_id for o in world.store.offers.values()} == {veteran}

    world.clock.set(datetime(2026, 3, 11, 16, 5, tzinfo=UTC))  # 12 March 00.05 WITA
    published_before = len(world.published)
    await handlers.follow_pledge_windows(world, world.deps)

    assert summary(world.published[published_before:]) == [("FundingMatched", newcomer)]
    offer, _, eligible_since = world.matches[-1]
    assert eligible_since == datetime(2026, 3, 11, 16, 0, tzinfo=UTC)  # midnight in Kupang, when it became eligible
    assert world.store.pledges[p.id].matched_at == datetime(2026, 3, 11, 16, 5, tzinfo=UTC)

    uows_before = len(world.uows)
    world.clock.set(datetime(2026, 3, 11, 16, 10, tzinfo=UTC))
    await handlers.follow_pledge_windows(world, world.deps)
    assert len(world.uows) == uows_before + 1  # one look, no pledge ranked twice in a day


async def test_two_closures_in_one_batch_give_their_money_back_before_the_pledge_is_refilled_once(world) -> None:
    x, y = await register_ranked(world, 2)
    p = await world.add_pledge(total_rupiah=30_000_000, amount_per_business_rupiah=10_000_000,
                               min_offer_rupiah=10_000_000)  # fmt: skip
    await world.match(p.id)  # x and y hold 10,000,000 each; 10,000,000 is left
    published_before = len(world.published)
    newcomers = [registered(registered_at=START + timedelta(days=2 + i)) for i in range(2)]

    await world.consume_batch([delivery(business_closed(x, 2)), delivery(business_closed(y, 2)),
                               *(delivery(n) for n in newcomers)])  # fmt: skip

    # Refilled between the two closures, the pledge ran out, then had money back: its PledgeExhausted spoke of a
    # state never committed.
    assert summary(world.published[published_before:]) == [
        ("FundingWithdrawn", x), ("FundingWithdrawn", y),
        ("FundingMatched", newcomers[0].business_id), ("FundingMatched", newcomers[1].business_id),
    ]  # fmt: skip
    committed = world.store.pledges[p.id]
    assert (committed.status, committed.remaining_rupiah) == ("open", 10_000_000)


async def test_a_sweep_that_runs_past_the_end_of_a_pledges_window_makes_no_offer_after_it(world) -> None:
    """The sweep lists the pledges to rank again at 23.59.50 WITA on the pledge's last day, and reaches this one
    at 00.00.10: an offer then would expire as it is made, its owner told of money they can't accept."""
    last_day = datetime(2026, 6, 30, 15, 59, 50, tzinfo=UTC)  # 23.59.50 WITA
    world.clock.set(last_day)
    await world.register(registered_at=START)  # eligible, and no offer yet: ranking would offer to it
    p = await world.add_pledge(valid_from=date(2026, 3, 1), valid_until=date(2026, 6, 30),
                               matched_at=last_day - timedelta(days=1))  # fmt: skip
    listing = len(world.uows) + 1

    def slow_sweep(cause: Any = None) -> Any:
        uow = world.uow(cause)
        if len(world.uows) > listing:
            world.clock.set(last_day + timedelta(seconds=20))
        return uow

    await handlers.follow_pledge_windows(slow_sweep, world.deps)

    assert world.store.offers_of_pledge(p.id) == []


class ListsBeforeAnotherSweepRanks(FakeFundingStore):
    """A store whose list of pledges to rank again was read before another instance's sweep ranked them today."""

    def __init__(self, stale: list[uuid.UUID]) -> None:
        super().__init__()
        self.stale = stale

    async def pledges_to_rematch(self, today: date) -> list[uuid.UUID]:
        return self.stale


async def test_a_pledge_another_instance_ranked_today_is_not_ranked_again_though_listed_before_it_did() -> None:
    store = ListsBeforeAnotherSweepRanks([])
    world = FundingWorld(store=store)
    await world.add_sponsor()
    await world.register()
    p = await world.add_pledge()
    await world.match(p.id)
    store.stale.append(p.id)
    world.clock.set(NOW + timedelta(days=1))
    await handlers.follow_pledge_windows(world, world.deps)  # the other instance's sweep
    ranked_at = store.pledges[p.id].matched_at
    assert ranked_at == NOW + timedelta(days=1)

    world.clock.set(NOW + timedelta(days=1, minutes=1))
    await handlers.follow_pledge_windows(world, world.deps)

    assert store.pledges[p.id].matched_at == ranked_at


async def test_a_pledge_opening_at_midnight_in_kupang_is_matched_though_it_is_still_the_day_before_in_utc(
    world,
) -> None:
    business_id = await world.register()
    p = await world.add_pledge(valid_from=date(2026, 3, 11))
    await world.match(p.id)

    world.clock.set(datetime(2026, 3, 10, 16, 5, tzinfo=UTC))  # 2026-03-11 00.05 WITA
    await handlers.follow_pledge_windows(world, world.deps)

    assert world.store.offer_to(p.id, business_id) is not None


# ---------------------------------------------------------------------------------------------------------------
# A batch of registry events
# ---------------------------------------------------------------------------------------------------------------


async def test_a_batch_where_one_business_becomes_eligible_and_another_closes_locks_its_pledges_once_in_id_order(
    world,
) -> None:  # fmt: skip
    closing = await world.register(kecamatan_code=ALAK, registered_at=START)
    await world.register(kecamatan_code=ALAK, registered_at=START + timedelta(days=1))
    waiting = await world.register(nib_status="applied")
    for_alak = [await world.add_pledge(total_rupiah=10_000_000, earmarks=Earmarks(kecamatan_codes=(ALAK,)))
                for _ in range(3)]  # fmt: skip
    for_nib = [await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(OEBOBO,), nib_required=True))
               for _ in range(3)]  # fmt: skip
    untouched = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(MAULAFA,)))
    for p in [*for_alak, *for_nib, untouched]:
        await world.match(p.id)
    assert all(world.store.offer_to(p.id, closing) for p in for_alak)
    world.store.locked.clear()

    uow = await world.consume_batch([delivery(nib_issued(waiting, 2)), delivery(business_closed(closing, 2, ALAK))])

    touched = sorted(p.id for p in [*for_alak, *for_nib])
    assert world.store.locked == [touched]  # one lock, every touched pledge, ascending ids, no other pledge
    assert sorted((type(e).__name__, e.pledge_id) for e in uow.committed) == sorted(
        [*(("FundingWithdrawn", p.id) for p in for_alak), *(("FundingMatched", p.id) for p in for_nib)]
    )
    assert untouched.id not in touched


async def test_a_batch_offers_each_business_the_pledges_for_its_kecamatan_and_for_every_kecamatan_and_no_other(
    world,
) -> None:  # fmt: skip
    in_alak = await world.register(kecamatan_code=ALAK, nib_status="applied")
    in_oebobo = await world.register(kecamatan_code=OEBOBO, nib_status="applied")
    in_maulafa = await world.register(kecamatan_code=MAULAFA, nib_status="applied")
    for_alak = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(ALAK,), nib_required=True))
    for_two = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(OEBOBO, MAULAFA), nib_required=True))
    for_all = await world.add_pledge(earmarks=Earmarks(nib_required=True))
    for_oebobo = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(OEBOBO,), nib_required=True))
    for p in (for_alak, for_two, for_all, for_oebobo):
        await world.match(p.id)

    uow = await world.consume_batch([delivery(nib_issued(b, 2, k)) for b, k in
                                     ((in_alak, ALAK), (in_oebobo, OEBOBO), (in_maulafa, MAULAFA))])  # fmt: skip

    offered = {(e.business_id, e.pledge_id) for e in uow.committed if isinstance(e, FundingMatched)}
    assert offered == {(in_alak, for_alak.id), (in_alak, for_all.id), (in_oebobo, for_two.id), (in_oebobo, for_all.id),
                       (in_oebobo, for_oebobo.id), (in_maulafa, for_two.id), (in_maulafa, for_all.id)}  # fmt: skip


async def test_every_pledge_lock_of_a_story_is_taken_in_ascending_id_order(world) -> None:
    businesses = await register_ranked(world, 4)
    waiting = await world.register(nib_status="applied")
    pledges = [await world.add_pledge(total_rupiah=10_000_000, earmarks=Earmarks(nib_required=True)) for _ in range(4)]
    for p in pledges:
        await world.match(p.id)
    offer = world.store.offer_to(pledges[0].id, businesses[0])
    await handlers.decline_offer(handlers.DeclineOffer(offer.id, "", OFFICER), world.uow(), world.deps)
    await handlers.decline_offer(handlers.DeclineOffer(world.store.offer_to(pledges[1].id, businesses[1]).id, "",
                                                       OFFICER), world.uow(), world.deps)  # fmt: skip

    await world.consume_batch([
        delivery(business_closed(businesses[0], 2)), delivery(nib_issued(waiting, 2)),
        delivery(business_closed(businesses[2], 2)),
    ])  # fmt: skip

    assert world.store.locked  # the story did lock pledges
    for ids in world.store.locked:
        assert ids == sorted(set(ids)), "pledges locked out of id order (or twice): two paths could deadlock"


async def test_a_ranking_holds_the_ranking_lock_alone_before_its_pledge_a_batch_shared_before_its_first_look(
    world,
) -> None:  # fmt: skip
    # Without it, a ranking reading the businesses while a batch makes one eligible misses it, and the batch, having
    # read the pledge as not ranked yet, leaves it to the ranking: tested with two transactions on real PostgreSQL.
    p = await world.add_pledge()
    opening = await world.add_pledge(valid_from=date(2026, 3, 11))
    world.store.steps.clear()
    await world.match(p.id)
    assert world.store.steps[:2] == ["ranking alone", "pledges locked"]

    world.store.steps.clear()
    await world.register()
    assert world.store.steps[:2] == ["ranking shared", "pledges read"]

    world.store.steps.clear()
    world.clock.set(NOW + timedelta(days=1))
    await handlers.follow_pledge_windows(world, world.deps)
    assert world.store.steps[:2] == ["ranking alone", "pledges locked"]
    assert world.store.pledges[opening.id].matched_at == NOW + timedelta(days=1)


async def test_a_closing_business_locks_the_pledges_it_qualified_for_even_those_it_has_no_offer_from(world) -> None:
    # One may be refilling right now (a decline, an expiry) from a view that still shows the business active: its
    # offer must be committed, and then withdrawn, before the batch looks. Tested with two transactions on PostgreSQL.
    first, second = await register_ranked(world, 2)
    spent = await world.add_pledge(total_rupiah=5_000_000, earmarks=Earmarks(nib_required=True))
    elsewhere = await world.add_pledge(earmarks=Earmarks(kecamatan_codes=(MAULAFA,)))
    for p in (spent, elsewhere):
        await world.match(p.id)
    assert world.store.offer_to(spent.id, second) is None
    world.store.locked.clear()

    await world.consume(business_closed(second, 2))

    assert world.store.locked == [[spent.id]]


class FirstLookBefore(FakeFundingStore):
    """A store whose first look at the pledges, without their locks, returns `seen` once it is set: the pledges as
    they were before another transaction committed in between."""

    seen: list[Pledge] | None = None

    async def unclosed_pledges(self) -> list[Pledge]:
        return self.seen if self.seen is not None else await super().unclosed_pledges()


async def test_money_a_decline_gave_back_after_a_batch_first_looked_at_the_pledge_goes_to_the_business_it_made_eligible(
) -> None:  # fmt: skip
    world = FundingWorld(store=FirstLookBefore())
    await world.add_sponsor()
    first = await world.register(registered_at=START)
    waiting = await world.register(nib_status="applied", registered_at=START + timedelta(days=1))
    p = await world.add_pledge(total_rupiah=5_000_000, earmarks=Earmarks(nib_required=True))
    await world.match(p.id)
    world.store.seen = await FakeFundingStore.unclosed_pledges(world.store)
    assert world.store.seen[0].status == "exhausted"
    decline = handlers.DeclineOffer(world.store.offer_to(p.id, first).id, "", OFFICER)
    await handlers.decline_offer(decline, world.uow(), world.deps)  # nobody else eligible yet: the money waits
    assert world.store.pledges[p.id].status == "open"

    uow = await world.consume(nib_issued(waiting, 2))

    assert summary(uow.committed) == [("FundingMatched", waiting), ("PledgeExhausted", None)]


async def test_events_emitted_while_handling_a_batch_carry_the_cause_of_the_event_that_led_to_them(world) -> None:
    already = await world.register(registered_at=START)
    waiting = await world.register(nib_status="applied", registered_at=START + timedelta(days=1))
    p = await world.add_pledge(total_rupiah=15_000_000, earmarks=Earmarks(nib_required=True))
    await world.match(p.id)
    newcomer_id = uuid.uuid4()
    not_yet = delivery(registered(nib_status="none"), actor="petugas.oebobo")
    nib = delivery(nib_issued(waiting, 2), actor="petugas.oebobo")
    newcomer = delivery(registered(newcomer_id), actor="import")

    uow = await world.consume_batch([not_yet, nib, newcomer])

    assert uow.cause.causation_id == not_yet.envelope.event_id  # the batch's unit of work: its first event
    assert [type(e).__name__ for e in uow.committed_events] == ["OfferMade", "OfferMade", "PledgeRanOut"]
    assert [(type(e).__name__, e.business_id) for e in uow.committed[:2]] == [
        ("FundingMatched", waiting), ("FundingMatched", newcomer_id),
    ]  # fmt: skip
    expected = [nib.envelope, newcomer.envelope, newcomer.envelope]  # the newcomer's offer used the last of the money
    assert [c.causation_id for c in uow.committed_causes] == [e.event_id for e in expected]
    assert [(c.correlation_id, c.actor) for c in uow.committed_causes] == [
        (e.correlation_id, e.actor) for e in expected
    ]
    # ... and so their envelopes say so.
    assert [(e.causation_id, e.correlation_id, e.actor) for e in uow.envelopes] == [
        (c.event_id, c.correlation_id, c.actor) for c in expected
    ]

    closure = delivery(business_closed(already, 2), actor="petugas.oebobo")
    closed = await world.consume_batch([delivery(updated(waiting, 3, changed=("scale",), scale="small")), closure])

    assert [type(e).__name__ for e in closed.committed] == ["FundingWithdrawn"]
    assert [c.causation_id for c in closed.committed_causes] == [closure.envelope.event_id]
    assert closed.envelopes[0].causation_id == closure.envelope.event_id

    q = await world.add_pledge(earmarks=Earmarks(trainings_completed=("packaging",)))
    await world.match(q.id)  # nobody has completed packaging yet
    other_topic = delivery(training_completed(newcomer_id, "digital_marketing"), actor="trainer")
    packaging = delivery(training_completed(waiting, "packaging"), actor="trainer")

    trained = await world.consume_batch([other_topic, packaging])

    assert [(type(e).__name__, e.pledge_id, e.business_id) for e in trained.committed] == [
        ("FundingMatched", q.id, waiting),
    ]  # fmt: skip
    assert [(c.causation_id, c.actor) for c in trained.committed_causes] == [(packaging.envelope.event_id, "trainer")]


# ---------------------------------------------------------------------------------------------------------------
# Who may act for whom
# ---------------------------------------------------------------------------------------------------------------

PRINCIPALS: dict[str, Principal] = {
    "own sponsor": SPONSOR,
    "other sponsor": OTHER_SPONSOR,
    "admin": ADMIN,
    "city-wide officer": OFFICER,
    "officer of the business's kecamatan": OEBOBO_OFFICER,
    "officer of another kecamatan": ALAK_OFFICER,
}
# Which principals each handler lets through. Roles are the routes' to check (a sponsor token can't reach accept);
# the handlers check for whom the caller acts, so every principal the route lets in is in the matrix, and for the
# sponsor's commands officers too (their tokens act for no sponsor).
ALLOWED: dict[str, dict[str, bool]] = {
    "make_pledge": {"own sponsor": True, "other sponsor": False, "admin": True, "city-wide officer": False,
                    "officer of the business's kecamatan": False, "officer of another kecamatan": False},
    "close_pledge": {"own sponsor": True, "other sponsor": False, "admin": True, "city-wide officer": False,
                     "officer of the business's kecamatan": False, "officer of another kecamatan": False},
    "disburse_offer": {"own sponsor": True, "other sponsor": False, "admin": True, "city-wide officer": False,
                       "officer of the business's kecamatan": False, "officer of another kecamatan": False},
    "accept_offer": {"admin": True, "city-wide officer": True, "officer of the business's kecamatan": True,
                     "officer of another kecamatan": False},
    "decline_offer": {"admin": True, "city-wide officer": True, "officer of the business's kecamatan": True,
                      "officer of another kecamatan": False},
}  # fmt: skip
# What each allowed command publishes last.
LAST_PUBLISHED = {"make_pledge": "CSRPledged", "close_pledge": "PledgeClosed", "disburse_offer": "FundsDisbursed",
                  "accept_offer": "FundingAccepted", "decline_offer": "FundingDeclined"}  # fmt: skip


@pytest.mark.parametrize(
    ("command", "who", "allowed"),
    [(command, who, allowed) for command, row in ALLOWED.items() for who, allowed in row.items()],
)
async def test_each_handler_allows_exactly_the_principals_acting_for_its_sponsor_or_kecamatan(
    command, who, allowed
) -> None:  # fmt: skip
    world = FundingWorld()
    await world.add_sponsor()
    await world.add_sponsor(OTHER_SPONSOR_ID, "Bank BRI", "bank")
    business_id = await world.register(kecamatan_code=OEBOBO)
    p = await world.add_pledge()
    await world.match(p.id)
    offer = world.store.offer_to(p.id, business_id)
    if command == "disburse_offer":
        await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)
    by = PRINCIPALS[who]
    handler, message = {
        "make_pledge": (handlers.make_pledge, handlers.MakePledge(pledge_form(), by)),
        "close_pledge": (handlers.close_pledge, handlers.ClosePledge(p.id, "selesai", by)),
        "disburse_offer": (handlers.disburse_offer, handlers.DisburseOffer(offer.id, "TRF-1", by)),
        "accept_offer": (handlers.accept_offer, handlers.AcceptOffer(offer.id, by)),
        "decline_offer": (handlers.decline_offer, handlers.DeclineOffer(offer.id, "", by)),
    }[command]
    before = world.store.snapshot()
    uow = world.uow()

    if allowed:
        await handler(message, uow, world.deps)
        assert uow.commits == 1
        assert type(uow.committed[-1]).__name__ == LAST_PUBLISHED[command]
        assert world.store.snapshot() != before
    else:
        with pytest.raises(Forbidden):
            await handler(message, uow, world.deps)
        assert (uow.commits, uow.committed, world.store.snapshot()) == (0, [], before)


async def test_an_officer_answers_for_the_businesses_of_the_kecamatan_the_business_is_in_now(world) -> None:
    business_id = await world.register(kecamatan_code=OEBOBO)
    p = await world.add_pledge()
    await world.match(p.id)
    await world.consume(updated(business_id, 2, kecamatan_code=ALAK))
    offer = world.store.offer_to(p.id, business_id)

    with pytest.raises(Forbidden):
        await handlers.decline_offer(handlers.DeclineOffer(offer.id, "", OEBOBO_OFFICER), world.uow(), world.deps)
    declined = await handlers.decline_offer(handlers.DeclineOffer(offer.id, "", ALAK_OFFICER), world.uow(), world.deps)

    assert declined.status == "declined"


# ---------------------------------------------------------------------------------------------------------------
# The store's contract
# ---------------------------------------------------------------------------------------------------------------


def test_the_fake_store_implements_the_whole_store_contract() -> None:
    assert isinstance(FakeFundingStore(), FundingStore)
    assert all(getattr(FakeFundingStore, name) is not getattr(FundingStore, name)
               for name in FundingStore.__abstractmethods__)  # fmt: skip


def test_a_store_that_does_not_implement_pledges_with_due_offers_cannot_be_instantiated() -> None:
    class WithoutDueOffers(FakeFundingStore):
        pledges_with_due_offers = FundingStore.pledges_with_due_offers  # type: ignore[assignment]

    assert "pledges_with_due_offers" in FundingStore.__abstractmethods__
    with pytest.raises(TypeError):
        WithoutDueOffers()


# ---------------------------------------------------------------------------------------------------------------
# What partners report back
# ---------------------------------------------------------------------------------------------------------------


def outcome_delivery(event: EventPayload, topic: str) -> Delivery:
    return Delivery(new_envelope(event, producer="bri", correlation_id=uuid.uuid4()), event, topic)


async def test_a_partners_reported_outcomes_are_recorded_once_each(world) -> None:
    consent, offer = uuid.uuid4(), uuid.uuid4()
    approved = FinancingApproved(partner_id="bri", consent_id=consent, offer_id=offer, amount_rupiah=25_000_000,
                                 approved_on=TODAY)  # fmt: skip
    delivery = outcome_delivery(approved, "partner.bri.outcomes.v1")

    for _ in range(2):
        async with world.uow() as uow:
            await handlers.record_partner_outcomes([delivery], uow, world.deps)

    [recorded] = world.store.partner_outcomes.values()
    assert (recorded.partner_id, recorded.kind, recorded.amount_rupiah, recorded.offer_id) == (
        "bri", "approved", 25_000_000, offer)


async def test_an_outcome_claiming_another_partner_than_its_topic_is_refused_as_the_records_fault(world) -> None:
    forged = FinancingDisbursed(partner_id="bank-ntt", consent_id=uuid.uuid4(), amount_rupiah=1, disbursed_on=TODAY)

    with pytest.raises(ContractError, match="claiming partner 'bank-ntt'"):
        async with world.uow() as uow:
            await handlers.record_partner_outcomes([outcome_delivery(forged, "partner.bri.outcomes.v1")], uow, world.deps)
    assert world.store.partner_outcomes == {}


@pytest.mark.parametrize("topic", ["partner.bri.outcomes.v1", "kupang.partner.bri.outcomes.v1"])
async def test_an_outcome_on_another_partners_topic_is_refused_for_good_not_for_a_retry(world, topic) -> None:
    forged = FinancingDisbursed(partner_id="bank-ntt", consent_id=uuid.uuid4(), amount_rupiah=1, disbursed_on=TODAY)
    own = FinancingDisbursed(partner_id="bri", consent_id=uuid.uuid4(), amount_rupiah=1, disbursed_on=TODAY)

    with pytest.raises(RecordRefused, match=f"claiming partner 'bank-ntt' arrived on {topic}"):
        async with world.uow() as uow:
            await handlers.record_partner_outcomes([outcome_delivery(forged, topic)], uow, world.deps)
    async with world.uow() as uow:
        await handlers.record_partner_outcomes([outcome_delivery(own, topic)], uow, world.deps)
    assert [o.partner_id for o in world.store.partner_outcomes.values()] == ["bri"]


async def test_an_outcome_dated_after_tomorrow_in_kupang_is_refused_for_good_and_tomorrow_is_taken(world) -> None:
    def approved(on: date) -> FinancingApproved:
        return FinancingApproved(partner_id="bri", consent_id=uuid.uuid4(), amount_rupiah=25_000_000, approved_on=on)

    for typo in (TODAY + timedelta(days=2), date(2062, 3, 10)):
        with pytest.raises(RecordRefused, match=f"dated {typo.isoformat()}, after {TODAY + timedelta(days=1)}"):
            async with world.uow() as uow:
                await handlers.record_partner_outcomes([outcome_delivery(approved(typo), "partner.bri.outcomes.v1")],
                                                       uow, world.deps)  # fmt: skip
    assert world.store.partner_outcomes == {}
    tomorrow = outcome_delivery(approved(TODAY + timedelta(days=1)), "partner.bri.outcomes.v1")
    async with world.uow() as uow:  # a partner a time zone or a clock ahead
        await handlers.record_partner_outcomes([tomorrow], uow, world.deps)
    assert [o.happened_on for o in world.store.partner_outcomes.values()] == [TODAY + timedelta(days=1)]


async def test_an_outcome_of_more_rupiah_than_any_pledge_holds_is_refused_for_good_naming_the_amount(world) -> None:
    # Unbounded in the contract, it failed PostgreSQL's bigint on every retry while other partners' outcomes waited.
    lent = FinancingDisbursed(partner_id="bri", consent_id=uuid.uuid4(), amount_rupiah=10**19, disbursed_on=TODAY)

    with pytest.raises(RecordRefused, match="is Rp10,000,000,000,000,000,000, over Rp1,000,000,000,000,000"):
        async with world.uow() as uow:
            await handlers.record_partner_outcomes([outcome_delivery(lent, "partner.bri.outcomes.v1")], uow,
                                                   world.deps)  # fmt: skip
    assert world.store.partner_outcomes == {}


async def test_a_flood_of_forged_outcomes_is_dead_lettered_at_once_and_holds_up_no_other_partners_outcome() -> None:
    world = FundingWorld()
    sleep, dead_letters = RecordingSleep(), FakeDeadLetters()

    async def apply(_, deliveries) -> None:  # noqa: ANN001 - the consumer's transaction is the fake store's
        async with world.uow() as uow:
            await handlers.record_partner_outcomes(deliveries, uow, world.deps)

    def on(topic: str, partner: str, offset: int) -> Record:
        event = FinancingApproved(partner_id=partner, consent_id=uuid.uuid4(), amount_rupiah=1, approved_on=TODAY)
        return Record(topic, 0, offset, b"k", new_envelope(event, producer="x", correlation_id=uuid.uuid4())
                      .to_json_bytes(), ())  # fmt: skip

    consumer = new_consumer(apply, {"FinancingApproved"}, sleep=sleep, dead_letters=dead_letters)
    forged = [on("partner.bank-ntt.outcomes.v1", "bri", i) for i in range(199)]
    outcomes = await consumer.handle_batch([*forged, on("partner.bri.outcomes.v1", "bri", 0)])

    assert outcomes == [Outcome.DEAD_LETTERED] * 199 + [Outcome.PROCESSED]
    assert sleep.delays == []  # no backoff: ~90 s of it per batch, before
    letters = [(letter.attempts, type(letter.error).__name__) for letter in dead_letters.sent]
    assert letters == [(1, "RecordRefused")] * 199
    assert len(world.store.partner_outcomes) == 1


async def test_while_the_view_is_rebuilt_an_officer_of_one_kecamatan_may_not_decline_and_nothing_is_disbursed(world):
    accepting, answering = await world.register(), await world.register()
    p = await world.add_pledge()
    await world.match(p.id)
    offer, other = world.store.offer_to(p.id, accepting), world.store.offer_to(p.id, answering)
    await handlers.accept_offer(handlers.AcceptOffer(offer.id, OFFICER), world.uow(), world.deps)
    world.store.rows.clear()  # `berdaya replay funding-view` emptied the view; it is not back yet
    before = world.store.snapshot()

    with pytest.raises(Conflict, match="view is being rebuilt") as refused:
        await handlers.decline_offer(handlers.DeclineOffer(other.id, "tidak jadi", ALAK_OFFICER), world.uow(),
                                     world.deps)  # fmt: skip
    with pytest.raises(Conflict, match="try again in a few minutes") as not_paid:
        await handlers.disburse_offer(handlers.DisburseOffer(offer.id, "TRF-1", SPONSOR), world.uow(), world.deps)

    assert (refused.value.code, not_paid.value.code) == ("business_unknown", "business_unknown")
    assert world.store.snapshot() == before

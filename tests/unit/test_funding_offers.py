"""Tests an offer's life in the domain: accepted, declined, expired, withdrawn, disbursed, and the pledge's closing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.funding.domain.offers import (
    Offer,
    accept,
    allocate,
    decline,
    disburse,
    expire,
    rank_candidates,
    release,
)
from services.funding.domain.pledges import Pledge, close_pledge
from services.funding.domain.view import BusinessView
from services.funding.routes import sees_reason
from shared.auth import Principal
from shared.contracts.funding import Earmarks
from shared.errors import Conflict, InvalidInput

from .funding_fakes import ADMIN, ALAK_OFFICER, NOW, OFFICER, SPONSOR, TODAY, pledge, view

LATER = NOW + timedelta(days=2)


def offered(
    p: Pledge | None = None, business: BusinessView | None = None
) -> tuple[Pledge, Offer, BusinessView]:
    """A pledge of two 5,000,000 offers that made both (so it is exhausted); the first offer and its business."""
    p = p or pledge(total_rupiah=10_000_000)
    first = business or view()
    p, offers = allocate(p, rank_candidates(p.earmarks, [first, view(registered_at=first.registered_at + timedelta(1))],
                                            TODAY), NOW, 14)  # fmt: skip
    assert offers[0].business_id == first.business_id
    return p, offers[0], first


def problems_of(exc: pytest.ExceptionInfo[Conflict]) -> list[str]:
    assert exc.value.code == "offer_not_acceptable"
    return exc.value.details["problems"]  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------
# accept
# ---------------------------------------------------------------------------------------------------------------


def test_accepting_moves_the_money_from_reserved_to_accepted() -> None:
    p, offer, business = offered()

    after, accepted = accept(p, offer, business, LATER)

    assert (after.reserved_rupiah, after.accepted_rupiah, after.remaining_rupiah) == (5_000_000, 5_000_000, 0)
    assert (accepted.status, accepted.decided_at) == ("accepted", LATER)


def test_an_offer_past_its_expiry_cannot_be_accepted() -> None:
    p, offer, business = offered()

    with pytest.raises(Conflict) as exc:
        accept(p, offer, business, offer.expires_at)

    assert problems_of(exc) == [f"the offer expired at {offer.expires_at.isoformat()}"]


def test_an_offer_cannot_be_accepted_after_the_pledge_window_ended() -> None:
    p, offer, business = offered(pledge(total_rupiah=10_000_000, valid_until=date(2026, 3, 11)))

    with pytest.raises(Conflict) as exc:
        accept(p, offer, business, NOW + timedelta(days=2))

    assert problems_of(exc)[0] == "the pledge is exhausted or outside its window 2026-03-01 to 2026-03-11"


def test_an_offer_made_near_the_end_of_its_pledges_window_expires_when_the_window_ends_not_days_later() -> None:
    _, offer, business = offered(pledge(total_rupiah=10_000_000, valid_until=date(2026, 3, 11)))

    assert offer.expires_at == datetime(2026, 3, 11, 16, 0, tzinfo=UTC)  # midnight in Kupang after 11 March
    _, plenty, _ = offered()
    assert plenty.expires_at == NOW + timedelta(days=14)  # a window that outlasts the offer days changes nothing


def test_an_offer_of_a_closed_pledge_cannot_be_accepted() -> None:
    p, offer, business = offered()

    with pytest.raises(Conflict) as exc:
        accept(close_pledge(p, "", NOW), offer, business, LATER)

    assert problems_of(exc)[0].startswith("the pledge is closed")


def test_an_offer_above_the_per_business_cap_cannot_be_accepted() -> None:
    p, offer, business = offered()

    with pytest.raises(Conflict) as exc:
        accept(p, replace(offer, amount_rupiah=6_000_000), business, LATER)

    assert problems_of(exc) == ["the amount is above the pledge's per-business cap"]


def test_a_business_the_registry_no_longer_flags_as_youth_cannot_accept_a_youth_only_offer() -> None:
    youth = view(youth_owned=True)
    p, offer, _ = offered(pledge(total_rupiah=10_000_000, earmarks=Earmarks(youth_owned_only=True)), youth)
    aged_out = replace(youth, version=2, youth_owned=False)  # the registry's BusinessUpdated on the 1st of the month

    with pytest.raises(Conflict) as exc:
        accept(p, offer, aged_out, LATER)

    assert problems_of(exc) == ["earmark youth_owned not met: needs youth owner, is no"]
    assert "youth_owned" in str(exc.value)
    # While the registry's flag says youth, the offer is accepted whatever the date: no ageing is computed here.
    assert accept(p, offer, youth, offer.expires_at - timedelta(seconds=1))[1].status == "accepted"


def test_acceptance_rechecks_every_earmark_and_lists_each_failure() -> None:
    earmarks = Earmarks(kecamatan_codes=("53.71.04",), nib_required=True)
    business = view()
    p, offer, _ = offered(pledge(total_rupiah=10_000_000, earmarks=earmarks), business)
    moved = replace(business, kecamatan_code="53.71.01", nib_status="rejected", status="closed")

    with pytest.raises(Conflict) as exc:
        accept(p, offer, moved, LATER)

    assert problems_of(exc) == [
        "earmark business_active not met: needs active, is closed",
        "earmark kecamatan not met: needs 53.71.04, is 53.71.01",
        "earmark nib not met: needs issued, is rejected",
    ]


def test_an_offer_to_a_business_funding_no_longer_knows_cannot_be_accepted() -> None:
    p, offer, _ = offered()

    with pytest.raises(Conflict) as exc:
        accept(p, offer, None, LATER)

    assert problems_of(exc) == ["funding no longer knows this business"]


@pytest.mark.parametrize("status", ["accepted", "declined", "expired", "withdrawn", "disbursed"])
def test_only_an_offered_offer_can_be_accepted(status) -> None:
    p, offer, business = offered()

    with pytest.raises(Conflict) as exc:
        accept(p, replace(offer, status=status), business, LATER)

    assert (exc.value.code, exc.value.details) == ("offer_not_open", {"offer_status": status})


# ---------------------------------------------------------------------------------------------------------------
# decline, expire, withdraw
# ---------------------------------------------------------------------------------------------------------------


def test_declining_releases_the_money_and_reopens_an_exhausted_pledge() -> None:
    p, offer, _ = offered()
    assert p.status == "exhausted"

    after, declined = decline(p, offer, "  sudah dapat KUR  ", LATER)

    assert (after.reserved_rupiah, after.remaining_rupiah, after.status) == (5_000_000, 5_000_000, "open")
    assert (declined.status, declined.reason, declined.decided_at) == ("declined", "sudah dapat KUR", LATER)


def test_a_decline_without_a_reason_says_the_business_declined() -> None:
    p, offer, _ = offered()

    assert decline(p, offer, "   ", LATER)[1].reason == "declined by the business"


def test_an_accepted_offer_cannot_be_declined() -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)

    with pytest.raises(Conflict) as exc:
        decline(p, accepted, "changed my mind", LATER)

    assert exc.value.code == "offer_not_open"


def test_expiring_a_due_offer_releases_its_money() -> None:
    p, offer, _ = offered()

    after, expired = expire(p, offer, offer.expires_at)

    assert (after.reserved_rupiah, after.status) == (5_000_000, "open")
    assert (expired.status, expired.decided_at) == ("expired", offer.expires_at)


def test_an_offer_not_yet_due_refuses_to_expire() -> None:
    p, offer, _ = offered()

    with pytest.raises(Conflict) as exc:
        expire(p, offer, offer.expires_at - timedelta(seconds=1))

    assert exc.value.code == "offer_not_due"


def test_an_accepted_offer_cannot_expire() -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)

    with pytest.raises(Conflict) as exc:
        expire(p, accepted, accepted.expires_at + timedelta(days=1))

    assert exc.value.code == "offer_not_open"


def test_withdrawing_an_offered_offer_releases_reserved_money() -> None:
    p, offer, _ = offered()

    after, withdrawn = release(p, offer, "withdrawn", LATER, "the business closed")

    assert (after.reserved_rupiah, after.accepted_rupiah) == (5_000_000, 0)
    assert (withdrawn.status, withdrawn.reason) == ("withdrawn", "the business closed")


def test_withdrawing_an_accepted_offer_releases_accepted_money() -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)

    after, withdrawn = release(p, accepted, "withdrawn", LATER, "the business closed")

    assert (after.reserved_rupiah, after.accepted_rupiah, after.remaining_rupiah) == (5_000_000, 0, 5_000_000)
    assert (after.status, withdrawn.status) == ("open", "withdrawn")


@pytest.mark.parametrize("status", ["declined", "expired"])
def test_an_accepted_offer_is_only_released_by_a_withdrawal(status) -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)

    with pytest.raises(Conflict):
        release(p, accepted, status, LATER)


def test_releasing_an_offer_of_a_closed_pledge_keeps_it_closed() -> None:
    p, offer, _ = offered()

    after, _ = release(close_pledge(p, "", NOW), offer, "withdrawn", LATER, "closed")

    assert (after.status, after.reserved_rupiah) == ("closed", 5_000_000)


# ---------------------------------------------------------------------------------------------------------------
# disburse, close
# ---------------------------------------------------------------------------------------------------------------


def test_disbursing_an_accepted_offer_moves_its_money_to_disbursed_with_the_reference() -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)

    after, disbursed = disburse(p, accepted, "  TRF-2026-0001 ", LATER)

    assert (after.reserved_rupiah, after.accepted_rupiah, after.disbursed_rupiah) == (5_000_000, 0, 5_000_000)
    assert (disbursed.status, disbursed.reference, disbursed.disbursed_at) == ("disbursed", "TRF-2026-0001", LATER)


def test_only_an_accepted_offer_is_disbursed() -> None:
    p, offer, _ = offered()

    with pytest.raises(Conflict) as exc:
        disburse(p, offer, "TRF-1", LATER)

    assert exc.value.code == "offer_not_accepted"


def test_a_disbursement_needs_a_reference() -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)

    with pytest.raises(InvalidInput) as exc:
        disburse(p, accepted, "   ", LATER)

    assert [e.field for e in exc.value.errors] == ["reference"]


def test_a_disbursed_offer_cannot_be_withdrawn() -> None:
    p, offer, business = offered()
    p, accepted = accept(p, offer, business, LATER)
    p, disbursed = disburse(p, accepted, "TRF-1", LATER)

    with pytest.raises(Conflict):
        release(p, disbursed, "withdrawn", LATER)


def test_closing_a_pledge_records_when_and_why_and_closing_it_twice_is_a_conflict() -> None:
    closed = close_pledge(pledge(), "  program selesai ", NOW)

    assert (closed.status, closed.closed_at, closed.close_reason) == ("closed", NOW, "program selesai")
    assert close_pledge(pledge(), "", NOW).close_reason == "closed by the sponsor"
    with pytest.raises(Conflict) as exc:
        close_pledge(closed, "again", LATER)
    assert exc.value.code == "pledge_closed"


def test_why_an_offer_was_declined_is_shown_only_to_city_wide_officers_and_a_withdrawal_to_its_sponsor_too() -> None:
    p, offer, _ = offered()
    _, declined = decline(p, offer, "pemilik sedang dirawat", LATER)
    operator = Principal("ops", frozenset({"operator"}))

    assert [who.actor for who in (SPONSOR, operator, ADMIN, ALAK_OFFICER, OFFICER) if sees_reason(declined, who)] == [
        OFFICER.actor]  # fmt: skip
    assert sees_reason(replace(declined, status="withdrawn", reason="usaha tutup"), SPONSOR)

"""What the notifier keeps of funding's events, for offer reminders and sponsors' weekly digests.

Funding publishes every step of a pledge and its offers on `funding.pledge.v1`, keyed by pledge, so the notifier sees
them in order. It keeps the pledge (whose sponsor it is, its total) and each offer's state with the time of each step;
a sponsor's week (Monday 00.00 to Sunday 24.00 WITA) is computed from those.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from shared.reference.wita import WITA

OPEN, ACCEPTED, DECLINED, EXPIRED, WITHDRAWN, DISBURSED = "open", "accepted", "declined", "expired", "withdrawn", "disbursed"
ANSWERED = frozenset({ACCEPTED, DECLINED, EXPIRED, WITHDRAWN, DISBURSED})


@dataclass(frozen=True, slots=True)
class PledgeFact:
    pledge_id: uuid.UUID
    sponsor_id: uuid.UUID
    sponsor_name: str
    title: str
    instrument: str
    total_rupiah: int
    pledged_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OfferFact:
    offer_id: uuid.UUID
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    business_name: str
    contact_phone: str
    kecamatan_code: str
    sponsor_name: str
    instrument: str
    financing_programme: str | None
    amount_rupiah: int
    offered_at: datetime
    expires_at: datetime
    state: str = OPEN
    decided_at: datetime | None = None  # accepted, declined, expired or withdrawn
    disbursed_at: datetime | None = None


def moved_on(offer: OfferFact, state: str, at: datetime) -> OfferFact:
    """The offer after funding said it was accepted, declined, expired, withdrawn or disbursed."""
    if state == DISBURSED:
        return replace(offer, state=DISBURSED, disbursed_at=at)
    if offer.state == DISBURSED:  # a late duplicate of an earlier step
        return offer
    return replace(offer, state=state, decided_at=at)


# ---------------------------------------------------------------------------------------------------------------
# Weeks and digests
# ---------------------------------------------------------------------------------------------------------------


def week_start(moment: datetime) -> date:
    """The Monday (WITA) of the week `moment` falls in."""
    local = moment.astimezone(WITA).date()
    return local - timedelta(days=local.weekday())


def week_bounds(monday: date) -> tuple[datetime, datetime]:
    start = datetime.combine(monday, time(0), WITA)
    return start, start + timedelta(days=7)


def digest_due(now: datetime, weekday: int, hour: int) -> date | None:
    """The Monday of the week whose digest is due now: last week's, once this week's digest moment (weekday 0 =
    Monday, hour in WITA) has passed; a service that was down then catches up later in the week."""
    this_week = week_start(now)
    moment = datetime.combine(this_week + timedelta(days=weekday), time(hour), WITA)
    return this_week - timedelta(days=7) if now >= moment else None


@dataclass(frozen=True, slots=True)
class PledgeWeek:
    title: str
    total_rupiah: int
    offered: int
    offered_rupiah: int
    accepted: int
    declined: int
    expired: int
    withdrawn: int
    disbursed: int
    disbursed_rupiah: int
    # Since the pledge began
    funded_businesses: int
    disbursed_to_date_rupiah: int
    reserved_rupiah: int  # offers still open
    accepted_rupiah: int  # accepted, not yet paid
    remaining_rupiah: int
    closed: bool

    @property
    def quiet(self) -> bool:
        return not (self.offered or self.accepted or self.declined or self.expired or self.withdrawn or self.disbursed)


def pledge_week(pledge: PledgeFact, offers: Sequence[OfferFact], monday: date) -> PledgeWeek:
    start, end = week_bounds(monday)

    def within(moment: datetime | None) -> bool:
        return moment is not None and start <= moment < end

    def decided(state: str) -> int:
        return sum(1 for o in offers if within(o.decided_at) and (o.state == state or (state == ACCEPTED and o.state == DISBURSED)))

    paid = [o for o in offers if o.state == DISBURSED]
    reserved = sum(o.amount_rupiah for o in offers if o.state == OPEN)
    accepted = sum(o.amount_rupiah for o in offers if o.state == ACCEPTED)
    disbursed = sum(o.amount_rupiah for o in paid)
    made = [o for o in offers if within(o.offered_at)]
    paid_this_week = [o for o in paid if within(o.disbursed_at)]
    return PledgeWeek(
        title=pledge.title, total_rupiah=pledge.total_rupiah,
        offered=len(made), offered_rupiah=sum(o.amount_rupiah for o in made),
        accepted=decided(ACCEPTED), declined=decided(DECLINED), expired=decided(EXPIRED), withdrawn=decided(WITHDRAWN),
        disbursed=len(paid_this_week), disbursed_rupiah=sum(o.amount_rupiah for o in paid_this_week),
        funded_businesses=len({o.business_id for o in paid}), disbursed_to_date_rupiah=disbursed,
        reserved_rupiah=reserved, accepted_rupiah=accepted,
        remaining_rupiah=max(0, pledge.total_rupiah - reserved - accepted - disbursed),
        closed=pledge.closed_at is not None and pledge.closed_at < end,
    )  # fmt: skip


def worth_a_digest(pledge: PledgeFact, week: PledgeWeek, monday: date) -> bool:
    """A pledge appears in a week's digest if it was open during the week or anything happened to it."""
    start, _ = week_bounds(monday)
    return not week.quiet or pledge.closed_at is None or pledge.closed_at >= start


def digest_event_id(sponsor_id: uuid.UUID, monday: date) -> uuid.UUID:
    """The same id for one sponsor's digest of one week, whichever process (or retry) records it: the message table's
    unique (event_id, template) then keeps it to one."""
    return uuid.uuid5(sponsor_id, f"sponsor-digest:{monday.isoformat()}")


def reminder_event_id(offer_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(offer_id, "offer-reminder")

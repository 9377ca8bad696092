"""What funding's handlers change and how: the store of the business view, sponsors, pledges and offers, and the
unit of work (on PostgreSQL in store_pg.py).

Every change to a pledge's money happens with that pledge's row locked (`FOR UPDATE`). Every path takes its
locks in one order (business view rows by id, then pledges by id), so concurrent consumers and HTTP calls
serialise per pledge and never deadlock.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.funding.domain.events import DomainEvent
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge
from services.funding.domain.view import BusinessView
from shared.contracts.training import Assessment
from shared.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class TrainingFact:
    """A training topic a business completed, as training's events say."""

    business_id: uuid.UUID
    topic: str
    cohort_id: uuid.UUID
    programme_id: uuid.UUID | None
    completed_on: date
    participant_version: int
    assessment: Assessment | None = None


class FundingStore(abc.ABC):
    # -- what funding knows of businesses --
    @abc.abstractmethod
    async def lock_views(self, business_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        """The views of these businesses (those funding knows); every one of the ids, known or not, stays locked
        until the unit of work ends."""

    @abc.abstractmethod
    async def business(self, business_id: uuid.UUID) -> BusinessView | None: ...

    @abc.abstractmethod
    async def save_view(self, view: BusinessView) -> None:
        """Write the registry's facts; a version older than the one stored changes nothing."""

    async def save_views(self, views: Sequence[BusinessView]) -> None:
        """save_view for each, in order (a store may write them in one statement)."""
        for view in views:
            await self.save_view(view)

    @abc.abstractmethod
    async def add_training(self, fact: TrainingFact) -> bool:
        """Record a completed topic; False if a newer completion of it is already recorded."""

    @abc.abstractmethod
    async def candidates(self, pledge: Pledge) -> list[BusinessView]:
        """Active businesses that may match the pledge and have no offer from it yet."""

    @abc.abstractmethod
    async def view_catching_up(self) -> bool:
        """Whether the view is being rebuilt (`berdaya replay funding-view`) and a consumer of it is still reading
        history: it then knows only some businesses, and those only as they were."""

    # -- sponsors and pledges --
    @abc.abstractmethod
    async def sponsor(self, sponsor_id: uuid.UUID) -> tuple[str, str] | None:
        """(name, kind)"""

    @abc.abstractmethod
    async def add_sponsor(self, sponsor_id: uuid.UUID, name: str, kind: str, now: datetime) -> uuid.UUID | None:
        """None if the name is new; else the id of the sponsor that already has it."""

    @abc.abstractmethod
    async def pledge(self, pledge_id: uuid.UUID) -> Pledge | None:
        """Without a lock: to find the pledge's sponsor, or its offers' pledge, before locking."""

    @abc.abstractmethod
    async def hold_ranking(self, alone: bool) -> None:
        """Until the unit of work ends. A pledge's ranked matching holds it alone; a change that may make businesses
        eligible holds it shared before it reads the pledges. Otherwise a ranking reading the businesses while a
        batch makes one eligible misses it, and the batch, having read the pledge not yet ranked, leaves it to the
        ranking: the business gets no offer from either."""

    @abc.abstractmethod
    async def lock_pledges(self, pledge_ids: Sequence[uuid.UUID]) -> list[Pledge]:
        """Lock in id order (the one order every path uses) and return them in that order."""

    @abc.abstractmethod
    async def unclosed_pledges(self) -> list[Pledge]:
        """Without locks: a first look, re-read under lock before any money moves."""

    @abc.abstractmethod
    async def add_pledge(self, pledge: Pledge) -> None: ...

    @abc.abstractmethod
    async def claim_pledge_request(self, actor: str, key: str, fingerprint: bytes,
                                   pledge_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
        """Record that `actor`'s request under `key` makes `pledge_id`, unless one was recorded before: returns the
        pledge and fingerprint recorded (this one, or the earlier). Waits for a concurrent claim of the same key to
        end, so two requests sent at once make one pledge."""

    @abc.abstractmethod
    async def save_pledge(self, pledge: Pledge) -> None: ...

    async def save_pledges(self, pledges: Sequence[Pledge]) -> None:
        for pledge in pledges:
            await self.save_pledge(pledge)

    @abc.abstractmethod
    async def pledges_to_start(self, today: date) -> list[uuid.UUID]:
        """Pledges whose window has opened since they were last matched."""

    @abc.abstractmethod
    async def pledges_to_rematch(self, today: date) -> list[uuid.UUID]:
        """Open pledges ranked in their window, but not on `today` (Kupang): time alone can make a business eligible
        (a year since registration counts toward readiness), and no event says so."""

    @abc.abstractmethod
    async def pledges_past_window(self, today: date) -> list[uuid.UUID]: ...

    @abc.abstractmethod
    async def pledges_with_due_offers(self, now: datetime, limit: int) -> list[uuid.UUID]: ...

    # -- offers --
    @abc.abstractmethod
    async def offer(self, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer | None: ...

    @abc.abstractmethod
    async def has_offer(self, pledge_id: uuid.UUID, business_id: uuid.UUID) -> bool: ...

    async def offered_pairs(self, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """The (pledge_id, business_id) pairs that already have an offer: has_offer for many at once."""
        return {pair for pair in pairs if await self.has_offer(*pair)}

    @abc.abstractmethod
    async def add_offers(self, offers: Sequence[Offer]) -> None: ...

    @abc.abstractmethod
    async def save_offer(self, offer: Offer) -> None: ...

    @abc.abstractmethod
    async def unanswered_offers_of(self, business_ids: Sequence[uuid.UUID]) -> list[Offer]:
        """Offered (not yet answered) offers of these businesses, by pledge."""

    @abc.abstractmethod
    async def due_offers(self, pledge_id: uuid.UUID, now: datetime) -> list[Offer]: ...

    @abc.abstractmethod
    async def add_partner_outcome(self, outcome: PartnerOutcome) -> None: ...

    @abc.abstractmethod
    async def unanswered_offers(self, pledge_id: uuid.UUID) -> list[Offer]: ...


@dataclass(frozen=True, slots=True)
class PartnerOutcome:
    """A partner's report on a referral it received."""

    event_id: uuid.UUID
    partner_id: str
    consent_id: uuid.UUID
    offer_id: uuid.UUID | None
    kind: str  # approved | disbursed | declined
    amount_rupiah: int | None
    happened_on: date


class FundingUnitOfWork(UnitOfWork[DomainEvent]):
    store: FundingStore


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------------

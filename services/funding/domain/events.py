"""Funding's domain events: what happened to pledges and offers. integration.py turns them into the shared contracts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge
from services.funding.domain.view import BusinessView


@dataclass(frozen=True, slots=True)
class PledgeMade:
    pledge: Pledge


@dataclass(frozen=True, slots=True)
class OfferMade:
    offer: Offer
    business: BusinessView
    pledge: Pledge


@dataclass(frozen=True, slots=True)
class OfferDecided:
    """Accepted, declined, expired or withdrawn: the offer's status says which."""

    offer: Offer


@dataclass(frozen=True, slots=True)
class OfferPaid:
    offer: Offer
    business: BusinessView
    pledge: Pledge


@dataclass(frozen=True, slots=True)
class PledgeRanOut:
    """What remains of the pledge is too little for another offer."""

    pledge: Pledge
    at: datetime


@dataclass(frozen=True, slots=True)
class PledgeEnded:
    """Closed by its sponsor or because its window ended."""

    pledge: Pledge


DomainEvent = PledgeMade | OfferMade | OfferDecided | OfferPaid | PledgeRanOut | PledgeEnded

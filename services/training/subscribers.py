"""Training's Kafka side: the view of businesses from registry events, and who accepted funding; each consumer
writes only the table it owns (and, with the cohort locked, the seats it fills)."""

from __future__ import annotations

from collections.abc import Callable

from services.training import business_changes
from services.training.seating import Deps
from services.training.store import TrainingUnitOfWork
from shared.contracts.funding import FundingAccepted
from shared.contracts.registry import REGISTRY_EVENTS
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS
from shared.messaging.consumer import Apply, BatchTransaction
from shared.messaging.subscriptions import Subscription
from shared.unit_of_work import Cause, whole_batch

VIEW = "training-view"
FUNDING = "training-funding"

SUBSCRIPTIONS = (
    Subscription(REGISTRY_BUSINESS, VIEW, REGISTRY_EVENTS),
    Subscription(FUNDING_PLEDGE, FUNDING, (FundingAccepted,)),
)

UnitOfWorkIn = Callable[[BatchTransaction, Cause], TrainingUnitOfWork]


def consumers(unit_of_work: UnitOfWorkIn, deps: Deps) -> dict[str, Apply]:
    """What each consumer does with its new events; the unit of work joins the consumer's transaction."""

    return {
        VIEW: whole_batch(business_changes.apply_registry_events, unit_of_work, deps),
        FUNDING: whole_batch(business_changes.apply_funding_events, unit_of_work, deps),
    }

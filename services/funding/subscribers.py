"""Funding's Kafka side: the view of businesses from registry and training events, and matching of new pledges."""

from __future__ import annotations

from collections.abc import Callable

from services.funding import handlers
from services.funding.matching import Deps
from services.funding.store import FundingUnitOfWork
from shared.contracts.funding import CSRPledged
from shared.contracts.public import FinancingApproved, FinancingDeclined, FinancingDisbursed
from shared.contracts.registry import REGISTRY_EVENTS
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, TRAINING_PARTICIPANT
from shared.contracts.training import TrainingCompleted
from shared.messaging.consumer import Apply, BatchTransaction
from shared.messaging.subscriptions import Subscription
from shared.unit_of_work import Cause, one_by_one, whole_batch

VIEW = "funding-view"
TRAINING = "funding-training"
MATCHER = "funding-matcher"
PARTNERS = "funding-partners"
# Every partner's outcomes topic, those added later included. Anchored at the end: the consumer matches a pattern
# from the start of a topic's name only, and without the `$` it took the `.dlq` topics too (which funding may not read).
PARTNER_OUTCOMES = r"partner\.[a-z][a-z0-9-]*\.outcomes\.v1$"

MATCHER_HANDLERS = {CSRPledged: handlers.match_pledge}

SUBSCRIPTIONS = (
    Subscription(REGISTRY_BUSINESS, VIEW, REGISTRY_EVENTS),
    Subscription(TRAINING_PARTICIPANT, TRAINING, (TrainingCompleted,)),
    Subscription(FUNDING_PLEDGE, MATCHER, tuple(MATCHER_HANDLERS)),
    Subscription(PARTNER_OUTCOMES, PARTNERS, (FinancingApproved, FinancingDisbursed, FinancingDeclined), pattern=True),
)

UnitOfWorkIn = Callable[[BatchTransaction, Cause], FundingUnitOfWork]


def consumers(unit_of_work: UnitOfWorkIn, deps: Deps) -> dict[str, Apply]:
    """What each consumer does with its new events; the unit of work joins the consumer's transaction."""

    return {
        VIEW: whole_batch(handlers.apply_registry_events, unit_of_work, deps),
        TRAINING: whole_batch(handlers.apply_training_events, unit_of_work, deps),
        MATCHER: one_by_one(MATCHER_HANDLERS, unit_of_work, deps),
        PARTNERS: whole_batch(handlers.record_partner_outcomes, unit_of_work, deps),
    }

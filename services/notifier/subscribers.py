"""The notifier's Kafka side: which contracts each consumer applies, and the handler each goes to."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from itertools import groupby
from typing import TypeVar

from services.notifier import handlers
from services.notifier.recording import Deps
from services.notifier.store import NotifierUnitOfWork
from shared.contracts.envelope import EventPayload
from shared.contracts.funding import (
    CSRPledged,
    FundingAccepted,
    FundingDeclined,
    FundingExpired,
    FundingMatched,
    FundingWithdrawn,
    FundsDisbursed,
    PledgeClosed,
)
from shared.contracts.registry import BusinessClosed, BusinessRegistered, BusinessUpdated, NIBIssued, NIBRejected
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, TRAINING_PARTICIPANT
from shared.contracts.training import (
    PathwayNotEligible,
    PathwayStalled,
    TraineeEnrolled,
    TraineeInvited,
    TraineeWaitlisted,
    TraineeWithdrew,
    TrainingCompleted,
)
from shared.messaging.consumer import Apply, BatchTransaction, Delivery
from shared.messaging.subscriptions import Subscription
from shared.unit_of_work import Cause, Handler, one_by_one

CONSUMER = "notifier"
FUNDING_CONSUMER = "notifier-funding"
TRAINING_CONSUMER = "notifier-training"

REGISTRY_HANDLERS = {
    BusinessRegistered: handlers.welcome,
    BusinessUpdated: handlers.keep_contact,
    NIBIssued: handlers.nib_issued,
    NIBRejected: handlers.nib_rejected,
    BusinessClosed: handlers.business_closed,
}
# Offers and payments are news to owners; the rest of a pledge's story feeds reminders (an answered offer needs
# none) and sponsors' weekly digests.
FUNDING_HANDLERS = {
    CSRPledged: handlers.pledge_made,
    FundingMatched: handlers.funding_offer,
    FundingAccepted: handlers.offer_answered,
    FundingDeclined: handlers.offer_answered,
    FundingExpired: handlers.offer_answered,
    FundingWithdrawn: handlers.offer_answered,
    FundsDisbursed: handlers.funds_disbursed,
    PledgeClosed: handlers.pledge_closed,
}

TRAINING_HANDLERS = {
    TraineeInvited: handlers.training_invitation,
    TraineeEnrolled: handlers.training_seat,
    TraineeWaitlisted: handlers.training_waitlisted,
    TraineeWithdrew: handlers.training_cancelled,
    TrainingCompleted: handlers.training_completed,
    PathwayStalled: handlers.halal_stalled,
    PathwayNotEligible: handlers.halal_not_eligible,
}

SUBSCRIPTIONS = (
    Subscription(REGISTRY_BUSINESS, CONSUMER, tuple(REGISTRY_HANDLERS)),
    Subscription(FUNDING_PLEDGE, FUNDING_CONSUMER, tuple(FUNDING_HANDLERS)),
    Subscription(TRAINING_PARTICIPANT, TRAINING_CONSUMER, tuple(TRAINING_HANDLERS)),
)


E = TypeVar("E", bound=EventPayload)


def in_runs(handlers: Mapping[type[EventPayload], Handler], kind: type[E],
            together: Callable[[Sequence[tuple[E, uuid.UUID]], NotifierUnitOfWork, Deps], Awaitable[None]],
            unit_of_work: Callable[[BatchTransaction, Cause], NotifierUnitOfWork], deps: Deps) -> Apply:  # fmt: skip
    """Each run of `kind` in a batch (registrations in an import, the offers of a pledge just matched) goes to
    `together` at once, with the events' ids; every other event one by one, in the batch's order."""
    one_at_a_time = one_by_one(handlers, unit_of_work, deps)

    async def apply(tx: BatchTransaction, batch: Sequence[Delivery]) -> None:
        for same, run in groupby(batch, key=lambda d: type(d.payload) is kind):
            deliveries = list(run)
            if same and len(deliveries) > 1:
                events = [(d.payload, d.envelope.event_id) for d in deliveries]
                await together(events, unit_of_work(tx, Cause.delivery(deliveries[0])), deps)
            else:
                await one_at_a_time(tx, deliveries)

    return apply


def holding_owners(apply: Apply, unit_of_work: Callable[[BatchTransaction, Cause], NotifierUnitOfWork], *,
                   changing: bool) -> Apply:  # fmt: skip
    """`apply` with the batch's businesses' owners held first (`NotifierStore.hold_owners`), before any other lock:
    the registry's consumer changes their contacts, the others record messages to them."""

    async def apply_holding(tx: BatchTransaction, batch: Sequence[Delivery]) -> None:
        owners = {b for d in batch if (b := getattr(d.payload, "business_id", None)) is not None}
        if owners:
            # Joined to the batch's transaction, which keeps the locks: this unit of work commits nothing of its own.
            async with unit_of_work(tx, Cause.delivery(batch[0])) as uow:
                await uow.store.hold_owners(owners, changing=changing)
        await apply(tx, batch)

    return apply_holding


def consumers(unit_of_work: Callable[[BatchTransaction, Cause], NotifierUnitOfWork], deps: Deps) -> dict[str, Apply]:
    return {
        CONSUMER: holding_owners(in_runs(REGISTRY_HANDLERS, BusinessRegistered, handlers.welcome_all, unit_of_work,
                                         deps), unit_of_work, changing=True),  # fmt: skip
        FUNDING_CONSUMER: holding_owners(in_runs(FUNDING_HANDLERS, FundingMatched, handlers.funding_offers,
                                                 unit_of_work, deps), unit_of_work, changing=False),  # fmt: skip
        TRAINING_CONSUMER: holding_owners(one_by_one(TRAINING_HANDLERS, unit_of_work, deps), unit_of_work,
                                          changing=False),  # fmt: skip
    }

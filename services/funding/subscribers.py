"""Funding's Kafka side: the business view from registry (and training) events, and matching of new pledges."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from services.funding import handlers
from services.funding.handlers import Deps
from services.funding.store import PgFundingUnitOfWork
from shared.contracts import Envelope, EventPayload
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, TRAINING_COHORT
from shared.messaging.consumer import DeadLetters, EventConsumer
from shared.messaging.subscriptions import Subscription
from shared.messaging.transaction import PgTransaction
from shared.observability import MessagingMetrics

VIEW = "funding-view"
TRAINING = "funding-training"
MATCHER = "funding-matcher"

_BUSINESS_EVENTS = ("BusinessRegistered", "BusinessUpdated", "NIBApplied", "NIBIssued", "NIBRejected", "BusinessClosed")

SUBSCRIPTIONS = (
    Subscription(REGISTRY_BUSINESS, VIEW, _BUSINESS_EVENTS),
    Subscription(TRAINING_COHORT, TRAINING, ("TrainingCompleted",)),
    Subscription(FUNDING_PLEDGE, MATCHER, ("CSRPledged",)),
)


def _uow(conn: asyncpg.Connection, envelope: Envelope, route: Callable[[Envelope], str]) -> PgFundingUnitOfWork:
    """Joins the consumer's inbox transaction: view, offers, outbox and inbox row commit together."""
    return PgFundingUnitOfWork(PgTransaction(joined=conn, route=route), correlation_id=envelope.correlation_id,
                               causation=envelope)  # fmt: skip


def consumers(
    pool: asyncpg.Pool,
    dead_letters: DeadLetters,
    metrics: MessagingMetrics,
    deps: Deps,
    route: Callable[[Envelope], str],
    *,
    max_attempts: int,
    backoff: float,
) -> dict[str, EventConsumer]:
    async def business_changed(conn: asyncpg.Connection, envelope: Envelope, payload: EventPayload) -> None:
        async with _uow(conn, envelope, route) as uow:
            await handlers.business_changed(payload, envelope.occurred_at, payload.business_id, uow, deps)  # type: ignore[attr-defined]
            await uow.commit()

    async def pledged(conn: asyncpg.Connection, envelope: Envelope, payload: EventPayload) -> None:
        async with _uow(conn, envelope, route) as uow:
            await handlers.match_pledge(payload.pledge_id, uow, deps)  # type: ignore[attr-defined]
            await uow.commit()

    def consumer(name: str, routes: dict) -> EventConsumer:  # noqa: ANN001
        return EventConsumer(name=name, pool=pool, handlers=routes, dead_letters=dead_letters, metrics=metrics,
                             max_attempts=max_attempts, retry_backoff=backoff)  # fmt: skip

    return {
        VIEW: consumer(VIEW, {t: business_changed for t in _BUSINESS_EVENTS}),
        TRAINING: consumer(TRAINING, {"TrainingCompleted": business_changed}),
        MATCHER: consumer(MATCHER, {"CSRPledged": pledged}),
    }

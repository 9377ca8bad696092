"""The notifier's Kafka side: which events it consumes and the handler each goes to, inside the inbox transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.notifier import handlers
from services.notifier.handlers import Deps
from services.notifier.store import PgNotifierStore
from shared.contracts import Envelope, EventPayload
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS
from shared.messaging.consumer import DeadLetters, EventConsumer
from shared.messaging.subscriptions import Subscription
from shared.observability import MessagingMetrics

CONSUMER = "notifier"
FUNDING_CONSUMER = "notifier-funding"

_ROUTES: dict[str, Callable[..., Awaitable[None]]] = {
    "BusinessRegistered": handlers.welcome,
    "BusinessUpdated": handlers.keep_contact,
    "NIBIssued": handlers.nib_issued,
    "NIBRejected": handlers.nib_rejected,
    "BusinessClosed": handlers.business_closed,
}


_FUNDING_ROUTES: dict[str, Callable[..., Awaitable[None]]] = {
    "FundingMatched": handlers.funding_offer,
    "FundsDisbursed": handlers.funds_disbursed,
}


def _bind(handler: Callable[..., Awaitable[None]], deps: Deps) -> Callable[[asyncpg.Connection, Envelope, EventPayload], Awaitable[None]]:
    async def apply(conn: asyncpg.Connection, envelope: Envelope, payload: Any) -> None:
        await handler(envelope, payload, PgNotifierStore(conn), deps)

    return apply


SUBSCRIPTIONS = (
    Subscription(REGISTRY_BUSINESS, CONSUMER, tuple(_ROUTES)),
    Subscription(FUNDING_PLEDGE, FUNDING_CONSUMER, tuple(_FUNDING_ROUTES)),
)


def consumers(
    pool: asyncpg.Pool, dead_letters: DeadLetters, metrics: MessagingMetrics, deps: Deps, *, max_attempts: int, backoff: float
) -> dict[str, EventConsumer]:
    def consumer(name: str, routes: dict[str, Callable[..., Awaitable[None]]]) -> EventConsumer:
        return EventConsumer(
            name=name,
            pool=pool,
            handlers={event_type: _bind(h, deps) for event_type, h in routes.items()},
            dead_letters=dead_letters,
            metrics=metrics,
            max_attempts=max_attempts,
            retry_backoff=backoff,
        )

    return {CONSUMER: consumer(CONSUMER, _ROUTES), FUNDING_CONSUMER: consumer(FUNDING_CONSUMER, _FUNDING_ROUTES)}

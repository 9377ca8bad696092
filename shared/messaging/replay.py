"""Rebuilding a consumer's view by replaying its topics from the beginning.

The whole job in one place: refuse while the consumers are running (Kafka would refuse to forget their offsets
anyway), empty the view's tables and the consumers' inbox rows in one transaction (without the inbox rows every
replayed event would count as a duplicate), then forget the consumer groups' offsets so the service, once started,
reads its topics from the first event. Everything else the service owns is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from confluent_kafka import KafkaException

from shared.contracts.topics import namespaced
from shared.messaging import inbox
from shared.messaging.kafka import KafkaAccess, active_group_members, forget_consumer_group, kafka_said
from shared.messaging.subscriptions import Subscription


@dataclass(frozen=True)
class RebuildableView:
    """A view a service keeps from other services' events, and can rebuild from their topics."""

    name: str
    service: str
    # The consumers whose inbox rows go and whose groups read from the beginning again, each with its own topic:
    # a consumer has caught up when it has read its own topic to the end, whatever is on the others'.
    replayed: tuple[Subscription, ...]
    tables: tuple[str, ...]  # emptied
    kept: str  # what stays, said for the operator

    @property
    def consumers(self) -> tuple[str, ...]:
        return tuple(s.consumer for s in self.replayed)


class StillRunning(RuntimeError):
    pass


class OffsetsKept(RuntimeError):
    """The view was emptied but Kafka kept a consumer group's offsets: started now, the service would read only what
    comes next and the view would stay empty of everything before. Running the rebuild again finishes it."""


async def rebuild(view: RebuildableView, *, database_url: str, kafka: KafkaAccess | str,
                  namespace: str = "") -> dict[str, int]:  # fmt: skip
    """Empty the view and reset its consumers; the service must be stopped. Returns rows removed per table."""
    groups = [namespaced(c, namespace) for c in view.consumers]
    running = {g: n for g in groups if (n := active_group_members(kafka, g))}
    if running:
        raise StillRunning(
            f"{view.service} is still consuming ({', '.join(f'{g}: {n} member(s)' for g, n in running.items())}); "
            f"stop every {view.service} process first"
        )
    conn = await asyncpg.connect(database_url)
    removed: dict[str, int] = {}
    try:
        async with conn.transaction():
            for table in view.tables:
                removed[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - names from code
                await conn.execute(f"TRUNCATE {table}")
            removed["inbox"] = await inbox.forget(conn, view.consumers)
    finally:
        await conn.close()
    for group in groups:
        try:
            forget_consumer_group(kafka, group)
        except (KafkaException, TimeoutError) as exc:
            raise OffsetsKept(
                f"{view.name} was emptied, but Kafka did not forget where {group} had read to ({kafka_said(exc)})"
            ) from exc
    return removed


def describe(views: Sequence[RebuildableView]) -> str:
    return "; ".join(f"{v.name} ({v.service})" for v in views)

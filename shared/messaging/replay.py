"""Rebuilding a consumer's view by replaying its topics from the beginning.

The whole job in one place: refuse while the consumers are running (Kafka would refuse to forget their offsets
anyway), forget the consumer groups' offsets so the service, once started, reads its topics from the first event,
then empty the view's tables and the consumers' inbox rows in one transaction (without the inbox rows every replayed
event would count as a duplicate). In that order: a rebuild stopped between the two leaves a whole view whose events
are read again as duplicates, where the other order left an empty view whose consumers resumed where they had been,
never to read back what it lost. Everything else the service owns is kept.

A view that `holds_back` also gets, in that transaction, how far each of its topics' partitions reached (taken before
anything changes): the history below it is read again without setting anything off (catch_up.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from confluent_kafka import KafkaException

from shared.contracts.topics import namespaced
from shared.messaging import inbox
from shared.messaging.kafka import (
    KafkaAccess,
    active_group_members,
    consumer_group_known,
    forget_consumer_group,
    kafka_said,
    topic_extent,
)
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
    # Its service acts on its consumers' deliveries only once they have caught up, and settles what they held back.
    holds_back: bool = False

    @property
    def consumers(self) -> tuple[str, ...]:
        return tuple(s.consumer for s in self.replayed)


class StillRunning(RuntimeError):
    pass


class NothingToReplay(RuntimeError):
    """Neither the view's consumer groups nor its topics are known to Kafka in the namespace given (a mistyped
    --namespace, or none where the deployment has one): emptying the view would reset groups nobody uses while the
    real ones kept their offsets, and the view would never be read back. Nothing was changed."""


class OffsetsKept(RuntimeError):
    """Kafka kept a consumer group's offsets, so nothing was emptied (groups forgotten before it only read their
    topics again, as duplicates). Running the rebuild again once Kafka answers does it."""


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
    _require_deployment(view, kafka, namespace, groups)
    ends = _catch_up_rows(view, kafka, namespace) if view.holds_back else []
    for group in groups:
        try:
            forget_consumer_group(kafka, group)
        except (KafkaException, TimeoutError) as exc:
            raise OffsetsKept(
                f"Kafka did not forget where {group} had read to ({kafka_said(exc)}), so {view.name} was not emptied"
            ) from exc
    conn = await asyncpg.connect(database_url)
    removed: dict[str, int] = {}
    try:
        async with conn.transaction():
            for table in view.tables:
                removed[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - names from code
                await conn.execute(f"TRUNCATE {table}")
            removed["inbox"] = await inbox.forget(conn, view.consumers)
            if view.holds_back:
                await conn.execute("DELETE FROM catch_up WHERE consumer = ANY($1::text[])", list(view.consumers))
                await conn.executemany("INSERT INTO catch_up (consumer, topic, partition, end_offset)"
                                       " VALUES ($1, $2, $3, $4)", ends)  # fmt: skip
            # A service started since the first look would have read past what is emptied now, never to read it back.
            if started := {g: n for g in groups if (n := active_group_members(kafka, g))}:
                raise StillRunning(
                    f"{view.service} started while {view.name} was being rebuilt "
                    f"({', '.join(f'{g}: {n} member(s)' for g, n in started.items())}); nothing was emptied: stop "
                    f"every {view.service} process and rebuild again"
                )
    finally:
        await conn.close()
    return removed


def _require_deployment(view: RebuildableView, kafka: KafkaAccess | str, namespace: str, groups: list[str]) -> None:
    """Refuse a namespace in which neither the view's consumer groups nor its topics are known to Kafka. Either is
    enough: a login may be allowed to see its groups and not the topics (they are then hidden from it), and a view
    never read yet has topics and no groups. Kafka not answering is raised: nothing is changed yet."""
    if any(consumer_group_known(kafka, g) for g in groups):
        return
    topics = [namespaced(s.topic, namespace) for s in view.replayed if not s.pattern]
    if topics and not topic_extent(kafka, topics):
        raise NothingToReplay(f"none of {view.name}'s consumer groups ({', '.join(groups)}) or topics "
                              f"({', '.join(topics)}) is on Kafka in topic namespace {namespace or '(none)'}; give the "
                              f"namespace {view.service} runs in (BERDAYA_TOPIC_NAMESPACE or --namespace). Nothing "
                              "was emptied")  # fmt: skip


def _catch_up_rows(view: RebuildableView, kafka: KafkaAccess | str, namespace: str) -> list[tuple[str, str, int, int]]:
    """(consumer, topic, partition, end offset) for each partition holding events: one without any would never
    be read to its end, and its consumer never caught up."""
    rows = []
    for sub in view.replayed:
        topic = namespaced(sub.topic, namespace)
        try:
            extent = topic_extent(kafka, [topic])
        except (KafkaException, TimeoutError) as exc:
            raise OffsetsKept(f"Kafka did not say how far {topic} reaches ({kafka_said(exc)}), so nothing was "
                              f"changed; run the rebuild again once it answers") from exc  # fmt: skip
        rows += [(sub.consumer, t, p, high) for (t, p), (low, high) in sorted(extent.items()) if high > low]
    return rows


async def still_held(view: RebuildableView, database_url: str) -> int:
    """Partitions a view's consumers are still catching up on, plus aggregates held back to settle: 0 once done."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT (SELECT count(*) FROM catch_up WHERE consumer = ANY($1::text[]))"
            " + (SELECT count(*) FROM catch_up_held WHERE consumer = ANY($1::text[]))", list(view.consumers))
    finally:
        await conn.close()


def describe(views: Sequence[RebuildableView]) -> str:
    return "; ".join(f"{v.name} ({v.service})" for v in views)

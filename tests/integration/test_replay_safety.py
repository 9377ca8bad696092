"""Rebuilding a view when Kafka will not do its part, on a real secured broker and PostgreSQL: a rebuild that cannot
learn whether the service is still consuming empties nothing; nor does one whose offsets Kafka keeps; one stopped
once Kafka forgot the offsets leaves the view whole; and the wait for a rebuilt view reports its progress and ends with an error that names the group, never a
traceback or a silent "rebuilt"."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from confluent_kafka import KafkaError, KafkaException

from berdaya import partners
from berdaya.views import wait_for_catch_up
from shared.contracts.topics import namespaced
from shared.db import load_migrations, migrate
from shared.messaging.kafka import (
    KafkaAccess,
    TopicSpec,
    active_group_members,
    consumer_group_known,
    consumer_lag,
    ensure_topics,
)
from shared.messaging.replay import NothingToReplay, OffsetsKept, RebuildableView, rebuild
from shared.messaging.subscriptions import Subscription
from tests.integration.test_lag import commit, produce

pytestmark = pytest.mark.integration

T0 = 1_750_000_000.0


@pytest.fixture
async def namespace() -> str:
    return f"rs-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def partner(infra, namespace) -> KafkaAccess:  # noqa: ANN001
    """A partner's login: it may use consumer groups of its own (read, so describe), and delete none."""
    access = await partners.add(infra.kafka, "bri", namespace=namespace, partitions=1)
    return infra.kafka.as_user(access.user, access.password)  # type: ignore[arg-type]


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[str]:
    """A view table of 3 rows and 2 inbox rows of its consumer, in a database with the messaging schema."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, load_migrations("shared.messaging.migrations", "messaging"))
        await conn.execute("CREATE TABLE tally (id integer PRIMARY KEY)")
        await conn.execute("INSERT INTO tally SELECT generate_series(1, 3)")
        await conn.execute("INSERT INTO inbox (consumer, event_id, event_type, aggregate_id)"
                           " SELECT 'partner-bri.reader', gen_random_uuid(), 'Ticked', 'k' FROM generate_series(1, 2)")
    finally:
        await conn.close()
    yield database_url


def view(consumer: str = "partner-bri.reader") -> RebuildableView:
    # By default the consumer is named inside the partner's own group prefix, so its login may describe the group.
    return RebuildableView(name="tally-view", service="tally", tables=("tally",), kept="nothing else",
                           replayed=(Subscription("public.business.v1", consumer, ()),))  # fmt: skip


async def rows(database: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetchval("SELECT count(*) FROM tally"), await conn.fetchval("SELECT count(*) FROM inbox")
    finally:
        await conn.close()


async def test_a_login_that_may_not_ask_about_a_group_is_refused_rather_than_told_nobody_is_consuming(
    infra, namespace, partner  # noqa: ANN001
):
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(active_group_members, partner, f"{namespace}.funding-view")

    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED


async def test_a_rebuild_that_cannot_learn_whether_the_service_still_consumes_empties_nothing(
    infra, namespace, partner, database  # noqa: ANN001
):
    with pytest.raises(KafkaException):
        await rebuild(view("funding-view"), database_url=database, kafka=partner, namespace=namespace)

    assert await rows(database) == (3, 2)


async def test_a_rebuild_whose_offsets_kafka_keeps_empties_nothing_and_says_which_group_kept_them(
    infra, namespace, partner, database, topic  # noqa: ANN001
):
    group = namespaced("partner-bri.reader", namespace)
    # The group exists, and the partner may describe it but not delete it.
    await commit(infra.kafka, group, {TopicPartition(topic, 0): 0})

    with pytest.raises(OffsetsKept) as kept:
        await rebuild(view(), database_url=database, kafka=partner, namespace=namespace)

    # Emptied, the view would have stayed empty: its consumers would resume where they had read to.
    assert await rows(database) == (3, 2)
    assert f"Kafka did not forget where {group} had read to" in str(kept.value)
    assert "so tally-view was not emptied" in str(kept.value)
    assert "authoriz" in str(kept.value).lower()


async def test_a_rebuild_in_a_namespace_none_of_its_topics_is_in_empties_nothing_and_names_the_namespace(
    infra, namespace, database, topic  # noqa: ANN001
):
    typo = f"{namespace}x"  # the deployment's topics are in `namespace`; none is in this one

    with pytest.raises(NothingToReplay) as refused:
        await rebuild(view(), database_url=database, kafka=infra.kafka, namespace=typo)

    # Emptied, the view would never be read back: the groups reset were nobody's, the real ones kept their offsets.
    assert await rows(database) == (3, 2)
    assert f"is on Kafka in topic namespace {typo}" in str(refused.value)
    assert await asyncio.to_thread(consumer_group_known, infra.kafka, namespaced("partner-bri.reader", typo)) is False
    assert "Nothing was emptied" in str(refused.value)


async def test_a_rebuild_stopped_once_kafka_forgot_the_offsets_leaves_the_view_whole_to_be_read_again(
    infra, namespace, database, topic  # noqa: ANN001
):
    group = namespaced("partner-bri.reader", namespace)
    await commit(infra.kafka, group, {TopicPartition(topic, 0): 2})
    # The emptying fails (here a table gone), as a rebuild killed between its two steps would not do it.
    broken = RebuildableView(name="tally-view", service="tally", tables=("tally", "no_such_table"), kept="",
                             replayed=(Subscription("registry.business.v1", "partner-bri.reader", ()),))  # fmt: skip

    with pytest.raises(asyncpg.UndefinedTableError):
        await rebuild(broken, database_url=database, kafka=infra.kafka, namespace=namespace)

    assert await rows(database) == (3, 2)  # whole: what is read again counts as duplicates
    assert await asyncio.to_thread(consumer_lag, infra.kafka, group, [topic]) == {(topic, 0): 3, (topic, 1): 1}


@pytest.fixture
async def topics(infra, namespace) -> tuple[str, str]:  # noqa: ANN001
    """Two topics: 3 + 1 records on the first's two partitions, 2 on the second's."""
    first, second = namespaced("registry.business.v1", namespace), namespaced("training.participant.v1", namespace)
    await ensure_topics(infra.kafka, [TopicSpec(first, 2, 1), TopicSpec(second, 1, 1)])
    producer = AIOKafkaProducer(**KafkaAccess.of(infra.kafka).aiokafka(), acks="all")
    await producer.start()
    try:
        await produce(producer, first, 0, [T0, T0 + 1, T0 + 2])
        await produce(producer, first, 1, [T0])
        await produce(producer, second, 0, [T0, T0 + 1])
    finally:
        await producer.stop()
    return first, second


@pytest.fixture
def topic(topics: tuple[str, str]) -> str:
    return topics[0]


# Two consumers, each on a topic of its own, as funding's view is rebuilt from registry and training events.
REPLAYED = RebuildableView(name="v", service="s", replayed=(Subscription("registry.business.v1", "reader", ()),
                           Subscription("training.participant.v1", "trainings", ())), tables=(), kept="")  # fmt: skip


async def test_the_wait_for_a_rebuilt_view_counts_each_consumer_on_its_own_topic_reports_progress_and_ends_at_zero(
    infra, namespace, topics  # noqa: ANN001
):
    first, second = topics
    heard: list[int] = []
    await commit(infra.kafka, namespaced("trainings", namespace), {TopicPartition(second, 0): 2})
    reader = namespaced("reader", namespace)
    await commit(infra.kafka, reader, {TopicPartition(first, 0): 1, TopicPartition(first, 1): 1})

    left = await asyncio.to_thread(wait_for_catch_up, infra.kafka, REPLAYED, namespace, timeout=0,
                                   progress=heard.append)  # fmt: skip
    assert (left, heard) == (2, [2])

    await commit(infra.kafka, reader, {TopicPartition(first, 0): 3})
    left = await asyncio.to_thread(wait_for_catch_up, infra.kafka, REPLAYED, namespace, progress=heard.append)
    assert (left, heard) == (0, [2, 0])


async def test_the_wait_for_a_rebuilt_view_with_kafka_refusing_ends_in_an_error_that_names_the_group_and_the_cause(
    infra, namespace, topics  # noqa: ANN001
):
    wrong = infra.kafka.as_user(infra.kafka.username, "not-the-password")

    with pytest.raises(TimeoutError) as refused:
        await asyncio.to_thread(wait_for_catch_up, wrong, REPLAYED, namespace, patience=0, ask_timeout=3)

    assert namespaced("reader", namespace) in str(refused.value)
    assert "SASL authentication error" in str(refused.value)

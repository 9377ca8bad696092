"""`berdaya partner` as an operator runs it against a real secured broker: a partner's topics and user are named and
made with the deployment's own settings (BERDAYA_TOPIC_*), as its services' are, and `rotate` shows what the partner
may really read. No registry answers here, so `add` ends saying so, after its topics, and gives the partner nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from berdaya import partners
from berdaya.stack.process import free_port
from shared.contracts.topics import PUBLIC_BUSINESS, PUBLIC_PLEDGE, namespaced, partner_topic
from shared.messaging.acl import KafkaSecurity
from shared.messaging.kafka import TopicSpec, confluent_admin, ensure_topics
from tests.integration.test_funding_view import berdaya

pytestmark = pytest.mark.integration


@dataclass
class Partner:
    id: str
    namespace: str  # the deployment's, of this test alone


@pytest.fixture
def partner(infra) -> Iterator[Partner]:  # noqa: ANN001
    """A partner and a namespace of this test alone; whatever a run made of it, in or out of the namespace, goes."""
    made = Partner(f"cli-{uuid.uuid4().hex[:8]}", f"cli-{uuid.uuid4().hex[:8]}")
    yield made
    for namespace in ("", made.namespace):
        partners.revoke(infra.kafka, made.id, namespace=namespace)


def partner_cli(infra, home: Path, *args: str, **settings: str):  # noqa: ANN001, ANN201
    """`berdaya partner ...` with the deployment's settings in its environment and no registry on its port."""
    return berdaya("partner", *args, bootstrap=infra.kafka, env={
        "BERDAYA_HOME": str(home), "REGISTRY_HTTP_PORT": str(free_port()),
        "BERDAYA_JWT_SECRET": "cli-test-secret-cli-test-secret-cli-test", **settings})  # fmt: skip


async def test_partner_add_names_and_makes_its_topics_and_user_as_the_services_do_and_no_user_without_the_registry(
        infra, partner: Partner, tmp_path: Path) -> None:  # noqa: ANN001  # fmt: skip
    partner_id, namespace = partner.id, partner.namespace
    added = partner_cli(infra, tmp_path, "add", partner_id, "--name", "Bank Uji",
                        BERDAYA_TOPIC_NAMESPACE=namespace, BERDAYA_TOPIC_PARTITIONS="2")  # fmt: skip
    assert added.returncode == 1 and "the registry at" in added.stdout, added.stdout + added.stderr
    assert "Traceback" not in added.stderr
    topics = confluent_admin(infra.kafka).list_topics(timeout=15).topics
    referral, outcomes = (namespaced(partner_topic(partner_id, kind), namespace) for kind in ("referral", "outcomes"))
    assert len(topics[referral].partitions) == 2 and len(topics[outcomes].partitions) == 2
    assert partner_topic(partner_id, "referral") not in topics  # nothing outside the deployment's namespace
    security = KafkaSecurity(infra.kafka)
    user = f"{namespace}.partner-{partner_id}"
    assert user not in security.users() and not security.grants(user)  # no access, and no password to lose
    await partners.add(infra.kafka, partner_id, namespace=namespace, partitions=2)  # as a registry that answered
    users = security.users()
    assert user in users and f"partner-{partner_id}" not in users


def test_partner_add_with_more_replicas_than_brokers_is_refused_naming_the_setting_and_makes_nothing(
        infra, partner: Partner, tmp_path: Path) -> None:  # noqa: ANN001  # fmt: skip
    partner_id, namespace = partner.id, partner.namespace
    brokers = len(confluent_admin(infra.kafka).list_topics(timeout=15).brokers)
    added = partner_cli(infra, tmp_path, "add", partner_id, "--name", "Bank Uji", BERDAYA_TOPIC_NAMESPACE=namespace,
                        BERDAYA_TOPIC_REPLICATION_FACTOR=str(brokers + 1))  # fmt: skip
    assert added.returncode == 1 and "Traceback" not in added.stderr
    said = " ".join(added.stdout.split())
    assert f"replication factor {brokers + 1}" in said and "BERDAYA_TOPIC_REPLICATION_FACTOR" in said, said
    assert "the registry" not in said
    assert f"{namespace}.partner-{partner_id}" not in KafkaSecurity(infra.kafka).users()


def test_partner_add_with_an_unusable_setting_is_refused_naming_it_before_kafka_is_asked_anything(
        infra, partner: Partner, tmp_path: Path) -> None:  # noqa: ANN001  # fmt: skip
    partner_id = partner.id
    added = partner_cli(infra, tmp_path, "add", partner_id, "--name", "Bank Uji",
                        BERDAYA_TOPIC_REPLICATION_FACTOR="dua")  # fmt: skip
    assert added.returncode == 1 and "Traceback" not in added.stderr
    assert added.stdout.startswith("error: BERDAYA_TOPIC_REPLICATION_FACTOR='dua'"), added.stdout
    assert partner_topic(partner_id, "referral") not in confluent_admin(infra.kafka).list_topics(timeout=15).topics


async def test_partner_rotate_shows_the_public_topics_the_partner_was_given_and_not_the_others(
        infra, partner: Partner, tmp_path: Path) -> None:  # noqa: ANN001  # fmt: skip
    partner_id, namespace = partner.id, partner.namespace
    public = [TopicSpec(namespaced(t, namespace), 1, 1) for t in (PUBLIC_PLEDGE, PUBLIC_BUSINESS)]
    await ensure_topics(infra.kafka, public)
    await partners.add(infra.kafka, partner_id, namespace=namespace, partitions=1, topics=[PUBLIC_PLEDGE])
    assert partners.rotate(infra.kafka, partner_id, namespace=namespace).reads == [
        namespaced(PUBLIC_PLEDGE, namespace), namespaced(partner_topic(partner_id, "referral"), namespace)]
    rotated = partner_cli(infra, tmp_path, "rotate", partner_id, BERDAYA_TOPIC_NAMESPACE=namespace)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert namespaced(PUBLIC_PLEDGE, namespace) in rotated.stdout
    assert namespaced(PUBLIC_BUSINESS, namespace) not in rotated.stdout and "public.*" not in rotated.stdout

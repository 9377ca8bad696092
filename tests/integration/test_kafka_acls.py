"""The ACL matrix on a real secured broker (SCRAM-SHA-512, StandardAuthorizer, deny by default): what a partner and
a service may read and write, and that everything else, and a revoked or re-keyed credential, is refused.

The partner's client here is confluent-kafka (librdkafka 2.16). Debian's kcat links librdkafka 2.0.2, whose SCRAM
repeats the client nonce and is refused by every Kafka 4 broker (fixed in librdkafka 2.6.1; edenhill/kcat#462)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from berdaya import partners
from berdaya.stack.access import service_access
from shared.contracts.topics import (
    FUNDING_PLEDGE,
    PUBLIC_BUSINESS,
    PUBLIC_FIGURES,
    PUBLIC_PLEDGE,
    PUBLIC_TRAINING,
    REGISTRY_BUSINESS,
    TRAINING_COHORT,
    dlq,
    namespaced,
    partner_topic,
)
from shared.messaging.kafka import KafkaAccess, TopicSpec, ensure_topics
from tests.integration.test_funding_view import berdaya

pytestmark = pytest.mark.integration

PUBLIC = (PUBLIC_BUSINESS, PUBLIC_PLEDGE, PUBLIC_TRAINING, PUBLIC_FIGURES)
INTERNAL = (REGISTRY_BUSINESS, FUNDING_PLEDGE, TRAINING_COHORT, dlq(REGISTRY_BUSINESS))
DENIED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
          KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}  # fmt: skip


def write(access: KafkaAccess, topic: str) -> int | None:
    """Produce one record as `access`: None if the broker took it, else the error code it answered."""
    outcome: list[int | None] = []
    errors: list[int] = []
    producer = Producer({**access.confluent(), "message.timeout.ms": 8000, "log_level": 0,
                         "enable.idempotence": False, "error_cb": lambda err: errors.append(err.code())})  # fmt: skip
    producer.produce(topic, b"{}", key=b"acl-test", on_delivery=lambda err, _msg: outcome.append(err.code() if err else None))
    producer.flush(15)
    if errors and errors[0] in DENIED:
        return errors[0]
    return outcome[0] if outcome else KafkaError._MSG_TIMED_OUT


def read(access: KafkaAccess, topic: str, group: str) -> bytes | int:
    """The first record of `topic` as `access` in consumer group `group` (subscribed and committed, as a partner's
    client does), or the error code the broker answered."""
    errors: list[int] = []  # a refused login is told to error_cb, not to poll
    consumer = Consumer({**access.confluent(), "group.id": group, "auto.offset.reset": "earliest", "log_level": 0,
                         "enable.auto.commit": False, "session.timeout.ms": 6000,
                         "error_cb": lambda err: errors.append(err.code())})  # fmt: skip
    try:
        consumer.subscribe([topic])
        for _ in range(40):
            message = consumer.poll(0.5)
            if errors and errors[0] in DENIED:
                return errors[0]
            if message is None:
                continue
            if message.error():
                return message.error().code()
            try:
                consumer.commit(message, asynchronous=False)
            except Exception as exc:  # noqa: BLE001 - the group's refusal arrives as a KafkaException
                return exc.args[0].code()
            return message.value()
        return KafkaError._TIMED_OUT
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def cluster(infra):  # noqa: ANN001, ANN201
    """A namespace with every topic the matrix touches, one record on each, and two partners."""
    namespace = f"acl-{uuid.uuid4().hex[:8]}"
    topics = [namespaced(t, namespace) for t in (*PUBLIC, *INTERNAL)]
    asyncio.run(ensure_topics(infra.kafka, [TopicSpec(t, 1, 1) for t in topics]))
    bri = asyncio.run(partners.add(infra.kafka, "bri", namespace=namespace, partitions=1))
    ntt = asyncio.run(partners.add(infra.kafka, "bank-ntt", namespace=namespace, partitions=1))
    for topic in [*topics, *(namespaced(partner_topic(p, "referral"), namespace) for p in ("bri", "bank-ntt"))]:
        assert write(infra.kafka, topic) is None, f"the admin could not write {topic}"
    return {"namespace": namespace, "admin": infra.kafka,
            "bri": infra.kafka.as_user(bri.user, bri.password), "ntt": infra.kafka.as_user(ntt.user, ntt.password)}  # type: ignore[arg-type]


def test_a_partner_reads_every_public_topic_and_its_own_referrals_in_groups_of_its_own(cluster):
    ns = cluster["namespace"]
    for topic in (*PUBLIC, partner_topic("bri", "referral")):
        assert read(cluster["bri"], namespaced(topic, ns), f"{ns}.partner-bri.reader") == b"{}", topic


def test_a_partner_writes_its_own_outcomes_topic(cluster):
    assert write(cluster["bri"], namespaced(partner_topic("bri", "outcomes"), cluster["namespace"])) is None


def test_a_partner_is_refused_every_internal_topic(cluster):
    ns = cluster["namespace"]
    for topic in INTERNAL:
        assert read(cluster["bri"], namespaced(topic, ns), f"{ns}.partner-bri.reader") in DENIED, topic


def test_a_partner_is_refused_another_partners_topics_and_groups(cluster):
    ns = cluster["namespace"]
    bank_ntt_referrals = namespaced(partner_topic("bank-ntt", "referral"), ns)
    assert read(cluster["bri"], bank_ntt_referrals, f"{ns}.partner-bri.reader") in DENIED
    assert write(cluster["bri"], namespaced(partner_topic("bank-ntt", "outcomes"), ns)) in DENIED
    # A public topic, but in the other partner's consumer group (or one of nobody's).
    assert read(cluster["bri"], namespaced(PUBLIC_BUSINESS, ns), f"{ns}.partner-bank-ntt.reader") in DENIED
    assert read(cluster["bri"], namespaced(PUBLIC_BUSINESS, ns), f"{ns}.dashboard") in DENIED


async def test_a_partner_named_like_another_deployments_namespace_may_not_join_that_deployments_consumer_groups(
        cluster, infra):  # fmt: skip
    # Partner `acl-…` of the deployment without a namespace was given every group starting `acl-….`: it could join
    # the other deployment's consumer groups, take their partitions from its consumers and commit their offsets.
    ns = cluster["namespace"]
    await ensure_topics(infra.kafka, [TopicSpec(PUBLIC_BUSINESS, 1, 1)])
    assert write(infra.kafka, PUBLIC_BUSINESS) is None
    access = await partners.add(infra.kafka, ns, partitions=1)
    try:
        namesake = infra.kafka.as_user(access.user, access.password)  # type: ignore[arg-type]
        for group in (f"{ns}.funding-view", f"{ns}.notifier", f"{ns}.partner-bri.reader"):
            assert read(namesake, PUBLIC_BUSINESS, group) in DENIED, group
        assert isinstance(read(namesake, PUBLIC_BUSINESS, f"partner-{ns}.reader"), bytes)  # in a group of its own
    finally:
        partners.revoke(infra.kafka, ns)


def test_a_partner_is_refused_every_write_it_was_not_given(cluster):
    ns = cluster["namespace"]
    for topic in (*PUBLIC, *INTERNAL, partner_topic("bri", "referral")):
        assert write(cluster["bri"], namespaced(topic, ns)) in DENIED, topic


def test_a_service_writes_its_own_topics_and_is_refused_another_services(cluster):
    ns = cluster["namespace"]
    registry = service_access(cluster["admin"], "registry", ns)
    training = service_access(cluster["admin"], "training", ns)
    assert write(registry, namespaced(REGISTRY_BUSINESS, ns)) is None
    assert write(registry, namespaced(PUBLIC_BUSINESS, ns)) is None
    assert write(registry, namespaced(FUNDING_PLEDGE, ns)) in DENIED
    assert write(training, namespaced(REGISTRY_BUSINESS, ns)) in DENIED
    assert write(training, namespaced(TRAINING_COHORT, ns)) is None
    # The registry consumes nothing: it may not read even its own topic's neighbours.
    assert read(registry, namespaced(FUNDING_PLEDGE, ns), namespaced("registry-reader", ns)) in DENIED


def test_a_wrong_password_is_refused(cluster):
    wrong = cluster["bri"].as_user(cluster["bri"].username, "not-the-password")
    ns = cluster["namespace"]
    assert read(wrong, namespaced(PUBLIC_BUSINESS, ns), f"{ns}.partner-bri.reader") in DENIED


async def test_a_rotated_password_is_refused_at_once_and_the_new_one_works(infra):
    namespace = f"acl-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka, [TopicSpec(namespaced(PUBLIC_BUSINESS, namespace), 1, 1)])
    assert write(infra.kafka, namespaced(PUBLIC_BUSINESS, namespace)) is None
    first = await partners.add(infra.kafka, "pos-indonesia", namespace=namespace, partitions=1)
    second = partners.rotate(infra.kafka, "pos-indonesia", namespace=namespace)
    group, topic = f"{namespace}.partner-pos-indonesia.reader", namespaced(PUBLIC_BUSINESS, namespace)
    assert read(infra.kafka.as_user(first.user, first.password), topic, group) in DENIED  # type: ignore[arg-type]
    assert read(infra.kafka.as_user(second.user, second.password), topic, group) == b"{}"  # type: ignore[arg-type]


async def test_a_revoked_partner_is_refused_and_the_services_lose_their_links_to_it(infra):
    namespace = f"acl-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka, [TopicSpec(namespaced(PUBLIC_BUSINESS, namespace), 1, 1)])
    assert write(infra.kafka, namespaced(PUBLIC_BUSINESS, namespace)) is None
    access = await partners.add(infra.kafka, "asabri", namespace=namespace, partitions=1)
    partner = infra.kafka.as_user(access.user, access.password)  # type: ignore[arg-type]
    group, topic = f"{namespace}.partner-asabri.reader", namespaced(PUBLIC_BUSINESS, namespace)
    assert read(partner, topic, group) == b"{}"
    registry = service_access(infra.kafka, "registry", namespace)
    referral = namespaced(partner_topic("asabri", "referral"), namespace)
    assert write(registry, referral) is None
    assert partners.revoke(infra.kafka, "asabri", namespace=namespace) > 0
    assert read(partner, topic, group) in DENIED
    assert write(registry, referral) in DENIED
    assert "asabri" not in partners.listing(infra.kafka, namespace=namespace)


def test_a_partner_may_be_given_fewer_public_topics(infra):
    with pytest.raises(partners.PartnerRefused, match="public topics only"):
        partners.public_topics(["registry.business.v1"])
    assert partners.public_topics([PUBLIC_PLEDGE]) == (PUBLIC_PLEDGE,)
    assert partners.public_topics(["public.*"]) is None



async def test_a_login_kafka_will_not_tell_the_users_to_is_refused_and_no_partner_is_re_keyed_or_hidden(cluster):
    # A partner's own login may not describe the cluster's users: the answer is a refusal, never "there are none",
    # which would have made `partner add` re-key an existing partner and `partner list` show nobody.
    # (confluent-kafka 2.16 aborts the process when the cluster itself refuses a SCRAM request; a crash fails here.)
    with pytest.raises(KafkaException) as refused:
        partners.listing(cluster["bri"], namespace=cluster["namespace"])
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert "may not describe the cluster's users" in refused.value.args[0].str()

    with pytest.raises(KafkaException):
        partners.rotate(cluster["bri"], "bank-ntt", namespace=cluster["namespace"])
    assert read(cluster["ntt"], namespaced(PUBLIC_BUSINESS, cluster["namespace"]),
                f"{cluster['namespace']}.partner-bank-ntt.reader") == b"{}"  # its password is unchanged  # fmt: skip


def _revoke_by_hand(infra, partner_id: str, answer: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    """`berdaya partner revoke ID` as an officer types it, answering the prompt (if any) with `answer`."""
    return berdaya("partner", "revoke", partner_id, bootstrap=infra.kafka, input=answer,
                   env={"BERDAYA_JWT_SECRET": "acl-test-secret-acl-test-secret-acl-test"})


async def test_revoking_a_partner_with_nobody_at_a_terminal_names_what_goes_asks_for_yes_and_keeps_its_access(infra):
    partner_id = f"cli-{uuid.uuid4().hex[:8]}"
    access = await partners.add(infra.kafka, partner_id, partitions=1)
    try:
        declined = _revoke_by_hand(infra, partner_id, "y\n")  # piped: not an operator's answer
        assert declined.returncode == 1
        assert f"Revoke partner {partner_id}? Its Kafka user and {len(access.grants)} grant(s) go" in declined.stdout
        assert "pass --yes to go ahead without asking" in declined.stdout
        assert partners.on_cluster(infra.kafka, partner_id) == (True, len(access.grants))
    finally:
        partners.revoke(infra.kafka, partner_id)


def test_revoking_a_partner_kafka_does_not_know_asks_nothing_and_leaves_it_to_the_registry(infra):
    revoked = _revoke_by_hand(infra, f"cli-{uuid.uuid4().hex[:8]}", "")
    assert revoked.returncode == 1  # no registry here (or, beside a running stack, one that knows no such partner)
    assert "has no Kafka user or grants here; asking the registry" in revoked.stdout
    assert "Revoke partner" not in revoked.stdout and "Aborted" not in revoked.stdout + revoked.stderr
    assert "registry" in revoked.stdout.split("asking the registry", 1)[1]
    assert "Traceback" not in revoked.stderr


async def test_revoking_a_partner_in_a_namespace_it_is_not_in_names_the_one_it_is_in_and_revokes_nothing(infra):
    partner_id = f"cli-{uuid.uuid4().hex[:8]}"
    access = await partners.add(infra.kafka, partner_id, partitions=1, namespace="kupang")
    try:
        revoked = _revoke_by_hand(infra, partner_id, "")  # no BERDAYA_TOPIC_NAMESPACE: the un-namespaced deployment
        assert revoked.returncode == 1
        said = f"partner {partner_id} has no Kafka user in topic namespace (none), but has one in kupang"
        assert said in revoked.stdout, revoked.stdout
        assert partners.on_cluster(infra.kafka, partner_id, namespace="kupang") == (True, len(access.grants))
    finally:
        partners.revoke(infra.kafka, partner_id, namespace="kupang")


def test_revoking_a_partner_by_a_malformed_id_is_refused_before_anything_is_asked(infra):
    revoked = _revoke_by_hand(infra, "BRI; DROP", "y\n")
    assert revoked.returncode == 1
    assert "must be 2 to 40 lower-case letters" in revoked.stdout and "Revoke partner" not in revoked.stdout

"""A partner's referral topic on a real broker: made compacted, and one made before that rule (kept whole, for ever)
made compacted when `partner add` runs again, its other settings left as they were."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from berdaya import partners
from shared.contracts.topics import namespaced, partner_topic
from shared.messaging.kafka import TopicSpec, confluent_admin, ensure_topics

pytestmark = pytest.mark.integration


def settings(admin, topic: str) -> dict[str, str]:  # noqa: ANN001
    client = confluent_admin(admin)  # kept referenced until the answer arrives
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = client.describe_configs([resource], request_timeout=15)[resource].result(timeout=30)
    return {name: entry.value for name, entry in described.items()}


async def test_a_referral_topic_is_compacted_whether_made_now_or_before_the_rule(infra) -> None:
    namespace = f"ref-{uuid.uuid4().hex[:8]}"
    old, new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    old_referral = namespaced(partner_topic(old, "referral"), namespace)
    await ensure_topics(infra.kafka, [TopicSpec(old_referral, 1, 1)])  # as `partner add` made it before
    assert settings(infra.kafka, old_referral)["cleanup.policy"] == "delete"
    try:
        for partner_id in (old, new):
            await partners.add(infra.kafka, partner_id, namespace=namespace, partitions=1)

        for partner_id in (old, new):
            referral = settings(infra.kafka, namespaced(partner_topic(partner_id, "referral"), namespace))
            outcomes = settings(infra.kafka, namespaced(partner_topic(partner_id, "outcomes"), namespace))
            assert (referral["cleanup.policy"], referral["max.compaction.lag.ms"]) == ("compact", "86400000")
            assert (outcomes["cleanup.policy"], outcomes["retention.ms"]) == ("delete", "-1")
        assert settings(infra.kafka, old_referral)["retention.ms"] == "-1"  # left as it was: compaction ignores it
    finally:
        for partner_id in (old, new):
            partners.revoke(infra.kafka, partner_id, namespace=namespace)

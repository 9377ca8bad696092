"""The settings the project's own broker runs with, asked of the broker itself."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from shared.messaging.kafka import confluent_admin

pytestmark = pytest.mark.integration


def test_consumer_groups_offsets_outlive_the_inbox_so_a_long_stopped_service_never_reads_its_topics_again(infra):
    admin = confluent_admin(infra.kafka)
    broker = str(next(iter(admin.list_topics(timeout=10).brokers)))
    [described] = admin.describe_configs([ConfigResource(ResourceType.BROKER, broker)]).values()
    settings = described.result(timeout=10)

    assert int(settings["offsets.retention.minutes"].value) >= 365 * 24 * 60  # the inbox keeps 30 days
    assert settings["auto.create.topics.enable"].value == "false"

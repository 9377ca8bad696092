"""How a partner's topics are made: its referral topic keeps each consent's latest record only (compacted), so the
withdrawal, keyed by the consent's id like the referral, supersedes the owner's name, phone and NIK link; the rest
are kept as the services' topics are."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from shared.messaging import kafka
from shared.messaging.acl import partner_topics
from shared.messaging.kafka import TopicSpec, enforce_compaction, with_dead_letters


@pytest.mark.parametrize("namespace", ["", "kupang"])
def test_only_a_partners_referral_topic_is_compacted(namespace: str) -> None:
    specs = {s.name: s.configs() for s in with_dead_letters(partner_topics("bri", namespace), 3, 1)}
    referral, outcomes = partner_topics("bri", namespace)

    assert specs[referral]["cleanup.policy"] == "compact" and "retention.ms" not in specs[referral]
    assert specs[outcomes] == {"retention.ms": "-1"}  # funding's record of what partners reported, kept whole
    assert "cleanup.policy" not in specs[f"{referral}.dlq"] and "cleanup.policy" not in specs[f"{outcomes}.dlq"]
    assert [s.compacted for s in with_dead_letters(["registry.business.v1", "partner.bri.referral.v1.x"], 3, 1)] == [
        False, False, False, False]


def test_a_compacted_topic_with_three_copies_still_needs_two_of_them_for_a_write() -> None:
    assert TopicSpec("partner.bri.referral.v1", 6, 3, compacted=True).configs() == {
        "min.insync.replicas": "2", "cleanup.policy": "compact", "max.compaction.lag.ms": "86400000"}


def test_existing_topics_are_made_compacted_by_an_incremental_change_of_those_settings_alone(monkeypatch) -> None:
    asked: list = []

    class Admin:
        def incremental_alter_configs(self, resources, request_timeout):  # noqa: ANN001, ANN201
            asked.extend(resources)
            done: Future = Future()
            done.set_result(None)
            return {r: done for r in resources}

    monkeypatch.setattr(kafka, "confluent_admin", lambda _access: Admin())

    made = enforce_compaction("127.0.0.1:9092", with_dead_letters(partner_topics("bri", "kupang"), 3, 1))

    assert made == ["kupang.partner.bri.referral.v1"]
    [resource] = asked
    changes = {c.name: (c.value, c.incremental_operation.name) for c in resource.incremental_configs}
    assert changes == {"cleanup.policy": ("compact", "SET"), "max.compaction.lag.ms": ("86400000", "SET")}

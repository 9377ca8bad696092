"""`partner revoke` step by step, against a recording stand-in for the cluster: the partner is cut off first, the
registry is told next, and only then do the services lose their grants to the partner's topics, so the referral
events the registry committed before it knew can still go. Should the registry not answer, the services keep them."""

from __future__ import annotations

import pytest

from berdaya import partners
from shared.messaging.acl import partner_links, partner_user
from shared.messaging.kafka import KafkaAccess

ADMIN = KafkaAccess("127.0.0.1:9092", "admin", "secret")


class RecordingSecurity:
    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    def revoke(self, user: str, grants=None) -> int:  # noqa: ANN001
        self.steps.append(f"revoke {user}")
        return 1

    def remove_user(self, user: str) -> bool:
        self.steps.append(f"remove {user}")
        return True


@pytest.fixture
def steps(monkeypatch) -> list[str]:
    done: list[str] = []
    monkeypatch.setattr(partners, "KafkaSecurity", lambda _admin: RecordingSecurity(done))
    monkeypatch.setattr(partners, "outcomes_unread", lambda admin, partner_id, namespace: 0)
    return done


def test_the_registry_is_told_before_the_services_lose_their_grants_to_the_partners_topics(steps) -> None:
    partners.revoke(ADMIN, "bri", namespace="kupang", unregister=lambda p: steps.append(f"tell the registry {p}"))

    services = [f"revoke {user}" for user in partner_links("bri", "kupang")]
    partner = partner_user("bri", "kupang")
    assert steps == [f"revoke {partner}", f"remove {partner}", "tell the registry bri", *services]


def test_a_registry_that_refuses_leaves_the_partner_cut_off_and_the_services_their_grants(steps) -> None:
    def refuse(partner_id: str) -> None:
        raise partners.PartnerRefused("the registry refused (409): 1 referral event(s) still waiting")

    with pytest.raises(partners.PartnerRefused, match="still waiting"):
        partners.revoke(ADMIN, "bri", unregister=refuse)

    assert steps == [f"revoke {partner_user('bri')}", f"remove {partner_user('bri')}"]


def test_outcomes_funding_has_not_read_leave_the_services_their_grants_until_it_has(steps, monkeypatch) -> None:
    unread = iter([2, 1, 1])
    monkeypatch.setattr(partners, "outcomes_unread", lambda admin, partner_id, namespace: next(unread, 0))

    partners.revoke(ADMIN, "bri", outcomes_wait=5)  # polled every half second

    assert steps[-len(partner_links("bri")):] == [f"revoke {user}" for user in partner_links("bri")]
    assert next(unread, "all asked") == "all asked"


def test_outcomes_still_unread_after_the_wait_leave_the_partner_cut_off_and_funding_its_grant(steps, monkeypatch) -> None:
    monkeypatch.setattr(partners, "outcomes_unread", lambda admin, partner_id, namespace: 3)

    with pytest.raises(partners.PartnerRefused, match="funding has not yet recorded 3 outcome"):
        partners.revoke(ADMIN, "bri", outcomes_wait=0.1)

    assert steps == [f"revoke {partner_user('bri')}", f"remove {partner_user('bri')}"]

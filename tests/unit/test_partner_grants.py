"""What a partner's and a service's grants reach on a cluster several deployments share: their own deployment's
names, never another's."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from berdaya import partners
from services.funding.bootstrap import SERVICE as FUNDING_SERVICE
from services.funding.subscribers import SUBSCRIPTIONS as FUNDING
from services.notifier.subscribers import SUBSCRIPTIONS as NOTIFIER
from services.training.subscribers import SUBSCRIPTIONS as TRAINING
from shared.contracts.topics import TOPIC_BY_AGGREGATE, dlq, namespaced, partner_topic
from shared.messaging.acl import KafkaSecurity, partner_grants, partner_group_prefix, provision_service
from shared.settings import PlatformSettings

CONSUMER_GROUPS = [s.consumer for s in (*FUNDING, *NOTIFIER, *TRAINING)]


def names_of_deployment(namespace: str, its_partner: str) -> list[str]:
    """Every topic and consumer group a deployment's services and one of its partners use."""
    topics = [*TOPIC_BY_AGGREGATE.values(), *(partner_topic(its_partner, k) for k in ("referral", "outcomes"))]
    return [*(namespaced(t, namespace) for t in topics), *(namespaced(dlq(t), namespace) for t in topics),
            *(namespaced(g, namespace) for g in CONSUMER_GROUPS),
            f"{partner_group_prefix(its_partner, namespace)}loans"]  # fmt: skip


def test_a_partner_s_consumer_groups_start_with_its_user_s_name() -> None:
    assert partner_group_prefix("bri") == "partner-bri."
    assert partner_group_prefix("bri", "kupang") == "kupang.partner-bri."


@pytest.mark.parametrize(("partner_id", "namespace"), [("kupang", ""), ("bri", ""), ("kupang", "ende"),
                                                       ("ende", "kupang")])  # fmt: skip
def test_a_partner_named_like_another_deployment_s_namespace_reaches_none_of_that_deployment_s_names(
        partner_id: str, namespace: str) -> None:  # fmt: skip
    # A partner `kupang` of the deployment without a namespace was given every group starting `kupang.`: the groups
    # of the deployment named kupang, whose consumers it could join, taking their partitions and reading nothing.
    others = [n for n in ("kupang", "ende") if n != namespace]
    for other, grant in itertools.product(others, partner_grants(partner_id, namespace)):
        reached = [name for name in names_of_deployment(other, "bri") if partners.covers(grant, name)]
        assert reached == [], f"{grant} of partner {partner_id} ({namespace or 'no namespace'}) reaches {reached}"


@pytest.mark.parametrize("namespace", ["public", "partner", "partner-bri", "registry", "funding", "training"])
def test_a_namespace_spelled_like_names_partners_are_granted_by_prefix_is_refused(namespace: str) -> None:
    # `public.registry.business.v1` of a deployment named public would be read by every partner of the deployment
    # without one, the groups of one named partner-bri joined by its partner bri, and the services of one named
    # registry would be granted to watch the other's registry.* topics.
    with pytest.raises(ValidationError, match="spelled like names every deployment uses") as refused:
        PlatformSettings(BERDAYA_TOPIC_NAMESPACE=namespace, BERDAYA_JWT_SECRET="s" * 40, BERDAYA_PSEUDONYM_KEY="k" * 40)
    assert refused.value.errors()[0]["loc"] == ("BERDAYA_TOPIC_NAMESPACE",)
    with pytest.raises(partners.PartnerRefused, match="choose another"):
        partners.check_namespace(namespace)


@pytest.mark.parametrize("namespace", ["", "kupang", "public-kupang", "partners", "bri-partner"])
def test_namespaces_that_only_resemble_those_names_are_taken(namespace: str) -> None:
    settings = PlatformSettings(BERDAYA_TOPIC_NAMESPACE=namespace, BERDAYA_JWT_SECRET="s" * 40,
                                BERDAYA_PSEUDONYM_KEY="k" * 40)  # fmt: skip
    assert settings.topic_namespace == namespace
    partners.check_namespace(namespace)


def test_a_services_user_is_not_made_for_a_namespace_spelled_like_another_deployments_names() -> None:
    class Refusing(KafkaSecurity):
        def __init__(self) -> None:  # no cluster: any call to it fails the test
            pass

    with pytest.raises(ValueError, match="choose another"):
        provision_service(Refusing(), FUNDING_SERVICE, "password", "partner-bri")

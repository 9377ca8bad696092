"""The local stack on a secured cluster, in a topic namespace: each service's Kafka user is the namespace's, so the
grants `berdaya partner add` gives the services for a partner's topics reach the services that use them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from berdaya import partners
from berdaya.stack.access import access_from_env
from berdaya.stack.local import LocalStack, service
from shared.contracts.topics import REGISTRY_BUSINESS, namespaced, partner_topic
from shared.messaging.acl import KafkaSecurity, service_user
from shared.messaging.kafka import KafkaAccess, TopicSpec, ensure_topics
from tests.integration.test_kafka_acls import read, write

pytestmark = pytest.mark.integration


async def test_services_the_local_stack_starts_in_a_namespace_use_what_partner_add_granted_them(
        infra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001  # fmt: skip
    admin: KafkaAccess = infra.kafka
    if not admin.authenticated:
        pytest.skip("the test's Kafka is not secured")
    namespace = f"stack-{uuid.uuid4().hex[:8]}"
    for name, value in {"BERDAYA_HOME": str(tmp_path / "home"), "BERDAYA_POSTGRES_URL": infra.postgres_url,
                        "KAFKA_BOOTSTRAP_SERVERS": admin.bootstrap_servers, "KAFKA_USERNAME": admin.username or "",
                        "KAFKA_PASSWORD": admin.password or "", "KAFKA_TLS": "true" if admin.tls else "false",
                        "BERDAYA_TOPIC_NAMESPACE": namespace}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    security = KafkaSecurity(admin)
    try:
        bri = await partners.add(admin, "bri", namespace=namespace, partitions=1)
        referral, outcomes = (namespaced(partner_topic("bri", kind), namespace) for kind in ("referral", "outcomes"))
        own = namespaced(REGISTRY_BUSINESS, namespace)
        await ensure_topics(admin, [TopicSpec(own, 1, 1)])
        assert write(KafkaAccess(admin.bootstrap_servers, bri.user, bri.password, admin.tls), outcomes) is None

        stack = LocalStack()
        funding = access_from_env(await asyncio.to_thread(stack.service_env, service("funding")))
        registry = access_from_env(await asyncio.to_thread(stack.service_env, service("registry")))
        assert funding.username == f"{namespace}.service-funding"
        assert registry.username == f"{namespace}.service-registry"
        # Funding reads the partner's outcomes, as `partner add` granted; the registry writes its own topic and the
        # partner's referrals.
        assert await asyncio.to_thread(read, funding, outcomes, f"{namespace}.funding-partners") == b"{}"
        assert await asyncio.to_thread(write, registry, own) is None
        assert await asyncio.to_thread(write, registry, referral) is None
    finally:
        partners.revoke(admin, "bri", namespace=namespace)
        for name in ("funding", "registry"):
            security.revoke(service_user(name, namespace))
            security.remove_user(service_user(name, namespace))

"""Admitting a partner system to the cluster: its topics, its SCRAM user, its ACLs, and the registry's record of it.

Each step is idempotent, so an `add` that stopped half way is finished by running it again. A password is made only
when the user is new (or on `rotate`) and shown once; the cluster keeps only its salted hash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.contracts.public import PARTNER_ID_PATTERN, PUBLIC_TOPICS
from shared.contracts.topics import namespaced
from shared.messaging.acl import (
    Grant,
    KafkaSecurity,
    new_password,
    partner_grants,
    partner_group_prefix,
    partner_links,
    partner_topics,
    partner_user,
)
from shared.messaging.kafka import KafkaAccess, ensure_topics, with_dead_letters

class PartnerRefused(ValueError):
    """The request can't be done as asked; the message says what to do instead."""


@dataclass
class PartnerAccess:
    """What a partner's engineers need, handed over once."""

    partner_id: str
    user: str
    password: str | None  # None when the user already existed and kept its password
    bootstrap_servers: str
    reads: list[str]
    writes: list[str]
    group_prefix: str
    grants: list[Grant] = field(default_factory=list)

    def client_properties(self) -> str:
        """librdkafka / Java client settings (kcat -F, kafka-console-consumer --consumer.config)."""
        return "\n".join([
            f"bootstrap.servers={self.bootstrap_servers}",
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanism=SCRAM-SHA-512",
            f"sasl.username={self.user}",
            f"sasl.password={self.password or '<unchanged: use the password you were given>'}",
        ]) + "\n"  # fmt: skip


def check_id(partner_id: str) -> None:
    import re

    if not re.fullmatch(PARTNER_ID_PATTERN, partner_id):
        raise PartnerRefused(f"partner id {partner_id!r} must be 2 to 40 lower-case letters, digits or '-', starting "
                             "with a letter (e.g. bri, pos-indonesia)")  # fmt: skip


def public_topics(patterns: Sequence[str]) -> tuple[str, ...] | None:
    """The public topics a partner asked for (`public.*` for all of them, and the ones published later: None)."""
    if not patterns or "public.*" in patterns:
        return None
    unknown = sorted(set(patterns) - set(PUBLIC_TOPICS))
    if unknown:
        raise PartnerRefused(f"--topics {', '.join(unknown)}: a partner may read public topics only; choose from "
                             f"{', '.join(PUBLIC_TOPICS)}, or public.* for all of them")  # fmt: skip
    return tuple(sorted(set(patterns)))


async def add(admin: KafkaAccess, partner_id: str, *, namespace: str = "", partitions: int = 3,
              replication_factor: int = 1, register: Callable[[str], None] | None = None,
              topics: Sequence[str] = ("public.*",)) -> PartnerAccess:  # fmt: skip
    """Topics, user, grants (the partner's and the services' for it), then the registry's record via `register`."""
    check_id(partner_id)
    reads = public_topics(topics)
    security = KafkaSecurity(admin)
    await ensure_topics(admin, with_dead_letters(partner_topics(partner_id, namespace), partitions, replication_factor))
    user = partner_user(partner_id, namespace)
    password = None
    if user not in security.users():
        password = new_password()
        security.set_password(user, password)
    grants = partner_grants(partner_id, namespace, reads)
    # A narrower --topics on a second add takes effect: grants beyond it go.
    security.revoke(user, sorted(set(security.grants(user).get(user, [])) - set(grants)))
    security.grant(user, grants)
    for service_user, links in partner_links(partner_id, namespace).items():
        security.grant(service_user, links)
    if register is not None:
        register(partner_id)
    return access_of(admin, partner_id, namespace, password, grants)


def rotate(admin: KafkaAccess, partner_id: str, *, namespace: str = "") -> PartnerAccess:
    """A new password; the old one stops working for new connections at once."""
    check_id(partner_id)
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    if user not in security.users():
        raise PartnerRefused(f"partner {partner_id} has no Kafka user; add it first with `berdaya partner add {partner_id}`")
    password = new_password()
    security.set_password(user, password)
    return access_of(admin, partner_id, namespace, password, partner_grants(partner_id, namespace))


def on_cluster(admin: KafkaAccess, partner_id: str, *, namespace: str = "") -> tuple[bool, int]:
    """Whether the partner has a Kafka user here, and how many grants it holds: what a revoke would take away."""
    check_id(partner_id)
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    return user in security.users(), len(security.grants(user).get(user, []))


def revoke(admin: KafkaAccess, partner_id: str, *, namespace: str = "",
           unregister: Callable[[str], None] | None = None) -> int:  # fmt: skip
    """No more reading or writing for the partner, no more referrals to it; its topics stay for the record.
    Returns how many grants went."""
    check_id(partner_id)
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    removed = security.revoke(user)
    for service_user, links in partner_links(partner_id, namespace).items():
        removed += security.revoke(service_user, links)
    security.remove_user(user)
    if unregister is not None:
        unregister(partner_id)
    return removed


def listing(admin: KafkaAccess, *, namespace: str = "") -> dict[str, list[Grant]]:
    """Every partner user of this deployment and its grants."""
    security = KafkaSecurity(admin)
    prefix = partner_user("", namespace)
    grants = security.grants()
    return {user.removeprefix(prefix): grants.get(user, []) for user in security.users() if user.startswith(prefix)}


def access_of(admin: KafkaAccess, partner_id: str, namespace: str, password: str | None,
              grants: list[Grant]) -> PartnerAccess:  # fmt: skip
    referral, outcomes = partner_topics(partner_id, namespace)
    return PartnerAccess(
        partner_id=partner_id, user=partner_user(partner_id, namespace), password=password,
        bootstrap_servers=admin.bootstrap_servers,
        reads=[namespaced(t, namespace) for t in PUBLIC_TOPICS if any(g.operation == "READ" and g.resource == "topic"
               and (namespaced(t, namespace).startswith(g.name) if g.prefixed else namespaced(t, namespace) == g.name)
               for g in grants)] + [referral], writes=[outcomes],
        group_prefix=partner_group_prefix(partner_id, namespace), grants=grants,
    )  # fmt: skip

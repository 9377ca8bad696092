"""Admitting a partner system to the cluster: its topics, its SCRAM user, its ACLs, and the registry's record of it.

Each step is idempotent, so an `add` that stopped half way is finished by running it again. A password is made only
when the user is new (or on `rotate`) and shown once; the cluster keeps only its salted hash.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.funding.subscribers import PARTNERS as OUTCOMES_CONSUMER  # funding's reader of partners' outcomes
from shared.contracts.public import PARTNER_ID_PATTERN, PUBLIC_TOPICS
from shared.contracts.topics import PUBLIC_PREFIX, namespaced, unclaimed_namespace
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
from shared.messaging.kafka import (
    KafkaAccess,
    consumer_lag,
    enforce_compaction,
    ensure_topics,
    kafka_said,
    with_dead_letters,
)
from shared.settings import PlatformSettings


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
    groups: list[str] = field(default_factory=list)  # the consumer groups its grants allow, e.g. `partner-bri.*`
    tls: bool = False  # the cluster's listener is TLS, as the admin's connection to it is

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    def client_properties(self) -> str:
        """librdkafka / Java client settings (kcat -F, kafka-console-consumer --consumer.config)."""
        return "\n".join([
            f"bootstrap.servers={self.bootstrap_servers}",
            f"security.protocol={self.protocol}",
            "sasl.mechanism=SCRAM-SHA-512",
            f"sasl.username={self.user}",
            f"sasl.password={self.password or '<unchanged: use the password you were given>'}",
        ]) + "\n"  # fmt: skip


@dataclass(frozen=True)
class Topics:
    """How a deployment names and makes its topics: what its services read from the environment."""

    namespace: str = ""
    partitions: int = 6
    replication_factor: int = 1


class _TopicSettingsBase(BaseSettings):
    # The variables' names only (BERDAYA_TOPIC_*), as the services read them: not TOPIC_NAMESPACE, say.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, hide_input_in_errors=True)


# The services' own fields (shared/settings.py), variable names, defaults and checks alike, and nothing else: a
# partner's topics are named and made as the services' are, and a setting the command does not use can't stop it.
_TOPIC_FIELDS = {"topic_namespace": "namespace", "topic_partitions": "partitions",
                 "topic_replication_factor": "replication_factor"}  # fmt: skip
_TopicSettings = create_model("_TopicSettings", __base__=_TopicSettingsBase, **{
    name: (info.annotation, info) for name, info in PlatformSettings.model_fields.items() if name in _TOPIC_FIELDS})


def deployment_topics() -> Topics:
    """BERDAYA_TOPIC_NAMESPACE, BERDAYA_TOPIC_PARTITIONS and BERDAYA_TOPIC_REPLICATION_FACTOR, read from the
    environment and checked as the services read them; a bad one is refused naming the variable."""
    try:
        settings = _TopicSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}={e.get('input')!r:.80}: {e['msg']}" for e in exc.errors())
        raise PartnerRefused(f"{problems}. The services read the same setting; fix it in the environment and run "
                             "this command again") from None  # fmt: skip
    return Topics(**{ours: getattr(settings, name) for name, ours in _TOPIC_FIELDS.items()})


# The services' own rule for a namespace: no dots, so no namespace's names can pass for another's.
NAMESPACE_PATTERN = next(m.pattern for m in PlatformSettings.model_fields["topic_namespace"].metadata
                         if getattr(m, "pattern", None))  # fmt: skip


def check_id(partner_id: str, namespace: str = "") -> None:
    if not re.fullmatch(PARTNER_ID_PATTERN, partner_id):
        raise PartnerRefused(f"partner id {partner_id!r} must be 2 to 40 lower-case letters, digits or '-', starting "
                             "with a letter (e.g. bri, pos-indonesia)")  # fmt: skip
    check_namespace(namespace)


def check_namespace(namespace: str) -> None:
    if not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise PartnerRefused(f"topic namespace {namespace!r} may hold lower-case letters, digits and '-' only "
                             "(BERDAYA_TOPIC_NAMESPACE)")  # fmt: skip
    try:
        unclaimed_namespace(namespace)
    except ValueError as exc:
        raise PartnerRefused(f"{exc} (BERDAYA_TOPIC_NAMESPACE)") from None


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
              topics: Sequence[str] | None = None) -> PartnerAccess:  # fmt: skip
    """Topics, the services' grants for it, the registry's record via `register`, then the partner's grants and,
    last, its user.

    The partner may read nothing until the registry has its record: re-admitted, the registry first tells it of every
    consent withdrawn meanwhile and answers once those withdrawals are on its referral topic (their relay writes with
    the grant given just before), so no referral is read without the withdrawal that supersedes it. A registry that
    refuses or does not answer leaves the partner no access and no password to lose: run the command again. The
    password is made last, when nothing can fail after it, so it is always shown.

    `topics`: the public topics it may read; None keeps those of a partner that has a user (every one for a new
    partner), so an `add` run again to bring a partner up to date does not widen what it reads."""
    check_id(partner_id, namespace)
    asked = public_topics(topics) if topics is not None else None
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    existing = user in security.users()  # a partner added before: its password stays, its reads are kept
    if topics is None and existing and public_reads(security.grants(user).get(user, []), namespace) == ():
        # `add` never gives fewer than one: its grants went (a revoke that stopped half way, or by hand), and what it
        # read is not known any more. Every public topic would be a guess; none would cut its systems off.
        raise PartnerRefused(f"partner {partner_id} has a Kafka user but no grant to read a public topic, so what it "
                             "read is not known: run the command again with --topics naming what it may read "
                             "(public.* for all of them). Nothing was done")  # fmt: skip
    specs = with_dead_letters(partner_topics(partner_id, namespace), partitions, replication_factor)
    try:
        await ensure_topics(admin, specs)
    except RuntimeError as exc:  # the cluster refused to make a topic as asked (more replicas than brokers, say)
        raise PartnerRefused(f"{exc} (asked for {partitions} partition(s), replication factor {replication_factor}: "
                             "BERDAYA_TOPIC_PARTITIONS and BERDAYA_TOPIC_REPLICATION_FACTOR, as for the services' "
                             "topics); nothing else was done") from exc  # fmt: skip
    # Its referral topic is compacted: a withdrawal, keyed by its consent's id like the referral, supersedes the
    # owner's name, phone and NIK link (UU PDP 27/2022). One made before that rule (kept whole, for ever) is now too.
    from confluent_kafka import KafkaException

    try:
        enforce_compaction(admin, specs)
    except KafkaException as exc:
        raise PartnerRefused(f"the cluster would not make {partner_topics(partner_id, namespace)[0]} compacted "
                             f"({kafka_said(exc)}); run this command as the cluster's admin, and again: the "
                             "topics are kept, nothing else was done") from exc  # fmt: skip
    for service_user, links in partner_links(partner_id, namespace).items():
        security.grant(service_user, links)
    if register is not None:
        register(partner_id)
    granted = security.grants()
    reads = public_reads(granted.get(user, []), namespace) if topics is None and existing else asked
    grants = partner_grants(partner_id, namespace, reads)
    # A narrower --topics on a second add takes effect: grants beyond it go.
    security.revoke(user, sorted(set(granted.get(user, [])) - set(grants)))
    security.grant(user, grants)
    password = None
    if not existing:
        password = new_password()
        security.set_password(user, password)
    return access_of(admin, partner_id, namespace, password, grants, to_anyone=granted.get("*", []))


def public_reads(held: Sequence[Grant], namespace: str) -> tuple[str, ...] | None:
    """The public topics these grants let a partner read, as `partner_grants` takes them (None: all of them)."""
    if Grant("topic", namespaced(PUBLIC_PREFIX, namespace), "READ", prefixed=True) in held:
        return None
    return tuple(t for t in PUBLIC_TOPICS if Grant("topic", namespaced(t, namespace), "READ") in held)


def rotate(admin: KafkaAccess, partner_id: str, *, namespace: str = "") -> PartnerAccess:
    """A new password; the old one stops working for new connections at once, and for the connections the partner
    already has once they must authenticate again: the broker's `connections.max.reauth.ms` (10 minutes on the
    local stack; a cluster without it keeps them open for as long as they are used)."""
    check_id(partner_id, namespace)
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    if user not in security.users():
        raise PartnerRefused(f"partner {partner_id} has no Kafka user; add it first with `berdaya partner add {partner_id}`")
    password = new_password()
    security.set_password(user, password)
    # What it may do is what the cluster grants it now (a narrower --topics, a grant removed or added by hand), not
    # what a new partner would get; grants to every user (`User:*`) count too.
    granted = security.grants()
    return access_of(admin, partner_id, namespace, password, granted.get(user, []), to_anyone=granted.get("*", []))


def on_cluster(admin: KafkaAccess, partner_id: str, *, namespace: str = "") -> tuple[bool, int]:
    """Whether the partner has a Kafka user here, and how many grants it holds: what a revoke would take away."""
    check_id(partner_id, namespace)
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    return user in security.users(), len(security.grants(user).get(user, []))


def namespaces_of(admin: KafkaAccess, partner_id: str) -> list[str]:
    """The topic namespaces in which the partner has a Kafka user ("" for none): where a revoke would find it."""
    suffix = partner_user(partner_id)
    return sorted(user.removesuffix(suffix).removesuffix(".") for user in KafkaSecurity(admin).users()
                  if user == suffix or user.endswith(f".{suffix}"))  # fmt: skip


def outcomes_unread(admin: KafkaAccess, partner_id: str, namespace: str = "") -> int:
    """Outcomes on the partner's topic that funding has not committed as read (0 when the topic has none)."""
    from confluent_kafka import KafkaException

    topic, group = partner_topics(partner_id, namespace)[1], namespaced(OUTCOMES_CONSUMER, namespace)
    try:
        return sum(consumer_lag(admin, group, [topic]).values())
    except (KafkaException, TimeoutError) as exc:
        raise PartnerRefused(f"partner {partner_id} is cut off, but Kafka did not say whether funding has recorded "
                             f"the outcomes it wrote ({kafka_said(exc)}); funding keeps its grant to read them: run "
                             "the revoke again once Kafka answers") from exc  # fmt: skip


def revoke(admin: KafkaAccess, partner_id: str, *, namespace: str = "",
           unregister: Callable[[str], None] | None = None, outcomes_wait: float = 20.0) -> int:  # fmt: skip
    """No more reading or writing for the partner, no more referrals to it; its topics stay for the record.
    Returns how many grants went.

    The partner is cut off first, whatever happens next. Then the registry is told (`unregister`), which answers
    once the referral events committed before it knew are on the partner's topic, and funding must have recorded
    the outcomes the partner wrote before it was cut off; only then do the services lose their grants to its topics,
    so no referral is left unable to go and no outcome unread. Should the registry not answer, events still wait,
    or outcomes stay unread for `outcomes_wait` seconds, this raises and the services keep their grants: a second
    revoke finishes."""
    check_id(partner_id, namespace)
    security = KafkaSecurity(admin)
    user = partner_user(partner_id, namespace)
    removed = security.revoke(user)
    security.remove_user(user)
    if unregister is not None:
        unregister(partner_id)
    deadline = time.monotonic() + outcomes_wait
    while (unread := outcomes_unread(admin, partner_id, namespace)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if unread:
        group = namespaced(OUTCOMES_CONSUMER, namespace)
        raise PartnerRefused(f"partner {partner_id} is cut off, but funding has not yet recorded {unread} outcome(s) "
                             f"it wrote before (consumer group {group}); funding keeps its grant to read them: check "
                             "that funding is running, then run the revoke again")  # fmt: skip
    for service_user, links in partner_links(partner_id, namespace).items():
        removed += security.revoke(service_user, links)
    return removed


def listing(admin: KafkaAccess, *, namespace: str = "") -> dict[str, list[Grant]]:
    """Every partner user of this deployment and its grants."""
    check_namespace(namespace)
    security = KafkaSecurity(admin)
    prefix = partner_user("", namespace)
    grants = security.grants()
    return {user.removeprefix(prefix): grants.get(user, []) for user in security.users() if user.startswith(prefix)}


def access_of(admin: KafkaAccess, partner_id: str, namespace: str, password: str | None, grants: list[Grant], *,
              to_anyone: Sequence[Grant] = ()) -> PartnerAccess:  # fmt: skip
    """The partner's access as its grants (and those given to every user) make it, whatever they are."""
    referral, outcomes = partner_topics(partner_id, namespace)
    held = [*grants, *to_anyone]
    return PartnerAccess(
        partner_id=partner_id, user=partner_user(partner_id, namespace), password=password,
        bootstrap_servers=admin.bootstrap_servers,
        reads=granted_names(held, "topic", "READ", [*(namespaced(t, namespace) for t in PUBLIC_TOPICS), referral]),
        writes=granted_names(held, "topic", "WRITE", [outcomes]),
        group_prefix=partner_group_prefix(partner_id, namespace), grants=grants,
        groups=granted_names(held, "group", "READ", []), tls=admin.tls,
    )  # fmt: skip


def covers(grant: Grant, name: str) -> bool:
    """Whether the grant reaches a topic or group of that name, as Kafka's authorizer matches it."""
    if grant.prefixed:
        return name.startswith(grant.name)
    return grant.name in ("*", name)  # a literal `*` is every name


def granted_names(grants: Sequence[Grant], resource: str, operation: str, known: Sequence[str]) -> list[str]:
    """What `operation` is allowed on: each of the `known` names a grant reaches, then every grant that reaches
    beyond them, as a pattern (`public.*` takes topics made later too; `*` is everything)."""
    allowing = [g for g in grants if g.resource == resource and g.operation in (operation, "ALL")]
    names = [name for name in known if any(covers(g, name) for g in allowing)]
    beyond = sorted({f"{g.name}*" if g.prefixed else g.name for g in allowing if g.prefixed or g.name not in known})
    return names + beyond

"""Who may do what on the Kafka cluster: SCRAM users and least-privilege ACLs for services and partners.

The cluster denies whatever no ACL allows. Each service is a user that may write its own topics, read the topics it
consumes (with its own consumer groups) and write their dead letters; each partner is a user that may read the public
topics and its own referral topic and write its own outcomes topic, nothing else. What a service may touch is derived
from its definition (what it produces, what it subscribes to), so a new subscription cannot be forgotten here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.contracts.topics import PUBLIC_PREFIX, dlq, namespaced, partner_topic, unclaimed_namespace
from shared.messaging.kafka import KafkaAccess, confluent_admin

Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE"]


class Subscribing(Protocol):
    topic: str
    consumer: str
    pattern: bool


class Serving(Protocol):
    """What a service definition says about its topics."""

    name: str
    produces: tuple[str, ...]
    subscriptions: Sequence[Subscribing]


def service_user(service: str, namespace: str = "") -> str:
    return namespaced(f"service-{service}", namespace)


def partner_user(partner_id: str, namespace: str = "") -> str:
    return namespaced(f"partner-{partner_id}", namespace)


def partner_group_prefix(partner_id: str, namespace: str = "") -> str:
    """A partner's consumer groups must start with this, its user's name and a dot, e.g. `partner-bri.loans`. Not its
    bare id: without a namespace, `kupang.` would also cover every consumer group of the deployment whose namespace
    is `kupang` (namespaces spelled `partner-...` are refused, `unclaimed_namespace`)."""
    return f"{partner_user(partner_id, namespace)}."


def new_password() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, order=True)
class Grant:
    """One permission: `operation` on a topic or group named `name` (or every name starting with it)."""

    resource: Literal["topic", "group"]
    name: str
    operation: Operation
    prefixed: bool = False

    def __str__(self) -> str:
        return f"{self.operation} {self.resource} {self.name}{'*' if self.prefixed else ''}"


def _topic(name: str, *operations: Operation, prefixed: bool = False) -> list[Grant]:
    return [Grant("topic", name, op, prefixed) for op in operations]


def _everything(namespace: str) -> tuple[str, bool]:
    """The whole deployment: its namespace's prefix on a shared cluster, else every name (`*`)."""
    return (f"{namespace}.", True) if namespace else ("*", False)


def service_grants(service: Serving, namespace: str = "") -> list[Grant]:
    """A service's own rights. Topics a pattern subscription reads are granted one by one as they appear
    (`partner_links`), so a pattern never reaches more than what was granted."""
    grants: list[Grant] = []
    for topic in service.produces:
        name = namespaced(topic, namespace)
        # A service creates the topics it writes (with their dead-letter topics) when it starts.
        grants += _topic(name, "WRITE", "DESCRIBE", "CREATE") + _topic(dlq(name), "DESCRIBE", "CREATE")
    for subscription in service.subscriptions:
        grants.append(Grant("group", namespaced(subscription.consumer, namespace), "READ"))
        if not subscription.pattern:
            name = namespaced(subscription.topic, namespace)
            grants += _topic(name, "READ", "DESCRIBE", "CREATE") + _topic(dlq(name), "WRITE", "DESCRIBE", "CREATE")
    if service.subscriptions:
        # Watching lag means reading every group's committed offsets and every topic's end offsets: metadata only,
        # never a record.
        name, prefixed = _everything(namespace)
        grants += [Grant("group", name, "DESCRIBE", prefixed), Grant("topic", name, "DESCRIBE", prefixed)]
    return sorted(set(grants))


def partner_grants(partner_id: str, namespace: str = "", public: Sequence[str] | None = None) -> list[Grant]:
    """A partner reads the public topics (those named, or all of them, present and future, when None) and its
    referrals, writes its outcomes, in groups of its own."""
    referral = namespaced(partner_topic(partner_id, "referral"), namespace)
    outcomes = namespaced(partner_topic(partner_id, "outcomes"), namespace)
    reads = (_topic(namespaced(PUBLIC_PREFIX, namespace), "READ", "DESCRIBE", prefixed=True) if public is None
             else [g for t in public for g in _topic(namespaced(t, namespace), "READ", "DESCRIBE")])  # fmt: skip
    return sorted({
        *reads,
        *_topic(referral, "READ", "DESCRIBE"),
        *_topic(outcomes, "WRITE", "DESCRIBE"),
        Grant("group", partner_group_prefix(partner_id, namespace), "READ", prefixed=True),
    })  # fmt: skip


def partner_topics(partner_id: str, namespace: str = "") -> list[str]:
    return [namespaced(partner_topic(partner_id, kind), namespace) for kind in ("referral", "outcomes")]


def partner_links(partner_id: str, namespace: str = "") -> dict[str, list[Grant]]:
    """What the services need for one partner: the registry writes its referrals, funding reads its outcomes."""
    referral, outcomes = partner_topics(partner_id, namespace)
    return {
        service_user("registry", namespace): _topic(referral, "WRITE", "DESCRIBE"),
        service_user("funding", namespace): _topic(outcomes, "READ", "DESCRIBE") + _topic(dlq(outcomes), "WRITE", "DESCRIBE"),
    }


class KafkaSecurity:
    """SCRAM users and ACLs on a cluster, through its admin user. Every call waits for the cluster's answer and
    raises what it said, so a grant that did not happen never looks as if it had."""

    TIMEOUT = 30

    def __init__(self, admin: KafkaAccess) -> None:
        self._client = confluent_admin(admin)
        self._cluster_operations: set[str] | None = None

    def _may(self, operation: Literal["DESCRIBE", "ALTER"]) -> None:
        """Refuse, as Kafka would, a SCRAM request this login may not make: confluent-kafka 2.16 aborts the whole
        process (munmap_chunk(): invalid pointer) when the cluster refuses one, where it should raise."""
        from confluent_kafka import KafkaError, KafkaException

        if self._cluster_operations is None:
            future = self._client.describe_cluster(include_authorized_operations=True, request_timeout=self.TIMEOUT)
            allowed = future.result(timeout=self.TIMEOUT).authorized_operations or ()
            self._cluster_operations = {op.name for op in allowed}
        if operation not in self._cluster_operations:
            raise KafkaException(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                                            f"this Kafka login may not {operation.lower()} the cluster's users; "
                                            "use the cluster's admin login"))  # fmt: skip

    def set_password(self, user: str, password: str) -> None:
        """Create the user, or change its password (old sessions stay until they reconnect)."""
        from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

        self._may("ALTER")
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        futures = self._client.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password.encode())])
        futures[user].result(timeout=self.TIMEOUT)

    def users(self) -> list[str]:
        """Every SCRAM user. Only "none at all" is an empty list: a partner's add taking a refusal for "no such
        user" would give an existing partner a new password and cut its systems off."""
        from confluent_kafka import KafkaError, KafkaException

        self._may("DESCRIBE")
        try:
            described = self._client.describe_user_scram_credentials().result(timeout=self.TIMEOUT)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.RESOURCE_NOT_FOUND:
                return []
            raise
        return sorted(described)

    def remove_user(self, user: str) -> bool:
        """Delete the user's SCRAM credential; False if it had none."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

        self._may("ALTER")
        futures = self._client.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)])
        try:
            futures[user].result(timeout=self.TIMEOUT)
        except KafkaException as exc:
            if "RESOURCE_NOT_FOUND" in str(exc) or "not found" in str(exc).lower():
                return False
            raise
        return True

    def grant(self, user: str, grants: Iterable[Grant]) -> None:
        bindings = [self._binding(user, g) for g in grants]
        if not bindings:
            return
        for future in self._client.create_acls(bindings).values():
            future.result(timeout=self.TIMEOUT)

    def grants(self, user: str | None = None) -> dict[str, list[Grant]]:
        """Every ALLOW binding on topics and groups, by user (without the `User:` prefix)."""
        from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

        found: dict[str, list[Grant]] = {}
        for kind in (ResourceType.TOPIC, ResourceType.GROUP):
            query = AclBindingFilter(kind, None, ResourcePatternType.ANY, f"User:{user}" if user else None, None,
                                     AclOperation.ANY, AclPermissionType.ALLOW)  # fmt: skip
            for b in self._client.describe_acls(query).result(timeout=self.TIMEOUT):
                grant = Grant("topic" if b.restype == ResourceType.TOPIC else "group", b.name, b.operation.name,
                              b.resource_pattern_type == ResourcePatternType.PREFIXED)  # fmt: skip
                found.setdefault(b.principal.removeprefix("User:"), []).append(grant)
        return {u: sorted(g) for u, g in sorted(found.items())}

    def revoke(self, user: str, grants: Iterable[Grant] | None = None) -> int:
        """Remove the given grants, or all of the user's; returns how many bindings went."""
        from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

        if grants is None:
            filters = [AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{user}", None,
                                        AclOperation.ANY, AclPermissionType.ANY)]  # fmt: skip
        else:
            filters = [AclBindingFilter(*self._binding_args(user, g)) for g in grants]
        if not filters:
            return 0
        return sum(len(f.result(timeout=self.TIMEOUT)) for f in self._client.delete_acls(filters).values())

    @classmethod
    def _binding(cls, user: str, grant: Grant):  # noqa: ANN206 - confluent's AclBinding
        from confluent_kafka.admin import AclBinding

        return AclBinding(*cls._binding_args(user, grant))

    @staticmethod
    def _binding_args(user: str, grant: Grant) -> tuple:
        from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType

        return (
            ResourceType.TOPIC if grant.resource == "topic" else ResourceType.GROUP,
            grant.name,
            ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
            f"User:{user}", "*", AclOperation[grant.operation], AclPermissionType.ALLOW,
        )  # fmt: skip


def provision_service(security: KafkaSecurity, service: Serving, password: str, namespace: str = "", *,
                      set_password: bool = True) -> str:  # fmt: skip
    """The service's user with exactly its grants (stale ones removed); returns the user's name."""
    unclaimed_namespace(namespace)  # before any grant: one spelled like another deployment's names is refused
    user = service_user(service.name, namespace)
    if set_password:
        security.set_password(user, password)
    wanted = set(service_grants(service, namespace))
    existing = set(security.grants(user).get(user, []))
    # Partner links are granted to services too; they are kept, everything else not wanted goes.
    linked = {g for g in existing if ".partner." in f".{g.name}"}
    security.revoke(user, sorted(existing - wanted - linked))
    security.grant(user, sorted(wanted - existing))
    return user

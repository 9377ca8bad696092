"""Each service's own Kafka user on a secured cluster, made by whoever holds the admin credential before it starts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from shared.messaging.acl import KafkaSecurity, provision_service, service_user
from shared.messaging.kafka import KafkaAccess

if TYPE_CHECKING:  # the definitions bring FastAPI and every route with them: imported when a service is started
    from shared.service import ServiceDefinition


def service_password(admin: KafkaAccess, user: str) -> str:
    # Derived, not stored: every replica and restart of a service gets the same password from the same admin secret,
    # and changing the admin's password changes every service's at their next start.
    digest = hmac.new((admin.password or "").encode(), user.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def service_access(admin: KafkaAccess, name: str, namespace: str = "") -> KafkaAccess:
    """How service `name` reaches the cluster: as its own user with exactly the ACLs its definition implies (brought
    up to date on every start), or, on a cluster without authentication, as anyone."""
    if not admin.authenticated:
        return admin
    definition = service_definition(name)
    user = service_user(name, namespace)
    own = admin.as_user(user, service_password(admin, user))
    # Setting a SCRAM password again makes a new salt, and a replica logging in at that moment is refused: the
    # password is set only when it does not work yet (a new user, or a changed admin secret).
    provision_service(KafkaSecurity(admin), definition, own.password or "", namespace,
                      set_password=not logs_in(own))  # fmt: skip
    _wait_until(lambda: logs_in(own), f"Kafka user {user}")
    return own


# FastAPI builds a service's routes as its module is imported, inside `warnings.catch_warnings()`, which swaps the
# process's warning filters and is not thread-safe. Replicas started from threads at once (a chaos run, the
# benchmarks) printed pydantic warnings FastAPI meant to silence, in about one run in seven, and an interleaving can
# leave its filters in place for the rest of the process. So one import at a time.
_IMPORTING = threading.Lock()


def service_definition(name: str) -> ServiceDefinition:
    """Service `name`'s definition (`services/<name>/bootstrap.py`'s SERVICE), safe to ask for from any thread."""
    with _IMPORTING:
        return importlib.import_module(f"services.{name}.bootstrap").SERVICE


def logs_in(access: KafkaAccess, timeout: float = 5) -> bool:
    """True if the cluster accepts these credentials (a refused login is told to error_cb, not raised)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    refused: list[KafkaError] = []
    client = AdminClient({**access.confluent(), "log_level": 0, "error_cb": refused.append})
    try:
        client.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return not any(e.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED) for e in refused)


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} is still refused by the cluster after {timeout:.0f} s; check the broker's log")
        time.sleep(0.2)


def access_env(access: KafkaAccess) -> dict[str, str]:
    """The settings (shared/settings.py) a process reads its Kafka access from."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": access.bootstrap_servers, "KAFKA_TLS": "true" if access.tls else "false"}
    if access.authenticated:
        env |= {"KAFKA_USERNAME": access.username or "", "KAFKA_PASSWORD": access.password or ""}
    return env


def access_from_env(env: Mapping[str, str]) -> KafkaAccess:
    username = env.get("KAFKA_USERNAME") or None
    return KafkaAccess(env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), username,
                       env.get("KAFKA_PASSWORD") if username else None,
                       env.get("KAFKA_TLS", "").lower() in ("1", "true", "yes"))  # fmt: skip

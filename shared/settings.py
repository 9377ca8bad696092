"""Settings common to every service, read from the environment; each service adds its own with a prefix."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.topics import unclaimed_namespace
from shared.messaging.kafka import KafkaAccess


class PlatformSettings(BaseSettings):
    """Shared knobs. Unprefixed names (KAFKA_BOOTSTRAP_SERVERS, BERDAYA_JWT_SECRET) are the same for every service."""

    # A bad setting is reported by name, never with the values around it (they include secrets).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    # Set on a secured cluster: this service's SCRAM-SHA-512 user, whose ACLs say what it may touch.
    kafka_username: str | None = Field(None, validation_alias="KAFKA_USERNAME")
    kafka_password: SecretStr | None = Field(None, validation_alias="KAFKA_PASSWORD")
    kafka_tls: bool = Field(False, validation_alias="KAFKA_TLS")
    topic_namespace: Annotated[str, AfterValidator(unclaimed_namespace)] = Field(
        "", pattern=r"^[a-z0-9-]*$", validation_alias="BERDAYA_TOPIC_NAMESPACE",
        description="Prefix of every topic name, so several deployments (cities, test runs) can share a cluster",
    )
    topic_partitions: int = Field(6, ge=1, validation_alias="BERDAYA_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(1, ge=1, validation_alias="BERDAYA_TOPIC_REPLICATION_FACTOR")

    jwt_secret: SecretStr = Field(validation_alias="BERDAYA_JWT_SECRET", min_length=32)
    # Keys the pseudonyms of businesses on partners' public topics; it must never change (partners follow a business
    # by its pseudonym) and never leave the services.
    pseudonym_key: SecretStr = Field(validation_alias="BERDAYA_PSEUDONYM_KEY", min_length=32)
    jwt_issuer: str = Field("berdaya", validation_alias="BERDAYA_JWT_ISSUER")

    log_level: str = Field("INFO", validation_alias="BERDAYA_LOG_LEVEL")

    # Database: every wait and every statement is bounded.
    db_pool_size: int = Field(10, ge=1)
    db_acquire_timeout_seconds: float = Field(10.0, gt=0, validation_alias="BERDAYA_DB_ACQUIRE_TIMEOUT_SECONDS")
    db_statement_timeout_ms: int = Field(60_000, ge=100, validation_alias="BERDAYA_DB_STATEMENT_TIMEOUT_MS")
    # PostgreSQL plans a prepared statement for its parameters five times, then keeps one generic plan if that looks
    # no dearer, until the table is next analyzed (a minute or more) or asyncpg prepares it again (five minutes).
    # Made while a table is nearly empty, as in a new deployment, that plan is a sequential scan, and stays one while
    # the table grows by thousands of rows a minute. On for the registry (PlatformSettings subclasses say).
    db_custom_plans: bool = Field(False, validation_alias="BERDAYA_DB_CUSTOM_PLANS")

    # Outbox relay
    relay_batch_size: int = Field(500, ge=1, validation_alias="BERDAYA_RELAY_BATCH_SIZE")
    relay_idle_wait_seconds: float = Field(1.0, gt=0, validation_alias="BERDAYA_RELAY_IDLE_WAIT_SECONDS")
    relay_lease_seconds: float = Field(
        15.0, ge=1, validation_alias="BERDAYA_RELAY_LEASE_SECONDS",
        description="A relay that stops renewing its lease is replaced by a standby after this long",
    )

    # Consumers: bounded retries of a record's own failures before the dead-letter topic; the infrastructure's
    # failures are retried for the transient budget, then the batch is redelivered.
    consumer_max_attempts: int = Field(5, ge=1, validation_alias="BERDAYA_CONSUMER_MAX_ATTEMPTS")
    consumer_retry_backoff_seconds: float = Field(0.2, ge=0, validation_alias="BERDAYA_CONSUMER_RETRY_BACKOFF_SECONDS")
    consumer_handler_timeout_seconds: float = Field(30.0, gt=0, validation_alias="BERDAYA_CONSUMER_HANDLER_TIMEOUT_SECONDS")
    consumer_transient_budget_seconds: float = Field(
        60.0, gt=0, validation_alias="BERDAYA_CONSUMER_TRANSIENT_BUDGET_SECONDS"
    )

    # Housekeeping: inbox rows are kept while a redelivery could still come, published outbox rows a while for
    # inspection; then they are pruned.
    inbox_retention_days: float = Field(30, gt=0, validation_alias="BERDAYA_INBOX_RETENTION_DAYS")
    outbox_retention_days: float = Field(7, gt=0, validation_alias="BERDAYA_OUTBOX_RETENTION_DAYS")
    housekeeping_interval_seconds: float = Field(3600, gt=0, validation_alias="BERDAYA_HOUSEKEEPING_INTERVAL_SECONDS")

    # HTTP
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, validation_alias="BERDAYA_MAX_BODY_BYTES")
    database_url: str = "postgresql://127.0.0.1:5432/berdaya"

    @model_validator(mode="after")
    def _kafka_user_has_password(self) -> PlatformSettings:
        if (self.kafka_username is None) != (self.kafka_password is None):
            raise ValueError("KAFKA_USERNAME and KAFKA_PASSWORD go together: set both for a secured cluster, or neither")
        return self

    def kafka_access(self) -> KafkaAccess:
        password = self.kafka_password.get_secret_value() if self.kafka_password else None
        return KafkaAccess(self.kafka_bootstrap_servers, self.kafka_username, password, self.kafka_tls)

"""Settings common to every service, read from the environment; each service adds its own with a prefix."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """Shared knobs. Unprefixed names (KAFKA_BOOTSTRAP_SERVERS, BERDAYA_JWT_SECRET) are the same for every service."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    topic_namespace: str = Field(
        "", pattern=r"^[a-z0-9-]*$", validation_alias="BERDAYA_TOPIC_NAMESPACE",
        description="Prefix of every topic name, so several deployments (cities, test runs) can share a cluster",
    )
    topic_partitions: int = Field(6, ge=1, validation_alias="BERDAYA_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(1, ge=1, validation_alias="BERDAYA_TOPIC_REPLICATION_FACTOR")

    jwt_secret: SecretStr = Field(validation_alias="BERDAYA_JWT_SECRET", min_length=32)
    jwt_issuer: str = Field("berdaya", validation_alias="BERDAYA_JWT_ISSUER")

    log_level: str = Field("INFO", validation_alias="BERDAYA_LOG_LEVEL")

    # Outbox relay
    relay_batch_size: int = Field(500, ge=1, validation_alias="BERDAYA_RELAY_BATCH_SIZE")
    relay_idle_wait_seconds: float = Field(1.0, gt=0, validation_alias="BERDAYA_RELAY_IDLE_WAIT_SECONDS")

    # Consumers: bounded retries before a record goes to the dead-letter topic.
    consumer_max_attempts: int = Field(5, ge=1, validation_alias="BERDAYA_CONSUMER_MAX_ATTEMPTS")
    consumer_retry_backoff_seconds: float = Field(0.2, ge=0, validation_alias="BERDAYA_CONSUMER_RETRY_BACKOFF_SECONDS")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    database_url: str = "postgresql://127.0.0.1:5432/berdaya"
    db_pool_size: int = Field(10, ge=1)

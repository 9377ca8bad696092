"""The registry's settings: REGISTRY_* variables plus the platform's shared ones."""

from __future__ import annotations

import base64

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PlatformSettings


class RegistrySettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore", populate_by_name=True)

    http_port: int = 8001
    database_url: str = "postgresql://127.0.0.1:5432/berdaya_registry"
    # Each registration looks its NIK, phone and NIB up in a business table that an import or a busy day grows by
    # thousands of rows: a generic plan made on the nearly empty table scanned all of it for every registration (1.7
    # ms a registration at 6,000 rows, half of PostgreSQL's time at 200 registrations/s, end-to-end p99 6.1-6.2 s;
    # with custom plans 0.9-1.7 s).
    db_custom_plans: bool = Field(True, validation_alias="BERDAYA_DB_CUSTOM_PLANS")
    nik_digest_key: SecretStr = Field(description="base64 of 32 random bytes; keys the NIK digest used for duplicates")
    nik_encryption_key: SecretStr = Field(description="base64 of 32 random bytes; AES-256-GCM key for stored NIKs")
    youth_min_age: int = Field(16, ge=0, validation_alias="BERDAYA_YOUTH_MIN_AGE")
    youth_max_age: int = Field(30, ge=0, validation_alias="BERDAYA_YOUTH_MAX_AGE")
    duplicate_name_similarity: float = Field(85.0, ge=0, le=100)
    import_max_rows_per_request: int = Field(5000, ge=1, le=10_000)
    figures_interval_seconds: float = Field(
        300, gt=0, description="How often NIB coverage is published for partners (only the figures that changed)"
    )
    youth_sweep_interval_seconds: float = Field(
        3600, gt=0, description="How often published youth flags are checked against this month's (they change on the 1st)"
    )

    @field_validator("nik_digest_key", "nik_encryption_key")
    @classmethod
    def _base64_32_bytes(cls, value: SecretStr) -> SecretStr:
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except ValueError as exc:
            raise ValueError("must be base64 (e.g. `openssl rand -base64 32`)") from exc
        if len(raw) != 32:
            raise ValueError("must decode to exactly 32 bytes (e.g. `openssl rand -base64 32`)")
        return value

    def key_bytes(self, key: SecretStr) -> bytes:
        return base64.b64decode(key.get_secret_value())

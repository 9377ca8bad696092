"""The notifier's settings: NOTIFIER_* variables plus the platform's shared ones."""

from pydantic_settings import SettingsConfigDict

from shared.settings import PlatformSettings


class NotifierSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", populate_by_name=True)

    http_port: int = 8004
    database_url: str = "postgresql://127.0.0.1:5432/berdaya_notifier"

"""Funding's settings: FUNDING_* variables plus the platform's shared ones."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import PlatformSettings


class FundingSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="FUNDING_", extra="ignore", populate_by_name=True)

    http_port: int = 8002
    database_url: str = "postgresql://127.0.0.1:5432/berdaya_funding"
    offer_days: int = Field(14, ge=1, description="Days a business has to answer an offer before it expires")
    sweep_interval_seconds: float = Field(60, gt=0, description="How often expiry and pledge windows are checked")

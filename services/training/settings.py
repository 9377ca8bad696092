"""Training's settings: TRAINING_* variables plus the platform's shared ones."""

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.training.domain.pathway import DEFAULT_STALL_DAYS, stall_limits
from shared.settings import PlatformSettings


class TrainingSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINING_", extra="ignore", populate_by_name=True)

    http_port: int = 8003
    database_url: str = "postgresql://127.0.0.1:5432/berdaya_training"
    waitlist_per_seat: float = Field(
        1.0, ge=0, le=10, description="A cohort's waitlist holds at most this many businesses per seat (rounded up)"
    )
    stall_days: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_STALL_DAYS),
        description="Days each halal pathway step may take after the one before it before the pathway is stalled, "
        'as JSON, e.g. TRAINING_STALL_DAYS=\'{"fatwa": 30}\' (unnamed steps keep their defaults)',
    )
    sweep_interval_seconds: float = Field(300, gt=0, description="How often stalled pathways are looked for")

    @field_validator("stall_days")
    @classmethod
    def _every_step(cls, value: dict[str, int]) -> dict[str, int]:
        return stall_limits(value)

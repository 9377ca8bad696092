"""Events of training, published by the training service.

What changes what another service knows about a business (completions above all) is an event of the business's
participation, on `training.participant.v1` keyed by business id, so one business's training events stay in order.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import EventPayload

TOPIC_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
# The city adds topics of its own; these are the ones the programme started with.
STANDARD_TOPICS = (
    "entrepreneurship",
    "packaging",
    "product_quality",
    "halal_certification",
    "digital_marketing",
    "financial_bookkeeping",
)
TrainingTopic = Annotated[
    str, Field(pattern=TOPIC_PATTERN, description=f"A training topic, e.g. {', '.join(STANDARD_TOPICS)}")
]


class Assessment(BaseModel):
    """What a trainer assesses at completion, 0 to 100 each; funding's readiness weighs it, not only assets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    management: int = Field(ge=0, le=100)
    leadership: int = Field(ge=0, le=100)
    business_prospects: int = Field(ge=0, le=100)


class ParticipantEvent(EventPayload):
    """An event of one business's participation in training; key = business id."""

    aggregate_type: ClassVar[str] = "participant"

    business_id: uuid.UUID
    participant_version: int = Field(ge=1, description="Increases by one with every training event of the business.")

    def aggregate_key(self) -> str:
        return str(self.business_id)

    def aggregate_version(self) -> int:
        return self.participant_version


@CATALOG.register
class TrainingCompleted(ParticipantEvent):
    event_type: ClassVar[str] = "TrainingCompleted"
    event_version: ClassVar[int] = 2

    cohort_id: uuid.UUID
    programme_id: uuid.UUID | None = None
    topic: TrainingTopic
    completed_on: date
    assessment: Assessment | None = None


@CATALOG.upcaster("TrainingCompleted", from_version=1)
def _keyed_by_business(v1: dict) -> dict:
    """v1 was an event of the cohort and named the topic `programme`; v2 belongs to the business's participation."""
    return {
        "business_id": v1["business_id"],
        "participant_version": 1,
        "cohort_id": v1["cohort_id"],
        "topic": v1["programme"],
        "completed_on": v1["completed_on"],
    }

"""Events of a training cohort, to be published by the training service on `training.cohort.v1` (key = cohort id).

Only what other services already consume is defined so far: funding's earmarks and readiness use completed
training programmes.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import ClassVar, Literal

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import EventPayload

TrainingProgramme = Literal["packaging", "product_quality", "halal_certification", "digital_marketing"]


class CohortEvent(EventPayload):
    aggregate_type: ClassVar[str] = "cohort"

    cohort_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.cohort_id)


@CATALOG.register
class TrainingCompleted(CohortEvent):
    event_type: ClassVar[str] = "TrainingCompleted"
    event_version: ClassVar[int] = 1

    business_id: uuid.UUID
    programme: TrainingProgramme
    completed_on: date

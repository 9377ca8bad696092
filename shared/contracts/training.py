"""Events of training, published by the training service.

Three aggregates, each on its own topic: a programme (`training.programme.v1`, key = programme id), a cohort
(`training.cohort.v1`, key = cohort id), and a business's participation (`training.participant.v1`, key =
business id). Everything that changes what another service knows about a business (an invitation, an enrolment,
attendance, a completion, a step of its halal pathway, a mentoring visit) is an event of its participation, so one
business's training events stay in order.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import EventPayload

TOPIC_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
# The city adds topics of its own; these are the ones the programme started with.
STANDARD_TOPICS = (
    "entrepreneurship",
    "nib_assistance",
    "packaging",
    "product_quality",
    "halal_certification",
    "digital_marketing",
    "financial_bookkeeping",
)
TrainingTopic = Annotated[
    str, Field(pattern=TOPIC_PATTERN, description=f"A training topic, e.g. {', '.join(STANDARD_TOPICS)}")
]
# Why a business was invited: the need a programme serves (see the training service's needs rules).
Need = Literal["no_nib", "halal_uncertified", "youth_digital", "funded_bookkeeping", "officer"]
HalalStep = Literal[
    "nib", "sihalal_account", "companion_verified", "submitted", "document_check", "fatwa", "certificate"
]
Attendance = Literal["present", "absent", "excused"]


class Assessment(BaseModel):
    """What a trainer assesses at completion, 0 to 100 each; funding's readiness weighs it, not only assets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    management: int = Field(ge=0, le=100)
    leadership: int = Field(ge=0, le=100)
    business_prospects: int = Field(ge=0, le=100)


# ---------------------------------------------------------------------------------------------------------------
# Programmes and cohorts
# ---------------------------------------------------------------------------------------------------------------


class ProgrammeEvent(EventPayload):
    aggregate_type: ClassVar[str] = "programme"

    programme_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.programme_id)


@CATALOG.register
class ProgrammeDefined(ProgrammeEvent):
    event_type: ClassVar[str] = "ProgrammeDefined"
    event_version: ClassVar[int] = 1

    topic: TrainingTopic
    title: str
    needs: tuple[Need, ...]
    requires_nib: bool
    required_attendance_percent: int = Field(ge=1, le=100)
    sessions: int = Field(ge=1)
    hours: int = Field(ge=1)
    gives_assessment: bool


class CohortEvent(EventPayload):
    aggregate_type: ClassVar[str] = "cohort"

    cohort_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.cohort_id)


@CATALOG.register
class CohortOpened(CohortEvent):
    """A cohort takes trainees: its seats are offered by need, and officers may enrol by hand."""

    event_type: ClassVar[str] = "CohortOpened"
    event_version: ClassVar[int] = 1

    programme_id: uuid.UUID
    topic: TrainingTopic
    title: str
    capacity: int = Field(ge=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    sessions: int = Field(ge=1)
    venue: str
    kecamatan_code: str | None = Field(default=None, description="Where the venue is; None when online")


@CATALOG.register
class CohortClosed(CohortEvent):
    event_type: ClassVar[str] = "CohortClosed"
    event_version: ClassVar[int] = 1

    programme_id: uuid.UUID
    outcome: Literal["completed", "cancelled"]
    enrolled: int = Field(ge=0)
    completed: int = Field(ge=0)
    closed_at: AwareDatetime


# ---------------------------------------------------------------------------------------------------------------
# A business's participation
# ---------------------------------------------------------------------------------------------------------------


class ParticipantEvent(EventPayload):
    """An event of one business's participation in training; key = business id."""

    aggregate_type: ClassVar[str] = "participant"

    business_id: uuid.UUID
    participant_version: int = Field(ge=1, description="Increases by one with every training event of the business.")

    def aggregate_key(self) -> str:
        return str(self.business_id)

    def aggregate_version(self) -> int:
        return self.participant_version


class CohortPlace(ParticipantEvent):
    """Which cohort, for an owner to be told when and where."""

    cohort_id: uuid.UUID
    programme_id: uuid.UUID
    topic: TrainingTopic
    title: str
    starts_at: AwareDatetime
    venue: str


@CATALOG.register
class TraineeInvited(CohortPlace):
    event_type: ClassVar[str] = "TraineeInvited"
    event_version: ClassVar[int] = 1

    need: Need


@CATALOG.register
class TraineeEnrolled(CohortPlace):
    event_type: ClassVar[str] = "TraineeEnrolled"
    event_version: ClassVar[int] = 1

    from_waitlist: bool = False


@CATALOG.register
class TraineeWaitlisted(CohortPlace):
    event_type: ClassVar[str] = "TraineeWaitlisted"
    event_version: ClassVar[int] = 1

    position: int = Field(ge=1, description="1 is the next to get a seat")


@CATALOG.register
class TraineeWithdrew(ParticipantEvent):
    event_type: ClassVar[str] = "TraineeWithdrew"
    event_version: ClassVar[int] = 1

    cohort_id: uuid.UUID
    reason: Literal["withdrew", "no_show", "cohort_cancelled", "officer"]


@CATALOG.register
class AttendanceRecorded(ParticipantEvent):
    event_type: ClassVar[str] = "AttendanceRecorded"
    event_version: ClassVar[int] = 1

    cohort_id: uuid.UUID
    session: int = Field(ge=1)
    attendance: Attendance


@CATALOG.register
class TrainingCompleted(ParticipantEvent):
    event_type: ClassVar[str] = "TrainingCompleted"
    event_version: ClassVar[int] = 2

    cohort_id: uuid.UUID
    programme_id: uuid.UUID | None = None
    topic: TrainingTopic
    completed_on: date
    assessment: Assessment | None = None
    title: str | None = None
    attendance_percent: int | None = Field(default=None, ge=0, le=100)


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


@CATALOG.register
class PathwayStepRecorded(ParticipantEvent):
    """A step of a food or drink business's free halal self-declaration (SEHATI): NIB, SIHALAL account, the halal
    process companion's verification, submission, BPJPH's document check, the fatwa, the certificate."""

    event_type: ClassVar[str] = "PathwayStepRecorded"
    event_version: ClassVar[int] = 1

    step: HalalStep
    done_on: date
    kecamatan_code: str


@CATALOG.register
class PathwayStalled(ParticipantEvent):
    event_type: ClassVar[str] = "PathwayStalled"
    event_version: ClassVar[int] = 1

    waiting_for: HalalStep
    since: date
    days: int = Field(ge=1)
    kecamatan_code: str


@CATALOG.register
class PathwayNotEligible(ParticipantEvent):
    """The business can't self-declare (and, for pork, can't be certified at all): it is told so, not pushed on."""

    event_type: ClassVar[str] = "PathwayNotEligible"
    event_version: ClassVar[int] = 1

    reason: Literal["pork", "slaughtered_meat_uncertified_abattoir", "not_micro_or_small", "other"]
    regular_route_possible: bool = Field(description="Certification through the paid regular route is still open")
    kecamatan_code: str


@CATALOG.register
class MentorAssigned(ParticipantEvent):
    event_type: ClassVar[str] = "MentorAssigned"
    event_version: ClassVar[int] = 1

    mentor_id: uuid.UUID
    cohort_id: uuid.UUID | None = None


@CATALOG.register
class MentoringVisitRecorded(ParticipantEvent):
    event_type: ClassVar[str] = "MentoringVisitRecorded"
    event_version: ClassVar[int] = 1

    mentor_id: uuid.UUID
    visited_on: date

"""Attendance, completion and the trainer's assessment.

Completion (COMPLETION_RULE says it for people): a trainee completes when their attendance reaches the
programme's required percentage, they attended at least half of all sessions in person, and, if the programme
gives an assessment, the trainer recorded it. Attendance is `present / (sessions - excused)`, rounded down: an
excused absence (with its reason, kept in training's database only) is left out of the count instead of counting
against the trainee, and a session without a record counts as an absence. A trainee absent without excuse from the
first session is a no-show: withdrawn, and the seat goes to the first on the waitlist.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.contracts.training import Assessment

Mark = Literal["present", "absent", "excused"]
COMPLETION_RULE = (
    "attendance = present / (sessions - excused), rounded down, at least the programme's required percentage; "
    "at least half of all sessions attended in person; the assessment recorded if the programme gives one"
)
MAX_RECORDS = 500


class AttendanceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    business_id: uuid.UUID
    attendance: Mark
    reason: str | None = Field(None, max_length=500, validate_default=True,
                               description="Why an excused absence was excused (kept in training's database only)")

    @field_validator("reason")
    @classmethod
    def _excuse_has_reason(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("attendance") == "excused" and not (value and len(value) >= 3):
            raise ValueError("an excused absence needs its reason (at least 3 characters)")
        return value


class AttendanceForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[AttendanceRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class AssessmentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    business_id: uuid.UUID
    management: int = Field(ge=0, le=100)
    leadership: int = Field(ge=0, le=100)
    business_prospects: int = Field(ge=0, le=100)

    def assessment(self) -> Assessment:
        return Assessment(management=self.management, leadership=self.leadership,
                          business_prospects=self.business_prospects)  # fmt: skip


class AssessmentForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[AssessmentRecord] = Field(min_length=1, max_length=MAX_RECORDS)


def attendance_percent(sessions: int, marks: Mapping[int, str]) -> int:
    """present / (sessions - excused), rounded down; 0 when every session was excused."""
    present = sum(m == "present" for m in marks.values())
    excused = sum(m == "excused" for m in marks.values())
    counted = sessions - excused
    return (100 * present) // counted if counted > 0 else 0


@dataclass(frozen=True, slots=True)
class Outcome:
    completed: bool
    attendance_percent: int
    missing_assessment: bool  # attendance is enough, the assessment is what's missing


def outcome(sessions: int, required_percent: int, gives_assessment: bool, marks: Mapping[int, str],
            assessment: Assessment | None) -> Outcome:  # fmt: skip
    percent = attendance_percent(sessions, marks)
    present = sum(m == "present" for m in marks.values())
    attended = percent >= required_percent and 2 * present >= sessions
    missing = attended and gives_assessment and assessment is None
    return Outcome(attended and not missing, percent, missing)


def is_no_show(session: int, mark: str) -> bool:
    """Absent without excuse from the first session."""
    return session == 1 and mark == "absent"

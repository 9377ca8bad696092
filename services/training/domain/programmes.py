"""Programmes: what a trainer defines once (topic, the needs it serves, prerequisites, attendance, assessment), and
every cohort of it follows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.training import TrainingTopic

# The needs a programme can serve; "officer" (a hand enrolment) is a reason for an invitation, not a need.
ServedNeed = Literal["no_nib", "halal_uncertified", "youth_digital", "funded_bookkeeping"]
DEFAULT_ATTENDANCE_PERCENT = 80


class ProgrammeForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    topic: TrainingTopic = Field(examples=["halal_certification"])
    title: str = Field(min_length=3, max_length=200, examples=["Pendampingan Sertifikasi Halal Self-Declare (SEHATI)"])
    needs: list[ServedNeed] = Field(
        default=[], max_length=4, examples=[["halal_uncertified"]],
        description="Businesses with any of these needs are invited to its cohorts, in this order of preference",
    )
    requires_nib: bool = Field(False, description="Only businesses with an NIB may take part (e.g. halal self-declare)")
    required_attendance_percent: int = Field(DEFAULT_ATTENDANCE_PERCENT, ge=1, le=100)
    sessions: int = Field(ge=1, le=100, examples=[4])
    hours: int = Field(ge=1, le=1000, examples=[16])
    gives_assessment: bool = Field(
        True, description="The trainer scores management, leadership and business prospects (0-100) at completion"
    )

    @field_validator("needs")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("name each need once")
        return value

    @field_validator("hours")
    @classmethod
    def _at_least_an_hour_a_session(cls, value: int, info) -> int:  # noqa: ANN001
        sessions = info.data.get("sessions")
        if sessions is not None and value < sessions:
            raise ValueError(f"{sessions} sessions take at least {sessions} hours")
        return value


@dataclass(frozen=True, slots=True)
class Programme:
    id: uuid.UUID
    topic: str
    title: str
    needs: tuple[str, ...]
    requires_nib: bool
    required_attendance_percent: int
    sessions: int
    hours: int
    gives_assessment: bool
    defined_at: datetime
    defined_by: str

    def serves(self, need: str) -> bool:
        return need in self.needs


def new_programme(form: ProgrammeForm, *, programme_id: uuid.UUID, now: datetime, by: str) -> Programme:
    return Programme(
        id=programme_id, topic=form.topic, title=form.title, needs=tuple(form.needs), requires_nib=form.requires_nib,
        required_attendance_percent=form.required_attendance_percent, sessions=form.sessions, hours=form.hours,
        gives_assessment=form.gives_assessment, defined_at=now, defined_by=by,
    )  # fmt: skip

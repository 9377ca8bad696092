"""The mentor pool and "continuous mentoring" after training.

Assignment (ASSIGNMENT_RULE says it for people): when a business completes a training and has no mentor yet, it
gets one from the active mentors with room (fewer businesses than their maximum load). Preferred, in order: a
mentor whose expertise covers the business's sector (a KBLI prefix of theirs starts its KBLI code), then one who
works in its kecamatan, then the cohort's own mentor, then the lightest load relative to the maximum, then the
fewest businesses, then mentor id. Sector comes first because advice is worth most from someone who knows the
trade; load balancing decides among equals. With nobody free, the business waits unassigned (and shows as such in
the mentoring report).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from fractions import Fraction
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.training.domain.cohorts import EARLIEST
from services.training.domain.view import BusinessView

ASSIGNMENT_RULE = (
    "active mentors with room only; sector (KBLI prefix) match first, then kecamatan, then the cohort's own mentor, "
    "then the lightest relative load, then the fewest businesses, then mentor id"
)


class MentorForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=150, examples=["Dr. Yohanes Bria (Undana)"])
    organisation: str | None = Field(None, max_length=150, examples=["Universitas Nusa Cendana"])
    kbli_prefixes: list[Annotated[str, Field(pattern=r"^[0-9]{1,5}$")]] = Field(
        default=[], max_length=50, examples=[["10", "56"]], description="Sectors of expertise: KBLI codes or prefixes"
    )
    kecamatan: list[Annotated[str, Field(max_length=100)]] = Field(
        default=[], max_length=6, examples=[["Oebobo", "Kota Raja"]], description="Where they work: names or codes"
    )
    max_load: int = Field(10, ge=1, le=200, description="Businesses mentored at once")

    @field_validator("kbli_prefixes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class VisitForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    visited_on: date = Field(examples=["2026-05-12"])
    notes: str | None = Field(None, max_length=2000, description="What was discussed (kept in training's database)")

    @field_validator("visited_on")
    @classmethod
    def _plausible(cls, value: date) -> date:
        if value < EARLIEST:
            raise ValueError(f"a visit is dated {EARLIEST.isoformat()} or later")
        return value


@dataclass(frozen=True, slots=True)
class Mentor:
    id: uuid.UUID
    name: str
    organisation: str | None
    kbli_prefixes: tuple[str, ...]
    kecamatan_codes: tuple[str, ...]
    max_load: int
    active: bool
    load: int = 0  # businesses mentored now

    @property
    def has_room(self) -> bool:
        return self.active and self.load < self.max_load

    def covers_sector(self, kbli_code: str) -> bool:
        return any(kbli_code.startswith(p) for p in self.kbli_prefixes)

    def works_in(self, kecamatan_code: str) -> bool:
        return kecamatan_code in self.kecamatan_codes


@dataclass(frozen=True, slots=True)
class Assignment:
    business_id: uuid.UUID
    mentor_id: uuid.UUID
    cohort_id: uuid.UUID | None
    assigned_at: datetime
    ended_at: datetime | None = None


def preference(mentor: Mentor, business: BusinessView, cohort_mentor: uuid.UUID | None) -> tuple:
    return (
        not mentor.covers_sector(business.kbli_code),
        not mentor.works_in(business.kecamatan_code),
        mentor.id != cohort_mentor,
        Fraction(mentor.load, mentor.max_load),
        mentor.load,
        str(mentor.id),
    )


def choose_mentor(mentors: Sequence[Mentor], business: BusinessView, cohort_mentor: uuid.UUID | None = None) -> Mentor | None:
    free = [m for m in mentors if m.has_room]
    return min(free, key=lambda m: preference(m, business, cohort_mentor)) if free else None


def assign_all(mentors: Sequence[Mentor], businesses: Sequence[BusinessView],
               cohort_mentor: uuid.UUID | None = None) -> tuple[dict[uuid.UUID, uuid.UUID], list[Mentor]]:  # fmt: skip
    """Mentors for the businesses in business id order, each assignment counted in the load before the next, so a
    cohort's graduates spread over the pool. Returns {business: mentor} and the mentors with their new loads."""
    pool = {m.id: m for m in mentors}
    chosen: dict[uuid.UUID, uuid.UUID] = {}
    for business in sorted(businesses, key=lambda b: str(b.business_id)):
        mentor = choose_mentor(list(pool.values()), business, cohort_mentor)
        if mentor is None:
            continue
        chosen[business.business_id] = mentor.id
        pool[mentor.id] = replace(mentor, load=mentor.load + 1)
    return chosen, list(pool.values())

"""Training's reports: cohort fill, attendance, completion and the assessment's spread, per programme and per
kecamatan, and halal coverage; counts of businesses under 5 are suppressed (the same rule as funding's reports:
0 < count < 5), and so is any rate computed from a suppressed count, which would give it away."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SUPPRESS_BELOW = 5
DIMENSIONS = ("management", "leadership", "business_prospects")
BANDS: tuple[tuple[int, int, str], ...] = ((0, 49, "0-49"), (50, 69, "50-69"), (70, 84, "70-84"), (85, 100, "85-100"))


def suppressed(count: int) -> bool:
    """Counts under 5 (and not zero) are not shown: a business could be recognised in them."""
    return 0 < count < SUPPRESS_BELOW


def shown(count: int) -> int | None:
    return None if suppressed(count) else count


def percent(part: int, whole: int, *, counts: tuple[int, ...] = ()) -> int | None:
    """part / whole in whole percent (rounded down); None when there is no whole or a count behind it is suppressed."""
    if whole <= 0 or any(suppressed(c) for c in counts):
        return None
    return (100 * part) // whole


def band(score: int) -> str:
    return next(name for lo, hi, name in BANDS if lo <= score <= hi)


@dataclass(frozen=True, slots=True)
class Figures:
    """What one group (a programme, a kecamatan) adds up to, before suppression."""

    group: str
    cohorts: int = 0
    capacity: int = 0
    enrolled: int = 0  # holding a seat now or when the cohort ended (enrolled, completed, not completed)
    waitlisted: int = 0
    present: int = 0  # attendance marks
    absent: int = 0
    excused: int = 0
    completed: int = 0
    not_completed: int = 0
    assessments: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # dimension -> band -> count


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    cohorts: int
    capacity: int
    enrolled: int | None
    fill_percent: int | None
    waitlisted: int | None
    attendance_percent: int | None  # present / (present + absent); excused left out
    completed: int | None
    completion_percent: int | None  # completed / those whose cohort ended while enrolled
    assessment_bands: dict[str, dict[str, int | None]]


def row(f: Figures) -> Row:
    finished = f.completed + f.not_completed
    return Row(
        group=f.group, cohorts=f.cohorts, capacity=f.capacity, enrolled=shown(f.enrolled),
        fill_percent=percent(f.enrolled, f.capacity, counts=(f.enrolled,)) if f.capacity else None,
        waitlisted=shown(f.waitlisted),
        attendance_percent=percent(f.present, f.present + f.absent, counts=(f.enrolled,)),
        completed=shown(f.completed),
        completion_percent=percent(f.completed, finished, counts=(f.completed, finished)),
        assessment_bands={d: {name: shown(f.assessments.get(d, {}).get(name, 0)) for _, _, name in BANDS}
                          for d in DIMENSIONS},
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CoverageFigures:
    kecamatan: str
    food_businesses: int  # active food or drink businesses
    self_declare: int  # of which micro or small and not recorded as unable to self-declare
    certified: int
    in_pathway: int  # started, not certified, not ineligible
    stalled: int
    not_eligible: int


@dataclass(frozen=True, slots=True)
class CoverageRow:
    kecamatan: str
    food_businesses: int | None
    self_declare: int | None
    certified: int | None
    in_pathway: int | None
    stalled: int | None
    not_eligible: int | None
    coverage_percent: int | None  # certified / food businesses


def coverage_row(f: CoverageFigures) -> CoverageRow:
    return CoverageRow(
        kecamatan=f.kecamatan, food_businesses=shown(f.food_businesses), self_declare=shown(f.self_declare),
        certified=shown(f.certified), in_pathway=shown(f.in_pathway), stalled=shown(f.stalled),
        not_eligible=shown(f.not_eligible),
        coverage_percent=percent(f.certified, f.food_businesses, counts=(f.certified, f.food_businesses)),
    )  # fmt: skip

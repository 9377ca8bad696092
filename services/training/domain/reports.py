"""Training's reports: cohort fill, attendance, completion and the assessment's spread, per programme and per
kecamatan, and halal coverage; counts of businesses under 5 are suppressed (the same rule as funding's reports:
0 < count < 5), and so is any rate computed from a suppressed count, which would give it away. Where counts add up to
a figure shown (the bands of a row to its trainees, a column of kecamatan to the city's total or to the other
breakdown's, a row's trainees to those enrolled), one hidden alone would come back by subtraction: the next smallest
is hidden with it."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

SUPPRESS_BELOW = 5
DIMENSIONS = ("management", "leadership", "business_prospects")
BANDS: tuple[tuple[int, int, str], ...] = ((0, 49, "0-49"), (50, 69, "50-69"), (70, 84, "70-84"), (85, 100, "85-100"))


def suppressed(count: int) -> bool:
    """Counts under 5 (and not zero) are not shown: a business could be recognised in them."""
    return 0 < count < SUPPRESS_BELOW


def shown(count: int) -> int | None:
    return None if suppressed(count) else count


def hidden_cells(cells: Mapping[K, int], hidden_already: Set[K] = frozenset()) -> set[K]:
    """Of counts whose sum is shown or can be worked out: those under 5 or hidden already, and when only one of them
    isn't zero, also the smallest other that isn't zero, so the total less the others no longer gives it."""
    hidden = {k for k, c in cells.items() if suppressed(c) or k in hidden_already}
    if sum(cells[k] > 0 for k in hidden) == 1:
        others = sorted(((c, i) for i, (k, c) in enumerate(cells.items()) if k not in hidden and c > 0))
        if others:
            hidden.add(list(cells)[others[0][1]])
    return hidden


def hidden_in_lines(cells: Mapping[K, int], lines: Iterable[Sequence[K]], hidden: Set[K]) -> set[K]:
    """`hidden` grown until no line (cells adding up to a figure shown) has one hidden cell alone: a cell hidden for
    one line's sake would otherwise come back through another it is in, and take the first back with it."""
    every = list(lines)
    grown = set(hidden)
    while True:
        before = len(grown)
        for line in every:
            grown |= hidden_cells({k: cells[k] for k in line}, grown)
        if len(grown) == before:
            return grown


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


_ROW_COUNTS = ("enrolled", "waitlisted", "completed")


def rows(figures: Sequence[Figures]) -> list[Row]:
    """The rows of one breakdown: its columns, a band's too, add up to the same totals as the other breakdown's."""
    small_rest = {i for i, f in enumerate(figures) if _small_rest(f)}
    also = {name: hidden_cells({i: getattr(f, name) for i, f in enumerate(figures)},
                               small_rest if name == "completed" else frozenset())
            for name in _ROW_COUNTS}  # fmt: skip
    bands = {d: _hidden_bands(figures, d, also["completed"]) for d in DIMENSIONS}
    return [row(f, frozenset(name for name in _ROW_COUNTS if i in also[name]),
                {d: {name for j, name in bands[d] if j == i} for d in DIMENSIONS})
            for i, f in enumerate(figures)]  # fmt: skip


def _small_rest(f: Figures) -> bool:
    """Those enrolled less those who completed are businesses counted too: a small count hides the completed."""
    return f.completed > 0 and suppressed(f.enrolled - f.completed)


def _hidden_bands(figures: Sequence[Figures], dimension: str, completed_hidden: Set[int]) -> set[tuple[int, str]]:
    """A dimension's band cells to hide: a row's bands add up to its completed, and each band's column to the other
    breakdown's; a row whose completed is hidden hides them all, or they would add up to it."""
    names = [name for _, _, name in BANDS]
    cells = {(i, name): f.assessments.get(dimension, {}).get(name, 0) for i, f in enumerate(figures) for name in names}
    lines = [[(i, name) for name in names] for i in range(len(figures))]
    lines += [[(i, name) for i in range(len(figures))] for name in names]
    return hidden_in_lines(cells, lines, {(i, name) for i, name in cells if i in completed_hidden})


def row(f: Figures, also_hidden: frozenset[str] = frozenset(),
        bands_hidden: Mapping[str, Set[str]] | None = None) -> Row:  # fmt: skip
    """`also_hidden`: counts shown on their own but hidden so another one hidden can't be worked out; `bands_hidden`:
    so too the bands of each dimension."""
    finished = f.completed + f.not_completed

    def count(name: str) -> int | None:
        hidden = name in also_hidden or (name == "completed" and _small_rest(f))
        return None if hidden else shown(getattr(f, name))

    def bands(dimension: str) -> dict[str, int | None]:
        cells = {name: f.assessments.get(dimension, {}).get(name, 0) for _, _, name in BANDS}
        # The bands add up to the completed: with it hidden, they would give it back.
        hidden = set(cells) if completed is None else hidden_cells(cells, (bands_hidden or {}).get(dimension, set()))
        return {name: None if name in hidden else n for name, n in cells.items()}

    enrolled, completed = count("enrolled"), count("completed")
    return Row(
        group=f.group, cohorts=f.cohorts, capacity=f.capacity, enrolled=enrolled,
        fill_percent=percent(f.enrolled, f.capacity) if f.capacity and enrolled is not None else None,
        waitlisted=count("waitlisted"),
        attendance_percent=percent(f.present, f.present + f.absent) if enrolled is not None else None,
        completed=completed,
        # The rate and the completed give back those who did not complete: hidden with them when that count is.
        completion_percent=(percent(f.completed, finished, counts=(finished, f.not_completed))
                            if completed is not None else None),
        assessment_bands={d: bands(d) for d in DIMENSIONS},
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


_COVERAGE_COUNTS = ("food_businesses", "self_declare", "certified", "in_pathway", "stalled", "not_eligible")


def coverage_rows(figures: Sequence[CoverageFigures], total_name: str) -> list[CoverageRow]:
    """A row per kecamatan, then their total, which would give back a kecamatan's count hidden alone."""
    total = CoverageFigures(total_name, *(sum(getattr(f, name) for f in figures) for name in _COVERAGE_COUNTS))
    also = {name: hidden_cells({i: getattr(f, name) for i, f in enumerate(figures)}) for name in _COVERAGE_COUNTS}
    return [coverage_row(f, frozenset(name for name in _COVERAGE_COUNTS if i in also[name]))
            for i, f in enumerate(figures)] + [coverage_row(total)]  # fmt: skip


def coverage_row(f: CoverageFigures, also_hidden: frozenset[str] = frozenset()) -> CoverageRow:
    counts = {name: None if name in also_hidden else shown(getattr(f, name)) for name in _COVERAGE_COUNTS}
    return CoverageRow(
        kecamatan=f.kecamatan, **counts,
        coverage_percent=(percent(f.certified, f.food_businesses)
                          if counts["certified"] is not None and counts["food_businesses"] is not None else None),
    )  # fmt: skip


def follow_up_row(with_mentor: int, followed_up: int, completed_without_mentor: int) -> dict[str, int | None]:
    """A kecamatan's row of the mentoring report: those followed up and those not add up to those with a mentor, so
    one of the three hidden alone would come back by subtraction."""
    cells = {"with_mentor": with_mentor, "followed_up": followed_up, "not_followed_up": with_mentor - followed_up}
    hidden = hidden_cells(cells)
    return {**{name: None if name in hidden else n for name, n in cells.items()},
            "completed_without_mentor": shown(completed_without_mentor)}  # fmt: skip

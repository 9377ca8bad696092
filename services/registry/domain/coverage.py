"""NIB coverage: of the businesses registered and active, how many hold an NIB, per kecamatan and for the city."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.reference.wilayah import Kecamatan


@dataclass(frozen=True, slots=True)
class KecamatanCoverage:
    kecamatan: Kecamatan
    registered: int  # active businesses
    with_nib: int

    @property
    def coverage(self) -> float:
        return coverage_ratio(self.with_nib, self.registered)


@dataclass(frozen=True, slots=True)
class NibCoverage:
    by_kecamatan: list[KecamatanCoverage]

    @classmethod
    def of(cls, kecamatan: Sequence[Kecamatan], counts: Mapping[str, tuple[int, int]]) -> NibCoverage:
        """Every kecamatan's (those with no business too) from (registered, with NIB) by kecamatan code."""
        return cls([KecamatanCoverage(k, *counts.get(k.code, (0, 0))) for k in kecamatan])

    @property
    def registered(self) -> int:
        return sum(k.registered for k in self.by_kecamatan)

    @property
    def with_nib(self) -> int:
        return sum(k.with_nib for k in self.by_kecamatan)

    @property
    def coverage(self) -> float:
        return coverage_ratio(self.with_nib, self.registered)


def coverage_ratio(with_nib: int, registered: int) -> float:
    """Businesses with an NIB / businesses registered, 0..1, to four places (0.7106 is 71.06%)."""
    return round(with_nib / registered, 4) if registered else 0.0

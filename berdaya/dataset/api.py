"""The ways to get the list: as dicts (generate) or as a CSV file (write_csv), with the arguments checked first."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from berdaya.dataset.identity import MAX_ROWS
from berdaya.dataset.rows import COLUMNS, stream

DEFAULT_NIB_SHARE = 12_000 / 17_000
"""Of 17,000 UMKM in Kota Kupang, 12,000 already hold an NIB (Suarantt.id, 25 February 2025)."""


def generate(count: int, seed: int = 2025, nib_share: float = DEFAULT_NIB_SHARE) -> Iterator[dict[str, str]]:
    """`count` rows of the list for `seed`, each a dict of COLUMNS to text. The same seed gives the same rows, and
    a shorter list is the start of a longer one."""
    return (dict(zip(COLUMNS, values)) for values in _rows(count, seed, nib_share))


def write_csv(path: str | Path, count: int, seed: int = 2025, progress: Callable[[int], None] | None = None) -> int:
    """Write the list as a UTF-8 CSV with a COLUMNS header; call progress(rows written) every 10,000 rows and once
    at the end. Returns the number of rows written."""
    rows = _rows(count, seed, DEFAULT_NIB_SHARE)
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        chunk: list[tuple[str, ...]] = []
        for values in rows:
            chunk.append(values)
            if len(chunk) == 10_000:
                writer.writerows(chunk)
                written += len(chunk)
                chunk.clear()
                if progress is not None:
                    progress(written)
        if chunk:
            writer.writerows(chunk)
            written += len(chunk)
            if progress is not None:
                progress(written)
    return written


def _rows(count: int, seed: int, nib_share: float) -> Iterator[tuple[str, ...]]:
    """The rows as tuples in COLUMNS order; arguments are checked now, not at the first row."""
    if not 0 <= count <= MAX_ROWS:
        raise ValueError(f"count must be between 0 and {MAX_ROWS:,} (the rows whose NIKs can be kept distinct)")
    if not 0.0 <= nib_share <= 1.0:
        raise ValueError("nib_share must be between 0 and 1")
    return stream(count, seed, nib_share)

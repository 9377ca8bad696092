"""Weighted lookup tables: the dataset's one way of making a weighted random choice, with one draw and one index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

Rand = Callable[[], float]
"""random.Random.random of the list's one generator: every draw of a list comes from it, in a fixed order."""


def lookup_table(weighted: Sequence[tuple[T, float]], size: int = 1_000) -> tuple[T, ...]:
    """A lookup table in which each item fills a share of the slots equal to its share of the weight, so that
    table[int(random() * len(table))] is a weighted choice costing one random() and one index."""
    total = sum(w for _, w in weighted)
    slots: list[T] = []
    running = 0.0
    for item, weight in weighted:
        running += weight
        slots.extend([item] * (round(running / total * size) - len(slots)))
    return tuple(slots)

"""KBLI (Klasifikasi Baku Lapangan Usaha Indonesia) codes: five digits, always stored with their edition.

KBLI 2025 (Peraturan BPS 7/2025) replaces KBLI 2020; both are accepted while OSS moves over. Without the
full code list at hand, a code is checked for shape and for a valid two-digit division of its edition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EDITIONS = (2020, 2025)

_RANGES_2020 = [(1, 3), (5, 9), (10, 33), (35, 35), (36, 39), (41, 43), (45, 47), (49, 53), (55, 56), (58, 63),
                (64, 66), (68, 68), (69, 75), (77, 82), (84, 84), (85, 85), (86, 88), (90, 93), (94, 96), (97, 98),
                (99, 99)]
DIVISIONS: dict[int, frozenset[str]] = {
    2020: frozenset(f"{d:02d}" for lo, hi in _RANGES_2020 for d in range(lo, hi + 1)),
    # KBLI 2025 follows ISIC Rev.5: the same divisions except 45, whose vehicle trade moves to 46/47 and
    # vehicle repair to 95.
    2025: frozenset(f"{d:02d}" for lo, hi in _RANGES_2020 for d in range(lo, hi + 1)) - {"45"},
}

# KBLI groups in which micro and small businesses' products must be halal-certified (food and drink).
FOOD_AND_DRINK_PREFIXES = ("10", "11", "561", "562", "563")


@dataclass(frozen=True, slots=True)
class KbliProblem:
    code: str
    message: str


_CODE = re.compile(r"[0-9]{5}")


def check_kbli(code: str, edition: int) -> KbliProblem | None:
    """None when the code is plausible for its edition, else what is wrong with it."""
    if edition not in EDITIONS:
        return KbliProblem("kbli.unknown_edition", f"KBLI edition must be one of {EDITIONS}, not {edition}")
    if not _CODE.fullmatch(code):
        return KbliProblem("kbli.format", f"KBLI code must be exactly 5 digits (e.g. 56102), not {code!r}")
    if code[:2] not in DIVISIONS[edition]:
        return KbliProblem("kbli.unknown_division", f"{code[:2]} is not a KBLI {edition} division; check the code")
    return None


def is_food_or_drink(code: str) -> bool:
    return code.startswith(FOOD_AND_DRINK_PREFIXES)

"""Mobile numbers as owners give them: operator prefixes weighted for NTT, written in the six ways officers see."""

from __future__ import annotations

from berdaya.dataset.lookup import Rand, lookup_table

# Mobile prefixes without the 0, weighted: Telkomsel dominates in NTT. Smartfren and Tri numbers (_LONG_NUMBERS)
# often have a 9-digit subscriber part.
# fmt: off
_PREFIXES = lookup_table([
    ("812", 14), ("813", 12), ("821", 10), ("822", 10), ("823", 8), ("852", 8), ("853", 8), ("811", 3), ("851", 4),
    ("857", 3), ("858", 2), ("877", 2), ("878", 2), ("895", 1.5), ("896", 1.5), ("897", 1), ("898", 1), ("899", 1),
    ("881", 0.5), ("882", 0.5), ("883", 0.5), ("884", 0.5), ("885", 0.5), ("886", 0.5), ("887", 0.5), ("888", 0.5),
    ("889", 0.5), ("838", 2), ("831", 1.5),
], 10_000)
_LONG_NUMBERS = frozenset({"881", "882", "883", "884", "885", "886", "887", "888", "889", "895", "896", "897", "898",
                           "899"})
_PHONE_FORMS = lookup_table(
    [("plain", 40), ("dashes", 20), ("spaces", 10), ("intl_spaces", 12), ("intl", 10), ("62", 8)]
)


def phone_number(rand: Rand, head: int, tail: int) -> str:
    """A mobile number whose subscriber part is the four digits of `head` and of `tail` (from identity, so that no
    two rows share a number), with a prefix and a way of writing it drawn."""
    prefix = _PREFIXES[int(rand() * 10_000)]
    head_digits = f"{head:04d}"
    if prefix in _LONG_NUMBERS and rand() < 0.5:
        head_digits = f"{int(rand() * 9) + 1}{head_digits}"
    tail_digits = f"{tail:04d}"
    form = _PHONE_FORMS[int(rand() * 1_000)]
    if form == "plain":
        return f"0{prefix}{head_digits}{tail_digits}"
    if form == "dashes":
        return f"0{prefix}-{head_digits}-{tail_digits}"
    if form == "spaces":
        return f"0{prefix} {head_digits} {tail_digits}"
    if form == "intl_spaces":
        return f"+62 {prefix} {head_digits} {tail_digits}"
    if form == "intl":
        return f"+62{prefix}{head_digits}{tail_digits}"
    return f"62{prefix}{head_digits}{tail_digits}"

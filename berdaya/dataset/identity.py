"""The bijections that give every row its own NIK, phone number and NIB, and the birth dates NIKs carry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import cache
from math import gcd
from typing import NamedTuple

from berdaya.dataset.lookup import Rand
from berdaya.dataset.owners import MAX_AGE, MIN_AGE, REFERENCE_DATE

# The NIK's day of birth and serial carry the row index (see identities), so this many rows have distinct NIKs.
_DAYS = 365
_SERIALS = 9_999
MAX_ROWS = _DAYS * _SERIALS


class Identities(NamedTuple):
    """What a row's index becomes. Different indexes never give the same NIK, phone digits or NIB."""

    # (index, region, age, woman) -> (ISO birth date, NIK, the two 4-digit halves of the phone's subscriber number)
    nik_and_phone: Callable[[int, str, int, bool], tuple[str, str, int, int]]
    nib: Callable[[int], str]  # index -> the NIB's 12 digits after the first


def identities(rand: Rand) -> Identities:
    """Draw the bijections' keys: before any row, NIK then phone then NIB, for the rows' draws follow these."""
    # Distinct NIKs, phones and NIBs: each row's index goes through a bijection (an affine step, then two rounds
    # of a Feistel-like mix) whose digits become the NIK's day of birth and serial, the phone's subscriber number
    # and the NIB. Different rows can never share them, and neighbouring rows don't look related.
    nik_mod, nik_a, nik_b, nik_f, nik_g = _keys(rand, _DAYS, _SERIALS)
    phone_mod, phone_a, phone_b, phone_f, phone_g = _keys(rand, 10**4, 10**4)
    nib = _nib_bijection(rand)
    births = _births()

    # NIK and phone in one function: it runs for every row of million-row lists, where each call more shows.
    def nik_and_phone(index: int, region: str, age: int, woman: bool) -> tuple[str, str, int, int]:
        day, serial = divmod((index * nik_a + nik_b) % nik_mod, _SERIALS)
        serial = (serial + nik_f[day]) % _SERIALS
        day = (day + nik_g[serial]) % _DAYS
        born_iso, ddmmyy_man, ddmmyy_woman = births[age - MIN_AGE][day]
        hi, lo = divmod((index * phone_a + phone_b) % phone_mod, 10**4)
        lo = (lo + phone_f[hi]) % 10**4
        hi = (hi + phone_g[lo]) % 10**4
        # NIK: region, day of birth (+40 for women), serial.
        return born_iso, f"{region}{ddmmyy_woman if woman else ddmmyy_man}{serial + 1:04d}", hi, lo

    return Identities(nik_and_phone, nib)


def _keys(rand: Rand, high: int, low: int) -> tuple[int, int, int, list[int], list[int]]:
    """The keys of a bijection of the indexes below high * low onto (digit < high, digit < low): modulus, affine
    factor and offset, then the two rounds' tables: f[high digit] < low, g[low digit] < high."""
    modulus = high * low
    a, b = _coprime(rand, modulus), int(rand() * modulus)
    f = [int(rand() * low) for _ in range(high)]
    g = [int(rand() * high) for _ in range(low)]
    return modulus, a, b, f, g


def _nib_bijection(rand: Rand) -> Callable[[int], str]:
    """index -> 12 digits, one to one for indexes below 10**12: the same two rounds, mixed by a quadratic of
    the other half rather than by a drawn table."""
    modulus = 10**12
    a, b = _coprime(rand, modulus), int(rand() * modulus)
    c, d = int(rand() * 10**6), int(rand() * 10**6)

    def digits(index: int) -> str:
        hi, lo = divmod((index * a + b) % modulus, 10**6)
        lo = (lo + (hi * hi + c * hi + d) % 10**6) % 10**6
        hi = (hi + (lo * lo + d * lo + c) % 10**6) % 10**6
        return f"{hi:06d}{lo:06d}"

    return digits


def _coprime(rand: Rand, modulus: int) -> int:
    while True:
        a = int(rand() * modulus)
        if a > 1 and gcd(a, modulus) == 1:
            return a


@cache
def _births() -> tuple[tuple[tuple[str, str, str], ...], ...]:
    """births[age - MIN_AGE][day] = (ISO birth date, NIK DDMMYY for a man, for a woman) of someone exactly `age`
    on REFERENCE_DATE, born on the day-th day (0..364) of their birth year."""
    ref = (REFERENCE_DATE.month, REFERENCE_DATE.day)
    table = []
    for age in range(MIN_AGE, MAX_AGE + 1):
        row = []
        for day in range(_DAYS):
            born = date(REFERENCE_DATE.year - age, 1, 1) + timedelta(days=day)
            if (born.month, born.day) > ref:  # birthday not yet reached on the reference day: born a year earlier
                born = date(REFERENCE_DATE.year - age - 1, 1, 1) + timedelta(days=day)
            yy = born.year % 100
            row.append(
                (
                    born.isoformat(),
                    f"{born.day:02d}{born.month:02d}{yy:02d}",
                    f"{born.day + 40:02d}{born.month:02d}{yy:02d}",
                )
            )
        table.append(tuple(row))
    return tuple(table)

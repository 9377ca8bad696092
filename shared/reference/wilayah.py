"""Kota Kupang's kecamatan and kelurahan, with Kemendagri codes (those in a NIK) and BPS codes mapped explicitly.

Names are matched loosely because sources spell them differently (Belo/Bello, Air Mata/Airmata); codes exactly.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

CITY_CODE = "53.71"
CITY_NAME = "Kota Kupang"


@dataclass(frozen=True, slots=True)
class Kecamatan:
    name: str
    code: str  # Kemendagri, e.g. 53.71.04
    bps_code: str  # BPS, e.g. 5371030

    @property
    def nik_prefix(self) -> str:
        """The first six digits of a NIK first issued in this kecamatan."""
        return self.code.replace(".", "")


@dataclass(frozen=True, slots=True)
class Kelurahan:
    name: str
    code: str  # Kemendagri, e.g. 53.71.04.1001
    kecamatan: Kecamatan


_NUMBERS = {"i": "1", "ii": "2", "iii": "3", "satu": "1", "dua": "2", "tiga": "3"}


def place_key(name: str) -> str:
    """Loose key for a place name: case, spaces, punctuation and doubled letters ignored, and numbering written
    any way (Naikoten II, Naikoten 2, Naikoten Dua)."""
    # Only names of a place's length are remembered: a cache of any text a caller sends could hold gigabytes.
    return _place_key(name) if len(name) <= 100 else _place_key.__wrapped__(name)


@lru_cache(maxsize=4096)
def _place_key(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", name.lower())
    joined = "".join(_NUMBERS.get(w, w) for w in words)
    return re.sub(r"([a-z])\1+", r"\1", joined)


class Wilayah:
    def __init__(self, kelurahan: list[Kelurahan]) -> None:
        self.kelurahan = tuple(kelurahan)
        kecamatan: dict[str, Kecamatan] = {}
        for kel in kelurahan:
            kecamatan.setdefault(kel.kecamatan.code, kel.kecamatan)
        self.kecamatan = tuple(sorted(kecamatan.values(), key=lambda k: k.code))
        self._kec_by_key = {}
        for kec in self.kecamatan:
            for key in (kec.code, kec.bps_code, kec.code.replace(".", ""), place_key(kec.name)):
                self._kec_by_key[key] = kec
        self._kel_by_code = {k.code: k for k in kelurahan}
        self._kel_by_code.update({k.code.replace(".", ""): k for k in kelurahan})
        self._kel_by_name: dict[str, list[Kelurahan]] = {}
        for kel in kelurahan:
            self._kel_by_name.setdefault(place_key(kel.name), []).append(kel)

    def find_kecamatan(self, text: str) -> Kecamatan | None:
        """By name (loosely), Kemendagri code or BPS code."""
        text = text.strip()
        return self._kec_by_key.get(text) or self._kec_by_key.get(place_key(text))

    def find_kelurahan(self, text: str, kecamatan: Kecamatan | None = None) -> Kelurahan | None:
        """By Kemendagri code, or by name within the given kecamatan (some names need it to be unique)."""
        text = text.strip()
        kel = self._kel_by_code.get(text)
        if kel is not None:
            return kel if kecamatan is None or kel.kecamatan == kecamatan else None
        matches = [
            k for k in self._kel_by_name.get(place_key(text), []) if kecamatan is None or k.kecamatan == kecamatan
        ]
        return matches[0] if len(matches) == 1 else None

    def kelurahan_of(self, kecamatan: Kecamatan) -> list[Kelurahan]:
        return [k for k in self.kelurahan if k.kecamatan == kecamatan]


@cache
def kota_kupang() -> Wilayah:
    text = resources.files("shared.reference").joinpath("kota_kupang_wilayah.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    kecamatan: dict[str, Kecamatan] = {}
    kelurahan = []
    for row in rows:
        kec = kecamatan.setdefault(
            row["kecamatan_kemendagri"],
            Kecamatan(row["kecamatan"], row["kecamatan_kemendagri"], row["kecamatan_bps"]),
        )
        kelurahan.append(Kelurahan(row["kelurahan"], row["kelurahan_kemendagri"], kec))
    return Wilayah(kelurahan)

"""Where a business is: kelurahan weighted by population, spelled as officers type them, and street addresses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from berdaya.dataset.lookup import Rand, lookup_table
from shared.reference.wilayah import kota_kupang

# fmt: off
_KECAMATAN_WEIGHT = {"Oebobo": 21, "Maulafa": 21, "Kelapa Lima": 18, "Alak": 16, "Kota Raja": 14, "Kota Lama": 10}
_COAST = {"Namosain", "Nunhila", "Oesapa", "Oesapa Barat", "Lasiana", "Kelapa Lima", "Pasir Panjang", "Oeba",
          "Fatubesi", "Nefonaek", "Lai-Lai Bisi Kopan", "Tode Kisar"}
_ALSO_WRITTEN = {"Belo": "Bello", "Air Mata": "Airmata", "Batuplat": "Batu Plat",
                 "Lai-Lai Bisi Kopan": "Lai Lai Bisi Kopan", "Kota Raja": "Kotaraja", "Kelapa Lima": "Kelapalima",
                 "Kayu Putih": "Kayuputih", "Pasir Panjang": "Pasirpanjang", "Bakunase II": "Bakunase Dua",
                 "Naikoten I": "Naikoten Satu", "Naikoten II": "Naikoten Dua", "Manulai II": "Manulai 2"}

_STREETS = lookup_table([
    ("El Tari", 4), ("Timor Raya", 5), ("Soeharto", 3), ("W.J. Lalamentik", 3), ("Frans Seda", 3),
    ("Piet A. Tallo", 2), ("Herewila", 2), ("Adi Sucipto", 3), ("Cak Doko", 2), ("Sam Ratulangi", 2),
    ("Perintis Kemerdekaan", 2), ("Jend. Sudirman", 3), ("Moh. Hatta", 2), ("Siliwangi", 2), ("Ahmad Yani", 2),
    ("R.A. Kartini", 2), ("Nangka", 2), ("Kejora", 1), ("Alfons Nisnoni", 2), ("Veteran", 1), ("Amabi", 1),
    ("Bhayangkara", 1), ("Monginsidi", 1), ("Suprapto", 1),
])
_LANES = ("Kenari", "Mawar", "Flamboyan", "Cendana", "Asoka", "Nusa Indah", "Melati", "Kelor", "Damai", "Sepakat",
          "1", "2", "3", "4", "5", "6", "7", "8", "9", "10")
# fmt: on
_ADDRESS_FORMS = lookup_table(
    [("full", 55), ("lane", 12), ("sloppy", 13), ("rt_only", 10), ("street_only", 5), ("none", 5)]
)


# A slotted dataclass, not a NamedTuple: its fields are read for every row, and slot reads are much cheaper.
@dataclass(frozen=True, slots=True)
class Place:
    kelurahan: str  # canonical name, for the address
    nik_prefix: str  # Kemendagri code of its kecamatan, as in a NIK
    spellings: tuple[tuple[str, str], ...]  # lookup table of (kecamatan, kelurahan) as typed
    coast: bool


def _spellings(name: str, finds: Callable[[str], bool], code: str) -> list[tuple[str, float]]:
    """How officers write a place name: mostly as it is, sometimes in lower or upper case or the other spelling.
    Only variants the reference data resolves to this very place are kept; if not even the name resolves (the
    loose key makes 'Naikoten I' and 'Naikoten II' the same), the officer writes the Kemendagri code."""
    other = _ALSO_WRITTEN.get(name, name)
    variants = [(name, 85.0), (name.lower(), 6.0), (name.upper(), 3.0), (other, 6.0)]
    return [(v, w) for v, w in variants if finds(v)] or [(code, 1.0)]


@cache
def place_tables() -> tuple[tuple[Place, ...], tuple[Place, ...]]:
    """Lookup tables of all places and of coastal places, weighted by their kecamatan's population."""
    wilayah = kota_kupang()
    weighted: list[tuple[Place, float]] = []
    for kec in wilayah.kecamatan:
        kelurahan = wilayah.kelurahan_of(kec)
        kec_spellings = _spellings(kec.name, lambda text, kec=kec: wilayah.find_kecamatan(text) == kec, kec.code)
        for kel in kelurahan:
            kel_spellings = _spellings(
                kel.name, lambda text, kel=kel: wilayah.find_kelurahan(text, kel.kecamatan) == kel, kel.code
            )
            pairs = [((k, l), wk * wl) for k, wk in kec_spellings for l, wl in kel_spellings]
            place = Place(kel.name, kec.nik_prefix, lookup_table(pairs, 400), kel.name in _COAST)
            weighted.append((place, _KECAMATAN_WEIGHT.get(kec.name, 10) / len(kelurahan)))
    coast = [(p, w) for p, w in weighted if p.coast]
    return lookup_table(weighted, 10_000), lookup_table(coast, 1_000)


@cache
def kupang_nik_regions() -> tuple[str, ...]:
    """Kota Kupang kecamatan codes weighted like the places, for owners whose KTP came from another kecamatan."""
    return tuple(place.nik_prefix for place in place_tables()[0][::10])


def place_of_business(
    rand: Rand, fish: bool, places: tuple[Place, ...], coast: tuple[Place, ...]
) -> tuple[Place, str, str]:
    """A place from the lookup tables of place_tables() (on the coast for most `fish` businesses), and its
    kecamatan and kelurahan as the officer typed them."""
    place = coast[int(rand() * len(coast))] if fish and rand() < 0.7 else places[int(rand() * len(places))]
    kecamatan, kelurahan = place.spellings[int(rand() * len(place.spellings))]
    return place, kecamatan, kelurahan


def street_address(rand: Rand, kelurahan: str) -> str:
    """An address as officers write it: with or without a lane, number, RT/RW, sometimes none at all."""
    form = _ADDRESS_FORMS[int(rand() * 1_000)]
    u = rand()
    number = 1 + int(u * u * 150)
    u = rand()
    rt = 1 + int(u * u * 40)
    rw = 1 + int(rand() * 12)
    if form == "full":
        return f"Jl. {_STREETS[int(rand() * 1_000)]} No. {number}, RT {rt:03d}/RW {rw:03d}"
    if form == "lane":
        return (
            f"Jl. {_STREETS[int(rand() * 1_000)]}, Gg. {_LANES[int(rand() * len(_LANES))]} No. {number}, "
            f"RT {rt:03d}/RW {rw:03d}"
        )
    if form == "sloppy":
        return f"Jl. {_STREETS[int(rand() * 1_000)]} RT {rt:02d} RW {rw:02d}"
    if form == "rt_only":
        return f"RT {rt:03d}/RW {rw:03d}, Kel. {kelurahan}"
    if form == "street_only":
        return f"Jl. {_STREETS[int(rand() * 1_000)]} No. {number}"
    return ""

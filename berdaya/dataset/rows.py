"""Row after row of the list: who, where, NIK, phone, name, address, money and NIB, drawn in one fixed order."""

from __future__ import annotations

import random
from collections.abc import Iterator

from berdaya.dataset.businesses import KIND_TABLE, business_name
from berdaya.dataset.identity import identities
from berdaya.dataset.money import CAPITAL_ONLY, capital_and_sales
from berdaya.dataset.owners import AGE_TABLE, ORIGIN_TABLE, ktp_region, owner_name
from berdaya.dataset.phones import phone_number
from berdaya.dataset.places import kupang_nik_regions, place_of_business, place_tables, street_address

COLUMNS: tuple[str, ...] = (
    "business_name",
    "owner_name",
    "owner_nik",
    "owner_gender",
    "owner_birth_date",
    "phone",
    "kbli_code",
    "kbli_version",
    "kecamatan",
    "kelurahan",
    "address",
    "capital_rupiah",
    "annual_sales_rupiah",
    "nib",
    "confirm_distinct",
)


def stream(count: int, seed: int, nib_share: float) -> Iterator[tuple[str, ...]]:
    """The rows as tuples in COLUMNS order, for arguments api has checked. Every value comes from one
    random.Random, so the order of the draws is the list: reordering them, or adding one, changes every row after
    it, and a seed would no longer give the rows it gave."""
    rng = random.Random(seed)
    rand = rng.random
    gauss = rng.gauss
    nik_and_phone, nib_of = identities(rand)
    nib_new, nib_running = _nib_odds(nib_share)
    places, coast = place_tables()
    kupang_regions = kupang_nik_regions()

    for i in range(count):
        # Who: age, origin, line of business, gender, name.
        age = AGE_TABLE[int(rand() * 10_000)]
        origin = ORIGIN_TABLE[int(rand() * 1_000)]
        kind = KIND_TABLE[age <= 30][int(rand() * 10_000)]
        woman = rand() < kind.women
        owner, nick, band = owner_name(rand, age, origin, woman)
        # Where: the place of business, and where the owner's KTP was first issued.
        place, kecamatan, kelurahan = place_of_business(rand, kind.fish, places, coast)
        region = ktp_region(rand, origin, place.nik_prefix, kupang_regions)
        born_iso, nik, phone_head, phone_tail = nik_and_phone(i, region, age, woman)
        phone = phone_number(rand, phone_head, phone_tail)
        business = business_name(rand, kind, woman, band, nick, place.kelurahan)
        address = street_address(rand, place.kelurahan)
        capital, sales, new_business = capital_and_sales(rand, gauss)
        nib = f"{int(rand() * 9) + 1}{nib_of(i)}" if rand() < (nib_new if new_business else nib_running) else ""
        kbli = kind.kbli[int(rand() * len(kind.kbli))]  # after the NIB, not with the kind: that is the draws' order
        # fmt: off
        yield (business, owner, nik, "P" if woman else "L", born_iso, phone, kbli, "2020",
               kecamatan, kelurahan, address, capital, sales, nib, "")
        # fmt: on


def _nib_odds(nib_share: float) -> tuple[float, float]:
    """The chance that a new and that a running business holds an NIB, for `nib_share` of all to hold one."""
    # New businesses are less often registered with OSS; running ones make up for it, so the share is as asked.
    nib_new = nib_share * 0.5
    nib_running = (nib_share - CAPITAL_ONLY * nib_new) / (1 - CAPITAL_ONLY)
    if nib_running > 1.0:
        nib_running, nib_new = 1.0, (nib_share - (1 - CAPITAL_ONLY)) / CAPITAL_ONLY
    return nib_new, nib_running

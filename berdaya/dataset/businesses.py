"""What a business does and what it is called: KBLI 2020 kinds weighted as Kupang trades, name patterns, brands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from berdaya.dataset.lookup import Rand, lookup_table
from berdaya.dataset.owners import TITLES

# fmt: off
_GOOD_NAMES = (
    "Bintang Timur", "Berkat", "Sumber Berkat", "Kasih", "Kasih Karunia", "Imanuel", "Sion", "Bethel", "Ebenhaezer",
    "Shalom", "Anugerah", "Karunia", "Damai", "Sejahtera", "Harapan", "Harapan Baru", "Sumber Rejeki", "Rejeki",
    "Maju Jaya", "Mandiri", "Sinar Pagi", "Pelangi", "Flobamora", "Flobamorata", "Nusa Indah", "Timor Indah",
    "Sasando", "Lontar", "Cendana", "Kupang Indah", "Kota Kasih", "Fatuleu", "Mutis", "Bukit Indah", "Mawar",
    "Melati", "Anggrek", "Nusantara", "Tiga Saudara", "Dua Putri", "Sahabat", "Keluarga", "Lestari", "Jaya Abadi",
    "Sehati", "Cahaya", "Cahaya Timur", "Pantai Lasiana", "Tunas Muda", "Sumber Hidup", "Elim", "Getsemani",
)
_MODERN_NAMES = (
    "Senja", "Teduh", "Sabana", "Pesisir", "Karang", "Tenggara", "Nostalgia", "Koepang", "Timur", "Nusa", "Kita",
    "Rumah Kita", "Sudut", "Sore", "Lopo", "Batu Karang", "Sunset", "Ombak", "Laut Biru", "Langit",
)
_TENUN_FROM = ("Rote", "Sabu", "Amarasi", "Timor", "Ndao", "Alor", "Sumba", "Ende", "Sikka", "Belu", "Amanuban",
               "Insana", "Biboki", "Lembata")
_COFFEE_FROM = ("Bajawa", "Manggarai", "Flores", "Ngada", "Colol")

# A name pattern: text before the brand, text after it, and what kind of brand goes in between:
# "any" (owner's title and nickname, a good-sounding name, or the kelurahan), "titled" (Mama Yuli),
# "modern" (a bare nickname or a modern word), "none" (the pattern is the whole name).
_Pattern = tuple[str, str, str]


# A slotted dataclass, not a NamedTuple: its fields are read for every row, and slot reads are much cheaper.
@dataclass(frozen=True, slots=True)
class Kind:
    kbli: tuple[str, ...]  # a lookup table of KBLI 2020 codes
    women: float  # share of owners who are women
    names: tuple[_Pattern, ...]  # a lookup table of name patterns
    fish: bool = False  # mostly on the coast


def _kind(codes: Sequence[tuple[str, float]], women: float, patterns: Sequence[tuple[_Pattern, float]],
          fish: bool = False) -> Kind:
    return Kind(lookup_table(codes, 100), women, lookup_table(patterns), fish)


def _p(prefix: str, weight: float = 1.0, brand: str = "any", suffix: str = "") -> tuple[_Pattern, float]:
    return (prefix, suffix, brand), weight


# KBLI 2020 (confidence M or H in the fact check, table 3c). Weights are shares of the list, in percent,
# for owners over 30 and for youth.
_KINDS: dict[str, tuple[Kind, float, float]] = {
    "sei": (_kind([("10130", 1)], 0.45, [
        _p("Se'i Sapi ", 3), _p("Sei Sapi ", 2), _p("Se'i Babi ", 4), _p("Sei Babi ", 3), _p("Se'i Ayam ", 1),
        _p("Sei Ayam ", 1), _p("Rumah Se'i ", 1), _p("Depot Se'i ", 1), _p("Se'i Babi Asap ", 1)]), 7, 5.5),
    "tenun": (_kind([("13122", 1)], 0.95, [
        _p("Tenun Ikat ", 4), _p("Sentra Tenun ", 1), _p("Galeri Tenun ", 1)]
        + [_p(f"Tenun Ikat {place} ", 0.4) for place in _TENUN_FROM]
        + [_p(f"Kain Tenun {place} ", 0.2) for place in _TENUN_FROM]
        + [_p(f"Tenun Ikat Ina {place}", 0.1, "none") for place in _TENUN_FROM]), 6, 3.5),
    "kue_basah": (_kind([("10792", 1)], 0.85, [
        _p("Kue Basah ", 4), _p("Jajanan Pasar ", 2), _p("Kue Lapis ", 1), _p("Kue Cucur ", 1), _p("Kue Rambut ", 1),
        _p("Kue Talam ", 1), _p("Dapur Kue ", 1), _p("Aneka Kue Basah ", 1)]), 6, 4.5),
    "roti": (_kind([("10710", 1)], 0.7, [
        _p("Roti ", 2), _p("Toko Roti ", 2), _p("Kue Kering ", 2), _p("Roti Kukus ", 1), _p("Aneka Roti ", 1),
        _p("", 2, "modern", " Bakery"), _p("", 1, "modern", " Cake"), _p("Bakery ", 1)]), 4, 4.5),
    "warung": (_kind([("56102", 1)], 0.56, [
        _p("Warung Makan ", 6), _p("Rumah Makan ", 3), _p("RM ", 2), _p("Warung ", 2), _p("Warung Jagung Bose ", 1),
        _p("Warung Makan Padang ", 1), _p("Warung Nasi ", 1), _p("Warung Ikan Bakar ", 1)]), 13, 10),
    "kedai": (_kind([("56103", 1)], 0.55, [
        _p("Kedai ", 3), _p("Kedai Bakso ", 2), _p("Kedai Mie Ayam ", 1), _p("Kedai Pisang Goreng ", 1),
        _p("Kedai Nasi Kuning ", 1), _p("Kedai Jagung Bose ", 1), _p("Kedai Bubur ", 1)]), 7, 7),
    "keliling": (_kind([("56104", 1)], 0.35, [
        _p("Bakso Keliling ", 2), _p("Gerobak Nasi Kuning ", 1), _p("Pisang Goreng Keliling ", 1),
        _p("Jagung Bakar ", 1), _p("Lapak Jajanan ", 1)]), 2, 2.5),
    "restoran": (_kind([("56101", 1)], 0.45, [
        _p("Restoran ", 3), _p("Resto ", 2), _p("Restoran Seafood ", 1), _p("Resto Ikan Bakar ", 1),
        _p("Restoran Keluarga ", 1)]), 2, 1.5),
    "kafe": (_kind([("56303", 1)], 0.4, [
        _p("Kafe ", 2), _p("Cafe ", 2), _p("", 3, "modern", " Coffee"), _p("", 1, "modern", " Cafe"),
        _p("Kafe Kopi ", 1), _p("Coffee Shop ", 1, "modern")]), 3, 8),
    "minuman": (_kind([("56304", 1)], 0.45, [
        _p("Kedai Kopi ", 3), _p("Es Kelapa Muda ", 2), _p("Es Teh ", 1), _p("Jus Buah ", 1),
        _p("Kopi Susu ", 1, "modern"),
        _p("Kedai Minuman ", 1), _p("Es Buah ", 1)]), 3.5, 7),
    "kios": (_kind([("47112", 1)], 0.55, [
        _p("Kios ", 6), _p("Toko Kelontong ", 2), _p("Toko ", 2), _p("Kios Sembako ", 2), _p("UD ", 1),
        _p("Warung Kelontong ", 1)]), 17, 10),
    "pakaian": (_kind([("47711", 1)], 0.72, [
        _p("Toko Pakaian ", 2), _p("Butik ", 2), _p("Distro ", 1, "modern"), _p("Toko Baju ", 2),
        _p("Pakaian Anak ", 1),
        _p("", 1, "modern", " Fashion"), _p("Kios Pakaian ", 1)]), 5, 7),
    "online": (_kind([("47911", 1)], 0.7, [
        _p("Dapur ", 2, "titled", " Online"), _p("", 1, "modern", " Snack Online"), _p("Olshop Kuliner ", 2, "modern"),
        _p("Frozen Food ", 1), _p("Sambal Lu'at ", 2, "titled", " Online"), _p("Jajanan Online ", 1)]), 4, 9),
    "penjahit": (_kind([("14120", 1)], 0.6, [
        _p("Penjahit ", 4), _p("Jahit ", 2), _p("Modiste ", 1), _p("Taylor ", 1), _p("Penjahit Kebaya ", 1)]), 4.5, 3),
    "salon": (_kind([("96112", 1)], 0.88, [
        _p("Salon ", 4), _p("Salon Kecantikan ", 2), _p("Beauty Salon ", 1, "modern"), _p("", 1, "modern", " Salon")]),
        3, 3.5),
    "pangkas": (_kind([("96111", 1)], 0.08, [
        _p("Pangkas Rambut ", 3), _p("Barbershop ", 2, "modern"), _p("Barber ", 1, "modern"), _p("Cukur Rambut ", 1),
        _p("", 1, "modern", " Barbershop")]), 3, 5),
    "bengkel": (_kind([("45405", 1)], 0.04, [
        _p("Bengkel Motor ", 4), _p("Bengkel ", 2), _p("Servis Motor ", 1), _p("Bengkel ", 1, "any", " Motor")]),
        5, 4.5),
    "ikan_asap": (_kind([("10212", 1)], 0.5, [
        _p("Ikan Asap ", 3), _p("Se'i Ikan ", 2), _p("Ikan Asap Tongkol ", 1), _p("Ikan Asap Cakalang ", 1)], True),
        1.5, 0.8),
    "ikan_asin": (_kind([("10211", 1)], 0.6, [
        _p("Ikan Asin ", 3), _p("Ikan Kering ", 2), _p("Cumi Kering ", 1), _p("Ikan Asin Kering ", 1)], True),
        1.5, 0.7),
    "kopi": (_kind([("10761", 1)], 0.45, [_p("Kopi Bubuk ", 3)]
                   + [_p(f"Kopi Bubuk {place} ", 0.6) for place in _COFFEE_FROM]
                   + [_p(f"Kopi {place} ", 0.3) for place in _COFFEE_FROM]), 1.5, 1.5),
    "percetakan": (_kind([("18111", 1)], 0.3, [
        _p("Percetakan ", 3), _p("Digital Printing ", 2, "modern"), _p("Cetak Undangan ", 1)]), 1, 1.5),
}
# fmt: on
KIND_TABLE = {  # youth -> a lookup table of kinds of business
    youth: lookup_table([(kind, young if youth else old) for kind, old, young in _KINDS.values()], 10_000)
    for youth in (False, True)
}

_BRAND_KINDS = lookup_table([("titled", 50), ("good", 38), ("place", 12)])
_MODERN_BRAND = lookup_table([("nick", 50), ("modern", 35), ("titled", 15)])


def business_name(rand: Rand, kind: Kind, woman: bool, band: int, nick: str, kelurahan: str) -> str:
    """A name pattern of the kind of business around a brand drawn for it; `band` and `nick` are how the owner is
    called (see owners.owner_name), `kelurahan` where the business is."""
    before, after, brand_kind = kind.names[int(rand() * 1_000)]
    if brand_kind == "none":
        return f"{before}{after}"
    if brand_kind == "any":
        brand_kind = _BRAND_KINDS[int(rand() * 1_000)]
    elif brand_kind == "modern":
        brand_kind = _MODERN_BRAND[int(rand() * 1_000)]
    if brand_kind == "titled":
        brand = f"{TITLES[(woman, band)][int(rand() * 1_000)]} {nick}"
    elif brand_kind == "good":
        brand = _GOOD_NAMES[int(rand() * len(_GOOD_NAMES))]
    elif brand_kind == "place":
        brand = kelurahan
    elif brand_kind == "nick":
        brand = nick
    else:
        brand = _MODERN_NAMES[int(rand() * len(_MODERN_NAMES))]
    return f"{before}{brand}{after}"

"""A deterministic, realistic list of Kota Kupang UMKM for demos, tests and benchmarks.

Each row is one registration as the registry's CSV import takes it (the RegistrationForm field names, every value
text, '' for empty), typed the way officers type: phones in mixed formats, some place names spelled loosely, some
sales written with dots. Every row passes the registry's validation, and NIKs, phones and NIBs never repeat, so
the registry's duplicate rules never fire by accident.

What the list is built from:
- the news articles in /work/shared/seeds: 17,000 UMKM in the city, 12,000 of them with an NIB (the default NIB
  share); Se'i (smoked meat) and Tenun NTT (woven cloth) as flagship products; culinary, crafts and retail;
- the 6 kecamatan and 51 kelurahan of shared.reference.wilayah, weighted roughly by population;
- KBLI 2020 codes of medium or high confidence in the project's fact check (/tmp/research/indonesian_rules.md §3c);
- Kemendagri region codes for the NIKs of owners whose KTP was first issued outside the city (cahyadsn/wilayah,
  Kepmendagri 300.2.2-2138/2025).

Owners' ages are drawn as of REFERENCE_DATE, not today, so a seed gives the same rows whenever it runs.
This module does not import the services: the CLI that uses it is their client.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from functools import cache
from math import gcd
from pathlib import Path
from typing import NamedTuple, TypeVar

from shared.reference.wilayah import kota_kupang

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

REFERENCE_DATE = date(2025, 10, 1)
"""Owners' ages (17 to 70) are ages on this day: 1 October 2025, the date of the seed articles."""

DEFAULT_NIB_SHARE = 12_000 / 17_000
"""Of 17,000 UMKM in Kota Kupang, 12,000 already hold an NIB (Suarantt.id, 25 February 2025)."""

# The NIK's day of birth and serial carry the row index (see _rows), so this many rows have distinct NIKs.
_DAYS = 365
_SERIALS = 9_999
MAX_ROWS = _DAYS * _SERIALS

T = TypeVar("T")


def _table(weighted: Sequence[tuple[T, float]], size: int = 1_000) -> tuple[T, ...]:
    """A lookup table in which each item fills a share of the slots equal to its share of the weight, so that
    table[int(random() * len(table))] is a weighted choice costing one random() and one index."""
    total = sum(w for _, w in weighted)
    slots: list[T] = []
    running = 0.0
    for item, weight in weighted:
        running += weight
        slots.extend([item] * (round(running / total * size) - len(slots)))
    return tuple(slots)


# ---------------------------------------------------------------------------------------------------------------
# Owners
# ---------------------------------------------------------------------------------------------------------------

# fmt: off
# (first name, nicknames a business may be named after). Catholic and Protestant names as NTT gives them.
_WOMEN = (
    ("Maria", ("Mery", "Maria", "Mia")), ("Maria Goreti", ("Eti", "Mery")), ("Maria Magdalena", ("Lena", "Mery")),
    ("Yuliana", ("Yuli", "Ana")), ("Fransiska", ("Siska", "Fani")), ("Agustina", ("Tina", "Ina")),
    ("Yohana", ("Ana", "Hana")), ("Margaretha", ("Eta", "Greta")), ("Elisabeth", ("Eli", "Lisa", "Ebet")),
    ("Martha", ("Marta",)), ("Paulina", ("Lina", "Pauli")), ("Dorkas", ("Dorkas",)), ("Naomi", ("Omi", "Naomi")),
    ("Ester", ("Ester", "Eci")), ("Debora", ("Debi",)), ("Selfina", ("Fina", "Selfi")), ("Yustina", ("Tina",)),
    ("Anastasia", ("Tasya", "Asti")), ("Theresia", ("Resi", "Esi")), ("Veronika", ("Vero", "Nika")),
    ("Kristina", ("Tina", "Kris")), ("Imelda", ("Imel",)), ("Oktovina", ("Vina", "Okto")), ("Adriana", ("Ana", "Adri")),
    ("Anselina", ("Ance", "Lina")), ("Magdalena", ("Lena", "Magda")), ("Petronela", ("Nela", "Ela")),
    ("Getreda", ("Eda", "Getri")), ("Sarlota", ("Lota",)), ("Agnes", ("Agnes", "Nes")), ("Lusia", ("Lusi",)),
    ("Florentina", ("Flora", "Tina")), ("Ernestina", ("Erni", "Tina")), ("Wilhelmina", ("Mina", "Wilma")),
    ("Mariana", ("Ana", "Mariana")), ("Yakomina", ("Mina",)), ("Rosalina", ("Ros", "Lina")), ("Dina", ("Dina",)),
)
_WOMEN_YOUNG = (
    ("Gracia", ("Grace", "Cia")), ("Angelina", ("Angel", "Lina")), ("Cindy", ("Cindy",)), ("Vania", ("Nia", "Vania")),
    ("Putri", ("Putri",)), ("Nadia", ("Nadia",)), ("Jessica", ("Jesi",)), ("Natalia", ("Lia", "Nata")),
    ("Claudia", ("Odi", "Claudia")), ("Regina", ("Egi", "Regina")), ("Stevani", ("Stevi", "Vani")),
    ("Novita", ("Nova", "Vita")), ("Febriana", ("Febi", "Ana")), ("Yuni", ("Yuni",)), ("Priskila", ("Kila",)),
    ("Ayu", ("Ayu",)), ("Desi", ("Desi",)), ("Sintia", ("Tia", "Sintia")), ("Marsela", ("Sela",)),
    ("Yolanda", ("Yola",)), ("Meylani", ("Mey", "Lani")),
)
_MEN = (
    ("Yohanes", ("Yan", "Anis", "Hanes")), ("Agustinus", ("Agus", "Gusti")), ("Petrus", ("Piet", "Petu")),
    ("Paulus", ("Paul", "Ulus")), ("Yosef", ("Ose", "Yos")), ("Fransiskus", ("Frans", "Sius")),
    ("Markus", ("Markus", "Kus")), ("Daniel", ("Dani", "Daniel")), ("Yakobus", ("Kobus", "Yakob")),
    ("Simon", ("Simon",)), ("Stefanus", ("Stef", "Fanus")), ("Benediktus", ("Beni", "Ben")),
    ("Aloysius", ("Alo", "Ois")), ("Kornelis", ("Kores", "Nelis")), ("Hendrik", ("Hen", "Endi")),
    ("Melkianus", ("Melki",)), ("Yermias", ("Yeri", "Emi")), ("Obed", ("Obed",)), ("Frits", ("Frits",)),
    ("Marthen", ("Marten",)), ("Zakarias", ("Zaka",)), ("Dominikus", ("Domi", "Nikus")),
    ("Arnoldus", ("Arnol", "Noldi")), ("Nikolaus", ("Niko", "Klaus")), ("Adrianus", ("Adi", "Adri")),
    ("Lambertus", ("Lambert", "Berti")), ("Ferdinand", ("Ferdi",)), ("Robert", ("Obet", "Robi")),
    ("Yunus", ("Yunus",)), ("Imanuel", ("Nuel",)), ("Gabriel", ("Gabi",)), ("Rudolf", ("Rudi",)),
    ("Wilhelmus", ("Willy",)), ("Mikael", ("Miki",)), ("Sem", ("Sem",)), ("Ebenhaezer", ("Eben",)),
    ("Lukas", ("Lukas",)), ("Matias", ("Matis",)), ("Antonius", ("Anton", "Toni")), ("Vinsensius", ("Vinsen",)),
    ("Kristoforus", ("Kris", "Tofo")), ("Bernardus", ("Bernad", "Nadus")),
)
_MEN_YOUNG = (
    ("Kevin", ("Kevin",)), ("Ricky", ("Ricky",)), ("Rio", ("Rio",)), ("Gilbert", ("Gilbert",)),
    ("Jordan", ("Jordan",)), ("Ryan", ("Ryan",)), ("Dion", ("Dion",)), ("Aldi", ("Aldi",)),
    ("Christian", ("Chris", "Tian")), ("Yosua", ("Yos", "Sua")), ("Reinaldo", ("Aldo", "Rei")), ("Jefri", ("Jefri",)),
    ("Andre", ("Andre",)), ("Gerald", ("Gerald",)), ("Alfred", ("Alfred", "Fred")), ("Steven", ("Steve",)),
    ("Ivan", ("Ivan",)), ("Marvel", ("Marvel",)),
)
# Owners from outside NTT (and Kupang's Muslim families): given name and second name, no clan name.
_OTHER_WOMEN = (
    ("Siti", "Aminah"), ("Siti", "Rahma"), ("Nur", "Hasanah"), ("Fatimah", "Zahra"), ("Aisyah", "Nurjanah"),
    ("Halimah", "Saleh"), ("Sri", "Wahyuni"), ("Sri", "Rahayu"), ("Endang", "Lestari"), ("Dewi", "Sartika"),
    ("Rahmawati", "Hamid"), ("Nurhayati", "Kadir"), ("Ni Made", "Sukarni"), ("Ni Luh", "Ayu"),
)
_OTHER_MEN = (
    ("Muhammad", "Rizal"), ("Muhammad", "Ikbal"), ("Abdul", "Hamid"), ("Abdul", "Rahman"), ("Ahmad", "Syukur"),
    ("Hasan", "Basri"), ("Ismail", "Jafar"), ("Yusuf", "Kadir"), ("Ridwan", "Saleh"), ("Budi", "Santoso"),
    ("Slamet", "Riyadi"), ("Joko", "Susilo"), ("Bambang", "Hidayat"), ("I Made", "Sudarsana"), ("I Ketut", "Wirawan"),
)

# Clan names by where the family comes from, with the regions (Kemendagri PPKKCC, checked against cahyadsn/wilayah)
# where an owner of that origin who did not get a KTP in Kota Kupang would have had it first issued.
class _Origin(NamedTuple):
    surnames: tuple[str, ...]
    home_regions: tuple[str, ...]


_ORIGINS = {
    "rote": _Origin(
        ("Ndun", "Fanggidae", "Manafe", "Nalle", "Mooy", "Ndoen", "Dethan", "Saudale", "Messakh", "Pandie", "Tungga",
         "Ndolu", "Haning", "Bessie", "Amalo", "Pah", "Adoe", "Lenggu", "Foeh", "Henuk", "Mbura", "Lona", "Ndaumanu",
         "Ballo", "Toelle"),
        # Rote Ndao: Lobalain, Rote Tengah, Rote Timur, Rote Barat Laut, Ndao Nuse.
        ("531403", "531404", "531406", "531402", "531409"),
    ),
    "sabu": _Origin(
        ("Riwu", "Kana", "Ratu", "Dida", "Ludji", "Bire", "Lado", "Wadu", "Djami", "Rohi", "Heo", "Radja", "Hege",
         "Kore", "Tadu", "Lay", "Bunga", "Huma", "Lobo", "Dimu", "Haba", "Kaho"),
        # Sabu Raijua: Sabu Barat, Sabu Tengah, Sabu Timur.
        ("532001", "532002", "532003"),
    ),
    "timor": _Origin(
        ("Nenobais", "Tefa", "Boimau", "Sinlae", "Tanesib", "Banunaek", "Nubatonis", "Kolo", "Taek", "Neno", "Selan",
         "Nomleni", "Oematan", "Benu", "Foenay", "Tallo", "Bana", "Kase", "Lakapu", "Nitbani", "Tanaem", "Sae", "Manu",
         "Baun", "Nope", "Amtiran", "Pello", "Bani", "Meko", "Liu"),
        # Kabupaten Kupang: Kupang Barat, Kupang Timur, Kupang Tengah, Amarasi, Fatuleu, Taebenu;
        # TTS: Kota Soe, Mollo Selatan, Amanuban Tengah; TTU: Kota Kefamenanu, Insana.
        ("530105", "530106", "530108", "530109", "530110", "530124", "530201", "530202", "530205", "530305", "530308"),
    ),
    "belu": _Origin(
        ("Bere", "Manek", "Seran", "Klau", "Mau", "Nahak", "Atok", "Luan", "Leki", "Bau", "Taolin", "Mali"),
        # Belu: Kota Atambua, Atambua Barat, Atambua Selatan, Tasifeto Timur.
        ("530412", "530421", "530422", "530402"),
    ),
    "flores": _Origin(
        ("Da Costa", "Parera", "Fernandez", "Diaz", "da Silva", "Carvallo", "de Rosari", "Lewar", "Wutun", "Tukan",
         "Kelen", "Making", "Ola", "Sogen", "Bao", "Goa", "Keupung", "Muda", "Openg", "Ruing", "Koten", "Wonga", "Nai"),
        # Flores Timur 53.06.03, Sikka: Alok, Alok Barat, Alok Timur; Ende: Ende; Alor: Teluk Mutiara.
        ("530603", "530705", "530714", "530715", "530803", "530501"),
    ),
    # Mataram: Ampenan, Mataram, Cakranegara; Denpasar Selatan, Denpasar Timur; Makassar, Surabaya, Yogyakarta.
    "other": _Origin((), ("527101", "527102", "527103", "517101", "517102", "737101", "357801", "347101")),
}
_ORIGIN_TABLE = _table([("timor", 28), ("rote", 24), ("flores", 17), ("sabu", 15), ("belu", 6), ("other", 10)])
_NIK_IN_KUPANG = {"other": 0.45}  # share of owners of each origin whose KTP was first issued in Kota Kupang
_NIK_IN_KUPANG_DEFAULT = 0.78
_NIK_SAME_KECAMATAN = 0.65  # of those, share whose KTP came from the kecamatan they trade in now

# Given names too common to call someone by: "Bu Aminah", not "Bu Siti".
_COMMON_GIVEN = frozenset({"Siti", "Nur", "Muhammad", "Abdul", "Ahmad", "Ni Made", "Ni Luh", "I Made", "I Ketut"})

_INITIALS = "ABDEFHJKLMNRSTY"
_DEGREES = (", S.Pd", ", S.E.", ", A.Md", ", S.H.", ", S.Kom")

# Age on REFERENCE_DATE, 17 to 70: most owners 30 to 50, about 27% youth (16-30, UU 40/2009).
_AGE_BANDS = ((17, 20, 3.0), (21, 25, 9.0), (26, 30, 15.0), (31, 35, 14.0), (36, 40, 13.0), (41, 45, 12.0),
              (46, 50, 11.0), (51, 55, 9.0), (56, 60, 7.0), (61, 65, 4.5), (66, 70, 2.5))
MIN_AGE, MAX_AGE = 17, 70
_AGE_TABLE = _table([(age, w / (hi - lo + 1)) for lo, hi, w in _AGE_BANDS for age in range(lo, hi + 1)], 10_000)

_TITLES = {  # (woman, age band) -> how Kupang calls the owner in a business name
    (True, 0): _table([("Kaka", 4), ("Nona", 3), ("Mama", 1)]),
    (True, 1): _table([("Mama", 8), ("Ibu", 3), ("Tanta", 2), ("Ina", 1), ("Bu", 1)]),
    (True, 2): _table([("Oma", 5), ("Mama", 3), ("Ibu", 1)]),
    (False, 0): _table([("Kaka", 5), ("Nyong", 1), ("Om", 1)]),
    (False, 1): _table([("Om", 5), ("Bapa", 3), ("Pak", 2)]),
    (False, 2): _table([("Opa", 4), ("Bapa", 2), ("Om", 2)]),
    (True, 3): _table([("Ibu", 4), ("Bu", 4), ("Mama", 1)]),  # owners from outside NTT
    (False, 3): _table([("Pak", 5), ("Mas", 2), ("Om", 1)]),
}

# ---------------------------------------------------------------------------------------------------------------
# Businesses: what they do (KBLI 2020), what they are called
# ---------------------------------------------------------------------------------------------------------------

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


class _Kind(NamedTuple):
    kbli: tuple[str, ...]  # a lookup table of KBLI 2020 codes
    women: float  # share of owners who are women
    names: tuple[_Pattern, ...]  # a lookup table of name patterns
    fish: bool = False  # mostly on the coast


def _kind(codes: Sequence[tuple[str, float]], women: float, patterns: Sequence[tuple[_Pattern, float]],
          fish: bool = False) -> _Kind:
    return _Kind(_table(codes, 100), women, _table(patterns), fish)


def _p(prefix: str, weight: float = 1.0, brand: str = "any", suffix: str = "") -> tuple[_Pattern, float]:
    return (prefix, suffix, brand), weight


# KBLI 2020 (confidence M or H in the fact check, table 3c). Weights are shares of the list, in percent,
# for owners over 30 and for youth.
_KINDS: dict[str, tuple[_Kind, float, float]] = {
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
_KIND_TABLE = {
    youth: _table([(kind, weights[2 if youth else 1]) for kind, weights in _KINDS.items()], 10_000)
    for youth in (False, True)
}

_BRAND_KINDS = _table([("titled", 50), ("good", 38), ("place", 12)])
_MODERN_BRAND = _table([("nick", 50), ("modern", 35), ("titled", 15)])

# ---------------------------------------------------------------------------------------------------------------
# Where: kecamatan weighted roughly by population, spellings as officers type them, streets of Kupang
# ---------------------------------------------------------------------------------------------------------------

# fmt: off
_KECAMATAN_WEIGHT = {"Oebobo": 21, "Maulafa": 21, "Kelapa Lima": 18, "Alak": 16, "Kota Raja": 14, "Kota Lama": 10}
_COAST = {"Namosain", "Nunhila", "Oesapa", "Oesapa Barat", "Lasiana", "Kelapa Lima", "Pasir Panjang", "Oeba",
          "Fatubesi", "Nefonaek", "Lai-Lai Bisi Kopan", "Tode Kisar"}
_ALSO_WRITTEN = {"Belo": "Bello", "Air Mata": "Airmata", "Batuplat": "Batu Plat",
                 "Lai-Lai Bisi Kopan": "Lai Lai Bisi Kopan", "Kota Raja": "Kotaraja", "Kelapa Lima": "Kelapalima",
                 "Kayu Putih": "Kayuputih", "Pasir Panjang": "Pasirpanjang", "Bakunase II": "Bakunase Dua",
                 "Naikoten I": "Naikoten Satu", "Naikoten II": "Naikoten Dua", "Manulai II": "Manulai 2"}

_STREETS = _table([
    ("El Tari", 4), ("Timor Raya", 5), ("Soeharto", 3), ("W.J. Lalamentik", 3), ("Frans Seda", 3),
    ("Piet A. Tallo", 2), ("Herewila", 2), ("Adi Sucipto", 3), ("Cak Doko", 2), ("Sam Ratulangi", 2),
    ("Perintis Kemerdekaan", 2), ("Jend. Sudirman", 3), ("Moh. Hatta", 2), ("Siliwangi", 2), ("Ahmad Yani", 2),
    ("R.A. Kartini", 2), ("Nangka", 2), ("Kejora", 1), ("Alfons Nisnoni", 2), ("Veteran", 1), ("Amabi", 1),
    ("Bhayangkara", 1), ("Monginsidi", 1), ("Suprapto", 1),
])
_LANES = ("Kenari", "Mawar", "Flamboyan", "Cendana", "Asoka", "Nusa Indah", "Melati", "Kelor", "Damai", "Sepakat",
          "1", "2", "3", "4", "5", "6", "7", "8", "9", "10")
# fmt: on
_ADDRESS_FORMS = _table([("full", 55), ("lane", 12), ("sloppy", 13), ("rt_only", 10), ("street_only", 5), ("none", 5)])


class _Place(NamedTuple):
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
def _places() -> tuple[tuple[_Place, ...], tuple[_Place, ...]]:
    """Lookup tables of all places and of coastal places, weighted by their kecamatan's population."""
    wilayah = kota_kupang()
    weighted: list[tuple[_Place, float]] = []
    for kec in wilayah.kecamatan:
        kelurahan = wilayah.kelurahan_of(kec)
        kec_spellings = _spellings(kec.name, lambda text, kec=kec: wilayah.find_kecamatan(text) == kec, kec.code)
        for kel in kelurahan:
            kel_spellings = _spellings(
                kel.name, lambda text, kel=kel: wilayah.find_kelurahan(text, kel.kecamatan) == kel, kel.code
            )
            pairs = [((k, l), wk * wl) for k, wk in kec_spellings for l, wl in kel_spellings]
            place = _Place(kel.name, kec.nik_prefix, _table(pairs, 400), kel.name in _COAST)
            weighted.append((place, _KECAMATAN_WEIGHT.get(kec.name, 10) / len(kelurahan)))
    coast = [(p, w) for p, w in weighted if p.coast]
    return _table(weighted, 10_000), _table(coast, 1_000)


@cache
def _kupang_nik_regions() -> tuple[str, ...]:
    """Kota Kupang kecamatan codes weighted like the places, for owners whose KTP came from another kecamatan."""
    return tuple(place.nik_prefix for place in _places()[0][::10])


# ---------------------------------------------------------------------------------------------------------------
# Birth dates and NIK day-of-birth digits
# ---------------------------------------------------------------------------------------------------------------


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


def _coprime(rand: Callable[[], float], modulus: int) -> int:
    while True:
        a = int(rand() * modulus)
        if a > 1 and gcd(a, modulus) == 1:
            return a


# ---------------------------------------------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------------------------------------------

_JUTA = 1_000_000
# Micro: monthly sales lognormal, median Rp 5.5 juta; annual kept within Rp 12 juta .. 1.5 miliar.
_MICRO_MONTHLY_MU, _MICRO_MONTHLY_SIGMA = math.log(5.5 * _JUTA), 0.9
_MICRO_SALES = (12 * _JUTA, 1_500 * _JUTA)
# Small and medium (PP 7/2021 art. 35): annual sales > 2 .. 15 miliar and > 15 .. 50 miliar; capital > 1 .. 5 and
# > 5 .. 10 miliar. Drawn log-uniformly inside, clear of the ceilings.
_SALES_RANGE = {1: (2_100 * _JUTA, 14_000 * _JUTA), 2: (15_500 * _JUTA, 48_000 * _JUTA)}
_CAPITAL_RANGE = {1: (1_100 * _JUTA, 4_800 * _JUTA), 2: (5_200 * _JUTA, 9_600 * _JUTA)}
_SMALL, _MEDIUM = 0.08, 0.01
_CAPITAL_ONLY = 0.15  # new businesses give capital, not sales
_CAPITAL_TOO = 0.35  # running businesses that also give capital
_DOTTED = 0.10  # sales written 150.000.000


def _log_uniform(u: float, low: int, high: int, step: int) -> int:
    return round(low * (high / low) ** u / step) * step


def _dotted(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


# ---------------------------------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------------------------------

# Mobile prefixes without the 0, weighted: Telkomsel dominates in NTT. Smartfren and Tri numbers (_LONG_NUMBERS)
# often have a 9-digit subscriber part.
# fmt: off
_PREFIXES = _table([
    ("812", 14), ("813", 12), ("821", 10), ("822", 10), ("823", 8), ("852", 8), ("853", 8), ("811", 3), ("851", 4),
    ("857", 3), ("858", 2), ("877", 2), ("878", 2), ("895", 1.5), ("896", 1.5), ("897", 1), ("898", 1), ("899", 1),
    ("881", 0.5), ("882", 0.5), ("883", 0.5), ("884", 0.5), ("885", 0.5), ("886", 0.5), ("887", 0.5), ("888", 0.5),
    ("889", 0.5), ("838", 2), ("831", 1.5),
], 10_000)
_LONG_NUMBERS = frozenset({"881", "882", "883", "884", "885", "886", "887", "888", "889", "895", "896", "897", "898",
                           "899"})
# fmt: on
_PHONE_FORMS = _table([("plain", 40), ("dashes", 20), ("spaces", 10), ("intl_spaces", 12), ("intl", 10), ("62", 8)])


# ---------------------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------------------


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
    return _stream(count, seed, nib_share)


def _stream(count: int, seed: int, nib_share: float) -> Iterator[tuple[str, ...]]:
    rng = random.Random(seed)
    rand = rng.random
    gauss = rng.gauss

    # Distinct NIKs, phones and NIBs: each row's index goes through a bijection (an affine step, then two rounds
    # of a Feistel-like mix) whose digits become the NIK's day of birth and serial, the phone's subscriber number
    # and the NIB. Different rows can never share them, and neighbouring rows don't look related.
    nik_mod = _DAYS * _SERIALS
    nik_a, nik_b = _coprime(rand, nik_mod), int(rand() * nik_mod)
    nik_f = [int(rand() * _SERIALS) for _ in range(_DAYS)]
    nik_g = [int(rand() * _DAYS) for _ in range(_SERIALS)]
    phone_mod = 10**8
    phone_a, phone_b = _coprime(rand, phone_mod), int(rand() * phone_mod)
    phone_f = [int(rand() * 10**4) for _ in range(10**4)]
    phone_g = [int(rand() * 10**4) for _ in range(10**4)]
    nib_mod = 10**12
    nib_a, nib_b = _coprime(rand, nib_mod), int(rand() * nib_mod)
    nib_c, nib_d = int(rand() * 10**6), int(rand() * 10**6)

    # New businesses are less often registered with OSS; running ones make up for it, so the share is as asked.
    nib_new = nib_share * 0.5
    nib_running = (nib_share - _CAPITAL_ONLY * nib_new) / (1 - _CAPITAL_ONLY)
    if nib_running > 1.0:
        nib_running, nib_new = 1.0, (nib_share - (1 - _CAPITAL_ONLY)) / _CAPITAL_ONLY

    births = _births()
    places, coast = _places()
    kupang_regions = _kupang_nik_regions()
    n_places, n_coast, n_kupang = len(places), len(coast), len(kupang_regions)
    origins, kinds = _ORIGINS, _KINDS
    kind_tables = _KIND_TABLE

    def pick(table: Sequence[T]) -> T:
        return table[int(rand() * len(table))]

    for i in range(count):
        # Who: age, origin, line of business, gender, name.
        age = _AGE_TABLE[int(rand() * 10_000)]
        youth = age <= 30
        origin_key = _ORIGIN_TABLE[int(rand() * 1_000)]
        origin = origins[origin_key]
        kind = kinds[kind_tables[youth][int(rand() * 10_000)]][0]
        woman = rand() < kind.women
        band = 0 if youth else (2 if age > 55 else 1)
        if origin_key == "other":
            given, second = pick(_OTHER_WOMEN if woman else _OTHER_MEN)
            owner = f"{given} {second}"
            nick = second if given in _COMMON_GIVEN else given
            band = 3
        else:
            born_year = REFERENCE_DATE.year - age
            young_names = rand() < min(0.7, max(0.0, (born_year - 1980) / 25))
            if woman:
                given, nicks = pick(_WOMEN_YOUNG if young_names else _WOMEN)
            else:
                given, nicks = pick(_MEN_YOUNG if young_names else _MEN)
            nick = pick(nicks)
            surname = pick(origin.surnames)
            u = rand()
            if u < 0.10 and " " not in given:
                owner = f"{given} {_INITIALS[int(rand() * len(_INITIALS))]}. {surname}"
            else:
                owner = f"{given} {surname}"
            if rand() < 0.03:
                owner += pick(_DEGREES)

        # Where: the place of business, and where the owner's KTP was first issued.
        place = coast[int(rand() * n_coast)] if kind.fish and rand() < 0.7 else places[int(rand() * n_places)]
        kecamatan, kelurahan = place.spellings[int(rand() * len(place.spellings))]
        if rand() < _NIK_IN_KUPANG.get(origin_key, _NIK_IN_KUPANG_DEFAULT):
            region = place.nik_prefix if rand() < _NIK_SAME_KECAMATAN else kupang_regions[int(rand() * n_kupang)]
        else:
            region = pick(origin.home_regions)

        # NIK: region, day of birth (+40 for women), serial.
        k = (i * nik_a + nik_b) % nik_mod
        day, serial = divmod(k, _SERIALS)
        serial = (serial + nik_f[day]) % _SERIALS
        day = (day + nik_g[serial]) % _DAYS
        born_iso, ddmmyy_man, ddmmyy_woman = births[age - MIN_AGE][day]
        nik = f"{region}{ddmmyy_woman if woman else ddmmyy_man}{serial + 1:04d}"

        # Phone.
        k = (i * phone_a + phone_b) % phone_mod
        hi, lo = divmod(k, 10**4)
        lo = (lo + phone_f[hi]) % 10**4
        hi = (hi + phone_g[lo]) % 10**4
        prefix = _PREFIXES[int(rand() * 10_000)]
        head = f"{hi:04d}"
        if prefix in _LONG_NUMBERS and rand() < 0.5:
            head = f"{int(rand() * 9) + 1}{head}"
        tail = f"{lo:04d}"
        form = _PHONE_FORMS[int(rand() * 1_000)]
        if form == "plain":
            phone = f"0{prefix}{head}{tail}"
        elif form == "dashes":
            phone = f"0{prefix}-{head}-{tail}"
        elif form == "spaces":
            phone = f"0{prefix} {head} {tail}"
        elif form == "intl_spaces":
            phone = f"+62 {prefix} {head} {tail}"
        elif form == "intl":
            phone = f"+62{prefix}{head}{tail}"
        else:
            phone = f"62{prefix}{head}{tail}"

        # Business name.
        before, after, brand_kind = kind.names[int(rand() * 1_000)]
        if brand_kind == "none":
            brand = ""
        else:
            if brand_kind == "any":
                brand_kind = _BRAND_KINDS[int(rand() * 1_000)]
            elif brand_kind == "modern":
                brand_kind = _MODERN_BRAND[int(rand() * 1_000)]
            if brand_kind == "titled":
                title = _TITLES[(woman, band)]
                brand = f"{title[int(rand() * 1_000)]} {nick}"
            elif brand_kind == "good":
                brand = _GOOD_NAMES[int(rand() * len(_GOOD_NAMES))]
            elif brand_kind == "place":
                brand = place.kelurahan
            elif brand_kind == "nick":
                brand = nick
            else:
                brand = _MODERN_NAMES[int(rand() * len(_MODERN_NAMES))]
        business = f"{before}{brand}{after}"

        # Address.
        form = _ADDRESS_FORMS[int(rand() * 1_000)]
        u = rand()
        number = 1 + int(u * u * 150)
        u = rand()
        rt = 1 + int(u * u * 40)
        rw = 1 + int(rand() * 12)
        if form == "full":
            address = f"Jl. {_STREETS[int(rand() * 1_000)]} No. {number}, RT {rt:03d}/RW {rw:03d}"
        elif form == "lane":
            address = (
                f"Jl. {_STREETS[int(rand() * 1_000)]}, Gg. {_LANES[int(rand() * len(_LANES))]} No. {number}, "
                f"RT {rt:03d}/RW {rw:03d}"
            )
        elif form == "sloppy":
            address = f"Jl. {_STREETS[int(rand() * 1_000)]} RT {rt:02d} RW {rw:02d}"
        elif form == "rt_only":
            address = f"RT {rt:03d}/RW {rw:03d}, Kel. {place.kelurahan}"
        elif form == "street_only":
            address = f"Jl. {_STREETS[int(rand() * 1_000)]} No. {number}"
        else:
            address = ""

        # Money: scale, then sales (running businesses) or capital only (new ones).
        u = rand()
        scale = 2 if u < _MEDIUM else (1 if u < _MEDIUM + _SMALL else 0)
        new_business = rand() < _CAPITAL_ONLY
        if new_business:
            sales = ""
            if scale:
                low, high = _CAPITAL_RANGE[scale]
                capital_amount = _log_uniform(rand(), low, high, 10 * _JUTA)
            else:
                amount = math.exp(math.log(15 * _JUTA) + 1.0 * gauss())
                capital_amount = min(900 * _JUTA, max(_JUTA, round(amount / 500_000) * 500_000))
            capital = str(capital_amount)
        else:
            if scale:
                low, high = _SALES_RANGE[scale]
                sales_amount = _log_uniform(rand(), low, high, 10 * _JUTA)
            else:
                monthly = math.exp(_MICRO_MONTHLY_MU + _MICRO_MONTHLY_SIGMA * gauss())
                if rand() < 0.6:  # "5 juta a month": twelve times a round monthly figure
                    step = 100_000 if monthly < 5 * _JUTA else (500_000 if monthly < 20 * _JUTA else _JUTA)
                    sales_amount = round(monthly / step) * step * 12
                else:  # a round yearly figure
                    sales_amount = round(monthly * 12 / (5 * _JUTA)) * 5 * _JUTA
                sales_amount = min(_MICRO_SALES[1], max(_MICRO_SALES[0], sales_amount))
            sales = _dotted(sales_amount) if rand() < _DOTTED else str(sales_amount)
            if rand() < _CAPITAL_TOO:
                if scale:
                    low, high = _CAPITAL_RANGE[scale]
                    capital = str(_log_uniform(rand(), low // 4, high, 10 * _JUTA))
                else:
                    share = 0.05 + 0.45 * rand()
                    capital = str(min(900 * _JUTA, max(_JUTA, round(sales_amount * share / 500_000) * 500_000)))
            else:
                capital = ""

        # NIB.
        if rand() < (nib_new if new_business else nib_running):
            k = (i * nib_a + nib_b) % nib_mod
            hi, lo = divmod(k, 10**6)
            lo = (lo + (hi * hi + nib_c * hi + nib_d) % 10**6) % 10**6
            hi = (hi + (lo * lo + nib_d * lo + nib_c) % 10**6) % 10**6
            nib = f"{int(rand() * 9) + 1}{hi:06d}{lo:06d}"
        else:
            nib = ""

        yield (
            business,
            owner,
            nik,
            "P" if woman else "L",
            born_iso,
            phone,
            pick(kind.kbli),
            "2020",
            kecamatan,
            kelurahan,
            address,
            capital,
            sales,
            nib,
            "",
        )

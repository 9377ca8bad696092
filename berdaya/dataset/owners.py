"""Who owns a business: names as NTT gives them, where families come from and where their KTPs were issued, ages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from berdaya.dataset.lookup import Rand, lookup_table

REFERENCE_DATE = date(2025, 10, 1)
"""Owners' ages (17 to 70) are ages on this day: 1 October 2025, the date of the seed articles."""

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
@dataclass(frozen=True, slots=True)  # not a NamedTuple: slot reads are cheaper, and this is read every row
class _Origin:
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
ORIGIN_TABLE = lookup_table([("timor", 28), ("rote", 24), ("flores", 17), ("sabu", 15), ("belu", 6), ("other", 10)])
_NIK_IN_KUPANG = {"other": 0.45}  # share of owners of each origin whose KTP was first issued in Kota Kupang
_NIK_IN_KUPANG_DEFAULT = 0.78
_IN_KUPANG = {origin: _NIK_IN_KUPANG.get(origin, _NIK_IN_KUPANG_DEFAULT) for origin in _ORIGINS}  # one lookup a row
_NIK_SAME_KECAMATAN = 0.65  # of those, share whose KTP came from the kecamatan they trade in now

# Given names too common to call someone by: "Bu Aminah", not "Bu Siti".
_COMMON_GIVEN = frozenset({"Siti", "Nur", "Muhammad", "Abdul", "Ahmad", "Ni Made", "Ni Luh", "I Made", "I Ketut"})

_INITIALS = "ABDEFHJKLMNRSTY"
_DEGREES = (", S.Pd", ", S.E.", ", A.Md", ", S.H.", ", S.Kom")

# Age on REFERENCE_DATE, 17 to 70: most owners 30 to 50, about 27% youth (16-30, UU 40/2009).
_AGE_BANDS = ((17, 20, 3.0), (21, 25, 9.0), (26, 30, 15.0), (31, 35, 14.0), (36, 40, 13.0), (41, 45, 12.0),
              (46, 50, 11.0), (51, 55, 9.0), (56, 60, 7.0), (61, 65, 4.5), (66, 70, 2.5))
MIN_AGE, MAX_AGE = 17, 70
AGE_TABLE = lookup_table([(age, w / (hi - lo + 1)) for lo, hi, w in _AGE_BANDS for age in range(lo, hi + 1)], 10_000)
# Owners born after 1980 more often have the newer given names (_WOMEN_YOUNG, _MEN_YOUNG): the chance by age,
# worked out once here rather than for every row.
_YOUNG_NAMES = {age: min(0.7, max(0.0, (REFERENCE_DATE.year - age - 1980) / 25)) for age in range(MIN_AGE, MAX_AGE + 1)}

TITLES = {  # (woman, age band) -> how Kupang calls the owner in a business name
    (True, 0): lookup_table([("Kaka", 4), ("Nona", 3), ("Mama", 1)]),
    (True, 1): lookup_table([("Mama", 8), ("Ibu", 3), ("Tanta", 2), ("Ina", 1), ("Bu", 1)]),
    (True, 2): lookup_table([("Oma", 5), ("Mama", 3), ("Ibu", 1)]),
    (False, 0): lookup_table([("Kaka", 5), ("Nyong", 1), ("Om", 1)]),
    (False, 1): lookup_table([("Om", 5), ("Bapa", 3), ("Pak", 2)]),
    (False, 2): lookup_table([("Opa", 4), ("Bapa", 2), ("Om", 2)]),
    (True, 3): lookup_table([("Ibu", 4), ("Bu", 4), ("Mama", 1)]),  # owners from outside NTT
    (False, 3): lookup_table([("Pak", 5), ("Mas", 2), ("Om", 1)]),
}
# fmt: on


def owner_name(rand: Rand, age: int, origin: str, woman: bool) -> tuple[str, str, int]:
    """The owner's full name, the nickname a business may be named after, and the band of TITLES Kupang would
    call them by."""
    # Lookups are written out (table[int(rand() * len(table))]) rather than through a helper: this runs for
    # every row of million-row benchmark lists.
    if origin == "other":
        pairs = _OTHER_WOMEN if woman else _OTHER_MEN
        given, second = pairs[int(rand() * len(pairs))]
        return f"{given} {second}", (second if given in _COMMON_GIVEN else given), 3
    young_names = rand() < _YOUNG_NAMES[age]
    if woman:
        names: tuple[tuple[str, tuple[str, ...]], ...] = _WOMEN_YOUNG if young_names else _WOMEN
    else:
        names = _MEN_YOUNG if young_names else _MEN
    given, nicks = names[int(rand() * len(names))]
    nick = nicks[int(rand() * len(nicks))]
    surnames = _ORIGINS[origin].surnames
    surname = surnames[int(rand() * len(surnames))]
    u = rand()
    if u < 0.10 and " " not in given:
        owner = f"{given} {_INITIALS[int(rand() * len(_INITIALS))]}. {surname}"
    else:
        owner = f"{given} {surname}"
    if rand() < 0.03:
        owner += _DEGREES[int(rand() * len(_DEGREES))]
    return owner, nick, 0 if age <= 30 else (2 if age > 55 else 1)


def ktp_region(rand: Rand, origin: str, trading_region: str, kupang_regions: tuple[str, ...]) -> str:
    """The Kemendagri code that opens the owner's NIK: where their KTP was first issued. `trading_region` is the
    kecamatan they trade in now, `kupang_regions` a lookup table of all the city's kecamatan."""
    if rand() < _IN_KUPANG[origin]:
        return trading_region if rand() < _NIK_SAME_KECAMATAN else kupang_regions[int(rand() * len(kupang_regions))]
    home_regions = _ORIGINS[origin].home_regions
    return home_regions[int(rand() * len(home_regions))]

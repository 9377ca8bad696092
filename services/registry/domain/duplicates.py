"""Probable duplicates: the same owner (NIK or phone) with a similar business name, entered twice."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from shared.errors import Conflict

_GENERIC_WORDS = frozenset(
    "ud cv pt toko warung kios usaha kedai depot rumah makan rm ibu bapak bpk bu pak mama mlater om tanta".split()
)


_NOT_NAME = re.compile(r"[^a-z0-9 ]")
_NOT_A_LETTER_OR_DIGIT = re.compile(r"[\W_]")  # of any script

# How an import and a registration recognise a business: the owner's NIK digest, `business_name_key` (stored with
# the business, and looked up) and `name_identity`.
Identity = tuple[bytes, str, str]


def _without_generic_words(text: str) -> str:
    words = text.split()
    kept = [w for w in words if w not in _GENERIC_WORDS]
    return " ".join(kept or words)


def business_name_key(name: str) -> str:
    """A business name reduced to its ASCII letters and digits, with no case, punctuation or generic words like
    'UD' or 'Warung': the key stored with every business (`name_key`) and looked up. It leaves names in other
    scripts alike ("豆花" and "珍珠" are both ''): `name_identity` tells them apart."""
    return _without_generic_words(_NOT_NAME.sub(" ", name.lower()))


def spelled_alike(a: str, b: str) -> bool:
    """The same words, whatever their case, width or punctuation: "warung ani" and "Warung Ani." are one name spelled
    two ways; "Warung Ani" and "Kios Ani" share an identity, yet may be two of the owner's businesses."""
    return _words(a) == _words(b)


def _words(name: str) -> str:
    if name.isascii():
        return " ".join(_NOT_NAME.sub(" ", name.lower()).split())
    return " ".join(_letters(unicodedata.normalize("NFKC", name).casefold()).split())


def _letters(folded: str) -> str:
    """Letters, digits and the marks on them, of any script; anything else a space."""
    kept: list[str] = []
    for c in folded:
        kind = unicodedata.category(c)
        if c in _UNSEEN:
            continue
        if kind[0] in "LN" or (kind in ("Mn", "Mc") and kept and kept[-1] != " "):
            kept.append(c)
        else:  # punctuation, symbols, and marks on none of them (an emoji's, a keycap's)
            kept.append(" ")
    return "".join(kept)


def name_identity(name: str) -> str:
    """A business name reduced to its letters, marks and digits of any script, without case, width, punctuation or
    generic words: "Warung 豆花" reads as "豆花", "ＵＤ Kafé" as "kafé". The same as `business_name_key` for a name of
    ASCII characters only. Marks are kept: Thai ร้านข้าว (a rice shop) and ร้านขาว, Javanese ꦱꦶꦠꦶ and ꦱꦸꦠꦸ, differ
    by a vowel sign alone."""
    if name.isascii():
        return business_name_key(name)
    folded = unicodedata.normalize("NFKC", name).casefold()
    return _without_generic_words(_letters(folded)) or folded.strip()


# Characters drawn as nothing that a name keeps (its cleaning takes out the format characters only): variation
# selectors (a keyboard adds U+FE0F after ❤ or not), the combining grapheme joiner, Mongolian selectors, Hangul fillers.
_UNSEEN = frozenset(chr(c) for c in (0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810), 0x3164,
                                     *range(0xFE00, 0xFE10), 0xFFA0, *range(0xE0100, 0xE01F0)))  # fmt: skip


def repeated_row(first_line: int) -> str:
    """Why an import's row about a business an earlier row of the file named is refused (`import.repeated_row`)."""
    return (f"the same business as line {first_line} of this import (the same owner and name, once case, punctuation "
            "and words like 'Warung' or 'Ibu' are left out): a list gives each business once; keep the row that is "
            "right and remove the other, or give this one a name of its own")


def business_identity(nik_digest: bytes, name: str, name_key: str | None = None) -> Identity:
    """Both keys: the stored one finds the owner's businesses whose name may be this one, the other says which is.
    A stored business passes the key it was stored with."""
    key = business_name_key(name) if name_key is None else name_key
    return nik_digest, key, key if name.isascii() else name_identity(name)


def _compared(name: str) -> str:
    """What duplicate detection compares: letters and digits of any script, without case, accents, width or
    invisible characters ("ＳＥＩ Sapí" reads as "sei sapi"). Looser than `name_identity`, as a probable duplicate is."""
    if name.isascii():
        return business_name_key(name)
    folded = "".join(c for c in unicodedata.normalize("NFKD", name) if unicodedata.category(c) not in ("Mn", "Cf"))
    return _without_generic_words(_NOT_A_LETTER_OR_DIGIT.sub(" ", folded.casefold()))


def name_similarity(a: str, b: str) -> float:
    return fuzz.token_set_ratio(_compared(a), _compared(b))


@dataclass(frozen=True, slots=True)
class DuplicateCandidate:
    business_id: uuid.UUID
    business_name: str
    same_nik: bool
    same_phone: bool
    status: str
    import_line: int | None = None  # set when the candidate is an earlier row of the same import
    kecamatan_code: str | None = None  # where it is registered (an earlier row of the import: the caller's own)
    # What duplicate detection compares, made once: an import checks each row against every earlier one of the same
    # owner or phone.
    compared: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compared", _compared(self.business_name))


# A phone given for more businesses than this is an office's, a market's or a family's shared number: it says nothing
# of whose business is whose, and comparing each row of an import with each of them grew with their square (5,000
# rows of one phone with long names: over a minute, holding the import's locks). No owner (NIK) runs this many
# either; of theirs, the latest are compared.
MOST_COMPARED = 100


def comparable(same_nik: Sequence[DuplicateCandidate],
               same_phone: Sequence[DuplicateCandidate]) -> list[DuplicateCandidate]:  # fmt: skip
    """The businesses a new one's name is compared with: its owner's latest, and those sharing its phone unless that
    phone is shared more widely than `MOST_COMPARED`."""
    chosen = {c.business_id: c for c in same_nik[-MOST_COMPARED:]}
    if len(same_phone) <= MOST_COMPARED:
        for c in same_phone:
            chosen.setdefault(c.business_id, c)
    return list(chosen.values())


def probable_duplicate(name: str, candidates: list[DuplicateCandidate], similarity: float) -> DuplicateCandidate | None:
    """The same NIK or the same phone with a similar business name: probably the same business entered twice (the
    most similar, the first of those as similar). `candidates` are those `comparable` chose."""
    same_owner = [c for c in candidates if c.same_nik or c.same_phone]
    if not same_owner:
        return None
    # rapidfuzz's own loop: an import of thousands of rows sharing one phone compares each with every earlier one.
    # Its cutoff, rounded in its own arithmetic, refuses a score a little over it (93.33 for a cutoff of 93.33): it
    # only saves work on names far below, and the threshold itself is kept here, as for one comparison.
    best = process.extractOne(_compared(name), [c.compared for c in same_owner],
                              scorer=fuzz.token_set_ratio, score_cutoff=max(similarity - 1, 0))  # fmt: skip
    return same_owner[best[2]] if best and best[1] >= similarity else None


def duplicate_conflict(candidate: DuplicateCandidate, outside_scope: bool = False) -> Conflict:
    """`outside_scope`: the candidate is registered where the caller may not act, so it is not named: an officer of
    one kecamatan could otherwise learn which business, and where, an owner's NIK or phone belongs to."""
    basis = "NIK" if candidate.same_nik else "phone number"
    if outside_scope:
        return Conflict(
            f"probably the same business as one registered outside the kecamatan your token allows: same owner {basis} "
            "and a similar name. Ask an officer of the city; if it really is another business, send again with "
            "confirm_distinct=true",
            "probable_duplicate",
        )
    where = f"line {candidate.import_line} of this import" if candidate.import_line else str(candidate.business_id)
    return Conflict(
        f"probably the same business as {candidate.business_name!r} ({where}, {candidate.status}): "
        f"same owner {basis} and a similar name. If it really is another business, send again with "
        "confirm_distinct=true",
        "probable_duplicate",
        {"existing_business_id": str(candidate.business_id), "existing_business_name": candidate.business_name},
    )

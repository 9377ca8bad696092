"""Who the owner is: the NIK's structure cross-checked with the form, Indonesian mobile numbers, and the NIB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from shared.errors import InvalidInput

# Kemendagri province codes, including the 2022 Papua provinces.
PROVINCES = frozenset(
    "11 12 13 14 15 16 17 18 19 21 31 32 33 34 35 36 51 52 53 61 62 63 64 65 71 72 73 74 75 76 81 82 91 92 93 94 95 96".split()
)


# Digits are 0-9 only: Python's \d also matches other scripts' digits (Arabic-Indic, full-width), and a NIK written
# in them would be a different string, so its digest would miss the same NIK already registered.
_SEPARATORS = re.compile(r"[\s.-]")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_NIK = re.compile(r"[0-9]{16}")
_NIB = re.compile(r"[0-9]{13}")


@dataclass(frozen=True, slots=True)
class Nik:
    digits: str

    @property
    def region(self) -> str:
        """Province, regency/city and kecamatan where the NIK was first issued (not where the owner lives now)."""
        return self.digits[:6]

    @property
    def masked(self) -> str:
        return f"{self.digits[:4]}********{self.digits[12:]}"


def check_nik(raw: str, birth_date: date, gender: str) -> Nik:
    """Structure per Permendagri: PPKKCC DDMMYY SSSS, women's day of birth + 40; cross-checked with the form."""
    nik = _SEPARATORS.sub("", raw)

    def bad(code: str, message: str) -> InvalidInput:
        return InvalidInput.one("owner_nik", code, message)

    if not _NIK.fullmatch(nik):
        raise bad("nik.format", "NIK must be exactly 16 digits; copy it from the owner's KTP")
    if nik[:2] not in PROVINCES:
        raise bad("nik.province", f"NIK starts with {nik[:2]}, which is not an Indonesian province code")
    if nik[2:4] == "00" or nik[4:6] == "00":
        raise bad("nik.region", "NIK digits 3-6 (regency/city and kecamatan) cannot be 00")
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    is_woman = day > 40
    if is_woman:
        day -= 40
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise bad("nik.birth_date", "NIK digits 7-12 are not a valid date of birth (DDMMYY, +40 on the day for women)")
    if nik[12:] == "0000":
        raise bad("nik.serial", "NIK serial (last 4 digits) cannot be 0000")
    if (day, month, year) != (birth_date.day, birth_date.month, birth_date.year % 100):
        raise bad(
            "nik.birth_date_mismatch",
            f"NIK says born {day:02d}-{month:02d}-{year:02d} but owner_birth_date is {birth_date:%d-%m-%y}; "
            "check both against the KTP",
        )
    if is_woman != (gender == "P"):
        said = "a woman (day of birth + 40)" if is_woman else "a man"
        raise bad("nik.gender_mismatch", f"NIK marks the owner as {said} but owner_gender is {gender}; check the KTP")
    return Nik(nik)


def normalise_phone(raw: str) -> str:
    """An Indonesian mobile number in E.164 (+628...): 08..., 628..., +62 8..., with any spacing or dashes."""
    digits = _PHONE_SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.startswith("62"):
        national = digits[2:].removeprefix("0")  # "+62 0812..." is a common way of writing it
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        national = digits
    if not (national.isascii() and national.isdigit()):
        raise InvalidInput.one("phone", "phone.format", "phone may contain only digits, spaces, dashes and a leading +")
    if not national.startswith("8") or national[:2] == "84":
        raise InvalidInput.one(
            "phone", "phone.not_mobile", "a mobile number (08...) is needed so the owner can get messages; landlines can't"
        )
    if not 9 <= len(national) <= 12:
        raise InvalidInput.one("phone", "phone.length", "an Indonesian mobile number has 10 to 13 digits starting 08")
    return f"+62{national}"


def check_nib(raw: str, field_name: str = "nib") -> str:
    nib = _SEPARATORS.sub("", raw)
    if not _NIB.fullmatch(nib):
        raise InvalidInput.one(field_name, "nib.format", "NIB must be exactly 13 digits, as printed by OSS")
    return nib

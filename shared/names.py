"""Names people type (a business, its owner, a sponsor): kept as typed, less the characters no one can see."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator


# Longer than any name, invisible characters and all: left as it is for the field's length check to refuse, rather
# than normalised a character at a time (a 10 MB name held the event loop for seconds).
LONGEST_CLEANED = 1_000


def without_invisibles(value: Any) -> Any:
    """NFC, no format characters (zero-width spaces and joiners, byte-order marks, bidirectional overrides), and any
    run of whitespace as one space: "Se\u200bi Sapi" and "Sei Sapi" must be one name to duplicate detection, and a
    name must read as it is stored."""
    if not isinstance(value, str) or len(value) > LONGEST_CLEANED:
        return value
    if value.isascii():
        # Most names; ASCII is its own NFC and holds no format character. Looking at each character's category
        # cost an import of 17,000 rows a tenth of its time.
        return " ".join(value.split())
    return _general(value)


def _general(value: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFC", value) if unicodedata.category(c) != "Cf")
    return " ".join(text.split())


def _has_letters_or_digits(value: str) -> str:
    if not any(c.isalnum() for c in value):
        raise ValueError("must contain letters or digits")
    return value


Name = Annotated[str, BeforeValidator(without_invisibles), AfterValidator(_has_letters_or_digits)]

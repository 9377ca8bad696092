"""Phone numbers as gateways write them, and as logs and operators may see them."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[^0-9]")
_MOBILE = re.compile(r"08[0-9]{8,11}")
_EMAIL = re.compile(r"^([^@\s]{1,64})@([^@\s]{1,255})$")


def normalise(raw: str) -> str | None:
    """An Indonesian mobile in any of the ways gateways write it (08..., 628..., +628..., 8...) as +628...; None when it
    is not one (10 to 13 digits after the leading 0, as the registry validates)."""
    digits = _DIGITS.sub("", raw or "")
    if digits.startswith("62"):
        digits = "0" + digits[2:]
    elif digits.startswith("8"):
        digits = "0" + digits
    if not _MOBILE.fullmatch(digits):
        return None
    return "+62" + digits[1:]


def wa_id(phone: str) -> str:
    """The Cloud API's recipient form: digits with the country code, no plus."""
    return _DIGITS.sub("", phone)


def mask(address: str) -> str:
    """Enough for an operator to tell two numbers (or mailboxes) apart, not to call or write to either: a phone keeps
    its last three digits, an email address its first letter and its domain."""
    email = _EMAIL.match(address)
    if email:
        return f"{email.group(1)[0]}***@{email.group(2)}"
    return "*" * max(0, len(address) - 3) + address[-3:]


_PHONE_LIKE = re.compile(r"\+?\d[\d ()-]{6,}\d")
_EMAIL_LIKE = re.compile(r"[^@\s<>()\[\]:;,\"']{1,64}@[A-Za-z0-9.-]{1,255}")


def redact(text: str) -> str:
    """Mask anything shaped like a phone number or an email address in text from a gateway (an error message may
    quote the recipient: "550 5.1.1 <budi@...>: Recipient address rejected") before it is stored as a reason or
    logged: operators read reasons, and see addresses masked everywhere else."""
    text = _EMAIL_LIKE.sub(lambda m: mask(m.group(0)), text)
    return _PHONE_LIKE.sub(lambda m: mask(_DIGITS.sub("", m.group(0))), text)

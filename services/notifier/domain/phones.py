"""Phone numbers as gateways write them, and as logs and operators may see them."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[^0-9]")
_MOBILE = re.compile(r"08[0-9]{8,11}")
_EMAIL = re.compile(r"^([^@\s]{1,64})@([^@\s]{1,255})$")


def normalise(raw: str) -> str | None:
    """An Indonesian mobile written as 08..., 62... or +62... (spaces, dots and dashes allowed) as +628...; None when
    it is not one (10 to 13 digits after the leading 0, as the registry validates). Nothing else is read as
    Indonesian: a number written without its country code but for a leading 8 may be another country's in E.164
    without its "+" (WhatsApp writes Hong Kong's +852 1234 5678 as 85212345678), and taking it for 0852... would let
    a stranger answer for an owner or page one."""
    text = (raw or "").strip()
    digits = _DIGITS.sub("", text)
    if text.startswith("+") and not digits.startswith("62"):
        return None  # E.164 of another country
    local = "0" + digits[2:] if digits.startswith("62") else digits
    if not _MOBILE.fullmatch(local):
        return None
    return "+62" + local[1:]


def from_wa_id(wa_id: str) -> str | None:
    """The sender of a WhatsApp message (the Cloud API's `from`: digits with the country code, no plus) as +628...;
    None unless it is an Indonesian mobile, i.e. starts with 62."""
    if not wa_id.isascii() or not wa_id.isdigit() or not wa_id.startswith("62"):
        return None
    return normalise("+" + wa_id)


def sms_number(phone: str) -> str | None:
    """The number as an Indonesian SMS gateway takes it (08...), for an Indonesian mobile (+62...) only: the gateways
    reach Indonesian numbers, and another country's number cut to fit would reach a stranger here."""
    if not phone.startswith("+62") or normalise(phone) != phone:
        return None
    return "0" + phone[3:]


def sms_reaches(phone: str) -> bool:
    return sms_number(phone) is not None


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

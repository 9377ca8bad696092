"""Bearer tokens: JWTs signed with a configured key, carrying the caller's roles and what they may act for."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ROLES = frozenset({"officer", "operator", "sponsor", "trainer", "viewer", "admin"})
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. A sponsor acts only for the sponsor its token names; an officer whose token names kecamatan
    acts only for businesses there (no kecamatan: the whole city)."""

    subject: str
    roles: frozenset[str]
    sponsor_id: uuid.UUID | None = None
    kecamatan_codes: frozenset[str] = frozenset()

    def has_any(self, roles: frozenset[str] | set[str]) -> bool:
        return bool(self.roles & roles) or "admin" in self.roles

    @property
    def may_see_personal_data(self) -> bool:
        """Owners' names, phones and masked NIKs: officers only, who work with owners. Admins and operators run the
        system and have no need to know."""
        return "officer" in self.roles

    def acts_for_sponsor(self, sponsor_id: uuid.UUID) -> bool:
        return "admin" in self.roles or (self.sponsor_id is not None and self.sponsor_id == sponsor_id)

    @property
    def limited_to_kecamatan(self) -> bool:
        """The token names the kecamatan it acts in (an admin's never limits it)."""
        return bool(self.kecamatan_codes) and "admin" not in self.roles

    def acts_in_kecamatan(self, code: str) -> bool:
        return not self.limited_to_kecamatan or code in self.kecamatan_codes

    @property
    def actor(self) -> str:
        """How this caller is named in events' metadata and the audit trail."""
        return self.subject


class InvalidToken(Exception):
    pass


# How far the clock of the machine that minted a token may be from the service's: a token from a laptop a few
# seconds ahead was refused as issued in the future.
CLOCK_SKEW = timedelta(seconds=30)
KECAMATAN_CODE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}")  # ASCII digits: \d takes ٥ and ５ too


class TokenService:
    def __init__(self, secret: str, issuer: str = "berdaya") -> None:
        self._secret = secret
        self._issuer = issuer

    def mint(
        self,
        subject: str,
        roles: Iterable[str],
        ttl: timedelta = timedelta(hours=8),
        *,
        sponsor_id: uuid.UUID | None = None,
        kecamatan: Iterable[str] = (),
    ) -> str:
        roles = list(roles)
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; choose from {sorted(ROLES)}")
        if "sponsor" in roles and sponsor_id is None:
            raise ValueError("a sponsor token must name the sponsor it acts for (--sponsor <sponsor id>)")
        if not subject.strip():
            raise ValueError("a token must name whom it is for (--subject, e.g. maria@kupangkota.go.id): what one "
                             "trainer or sponsor may do, Idempotency-Keys and the audit trail go by it")  # fmt: skip
        wrong = sorted(c for c in kecamatan if not KECAMATAN_CODE.fullmatch(c))
        if wrong:
            raise ValueError(f"kecamatan {wrong} are not Kemendagri codes such as 53.71.04 (Oebobo)")
        now = datetime.now(UTC)
        claims: dict[str, object] = {"sub": subject, "roles": sorted(roles), "iss": self._issuer, "iat": now, "exp": now + ttl}
        if sponsor_id is not None:
            claims["sponsor"] = str(sponsor_id)
        if kecamatan:
            claims["kecamatan"] = sorted(set(kecamatan))
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "iss", "sub"]},
                leeway=CLOCK_SKEW,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired; mint a new one (berdaya token)") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("invalid token: roles must be a list of strings")
        sponsor = claims.get("sponsor")
        try:
            sponsor_id = uuid.UUID(sponsor) if sponsor is not None else None
        except (TypeError, ValueError, AttributeError):
            raise InvalidToken("invalid token: sponsor must be a sponsor id") from None
        kecamatan = claims.get("kecamatan", [])
        if not isinstance(kecamatan, list) or not all(isinstance(k, str) and KECAMATAN_CODE.fullmatch(k)
                                                      for k in kecamatan):  # fmt: skip
            # An empty code would let the token act on what no kecamatan holds (a contact the notifier can't place).
            raise InvalidToken("invalid token: kecamatan must be a list of Kemendagri codes")
        return Principal(subject=str(claims["sub"]), roles=frozenset(roles) & ROLES, sponsor_id=sponsor_id,
                         kecamatan_codes=frozenset(kecamatan))  # fmt: skip

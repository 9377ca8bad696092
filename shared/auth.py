"""Bearer tokens: JWTs signed with a configured key, carrying the caller's roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ROLES = frozenset({"officer", "operator", "sponsor", "trainer", "viewer", "admin"})
# Who may read owners' personal data (names, phone numbers, masked NIK).
PERSONAL_DATA_ROLES = frozenset({"officer", "admin"})
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str] | set[str]) -> bool:
        return bool(self.roles & roles) or "admin" in self.roles

    @property
    def may_see_personal_data(self) -> bool:
        return self.has_any(PERSONAL_DATA_ROLES)


class InvalidToken(Exception):
    pass


class TokenService:
    def __init__(self, secret: str, issuer: str = "berdaya") -> None:
        self._secret = secret
        self._issuer = issuer

    def mint(self, subject: str, roles: list[str], ttl: timedelta = timedelta(hours=8)) -> str:
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; choose from {sorted(ROLES)}")
        now = datetime.now(UTC)
        claims = {"sub": subject, "roles": sorted(roles), "iss": self._issuer, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired; mint a new one (berdaya token)") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("invalid token: roles must be a list of strings")
        return Principal(subject=str(claims["sub"]), roles=frozenset(roles) & ROLES)

"""Errors that domain code raises and every service's HTTP layer turns into the same clear responses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str  # machine-readable, e.g. "nik.birth_date_mismatch"; lets a UI translate
    message: str  # says what is wrong and what to do

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class InvalidInput(ValueError):
    """One or more fields are wrong; answered with 422 naming each field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, field: str, code: str, message: str) -> InvalidInput:
        return cls([FieldError(field, code, message)])


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    """The caller is who they say, but may not act on this object (another sponsor's pledge, another kecamatan)."""


@dataclass
class Conflict(Exception):
    """The request clashes with existing state (409); `details` says with what."""

    message: str
    code: str
    details: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

"""The one envelope every Berdaya event travels in, and the base of every payload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

# Money is integer rupiah on the wire: strict, so 5e6 or "5000000" is refused rather than guessed at.
Rupiah = Annotated[int, Field(ge=0, strict=True)]
# What any form accepts: a quadrillion rupiah is far beyond any pledge or business, and far inside PostgreSQL's bigint.
MAX_RUPIAH = 10**15


class ContractError(ValueError):
    """A record that is not a valid Berdaya event; it belongs in a dead-letter topic, not a retry loop."""


class RecordRefused(ContractError):
    """Raised by a handler for a record that is wrong in itself and always will be (an outcome on another partner's
    topic, a date far in the future): once the batch is split, it is dead-lettered at its first attempt alone, with
    no backoff. Whoever can write to a topic must not be able to stall its consumer by writing such records."""


def _utc(value: datetime) -> datetime:
    # Checking the offset first skips a slow conversion for the common case of a time already in UTC.
    if value.utcoffset() == _ZERO:
        return value if value.tzinfo is UTC else value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00: a ValueError is what pydantic reports as the field's error
        raise ValueError(f"{value.isoformat()} is past the ends of the calendar in UTC") from None


_ZERO = timedelta(0)


class EventPayload(BaseModel):
    """Base of every payload: frozen, and tolerant of fields added later (adding an optional field is compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    aggregate_type: ClassVar[str]

    def aggregate_key(self) -> str:
        """The aggregate id this payload belongs to; it is also the Kafka key."""
        raise NotImplementedError

    def aggregate_version(self) -> int | None:
        """The aggregate's version after this event, where the aggregate counts its versions; consecutive, always."""
        return None


class Envelope(BaseModel):
    """What is on the wire: metadata for routing, tracing and idempotence, and the payload as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(description="Unique per event; consumers deduplicate on it.")
    event_type: str = Field(min_length=1, description="e.g. BusinessRegistered")
    event_version: int = Field(ge=1, description="Version of the payload schema for this event_type.")
    aggregate_type: str = Field(min_length=1, description="e.g. business")
    aggregate_id: str = Field(min_length=1, description="Also the Kafka key, so one aggregate's events stay in order.")
    occurred_at: AwareDatetime = Field(description="When the change happened, in UTC.")
    correlation_id: uuid.UUID = Field(description="The request or import that started this chain of events.")
    causation_id: uuid.UUID | None = Field(default=None, description="The event that caused this one, if any.")
    producer: str = Field(min_length=1, description="The service that wrote the event.")
    actor: str | None = Field(
        default=None, description="Who made the change: a token's subject, or the service itself for work done by time."
    )
    aggregate_version: int | None = Field(
        default=None, ge=1, description="The aggregate's version after this event, where it counts versions."
    )
    payload: dict[str, Any]

    _normalise_time = field_validator("occurred_at")(_utc)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Envelope:
        if raw is None:
            raise ContractError("record has no value")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise ContractError(f"not a Berdaya envelope: {summarise_validation_error(exc)}") from exc


def summarise_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
    )


def new_envelope(
    payload: EventPayload,
    *,
    producer: str,
    correlation_id: uuid.UUID,
    causation_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> Envelope:
    """The envelope for a payload this service made: the payload was validated when it was built, and the rest is
    this process's own typed values, so only what could still be wrong is checked (an empty key, a version below 1,
    a time without its zone). Validating the whole envelope again cost more than every other step of building it."""
    aggregate_id, aggregate_version = payload.aggregate_key(), payload.aggregate_version()
    if not aggregate_id:
        raise ValueError(f"{payload.event_type} has an empty aggregate key")
    if aggregate_version is not None and aggregate_version < 1:
        raise ValueError(f"{payload.event_type} has aggregate version {aggregate_version}; versions start at 1")
    if occurred_at is not None and occurred_at.utcoffset() is None:
        raise ValueError("occurred_at must say its time zone")
    if not producer:
        raise ValueError("an envelope needs its producer")
    return _unvalidated(
        event_id=event_id or uuid.uuid4(),
        event_type=payload.event_type,
        event_version=payload.event_version,
        aggregate_type=payload.aggregate_type,
        aggregate_id=aggregate_id,
        occurred_at=_utc(occurred_at) if occurred_at is not None else datetime.now(UTC),
        correlation_id=correlation_id,
        causation_id=causation_id,
        producer=producer,
        actor=actor,
        aggregate_version=aggregate_version,
        payload=payload.model_dump(mode="json"),
    )


_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)


def _unvalidated(**values: Any) -> Envelope:
    # What pydantic's model_construct() leaves behind, without its per-field default and alias handling, which
    # here cost as much as validation. Every field is given, so the set of fields given is all of them; a unit test
    # holds the result equal to a validated envelope, so a pydantic that stores models differently fails there.
    envelope = Envelope.__new__(Envelope)
    object.__setattr__(envelope, "__dict__", values)
    object.__setattr__(envelope, "__pydantic_fields_set__", set(_ENVELOPE_FIELDS))
    object.__setattr__(envelope, "__pydantic_extra__", None)
    object.__setattr__(envelope, "__pydantic_private__", None)
    return envelope


def event_headers(event_type: str, event_version: int, event_id: uuid.UUID | str) -> list[tuple[str, bytes]]:
    """Kafka headers that let a consumer route or filter without parsing the value."""
    return [
        ("event_type", event_type.encode()),
        ("event_version", str(event_version).encode()),
        ("event_id", str(event_id).encode()),
        ("content-type", b"application/json"),
    ]

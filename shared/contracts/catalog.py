"""Which payload model each (event_type, event_version) decodes to, and the upcasters that keep old records readable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.contracts.envelope import ContractError, Envelope, EventPayload, summarise_validation_error

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEvent(ContractError):
    """An event type this consumer has no contract for."""


class EventCatalog:
    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[EventPayload]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._latest: dict[str, int] = {}  # asked for every record a consumer reads

    def register(self, model: type[EventPayload]) -> type[EventPayload]:
        key = (model.event_type, model.event_version)
        if key in self._models:
            raise ValueError(f"{key} is registered twice")
        self._models[key] = model
        self._latest[model.event_type] = max(model.event_version, self._latest.get(model.event_type, 0))
        return model

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning a version-n payload into version n+1."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    def latest_version(self, event_type: str) -> int:
        latest = self._latest.get(event_type)
        if latest is None:
            raise UnknownEvent(f"unknown event type {event_type!r}")
        return latest

    def upcasted_versions(self) -> list[tuple[str, int]]:
        """(event type, version) of every older version that is still read, through its upcaster."""
        return sorted(self._upcasters)

    def models(self) -> list[type[EventPayload]]:
        return [self._models[k] for k in sorted(self._models)]

    def decode(self, envelope: Envelope) -> EventPayload:
        """The payload as the newest model of its type, upcasting older versions step by step."""
        event_type, version, data = envelope.event_type, envelope.event_version, envelope.payload
        latest = self.latest_version(event_type)
        if version > latest:
            raise UnknownEvent(f"{event_type} v{version} is newer than this consumer knows (v{latest})")
        while version < latest:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEvent(f"no upcaster from {event_type} v{version}")
            try:
                data, version = step(dict(data)), version + 1
            except Exception as exc:  # noqa: BLE001 - any failure is the record's, never worth a retry
                # An old record the upcaster can't read (a field missing, of another type): a contract error, so it
                # goes to the dead-letter topic. Escaping as a KeyError, it was redelivered forever.
                raise ContractError(f"{event_type} v{version} could not be upcast: {type(exc).__name__}: {exc}") from exc
        model = self._models.get((event_type, version))
        if model is None:
            raise UnknownEvent(f"unknown event {event_type} v{version}")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ContractError(f"{event_type} v{version} payload invalid: {summarise_validation_error(exc)}") from exc


CATALOG = EventCatalog()

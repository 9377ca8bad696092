"""The unit-of-work abstraction every service's handlers depend on; its fakes in unit tests subclass it too."""

from __future__ import annotations

import abc
from typing import Generic, Self, TypeVar

E = TypeVar("E")


class UnitOfWork(abc.ABC, Generic[E]):
    """One transaction: the changes and the events they cause are committed together, or neither is."""

    def __init__(self) -> None:
        self.events: list[E] = []

    def emit(self, *events: E) -> None:
        self.events.extend(events)

    async def __aenter__(self) -> Self:
        self.events = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rollback()  # after a commit there is nothing left to roll back; without one, nothing is kept

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def rollback(self) -> None: ...

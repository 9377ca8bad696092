"""The one question /ready and the consumers ask PostgreSQL: does it answer a trivial query now, and if not, why."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.db import Database


class _Answering(Database):
    def __init__(self, answer: Any = None, *, hangs: bool = False) -> None:
        super().__init__(pool=None)  # type: ignore[arg-type]
        self._answer, self._hangs = answer, hangs

    async def fetchval(self, query: str, *args: Any) -> Any:
        if self._hangs:
            await asyncio.sleep(60)
        if isinstance(self._answer, BaseException):
            raise self._answer
        return self._answer


async def test_a_database_that_answers_is_reachable():
    assert await _Answering(1).unreachable(1) is None


async def test_a_database_that_does_not_answer_in_time_says_how_long_it_was_given():
    assert await _Answering(hangs=True).unreachable(0.05) == "no answer to SELECT 1 within 0.05 s"


async def test_a_database_that_refuses_says_why():
    refused = OSError("Connect call failed ('10.20.0.7', 5432)")
    assert await _Answering(refused).unreachable(1) == "OSError: Connect call failed ('10.20.0.7', 5432)"

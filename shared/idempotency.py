"""Idempotency keys: a request sent again under its key (its answer lost to a timeout) gets what it made the first time.

A service keeps one row per thing made under a key, in a table of its own shaped `(actor, idempotency_key,
fingerprint, <id column>)` with the first two as its key. The key is claimed inside the transaction that makes the
thing, before the request is checked against today: a retry after midnight gets what was made, not a refusal. A
request refused afterwards rolls its claim back with it, so the key stays free.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Header
from pydantic import BaseModel

from shared.errors import Conflict

T = TypeVar("T")


def header(what: str) -> Any:
    """The `Idempotency-Key` request header of an endpoint that makes `what` ("pledge", "cohort"), as a type for the
    route's parameter (named at module level: routes' annotations are read as text)."""
    description = (f"Any printable ASCII but the space, of your choosing, new for each {what}: sending the same {what} "
                   f"again under it (say, after a timeout) gives the {what} made the first time; another {what} under "
                   "it is a 409")
    return Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                        pattern=r"^[\x21-\x7e]+$", description=description)]  # fmt: skip


def fingerprint(form: BaseModel) -> bytes:
    """What was asked for under a key: the same key sent with another form is refused."""
    return hashlib.sha256(form.model_dump_json().encode()).digest()


async def claim_row(conn: asyncpg.Connection, table: str, id_column: str, actor: str, key: str, asked: bytes,
                    new_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
    """The id made under `key` and what was asked for then: `new_id` and `asked` if this request is the first.
    The insert waits on a concurrent one of the same key; once that commits, the row is read (a new statement sees
    it), and if it rolled back this insert goes through. `table` and `id_column` are the caller's own names, never
    a client's."""
    if not (table.isidentifier() and id_column.isidentifier()):
        raise ValueError(f"not a table and column name: {table!r}, {id_column!r}")
    row = await conn.fetchrow(
        f"""INSERT INTO {table} (actor, idempotency_key, fingerprint, {id_column}) VALUES ($1, $2, $3, $4)
            ON CONFLICT DO NOTHING RETURNING {id_column} AS made, fingerprint""",
        actor, key, asked, new_id)  # fmt: skip
    if row is None:
        row = await conn.fetchrow(f"SELECT {id_column} AS made, fingerprint FROM {table}"
                                  " WHERE actor = $1 AND idempotency_key = $2", actor, key)  # fmt: skip
    return row["made"], bytes(row["fingerprint"])


# A store's claim of a key: (actor, key, fingerprint, new id) -> the id made under it and the fingerprint then.
Claim = Callable[[str, str, bytes, uuid.UUID], Awaitable[tuple[uuid.UUID, bytes]]]


async def made_before(claim: Claim, load: Callable[[uuid.UUID], Awaitable[T | None]], actor: str, key: str | None,
                      form: BaseModel, new_id: uuid.UUID, what: str) -> T | None:  # fmt: skip
    """None if the request has no key or is the first under it (it goes on to make `new_id`); else what was made the
    first time, as `load` reads it now. The key used before for something else is a 409 naming what it made."""
    if key is None:
        return None
    asked = fingerprint(form)
    made, first_asked = await claim(actor, key, asked, new_id)
    if made == new_id:
        return None
    if first_asked != asked:
        raise Conflict(f"Idempotency-Key {key!r} was used for another {what} ({made}); use a new key for a new {what}",
                       "idempotency_key_reused", {f"{what}_id": str(made)})  # fmt: skip
    earlier = await load(made)
    if earlier is None:  # the claim commits with what it made
        raise RuntimeError(f"Idempotency-Key {key!r} names {what} {made}, which is not stored")
    return earlier

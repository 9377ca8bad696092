"""Transactional outbox: events are written with the state change in one transaction; the relay (relay.py)
publishes them, and published rows are pruned after their retention."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence, Sized
from datetime import timedelta
from typing import NamedTuple

import asyncpg
from pydantic_core import to_json

from shared.contracts.envelope import Envelope
from shared.contracts.topics import PARTNER_AGGREGATES, PUBLIC_PREFIX, is_public, topic_for
from shared.db import Database, delete_in_batches
from shared.messaging import audit

log = logging.getLogger(__name__)

_COLUMNS = ("event_id", "aggregatetype", "aggregateid", "type", "event_version", "topic", "payload", "aggregate_version")
# From this many rows a COPY beats a multi-row INSERT.
COPY_FROM = 32


@functools.lru_cache(maxsize=1024)  # a handful of (type, topic) pairs, asked once per row written
def for_partners(aggregate_type: str, topic: str) -> bool:
    """Whether a partner may read what goes to `topic`: the public topics, and a partner's own (its referrals). The
    topic is looked at too, namespace and all, so an event routed to a partner's topic is caught whatever its type."""
    if is_public(aggregate_type) or aggregate_type in PARTNER_AGGREGATES:
        return True
    dotted = f".{topic}"
    return f".{PUBLIC_PREFIX}" in dotted or ".partner." in dotted


def _row(envelope: Envelope, topic: str) -> tuple:
    # Who made a change (a token's subject, often a person's e-mail) is kept in the audit trail, never sent to a
    # topic a partner may read: the public ones, or a partner's own (a withdrawal would name the officer). The
    # fields serialised as they are give the same bytes as model_dump_json(), without copying the envelope to blank
    # one field.
    fields = envelope.__dict__
    return (
        envelope.event_id,
        envelope.aggregate_type,
        envelope.aggregate_id,
        envelope.event_type,
        envelope.event_version,
        topic,
        to_json({**fields, "actor": None} if for_partners(envelope.aggregate_type, topic) else fields).decode(),
        envelope.aggregate_version,
    )


async def add_to_outbox(
    conn: asyncpg.Connection, envelopes: Iterable[Envelope], route: Callable[[Envelope], str] | None = None
) -> None:
    """Write events in the caller's transaction; they are published only if that transaction commits.

    Each goes to its aggregate's topic unless `route` says otherwise. `envelopes` may be an iterator that makes
    them as it goes: they are then copied as they come, and asyncpg sends each 512 kB of rows as it fills, so the
    database stores the first while the rest are made. Should making one fail, asyncpg aborts the COPY and the
    error reaches the caller, whose transaction then keeps none of them.
    """
    route = route or _own_topic
    if not isinstance(envelopes, Sized):
        await conn.copy_records_to_table("outbox", records=(_row(e, route(e)) for e in envelopes), columns=_COLUMNS)
        return
    rows = outbox_rows(envelopes, route)
    if not rows:
        return
    if len(rows) >= COPY_FROM:
        await conn.copy_records_to_table("outbox", records=rows, columns=_COLUMNS)
    else:
        await add_with_audit(conn, rows, [])


def _own_topic(envelope: Envelope) -> str:
    return topic_for(envelope.aggregate_type)


def outbox_rows(envelopes: Iterable[Envelope], route: Callable[[Envelope], str] | None = None) -> list[tuple]:
    route = route or _own_topic
    return [_row(e, route(e)) for e in envelopes]


# A few events and their audit rows in one statement, in the order given (the ids keep each aggregate's order).
_WITH_AUDIT = """
WITH written AS (
    INSERT INTO outbox (event_id, aggregatetype, aggregateid, type, event_version, topic, payload, aggregate_version)
    SELECT e, a, i, t, v, tp, p::json, av
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::int[])
           WITH ORDINALITY AS r(e, a, i, t, v, tp, p, av, n)
     ORDER BY n)
INSERT INTO audit (actor, action, aggregate_type, aggregate_id, event_id, correlation_id)
SELECT * FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::uuid[], $14::uuid[])"""


async def add_with_audit(conn: asyncpg.Connection, rows: Sequence[tuple], audit_rows: Sequence[tuple]) -> None:
    """Outbox rows (`outbox_rows`) and audit rows (`audit.rows_of`) in the caller's transaction, in one round trip: a
    unit of work with a few events wrote them in two, a sixth of its time (2 events: 900 -> 750 us, client CPU
    500 -> 400 us). A unit of work with many events copies them instead (`add_to_outbox`, `audit.record`).

    With no event, the outbox is not touched: an insert of no rows would still fire its statement triggers, waking
    every relay (NOTIFY) and locking the table against a migration, for an audit row alone (a NIK revealed)."""
    if not rows:
        await audit.add_rows(conn, audit_rows)
        return
    await conn.execute(_WITH_AUDIT, *_columns(rows, len(_COLUMNS)), *_columns(audit_rows, 6))


def _columns(rows: Sequence[tuple], width: int) -> list[Sequence[object]]:
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


class OutboxRow(NamedTuple):
    """A claimed row, made straight from asyncpg's record (`_make`): a frozen dataclass's `__init__` took an eighth
    of the relay's own time per row."""

    id: int
    event_id: object
    aggregateid: str
    type: str
    event_version: int
    topic: str
    payload: str
    created_at: float  # epoch seconds
    attempts: int = 0


async def prune_published(db: Database, older_than: timedelta, batch: int = 5000) -> int:
    """Delete published rows committed longer ago than the retention; rows still waiting for Kafka are never
    touched, however old."""
    return await delete_in_batches(
        db, "SELECT o.id FROM outbox o WHERE o.created_at < now() - $1::interval"
            " AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) LIMIT $2", older_than,
        table="outbox", key="id", batch=batch,
    )  # fmt: skip


class RelayError(RuntimeError):
    pass


def split_by_first_failure(
    rows: Sequence[OutboxRow], results: Sequence[object], failed_keys: set[str] | None = None
) -> tuple[list[OutboxRow], list[tuple[OutboxRow, BaseException]]]:
    """Rows safe to mark published, and rows to retry.

    After a failure for a key, that key's later rows are retried too (even if Kafka took them), so the
    retry can never deliver an older event after a newer one was marked done. `failed_keys` carries the keys that
    failed in earlier batches of the same round, and is updated.
    """
    failed_keys = set() if failed_keys is None else failed_keys
    published: list[OutboxRow] = []
    retry: list[tuple[OutboxRow, BaseException]] = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            failed_keys.add(row.aggregateid)
            retry.append((row, result))
        elif row.aggregateid in failed_keys:
            retry.append((row, RelayError("an earlier event of the same aggregate failed")))
        else:
            published.append(row)
    return published, retry

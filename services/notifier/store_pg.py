"""The notifier's SQL for changes: the PostgreSQL store its use cases and delivery worker share (abstract: store.py)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg

from services.notifier.domain.consent import Preference
from services.notifier.domain.delivery import NUMBER_CHANGED, WAITING, Delivery
from services.notifier.domain.digest import OfferFact, PledgeFact
from services.notifier.domain.messages import Contact, Message
from services.notifier.domain.ratelimit import Bucket
from services.notifier.store import NotifierStore, NotifierUnitOfWork, Outgoing, Stranded
from shared.db import lock_ids
from shared.unit_of_work import PgUnitOfWork

_OFFICER_EMAIL_LOCK = 0x6E_6F_65_6D  # "noem": one officer's directory entry, by email
_RECIPIENT_LOCK = 0x6E_6F_72_70  # "norp": one number's preferences, while they are read to be changed
_OWNER_LOCK = 0x6E_6F_6F_77  # "noow": one business's owner, while its contact changes or a message to it is recorded

_MESSAGE = ("id, event_id, business_id, template, channel, recipient_phone, body, created_at, audience, kecamatan_code,"
            " sponsor_id, offer_id, deadline, subject")  # fmt: skip
_DELIVERY = ("id, message_id, channel, recipient, status, not_before, attempts, provider_id, reason, fallback_of,"
             " retries_from, critical")
_OFFER = ("offer_id, pledge_id, business_id, business_name, contact_phone, kecamatan_code, sponsor_name, instrument,"
          " financing_programme, amount_rupiah, offered_at, expires_at, state, decided_at, disbursed_at")  # fmt: skip
_PLEDGE = "pledge_id, sponsor_id, sponsor_name, title, instrument, total_rupiah, pledged_at, closed_at"
_CONTACT = "business_id, business_version, business_name, phone, kecamatan, kelurahan, status, kecamatan_code"


def _message(row: asyncpg.Record) -> Message:
    return Message(**{k: row[k] for k in _MESSAGE.replace(" ", "").split(",")})


def _message_row(m: Message) -> tuple:
    return (m.id, m.event_id, m.business_id, m.template, m.channel, m.recipient_phone, m.body, m.created_at, m.audience,
            m.kecamatan_code, m.sponsor_id, m.offer_id, m.deadline, m.subject)  # fmt: skip


def _planned_row(m: Message, planned: tuple[str, str] | None, now: datetime | None) -> tuple:
    """The message's row with its status, channel and updated_at: 'waiting' until planned; planned, what setting its
    status afterwards left (updated_at moved only if the status or channel did)."""
    if planned is None or planned == (WAITING, m.channel):
        return (*_message_row(m), WAITING, None)
    assert now is not None, "a planned message's status is set as of a time"
    status, channel = planned
    return (*_message_row(replace(m, channel=channel)), status, now)


def _offer_row(o: OfferFact) -> tuple:
    return (o.offer_id, o.pledge_id, o.business_id, o.business_name, o.contact_phone, o.kecamatan_code, o.sponsor_name,
            o.instrument, o.financing_programme, o.amount_rupiah, o.offered_at, o.expires_at, o.state, o.decided_at,
            o.disbursed_at)  # fmt: skip


def _contact_row(c: Contact) -> tuple:
    return (c.business_id, c.business_version, c.business_name, c.phone, c.kecamatan, c.kelurahan, c.status,
            c.kecamatan_code)  # fmt: skip


# Keep the newest version only: an older snapshot arriving late never overwrites a newer one.
_SAVE_CONTACT = """INSERT INTO contact (business_id, business_version, business_name, phone, kecamatan, kelurahan,
                       status, kecamatan_code)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (business_id) DO UPDATE SET
                       business_version = excluded.business_version, business_name = excluded.business_name,
                       phone = excluded.phone, kecamatan = excluded.kecamatan, kelurahan = excluded.kelurahan,
                       status = excluded.status,
                       kecamatan_code = COALESCE(excluded.kecamatan_code, contact.kecamatan_code), updated_at = now()
                   WHERE contact.business_version < excluded.business_version"""
_SET_STATUS = ("UPDATE message SET status = $2, channel = $3, updated_at = $4 WHERE id = $1"
               " AND (status IS DISTINCT FROM $2 OR channel IS DISTINCT FROM $3)")  # fmt: skip
# A batch's statuses and deliveries in one statement each: run row by row (executemany), they were the notifier's
# largest cost in PostgreSQL, every row parsed, planned and executed on its own.
_SET_STATUSES = """UPDATE message SET status = s.status, channel = s.channel, updated_at = $4
                     FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s(id, status, channel)
                    WHERE message.id = s.id
                      AND (message.status IS DISTINCT FROM s.status OR message.channel IS DISTINCT FROM s.channel)"""
_ADD_DELIVERIES = f"""INSERT INTO delivery ({_DELIVERY})
                      SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                                           $6::timestamptz[], $7::int[], $8::text[], $9::text[], $10::uuid[],
                                           $11::int[], $12::bool[])
                      ON CONFLICT (message_id, channel, recipient) DO UPDATE
                         SET status = excluded.status, reason = excluded.reason, not_before = excluded.not_before,
                             attempts = excluded.attempts, retries_from = excluded.retries_from,
                             critical = excluded.critical, updated_at = now()
                       WHERE delivery.status = 'withheld' AND delivery.reason = $13"""


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(id=row["id"], message_id=row["message_id"], channel=row["channel"], recipient=row["recipient"],
                    status=row["status"], not_before=row["not_before"], attempts=row["attempts"],
                    provider_id=row["provider_id"], reason=row["reason"], fallback_of=row["fallback_of"],
                    retries_from=row["retries_from"], critical=row["critical"])  # fmt: skip


def _preference(row: asyncpg.Record) -> Preference:
    return Preference(phone=row["phone"], channel=row["pref_channel"], language=row["language"],
                      opted_out_at=row["opted_out_at"], no_whatsapp_since=row["no_whatsapp_since"])  # fmt: skip


class PgNotifierStore(NotifierStore):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # --- contacts and messages -------------------------------------------------------------------------------

    async def contact(self, business_id: uuid.UUID) -> Contact | None:
        row = await self._conn.fetchrow(f"SELECT {_CONTACT} FROM contact WHERE business_id = $1", business_id)
        return Contact(**dict(row)) if row else None

    async def contacts_of(self, business_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Contact]:
        rows = await self._conn.fetch(f"SELECT {_CONTACT} FROM contact WHERE business_id = ANY($1::uuid[])",
                                      list(set(business_ids)))  # fmt: skip
        return {row["business_id"]: Contact(**dict(row)) for row in rows}

    async def save_contact(self, contact: Contact) -> None:
        await self._conn.execute(_SAVE_CONTACT, *_contact_row(contact))

    async def save_contacts(self, contacts: Sequence[Contact]) -> None:
        await self._conn.executemany(_SAVE_CONTACT, [_contact_row(c) for c in contacts])

    async def add_message(self, message: Message) -> bool:
        status = await self._conn.execute(
            """INSERT INTO message (id, event_id, business_id, template, channel, recipient_phone, body, created_at,
                   audience, kecamatan_code, sponsor_id, offer_id, deadline, subject, status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'waiting')
               ON CONFLICT (event_id, template) DO NOTHING""",
            message.id, message.event_id, message.business_id, message.template, message.channel,
            message.recipient_phone, message.body, message.created_at, message.audience, message.kecamatan_code,
            message.sponsor_id, message.offer_id, message.deadline, message.subject,
        )  # fmt: skip
        return status == "INSERT 0 1"

    async def recorded_since(self, event_ids: Collection[uuid.UUID], template: str, since: datetime) -> bool:
        return await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM message WHERE event_id = ANY($1::uuid[]) AND template = $2"
            " AND created_at >= $3)",
            list(event_ids), template, since,
        )  # fmt: skip

    async def address_waiting(self, contact: Contact) -> list[Message]:
        rows = await self._conn.fetch(
            f"UPDATE message SET recipient_phone = $2, updated_at = now() WHERE business_id = $1"
            f" AND recipient_phone IS NULL AND audience = 'owner' RETURNING {_MESSAGE}",
            contact.business_id, contact.phone,
        )  # fmt: skip
        return sorted((_message(r) for r in rows), key=lambda m: (m.created_at, m.id))

    async def address_waiting_for(self, contacts: Sequence[Contact]) -> list[Message]:
        # One business named twice would join twice; its newest snapshot has the phone to use.
        newest = {c.business_id: c for c in sorted(contacts, key=lambda c: c.business_version)}
        rows = await self._conn.fetch(
            f"UPDATE message SET recipient_phone = c.phone_now, updated_at = now()"
            f" FROM unnest($1::uuid[], $2::text[]) AS c(id_now, phone_now)"
            f" WHERE business_id = c.id_now AND recipient_phone IS NULL AND audience = 'owner' RETURNING {_MESSAGE}",
            list(newest), [c.phone for c in newest.values()],
        )  # fmt: skip
        return sorted((_message(r) for r in rows), key=lambda m: (m.created_at, m.id))

    async def add_messages(
        self, messages: Sequence[Message], planned: Mapping[uuid.UUID, tuple[str, str]] | None = None,
        now: datetime | None = None,
    ) -> list[Message]:
        # A planned message goes in with its status and channel. Set by an UPDATE after the insert, each row was
        # written twice, and since `status` is indexed the UPDATE wrote a new entry in each of message's indexes (the
        # notifier's costliest statement at 200 registrations/s). Its updated_at is the one that UPDATE gave it.
        planned = planned or {}
        records = [_planned_row(m, planned.get(m.id), now) for m in messages]
        columns = list(zip(*records, strict=True)) if records else [[]] * 16
        rows = await self._conn.fetch(
            f"""INSERT INTO message ({_MESSAGE}, status, updated_at)
                SELECT {_MESSAGE}, status, coalesce(updated_at, now())
                  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::timestamptz[], $9::text[], $10::text[], $11::uuid[], $12::uuid[], $13::timestamptz[],
                              $14::text[], $15::text[], $16::timestamptz[]) AS m({_MESSAGE}, status, updated_at)
                ON CONFLICT (event_id, template) DO NOTHING RETURNING id""",
            *(list(c) for c in columns),
        )  # fmt: skip
        added = {r["id"] for r in rows}
        return [m for m in messages if m.id in added]

    async def message(self, message_id: uuid.UUID) -> Message | None:
        row = await self._conn.fetchrow(f"SELECT {_MESSAGE} FROM message WHERE id = $1", message_id)
        return _message(row) if row else None

    async def set_message_status(self, message_id: uuid.UUID, status: str, channel: str, now: datetime) -> None:
        await self._conn.execute(_SET_STATUS, message_id, status, channel, now)

    async def set_message_statuses(self, statuses: Sequence[tuple[uuid.UUID, str, str]], now: datetime) -> None:
        # A message named twice takes its last status, as setting them one by one did. Every caller holds the rows
        # already (locked by `deliveries_of_messages`, or inserted in this transaction): one UPDATE does not promise
        # to lock them in any order.
        last = {i: (status, channel) for i, status, channel in statuses}
        ids = sorted(last)
        if ids:
            await self._conn.execute(_SET_STATUSES, ids, [last[i][0] for i in ids], [last[i][1] for i in ids], now)

    # --- deliveries ------------------------------------------------------------------------------------------

    async def hold_owners(self, business_ids: Collection[uuid.UUID], *, changing: bool) -> None:
        await lock_ids(self._conn, _OWNER_LOCK, business_ids, shared=not changing)

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        # One row per (message, channel, recipient), the first as before: an upsert may touch a row once only.
        unique: dict[tuple, Delivery] = {}
        for d in deliveries:
            unique.setdefault((d.message_id, d.channel, d.recipient), d)
        rows = [(d.id, d.message_id, d.channel, d.recipient, d.status, d.not_before, d.attempts, d.provider_id,
                 d.reason, d.fallback_of, d.retries_from, d.critical) for d in unique.values()]  # fmt: skip
        await self._conn.execute(_ADD_DELIVERIES, *(list(column) for column in zip(*rows)), NUMBER_CHANGED)

    async def deliveries_of_messages(self, message_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, list[Delivery]]:
        ids = sorted(set(message_ids))
        await self._conn.execute("SELECT 1 FROM message WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", ids)
        found: dict[uuid.UUID, list[Delivery]] = {message_id: [] for message_id in ids}
        for row in await self._conn.fetch(
            f"SELECT {_DELIVERY} FROM delivery WHERE message_id = ANY($1::uuid[]) ORDER BY created_at, id", ids
        ):
            found[row["message_id"]].append(_delivery(row))
        return found

    async def delivery(self, delivery_id: uuid.UUID) -> Delivery | None:
        row = await self._conn.fetchrow(f"SELECT {_DELIVERY} FROM delivery WHERE id = $1 FOR UPDATE", delivery_id)
        return _delivery(row) if row else None

    async def delivery_by_provider(self, channel: str, provider_id: str) -> Delivery | None:
        row = await self._conn.fetchrow(
            f"SELECT {_DELIVERY} FROM delivery WHERE channel = $1 AND provider_id = $2 FOR UPDATE", channel, provider_id
        )
        return _delivery(row) if row else None

    async def save_delivery(self, delivery: Delivery, now: datetime) -> None:
        await self._conn.execute(
            """UPDATE delivery SET status = $2, reason = $3, provider_id = COALESCE($4, provider_id), not_before = $5,
                   attempts = $6, updated_at = $7, retries_from = $8,
                   holder = CASE WHEN $2 = 'sending' THEN holder END,
                   lease_until = CASE WHEN $2 = 'sending' THEN lease_until END,
                   sent_at = CASE WHEN $2 IN ('sent', 'delivered', 'read') THEN COALESCE(sent_at, $7) ELSE sent_at END,
                   delivered_at = CASE WHEN $2 IN ('delivered', 'read') THEN COALESCE(delivered_at, $7)
                                       ELSE delivered_at END,
                   read_at = CASE WHEN $2 = 'read' THEN COALESCE(read_at, $7) ELSE read_at END
               WHERE id = $1""",
            delivery.id, delivery.status, delivery.reason, delivery.provider_id, delivery.not_before,
            delivery.attempts, now, delivery.retries_from,
        )  # fmt: skip

    async def queued_about_offer(self, offer_id: uuid.UUID) -> list[Delivery]:
        rows = await self._conn.fetch(
            f"SELECT {', '.join('d.' + c for c in _DELIVERY.replace(' ', '').split(','))} FROM delivery d"
            " JOIN message m ON m.id = d.message_id WHERE m.offer_id = $1 AND d.status = 'queued' FOR UPDATE OF d",
            offer_id,
        )  # fmt: skip
        return [_delivery(r) for r in rows]

    async def queued_to_another_phone(self, business_id: uuid.UUID, phone: str) -> list[Delivery]:
        rows = await self._conn.fetch(
            f"SELECT {', '.join('d.' + c for c in _DELIVERY.replace(' ', '').split(','))} FROM delivery d"
            " JOIN message m ON m.id = d.message_id WHERE m.business_id = $1 AND m.audience = 'owner'"
            " AND m.recipient_phone <> $2 AND d.status = 'queued' ORDER BY d.id FOR UPDATE OF d",
            business_id, phone,
        )  # fmt: skip
        return [_delivery(r) for r in rows]

    async def readdress(self, message_ids: Sequence[uuid.UUID], phone: str) -> list[Message]:
        rows = await self._conn.fetch(
            f"UPDATE message SET recipient_phone = $2, updated_at = now() WHERE id = ANY($1::uuid[])"
            f" AND audience = 'owner' RETURNING {_MESSAGE}",
            list(message_ids), phone,
        )  # fmt: skip
        return sorted((_message(r) for r in rows), key=lambda m: (m.created_at, m.id))

    # --- the worker ------------------------------------------------------------------------------------------

    async def bucket(self, channel: str) -> tuple[Bucket | None, datetime]:
        # The row is made the first time a channel is used (tokens -1: never filled), then locked: a second process
        # claiming on this channel waits here, and then reads what the first one left.
        await self._conn.execute(
            "INSERT INTO rate_bucket (channel, tokens, refilled_at) VALUES ($1, -1, now()) ON CONFLICT DO NOTHING",
            channel,
        )
        row = await self._conn.fetchrow("SELECT tokens, refilled_at FROM rate_bucket WHERE channel = $1 FOR UPDATE", channel)
        now = await self._conn.fetchval("SELECT clock_timestamp()")  # after the wait for the lock
        return None if row["tokens"] < 0 else Bucket(row["tokens"], row["refilled_at"]), now

    async def save_bucket(self, channel: str, bucket: Bucket) -> None:
        await self._conn.execute(
            "UPDATE rate_bucket SET tokens = $2, refilled_at = $3 WHERE channel = $1", channel, bucket.tokens,
            bucket.refilled_at,
        )  # fmt: skip

    async def claim_due(self, channel: str, now: datetime, holder: str, lease: timedelta, limit: int) -> list[Outgoing]:
        if limit <= 0:
            return []
        # The lease runs from this statement on the server's clock (as `stranded` judges it), not from the
        # transaction's start: the claim may have waited for the channel's bucket behind another process's claim.
        rows = await self._conn.fetch(
            f"""WITH due AS (
                    SELECT id FROM delivery WHERE status = 'queued' AND channel = $1 AND not_before <= $2
                    ORDER BY not_before, id LIMIT $3 FOR UPDATE SKIP LOCKED)
                UPDATE delivery d SET status = 'sending', attempts = d.attempts + 1, holder = $4,
                    lease_until = statement_timestamp() + $5::interval, updated_at = $2
                FROM due WHERE d.id = due.id
                RETURNING {', '.join('d.' + c for c in _DELIVERY.replace(' ', '').split(','))}""",
            channel, now, limit, holder, lease,
        )  # fmt: skip
        if not rows:
            return []
        details = {r["id"]: r for r in await self._conn.fetch(
            """SELECT d.id, m.template, m.audience, m.body, m.subject, m.deadline, o.state AS offer_state, r.phone,
                      r.channel AS pref_channel, r.language, r.opted_out_at, r.no_whatsapp_since
               FROM delivery d JOIN message m ON m.id = d.message_id
               LEFT JOIN offer_fact o ON o.offer_id = m.offer_id
               LEFT JOIN recipient r ON r.phone = d.recipient
               WHERE d.id = ANY($1::uuid[])""", [r["id"] for r in rows])}  # fmt: skip
        claimed = []
        for row in sorted(rows, key=lambda r: (r["not_before"], r["id"])):
            detail = details[row["id"]]
            claimed.append(Outgoing(_delivery(row), detail["template"], detail["audience"], detail["body"],
                                    detail["subject"], detail["offer_state"],
                                    _preference(detail) if detail["phone"] else None, detail["deadline"]))  # fmt: skip
        return claimed

    async def stranded(self, limit: int) -> list[Stranded]:
        # The server's clock, as the claim set it (statement_timestamp() is stable, so the partial index on
        # lease_until still bounds the scan).
        rows = await self._conn.fetch(
            f"SELECT {_DELIVERY}, holder FROM delivery WHERE status = 'sending' AND lease_until < statement_timestamp()"
            " ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )  # fmt: skip
        return [Stranded(_delivery(r), r["holder"]) for r in rows]

    async def start_attempt(self, delivery_id: uuid.UUID, attempt: int, holder: str, now: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO send_attempt (delivery_id, attempt, holder, started_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            delivery_id, attempt, holder, now,
        )  # fmt: skip

    async def end_attempt(self, delivery_id: uuid.UUID, attempt: int, outcome: str, detail: str | None,
                          now: datetime) -> None:  # fmt: skip
        await self._conn.execute(
            "UPDATE send_attempt SET outcome = $3, detail = $4, finished_at = $5 WHERE delivery_id = $1 AND attempt = $2"
            " AND outcome IS NULL",
            delivery_id, attempt, outcome, detail, now,
        )  # fmt: skip

    async def deliver_locally(self, delivery: Delivery, subject: str | None, body: str, now: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO local_outbox (delivery_id, recipient, subject, body, delivered_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (delivery_id) DO NOTHING",
            delivery.id, delivery.recipient, subject, body, now,
        )  # fmt: skip

    async def deliver_all_locally(self, letters: Sequence[tuple[Delivery, str | None, str]], holder: str,
                                  now: datetime) -> None:  # fmt: skip
        if not letters:
            return
        # As start_attempt, deliver_locally, end_attempt and save_delivery(delivered) one after the other would.
        await self._conn.execute(
            """WITH letter AS (
                   SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[])
                       AS l(id, attempt, recipient, subject, body)),
               attempted AS (
                   INSERT INTO send_attempt (delivery_id, attempt, holder, started_at, outcome, detail, finished_at)
                   SELECT id, attempt, $6, $7, 'accepted', 'local outbox', $7 FROM letter
                   ON CONFLICT (delivery_id, attempt) DO UPDATE
                       SET outcome = excluded.outcome, detail = excluded.detail, finished_at = excluded.finished_at
                       WHERE send_attempt.outcome IS NULL),
               written AS (
                   INSERT INTO local_outbox (delivery_id, recipient, subject, body, delivered_at)
                   SELECT id, recipient, subject, body, $7 FROM letter ON CONFLICT (delivery_id) DO NOTHING)
               UPDATE delivery d SET status = 'delivered', updated_at = $7, holder = NULL, lease_until = NULL,
                   sent_at = COALESCE(d.sent_at, $7), delivered_at = COALESCE(d.delivered_at, $7)
               FROM letter WHERE d.id = letter.id""",
            [d.id for d, _, _ in letters], [d.attempts for d, _, _ in letters], [d.recipient for d, _, _ in letters],
            [subject for _, subject, _ in letters], [body for _, _, body in letters], holder, now,
        )  # fmt: skip

    async def record_status_report(self, channel: str, provider_id: str, status: str, error: str | None,
                                   delivery_id: uuid.UUID | None, now: datetime) -> None:  # fmt: skip
        await self._conn.execute(
            "INSERT INTO status_report (channel, provider_id, status, error, delivery_id, received_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            channel, provider_id[:300], status[:40], error[:500] if error else None, delivery_id, now,
        )  # fmt: skip

    # --- owners' wishes --------------------------------------------------------------------------------------

    async def preference(self, phone: str) -> Preference | None:
        row = await self._conn.fetchrow(
            "SELECT phone, channel AS pref_channel, language, opted_out_at, no_whatsapp_since FROM recipient"
            " WHERE phone = $1 FOR UPDATE",
            phone,
        )  # fmt: skip
        return _preference(row) if row else None

    async def preference_to_change(self, phone: str) -> Preference | None:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _RECIPIENT_LOCK, phone)
        return await self.preference(phone)

    async def preferences_of(self, phones: Collection[str]) -> dict[str, Preference]:
        rows = await self._conn.fetch(
            "SELECT phone, channel AS pref_channel, language, opted_out_at, no_whatsapp_since FROM recipient"
            " WHERE phone = ANY($1::text[]) ORDER BY phone FOR UPDATE",
            sorted(set(phones)),
        )  # fmt: skip
        return {r["phone"]: _preference(r) for r in rows}

    async def save_preference(self, preference: Preference) -> None:
        await self._conn.execute(
            """INSERT INTO recipient (phone, channel, language, opted_out_at, no_whatsapp_since)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (phone) DO UPDATE SET channel = excluded.channel, language = excluded.language,
                   opted_out_at = excluded.opted_out_at, no_whatsapp_since = excluded.no_whatsapp_since,
                   updated_at = now()""",
            preference.phone, preference.channel, preference.language, preference.opted_out_at,
            preference.no_whatsapp_since,
        )  # fmt: skip

    async def record_consent(self, phone: str, intent: str, via: str, at: datetime,
                             written_at: datetime | None = None) -> None:  # fmt: skip
        await self._conn.execute(
            "INSERT INTO consent_change (phone, intent, via, at, written_at) VALUES ($1, $2, $3, $4, $5)",
            phone, intent, via, at, written_at,
        )  # fmt: skip

    async def consent_changes_since(self, phone: str, since: datetime) -> int:
        return await self._conn.fetchval(
            "SELECT count(*) FROM consent_change WHERE phone = $1 AND at >= $2", phone, since
        )

    async def queued_confirmations(self, phone: str) -> list[Delivery]:
        rows = await self._conn.fetch(
            f"SELECT {', '.join('d.' + c for c in _DELIVERY.replace(' ', '').split(','))} FROM message m"
            " JOIN delivery d ON d.message_id = m.id WHERE m.recipient_phone = $1"
            " AND m.template IN ('opted_out', 'opted_in') AND d.status = 'queued' ORDER BY d.id FOR UPDATE OF d",
            phone,
        )  # fmt: skip
        return [_delivery(r) for r in rows]

    async def latest_consent_at(self, phone: str) -> datetime | None:
        return await self._conn.fetchval(
            "SELECT max(COALESCE(written_at, at)) FROM consent_change WHERE phone = $1", phone
        )

    # --- directories -----------------------------------------------------------------------------------------

    async def officer_emails(self, kecamatan_code: str | None) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT email FROM officer WHERE $1::text = ANY(kecamatan_codes) ORDER BY email", kecamatan_code
        )
        if not rows:
            rows = await self._conn.fetch("SELECT email FROM officer WHERE kecamatan_codes = '{}' ORDER BY email")
        return [r["email"] for r in rows]

    async def sponsor_email(self, sponsor_id: uuid.UUID) -> str | None:
        return await self._conn.fetchval("SELECT email FROM sponsor_contact WHERE sponsor_id = $1", sponsor_id)

    async def save_officer(self, officer_id: uuid.UUID, email: str, name: str, kecamatan_codes: Sequence[str]) -> uuid.UUID:
        return await self._conn.fetchval(
            """INSERT INTO officer (id, email, name, kecamatan_codes) VALUES ($1, $2, $3, $4)
               ON CONFLICT (email) DO UPDATE SET name = excluded.name, kecamatan_codes = excluded.kecamatan_codes,
                   updated_at = now()
               RETURNING id""",
            officer_id, email, name, list(kecamatan_codes),
        )  # fmt: skip

    async def officer_by_email(self, email: str) -> tuple[uuid.UUID, tuple[str, ...]] | None:
        # Held whether or not the entry exists yet: two saves of one email run one after the other, the second
        # judged on the entry the first made.
        await self._conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _OFFICER_EMAIL_LOCK, email)
        row = await self._conn.fetchrow("SELECT id, kecamatan_codes FROM officer WHERE email = $1 FOR UPDATE", email)
        return (row["id"], tuple(row["kecamatan_codes"])) if row else None

    async def officer(self, officer_id: uuid.UUID) -> tuple[str, tuple[str, ...]] | None:
        row = await self._conn.fetchrow("SELECT email, kecamatan_codes FROM officer WHERE id = $1 FOR UPDATE", officer_id)
        return (row["email"], tuple(row["kecamatan_codes"])) if row else None

    async def remove_officer(self, officer_id: uuid.UUID) -> bool:
        return await self._conn.execute("DELETE FROM officer WHERE id = $1", officer_id) == "DELETE 1"

    async def save_sponsor_contact(self, sponsor_id: uuid.UUID, email: str, name: str | None) -> None:
        await self._conn.execute(
            """INSERT INTO sponsor_contact (sponsor_id, email, name) VALUES ($1, $2, $3)
               ON CONFLICT (sponsor_id) DO UPDATE SET email = excluded.email, name = excluded.name, updated_at = now()""",
            sponsor_id, email, name,
        )  # fmt: skip

    # --- funding's events ------------------------------------------------------------------------------------

    async def save_pledge(self, pledge: PledgeFact) -> None:
        await self._conn.execute(
            f"""INSERT INTO pledge_fact ({_PLEDGE}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (pledge_id) DO UPDATE SET closed_at = COALESCE(pledge_fact.closed_at, excluded.closed_at)""",
            pledge.pledge_id, pledge.sponsor_id, pledge.sponsor_name, pledge.title, pledge.instrument,
            pledge.total_rupiah, pledge.pledged_at, pledge.closed_at,
        )  # fmt: skip

    async def pledge(self, pledge_id: uuid.UUID) -> PledgeFact | None:
        row = await self._conn.fetchrow(f"SELECT {_PLEDGE} FROM pledge_fact WHERE pledge_id = $1", pledge_id)
        return PledgeFact(**dict(row)) if row else None

    async def save_offer(self, offer: OfferFact) -> None:
        await self._conn.execute(
            f"""INSERT INTO offer_fact ({_OFFER})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                ON CONFLICT (offer_id) DO UPDATE SET state = excluded.state, decided_at = excluded.decided_at,
                    disbursed_at = excluded.disbursed_at""",
            *_offer_row(offer),
        )  # fmt: skip

    async def add_offers(self, offers: Sequence[OfferFact]) -> None:
        await self._conn.executemany(
            f"""INSERT INTO offer_fact ({_OFFER})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                ON CONFLICT (offer_id) DO NOTHING""",
            [_offer_row(o) for o in offers],
        )  # fmt: skip

    async def offer(self, offer_id: uuid.UUID) -> OfferFact | None:
        row = await self._conn.fetchrow(f"SELECT {_OFFER} FROM offer_fact WHERE offer_id = $1 FOR UPDATE", offer_id)
        return OfferFact(**dict(row)) if row else None

    async def offers_to_remind(self, now: datetime, lead: timedelta, limit: int) -> list[OfferFact]:
        # Those reminded or too recent are left out here, not after the LIMIT: an allocation gives all its offers
        # one expiry, and a page of them already reminded would hide every other for good.
        rows = await self._conn.fetch(
            f"""SELECT {_OFFER} FROM offer_fact o
                 WHERE state = 'open' AND expires_at > $1 AND expires_at <= $1 + $2::interval
                   AND offered_at <= expires_at - $2::interval
                   AND NOT EXISTS (SELECT 1 FROM message m
                                    WHERE m.offer_id = o.offer_id AND m.template = 'offer_reminder')
                 ORDER BY expires_at, offer_id LIMIT $3""",
            now, lead, limit,
        )  # fmt: skip
        return [OfferFact(**dict(r)) for r in rows]

    async def sponsors(self) -> list[uuid.UUID]:
        return [r["sponsor_id"] for r in await self._conn.fetch("SELECT DISTINCT sponsor_id FROM pledge_fact ORDER BY 1")]

    async def pledges_of(self, sponsor_id: uuid.UUID) -> list[PledgeFact]:
        rows = await self._conn.fetch(
            f"SELECT {_PLEDGE} FROM pledge_fact WHERE sponsor_id = $1 ORDER BY pledged_at, pledge_id", sponsor_id
        )
        return [PledgeFact(**dict(r)) for r in rows]

    async def offers_of(self, pledge_id: uuid.UUID) -> list[OfferFact]:
        rows = await self._conn.fetch(f"SELECT {_OFFER} FROM offer_fact WHERE pledge_id = $1 ORDER BY offered_at", pledge_id)
        return [OfferFact(**dict(r)) for r in rows]


class PgNotifierUnitOfWork(PgUnitOfWork[object], NotifierUnitOfWork):
    def bind(self, conn: asyncpg.Connection) -> None:
        self.store = PgNotifierStore(conn)

"""Tests the messaging helpers with no I/O: dead-letter headers, NIK scrubbing, and the outbox relay's retry split."""

from __future__ import annotations

import logging
from datetime import datetime

from shared.contracts.topics import REGISTRY_BUSINESS
from shared.messaging.consumer import Record, dead_letter_headers
from shared.messaging.outbox import OutboxRow, RelayError, split_by_first_failure
from shared.observability import _ScrubFilter, scrub

from .builders import MARIA_NIK


def record(value: bytes | None, *, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record(topic=REGISTRY_BUSINESS, partition=3, offset=1207, key=b"business-key", value=value, headers=headers)


# ---------------------------------------------------------------------------------------------------------------
# Dead-letter headers
# ---------------------------------------------------------------------------------------------------------------


def test_dead_letter_headers_say_which_consumer_failed_on_which_original_record() -> None:
    original = record(b"x", headers=(("event_type", b"BusinessRegistered"), ("event_id", b"abc")))

    headers = dict(dead_letter_headers(original, consumer="notifier", error=RuntimeError("boom"), attempts=5))

    assert headers["dlq.consumer"] == b"notifier"
    assert headers["dlq.original_topic"] == b"registry.business.v1"
    assert headers["dlq.original_partition"] == b"3"
    assert headers["dlq.original_offset"] == b"1207"
    assert headers["dlq.error_type"] == b"RuntimeError"
    assert headers["dlq.error"] == b"RuntimeError: boom"
    assert headers["dlq.attempts"] == b"5"
    assert datetime.fromisoformat(headers["dlq.failed_at"].decode()).tzinfo is not None
    assert (headers["event_type"], headers["event_id"]) == (b"BusinessRegistered", b"abc")


def test_dead_letter_headers_replace_those_of_an_earlier_dead_lettering() -> None:
    original = record(b"x", headers=(("dlq.consumer", b"old"), ("dlq.error", b"old error"), ("event_id", b"abc")))

    headers = dead_letter_headers(original, consumer="notifier", error=RuntimeError("new"), attempts=1)

    names = [k for k, _ in headers]
    assert len(names) == len(set(names))
    assert dict(headers)["dlq.consumer"] == b"notifier"


def test_dead_letter_headers_never_carry_a_nik_from_the_error_text() -> None:
    error = ValueError(f"owner NIK {MARIA_NIK} does not match birth date")

    headers = dead_letter_headers(record(b"x"), consumer="notifier", error=error, attempts=1)

    assert dict(headers)["dlq.error"] == b"ValueError: owner NIK <16 digits redacted> does not match birth date"
    assert all(MARIA_NIK.encode() not in value for _, value in headers)


def test_a_very_long_error_is_cut_to_two_thousand_characters_in_the_dead_letter_headers() -> None:
    headers = dead_letter_headers(record(b"x"), consumer="c", error=RuntimeError("x" * 5000), attempts=1)
    assert len(dict(headers)["dlq.error"]) == 2000


# ---------------------------------------------------------------------------------------------------------------
# scrub
# ---------------------------------------------------------------------------------------------------------------


def test_scrub_masks_a_sixteen_digit_number_wherever_it_stands() -> None:
    assert scrub(f"NIK {MARIA_NIK} tidak cocok") == "NIK <16 digits redacted> tidak cocok"
    assert scrub(f"nik={MARIA_NIK},phone=+6281234567890") == "nik=<16 digits redacted>,phone=+6281234567890"
    assert scrub(f"{MARIA_NIK} dan {MARIA_NIK}") == "<16 digits redacted> dan <16 digits redacted>"


def test_scrub_leaves_shorter_and_longer_numbers_alone() -> None:
    text = "NIB 1234567890123, phone 6281234567890, account 53710457089000012"
    assert scrub(text) == text


def test_the_logging_filter_scrubs_a_nik_passed_as_a_log_argument() -> None:
    entry = logging.LogRecord("registry", logging.WARNING, __file__, 1, "owner %s refused", (MARIA_NIK,), None)

    assert _ScrubFilter().filter(entry) is True
    assert entry.getMessage() == "owner <16 digits redacted> refused"


# ---------------------------------------------------------------------------------------------------------------
# split_by_first_failure
# ---------------------------------------------------------------------------------------------------------------


def row(row_id: int, key: str) -> OutboxRow:
    return OutboxRow(row_id, f"event-{row_id}", key, "BusinessUpdated", 1, REGISTRY_BUSINESS, "{}", 0.0)


def test_when_every_publish_succeeds_every_row_is_marked_published() -> None:
    rows = [row(1, "a"), row(2, "b"), row(3, "a")]

    published, retry = split_by_first_failure(rows, [object(), object(), object()])

    assert (published, retry) == (rows, [])


def test_after_a_failure_for_a_key_later_rows_of_that_key_are_retried_too() -> None:
    rows = [row(1, "a"), row(2, "a"), row(3, "a")]
    failure = TimeoutError("no ack")

    published, retry = split_by_first_failure(rows, [object(), failure, object()])

    assert published == [rows[0]]  # before the failure: safe
    assert [(r.id, e) for r, e in retry][0] == (2, failure)
    assert retry[1][0] is rows[2]
    assert isinstance(retry[1][1], RelayError)


def test_a_failure_for_one_key_leaves_other_keys_unaffected() -> None:
    rows = [row(1, "a"), row(2, "b"), row(3, "a"), row(4, "b"), row(5, "c")]

    published, retry = split_by_first_failure(rows, [RuntimeError("a failed"), object(), object(), object(), object()])

    assert [r.id for r in published] == [2, 4, 5]
    assert [r.id for r, _ in retry] == [1, 3]


def test_each_failed_row_keeps_its_own_error() -> None:
    rows = [row(1, "a"), row(2, "b")]
    first, second = RuntimeError("a"), RuntimeError("b")

    published, retry = split_by_first_failure(rows, [first, second])

    assert published == []
    assert retry == [(rows[0], first), (rows[1], second)]

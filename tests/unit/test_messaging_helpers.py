"""Tests the messaging and database helpers with no I/O: dead-letter headers and dead letters as operators read them,
NIK scrubbing, the Kafka client's repeated log lines held back, the outbox relay's retry split, the WHERE builder,
and group requests asked again while Kafka's coordinator settles."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from aiokafka.errors import KafkaTimeoutError
from confluent_kafka import KafkaError, KafkaException

from shared.contracts import new_envelope
from shared.contracts.registry import NIBIssued
from shared.contracts.topics import REGISTRY_BUSINESS
from shared.db import Where, like_pattern
from shared.messaging import dead_letters
from shared.messaging.dead_letters import DeadLetter, Record, dead_letter_headers
from shared.messaging.kafka import until_coordinator_settles
from shared.messaging.outbox import OutboxRow, RelayError, split_by_first_failure
from shared.db import DATABASE_UNAVAILABLE
from shared.observability import OneLineFailure, RepeatFilter, _ScrubFilter, scrub

# A woman born 17 August 1990 whose KTP was issued in Oebobo (53.71.04): day 17 + 40 = 57.
MARIA_NIK = "5371045708900001"


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


def test_a_record_built_from_a_kafka_record_keeps_its_headers_as_a_tuple() -> None:
    class KafkaRecord:  # the attributes aiokafka's ConsumerRecord has
        topic, partition, offset, key, value, headers = REGISTRY_BUSINESS, 3, 1207, b"k", b"v", [("event_id", b"abc")]

    assert Record.from_kafka(KafkaRecord()) == Record(REGISTRY_BUSINESS, 3, 1207, b"k", b"v", (("event_id", b"abc"),))


# ---------------------------------------------------------------------------------------------------------------
# Dead letters as an operator reads them
# ---------------------------------------------------------------------------------------------------------------


def letter(value: bytes | None, headers: dict[str, str]) -> DeadLetter:
    return DeadLetter("registry.business.v1.dlq", 0, 42, b"business-key", value, headers)


def test_a_dead_letter_says_which_consumer_failed_why_and_on_which_topic() -> None:
    headers = {k: v.decode() for k, v in dead_letter_headers(record(b"x"), consumer="notifier",
                                                             error=RuntimeError("boom"), attempts=5)}  # fmt: skip
    dead = letter(b"x", headers)

    assert (dead.consumer, dead.error, dead.original_topic) == ("notifier", "RuntimeError: boom", REGISTRY_BUSINESS)


def test_a_dead_letter_without_headers_comes_from_the_topic_its_dlq_is_named_after() -> None:
    dead = letter(b"x", {})
    assert (dead.consumer, dead.error, dead.original_topic) == ("?", "?", "registry.business.v1")


def test_a_dead_letter_s_envelope_is_read_when_there_is_one_and_none_when_it_was_garbage() -> None:
    event = NIBIssued(business_id=uuid.uuid4(), business_version=2, application_id=None, nib="1234567890123",
                      issued_on=date(2026, 3, 10), kecamatan_code="53.71.04")  # fmt: skip
    envelope = new_envelope(event, producer="registry", correlation_id=uuid.uuid4())

    assert letter(envelope.to_json_bytes(), {}).envelope() == envelope
    assert letter(b"{not json", {}).envelope() is None
    assert letter(None, {}).envelope() is None


# ---------------------------------------------------------------------------------------------------------------
# Re-driving dead letters
# ---------------------------------------------------------------------------------------------------------------


class FakeProducer:
    """Keeps what it is asked to publish: (topic, key, value, header names)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[str]]] = []
        self.headers: list[list[tuple[str, bytes | None]]] = []  # each record's, whole
        self.fails_at: int | None = None  # the record whose delivery Kafka fails

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future:  # fmt: skip
        delivered = asyncio.get_running_loop().create_future()
        if len(self.sent) == self.fails_at:
            delivered.set_exception(KafkaTimeoutError())
        else:
            delivered.set_result(None)
        self.sent.append((topic, key, value, [name for name, _ in headers or []]))
        self.headers.append(list(headers or []))
        return delivered


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    fake = FakeProducer()
    monkeypatch.setattr(dead_letters, "safe_producer", lambda kafka, client_id: fake)
    return fake


def cut_short(offset: int) -> DeadLetter:
    """A letter as KafkaDeadLetters keeps a record too big for the dead-letter topic: its value cut short."""
    return DeadLetter("partner.bri.outcomes.v1.dlq", 0, offset, b"k", b'{"event_id": "...", "pay',
                      {"dlq.original_topic": "partner.bri.outcomes.v1", "dlq.value_truncated_from": "1048600",
                       "dlq.value_sha256": "9f86d081884c7d65", "event_type": "FinancingApproved"})  # fmt: skip


async def test_a_dead_letter_cut_short_is_not_redriven_and_the_error_says_so_with_its_size_and_digest(
        producer: FakeProducer) -> None:  # fmt: skip
    with pytest.raises(ValueError) as refused:
        await dead_letters.redrive("127.0.0.1:1", [cut_short(9)])
    assert producer.sent == []
    said = str(refused.value)
    assert "partner.bri.outcomes.v1.dlq 0:9" in said and "cut short" in said
    assert "1048600 bytes" in said and "sha256 9f86d081884c7d65" in said
    assert "producer must send each such event again" in said


async def test_a_dead_letter_whose_key_or_headers_were_cut_is_not_redriven_either(producer: FakeProducer) -> None:
    keyed = DeadLetter("partner.bri.outcomes.v1.dlq", 0, 10, b"9f86", b"{}",
                       {"dlq.original_topic": "partner.bri.outcomes.v1", "dlq.key_truncated_from": "1048300",
                        "dlq.key_sha256": "9f86"})  # fmt: skip
    bare = DeadLetter("partner.bri.outcomes.v1.dlq", 0, 11, b"k", b"{}",
                      {"dlq.original_topic": "partner.bri.outcomes.v1", "dlq.headers_dropped": "1040"})  # fmt: skip
    with pytest.raises(ValueError) as refused:
        await dead_letters.redrive("127.0.0.1:1", [keyed, bare])
    assert producer.sent == []
    said = str(refused.value)
    assert "0:10 had a key of 1048300 bytes (sha256 9f86)" in said and "0:11 lost its 1040 header(s)" in said


async def test_the_whole_dead_letters_beside_one_cut_short_are_redriven_all_the_same(producer: FakeProducer) -> None:
    whole = [letter(b"first", {"dlq.consumer": "notifier", "event_id": "e1"}),
             DeadLetter("registry.business.v1.dlq", 0, 43, b"business-key", b"second", {})]  # fmt: skip
    with pytest.raises(ValueError, match="2 of 3 dead letter"):
        await dead_letters.redrive("127.0.0.1:1", [whole[0], cut_short(9), whole[1]])
    assert producer.sent == [(REGISTRY_BUSINESS, b"business-key", b"first", ["event_id", "redriven_from"]),
                             (REGISTRY_BUSINESS, b"business-key", b"second", ["redriven_from"])]  # fmt: skip


class DeadLetterRecord:  # the attributes aiokafka's ConsumerRecord has
    topic, partition, offset, key, value = "partner.bri.outcomes.v1.dlq", 0, 7, b"k", b"{}"
    headers = [("x-trace", None), ("bin", b"\xff\xfe"), ("dup", b"1"), ("dup", b"2"),
               ("dlq.consumer", b"funding-partners"), ("dlq.original_topic", b"partner.bri.outcomes.v1")]


def test_a_dead_letter_with_a_header_of_no_value_or_of_bytes_that_are_not_text_is_read_all_the_same() -> None:
    dead = DeadLetter.from_kafka("partner.bri.outcomes.v1.dlq", DeadLetterRecord())

    assert (dead.consumer, dead.original_topic) == ("funding-partners", "partner.bri.outcomes.v1")
    assert (dead.headers["x-trace"], dead.headers["bin"], dead.headers["dup"]) == ("", "\ufffd\ufffd", "2")


async def test_a_redriven_dead_letter_carries_its_own_headers_byte_for_byte_repeated_or_empty(
        producer: FakeProducer) -> None:  # fmt: skip
    dead = DeadLetter.from_kafka("partner.bri.outcomes.v1.dlq", DeadLetterRecord())
    await dead_letters.redrive("127.0.0.1:1", [dead])

    assert producer.headers == [[("x-trace", None), ("bin", b"\xff\xfe"), ("dup", b"1"), ("dup", b"2"),
                                 ("redriven_from", b"partner.bri.outcomes.v1.dlq:0:7")]]  # fmt: skip


async def test_dead_letters_are_redriven_in_their_order_a_batch_at_a_time_telling_how_many_so_far(
        producer: FakeProducer, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(dead_letters, "REDRIVE_BATCH", 2)
    letters = [letter(f"v{i}".encode(), {}) for i in range(5)]
    told: list[int] = []
    assert await dead_letters.redrive("127.0.0.1:1", letters, progress=told.append) == 5
    assert told == [2, 4, 5]
    assert [value for _, _, value, _ in producer.sent] == [b"v0", b"v1", b"v2", b"v3", b"v4"]


async def test_kafka_failing_part_way_says_how_many_went_before_the_batch_that_failed(
        producer: FakeProducer, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(dead_letters, "REDRIVE_BATCH", 2)
    producer.fails_at = 3
    told: list[int] = []
    letters = [letter(f"v{i}".encode(), {}) for i in range(5)]
    with pytest.raises(dead_letters.RedriveStopped, match=r"2 of 5 dead letter\(s\) re-driven, then Kafka") as stopped:
        await dead_letters.redrive("127.0.0.1:1", letters, progress=told.append)
    assert (stopped.value.sent, told) == (2, [2])


async def test_whole_dead_letters_are_redriven_and_counted(producer: FakeProducer) -> None:
    assert await dead_letters.redrive("127.0.0.1:1", [letter(b"x", {"dlq.error": "boom"})]) == 1
    assert producer.sent == [(REGISTRY_BUSINESS, b"business-key", b"x", ["redriven_from"])]


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


# ---------------------------------------------------------------------------------------------------------------
# The Kafka client's repeated messages
# ---------------------------------------------------------------------------------------------------------------


class Lines(logging.Handler):
    """What reached the log, as the operator reads it."""

    def __init__(self, log_filter: logging.Filter) -> None:
        super().__init__()
        self.addFilter(log_filter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def quiet_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A logger of its own (the real aiokafka loggers are left as they are), writing only to `handler`."""
    logger = logging.getLogger(f"{name}.{uuid.uuid4().hex[:8]}")
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    return logger


class Formatted(logging.Handler):
    """The log's text as a formatter writes it, tracebacks included."""

    def __init__(self, log_filter: logging.Filter) -> None:
        super().__init__()
        self.addFilter(log_filter)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(self.format(record))


def _failed(logger: logging.Logger, error: BaseException) -> None:
    try:
        raise error
    except type(error):
        logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)


def _asyncpg_pool(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("asyncpg.pool")
    logger.handlers[:], logger.propagate = [handler], False
    return logger


@pytest.fixture
def pool_log() -> Iterator[Formatted]:
    handler = Formatted(OneLineFailure("asyncpg.pool", DATABASE_UNAVAILABLE))
    logger = _asyncpg_pool(handler)
    yield handler
    logger.handlers[:], logger.propagate = [], True


def test_the_pool_failing_to_reconnect_while_the_database_is_away_is_one_line_in_the_error_s_own_words(pool_log):
    import asyncpg

    pool = logging.getLogger("asyncpg.pool")
    _failed(pool, asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"))
    _failed(pool, ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"))

    assert pool_log.text == [
        "WARNING asyncpg.pool: Failed to restore the pool connection floor; retrying: CannotConnectNowError: the "
        "database system is shutting down",
        "WARNING asyncpg.pool: Failed to restore the pool connection floor; retrying: ConnectionRefusedError: [Errno "
        "111] Connect call failed ('127.0.0.1', 5432)",
    ]


def test_a_failure_the_service_does_not_expect_keeps_its_traceback(pool_log):
    import asyncpg

    _failed(logging.getLogger("asyncpg.pool"), asyncpg.InvalidPasswordError("password authentication failed"))

    assert "Traceback (most recent call last)" in pool_log.text[0]
    assert pool_log.text[0].endswith("InvalidPasswordError: password authentication failed")


def test_only_the_pool_s_reports_are_shortened() -> None:
    handler = Formatted(OneLineFailure("asyncpg.pool", DATABASE_UNAVAILABLE))
    elsewhere = quiet_logger("registry", handler)

    _failed(elsewhere, ConnectionRefusedError(111, "Connect call failed"))

    assert "Traceback (most recent call last)" in handler.text[0]


def test_a_kafka_client_error_repeated_a_thousand_times_in_a_broker_outage_is_one_line_then_one_with_the_count() -> None:
    now = [0.0]
    lines = Lines(RepeatFilter(window=30, clock=lambda: now[0]))
    client = quiet_logger("aiokafka.client", lines)

    for attempt in range(1000):
        now[0] = attempt / 100
        client.error("Unable connect to node with id %s: %s", 1, f"[Errno 111] attempt {attempt}")
    now[0] = 31.0
    client.error("Unable connect to node with id %s: %s", 1, "[Errno 111] Connect call failed")

    assert lines.lines == [
        f"ERROR {client.name}: Unable connect to node with id 1: [Errno 111] attempt 0",
        f"ERROR {client.name}: Unable connect to node with id 1: [Errno 111] Connect call failed "
        "(and 999 more like it in the 31 s before)",
    ]


def test_another_node_or_topic_is_another_message_and_a_record_with_a_traceback_always_passes() -> None:
    lines = Lines(RepeatFilter(window=30, clock=lambda: 0.0))
    client = quiet_logger("aiokafka.consumer.fetcher", lines)

    for _ in range(3):
        client.error("Unable connect to node with id %s: %s", 1, "refused")
        client.error("Unable connect to node with id %s: %s", 2, "refused")
        client.warning("Not authorized to read from topic %s.", "partner.bri.outcomes.v1")
        client.warning("Not authorized to read from topic %s.", "partner.bni.outcomes.v1")
    try:
        raise ConnectionError("reset")
    except ConnectionError:
        client.exception("Unexpected exception in AIOKafkaConnection")
        client.exception("Unexpected exception in AIOKafkaConnection")

    assert lines.lines == [
        f"ERROR {client.name}: Unable connect to node with id 1: refused",
        f"ERROR {client.name}: Unable connect to node with id 2: refused",
        f"WARNING {client.name}: Not authorized to read from topic partner.bri.outcomes.v1.",
        f"WARNING {client.name}: Not authorized to read from topic partner.bni.outcomes.v1.",
        *[f"ERROR {client.name}: Unexpected exception in AIOKafkaConnection"] * 2,
    ]


def test_each_kind_of_kafka_client_message_has_its_own_count_and_the_services_own_lines_are_never_held_back() -> None:
    now = [0.0]
    lines = Lines(RepeatFilter(window=30, clock=lambda: now[0]))
    client, funding = quiet_logger("aiokafka.client", lines), quiet_logger("services.funding", lines)

    for _ in range(3):
        client.error("Unable connect to node with id %s: %s", 1, "refused")
        client.error("Unable to update metadata from %s", [1])
        client.warning("Unable connect to node with id %s: %s", 1, "refused")  # another level: another message
        funding.warning("batch of %d failed; applying one by one", 200)
        client.error({"a message": "that is not text"})

    assert lines.lines == [
        f"ERROR {client.name}: Unable connect to node with id 1: refused",
        f"ERROR {client.name}: Unable to update metadata from [1]",
        f"WARNING {client.name}: Unable connect to node with id 1: refused",
        f"WARNING {funding.name}: batch of 200 failed; applying one by one",
        f"ERROR {client.name}: {{'a message': 'that is not text'}}",
        *[f"WARNING {funding.name}: batch of 200 failed; applying one by one"] * 2,
    ]


# ---------------------------------------------------------------------------------------------------------------
# Where and like_pattern
# ---------------------------------------------------------------------------------------------------------------


def test_a_where_without_clauses_adds_nothing_to_the_query_and_its_condition_is_true() -> None:
    where = Where()
    assert (where.sql, where.condition, where.args) == ("", "TRUE", [])


def test_each_value_becomes_the_next_numbered_parameter_where_the_braces_are() -> None:
    where = Where().add("kecamatan_code = {}", "53.71.04").add("registered_at BETWEEN {} AND {}", 1, 2)

    assert where.sql == " WHERE kecamatan_code = $1 AND registered_at BETWEEN $2 AND $3"
    assert where.args == ["53.71.04", 1, 2]


def test_a_filter_that_was_not_given_is_left_out_and_the_numbering_stays_consecutive() -> None:
    where = Where().add_if(None, "sponsor_id = {}").add_if("b0b0", "pledge_id = {}").add_if(None, "x = {}")
    where.add_if("offered", "status = {}")

    assert where.condition == "pledge_id = $1 AND status = $2"
    assert where.args == ["b0b0", "offered"]


@pytest.mark.parametrize("value", [0, False, ""])
def test_a_filter_given_as_zero_false_or_empty_is_still_a_filter(value: object) -> None:
    where = Where().add_if(value, "x = {}")
    assert (where.condition, where.args) == ("x = $1", [value])


def test_fixed_clauses_and_earlier_arguments_come_first() -> None:
    where = Where("b.status = 'active'", args=["earlier"]).add("b.kecamatan_code = {}", "53.71.04")

    assert where.sql == " WHERE b.status = 'active' AND b.kecamatan_code = $2"
    assert where.args == ["earlier", "53.71.04"]


def test_a_parameter_can_be_placed_by_hand() -> None:
    where = Where()
    placeholder = where.param(uuid.UUID(int=1))
    assert (placeholder, where.args, where.sql) == ("$1", [uuid.UUID(int=1)], "")


def test_values_never_enter_the_sql_text() -> None:
    where = Where().add_if("x'; DROP TABLE business; --", "business_name = {}")
    assert "DROP" not in where.sql
    assert where.sql == " WHERE business_name = $1"


def test_a_like_pattern_matches_percent_and_underscore_only_literally() -> None:
    assert like_pattern("100%_asli") == r"100\%\_asli"
    assert like_pattern(r"C:\dir") == r"C:\\dir"  # the escape character itself is escaped first
    assert like_pattern("Sei Sapi") == "Sei Sapi"


def test_a_like_pattern_is_used_inside_wildcards_that_still_work() -> None:
    where = Where().add_if("%" + like_pattern("50%") + "%", "business_name ILIKE {}")
    assert where.args == [r"%50\%%"]


# ---------------------------------------------------------------------------------------------------------------
# Asking about a consumer group while its coordinator settles
# ---------------------------------------------------------------------------------------------------------------


class Answers:
    """A group request that fails with the given Kafka errors first, then answers."""

    def __init__(self, *errors: int) -> None:
        self.errors, self.asked = list(errors), 0

    def __call__(self) -> str:
        self.asked += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return "answer"


def test_a_group_request_is_asked_again_while_the_coordinator_moves_or_loads():
    ask = Answers(KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                  KafkaError.COORDINATOR_NOT_AVAILABLE)  # fmt: skip

    assert until_coordinator_settles(ask, sleep=lambda _: None) == "answer"
    assert ask.asked == 4


def test_a_group_request_refused_for_any_other_reason_fails_at_once():
    ask = Answers(KafkaError.GROUP_AUTHORIZATION_FAILED)

    with pytest.raises(KafkaException) as refused:
        until_coordinator_settles(ask, sleep=lambda _: None)

    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert ask.asked == 1


def test_a_coordinator_that_never_settles_fails_once_patience_runs_out():
    ask = Answers(*[KafkaError.NOT_COORDINATOR] * 1000)

    with pytest.raises(KafkaException):
        until_coordinator_settles(ask, patience=0.05, pause=0.01)

    assert 2 <= ask.asked < 1000

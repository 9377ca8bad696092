"""Tests EventConsumer's parse / apply-once / retry / dead-letter logic, with an in-memory inbox and fake dead letters."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.registry import domain
from services.registry.events import translator
from shared.contracts import Envelope, EventPayload
from shared.contracts.catalog import UnknownEvent
from shared.contracts.envelope import ContractError
from shared.contracts.registry import BusinessRegistered
from shared.contracts.topics import REGISTRY_BUSINESS
from shared.messaging.consumer import Outcome, Record
from shared.observability import MessagingMetrics

from .builders import business
from .fakes import FakeDeadLetters, RecordingSleep, new_consumer

pytestmark = pytest.mark.asyncio


def registered_bytes() -> bytes:
    (envelope,) = translator(domain.YouthRange())([domain.Registered(business(), "officer")], uuid.uuid4())
    return envelope.to_json_bytes()


def record(value: bytes | None, *, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record(topic=REGISTRY_BUSINESS, partition=3, offset=1207, key=b"business-key", value=value, headers=headers)


class Handler:
    """A handler that fails with the given errors, in order, before succeeding."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls: list[tuple[Envelope, EventPayload]] = []

    async def __call__(self, conn: object, envelope: Envelope, payload: EventPayload) -> None:
        self.calls.append((envelope, payload))
        if self.failures:
            raise self.failures.pop(0)


class AlwaysFails(Handler):
    async def __call__(self, conn: object, envelope: Envelope, payload: EventPayload) -> None:
        self.calls.append((envelope, payload))
        raise RuntimeError(f"attempt {len(self.calls)} failed")


def consumed(metrics: MessagingMetrics, outcome: str) -> float:
    return metrics.registry.get_sample_value(
        "berdaya_consumer_records_total", {"consumer": "unit-test", "outcome": outcome}
    ) or 0.0


# ---------------------------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------------------------


async def test_a_valid_record_is_decoded_and_handed_to_its_handler_once() -> None:
    handler = Handler()
    metrics = MessagingMetrics(CollectorRegistry())
    consumer = new_consumer({"BusinessRegistered": handler}, metrics=metrics)

    outcome = await consumer.handle(record(registered_bytes()))

    assert outcome is Outcome.PROCESSED
    ((envelope, payload),) = handler.calls
    assert envelope.event_type == "BusinessRegistered"
    assert isinstance(payload, BusinessRegistered)
    assert consumed(metrics, "processed") == 1


async def test_an_unparsable_record_is_dead_lettered_once_with_one_attempt() -> None:
    dead_letters, sleep, handler = FakeDeadLetters(), RecordingSleep(), Handler()
    consumer = new_consumer({"BusinessRegistered": handler}, dead_letters=dead_letters, sleep=sleep)
    garbage = record(b"{this is not json")

    outcome = await consumer.handle(garbage)

    assert outcome is Outcome.DEAD_LETTERED
    (letter,) = dead_letters.sent
    assert (letter.record, letter.consumer, letter.attempts) == (garbage, "unit-test", 1)
    assert isinstance(letter.error, ContractError)
    assert (handler.calls, sleep.delays) == ([], [])


async def test_a_record_without_a_value_is_dead_lettered() -> None:
    dead_letters = FakeDeadLetters()
    consumer = new_consumer({"BusinessRegistered": Handler()}, dead_letters=dead_letters)

    assert await consumer.handle(record(None)) is Outcome.DEAD_LETTERED
    assert [d.attempts for d in dead_letters.sent] == [1]


async def test_an_event_type_the_consumer_has_no_handler_for_is_ignored_and_not_dead_lettered() -> None:
    dead_letters, handler = FakeDeadLetters(), Handler()
    metrics = MessagingMetrics(CollectorRegistry())
    consumer = new_consumer({"NIBIssued": handler}, dead_letters=dead_letters, metrics=metrics)

    outcome = await consumer.handle(record(registered_bytes()))

    assert outcome is Outcome.IGNORED
    assert (dead_letters.sent, handler.calls) == ([], [])
    assert consumed(metrics, "ignored") == 1


async def test_a_handled_event_type_in_a_version_newer_than_known_is_dead_lettered_at_once() -> None:
    dead_letters, sleep, handler = FakeDeadLetters(), RecordingSleep(), Handler()
    consumer = new_consumer({"BusinessRegistered": handler}, dead_letters=dead_letters, sleep=sleep)
    newer = Envelope.from_bytes(registered_bytes()).model_copy(update={"event_version": 2})

    outcome = await consumer.handle(record(newer.to_json_bytes()))

    assert outcome is Outcome.DEAD_LETTERED
    (letter,) = dead_letters.sent
    assert isinstance(letter.error, UnknownEvent)
    assert letter.attempts == 1
    assert (handler.calls, sleep.delays) == ([], [])


async def test_a_handler_failing_every_time_is_retried_max_attempts_times_then_dead_lettered_with_the_last_error() -> None:
    dead_letters, sleep, handler = FakeDeadLetters(), RecordingSleep(), AlwaysFails()
    metrics = MessagingMetrics(CollectorRegistry())
    consumer = new_consumer(
        {"BusinessRegistered": handler}, dead_letters=dead_letters, sleep=sleep, metrics=metrics, max_attempts=4,
        retry_backoff=0.2,
    )  # fmt: skip
    failing = record(registered_bytes())

    outcome = await consumer.handle(failing)

    assert outcome is Outcome.DEAD_LETTERED
    assert len(handler.calls) == 4
    assert sleep.delays == pytest.approx([0.2, 0.4, 0.8])  # exponential backoff, none after the last attempt
    (letter,) = dead_letters.sent
    assert (letter.record, letter.attempts) == (failing, 4)
    assert str(letter.error) == "attempt 4 failed"
    assert metrics.registry.get_sample_value("berdaya_consumer_retries_total", {"consumer": "unit-test"}) == 4
    assert metrics.registry.get_sample_value(
        "berdaya_dlq_records_total", {"consumer": "unit-test", "topic": REGISTRY_BUSINESS}
    ) == 1


async def test_a_handler_failing_twice_then_succeeding_is_processed_and_nothing_is_dead_lettered() -> None:
    dead_letters, sleep = FakeDeadLetters(), RecordingSleep()
    handler = Handler(RuntimeError("deadlock"), ValueError("serialization failure"))
    consumer = new_consumer({"BusinessRegistered": handler}, dead_letters=dead_letters, sleep=sleep, retry_backoff=0.5)

    outcome = await consumer.handle(record(registered_bytes()))

    assert outcome is Outcome.PROCESSED
    assert len(handler.calls) == 3
    assert sleep.delays == pytest.approx([0.5, 1.0])
    assert dead_letters.sent == []


async def test_a_single_attempt_consumer_dead_letters_a_failure_without_sleeping() -> None:
    dead_letters, sleep = FakeDeadLetters(), RecordingSleep()
    consumer = new_consumer({"BusinessRegistered": AlwaysFails()}, dead_letters=dead_letters, sleep=sleep, max_attempts=1)

    assert await consumer.handle(record(registered_bytes())) is Outcome.DEAD_LETTERED
    assert sleep.delays == []
    assert [d.attempts for d in dead_letters.sent] == [1]


@pytest.mark.parametrize(
    "error",
    [OSError("connection reset"), ConnectionRefusedError(111, "refused"), asyncpg.PostgresConnectionError("gone")],
)
async def test_an_infrastructure_error_is_re_raised_for_redelivery_and_never_dead_lettered(error: BaseException) -> None:
    dead_letters, sleep, handler = FakeDeadLetters(), RecordingSleep(), Handler(error)
    consumer = new_consumer({"BusinessRegistered": handler}, dead_letters=dead_letters, sleep=sleep, retry_backoff=0.2)

    with pytest.raises(type(error)):
        await consumer.handle(record(registered_bytes()))

    assert dead_letters.sent == []
    assert len(handler.calls) == 1  # not retried in the loop: the record comes back by redelivery
    assert sleep.delays == pytest.approx([2.0])  # a pause before giving the record back


async def test_the_pause_before_redelivery_is_capped_at_five_seconds() -> None:
    sleep = RecordingSleep()
    consumer = new_consumer({"BusinessRegistered": Handler(OSError("down"))}, sleep=sleep, retry_backoff=3.0)

    with pytest.raises(OSError):
        await consumer.handle(record(registered_bytes()))
    assert sleep.delays == [5.0]


async def test_the_same_event_delivered_twice_is_applied_once() -> None:
    handler = Handler()
    metrics = MessagingMetrics(CollectorRegistry())
    consumer = new_consumer({"BusinessRegistered": handler}, metrics=metrics)
    value = registered_bytes()

    first = await consumer.handle(record(value))
    again = await consumer.handle(Record(REGISTRY_BUSINESS, 3, 5000, b"business-key", value))  # relay re-publish

    assert (first, again) == (Outcome.PROCESSED, Outcome.DUPLICATE)
    assert len(handler.calls) == 1
    assert metrics.registry.get_sample_value("berdaya_inbox_duplicates_total", {"consumer": "unit-test"}) == 1


async def test_a_consumer_lists_the_event_types_it_handles_in_order() -> None:
    consumer = new_consumer({"NIBIssued": Handler(), "BusinessRegistered": Handler()})
    assert consumer.event_types == ["BusinessRegistered", "NIBIssued"]

"""Tests EventConsumer's one path, handle_batch: parse, apply once through the inbox, retry, dead-letter what is the
record's fault and never what is the infrastructure's. With an in-memory inbox, fake dead letters and a fake clock:
no database, no Kafka, no waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from services.notifier.store_pg import PgNotifierUnitOfWork
from shared.contracts import ContractError, Envelope, EventPayload, UnknownEvent, new_envelope
from shared.contracts.registry import BusinessRegistered, NIBIssued
from shared.contracts.topics import REGISTRY_BUSINESS
from shared.db import DatabaseBusy
from shared.messaging.consumer import (
    BatchTransaction,
    Delivery,
    Failure,
    Outcome,
    RecordRefused,
    RetryPolicy,
    TransientFailure,
    classify,
)
from shared.messaging.dead_letters import Record
from shared.messaging.subscriptions import MAX_POLL_INTERVAL_MS, Subscription
from shared.observability import MessagingMetrics
from shared.unit_of_work import Cause, Publisher

from .fakes import FakeCatchUp, FakeDeadLetters, InMemoryInboxConsumer, RecordingSleep, new_consumer

BUSINESS_ID = uuid.UUID("3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f")
REGISTERED = {"BusinessRegistered"}


def registered(business_id: uuid.UUID | None = None, **overrides: Any) -> BusinessRegistered:
    values: dict[str, Any] = dict(
        business_id=business_id or uuid.uuid4(), business_version=1, business_name="Sei Sapi Ibu Maria",
        kbli_code="10130", kbli_version=2020, kecamatan="Oebobo", kecamatan_code="53.71.04", kecamatan_bps="5371030",
        kelurahan="Fatululi", kelurahan_code="53.71.04.1011", scale="micro", scale_basis="annual_sales",
        annual_sales_rupiah=50_000_000, youth_owned=False, women_owned=True, nib_status="none",
        contact_phone="+6281234567890", status="active", registered_at=datetime(2026, 3, 10, 2, 0, tzinfo=UTC),
        source="officer",
    )  # fmt: skip
    return BusinessRegistered(**{**values, **overrides})


def envelope(payload: EventPayload | None = None) -> Envelope:
    return new_envelope(payload or registered(), producer="registry", correlation_id=uuid.uuid4())


_offsets = iter(range(1000, 1_000_000))


def record(value: Envelope | bytes | None = None, *, offset: int | None = None,
           headers: tuple[tuple[str, bytes], ...] = ()) -> Record:  # fmt: skip
    """A record on the registry's topic; by default of a fresh BusinessRegistered."""
    raw = (value or envelope()).to_json_bytes() if value is None or isinstance(value, Envelope) else value
    return Record(REGISTRY_BUSINESS, 3, offset if offset is not None else next(_offsets), b"business-key", raw, headers)


def tombstone() -> Record:
    """A record without a value."""
    return Record(REGISTRY_BUSINESS, 3, next(_offsets), b"business-key", None)


def event_id(r: Record) -> uuid.UUID:
    return Envelope.from_bytes(r.value).event_id


class ScriptedApply:
    """What a service does with the new events of a batch: records every call, fails as scripted for given events,
    and makes its effects (the event ids in `applied`) count only once the consumer's transaction commits."""

    def __init__(self) -> None:
        self.calls: list[list[uuid.UUID]] = []
        self.deliveries: list[Delivery] = []
        self.applied: list[uuid.UUID] = []
        self._failures: dict[uuid.UUID, list[BaseException]] = {}
        self._always: dict[uuid.UUID, Callable[[int], BaseException]] = {}

    def fails(self, event: uuid.UUID, *errors: BaseException) -> None:
        """The event's next applications raise these, in order; then it applies."""
        self._failures[event] = list(errors)

    def always_fails(self, event: uuid.UUID, error: Callable[[int], BaseException]) -> None:
        """Every application of the event raises error(n), n counting the calls that included it."""
        self._always[event] = error

    def attempts(self, event: uuid.UUID) -> int:
        return sum(event in call for call in self.calls)

    async def __call__(self, tx: BatchTransaction, deliveries: Sequence[Delivery]) -> None:
        ids = [d.envelope.event_id for d in deliveries]
        self.calls.append(ids)
        self.deliveries.extend(deliveries)
        for event in ids:
            if event in self._always:
                raise self._always[event](self.attempts(event))
            pending = self._failures.get(event)
            if pending:
                raise pending.pop(0)
        tx.after_commit.append(lambda: self.applied.extend(ids))


def sample(metrics: MessagingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"consumer": "unit-test", **labels}) or 0.0


def consumed(metrics: MessagingMetrics, outcome: str) -> float:
    return sample(metrics, "berdaya_consumer_records_total", outcome=outcome)


def new_metrics() -> MessagingMetrics:
    return MessagingMetrics(CollectorRegistry())


# The infrastructure's failures: waiting is the cure, and the record is never at fault.
TRANSIENT_ERRORS = [
    pytest.param(lambda: ConnectionResetError(104, "Connection reset by peer"), id="ConnectionResetError"),
    pytest.param(lambda: DatabaseBusy("no database connection free within 10s"), id="DatabaseBusy"),
    pytest.param(lambda: asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), id="DeadlockDetectedError"),
    pytest.param(lambda: asyncpg.exceptions.SerializationError("could not serialize access"), id="SerializationError"),
    pytest.param(lambda: asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only txn"),
                 id="ReadOnlySQLTransactionError"),  # fmt: skip
    pytest.param(lambda: asyncpg.exceptions.InvalidPasswordError('password authentication failed for user "berdaya"'),
                 id="InvalidPasswordError"),  # fmt: skip
]

# A handler that runs too long: asyncio's timeout (policy.handler_timeout) or the server's statement_timeout.
TIMEOUTS = [
    pytest.param(lambda: TimeoutError(), id="TimeoutError"),
    pytest.param(lambda: asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
                 id="QueryCanceledError"),  # fmt: skip
]


# ---------------------------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------------------------


async def test_a_valid_record_is_decoded_and_applied_once_in_one_transaction() -> None:
    apply, metrics = ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, metrics=metrics)
    valid = record()

    outcomes = await consumer.handle_batch([valid])

    assert outcomes == [Outcome.PROCESSED]
    (delivery,) = apply.deliveries
    assert delivery.envelope.event_type == "BusinessRegistered"
    assert isinstance(delivery.payload, BusinessRegistered)
    assert apply.applied == [event_id(valid)]
    assert (consumer.transactions, consumer.inbox) == (1, {event_id(valid)})
    assert consumed(metrics, "processed") == 1


async def test_a_batch_is_applied_in_one_transaction_in_the_order_of_its_records() -> None:
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED)
    batch = [record() for _ in range(5)]

    outcomes = await consumer.handle_batch(batch)

    assert outcomes == [Outcome.PROCESSED] * 5
    assert apply.calls == [[event_id(r) for r in batch]]
    assert consumer.transactions == 1


async def test_an_empty_batch_opens_no_transaction() -> None:
    consumer = new_consumer(ScriptedApply(), REGISTERED)

    assert await consumer.handle_batch([]) == []
    assert consumer.transactions == 0


async def test_an_unparsable_record_is_dead_lettered_at_once_and_the_partition_moves_on() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep)
    garbage, after = record(b"{this is not json"), record()

    outcomes = await consumer.handle_batch([garbage, after])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    (letter,) = dead_letters.sent
    assert (letter.record, letter.consumer, letter.attempts) == (garbage, "unit-test", 1)
    assert isinstance(letter.error, ContractError)
    assert apply.applied == [event_id(after)]
    assert sleep.delays == []  # poison is not retried


async def test_a_record_without_a_value_is_dead_lettered_with_one_attempt() -> None:
    dead_letters = FakeDeadLetters()
    consumer = new_consumer(ScriptedApply(), REGISTERED, dead_letters=dead_letters)

    assert await consumer.handle_batch([tombstone()]) == [Outcome.DEAD_LETTERED]
    assert [d.attempts for d in dead_letters.sent] == [1]
    assert isinstance(dead_letters.sent[0].error, ContractError)


async def test_a_payload_that_breaks_its_contract_is_dead_lettered_at_once_without_being_applied() -> None:
    dead_letters, apply = FakeDeadLetters(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters)
    good = envelope()
    broken = good.model_copy(update={"payload": {**good.payload, "annual_sales_rupiah": "50000000"}})

    assert await consumer.handle_batch([record(broken)]) == [Outcome.DEAD_LETTERED]
    (letter,) = dead_letters.sent
    assert letter.attempts == 1
    assert "annual_sales_rupiah" in str(letter.error)
    assert apply.calls == []


async def test_an_event_type_the_consumer_does_not_apply_is_ignored_and_not_dead_lettered() -> None:
    dead_letters, apply, metrics = FakeDeadLetters(), ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, {"NIBIssued"}, dead_letters=dead_letters, metrics=metrics)

    outcomes = await consumer.handle_batch([record()])

    assert outcomes == [Outcome.IGNORED]
    assert (dead_letters.sent, apply.calls, consumer.transactions) == ([], [], 0)
    assert consumed(metrics, "ignored") == 1


async def test_an_ignored_type_is_not_even_decoded_so_a_version_unknown_to_the_consumer_is_no_trouble() -> None:
    dead_letters = FakeDeadLetters()
    consumer = new_consumer(ScriptedApply(), {"NIBIssued"}, dead_letters=dead_letters)
    newer = envelope().model_copy(update={"event_version": 99})

    assert await consumer.handle_batch([record(newer)]) == [Outcome.IGNORED]
    assert dead_letters.sent == []


async def test_a_record_whose_header_names_a_type_the_consumer_does_not_take_is_ignored_unread() -> None:
    dead_letters = FakeDeadLetters()
    consumer = new_consumer(ScriptedApply(), REGISTERED, dead_letters=dead_letters)

    unread = record(b"{not even json", headers=(("event_type", b"NIBIssued"),))

    assert await consumer.handle_batch([unread]) == [Outcome.IGNORED]
    assert dead_letters.sent == []


async def test_a_record_whose_header_names_a_type_the_consumer_takes_is_still_judged_by_its_value() -> None:
    dead_letters, apply = FakeDeadLetters(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters)
    named = (("event_type", b"BusinessRegistered"),)
    garbage, good = record(b"{not even json", headers=named), record(headers=named)
    other = record(envelope(), headers=(("event_type", "tipe-t\u00eddak-sah".encode("latin-1")),))  # not UTF-8

    outcomes = await consumer.handle_batch([garbage, good, other])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.PROCESSED, Outcome.PROCESSED]
    assert [letter.record for letter in dead_letters.sent] == [garbage]
    assert apply.applied == [event_id(good), event_id(other)]


async def test_an_applied_event_type_in_a_version_newer_than_known_is_dead_lettered_at_once() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep)
    newer = envelope().model_copy(update={"event_version": 3})

    assert await consumer.handle_batch([record(newer)]) == [Outcome.DEAD_LETTERED]
    (letter,) = dead_letters.sent
    assert isinstance(letter.error, UnknownEvent)
    assert letter.attempts == 1
    assert (apply.calls, sleep.delays) == ([], [])


async def test_an_old_version_is_upcast_before_it_is_applied() -> None:
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED)
    current = envelope()
    v1 = current.model_copy(update={"event_version": 1, "payload": {**current.payload, "youth_until": "2026-08-16"}})

    assert await consumer.handle_batch([record(v1)]) == [Outcome.PROCESSED]
    (delivery,) = apply.deliveries
    assert delivery.payload == registered(business_id=BusinessRegistered.model_validate(current.payload).business_id)


async def test_an_old_version_its_upcaster_cannot_read_goes_to_the_dead_letter_topic_rather_than_back_for_ever() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, {"TrainingCompleted"}, dead_letters=dead_letters, sleep=sleep)
    # TrainingCompleted v1 without the fields its upcaster reads (it raised a KeyError, which was retried).
    broken = envelope().model_copy(update={"event_type": "TrainingCompleted", "event_version": 1, "payload": {}})

    assert await consumer.handle_batch([record(broken)]) == [Outcome.DEAD_LETTERED]
    (letter,) = dead_letters.sent
    assert isinstance(letter.error, ContractError) and "could not be upcast" in str(letter.error)
    assert (apply.calls, sleep.delays) == ([], [])


# ---------------------------------------------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------------------------------------------


async def test_the_same_event_twice_in_one_batch_is_applied_once() -> None:
    apply, metrics = ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, metrics=metrics)
    value = envelope()

    outcomes = await consumer.handle_batch([record(value), record(value)])

    assert outcomes == [Outcome.PROCESSED, Outcome.DUPLICATE]
    assert apply.calls == [[value.event_id]]
    assert apply.applied == [value.event_id]
    assert sample(metrics, "berdaya_inbox_duplicates_total") == 1


async def test_the_same_event_delivered_again_in_a_later_batch_is_not_applied_again() -> None:
    apply, metrics = ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, metrics=metrics)
    value = envelope()

    first = await consumer.handle_batch([record(value, offset=1207)])
    again = await consumer.handle_batch([record(value, offset=5000)])  # a relay re-publish: a new offset

    assert (first, again) == ([Outcome.PROCESSED], [Outcome.DUPLICATE])
    assert apply.applied == [value.event_id]
    assert apply.calls == [[value.event_id]]  # nothing new in the second batch: apply is not called
    assert sample(metrics, "berdaya_inbox_duplicates_total") == 1
    assert (consumed(metrics, "processed"), consumed(metrics, "duplicate")) == (1, 1)


async def test_a_duplicate_in_a_batch_split_by_a_failure_is_still_applied_once() -> None:
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, policy=RetryPolicy(max_attempts=2))
    value, bad = envelope(), envelope()
    apply.always_fails(bad.event_id, lambda n: RuntimeError(f"attempt {n} failed"))

    outcomes = await consumer.handle_batch([record(value), record(bad), record(value)])

    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.DUPLICATE]
    assert apply.applied == [value.event_id]


async def test_an_event_whose_transaction_failed_is_not_remembered_by_the_inbox() -> None:
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, policy=RetryPolicy(max_attempts=1))
    value = envelope()
    apply.fails(value.event_id, RuntimeError("boom"))

    assert await consumer.handle_batch([record(value)]) == [Outcome.DEAD_LETTERED]
    assert consumer.inbox == set()
    # Re-driven from the dead-letter topic once the fault is fixed, it is applied.
    assert await consumer.handle_batch([record(value)]) == [Outcome.PROCESSED]
    assert apply.applied == [value.event_id]


# ---------------------------------------------------------------------------------------------------------------
# The record's own failures: retried alone, then dead-lettered
# ---------------------------------------------------------------------------------------------------------------


async def test_a_record_failing_every_time_is_retried_alone_then_dead_lettered_while_its_batch_applies() -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics,
                            policy=RetryPolicy(max_attempts=4, backoff=0.2))  # fmt: skip
    before, failing, after = record(), record(), record()
    apply.always_fails(event_id(failing), lambda n: RuntimeError(f"attempt {n} failed"))

    outcomes = await consumer.handle_batch([before, failing, after])

    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    ids = [event_id(r) for r in (before, failing, after)]
    # The batch together once, then each record alone: the failing one max_attempts times.
    assert apply.calls == [ids, [ids[0]], [ids[1]], [ids[1]], [ids[1]], [ids[1]], [ids[2]]]
    assert apply.applied == [ids[0], ids[2]]  # each applied once: the failed batch left no trace
    assert sleep.delays == pytest.approx([0.2, 0.4, 0.8])  # doubling, none after the last attempt
    (letter,) = dead_letters.sent
    assert (letter.record, letter.attempts) == (failing, 4)
    assert str(letter.error) == "attempt 5 failed"  # the last error: the batch's attempt was the first
    assert sample(metrics, "berdaya_consumer_retries_total") == 4
    assert sample(metrics, "berdaya_dlq_records_total", topic=REGISTRY_BUSINESS) == 1
    assert sample(metrics, "berdaya_consumer_transient_failures_total") == 0


async def test_a_batch_whose_records_all_fail_leaves_those_after_its_retry_window_for_the_next_delivery() -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics,
                            policy=RetryPolicy(max_attempts=5, backoff=1.0, retry_window=10.0))  # fmt: skip
    records = [record() for _ in range(6)]
    for r in records:
        apply.always_fails(event_id(r), lambda n: RuntimeError(f"attempt {n} failed"))

    outcomes = await consumer.handle_batch(records)

    assert outcomes == [Outcome.DEAD_LETTERED] * 2 + [Outcome.DEFERRED] * 4
    # Waits of 1, 2 and 4 s for the first; 1 and 2 for the second; then none: the next would end past 10 s.
    assert sleep.delays == [1.0, 2.0, 4.0, 1.0, 2.0]
    assert [(letter.record, letter.attempts) for letter in dead_letters.sent] == [(records[0], 4), (records[1], 3)]
    assert all(apply.attempts(event_id(r)) == 1 for r in records[2:])  # only with the batch
    assert consumed(metrics, "dead_lettered") == 2 and consumed(metrics, "deferred") == 0  # counted once handled

    outcomes = await consumer.handle_batch(records[2:])  # the next delivery, with a window of its own

    assert outcomes == [Outcome.DEAD_LETTERED] * 2 + [Outcome.DEFERRED] * 2
    assert [letter.record for letter in dead_letters.sent] == records[:4]


def taking(sleep: RecordingSleep, seconds: float, error: BaseException) -> Callable[[int], BaseException]:
    """A failure that takes `seconds` of the consumer's clock to happen, as a handler running to its timeout does."""
    def fail(_: int) -> BaseException:
        sleep.clock.now += seconds
        return error

    return fail


async def test_records_that_each_run_to_the_handler_timeout_never_hold_a_delivery_past_kafkas_poll_interval() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    policy = RetryPolicy()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, policy=policy)
    records = [record() for _ in range(10)]
    for r in records:
        apply.always_fails(event_id(r), taking(sleep, policy.handler_timeout, RuntimeError("ran out of time")))

    deliveries, left = [], records
    while left:
        started = sleep.clock.now
        outcomes = await consumer.handle_batch(left)
        deliveries.append(sleep.clock.now - started)
        assert outcomes[0] is Outcome.DEAD_LETTERED  # each delivery moves the partition on
        left = left[outcomes.count(Outcome.DEAD_LETTERED):]
        assert set(outcomes[len(outcomes) - len(left):]) <= {Outcome.DEFERRED}

    # Ten records of 30 s each used to take one delivery 360 s, past Kafka's 300 s, again on every redelivery.
    assert max(deliveries) < MAX_POLL_INTERVAL_MS / 1000 / 2
    assert [letter.record for letter in dead_letters.sent] == records  # each once, in order


async def test_records_deferred_after_the_retry_window_are_neither_applied_nor_dead_lettered_in_that_delivery() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep,
                            policy=RetryPolicy(max_attempts=2, backoff=1.0, retry_window=5.0))  # fmt: skip
    slow, healthy, unreadable = record(), record(), record(b"{not an event")
    apply.always_fails(event_id(slow), taking(sleep, 3.0, RuntimeError("ran out of time")))

    outcomes = await consumer.handle_batch([slow, healthy, unreadable])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.DEFERRED, Outcome.DEFERRED]
    assert [letter.record for letter in dead_letters.sent] == [slow]  # the unreadable one waits its turn
    assert apply.applied == []

    assert await consumer.handle_batch([healthy, unreadable]) == [Outcome.PROCESSED, Outcome.DEAD_LETTERED]
    assert apply.applied == [event_id(healthy)]


async def test_a_record_its_handler_refuses_is_dead_lettered_at_its_first_attempt_alone_without_backoff() -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics,
                            policy=RetryPolicy(max_attempts=5, backoff=1.0))  # fmt: skip
    before, refused, flaky, after = record(), record(), record(), record()
    apply.always_fails(event_id(refused), lambda n: RecordRefused(f"never applicable (call {n})"))
    apply.fails(event_id(flaky), RuntimeError("bad lookup"))  # the record's own, but maybe not for good: retried

    outcomes = await consumer.handle_batch([before, refused, flaky, after])

    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED, Outcome.PROCESSED]
    assert apply.attempts(event_id(refused)) == 2  # with its batch, then once alone
    assert sleep.delays == [1.0]  # the flaky record's backoff, none for the refused one
    (letter,) = dead_letters.sent
    assert (letter.record, letter.attempts, str(letter.error)) == (refused, 1, "never applicable (call 2)")
    assert sample(metrics, "berdaya_consumer_retries_total") == 1
    assert classify(RecordRefused("x")) is Failure.RECORD and isinstance(RecordRefused("x"), ContractError)


async def test_a_partitions_run_of_slow_bad_records_does_not_hold_up_the_batchs_other_partitions() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep,
                            policy=RetryPolicy(max_attempts=2, backoff=1.0, retry_window=5.0))  # fmt: skip
    slow = [record(), record()]  # partition 3
    for r in slow:
        apply.always_fails(event_id(r), taking(sleep, 3.0, RuntimeError("ran out of time")))
    other = [dataclasses.replace(record(), partition=4) for _ in range(2)]
    unreadable_there = dataclasses.replace(record(b"{not an event"), partition=4)
    unreadable_here = record(b"{not an event")

    outcomes = await consumer.handle_batch([slow[0], other[0], slow[1], unreadable_here, other[1], unreadable_there])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.PROCESSED, Outcome.DEFERRED, Outcome.DEFERRED,
                        Outcome.PROCESSED, Outcome.DEAD_LETTERED]  # fmt: skip
    assert apply.applied == [event_id(other[0]), event_id(other[1])]
    assert [letter.record for letter in dead_letters.sent] == [slow[0], unreadable_there]


async def test_the_other_partitions_records_are_deferred_too_when_their_attempt_together_fails() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep,
                            policy=RetryPolicy(max_attempts=2, backoff=1.0, retry_window=5.0))  # fmt: skip
    slow, bad_there = record(), dataclasses.replace(record(), partition=4)
    apply.always_fails(event_id(slow), taking(sleep, 3.0, RuntimeError("ran out of time")))
    apply.always_fails(event_id(bad_there), lambda n: RuntimeError("bad lookup"))

    outcomes = await consumer.handle_batch([slow, bad_there])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.DEFERRED]
    assert apply.attempts(event_id(bad_there)) == 2  # with the batch, then with the other partitions' records


def test_the_retry_window_and_one_last_attempt_fit_inside_kafkas_max_poll_interval() -> None:
    policy = RetryPolicy()
    # The longest one attempt takes while the database answers its other statements: transient failures retried
    # to their budget, then one more to the handler's timeout.
    attempt = policy.transient_budget + policy.handler_timeout
    # The batch's own attempt may end past the window; then one record gets its attempt alone, and the other
    # partitions' records one attempt together.
    assert max(policy.retry_window, attempt) + 2 * attempt < MAX_POLL_INTERVAL_MS / 1000
    assert MAX_POLL_INTERVAL_MS == inspect.signature(AIOKafkaConsumer).parameters["max_poll_interval_ms"].default


async def test_a_record_failing_twice_then_succeeding_is_processed_and_nothing_is_dead_lettered() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep,
                            policy=RetryPolicy(backoff=0.5))  # fmt: skip
    flaky = record()
    apply.fails(event_id(flaky), RuntimeError("bad lookup"), ValueError("still bad"))

    assert await consumer.handle_batch([flaky]) == [Outcome.PROCESSED]
    assert apply.attempts(event_id(flaky)) == 3
    assert sleep.delays == pytest.approx([0.5, 1.0])
    assert dead_letters.sent == []
    assert apply.applied == [event_id(flaky)]


async def test_a_single_attempt_policy_dead_letters_a_failure_without_sleeping() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep,
                            policy=RetryPolicy(max_attempts=1))  # fmt: skip
    failing = record()
    apply.always_fails(event_id(failing), lambda n: RuntimeError("no"))

    assert await consumer.handle_batch([failing]) == [Outcome.DEAD_LETTERED]
    assert sleep.delays == []
    assert [d.attempts for d in dead_letters.sent] == [1]


@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_a_handler_that_always_times_out_is_dead_lettered_after_max_attempts_and_does_not_block_the_next_record(
    timeout: Callable[[], BaseException],
) -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics,
                            policy=RetryPolicy(max_attempts=3, backoff=0.2))  # fmt: skip
    slow, next_one = record(), record()
    apply.always_fails(event_id(slow), lambda n: timeout())

    outcomes = await consumer.handle_batch([slow, next_one])

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert apply.attempts(event_id(slow)) == 1 + 3  # with its batch, then alone max_attempts times
    (letter,) = dead_letters.sent
    assert (letter.record, letter.attempts, type(letter.error)) == (slow, 3, type(timeout()))
    assert apply.applied == [event_id(next_one)]
    assert sample(metrics, "berdaya_consumer_transient_failures_total") == 0


async def test_a_timeout_while_the_database_does_not_answer_is_the_database_s_and_nothing_is_dead_lettered() -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    policy = RetryPolicy(transient_backoff=0.5, transient_max_backoff=10.0, transient_budget=5.0)
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics, policy=policy)
    consumer.database_answers = False  # a stalled network to PostgreSQL: every statement times out
    stalled = record()
    apply.always_fails(event_id(stalled), lambda n: TimeoutError())

    with pytest.raises(TransientFailure):
        await consumer.handle_batch([stalled, record()])

    assert dead_letters.sent == [] and consumed(metrics, "dead_lettered") == 0  # the batch is redelivered instead
    assert sample(metrics, "berdaya_consumer_transient_failures_total") > 0


async def test_a_handler_running_past_the_handler_timeout_is_cut_off_and_dead_lettered() -> None:
    dead_letters, apply = FakeDeadLetters(), ScriptedApply()
    stuck = record()

    async def hangs_on_the_stuck_record(tx: BatchTransaction, deliveries: Sequence[Delivery]) -> None:
        if any(d.envelope.event_id == event_id(stuck) for d in deliveries):
            await asyncio.Event().wait()  # never set: only the consumer's timeout ends this
        await apply(tx, deliveries)

    consumer = new_consumer(hangs_on_the_stuck_record, REGISTERED, dead_letters=dead_letters,
                            policy=RetryPolicy(max_attempts=2, handler_timeout=0.0))  # fmt: skip
    after = record()

    assert await consumer.handle_batch([stuck, after]) == [Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert [(d.record, d.attempts) for d in dead_letters.sent] == [(stuck, 2)]
    assert apply.applied == [event_id(after)]


async def test_a_dead_letter_topic_that_does_not_acknowledge_fails_the_batch_so_nothing_is_lost() -> None:
    unreachable = KafkaConnectionError("dead-letter topic unreachable")
    consumer = new_consumer(ScriptedApply(), REGISTERED, dead_letters=FakeDeadLetters(unreachable=unreachable))

    with pytest.raises(KafkaConnectionError):
        await consumer.handle_batch([record(b"garbage")])  # the offset is not committed: the batch comes back


# ---------------------------------------------------------------------------------------------------------------
# The infrastructure's failures: retried with backoff, never dead-lettered
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", TRANSIENT_ERRORS)
async def test_a_transient_failure_in_the_transaction_is_retried_with_backoff_and_never_dead_lettered(
    error: Callable[[], BaseException],
) -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics,
                            policy=RetryPolicy(max_attempts=2, transient_backoff=0.5))  # fmt: skip
    one, two = record(), record()
    apply.fails(event_id(one), error(), error(), error())  # more failures than max_attempts: they don't count

    outcomes = await consumer.handle_batch([one, two])

    assert outcomes == [Outcome.PROCESSED, Outcome.PROCESSED]
    ids = [event_id(one), event_id(two)]
    assert apply.calls == [ids] * 4  # the whole batch again each time: not split, not blamed on a record
    assert apply.applied == ids
    assert sleep.delays == pytest.approx([0.5, 1.0, 2.0])
    assert dead_letters.sent == []
    assert sample(metrics, "berdaya_consumer_transient_failures_total") == 3
    assert sample(metrics, "berdaya_consumer_retries_total") == 0


@pytest.mark.parametrize("error", TRANSIENT_ERRORS)
async def test_an_outage_outlasting_the_transient_budget_raises_transient_failure_and_dead_letters_nothing(
    error: Callable[[], BaseException],
) -> None:
    dead_letters, sleep, apply, metrics = FakeDeadLetters(), RecordingSleep(), ScriptedApply(), new_metrics()
    policy = RetryPolicy(transient_backoff=0.5, transient_max_backoff=10.0, transient_budget=60.0)
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, metrics=metrics, policy=policy,
                            outages=[error() for _ in range(1000)])  # fmt: skip

    with pytest.raises(TransientFailure) as raised:
        await consumer.handle_batch([record(), record()])

    assert type(raised.value.__cause__) is type(error())
    # Doubling from 0.5s, capped at 10s, until the next wait would pass the 60s budget.
    assert sleep.delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0])
    assert sum(sleep.delays) <= policy.transient_budget
    assert (dead_letters.sent, apply.calls, consumer.inbox) == ([], [], set())
    assert sample(metrics, "berdaya_consumer_transient_failures_total") == 10
    assert consumed(metrics, "dead_lettered") == 0


async def test_a_bad_record_in_a_batch_an_outage_sends_back_is_dead_lettered_once_when_the_batch_goes_through() -> None:
    dead_letters, sleep, apply = FakeDeadLetters(), RecordingSleep(), ScriptedApply()
    policy = RetryPolicy(transient_backoff=0.5, transient_max_backoff=10.0, transient_budget=1.0)
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, sleep=sleep, policy=policy,
                            outages=[DatabaseBusy("pool exhausted") for _ in range(4)])  # fmt: skip
    batch = [record(b"not an envelope"), record()]

    for _ in range(2):  # the outage outlasts the budget twice: the batch comes back twice
        with pytest.raises(TransientFailure):
            await consumer.handle_batch(batch)
    assert dead_letters.sent == []
    assert await consumer.handle_batch(batch) == [Outcome.DEAD_LETTERED, Outcome.PROCESSED]

    assert [letter.record.offset for letter in dead_letters.sent] == [batch[0].offset]


async def test_a_database_outage_that_ends_within_the_budget_loses_nothing() -> None:
    sleep, apply, dead_letters = RecordingSleep(), ScriptedApply(), FakeDeadLetters()
    consumer = new_consumer(apply, REGISTERED, sleep=sleep, dead_letters=dead_letters,
                            outages=[DatabaseBusy("pool exhausted"), ConnectionRefusedError(111, "no")])  # fmt: skip
    batch = [record(), record()]

    assert await consumer.handle_batch(batch) == [Outcome.PROCESSED, Outcome.PROCESSED]
    assert apply.applied == [event_id(r) for r in batch]
    assert (consumer.transactions, dead_letters.sent) == (3, [])


async def test_an_outage_while_a_failing_record_is_retried_alone_does_not_use_up_its_attempts() -> None:
    dead_letters, apply = FakeDeadLetters(), ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, dead_letters=dead_letters, policy=RetryPolicy(max_attempts=2))
    flaky = record()
    apply.fails(event_id(flaky), RuntimeError("own fault"), asyncpg.exceptions.DeadlockDetectedError("deadlock"),
                asyncpg.exceptions.SerializationError("serialization"))  # fmt: skip

    assert await consumer.handle_batch([flaky]) == [Outcome.PROCESSED]
    assert dead_letters.sent == []


# ---------------------------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    *TRANSIENT_ERRORS,
    pytest.param(lambda: ConnectionRefusedError(111, "Connection refused"), id="ConnectionRefusedError"),
    pytest.param(lambda: asyncpg.PostgresConnectionError("connection lost"), id="PostgresConnectionError"),
    pytest.param(lambda: asyncpg.InterfaceError("connection is closed"), id="InterfaceError"),
    pytest.param(lambda: asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
                 id="CannotConnectNowError"),
    pytest.param(lambda: asyncpg.exceptions.AdminShutdownError("terminating connection"), id="AdminShutdownError"),
    pytest.param(lambda: asyncpg.exceptions.LockNotAvailableError("could not obtain lock"), id="LockNotAvailableError"),
    pytest.param(lambda: KafkaConnectionError("no broker"), id="KafkaConnectionError"),
])  # fmt: skip
def test_the_infrastructure_s_failures_are_classified_transient(error: Callable[[], BaseException]) -> None:
    assert classify(error()) is Failure.TRANSIENT


@pytest.mark.parametrize("error", [
    *TIMEOUTS,
    pytest.param(lambda: RuntimeError("a bug"), id="RuntimeError"),
    pytest.param(lambda: KeyError("missing"), id="KeyError"),
    pytest.param(lambda: ContractError("not a Berdaya envelope"), id="ContractError"),
    pytest.param(lambda: asyncpg.exceptions.CheckViolationError("violates check constraint"), id="CheckViolationError"),
    pytest.param(lambda: asyncpg.exceptions.UniqueViolationError("duplicate key"), id="UniqueViolationError"),
])  # fmt: skip
def test_a_record_s_own_failures_and_timeouts_are_classified_the_record_s(error: Callable[[], BaseException]) -> None:
    assert classify(error()) is Failure.RECORD


# ---------------------------------------------------------------------------------------------------------------
# After commit
# ---------------------------------------------------------------------------------------------------------------


async def test_after_commit_callbacks_run_only_for_the_transaction_that_committed() -> None:
    ran: list[str] = []
    attempts = 0

    async def apply(tx: BatchTransaction, deliveries: Sequence[Delivery]) -> None:
        nonlocal attempts
        attempts += 1
        tx.after_commit.append(lambda n=attempts: ran.append(f"attempt {n}"))
        if attempts < 3:
            raise RuntimeError("rolled back")

    consumer = new_consumer(apply, REGISTERED)

    assert await consumer.handle_batch([record()]) == [Outcome.PROCESSED]
    assert ran == ["attempt 3"]


async def test_after_commit_callbacks_never_run_for_a_dead_lettered_record() -> None:
    ran: list[str] = []

    async def apply(tx: BatchTransaction, deliveries: Sequence[Delivery]) -> None:
        tx.after_commit.append(lambda: ran.append("counted"))
        raise RuntimeError("always")

    consumer = new_consumer(apply, REGISTERED, policy=RetryPolicy(max_attempts=2))

    assert await consumer.handle_batch([record()]) == [Outcome.DEAD_LETTERED]
    assert ran == []


async def test_a_unit_of_work_joined_to_a_batch_leaves_its_after_commit_callbacks_to_the_batch_s_commit() -> None:
    tx = BatchTransaction(conn=object())  # type: ignore[arg-type]  # never used: nothing to write
    publisher: Publisher[object] = Publisher("notifier", lambda _: [], lambda _: REGISTRY_BUSINESS)
    uow = PgNotifierUnitOfWork(tx, publisher, Cause.request(uuid.uuid4(), "officer"))
    ran: list[str] = []

    async with uow:
        uow.after_commit(lambda: ran.append("counted"))
        await uow.commit()  # no events, no audit: nothing is written

    assert ran == []  # the batch's transaction has not committed yet
    assert len(tx.after_commit) == 1
    tx.after_commit[0]()
    assert ran == ["counted"]


# ---------------------------------------------------------------------------------------------------------------
# Metrics and wiring
# ---------------------------------------------------------------------------------------------------------------


async def test_every_record_of_a_batch_is_counted_by_its_outcome() -> None:
    apply, metrics = ScriptedApply(), new_metrics()
    consumer = new_consumer(apply, REGISTERED, metrics=metrics, policy=RetryPolicy(max_attempts=1))
    nib = new_envelope(NIBIssued(business_id=BUSINESS_ID, business_version=2, application_id=None, nib="1234567890123",
                                 issued_on=datetime(2026, 3, 10).date(), kecamatan_code="53.71.04"),
                       producer="registry", correlation_id=uuid.uuid4())  # fmt: skip
    value, other, failing = envelope(), envelope(), envelope()
    apply.always_fails(failing.event_id, lambda n: RuntimeError("no"))

    await consumer.handle_batch([record(value), record(value), record(nib), record(b"?"), record(failing),
                                 record(other), record(value)])  # fmt: skip

    assert {o: consumed(metrics, o) for o in ("processed", "duplicate", "ignored", "dead_lettered")} == {
        "processed": 2, "duplicate": 2, "ignored": 1, "dead_lettered": 2,
    }  # fmt: skip
    assert sample(metrics, "berdaya_inbox_duplicates_total") == 2
    assert sample(metrics, "berdaya_consumer_event_age_seconds_count") == 2  # the age of each event applied
    assert sample(metrics, "berdaya_dlq_records_total", topic=REGISTRY_BUSINESS) == 2


def test_a_consumer_applies_exactly_the_event_types_it_was_given() -> None:
    consumer = new_consumer(ScriptedApply(), ["NIBIssued", "BusinessRegistered", "NIBIssued"])
    assert isinstance(consumer, InMemoryInboxConsumer)
    assert consumer.event_types == frozenset({"BusinessRegistered", "NIBIssued"})


def test_a_subscription_lists_the_event_types_of_its_contracts_in_order() -> None:
    subscription = Subscription(REGISTRY_BUSINESS, "notifier", (NIBIssued, BusinessRegistered))

    assert subscription.event_types == ("NIBIssued", "BusinessRegistered")
    assert subscription.in_namespace("kupang").topic == "kupang.registry.business.v1"
    assert subscription.in_namespace("kupang").group_id == "kupang.notifier"


# ---------------------------------------------------------------------------------------------------------------
# Catching up after a rebuild
# ---------------------------------------------------------------------------------------------------------------

PARTITION = (REGISTRY_BUSINESS, 3)


async def test_after_a_rebuild_history_below_where_the_topic_reached_is_replayed_and_held_until_read_that_far():
    catch_up = FakeCatchUp({PARTITION: 5002})
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, catch_up=catch_up)
    old, older, new, newer = (registered() for _ in range(4))

    await consumer.handle_batch([record(envelope(old), offset=5000)])
    assert catch_up.reports == []
    await consumer.handle_batch([record(envelope(older), offset=5001), record(envelope(new), offset=5002)])
    await consumer.handle_batch([record(envelope(newer), offset=5003)])

    assert [d.replayed for d in apply.deliveries] == [True, True, False, False]
    assert catch_up.held == {str(old.business_id), str(older.business_id)}
    assert catch_up.reports == [{PARTITION}]  # told once, in the batch that read offset 5001


async def test_the_last_record_before_the_end_counts_even_when_it_is_of_a_type_the_consumer_ignores():
    catch_up = FakeCatchUp({PARTITION: 5001})
    consumer = new_consumer(ScriptedApply(), REGISTERED, catch_up=catch_up)
    issued = NIBIssued(business_id=BUSINESS_ID, business_version=2, application_id=uuid.uuid4(), nib="8120000000001",
                       issued_on=datetime(2026, 3, 11).date(), kecamatan_code="53.71.04")  # fmt: skip

    outcomes = await consumer.handle_batch([record(envelope(issued), offset=5000,
                                                   headers=(("event_type", b"NIBIssued"),))])  # fmt: skip

    assert outcomes == [Outcome.IGNORED]
    assert catch_up.reports == [{PARTITION}] and catch_up.table == {}


async def test_a_catch_up_that_could_not_be_recorded_fails_the_batch_which_comes_again_and_records_it():
    catch_up = FakeCatchUp({PARTITION: 5001})
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, catch_up=catch_up)
    batch = [record(offset=5000)]
    catch_up.down = ConnectionRefusedError(111, "Connect call failed")

    with pytest.raises(ConnectionRefusedError):
        await consumer.handle_batch(batch)
    redelivered = await consumer.handle_batch(batch)

    assert redelivered == [Outcome.DUPLICATE]
    assert catch_up.reports == [{PARTITION}] and len(apply.applied) == 1


async def test_a_consumer_with_nothing_to_catch_up_on_replays_nothing_and_reports_nothing():
    catch_up = FakeCatchUp()
    apply = ScriptedApply()
    consumer = new_consumer(apply, REGISTERED, catch_up=catch_up)

    await consumer.handle_batch([record(offset=0), record(offset=1)])

    assert [d.replayed for d in apply.deliveries] == [False, False]
    assert (catch_up.held, catch_up.reports) == (set(), [])

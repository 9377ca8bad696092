"""Dead-letter topics: writing a failed record to `<topic>.dlq`, and reading and re-driving what is there.

A DLQ record is the original value and key with headers saying which consumer failed, why, after how many
attempts, and where the record came from. Re-driving publishes the original record again to its topic with its
original event id: consumers that applied it already absorb it in their inbox, and views keep only what is newer
than what they hold (each consumer's version guard), so a re-drive never puts an old version over a newer one.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from shared.contracts.envelope import ContractError, Envelope
from shared.contracts.topics import dlq
from shared.messaging.kafka import MAX_EVENT_BYTES, KafkaAccess, safe_producer
from shared.observability import scrub


@dataclass(frozen=True, slots=True)
class Record:
    """What a consumer needs of a Kafka record; built from aiokafka's ConsumerRecord or by hand in tests."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = field(default=())

    @classmethod
    def from_kafka(cls, record: object) -> Record:
        return cls(
            topic=record.topic,  # type: ignore[attr-defined]
            partition=record.partition,  # type: ignore[attr-defined]
            offset=record.offset,  # type: ignore[attr-defined]
            key=record.key,  # type: ignore[attr-defined]
            value=record.value,  # type: ignore[attr-defined]
            headers=tuple(record.headers or ()),  # type: ignore[attr-defined]
        )


class DeadLetters(abc.ABC):
    @abc.abstractmethod
    async def send(self, record: Record, *, consumer: str, error: BaseException, attempts: int) -> None:
        """Put the original record on `<topic>.dlq` with why it failed; must raise if not acknowledged."""


def dead_letter_headers(record: Record, *, consumer: str, error: BaseException, attempts: int) -> list[tuple[str, bytes]]:
    reason = scrub(f"{type(error).__name__}: {error}")[:2000]
    return [
        *[(k, v) for k, v in record.headers if not k.startswith("dlq.")],
        ("dlq.original_topic", record.topic.encode()),
        ("dlq.original_partition", str(record.partition).encode()),
        ("dlq.original_offset", str(record.offset).encode()),
        ("dlq.consumer", consumer.encode()),
        ("dlq.error_type", type(error).__name__.encode()),
        ("dlq.error", reason.encode()),
        ("dlq.attempts", str(attempts).encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


class KafkaDeadLetters(DeadLetters):
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, record: Record, *, consumer: str, error: BaseException, attempts: int) -> None:
        # Awaiting the acknowledgement before returning means the offset is committed only once the
        # record is safe in the dead-letter topic.
        headers = dead_letter_headers(record, consumer=consumer, error=error, attempts=attempts)
        try:
            await self._producer.send_and_wait(dlq(record.topic), value=record.value, key=record.key, headers=headers)
        except MessageSizeTooLargeError:
            # A record near the size limit (another system's, on a partner topic) with our headers added: kept cut
            # short, with its size and digest, rather than refused for ever and holding its partition.
            value, key, headers = _cut_to_fit(record, headers)
            await self._producer.send_and_wait(dlq(record.topic), value=value, key=key, headers=headers)


_KEPT_KEY_BYTES = 1024
_KEPT_HEADER_BYTES = 8 * 1024


def _cut_to_fit(record: Record, headers: list[tuple[str, bytes | None]]) -> tuple[bytes, bytes | None, list]:
    """The record's dead-letter copy within a request: its value cut to MAX_EVENT_BYTES, a key over 1 KiB given as
    its digest, and its own headers left out if they take over 8 KiB; each cut said, with the size and digest of what
    was cut, in dlq.* headers. The rest of the request is room for the dlq.* headers themselves."""
    value, key = record.value or b"", record.key
    said: list[tuple[str, bytes | None]] = []
    if len(value) > MAX_EVENT_BYTES:
        said += [("dlq.value_truncated_from", str(len(value)).encode()),
                 ("dlq.value_sha256", hashlib.sha256(value).hexdigest().encode())]  # fmt: skip
        value = value[:MAX_EVENT_BYTES]
    if key is not None and len(key) > _KEPT_KEY_BYTES:
        said += [("dlq.key_truncated_from", str(len(key)).encode()),
                 ("dlq.key_sha256", hashlib.sha256(key).hexdigest().encode())]  # fmt: skip
        key = hashlib.sha256(key).hexdigest().encode()
    theirs = [(k, v) for k, v in headers if not k.startswith("dlq.")]
    if sum(len(k.encode()) + len(v or b"") for k, v in theirs) > _KEPT_HEADER_BYTES:
        said.append(("dlq.headers_dropped", str(len(theirs)).encode()))
        headers = [(k, v) for k, v in headers if k.startswith("dlq.")]
    return value, key, [*headers, *said]


# ---------------------------------------------------------------------------------------------------------------
# Reading and re-driving
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One record on a dead-letter topic, as an operator sees it."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]  # to read: each header's text (its last, if repeated; "" for a header with no value)
    # The headers as the record has them, what a re-drive sends back: the text above would turn bytes that are not
    # UTF-8 into U+FFFD and keep one of a repeated header's values.
    raw_headers: tuple[tuple[str, bytes | None], ...] | None = None

    @classmethod
    def from_kafka(cls, dlq_topic: str, record: object) -> DeadLetter:
        raw = tuple(record.headers or ())  # type: ignore[attr-defined]
        return cls(dlq_topic, record.partition, record.offset, record.key, record.value,  # type: ignore[attr-defined]
                   {k: (v or b"").decode("utf-8", "replace") for k, v in raw}, raw)  # fmt: skip

    def own_headers(self) -> list[tuple[str, bytes | None]]:
        """The original record's headers, without those its dead-lettering added."""
        raw = self.raw_headers if self.raw_headers is not None else [(k, v.encode()) for k, v in self.headers.items()]
        return [(k, v) for k, v in raw if not k.startswith("dlq.")]

    @property
    def consumer(self) -> str:
        return self.headers.get("dlq.consumer", "?")

    @property
    def error(self) -> str:
        return self.headers.get("dlq.error", "?")

    @property
    def original_topic(self) -> str:
        return self.headers.get("dlq.original_topic") or self.dlq_topic.removesuffix(".dlq")

    def envelope(self) -> Envelope | None:
        try:
            return Envelope.from_bytes(self.value)
        except ContractError:
            return None


class UnknownTopic(LookupError):
    pass


async def read_dead_letters(kafka: KafkaAccess | str, topic: str, *, patience: float = 10.0) -> list[DeadLetter]:
    """Everything on `topic`'s dead-letter topic (give the topic or its .dlq), oldest first: all of it, or an error.

    It reads up to the end offsets found as it starts. `patience` is how long it waits for records that do not come
    (Kafka slow or gone); it then raises rather than return part of the list, since re-driving part of it, or a
    checker counting part of it, would look like the whole.
    """
    dlq_topic = topic if topic.endswith(".dlq") else dlq(topic)
    consumer = AIOKafkaConsumer(**KafkaAccess.of(kafka).aiokafka(), enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")  # fmt: skip
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(dlq_topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - a fresh consumer knows no topics yet
            partitions = consumer.partitions_for_topic(dlq_topic) or set()
        tps = [TopicPartition(dlq_topic, p) for p in sorted(partitions)]
        if not tps:
            known = sorted(t for t in await consumer.topics() if t.endswith(".dlq"))
            raise UnknownTopic(f"there is no topic {dlq_topic}; the dead-letter topics are "
                               f"{', '.join(known) or 'none yet'}")  # fmt: skip
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[DeadLetter] = []
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while behind := [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            fetched = await consumer.getmany(*behind, timeout_ms=500)
            if any(fetched.values()):
                heard = loop.time()
            elif loop.time() - heard > patience:
                left = sum(ends[tp] - await consumer.position(tp) for tp in behind)
                raise TimeoutError(f"read {len(found):,} dead letters of {dlq_topic}, then Kafka sent none of the "
                                   f"{left:,} left for {patience:.0f} s")  # fmt: skip
            for tp, records in fetched.items():
                for r in records:
                    if r.offset < ends[tp]:
                        found.append(DeadLetter.from_kafka(dlq_topic, r))
        return sorted(found, key=lambda d: (d.partition, d.offset))
    finally:
        await consumer.stop()


async def _send_again(producer: AIOKafkaProducer, letter: DeadLetter) -> asyncio.Future:
    headers = letter.own_headers()
    headers.append(("redriven_from", f"{letter.dlq_topic}:{letter.partition}:{letter.offset}".encode()))
    return await producer.send(letter.original_topic, value=letter.value, key=letter.key, headers=headers)


def _cuts(letter: DeadLetter) -> list[str]:
    """What was cut from the record when it was dead-lettered, said for an operator."""
    h = letter.headers
    cuts = []
    if "dlq.value_truncated_from" in h:
        cuts.append(f"was {h['dlq.value_truncated_from']} bytes (sha256 {h.get('dlq.value_sha256', '?')}), of which "
                    f"{len(letter.value or b''):,} were kept")  # fmt: skip
    if "dlq.key_truncated_from" in h:
        cuts.append(f"had a key of {h['dlq.key_truncated_from']} bytes (sha256 {h.get('dlq.key_sha256', '?')})")
    if "dlq.headers_dropped" in h:
        cuts.append(f"lost its {h['dlq.headers_dropped']} header(s)")
    return cuts


class RedriveStopped(RuntimeError):
    """Kafka failed part way: `sent` letters, the first ones in order, were published before the batch that failed."""

    def __init__(self, sent: int, total: int, error: BaseException) -> None:
        super().__init__(f"{sent:,} of {total:,} dead letter(s) re-driven, then Kafka failed ({error!r})")
        self.sent, self.total = sent, total


REDRIVE_BATCH = 1000


async def redrive(kafka: KafkaAccess | str, letters: list[DeadLetter],
                  progress: Callable[[int], None] | None = None) -> int:  # fmt: skip
    """Publish each dead letter's original record again to its original topic, with its key, value and event id,
    plus a header saying it was re-driven. Returns how many were re-driven; `progress` is told how many so far.

    They go in batches, each waited for as a whole (one round trip each, not one per letter), in their order: the
    producer's idempotence keeps it on every partition. Kafka failing part way raises RedriveStopped.

    A letter cut short when it was dead-lettered (its value, its key or its own headers: `_cut_to_fit`) is not sent:
    it would go out as a broken event, or to another partition, and only its producer still has it whole. The others
    are sent all the same (a re-drive is absorbed by whoever applied it already), then ValueError says which were
    not, and why."""
    whole = [d for d in letters if not _cuts(d)]
    if whole:
        producer = safe_producer(kafka, "berdaya-redrive")
        await producer.start()
        sent = 0
        try:
            for start in range(0, len(whole), REDRIVE_BATCH):
                batch = whole[start:start + REDRIVE_BATCH]
                try:
                    await asyncio.gather(*[await _send_again(producer, letter) for letter in batch])
                except KafkaError as exc:
                    raise RedriveStopped(sent, len(letters), exc) from exc
                sent += len(batch)
                if progress is not None:
                    progress(sent)
        finally:
            await producer.stop()
    cut_short = [d for d in letters if _cuts(d)]
    if cut_short:
        said = "; ".join(f"{d.dlq_topic} {d.partition}:{d.offset} {', '.join(_cuts(d))}" for d in cut_short)
        raise ValueError(f"{len(whole)} of {len(letters)} dead letter(s) re-driven; {len(cut_short)} not, as each was "
                         f"cut short when it was dead-lettered: {said}. The producer must send each such event again")
    return len(whole)

"""What a partner system sees of Berdaya, and a scanner of everything partners can read.

`PartnerClient` is a partner's own client, written as a partner's engineers would write it from the AsyncAPI document
(docs/partners/asyncapi.json): confluent-kafka with the partner's SCRAM credentials, consumer groups under its own
prefix, and outcomes pushed in the documented envelope.

`scan_partner_topics` reads every topic a partner could be given (`public.*` and `partner.*`, dead-letter topics
included) of one deployment, as the admin, and reports every record that carries what partners must never get:
an NIK-shaped number, an Indonesian phone number, a birth date, or a field its payload schema does not have. A
referral may carry its owner's name and phone (that is what the owner consented to), and nothing else personal.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import types
import typing
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer, KafkaError, Producer
from pydantic import BaseModel

from shared.contracts import CATALOG, Envelope, EventPayload
from shared.contracts.topics import PARTNER_AGGREGATES, TOPIC_BY_AGGREGATE
from shared.messaging.kafka import KafkaAccess, confluent_admin

# What the broker answers a client that may not do what it asked (a refused login is told to error_cb, not poll).
DENIED = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                    KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})  # fmt: skip

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "partners" / "asyncapi.json"


# ---------------------------------------------------------------------------------------------------------------
# The partner's client
# ---------------------------------------------------------------------------------------------------------------


class Refused(Exception):
    """The broker refused the partner (an ACL or its credentials)."""

    def __init__(self, code: int, topic: str) -> None:
        super().__init__(f"refused {KafkaError(code).name()} on {topic}")
        self.code = code


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.value or b"null")

    @property
    def event_type(self) -> str | None:
        try:
            return self.envelope.get("event_type")
        except (ValueError, AttributeError):
            return None

    @property
    def payload(self) -> dict[str, Any]:
        return self.envelope["payload"]


@dataclass(frozen=True)
class PartnerClient:
    partner_id: str
    access: KafkaAccess  # the partner's own SCRAM user, as `berdaya partner add` handed it over
    group_prefix: str  # its consumer groups must start with this

    async def read(self, topic: str, until: Callable[[list[Received]], bool], *, timeout: float = 60.0,
                   group: str | None = None) -> list[Received]:  # fmt: skip
        """Every record of `topic` from the beginning, in a fresh group of the partner's own, until `until(records)`
        holds (AssertionError with what was read if it never does). Raises Refused if the broker says no."""
        return await asyncio.to_thread(self._read, topic, until, timeout, group)

    async def refusal(self, topic: str, *, timeout: float = 30.0) -> int | None:
        """The error code the broker answers a read of `topic` with (None if the partner could read it)."""
        try:
            await self.read(topic, lambda records: bool(records), timeout=timeout)
        except Refused as refused:
            return refused.code
        except AssertionError:
            return None  # nothing to read, but nothing refused either
        return None

    async def push(self, topic: str, value: bytes, key: bytes | None) -> None:
        """Produce one record as the partner; raises Refused if the broker says no."""
        await asyncio.to_thread(self._push, topic, value, key)

    def _read(self, topic: str, until: Callable[[list[Received]], bool], timeout: float,
              group: str | None) -> list[Received]:  # fmt: skip
        errors: list[int] = []
        consumer = Consumer({
            **self.access.confluent(), "group.id": group or f"{self.group_prefix}reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000,
            "log_level": 0, "error_cb": lambda err: errors.append(err.code()),
        })  # fmt: skip
        records: list[Received] = []
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                denied = [e for e in errors if e in DENIED]
                if denied:
                    raise Refused(denied[0], topic)
                if message is None:
                    if records and until(records):
                        return records
                    continue
                if message.error():
                    if message.error().code() in DENIED:
                        raise Refused(message.error().code(), topic)
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"reading {topic}: {message.error()}")
                records.append(Received(message.topic(), message.partition(), message.offset(), message.key(),
                                        message.value(), tuple(message.headers() or ())))  # fmt: skip
                # A partner commits what it has processed: that its group may do so is part of its grants.
                consumer.commit(message, asynchronous=False)
            if until(records):
                return records
            raise AssertionError(f"{self.partner_id} read {len(records)} record(s) of {topic} in {timeout:g}s and "
                                 f"never what it waited for: {[r.event_type for r in records]}")  # fmt: skip
        finally:
            consumer.close()

    def _push(self, topic: str, value: bytes, key: bytes | None) -> None:
        errors: list[int] = []
        delivered: list[KafkaError | None] = []
        producer = Producer({**self.access.confluent(), "message.timeout.ms": 15000, "log_level": 0,
                             "acks": "all", "enable.idempotence": True,
                             "error_cb": lambda err: errors.append(err.code())})  # fmt: skip
        producer.produce(topic, value, key=key, on_delivery=lambda err, _msg: delivered.append(err))
        producer.flush(30)
        denied = [e for e in errors if e in DENIED]
        if denied:
            raise Refused(denied[0], topic)
        if not delivered:
            raise AssertionError(f"{self.partner_id}: no acknowledgement for its record on {topic}")
        if delivered[0] is not None:
            if delivered[0].code() in DENIED:
                raise Refused(delivered[0].code(), topic)
            raise AssertionError(f"{self.partner_id}: {topic} refused its record: {delivered[0]}")


def outcome_envelope(event_type: str, payload: dict[str, Any], *, producer: str) -> bytes:
    """A partner's outcome as the AsyncAPI document describes it (OutcomeEnvelope), written out by hand as a partner
    would, not with Berdaya's own code; key = the consent id."""
    envelope = {
        "event_id": str(uuid.uuid4()), "event_type": event_type, "event_version": 1,
        "aggregate_type": "partner_outcome", "aggregate_id": str(payload["consent_id"]),
        "occurred_at": datetime.now(UTC).isoformat(), "correlation_id": str(uuid.uuid4()), "producer": producer,
        "payload": payload,
    }  # fmt: skip
    return json.dumps(envelope).encode()


def documented_errors(schema: str, value: bytes) -> list[str]:
    """How `value` breaks the schema named `schema` (e.g. OutcomeEnvelope, ReferralEnvelope) of the committed AsyncAPI
    document partners build against; empty if it does not."""
    import jsonschema_rs  # comes with schemathesis, a dev dependency

    document = json.loads(ASYNCAPI.read_text())
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return [error.message for error in jsonschema_rs.validator_for(root).iter_errors(json.loads(value))]


# ---------------------------------------------------------------------------------------------------------------
# The scanner
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    topic: str
    partition: int
    offset: int
    where: str  # e.g. payload.owner_phone, key, header event_id
    what: str

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset} {self.where}: {self.what}"


@dataclass
class Scan:
    findings: list[Finding] = field(default_factory=list)
    records: Counter[str] = field(default_factory=Counter)  # records read, by topic without the namespace
    event_types: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return "\n".join(map(str, self.findings)) or "no findings"


@dataclass(frozen=True)
class TopicRules:
    """What may be on one topic: which payload models, where the owner's name and phone may appear (a referral's
    purpose), and whether records not from Berdaya (a partner's own pushes, which may be malformed) may be there."""

    models: tuple[type[EventPayload], ...]
    partner_id: str | None = None  # a partner's topic: every payload must name this partner
    name_fields: frozenset[str] = frozenset()  # where a person's name may appear
    phone_fields: frozenset[str] = frozenset()  # where a phone number may appear
    written_by_partner: bool = False


def rules_for(topic: str) -> TopicRules | None:
    """The rules of a topic a partner may be given (name without the namespace; a `.dlq` follows its topic), or None
    for a topic partners never see."""
    base = topic.removesuffix(".dlq")
    parts = base.split(".")
    if base.startswith("public."):
        return TopicRules(tuple(m for m in CATALOG.models() if TOPIC_BY_AGGREGATE.get(m.aggregate_type) == base))
    if len(parts) == 4 and parts[0] == "partner" and parts[3] == "v1":
        partner_id, kind = parts[1], parts[2]
        aggregate = {v: k for k, v in PARTNER_AGGREGATES.items()}.get(kind)
        models = tuple(m for m in CATALOG.models() if m.aggregate_type == aggregate)
        if kind == "referral":
            # A business is often named for its owner ("Warung Ibu Yuliana").
            names = frozenset({"payload.owner_name", "payload.business_name"})
            return TopicRules(models, partner_id, name_fields=names, phone_fields=frozenset({"payload.owner_phone"}))
        return TopicRules(models, partner_id, written_by_partner=True)
    return None


def scan_records(topic: str, records: Iterable[Received], *, known_names: Iterable[str] = (),
                 known_birth_dates: Iterable[date] = ()) -> list[Finding]:  # fmt: skip
    """Everything wrong with `records` of `topic` (its name without the namespace), by the topic's rules:

    - an NIK-shaped number (16 digits, plain or grouped) anywhere: key, headers, envelope, payload;
    - an Indonesian mobile number (+62 8…, 62 8…, 08…, plain or grouped) anywhere but a referral's owner_phone;
    - a birth date: a field named for one (birth, lahir, dob), or one of `known_birth_dates` in any usual format;
    - a name of `known_names` anywhere but a referral's owner_name (and business_name, which is often a name);
    - a field outside the payload model of the record's event type (recursively), an envelope field outside the
      envelope's, an event type that does not belong on the topic, or a payload naming another partner;
    - a record that is not an envelope at all, unless partners write the topic (their outcomes, and its DLQ).
    """
    rules = rules_for(topic)
    if rules is None:
        raise ValueError(f"{topic} is not a topic partners may be given")
    names = [n for n in known_names if n]
    births = list(known_birth_dates)
    findings: list[Finding] = []
    for record in records:
        def found(where: str, what: str, record: Received = record) -> None:
            findings.append(Finding(record.topic, record.partition, record.offset, where, what))

        for where, text in _texts_of_record(record):
            for what in _personal_data(text, births):
                found(where, what)
            if where not in rules.phone_fields:
                for what in _phones(text):
                    found(where, what)
            if where not in rules.name_fields:
                for name in names:
                    if name.casefold() in text.casefold():
                        found(where, f"the name {name!r}")
        for where in _keys_of_record(record):
            if _BIRTH_KEY.search(where.rsplit(".", 1)[-1]):
                found(where, "a field named for a birth date")
        findings.extend(_schema_findings(record, rules))
    return findings


def _schema_findings(record: Received, rules: TopicRules) -> list[Finding]:
    def finding(where: str, what: str) -> Finding:
        return Finding(record.topic, record.partition, record.offset, where, what)

    try:
        envelope = json.loads(record.value or b"")
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), dict):
        return [] if rules.written_by_partner else [finding("value", "not a Berdaya envelope")]
    out = [finding(k, "not a field of the envelope") for k in envelope if k not in Envelope.model_fields]
    models = {(m.event_type, m.event_version): m for m in rules.models}
    model = models.get((envelope.get("event_type"), envelope.get("event_version")))  # type: ignore[arg-type]
    if model is None:
        if not rules.written_by_partner:
            allowed = sorted(f"{t} v{v}" for t, v in models)
            out.append(finding("event_type", f"{envelope.get('event_type')!r} v{envelope.get('event_version')} does "
                                             f"not belong on this topic (only {allowed})"))  # fmt: skip
        return out
    payload = envelope["payload"]
    out += [finding(f"payload.{path}", "not a field of " + owner) for path, owner in _outside_schema(model, payload)]
    if rules.partner_id is not None and not rules.written_by_partner and payload.get("partner_id") != rules.partner_id:
        claimed = payload.get("partner_id")
        out.append(finding("payload.partner_id", f"{claimed!r} on partner {rules.partner_id}'s topic"))
    return out


def _outside_schema(model: type[BaseModel], data: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """(path, model) of every key of `data` that `model` has no field for, looking into nested models."""
    for key, value in data.items():
        where = f"{path}{key}"
        info = model.model_fields.get(key)
        if info is None:
            yield where, model.__name__
            continue
        nested = _models_in(info.annotation)
        if not nested:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                # A union of models: a key is allowed if any of them has it.
                outside = [{p for p, _ in _outside_schema(m, item, f"{where}.")} for m in nested]
                for unknown in sorted(set.intersection(*outside)):
                    yield unknown, " or ".join(m.__name__ for m in nested)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Annotated,):
        return _models_in(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple, Sequence, frozenset, set):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _texts_of_record(record: Received) -> Iterator[tuple[str, str]]:
    """(where, text) of every scalar a partner would see: the key, the headers, and every leaf of the value."""
    if record.key:
        yield "key", record.key.decode("utf-8", "replace")
    for name, value in record.headers:
        yield f"header {name}", (value or b"").decode("utf-8", "replace")
    try:
        value = json.loads(record.value or b"")
    except ValueError:
        yield "value", (record.value or b"").decode("utf-8", "replace")
        return
    yield from _leaves(value, "")


def _keys_of_record(record: Received) -> Iterator[str]:
    for name, _ in record.headers:
        yield f"header {name}"
    try:
        value = json.loads(record.value or b"")
    except ValueError:
        return
    yield from _keys(value, "")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}.{i}")
    elif value is not None and not isinstance(value, bool):
        yield path or "value", str(value)


def _keys(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            yield where
            yield from _keys(v, where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _keys(v, f"{path}.{i}")


# Identifiers made of hex digits are not numbers: a UUID or a keyed digest may hold long runs of decimal digits by
# chance, which must not read as an NIK or a phone.
_IDENTIFIERS = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
                          r"|\b[0-9a-fA-F]{32,}\b")  # fmt: skip
# A number as people write one: digits, perhaps grouped by spaces, dots or dashes, perhaps with a leading +.
_NUMBER = re.compile(r"\+?\d+(?:[ .\-]\d+)*")
_PHONE = re.compile(r"(?:\+?62|0)8\d{7,11}")
_BIRTH_KEY = re.compile(r"birth|lahir|(?:^|_)dob(?:_|$)|born", re.IGNORECASE)


def _numbers(text: str) -> Iterator[tuple[str, str]]:
    """(as written, digits only) of every number in `text`, and of each ungrouped run inside a grouped one."""
    for match in _NUMBER.finditer(_IDENTIFIERS.sub(" ", text)):
        written = match.group()
        yield written, re.sub(r"[ .\-]", "", written)
        for run in re.findall(r"\+?\d+", written):
            if run != written:
                yield run, run


def _personal_data(text: str, births: Sequence[date]) -> Iterator[str]:
    seen = set()
    for written, digits in _numbers(text):
        if re.fullmatch(r"\d{16}", digits) and digits not in seen:
            seen.add(digits)
            yield f"an NIK-shaped number {written!r}"
    for born in births:
        day_women = f"{born.day + 40:02d}{born:%m%y}"
        written = {born.isoformat(), f"{born:%d-%m-%Y}", f"{born:%d/%m/%Y}", f"{born:%d.%m.%Y}"}
        if any(w in text for w in written) or any(d in (f"{born:%d%m%y}", day_women) for _, d in _numbers(text)):
            yield f"the birth date {born.isoformat()}"


def _phones(text: str) -> Iterator[str]:
    seen = set()
    for written, digits in _numbers(text):
        if _PHONE.fullmatch(digits) and digits not in seen:
            seen.add(digits)
            yield f"a phone number {written!r}"


async def partner_topics_of(admin: KafkaAccess, namespace: str) -> dict[str, list[int]]:
    """Every topic of the deployment a partner may be given (`public.*` and `partner.*`, with their `.dlq`), and its
    partitions."""
    client = confluent_admin(admin)  # kept referenced until the answer arrives
    metadata = await asyncio.to_thread(client.list_topics, timeout=30)
    prefix = f"{namespace}." if namespace else ""
    return {name: sorted(topic.partitions) for name, topic in sorted(metadata.topics.items())
            if name.startswith(prefix) and rules_for(name.removeprefix(prefix)) is not None}  # fmt: skip


async def read_whole_topics(admin: KafkaAccess, topics: dict[str, list[int]], *,
                            timeout: float = 60.0) -> dict[str, list[Received]]:  # fmt: skip
    """Every record on `topics` (name: partitions) up to their end offsets now, read as `admin` (no consumer group)."""
    found: dict[str, list[Received]] = {t: [] for t in topics}
    partitions = [TopicPartition(t, p) for t, ps in topics.items() for p in ps]
    if not partitions:
        return found
    consumer = AIOKafkaConsumer(**admin.aiokafka(), enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {sorted(topics)} to their end in {timeout:g}s")
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                found[tp.topic] += [Received(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                                    for r in batch if r.offset < ends[tp]]  # fmt: skip
    finally:
        await consumer.stop()
    return found


async def scan_partner_topics(admin: KafkaAccess, namespace: str, *, known_names: Iterable[str] = (),
                              known_birth_dates: Iterable[date] = ()) -> Scan:  # fmt: skip
    """Read every partner-facing topic of the deployment `namespace` to its end, as `admin`, and scan each record
    (`scan_records`). Returns the findings and what was read, so a caller can check the scan was not vacuous."""
    names, births = list(known_names), list(known_birth_dates)
    prefix = f"{namespace}." if namespace else ""
    scan = Scan()
    topics = await partner_topics_of(admin, namespace)
    for topic, records in (await read_whole_topics(admin, topics)).items():
        short = topic.removeprefix(prefix)
        scan.records[short] += len(records)
        for record in records:
            scan.event_types[str(record.event_type)] += 1
        scan.findings += scan_records(short, records, known_names=names, known_birth_dates=births)
    return scan

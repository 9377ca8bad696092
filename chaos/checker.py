"""After the load: wait for the system to settle, then compare every service's state with its source of truth.

The sources of truth are read directly: each service's database (its state, its outbox, its inbox) and the Kafka
topics from the beginning. The registry's `business` table is the truth about businesses, the outboxes about what
was produced, the topics about what was published, funding's `offer` rows about offers. Every figure is counted
from what is there; a check that could not be made says so and fails the run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from chaos.load import Acknowledged
from chaos.system import System
from services.funding import subscribers as funding_subscribers
from services.funding.domain.earmarks import eligible
from services.funding.store_pg import PLEDGE_SELECT, VIEW_SELECT, pledge_from_row, view_from_row
from services.notifier import subscribers as notifier_subscribers
from shared.contracts.registry import REGISTRY_EVENTS
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, TRAINING_PARTICIPANT, dlq, namespaced
from shared.messaging.dead_letters import DeadLetter, read_dead_letters
from shared.messaging.kafka import consumer_lag
from shared.messaging.subscriptions import Subscription
from shared.reference.wita import today_in_kupang
from shared.messaging.kafka import KafkaAccess

TOPICS = (REGISTRY_BUSINESS, FUNDING_PLEDGE, TRAINING_PARTICIPANT)
SUBSCRIPTIONS: tuple[tuple[str, Subscription], ...] = (
    *(("funding", s) for s in funding_subscribers.SUBSCRIPTIONS),
    *(("notifier", s) for s in notifier_subscribers.SUBSCRIPTIONS),
)
# Which message the notifier records for which event (services/notifier/subscribers.py and handlers.py).
MESSAGE_FOR = {"BusinessRegistered": "welcome", "NIBIssued": "nib_issued", "NIBRejected": "nib_rejected",
               "FundingMatched": "funding_offer", "FundsDisbursed": "funds_disbursed"}  # fmt: skip
# The event each offer state needs on funding.pledge.v1 (besides the FundingMatched that made it).
EVENT_FOR_STATE = {"accepted": ("FundingAccepted",), "declined": ("FundingDeclined",), "expired": ("FundingExpired",),
                   "withdrawn": ("FundingWithdrawn",), "disbursed": ("FundingAccepted", "FundsDisbursed")}  # fmt: skip
# Registry events that change the notifier's contact (BusinessClosed only when the contact exists).
CONTACT_EVENTS = ("BusinessRegistered", "BusinessUpdated", "BusinessClosed")

# Sections of the report, in order.
PRODUCED, CONSUMED, LOST, DUPLICATED, REGRESSED, MONEY, DEAD, SETTLING, SERVICES = (
    "produced", "consumed", "LOST", "DUPLICATED", "version regressions", "money", "dead letters", "settling",
    "services",
)  # fmt: skip
SECTIONS = (SETTLING, PRODUCED, CONSUMED, LOST, DUPLICATED, REGRESSED, MONEY, DEAD, SERVICES)


@dataclass
class Line:
    section: str
    label: str
    value: int | float | str | None  # None: the check could not be made
    must_be_zero: bool = False  # a loss or duplication figure: anything else fails the run
    evidence: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def checked(self) -> bool:
        return self.value is not None

    @property
    def failed(self) -> bool:
        return self.must_be_zero and (self.value is None or self.value != 0)


def zero_line(section: str, label: str, bad: Iterable[Any], note: str = "", show: int = 5) -> Line:
    found = list(bad)
    return Line(section, label, len(found), True, [str(x) for x in found[:show]], note)


async def cluster_topics(bootstrap: KafkaAccess | str) -> set[str]:
    consumer = AIOKafkaConsumer(**KafkaAccess.of(bootstrap).aiokafka(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


async def subscribed_topics(sub: Subscription, namespace: str, bootstrap: KafkaAccess | str) -> list[str]:
    """The (namespaced) topics a subscription reads: its topic, or every topic its pattern matches now."""
    if not getattr(sub, "pattern", False):
        return [namespaced(sub.topic, namespace)]
    pattern = re.compile(sub.in_namespace(namespace).topic)
    return sorted(t for t in await cluster_topics(bootstrap) if pattern.fullmatch(t) and not t.endswith(".dlq"))


# ---------------------------------------------------------------------------------------------------------------
# Settling
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Settled:
    settled: bool
    seconds: float
    unpublished: dict[str, int]  # service -> outbox rows not yet published
    lag: dict[str, int]  # consumer group -> records not yet committed


async def pending_work(system: System) -> tuple[dict[str, int], dict[str, int]]:
    unpublished = {}
    for service, url in system.target.databases.items():
        try:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                unpublished[service] = await conn.fetchval("SELECT count(*) FROM outbox_pending")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            unpublished[service] = -1  # unknown: not settled
    lag = {}
    ns = system.target.namespace
    for _, sub in SUBSCRIPTIONS:
        group = namespaced(sub.consumer, ns)
        try:
            topics = await subscribed_topics(sub, ns, system.target.kafka)
            by_partition = await asyncio.to_thread(consumer_lag, system.target.kafka, group, topics)
            lag[sub.consumer] = sum(by_partition.values())
        except Exception:  # noqa: BLE001 - the broker not answering now is "not settled yet"
            lag[sub.consumer] = -1
    return unpublished, lag


async def wait_until_settled(system: System, timeout: float) -> Settled:
    """Every outbox empty and every consumer group's lag 0, twice in a row a couple of seconds apart (a consumer
    that applies an event may write new outbox rows: funding's matching does)."""
    started = time.monotonic()
    calm = 0
    unpublished: dict[str, int] = {}
    lag: dict[str, int] = {}
    while time.monotonic() - started < timeout:
        unpublished, lag = await pending_work(system)
        calm = calm + 1 if not any(unpublished.values()) and not any(lag.values()) else 0
        if calm >= 2:
            return Settled(True, time.monotonic() - started, unpublished, lag)
        await asyncio.sleep(2)
    return Settled(False, time.monotonic() - started, unpublished, lag)


# ---------------------------------------------------------------------------------------------------------------
# Reading the sources of truth
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireEvent:
    partition: int
    offset: int
    event_id: str
    event_type: str
    aggregate_id: str
    aggregate_version: int | None
    payload: dict[str, Any]


@dataclass
class Facts:
    registry: dict[str, list[asyncpg.Record]] = field(default_factory=dict)  # table -> rows
    funding: dict[str, list[asyncpg.Record]] = field(default_factory=dict)
    notifier: dict[str, list[asyncpg.Record]] = field(default_factory=dict)
    topics: dict[str, list[WireEvent]] = field(default_factory=dict)  # un-namespaced topic -> records, in order
    unreadable: Counter = field(default_factory=Counter)  # topic -> records that are not an envelope
    dead_letters: dict[str, list[DeadLetter]] = field(default_factory=dict)  # un-namespaced .dlq topic -> records
    reports: dict[str, bool | None] = field(default_factory=dict)  # pledge id -> reconciles (None: no answer)
    report_errors: list[str] = field(default_factory=list)
    missed_matches: list[str] = field(default_factory=list)
    replicas_not_ready: list[str] = field(default_factory=list)
    subscribed: dict[str, list[str]] = field(default_factory=dict)  # consumer -> the un-namespaced topics it reads


# Every service's outbox is read the same way: a row is published once it no longer waits in outbox_pending.
_OUTBOX = (
    "SELECT event_id::text, type, aggregateid, aggregate_version, topic,"
    " NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = outbox.id) AS published FROM outbox"
)
_QUERIES = {
    "registry": {
        "business": "SELECT id::text, version, status, nib_status, nik_digest FROM business",
        "nib_application": "SELECT id::text, business_id::text, status FROM nib_application",
        "outbox": _OUTBOX,
        "inbox": "SELECT consumer, event_id::text FROM inbox",
    },
    "funding": {
        "business_view": "SELECT business_id::text, version, status, nib_status FROM business_view",
        "sponsor": "SELECT id::text FROM sponsor",
        "pledge": "SELECT id::text, total_rupiah, reserved_rupiah, accepted_rupiah, disbursed_rupiah, status,"
        " matched_at FROM pledge",
        "offer": "SELECT id::text, pledge_id::text, business_id::text, amount_rupiah, status FROM offer",
        "outbox": _OUTBOX,
        "inbox": "SELECT consumer, event_id::text FROM inbox",
    },
    "notifier": {
        "contact": "SELECT business_id::text, business_version, status FROM contact",
        # The audience column came with deliveries to officers and sponsors; before it every message was the owner's.
        "message": "SELECT event_id::text, template, business_id::text, {audience} AS audience FROM message",
        "outbox": _OUTBOX,
        "inbox": "SELECT consumer, event_id::text FROM inbox",
    },
}


async def gather_facts(system: System) -> Facts:
    facts = Facts()
    for service, queries in _QUERIES.items():
        conn = await asyncpg.connect(system.target.databases[service], timeout=10)
        try:
            columns = {r["column_name"] for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'message'")}  # fmt: skip
            audience = "audience" if "audience" in columns else "'owner'"
            setattr(facts, service, {table: await conn.fetch(sql.format(audience=audience))
                                     for table, sql in queries.items()})  # fmt: skip
            if service == "funding":
                facts.missed_matches = await _missed_matches(conn)
        finally:
            await conn.close()
    ns = system.target.namespace
    # Every topic an outbox routed an event to (the public copies too), and every topic a consumer reads.
    routed = {r["topic"].removeprefix(f"{ns}.") for rows in (facts.registry, facts.funding, facts.notifier)
              for r in rows["outbox"]}  # fmt: skip
    for _, sub in SUBSCRIPTIONS:
        facts.subscribed[sub.consumer] = [t.removeprefix(f"{ns}.") for t in
                                          await subscribed_topics(sub, ns, system.target.kafka)]  # fmt: skip
    for topic in sorted(set(TOPICS) | routed | {t for ts in facts.subscribed.values() for t in ts}):
        facts.topics[topic], facts.unreadable[topic] = await read_events(system.target.kafka,
                                                                         namespaced(topic, ns))  # fmt: skip
        facts.dead_letters[dlq(topic)] = await read_dead_letters(system.target.kafka, namespaced(topic, ns),
                                                                 patience=30)  # fmt: skip
    await _reports(system, facts)
    facts.replicas_not_ready = [r.name for r in system.replicas.values() if not await system.ready(r)]
    return facts


async def read_events(bootstrap: KafkaAccess | str, topic: str) -> tuple[list[WireEvent], int]:
    """Every record on the topic, partition by partition in offset order; and how many were not envelopes."""
    consumer = AIOKafkaConsumer(**KafkaAccess.of(bootstrap).aiokafka(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)  # fmt: skip
    await consumer.start()
    events: list[WireEvent] = []
    unreadable = 0
    try:
        partitions: set[int] = set()
        for _ in range(10):
            # A fresh consumer with nothing subscribed knows no topic yet (as in shared.messaging.dead_letters).
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
            if partitions:
                break
            await asyncio.sleep(0.5)
        if not partitions:
            return [], 0
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    try:
                        e = json.loads(r.value)
                        events.append(WireEvent(r.partition, r.offset, e["event_id"], e["event_type"], e["aggregate_id"],
                                                e.get("aggregate_version"), e["payload"]))  # fmt: skip
                    except (ValueError, KeyError, TypeError):
                        unreadable += 1
    finally:
        await consumer.stop()
    events.sort(key=lambda e: (e.partition, e.offset))
    return events, unreadable


async def _missed_matches(conn: asyncpg.Connection) -> list[str]:
    """Open pledges that can still afford an offer, and eligible businesses they never offered to.

    Funding promises that once a pledge was matched in its window, while it can afford an offer every eligible
    business has one (pledges fill greedily in rank order, and a business that becomes eligible is offered open
    pledges). Eligibility is the service's own rule (services.funding.domain.earmarks.eligible) on its own view.
    """
    today = today_in_kupang(datetime.now(UTC))
    views = [view_from_row(r) for r in await conn.fetch(VIEW_SELECT)]
    pledges = [pledge_from_row(r) for r in await conn.fetch(PLEDGE_SELECT)]
    offered = {(r["pledge_id"], r["business_id"]) for r in await conn.fetch("SELECT pledge_id, business_id FROM offer")}
    missed = []
    for p in pledges:
        if p.status != "open" or not p.open_on(today) or p.next_offer_amount() is None:
            continue
        for b in views:
            if (p.id, b.business_id) not in offered and eligible(p.earmarks, b, today):
                since = f"{b.eligible_since:%H:%M:%S}" if b.eligible_since else "?"
                matched = f"{p.matched_at:%H:%M:%S}" if p.matched_at else "never"
                missed.append(f"pledge {p.id} (matched {matched}, remaining {p.remaining_rupiah:,}) "
                              f"never offered to eligible business {b.business_id} (view v{b.version}, facts since "
                              f"{since})")  # fmt: skip
    return missed


async def _reports(system: System, facts: Facts) -> None:
    headers = {"Authorization": f"Bearer {system.token('officer')}"}
    urls = system.urls("funding")
    async with httpx.AsyncClient(timeout=30) as http:
        for i, pledge in enumerate(facts.funding["pledge"]):
            pledge_id = pledge["id"]
            facts.reports[pledge_id] = None
            for url in urls[i % len(urls):] + urls[: i % len(urls)]:
                try:
                    response = await http.get(f"{url}/reports/pledges/{pledge_id}", headers=headers)
                except httpx.HTTPError as exc:
                    facts.report_errors.append(f"{url}: {type(exc).__name__}")
                    continue
                if response.status_code == 200:
                    facts.reports[pledge_id] = bool(response.json()["reconciles"])
                    break
                facts.report_errors.append(f"{url}/reports/pledges/{pledge_id}: {response.status_code}")


# ---------------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------------


def check(facts: Facts, acked: Acknowledged, nik_digest_key: str) -> list[Line]:
    lines: list[Line] = []
    lines += _produced(facts)
    lines += _consumed(facts)
    lines += _lost(facts, acked, nik_digest_key)
    lines += _duplicated(facts)
    lines += _regressions(facts)
    lines += _money(facts)
    lines += _dead_letters(facts)
    lines.append(zero_line(SERVICES, "replicas not ready after the run", facts.replicas_not_ready))
    return lines


def _by_id(events: Iterable[WireEvent]) -> dict[str, WireEvent]:
    first: dict[str, WireEvent] = {}
    for e in events:
        first.setdefault(e.event_id, e)
    return first


def _produced(facts: Facts) -> list[Line]:
    lines = []
    outboxes = {"registry": facts.registry["outbox"], "funding": facts.funding["outbox"], "notifier": facts.notifier["outbox"]}
    for service, rows in outboxes.items():
        ids = {r["event_id"] for r in rows}
        by_type = Counter(r["type"] for r in rows)
        lines.append(Line(PRODUCED, f"{service}: outbox rows committed (distinct event ids)", f"{len(rows):,} ({len(ids):,})",
                          note=", ".join(f"{t} {n:,}" for t, n in by_type.most_common())))  # fmt: skip
        lines.append(zero_line(PRODUCED, f"{service}: outbox rows never published", (r["event_id"] for r in rows
                                                                                      if not r["published"])))  # fmt: skip
    for topic, events in facts.topics.items():
        if not events and not facts.unreadable[topic]:
            continue  # a topic nobody wrote to in this run (a consumer's input from a service not running)
        distinct = len({e.event_id for e in events})
        lines.append(Line(PRODUCED, f"{topic}: records (distinct event ids)", f"{len(events):,} ({distinct:,})",
                          note=f"{len(events) - distinct:,} re-published copies, absorbed by the inboxes" if len(events) > distinct else ""))  # fmt: skip
        lines.append(zero_line(PRODUCED, f"{topic}: records that are not an envelope", range(facts.unreadable[topic])))
    on_kafka = {e.event_id for events in facts.topics.values() for e in events}
    in_outbox = {r["event_id"] for rows in outboxes.values() for r in rows}
    lines.append(zero_line(LOST, "outbox events never on Kafka", sorted(
        f"{r['event_id']} {r['type']} -> {r['topic']}" for rows in outboxes.values() for r in rows
        if r["event_id"] not in on_kafka)))  # fmt: skip
    lines.append(zero_line(LOST, "events on Kafka that no outbox committed", sorted(on_kafka - in_outbox)))
    return lines


def _consumed(facts: Facts) -> list[Line]:
    lines = []
    inbox = {"funding": facts.funding["inbox"], "notifier": facts.notifier["inbox"]}
    for service, sub in SUBSCRIPTIONS:
        applied = {r["event_id"] for r in inbox[service] if r["consumer"] == sub.consumer}
        topics = facts.subscribed[sub.consumer]
        expected = {e.event_id for t in topics for e in facts.topics[t] if e.event_type in sub.event_types}
        where = sub.topic if not getattr(sub, "pattern", False) else f"{len(topics)} topics matching {sub.topic}"
        lines.append(Line(CONSUMED, f"{sub.consumer}: inbox rows (events of its types on {where})",
                          f"{len(applied):,} ({len(expected):,})"))  # fmt: skip
        lines.append(zero_line(LOST, f"{sub.consumer}: events on Kafka it never applied", sorted(expected - applied)))
        lines.append(zero_line(LOST, f"{sub.consumer}: inbox rows of events not on Kafka", sorted(applied - expected)))
    return lines


def _lost(facts: Facts, acked: Acknowledged, key: str) -> list[Line]:
    lines = []
    registry_events = facts.topics[REGISTRY_BUSINESS]
    funding_events = facts.topics[FUNDING_PLEDGE]
    business = {r["id"]: r for r in facts.registry["business"]}
    view = {r["business_id"]: r for r in facts.funding["business_view"]}

    # Funding's view of every business equals the registry's: same version, status and NIB status.
    versions = _registry_versions(facts)
    lines.append(zero_line(LOST, "funding view: registered businesses it does not know", sorted(set(business) - set(view))))
    lines.append(zero_line(LOST, "funding view: behind the registry (its newer events not applied)", [
        _behind(b, view[b]["version"], business[b]["version"]) for b in business
        if b in view and versions.view_applied.get(b, 0) <= view[b]["version"] < business[b]["version"]]))  # fmt: skip
    lines.append(zero_line(LOST, "funding view: same version, other status or NIB status", [
        f"{b}: registry {business[b]['status']}/{business[b]['nib_status']}, view {view[b]['status']}/{view[b]['nib_status']}"
        for b in business if b in view and view[b]["version"] == business[b]["version"]
        and (view[b]["status"], view[b]["nib_status"]) != (business[b]["status"], business[b]["nib_status"])]))  # fmt: skip

    # The notifier's contacts: at the version of the business's last snapshot (or closure), with its status.
    contact = {r["business_id"]: r for r in facts.notifier["contact"]}
    lines.append(zero_line(LOST, "notifier: registered businesses without a contact", sorted(set(business) - set(contact))))
    lines.append(zero_line(LOST, "notifier: contact behind the business's last snapshot (not applied)", [
        _behind(b, contact[b]["business_version"], v) for b, v in versions.contact_wanted.items()
        if b in contact and versions.contact_applied.get(b, 0) <= contact[b]["business_version"] < v]))  # fmt: skip
    lines.append(zero_line(LOST, "notifier: contact status differs from the registry's", [
        f"{b}: registry {business[b]['status']}, contact {contact[b]['status']}" for b in business
        if b in contact and contact[b]["status"] != business[b]["status"]]))  # fmt: skip

    # One message per event an owner should hear of.
    messages = {(r["event_id"], r["template"]) for r in facts.notifier["message"]}
    for event_type, template in MESSAGE_FOR.items():
        events = _by_id(e for e in registry_events + funding_events if e.event_type == event_type)
        lines.append(zero_line(LOST, f"{event_type} without its '{template}' message",
                               [f"{i} ({e.aggregate_id})" for i, e in events.items() if (i, template) not in messages]))  # fmt: skip

    # Offers and their events.
    offers = {r["id"]: r for r in facts.funding["offer"]}
    by_offer: dict[str, set[str]] = defaultdict(set)
    for e in funding_events:
        if "offer_id" in e.payload:
            by_offer[e.payload["offer_id"]].add(e.event_type)
    lines.append(zero_line(LOST, "offer rows without FundingMatched on Kafka",
                           [o for o in offers if "FundingMatched" not in by_offer.get(o, set())]))  # fmt: skip
    lines.append(zero_line(LOST, "FundingMatched on Kafka without an offer row",
                           [o for o, types in by_offer.items() if "FundingMatched" in types and o not in offers]))  # fmt: skip
    lines.append(zero_line(LOST, "offers whose state has no event on Kafka", [
        f"{o} is {r['status']}, no {t}" for o, r in offers.items() for t in EVENT_FOR_STATE.get(r["status"], ())
        if t not in by_offer.get(o, set())]))  # fmt: skip
    pledged = {e.aggregate_id for e in funding_events if e.event_type == "CSRPledged"}
    lines.append(zero_line(LOST, "pledges without CSRPledged on Kafka", [p["id"] for p in facts.funding["pledge"]
                                                                          if p["id"] not in pledged]))  # fmt: skip
    lines.append(zero_line(LOST, "pledges never matched (CSRPledged not acted on)",
                           [p["id"] for p in facts.funding["pledge"] if p["matched_at"] is None]))  # fmt: skip
    lines.append(zero_line(LOST, "eligible businesses an open pledge with money left never offered to", facts.missed_matches))

    # Every write the system acknowledged over HTTP is still there.
    digest_key = base64.b64decode(key)
    digests = {bytes(r["nik_digest"]) for r in facts.registry["business"]}
    applications = {r["id"]: r for r in facts.registry["nib_application"]}
    pledges = {p["id"] for p in facts.funding["pledge"]}
    sponsors = {r["id"] for r in facts.funding["sponsor"]}
    missing = [f"business {b}" for b in acked.businesses if b not in business]
    missing += [f"imported row with NIK ...{nik[-4:]}" for nik in acked.imported_niks
                if hmac.new(digest_key, nik.encode(), hashlib.sha256).digest() not in digests]  # fmt: skip
    missing += [f"NIB application {a}" for a in acked.applications if a not in applications]
    missing += [f"NIB application {a} {o}, is {applications[a]['status']}" for a, o in acked.outcomes.items()
                if a in applications and applications[a]["status"] != o]  # fmt: skip
    missing += [f"sponsor {s}" for s in acked.sponsors if s not in sponsors]
    missing += [f"pledge {p}" for p in acked.pledges if p not in pledges]
    for ids, states, what in ((acked.accepted, ("accepted", "disbursed", "withdrawn"), "accepted"),
                              (acked.declined, ("declined",), "declined"), (acked.disbursed, ("disbursed",), "disbursed")):  # fmt: skip
        missing += [f"offer {o} {what}, is {offers[o]['status'] if o in offers else 'missing'}" for o in ids
                    if o not in offers or offers[o]["status"] not in states]  # fmt: skip
    missing += [f"business {b} closed, is {business[b]['status']}" for b in acked.closed
                if b in business and business[b]["status"] != "closed"]  # fmt: skip
    total = (len(acked.businesses) + len(acked.imported_niks) + len(acked.applications) + len(acked.outcomes)
             + len(acked.sponsors) + len(acked.pledges) + len(acked.accepted) + len(acked.declined)
             + len(acked.disbursed) + len(acked.closed))  # fmt: skip
    lines.append(zero_line(LOST, f"acknowledged writes missing (of {total:,} acknowledged)", missing))
    return lines


@dataclass
class _Versions:
    """Per business, from the registry's outbox (what it committed) and the consumers' inboxes (what they applied)."""

    view_applied: dict[str, int]  # highest version among the registry events funding's view consumer applied
    contact_wanted: dict[str, int]  # version of the business's last snapshot or closure
    contact_applied: dict[str, int]  # the highest of those the notifier applied


def _registry_versions(facts: Facts) -> _Versions:
    types = {e.event_type for e in REGISTRY_EVENTS}
    rows = [r for r in facts.registry["outbox"] if r["type"] in types and r["aggregate_version"] is not None]
    by_id = {r["event_id"]: r for r in rows}

    def highest(event_ids: Iterable[str], kinds: Iterable[str]) -> dict[str, int]:
        kinds = set(kinds)
        found: dict[str, int] = {}
        for event_id in event_ids:
            r = by_id.get(event_id)
            if r is not None and r["type"] in kinds:
                found[r["aggregateid"]] = max(found.get(r["aggregateid"], 0), r["aggregate_version"])
        return found

    def inbox(rows: list, consumer: str) -> list[str]:
        return [r["event_id"] for r in rows if r["consumer"] == consumer]

    return _Versions(
        view_applied=highest(inbox(facts.funding["inbox"], funding_subscribers.VIEW), types),
        contact_wanted=highest(by_id, CONTACT_EVENTS),
        contact_applied=highest(inbox(facts.notifier["inbox"], notifier_subscribers.CONSUMER), CONTACT_EVENTS),
    )


def _behind(business_id: str, have: int, want: int) -> str:
    return f"{business_id}: v{have}, registry v{want}"


def _duplicated(facts: Facts) -> list[Line]:
    lines = []
    messages = Counter((r["event_id"], r["template"], r["audience"]) for r in facts.notifier["message"])
    lines.append(zero_line(DUPLICATED, "messages recorded twice for one event and template",
                           [f"{e} {t} to {a} x{n}" for (e, t, a), n in messages.items() if n > 1]))  # fmt: skip
    welcomes = Counter(r["business_id"] for r in facts.notifier["message"]
                       if r["template"] == "welcome" and r["audience"] == "owner")  # fmt: skip
    lines.append(zero_line(DUPLICATED, "businesses welcomed more than once", [f"{b} x{n}" for b, n in welcomes.items() if n > 1]))
    offers = Counter((r["pledge_id"], r["business_id"]) for r in facts.funding["offer"])
    lines.append(zero_line(DUPLICATED, "two offers from one pledge to one business",
                           [f"pledge {p} business {b} x{n}" for (p, b), n in offers.items() if n > 1]))  # fmt: skip
    # One event per change: two distinct events with one aggregate version, or one offer matched twice.
    for topic in (REGISTRY_BUSINESS, FUNDING_PLEDGE):
        versions: dict[tuple[str, int], set[str]] = defaultdict(set)
        for e in facts.topics[topic]:
            if e.aggregate_version is not None:
                versions[(e.aggregate_id, e.aggregate_version)].add(e.event_id)
        lines.append(zero_line(DUPLICATED, f"{topic}: two events for one aggregate version",
                               [f"{a} v{v}: {sorted(ids)}" for (a, v), ids in versions.items() if len(ids) > 1]))  # fmt: skip
    matched: dict[str, set[str]] = defaultdict(set)
    for e in facts.topics[FUNDING_PLEDGE]:
        if e.event_type == "FundingMatched":
            matched[e.payload["offer_id"]].add(e.event_id)
    lines.append(zero_line(DUPLICATED, "offers announced by two FundingMatched events",
                           [f"{o}: {sorted(ids)}" for o, ids in matched.items() if len(ids) > 1]))  # fmt: skip
    registered: dict[str, set[str]] = defaultdict(set)
    for e in facts.topics[REGISTRY_BUSINESS]:
        if e.event_type == "BusinessRegistered":
            registered[e.aggregate_id].add(e.event_id)
    lines.append(zero_line(DUPLICATED, "businesses registered by two BusinessRegistered events",
                           [f"{b}: {sorted(ids)}" for b, ids in registered.items() if len(ids) > 1]))  # fmt: skip
    return lines


def _regressions(facts: Facts) -> list[Line]:
    lines = []
    business = {r["id"]: r for r in facts.registry["business"]}
    view = {r["business_id"]: r for r in facts.funding["business_view"]}
    contact = {r["business_id"]: r for r in facts.notifier["contact"]}
    versions = _registry_versions(facts)
    lines.append(zero_line(REGRESSED, "funding view older than a registry event it applied", [
        f"{b}: view v{view[b]['version']}, applied v{v}" for b, v in versions.view_applied.items()
        if b in view and view[b]["version"] < v]))  # fmt: skip
    lines.append(zero_line(REGRESSED, "notifier contact older than a snapshot it applied", [
        f"{b}: contact v{contact[b]['business_version']}, applied v{v}" for b, v in versions.contact_applied.items()
        if b in contact and contact[b]["business_version"] < v]))  # fmt: skip
    lines.append(zero_line(REGRESSED, "views ahead of the registry (a version it never published)", [
        f"{b}: view v{view[b]['version']}, registry v{business[b]['version']}" for b in business
        if b in view and view[b]["version"] > business[b]["version"]] + [
        f"{b}: contact v{contact[b]['business_version']}, registry v{business[b]['version']}" for b in business
        if b in contact and contact[b]["business_version"] > business[b]["version"]]))  # fmt: skip
    # Kafka keeps one business's events in order: the first copy of each event comes after its predecessors.
    out_of_order = []
    for topic in (REGISTRY_BUSINESS,):
        seen: set[str] = set()
        highest: dict[str, int] = {}
        for e in facts.topics[topic]:
            if e.event_id in seen or e.aggregate_version is None:
                continue
            seen.add(e.event_id)
            if e.aggregate_version < highest.get(e.aggregate_id, 0):
                out_of_order.append(f"{e.aggregate_id} v{e.aggregate_version} first published after "
                                    f"v{highest[e.aggregate_id]} (partition {e.partition} offset {e.offset})")  # fmt: skip
            highest[e.aggregate_id] = max(highest.get(e.aggregate_id, 0), e.aggregate_version)
    lines.append(zero_line(REGRESSED, "registry events first published after a newer one of the same business", out_of_order))
    return lines


def _money(facts: Facts) -> list[Line]:
    lines = []
    sums: dict[str, Counter] = defaultdict(Counter)
    for o in facts.funding["offer"]:
        sums[o["pledge_id"]][o["status"]] += o["amount_rupiah"]
    pledges = facts.funding["pledge"]
    lines.append(Line(MONEY, "pledges (offers)", f"{len(pledges):,} ({len(facts.funding['offer']):,})",
                      note=", ".join(f"{s} {n:,}" for s, n in Counter(o["status"] for o in facts.funding["offer"]).most_common())))  # fmt: skip
    wrong = []
    for p in pledges:
        s = sums[p["id"]]
        counted = (p["reserved_rupiah"], p["accepted_rupiah"], p["disbursed_rupiah"])
        if counted != (s["offered"], s["accepted"], s["disbursed"]):
            wrong.append(f"pledge {p['id']}: reserved/accepted/disbursed {counted}, offers say "
                         f"{(s['offered'], s['accepted'], s['disbursed'])}")  # fmt: skip
    lines.append(zero_line(DUPLICATED, "pledges whose counters differ from the sums of their offers (money counted twice or lost)", wrong))
    lines.append(zero_line(MONEY, "pledges over-allocated (reserved + accepted + disbursed > total)", [
        p["id"] for p in pledges if p["reserved_rupiah"] + p["accepted_rupiah"] + p["disbursed_rupiah"] > p["total_rupiah"]]))  # fmt: skip
    unanswered = [p for p, ok in facts.reports.items() if ok is None]
    not_reconciling = [p for p, ok in facts.reports.items() if ok is False]
    if unanswered:
        lines.append(Line(MONEY, "pledge reports that don't reconcile (GET /reports/pledges/{id})", None, True,
                          [f"{len(unanswered)} reports not answered: {facts.report_errors[:3]}"]))  # fmt: skip
    else:
        lines.append(zero_line(MONEY, "pledge reports that don't reconcile (GET /reports/pledges/{id})", not_reconciling))
    return lines


def _dead_letters(facts: Facts) -> list[Line]:
    """A dead letter its consumer has applied since lost nothing and is counted apart: the relay sent the event again
    behind the registration (or version) it had overtaken after a failed publish, and that copy applied."""
    applied = {(r["consumer"], r["event_id"]) for rows in (facts.registry, facts.funding, facts.notifier)
               for r in rows["inbox"]}  # fmt: skip
    lines = []
    for topic, letters in facts.dead_letters.items():
        since, kept = [], []
        for d in letters:
            (since if (d.consumer, d.headers.get("event_id")) in applied else kept).append(d)
        lines.append(zero_line(DEAD, f"records in {topic} not applied since", map(_letter, kept)))
        if since:
            lines.append(Line(DEAD, f"records in {topic} applied since (sent again behind what they overtook)",
                              len(since), evidence=[_letter(d) for d in since[:5]]))  # fmt: skip
    return lines


def _letter(d: DeadLetter) -> str:
    return (f"{d.consumer}: {d.error[:200]} (from {d.original_topic}[{d.headers.get('dlq.original_partition')}]@"
            f"{d.headers.get('dlq.original_offset')})")


def settle_lines(settled: Settled) -> list[Line]:
    pending = [f"outbox {s}: {n} unpublished" for s, n in settled.unpublished.items() if n] + [
        f"group {g}: lag {n}" for g, n in settled.lag.items() if n]  # fmt: skip
    return [
        Line(SETTLING, "time to settle (every outbox empty, every consumer group's lag 0)", f"{settled.seconds:.1f}s"
             if settled.settled else f"NOT SETTLED after {settled.seconds:.0f}s"),  # fmt: skip
        zero_line(SETTLING, "work still pending when the checks ran", pending),
    ]


"""The whole system as processes on real Kafka and PostgreSQL: end-to-end latency, consumer scale-out, memory."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from berdaya.dataset import generate, write_csv
from berdaya.importer import import_file
from berdaya.stack.local import ServiceProcess, run_service, throwaway_env
from berdaya.stack.postgres import ensure_database
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.auth import TokenService
from shared.contracts.topics import FUNDING_PLEDGE, REGISTRY_BUSINESS, namespaced
from shared.messaging.kafka import KafkaAccess, confluent_admin
from shared.reference.wita import today_in_kupang

SECRET = "benchmark-secret-benchmark-secret-benchmark"
MB = 1_000_000  # the issue says 300 MB: decimal megabytes, as printed
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
CONNECTIONS = 64  # officers' requests in flight at once; more wait their turn


def say(text: str) -> None:
    print(f"  {text}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# A deployment: services as processes in a namespace of their own, one database per service shared by its replicas
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Deployment:
    infra: Throwaway
    label: str
    namespace: str = ""
    env: dict[str, str] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    processes: dict[str, list[ServiceProcess]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.namespace = f"bench-{self.label}-{uuid.uuid4().hex[:6]}"
        # One environment for every replica and restart: the NIK keys must stay the same within a run.
        self.env = throwaway_env(self.infra.kafka, self.namespace, SECRET)
        self.tokens = TokenService(SECRET)

    def topic(self, name: str) -> str:
        return namespaced(name, self.namespace)

    def group(self, consumer: str) -> str:
        return namespaced(consumer, self.namespace)

    def url(self, service: str) -> str:
        return self.processes[service][0].url

    def officer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint('bench', ['officer'])}"}

    async def fresh_database(self, service: str) -> str:
        name = f"bench_{self.label}_{service}_{uuid.uuid4().hex[:6]}"
        self.databases[service] = await ensure_database(self.infra.postgres_url, name)
        return self.databases[service]

    async def start(self, counts: dict[str, int]) -> None:
        """Every replica at once, as a deployment would roll them out; returns when all answer /ready."""
        for service in counts:
            if service not in self.databases:
                await self.fresh_database(service)
        jobs = [(service, i) for service, n in counts.items() for i in range(1, n + 1)]
        started = await asyncio.gather(*(asyncio.to_thread(
            run_service, service, self.env, self.databases[service],
            self.infra.base / f"{self.namespace}-{service}-{i}.log") for service, i in jobs))  # fmt: skip
        for (service, _), process in zip(jobs, started, strict=True):
            self.processes.setdefault(service, []).append(process)

    def stop(self, service: str | None = None) -> None:
        for name in [service] if service else list(self.processes):
            for process in self.processes.pop(name, []):
                stop_pid(process.pid)

    def pids(self) -> dict[str, int]:
        return {f"{name}-{i}" if len(ps) > 1 else name: p.pid
                for name, ps in self.processes.items() for i, p in enumerate(ps, 1)}  # fmt: skip


async def open_pledge(deployment: Deployment, offers: int, amount: int = 1_000_000, **earmarks: object) -> str:
    """A sponsor and its pledge through funding's HTTP API, returned once funding matches new businesses against it
    (its CSRPledged back from Kafka): until then a new business would not be offered anything."""
    async with httpx.AsyncClient(base_url=deployment.url("funding"), timeout=60) as http:
        response = await http.post("/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=deployment.officer())
        response.raise_for_status()
        sponsor = response.json()["id"]
        token = deployment.tokens.mint("bench", ["sponsor"], sponsor_id=uuid.UUID(sponsor))
        today = today_in_kupang(datetime.now(UTC))
        body = {"sponsor_id": sponsor, "title": f"bench {deployment.namespace}", "instrument": "grant",
                "total_rupiah": offers * amount, "amount_mode": "fixed", "amount_per_business_rupiah": amount,
                "valid_from": today.isoformat(), "valid_until": (today + timedelta(days=30)).isoformat(),
                "earmarks": earmarks}  # fmt: skip
        response = await http.post("/pledges", json=body, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        pledge = response.json()["id"]
    await wait_for_sql(deployment.databases["funding"], "SELECT count(*) = 0 FROM pledge WHERE matched_at IS NULL",
                       timeout=120, what="the pledge to be matched")  # fmt: skip
    return pledge


async def wait_for_sql(database: str, query: str, *, timeout: float, what: str, interval: float = 0.2) -> None:
    conn = await asyncpg.connect(database)
    try:
        deadline = time.monotonic() + timeout
        while not await conn.fetchval(query):
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s")
            await asyncio.sleep(interval)
    finally:
        await conn.close()


async def outbox_published(database: str, timeout: float, what: str) -> None:
    await wait_for_sql(database, "SELECT NOT EXISTS (SELECT 1 FROM outbox_pending)", timeout=timeout,
                       what=what, interval=0.5)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# /proc: memory and CPU of a process, and of the machine
# ---------------------------------------------------------------------------------------------------------------


def memory_of(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def cpu_of(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    # The command name may contain spaces: the fields start after its closing parenthesis.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / CLOCK_TICK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICK, sum(values) / CLOCK_TICK


def infra_pids(infra: Throwaway) -> dict[str, list[int]]:
    """The PostgreSQL server (postmaster and its backends) and the Kafka broker of this run, not anybody else's."""
    found: dict[str, list[int]] = {"postgres": [], "kafka": []}
    postmaster = None
    pid_file = infra.base / "pg" / "data" / "postmaster.pid"
    if pid_file.exists():
        postmaster = int(pid_file.read_text().split()[0])
        found["postgres"].append(postmaster)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if postmaster and int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            found["postgres"].append(int(entry.name))
        elif b"kafka.Kafka" in cmdline and str(infra.base).encode() in cmdline:
            found["kafka"].append(int(entry.name))
    return found


def cpu_total(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_of(pid)
        except OSError:
            pass  # a backend that has exited
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def row(what: str, figure: str, baseline: str, ratio: str, target: str, met: bool | str) -> None:
    verdict = met if isinstance(met, str) else ("yes" if met else "NO")
    print(f"  {what:<46} {figure:>15} {baseline:>22} {ratio:>8} {target:>16} {verdict:>4}", flush=True)


def header() -> None:
    row("", "figure", "baseline", "ratio", "target", "met")


# ---------------------------------------------------------------------------------------------------------------
# 1. End-to-end latency
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    started_wall: float  # time.time(): comparable with Kafka timestamps and the notifier's created_at
    started: float  # perf_counter
    answered: float = 0.0
    status: int = 0
    business_id: str | None = None


class Watch:
    """Records as they arrive on the given topics (read as the cluster's admin, no consumer group), from now on:
    per event type, business id -> (Kafka timestamp, wall clock when read)."""

    def __init__(self, kafka: KafkaAccess, topics: list[str]) -> None:
        self.kafka, self.topics = kafka, topics
        self.seen: dict[str, dict[str, tuple[float, float]]] = {}
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        # aiokafka's fetch_max_wait_ms (500) adds no latency here: with fetch_min_bytes 1 the broker answers a waiting
        # fetch as soon as a record arrives (the raw round trip measured the same with 20 ms), and the watcher takes
        # records as they come. (A consumer slow to work through one partition's fetched records is another matter:
        # see the services' 250 ms in shared/messaging/subscriptions.py.) 20 ms here only made the broker answer
        # empty fetches 50 times a second: 1.8 s of Kafka's CPU in 15 s idle, charged to the system.
        self.consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), group_id=None, enable_auto_commit=False)
        await self.consumer.start()
        partitions = await partitions_of(self.kafka, self.topics)
        if not partitions:
            await self.consumer.stop()
            raise RuntimeError(f"no partitions of {self.topics} (the services make their topics when they start)")
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for record in records:
                    event_type = dict(record.headers).get("event_type", b"").decode()
                    payload = json.loads(record.value)["payload"]
                    if "business_id" in payload:
                        first = (record.timestamp / 1000, now)
                        self.seen.setdefault(event_type, {}).setdefault(payload["business_id"], first)
            if batch:
                self.arrived.set()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()


async def partitions_of(kafka: KafkaAccess, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka.aiokafka())
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


class Connections:
    """Officers' keep-alive connections, `count` of them, each its own httpx client; a request waits its turn for a
    free one (a FIFO), and its wait counts in its latency.

    One client per connection because one httpx pool of 64 looked over every connection at every request (a
    `getpeername` call each): half the load generator's CPU went there, taken from the system it measures."""

    def __init__(self, count: int) -> None:
        self._all = [httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
                     for _ in range(count)]  # fmt: skip
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self._all:
            self._free.put_nowait(client)

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(client.aclose() for client in self._all))

    async def post(self, url: str, **kwargs: object) -> httpx.Response:
        client = await self._free.get()
        try:
            return await client.post(url, **kwargs)  # type: ignore[arg-type]
        finally:
            self._free.put_nowait(client)


async def register(http: Connections, url: str, headers: dict[str, str], form: dict[str, str],
                   scheduled: float | None = None) -> Sent:  # fmt: skip
    """`scheduled`: when the load meant to send it (perf_counter); a load generator running late counts against
    the latency, not hidden from it."""
    now_wall, now = time.time(), time.perf_counter()
    at = now if scheduled is None else min(scheduled, now)
    sent = Sent(now_wall - (now - at), at)
    try:
        response = await http.post(f"{url}/businesses", json=form, headers=headers)
        sent.status = response.status_code
        if response.status_code == 201:
            sent.business_id = response.json()["id"]
    except httpx.HTTPError:
        sent.status = -1
    sent.answered = time.perf_counter()
    return sent


async def steady_load(send: Callable[[dict[str, str], float], object], forms: Iterable[dict[str, str]], rate: float,
                      seconds: float) -> list[Sent]:  # fmt: skip
    """Open loop: request i starts at i/rate whatever the earlier ones are doing, as officers across the city would."""
    tasks = []
    started = time.perf_counter()
    total = int(rate * seconds)
    for i, form in enumerate(itertools.islice(forms, total)):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(form, scheduled)))  # type: ignore[arg-type]
        if i and i % int(rate * 10) == 0:
            say(f"{i:,} registrations sent ({time.perf_counter() - started:.0f} s)")
    return list(await asyncio.gather(*tasks))


def registration_forms(count: int, seed: int) -> Iterable[dict[str, str]]:
    # nib_share=1: every business registers with the NIB it already holds, so the pledge's NIB earmark is met on
    # registration and BusinessRegistered alone makes an offer: the shortest real path to FundingMatched.
    return ({k: v for k, v in r.items() if v != ""} for r in generate(count, seed=seed, nib_share=1.0))


async def notifier_messages(database: str, template: str, business_ids: list[str]) -> tuple[dict[str, float], str]:
    """When each business's message was recorded, and by which clock: its transaction's commit where PostgreSQL keeps
    commit times (the inbox row of its event, written in that transaction and never updated; the message row itself
    is updated as it is sent), else `created_at`, taken as the handler builds it, before the commit."""
    conn = await asyncpg.connect(database)
    try:
        if await conn.fetchval("SHOW track_commit_timestamp") == "on":
            clock = "commit"
            sql = ("SELECT m.business_id, min(pg_xact_commit_timestamp(i.xmin)) AS at FROM message m"
                   " JOIN inbox i ON i.event_id = m.event_id WHERE m.template = $1 AND m.business_id = ANY($2::uuid[])"
                   " GROUP BY m.business_id")  # fmt: skip
        else:
            clock = "created_at"
            sql = ("SELECT business_id, min(created_at) AS at FROM message WHERE template = $1"
                   " AND business_id = ANY($2::uuid[]) GROUP BY business_id")  # fmt: skip
        rows = await conn.fetch(sql, template, business_ids)
        return {str(r["business_id"]): r["at"].timestamp() for r in rows if r["at"] is not None}, clock
    finally:
        await conn.close()


async def wait_until_complete(check: Callable[[], object], timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[misc]
            return True
        await asyncio.sleep(0.5)
    say(f"gave up waiting for {what} after {timeout:.0f} s")
    return False


async def raw_round_trip(kafka: KafkaAccess, topic: str, count: int, rate: float) -> list[float]:
    """Milliseconds from send (acks=all) to the same record read by a consumer already waiting on the partition:
    what Kafka alone costs one hop on this broker, at the same pace."""
    admin = AIOKafkaAdminClient(**kafka.aiokafka())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), group_id=None)  # the same fetches as the Watch's
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        sent_at: dict[int, float] = {}
        arrived: dict[int, float] = {}

        async def read() -> None:
            while len(arrived) < count:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.perf_counter()
                    for record in records:
                        arrived[int(record.key)] = now

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the reader's first fetch is in flight
        started = time.perf_counter()
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[i] = time.perf_counter()
            await producer.send(topic, b'{"bench": "round trip"}' + b" " * 400, key=str(i).encode())
        await asyncio.wait_for(reader, timeout=60)
        return [(arrived[i] - sent_at[i]) * 1000 for i in range(count)]
    finally:
        await producer.stop()
        await consumer.stop()


async def bench_latency(infra: Throwaway, rate: float, seconds: float) -> dict:
    deployment = Deployment(infra, "latency")
    total, warm = int(rate * seconds), 20
    say(f"starting registry, funding and notifier ({deployment.namespace})")
    await deployment.start({"registry": 1, "funding": 1, "notifier": 1})
    try:
        # A pledge every business with an NIB qualifies for, with money for all of them.
        await open_pledge(deployment, offers=total + warm + 100, nib_required=True)
        say("pledge open and matched; every new business with an NIB now gets an offer")
        watch = Watch(infra.kafka, [deployment.topic(REGISTRY_BUSINESS), deployment.topic(FUNDING_PLEDGE)])
        await watch.start()
        forms = iter(registration_forms(total + warm, seed=int(time.time())))
        headers = deployment.officer()
        url = deployment.url("registry")
        async with Connections(CONNECTIONS) as http:
            # A few first, waited for: the consumer groups' first fetches and connection pools are not the figure.
            warmup = await steady_load(lambda f, at: register(http, url, headers, f, at), forms, 10, warm / 10)
            warm_ids = [s.business_id for s in warmup if s.business_id]
            await wait_until_complete(lambda: _all_messages(deployment, warm_ids), 60, "the warm-up's messages")
            say(f"warm-up done; {total:,} registrations at {rate:g}/s for {seconds:g} s")
            pids = {**deployment.pids(), "load generator (this process)": os.getpid()}
            cpu_before = {name: cpu_of(pid) for name, pid in pids.items()}
            infra_before = {k: cpu_total(v) for k, v in infra_pids(infra).items()}
            busy_before, total_before = machine_busy()
            sent = await steady_load(lambda f, at: register(http, url, headers, f, at), forms, rate, seconds)
            busy_after, total_after = machine_busy()
            cpu = {name: cpu_of(pid) - cpu_before[name] for name, pid in pids.items()}
            cpu |= {k: cpu_total(v) - infra_before.get(k, 0) for k, v in infra_pids(infra).items()}
        ids = [s.business_id for s in sent if s.business_id]
        say(f"load done: {len(ids):,} registered of {len(sent):,}; waiting for offers and messages")
        await wait_until_complete(lambda: _matched_all(watch, ids), 120, "every FundingMatched")
        await wait_until_complete(lambda: _all_messages(deployment, ids), 120, "every notifier message")
        await watch.stop()
        messages, clock = await notifier_messages(deployment.databases["notifier"], "funding_offer", ids)
    finally:
        deployment.stop()
    say("raw Kafka round trip baseline")
    raw = await raw_round_trip(infra.kafka, deployment.topic("bench.round-trip"), count=min(total, 2000), rate=rate)
    return {"rate": rate, "seconds": seconds, "sent": sent, "seen": watch.seen, "messages": messages,
            "messages_clock": clock, "raw_ms": raw,
            "cpu_s": cpu, "machine_busy_s": busy_after - busy_before, "machine_total_s": total_after - total_before}


async def _matched_all(watch: Watch, ids: list[str]) -> bool:
    matched = watch.seen.get("FundingMatched", {})
    return all(i in matched for i in ids)


async def _all_messages(deployment: Deployment, ids: list[str]) -> bool:
    return len((await notifier_messages(deployment.databases["notifier"], "funding_offer", ids))[0]) >= len(ids)


def latency_figures(result: dict) -> dict[str, list[float]]:
    """Milliseconds from each request's start to each step of its way, for the businesses that got that far."""
    sent = [s for s in result["sent"] if s.business_id]
    registered = result["seen"].get("BusinessRegistered", {})
    matched = result["seen"].get("FundingMatched", {})
    messages = result["messages"]
    return {
        "HTTP answer (201)": [(s.answered - s.started) * 1000 for s in sent],
        "BusinessRegistered on Kafka (record time)": [(registered[s.business_id][0] - s.started_wall) * 1000
                                                      for s in sent if s.business_id in registered],
        "FundingMatched on Kafka (record time)": [(matched[s.business_id][0] - s.started_wall) * 1000
                                                  for s in sent if s.business_id in matched],
        "FundingMatched read by a consumer": [(matched[s.business_id][1] - s.started_wall) * 1000
                                              for s in sent if s.business_id in matched],
        f"notifier message recorded ({result['messages_clock']})": [(messages[s.business_id] - s.started_wall) * 1000
                                                                 for s in sent if s.business_id in messages],
    }  # fmt: skip


def report_latency(result: dict) -> None:
    sent = result["sent"]
    ok = [s for s in sent if s.business_id]
    statuses: dict[int, int] = {}
    for s in sent:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    raw = result["raw_ms"]
    figures = latency_figures(result)
    print()
    print(f"End-to-end latency: {len(sent):,} single registrations (POST /businesses, each with its NIB) at "
          f"{result['rate']:g}/s for {result['seconds']:g} s, one open pledge (nib_required) every one qualifies for; "
          f"HTTP statuses {statuses}", flush=True)  # fmt: skip
    print(f"  {'ms from the request start to':<46} {'count':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for what, values in figures.items():
        print(f"  {what:<46} {len(values):>7,} {percentile(values, .5):>8.1f} {percentile(values, .95):>8.1f}"
              f" {percentile(values, .99):>8.1f} {max(values, default=float('nan')):>8.1f}")  # fmt: skip
    print(f"  {'raw Kafka round trip (acks=all -> consumer)':<46} {len(raw):>7,} {percentile(raw, .5):>8.1f}"
          f" {percentile(raw, .95):>8.1f} {percentile(raw, .99):>8.1f}"
          f" {max(raw, default=float('nan')):>8.1f}")  # fmt: skip
    print()
    header()
    raw99 = percentile(raw, 0.99)
    for what, key in (("p99 request -> FundingMatched read", "FundingMatched read by a consumer"),
                      ("p99 request -> notifier message recorded",
                       f"notifier message recorded ({result['messages_clock']})")):
        values = figures[key]
        complete = len(values) == len(sent)  # a request refused, failed or lost on the way is no fast one
        p99 = percentile(values, 0.99)
        row(what, f"{p99:,.0f} ms", f"raw Kafka p99 {raw99:.1f} ms", f"{p99 / raw99:.0f}x", "p99 < 200 ms",
            complete and p99 < 200)  # fmt: skip
        if not complete:
            say(f"  only {len(values):,} of {len(sent):,} requests sent ({len(ok):,} registered) got this far: "
                "counted as NOT met")
    print(f"  (raw Kafka p50 {percentile(raw, .5):.1f} ms; the path crosses Kafka twice: registry -> funding -> "
          "notifier, each behind a PostgreSQL commit and an outbox relay)", flush=True)
    if ok:
        # Open loop: if the registry answers slower than the offered rate, requests queue and the latency is mostly
        # that queue; the answered rate tells whether the offered one was carried.
        span = max(s.answered for s in ok) - min(s.started for s in ok)
        print(f"  offered {result['rate']:g}/s; answered {len(ok) / span:,.1f}/s over {span:.1f} s"
              " (first request to last answer)", flush=True)  # fmt: skip
    busy = result["machine_busy_s"]
    cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["cpu_s"].items())
    print(f"  CPU from the first request to the last answer: machine busy {busy:.0f} s of "
          f"{result['machine_total_s']:.0f} s; {cpu}", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# 2. Scale-out of funding's view consumer and the notifier
# ---------------------------------------------------------------------------------------------------------------


async def import_backlog(deployment: Deployment, rows: int, seed: int) -> int:
    """Rows registered through the registry's bulk import over HTTP; returns once its relay has published them."""
    path = deployment.infra.base / f"{deployment.namespace}.csv"
    await asyncio.to_thread(write_csv, path, rows, seed)
    token = deployment.tokens.mint("bench", ["officer"])
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] % 50_000 < n:
            say(f"imported {done[0]:,} rows")

    started = time.perf_counter()
    summary = await asyncio.to_thread(import_file, path, base_url=deployment.url("registry"), token=token,
                                      chunk_size=2000, progress=progress)  # fmt: skip
    say(f"{summary.registered:,} registered in {time.perf_counter() - started:.0f} s; waiting for the registry's relay")
    await outbox_published(deployment.databases["registry"], timeout=3600, what="the registry's outbox relay")
    say(f"all published after {time.perf_counter() - started:.0f} s")
    return summary.registered


class LagReader:
    """Consumer groups' lag as the cluster's admin: committed offsets against end offsets, one pair of clients for
    the whole run (a client per measurement floods the log with connection noise)."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.kafka = kafka
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def __aenter__(self) -> LagReader:
        self.admin = AIOKafkaAdminClient(**self.kafka.aiokafka())
        self.consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), group_id=None, enable_auto_commit=False)
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self, group: str, topic: str) -> int:
        if topic not in self.partitions:
            self.partitions[topic] = await partitions_of(self.kafka, [topic])
        partitions = self.partitions[topic]
        committed = await self.admin.list_consumer_group_offsets(group)
        ends = await self.consumer.end_offsets(partitions)
        starts = await self.consumer.beginning_offsets(partitions)
        done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        return sum(ends[tp] - max(done.get(tp, 0), starts[tp]) for tp in partitions)


def group_members(kafka: KafkaAccess, group: str) -> list[tuple[str, list[int]]]:
    """(member id, partitions) of each member of the group, as the group coordinator has them now."""
    admin = confluent_admin(kafka)  # kept referenced until the answer arrives
    description = admin.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30)
    return sorted((m.member_id, sorted(tp.partition for tp in m.assignment.topic_partitions))
                  for m in description.members)  # fmt: skip


async def read_topic(kafka: KafkaAccess, topic: str) -> list:
    """Every record of the topic, in partition order."""
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        partitions = await partitions_of(kafka, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list = []
        while len(records) < sum(ends.values()) - sum((await consumer.beginning_offsets(partitions)).values()):
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def publish_copy(kafka: KafkaAccess, topic: str, records: list) -> float:
    """The registry's records again, byte for byte (key, value, headers, partition) on another deployment's topic;
    returns the seconds it took."""
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        sent = [await producer.send(topic, r.value, key=r.key, partition=r.partition, headers=list(r.headers))
                for r in records]  # fmt: skip
        await asyncio.gather(*sent)
        return time.perf_counter() - started
    finally:
        await producer.stop()


@dataclass
class Drain:
    """One service's consumer group reading the backlog down to nothing."""

    service: str
    group: str
    backlog: int = 0
    zero: float | None = None  # perf_counter
    cpu: dict[str, float] = field(default_factory=dict)  # replica -> CPU seconds while reading
    members: list[tuple[str, list[int]]] = field(default_factory=list)
    started: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.zero or float("nan")) - self.started

    @property
    def rate(self) -> float:
        return self.backlog / self.seconds


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        os.kill(pid, sig)


async def stable_groups(kafka: KafkaAccess, groups: list[str], members: int, partitions: int, timeout: float) -> None:
    """Every group has its members and every partition is assigned: the figure is reading, not joining."""
    deadline = time.monotonic() + timeout
    while True:
        described = [await asyncio.to_thread(group_members, kafka, g) for g in groups]
        if all(len(d) == members and all(p for _, p in d) and sum(len(p) for _, p in d) == partitions
               for d in described):  # fmt: skip
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumer groups not settled after {timeout:.0f} s: {described}")
        await asyncio.sleep(0.5)


async def drain(infra: Throwaway, records: list, replicas: int, timeout: float) -> dict:
    """funding and the notifier with `replicas` replicas each, in a deployment of their own with fresh databases;
    once their groups have settled on an empty topic, the backlog is published to it at once, and each group's lag
    is followed to zero. Also who read which partition, and the CPU each process and the machine used meanwhile."""
    deployment = Deployment(infra, f"scale{replicas}")
    await deployment.start({"funding": replicas, "notifier": replicas})
    try:
        topic = deployment.topic(REGISTRY_BUSINESS)
        partitions = len(await partitions_of(infra.kafka, [topic]))
        drains = [Drain("funding", deployment.group("funding-view")), Drain("notifier", deployment.group("notifier"))]
        await stable_groups(infra.kafka, [d.group for d in drains], replicas, partitions, timeout=120)
        for d in drains:
            d.members = await asyncio.to_thread(group_members, infra.kafka, d.group)
        pids = deployment.pids()
        # Frozen while the backlog is published (well within the groups' session timeout), so that every replica
        # starts on the whole backlog at once and the figure is the reading, not the producer's pace.
        signal_all(pids.values(), signal.SIGSTOP)
        try:
            publish_s = await publish_copy(infra.kafka, topic, records)
        finally:
            signal_all(pids.values(), signal.SIGCONT)
        cpu_before = {name: cpu_of(pid) for name, pid in pids.items()}
        busy_before, total_before = machine_busy()
        infra_before = {k: cpu_total(v) for k, v in infra_pids(infra).items()}
        started = time.perf_counter()
        for d in drains:
            d.started, d.backlog = started, len(records)
        async with LagReader(infra.kafka) as lags:
            deadline, last_said = time.monotonic() + timeout, started
            while any(d.zero is None for d in drains):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the backlog was not read within {timeout:.0f} s")
                for d in (d for d in drains if d.zero is None):
                    lag = await lags.lag(d.group, topic)
                    now = time.perf_counter()
                    if lag == 0:
                        d.zero = now
                        d.cpu = {n: cpu_of(p) - cpu_before[n] for n, p in pids.items() if n.startswith(d.service)}
                    elif now - last_said > 10:
                        say(f"{replicas} replica(s): {d.service} lag {lag:,} ({now - started:.0f} s)")
                        last_said = now
                await asyncio.sleep(0.2)
        busy_after, total_after = machine_busy()
        infra_after = {k: cpu_total(v) for k, v in infra_pids(infra).items()}
        for d in drains:  # the assignment must not have changed while reading
            now_members = await asyncio.to_thread(group_members, infra.kafka, d.group)
            if [p for _, p in now_members] != [p for _, p in d.members]:
                say(f"{d.service}: the group rebalanced while reading: {d.members} -> {now_members}")
        return {"replicas": replicas, "drains": drains, "publish_s": publish_s,
                "machine_busy_s": busy_after - busy_before, "machine_total_s": total_after - total_before,
                "infra_cpu_s": {k: infra_after.get(k, 0) - infra_before.get(k, 0) for k in infra_after}}  # fmt: skip
    finally:
        deployment.stop()


async def bench_scale(infra: Throwaway, backlog: int, timeout: float = 1800) -> dict:
    source = Deployment(infra, "scale")
    say(f"registry bulk import of {backlog:,} rows as the backlog ({source.namespace})")
    await source.start({"registry": 1})
    try:
        await import_backlog(source, backlog, seed=backlog)
    finally:
        source.stop()  # it has nothing left to do: its CPU is not in the figures
    # Published once by the registry, then copied to each run's own deployment: both runs read the same records,
    # and neither run's figure includes its replicas' start or their group's first rebalances.
    records = await read_topic(infra.kafka, source.topic(REGISTRY_BUSINESS))
    runs = []
    for replicas in (1, 2):
        say(f"funding and notifier, {replicas} replica(s) each, reading {len(records):,} registry records")
        runs.append(await drain(infra, records, replicas, timeout))
    return {"events": len(records), "runs": runs}


def report_scale(result: dict) -> None:
    one, two = result["runs"]
    print()
    print(f"Scale-out: {result['events']:,} registry records (BusinessRegistered from a bulk import) published at once "
          f"to a topic of 6 partitions, read by funding's view consumer and the notifier's registry consumer, 1 vs 2 "
          f"replicas each (replicas share their service's database), both services at once on {os.cpu_count()} "
          f"cores; no open pledge (no offers); timed from all replicas resuming on the whole backlog to lag 0")
    header()
    for i, service in enumerate(("funding", "notifier")):
        a, b = one["drains"][i], two["drains"][i]
        ratio = b.rate / a.rate
        row(f"{service}: events/s with 2 replicas", f"{b.rate:,.0f} ev/s", f"1 replica {a.rate:,.0f} ev/s",
            f"{ratio:.2f}x", ">= 1.7x", ratio >= 1.7)  # fmt: skip
    for run in (one, two):
        window = max(d.seconds for d in run["drains"])
        busy = run["machine_busy_s"]
        print(f"  {run['replicas']} replica(s): backlog published in {run['publish_s']:.1f} s while the replicas "
              f"were frozen (SIGSTOP), then timed from SIGCONT; both groups at lag 0 "
              f"after {window:.1f} s; machine CPU busy {busy:.1f} s of {run['machine_total_s']:.1f} s "
              f"({busy / max(run['machine_total_s'], 1e-9):.0%}); of it "
              f"PostgreSQL {run['infra_cpu_s'].get('postgres', 0):.1f} s,"
              f" Kafka {run['infra_cpu_s'].get('kafka', 0):.1f} s")  # fmt: skip
        for d in run["drains"]:
            cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in d.cpu.items())
            print(f"    {d.service}: lag 0 after {d.seconds:.1f} s; CPU while reading: {cpu}")
            for member, partitions in d.members:
                print(f"      member ...{member[-36:]}: partitions {partitions}")


# ---------------------------------------------------------------------------------------------------------------
# 3. Memory after a big import
# ---------------------------------------------------------------------------------------------------------------


async def wait_lag_zero(kafka: KafkaAccess, groups: list[tuple[str, str]], timeout: float) -> None:
    async with LagReader(kafka) as reader:
        await _lag_zero(reader, groups, timeout)


async def _lag_zero(reader: LagReader, groups: list[tuple[str, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_said = 0.0
    while True:
        lags = {g: await reader.lag(g, t) for g, t in groups}
        if not any(lags.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumers still behind after {timeout:.0f} s: {lags}")
        if time.monotonic() - last_said > 15:
            say("lag " + ", ".join(f"{g.rsplit('.', 1)[-1]} {n:,}" for g, n in lags.items()))
            last_said = time.monotonic()
        await asyncio.sleep(1)


async def bench_memory(infra: Throwaway, rows: int, offers: int = 20_000, timeout: float = 7200) -> dict:
    deployment = Deployment(infra, "memory")
    services = {"registry": 1, "funding": 1, "notifier": 1, "training": 1}
    say(f"starting registry, funding, notifier and training ({deployment.namespace})")
    await deployment.start(services)
    try:
        idle = {name: memory_of(pid) for name, pid in deployment.pids().items()}
        # An open pledge as a city would have one, with money for a limited number of offers: the import then
        # causes offers and their messages too, not only registrations.
        await open_pledge(deployment, offers=offers, nib_required=True)
        say(f"pledge for {offers:,} offers open; importing {rows:,} rows")
        # Memory as it goes, in case a long run is cut short.
        watching = asyncio.create_task(say_memory(deployment.pids(), every=60))
        try:
            events = await import_backlog(deployment, rows, seed=rows + 1)
            registry_topic, funding_topic = deployment.topic(REGISTRY_BUSINESS), deployment.topic(FUNDING_PLEDGE)
            groups = [(deployment.group(g), registry_topic) for g in ("funding-view", "notifier", "training-view")]
            await wait_lag_zero(infra.kafka, groups, timeout)
            await outbox_published(deployment.databases["funding"], timeout=timeout, what="funding's outbox relay")
            offer_groups = [(deployment.group(g), funding_topic) for g in ("notifier-funding", "training-funding")]
            await wait_lag_zero(infra.kafka, offer_groups, timeout)
        finally:
            watching.cancel()
        say("every consumer has caught up")
        after = {name: memory_of(pid) for name, pid in deployment.pids().items()}
        offered = await _count(deployment.databases["funding"], "SELECT count(*) FROM offer")
        messages = await _count(deployment.databases["notifier"], "SELECT count(*) FROM message")
    finally:
        deployment.stop()
    return {"rows": rows, "events": events, "idle": idle, "after": after, "offers": offered, "messages": messages}


async def say_memory(pids: dict[str, int], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        say("RSS " + ", ".join(f"{name} {memory_of(pid)[0] / MB:,.0f} MB" for name, pid in pids.items()))


async def _count(database: str, query: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


def report_memory(result: dict) -> None:
    print()
    print(f"Memory: each service process after a registry import of {result['rows']:,} rows ({result['events']:,} "
          f"registered) and after every consumer caught up ({result['offers']:,} offers, {result['messages']:,} "
          f"notifier messages); baseline is the same process idle, right after /ready")  # fmt: skip
    header()
    for name, (rss, hwm) in result["after"].items():
        idle_rss = result["idle"][name][0]
        row(f"{name} VmRSS (peak VmHWM {hwm / MB:,.0f} MB)", f"{rss / MB:,.0f} MB", f"idle {idle_rss / MB:,.0f} MB",
            f"{rss / idle_rss:.1f}x", "<= 300 MB", hwm <= 300 * MB)  # fmt: skip
    print("  (met: the peak VmHWM, not only the RSS at the end, stayed within 300 MB)", flush=True)


# ---------------------------------------------------------------------------------------------------------------


def run(infra: Throwaway, *, rate: float, seconds: float, backlog: int, memory_rows: int,
        parts: Iterable[str] = ("latency", "scale", "memory")) -> None:  # fmt: skip
    parts = set(parts)
    if "latency" in parts:
        print(f"System: end-to-end latency, {rate:g} registrations/s for {seconds:g} s", flush=True)
        report_latency(asyncio.run(bench_latency(infra, rate, seconds)))
    if "scale" in parts:
        print(f"System: scale-out, backlog of {backlog:,} registrations", flush=True)
        report_scale(asyncio.run(bench_scale(infra, backlog)))
    if "memory" in parts:
        print(f"System: memory after an import of {memory_rows:,} rows", flush=True)
        report_memory(asyncio.run(bench_memory(infra, memory_rows)))


"""What a Prometheus scrape costs: GET /metrics of each service with the city's 17,000 businesses loaded (imported
through the registry, read by funding, training and the notifier, a pledge matched against them, a cohort open),
against GET /health of the same service in the same run (the floor: an HTTP round trip that does nothing). The
target is under 100 ms per scrape; this prints, it does not assert."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import date, datetime, timedelta

import httpx

from berdaya.dataset import write_csv
from berdaya.importer import import_file
from berdaya.stack.local import ServiceProcess, run_service, throwaway_env
from berdaya.stack.postgres import ensure_database
from berdaya.stack.process import stop_pid
from berdaya.stack.throwaway import Throwaway
from shared.auth import TokenService
from shared.contracts.topics import REGISTRY_BUSINESS, namespaced
from shared.messaging.kafka import consumer_lag
from shared.reference.wita import WITA

SECRET = "benchmark-secret-benchmark-secret-benchmark"
SERVICES = ("registry", "funding", "training", "notifier")
READERS = ("funding-view", "training-view", "notifier")  # the consumers of registry.business.v1
TARGET_SECONDS = 0.100


def _timed(http: httpx.Client, url: str, times: int) -> list[float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        response = http.get(url)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
    return seconds


def _load(services: dict[str, ServiceProcess], infra: Throwaway, namespace: str, rows: int) -> int:
    tokens = TokenService(SECRET)
    officer = {"Authorization": f"Bearer {tokens.mint('bench', ['officer'])}"}
    trainer = {"Authorization": f"Bearer {tokens.mint('bench', ['trainer'])}"}
    path = infra.base / f"kupang_metrics_{rows}.csv"
    write_csv(path, rows, seed=rows)
    started = time.perf_counter()
    summary = import_file(path, base_url=services["registry"].url, token=tokens.mint("bench", ["officer"]), chunk_size=2000)
    print(f"  imported {summary.registered:,} businesses in {time.perf_counter() - started:.0f}s", flush=True)
    now = datetime.now(WITA)
    with httpx.Client(timeout=60) as http:
        sponsor = http.post(f"{services['funding'].url}/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=officer)
        sponsor.raise_for_status()
        as_sponsor = {"Authorization": f"Bearer {tokens.mint('bench', ['sponsor'], sponsor_id=uuid.UUID(sponsor.json()['id']))}"}
        http.post(f"{services['funding'].url}/pledges", headers=as_sponsor, json={
            "sponsor_id": sponsor.json()["id"], "title": "Modal usaha", "instrument": "grant", "total_rupiah": 2_000_000_000,
            "amount_mode": "fixed", "amount_per_business_rupiah": 1_000_000, "valid_from": date.today().isoformat(),
            "valid_until": (date.today() + timedelta(days=60)).isoformat(), "earmarks": {}}).raise_for_status()  # fmt: skip
        programme = http.post(f"{services['training'].url}/programmes", headers=trainer, json={
            "topic": "halal_certification", "title": "Pendampingan Sertifikasi Halal", "needs": ["halal_uncertified"],
            "requires_nib": True, "sessions": 1, "hours": 4})  # fmt: skip
        programme.raise_for_status()
        cohort = http.post(f"{services['training'].url}/cohorts", headers=trainer, json={
            "programme_id": programme.json()["id"], "starts_on": (now.date() + timedelta(days=7)).isoformat(),
            "ends_on": (now.date() + timedelta(days=7)).isoformat(), "capacity": 60, "venue": "Taman Nostalgia",
            "sessions": [{"starts_at": (now + timedelta(days=7)).isoformat(),
                          "ends_at": (now + timedelta(days=7, hours=4)).isoformat()}]})  # fmt: skip
        cohort.raise_for_status()
        http.post(f"{services['training'].url}/cohorts/{cohort.json()['id']}/open", headers=trainer).raise_for_status()
    topic = namespaced(REGISTRY_BUSINESS, namespace)
    started = time.perf_counter()
    while True:
        lag = sum(sum(consumer_lag(infra.kafka, namespaced(c, namespace), [topic]).values()) for c in READERS)
        if lag == 0 or time.perf_counter() - started > 1800:
            break
        time.sleep(2)
    print(f"  funding, training and the notifier read every registry event ({time.perf_counter() - started:.0f}s; lag {lag})",
          flush=True)  # fmt: skip
    return summary.registered


def bench_metrics(infra: Throwaway, rows: int = 17_000, scrapes: int = 50) -> list[dict[str, float]]:
    namespace = f"bench-metrics-{uuid.uuid4().hex[:6]}"
    env = throwaway_env(infra.kafka, namespace, SECRET)
    services: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            url = asyncio.run(ensure_database(infra.postgres_url, f"bench_metrics_{name}_{namespace[-6:]}"))
            services[name] = run_service(name, env, url, infra.base / f"metrics_{name}.log")
        registered = _load(services, infra, namespace, rows)
        results = []
        with httpx.Client(timeout=30) as http:
            for name, service in services.items():
                _timed(http, f"{service.url}/metrics", 3)  # warm: first-time query plans, connections
                scrape = _timed(http, f"{service.url}/metrics", scrapes)
                health = _timed(http, f"{service.url}/health", scrapes)
                text = http.get(f"{service.url}/metrics").text
                series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
                results.append({"service": name, "businesses": registered, "series": series, "bytes": len(text),
                                "median": statistics.median(scrape), "p95": sorted(scrape)[int(0.95 * len(scrape)) - 1],
                                "max": max(scrape), "health_median": statistics.median(health)})  # fmt: skip
        return results
    finally:
        for service in services.values():
            stop_pid(service.pid)


def report(results: list[dict[str, float]]) -> None:
    print()
    print(f"{'service':>9} {'series':>7} {'bytes':>8} {'/metrics median':>16} {'p95':>8} {'max':>8} "
          f"{'/health median':>15} {'under 100 ms':>13}")  # fmt: skip
    for r in results:
        verdict = "yes" if r["max"] < TARGET_SECONDS else "NO"
        print(f"{r['service']:>9} {r['series']:>7,} {r['bytes']:>8,} {r['median'] * 1000:>13.1f} ms {r['p95'] * 1000:>5.1f} ms"
              f" {r['max'] * 1000:>5.1f} ms {r['health_median'] * 1000:>12.1f} ms {verdict:>13}")  # fmt: skip
    print(f"/metrics: a Prometheus scrape with {results[0]['businesses']:,} businesses loaded (the scrape hooks query each "
          "service's database for its figures); /health: the same HTTP round trip doing nothing (the floor)")  # fmt: skip

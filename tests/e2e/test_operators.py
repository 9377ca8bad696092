"""What operators see, end to end: the four services as real processes on the session's Kafka and PostgreSQL, a real
Prometheus (Debian's) scraping them and itself, and a real Alertmanager sending to a webhook. Asserted through
Prometheus's HTTP API: every target is up, the programme's figures are what the services' APIs say, every exported
metric follows the conventions and carries no personal data, and a consumer that stops makes its lag alert fire and
reach the webhook, then resolve once it consumes again.

The shipped rules are used as they are, except that the lag alert's threshold and `for:` are shortened here (and
scrapes and evaluations run every second), so the test need not wait ten minutes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from berdaya.stack.process import free_port, free_ports, stop_pid
from berdaya.stack.prometheus import RULES, LocalMonitoring, MonitoringUnavailable, Target
from shared.auth import TokenService
from tests.support import TEST_SECRET, Infra, RunningService, drop_database, fresh_database, registration, service_env, start_service

pytestmark = pytest.mark.e2e

SERVICES = ("registry", "funding", "training", "notifier")
WEBHOOK_TOKEN = "alertmanager-test-token-" + uuid.uuid4().hex
LAG_THRESHOLD_SECONDS = 3  # the shipped rule says 300


# ---------------------------------------------------------------------------------------------------------------
# A webhook receiver standing in for the notifier's /webhooks/alertmanager
# ---------------------------------------------------------------------------------------------------------------


class WebhookReceiver:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                calls.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/alertmanager"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, status: str) -> list[tuple[dict[str, str], dict[str, Any], dict[str, Any]]]:
        """(headers, body, alert) for every alert delivered with `status` (firing or resolved)."""
        return [(h, b, a) for h, b in list(self.calls) for a in b.get("alerts", []) if a.get("status") == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------------------------
# The system under watch
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Monitored:
    services: dict[str, RunningService]
    namespace: str
    monitoring: LocalMonitoring
    webhook: WebhookReceiver
    tokens: TokenService = field(default_factory=lambda: TokenService(TEST_SECRET))
    personal_data: list[str] = field(default_factory=list)  # everything personal the tests sent

    def url(self, name: str) -> str:
        return self.services[name].url

    def auth(self, role: str = "officer", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(f'e2e-{role}', [role], **claims)}"}

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.monitoring.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def register(self, http: httpx.Client, count: int, *, kecamatan: str, kelurahan: str, with_nib: int = 0) -> None:
        for i in range(count):
            extra = {"nib": f"{uuid.uuid4().int % 10**13:013d}"} if i < with_nib else {}
            body = registration(kecamatan=kecamatan, kelurahan=kelurahan, **extra)
            response = http.post(f"{self.url('registry')}/businesses", json=body, headers=self.auth())
            assert response.status_code == 201, response.text
            self.personal_data += [str(body["owner_nik"]), str(body["phone"]), str(body["owner_name"]),
                                   str(body["business_name"]), response.json()["id"]]  # fmt: skip


def eventually(check: Callable[[], object], timeout: float = 90, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def fast_lag_rules(path: Path) -> Path:
    """The shipped rules, with the lag alert's threshold and wait shortened (and nothing else changed)."""
    rules = yaml.safe_load((RULES / "berdaya.rules.yml").read_text())
    [lagging] = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "BerdayaConsumerLagging"]
    assert lagging["expr"].count("> 300") == 1, "the lag alert's threshold moved: update this test"
    lagging["expr"] = lagging["expr"].replace("> 300", f"> {LAG_THRESHOLD_SECONDS}")
    lagging["for"] = "3s"
    [down] = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "BerdayaServiceDown"]
    down["for"] = "3s"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def fast_routing(_: dict[str, Any], alertmanager: dict[str, Any]) -> None:
    routes = [alertmanager["route"], *alertmanager["route"].get("routes", [])]
    for route in routes:
        route.update(group_wait="1s", group_interval="1s")
    alertmanager["global"]["resolve_timeout"] = "10s"


def monitored_system(infra: Infra, base: Path, namespace_prefix: str) -> Iterator[Monitored]:
    """The four services, each with its own database on topics of their own, watched by a Prometheus and an
    Alertmanager on free ports (configs generated from the shipped ones, data under `base`)."""
    namespace = f"{namespace_prefix}-{uuid.uuid4().hex[:8]}"
    env = {**service_env(infra.kafka, namespace), "BERDAYA_LAG_INTERVAL_SECONDS": "1"}
    databases = {name: asyncio.run(fresh_database(infra.postgres_url)) for name in SERVICES}
    services: dict[str, RunningService] = {}
    webhook = WebhookReceiver()
    monitoring: LocalMonitoring | None = None
    try:
        for name, url in databases.items():
            services[name] = start_service(name, env, url, base / f"{name}.log")
        for attempt in range(3):
            # Ports chosen as it starts, and again if one was taken meanwhile: the services' own client sockets take
            # ports of the same range, and one took Alertmanager's between choosing it and binding it.
            prometheus_port, alertmanager_port = free_ports(2)
            monitoring = LocalMonitoring(base / "stack", prometheus_port=prometheus_port,
                                         alertmanager_port=alertmanager_port)  # fmt: skip
            try:
                monitoring.start([Target(name, s.url.removeprefix("http://")) for name, s in services.items()],
                                 webhook_url=webhook.url, webhook_token=WEBHOOK_TOKEN,
                                 rule_files=[fast_lag_rules(base / "rules.yml")], scrape_interval="1s",
                                 evaluation_interval="1s", adjust=fast_routing)  # fmt: skip
                break
            except MonitoringUnavailable:
                monitoring.stop()
                if attempt == 2:
                    raise
        system = Monitored(services, namespace, monitoring, webhook)
        # Ready is not yet scraping (targets are applied a few seconds later): what happens next must be seen.
        assert eventually(lambda: len(system.query("up == 1")) == len(services) + 2, timeout=60), system.query("up")
        yield system
    finally:
        if monitoring is not None:
            monitoring.stop()
        for service in services.values():
            try:
                os.kill(service.pid, signal.SIGCONT)  # a test may have stopped it
            except ProcessLookupError:
                pass
            stop_pid(service.pid)
        webhook.close()
        for url in databases.values():
            asyncio.run(drop_database(infra.postgres_url, url))


@pytest.fixture(scope="module")
def monitored(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    yield from monitored_system(infra, tmp_path_factory.mktemp("operators"), "ops")


# ---------------------------------------------------------------------------------------------------------------
# Tests, in the order they run (the last one stops a consumer)
# ---------------------------------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_service_alertmanager_and_itself_and_every_target_is_up(monitored):
    def targets() -> dict[str, str]:
        active = httpx.get(f"{monitored.monitoring.prometheus_url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    assert eventually(lambda: set(targets().values()) == {"up"}), targets()
    assert set(targets()) == {"prometheus", "alertmanager", *SERVICES}
    assert {r["metric"]["job"] for r in monitored.query("up == 1")} == {"prometheus", "alertmanager", *SERVICES}


def test_the_businesses_registered_and_the_nib_coverage_prometheus_shows_are_what_the_registry_reports(monitored):
    with httpx.Client(timeout=30) as http:
        monitored.register(http, 5, kecamatan="Oebobo", kelurahan="Fatululi", with_nib=2)
        monitored.register(http, 3, kecamatan="Alak", kelurahan="Namosain", with_nib=3)
        monitored.register(http, 2, kecamatan="Kota Lama", kelurahan="Air Mata")
        api = http.get(f"{monitored.url('registry')}/stats/nib-coverage", headers=monitored.auth()).json()

    def prometheus_agrees() -> bool:
        return (monitored.value("berdaya_businesses_registered{kecamatan='all'}") == api["registered"]
                and monitored.value("berdaya_businesses_with_nib{kecamatan='all'}") == api["with_nib"])  # fmt: skip

    assert api["registered"] == 10 and api["with_nib"] == 5
    assert eventually(prometheus_agrees), monitored.query("berdaya_businesses_registered")
    assert monitored.value("berdaya_nib_coverage_ratio{kecamatan='all'}") == pytest.approx(api["coverage"])
    for k in api["by_kecamatan"]:
        name = k["kecamatan"]
        assert monitored.value(f"berdaya_businesses_registered{{kecamatan='{name}'}}") == k["registered"], name
        assert monitored.value(f"berdaya_businesses_with_nib{{kecamatan='{name}'}}") == k["with_nib"], name
        assert monitored.value(f"berdaya_nib_coverage_ratio{{kecamatan='{name}'}}") == pytest.approx(k["coverage"]), name


# What no label may be named, and what no label value may look like.
PERSONAL_LABELS = {"business_id", "business", "nik", "owner", "owner_name", "phone", "email", "address", "name", "id",
                   "pledge_id", "offer_id", "application_id", "cohort_id", "message_id", "event_id", "path", "url"}  # fmt: skip
SUSPICIOUS_VALUES = {
    "a NIK or other long number": re.compile(r"\d{9,}"),
    "a phone number": re.compile(r"(\+62|\b08)\d{8,}"),
    "an e-mail address": re.compile(r"[^@\s]+@[^@\s]+\.\w+"),
    "an id (UUID)": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I),
}
NON_BASE_UNITS = re.compile(r"_(milliseconds|microseconds|nanoseconds|minutes|hours|days|ms|kilobytes|megabytes|percent)(_|$)")
MAX_SERIES_PER_FAMILY = 2_000


def test_every_metric_every_service_exports_follows_the_conventions_and_carries_no_personal_data(monitored):
    families: dict[str, list[Any]] = {}
    for name in SERVICES:
        text = httpx.get(f"{monitored.url(name)}/metrics", timeout=10).text
        for secret in monitored.personal_data:
            assert secret not in text, f"{name}'s /metrics shows something personal the test sent"
        families[name] = list(text_string_to_metric_families(text))

    problems = []
    listing = []
    for service, found in families.items():
        for family in found:
            listing.append(f"{service} {family.type:9} {family.name}")
            where = f"{service}: {family.name}"
            if not re.fullmatch(r"[a-z][a-z0-9_]*", family.name):
                problems.append(f"{where}: not snake_case")
            if not family.name.startswith(("berdaya_", "faststream_", "process_")):
                problems.append(f"{where}: not Berdaya's (berdaya_), FastStream's or the process's")
            if not family.documentation:
                problems.append(f"{where}: no help text")
            if family.type == "counter" and not any(s.name == f"{family.name}_total" for s in family.samples) and family.samples:
                problems.append(f"{where}: a counter without _total")
            if family.name.endswith("_created"):
                problems.append(f"{where}: a _created series (prometheus_client's, doubling every counter)")
            if family.type != "counter" and family.name.endswith("_total"):
                problems.append(f"{where}: _total on a {family.type}")
            if NON_BASE_UNITS.search(family.name):
                problems.append(f"{where}: not in base units (seconds, bytes, ratio)")
            if any(w in family.name for w in ("duration", "latency", "_age")) and "_seconds" not in family.name:
                problems.append(f"{where}: a time not in seconds")
            if len({tuple(sorted(s.labels.items())) for s in family.samples}) > MAX_SERIES_PER_FAMILY:
                problems.append(f"{where}: over {MAX_SERIES_PER_FAMILY} series")
            for sample in family.samples:
                for label, value in sample.labels.items():
                    if label in PERSONAL_LABELS:
                        problems.append(f"{where}: a label named {label}")
                    for what, pattern in SUSPICIOUS_VALUES.items():
                        if pattern.search(value) and not (label == "le" or (label == "topic" and "." in value)):
                            problems.append(f"{where}: {label}={value!r} looks like {what}")
                    if label == "route" and value != "unmatched" and not value.startswith("/"):
                        problems.append(f"{where}: route {value!r} is not a route template")

    print("\n".join(sorted(listing)))  # the list of every exported metric, for whoever runs this with -s
    assert problems == []
    names = {f.name for found in families.values() for f in found}
    assert {"berdaya_http_requests", "berdaya_http_request_duration_seconds", "berdaya_consumer_group_lag_records",
            "berdaya_consumer_group_lag_seconds", "berdaya_outbox_backlog", "berdaya_outbox_relay_errors",
            "berdaya_dlq_records", "berdaya_consumer_retries", "berdaya_db_pool_acquire_seconds"} <= names  # fmt: skip


def test_nothing_personal_reaches_prometheus_in_any_label_value(monitored):
    labels = httpx.get(f"{monitored.monitoring.prometheus_url}/api/v1/labels", timeout=10).json()["data"]
    values = []
    for label in labels:
        values += httpx.get(f"{monitored.monitoring.prometheus_url}/api/v1/label/{label}/values", timeout=10).json()["data"]

    assert monitored.personal_data, "the tests registered someone"
    for secret in monitored.personal_data:
        assert all(secret not in v for v in values)


def test_a_stopped_consumer_makes_its_lag_alert_fire_reach_the_webhook_and_resolve_once_it_consumes_again(monitored):
    funding = monitored.services["funding"]
    with httpx.Client(timeout=30) as http:
        os.kill(funding.pid, signal.SIGSTOP)  # hung: its process is there, it consumes nothing and answers nobody
        try:
            monitored.register(http, 3, kecamatan="Maulafa", kelurahan="Oepura")

            def lag_alert(state: str) -> list[dict]:
                return monitored.query(
                    f"ALERTS{{alertname='BerdayaConsumerLagging',consumer='funding-view',alertstate='{state}'}}")

            assert eventually(lambda: lag_alert("firing")), monitored.query("berdaya:consumer_lag_seconds:max")
            # Its peers measured it: funding itself answers nothing.
            lag = monitored.query("berdaya_consumer_group_lag_seconds{consumer='funding-view'}")
            reporters = {r["metric"]["job"] for r in lag}
            assert reporters and "funding" not in reporters
            assert eventually(lambda: monitored.query("ALERTS{alertname='BerdayaServiceDown',job='funding',alertstate='firing'}"))

            def delivered(status: str) -> list:
                wanted = {"alertname": "BerdayaConsumerLagging", "consumer": "funding-view"}
                return [(h, b, a) for h, b, a in monitored.webhook.alerts(status)
                        if wanted.items() <= a["labels"].items()]  # fmt: skip

            assert eventually(lambda: delivered("firing")), monitored.webhook.calls
            headers, body, alert = delivered("firing")[0]
            assert headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
            assert body["version"] == "4" and body["receiver"] == "operators"
            assert alert["labels"]["severity"] == "warning" and alert["labels"]["audience"] == "operators"
            assert alert["annotations"]["summary"].startswith("funding-view is ")
            assert alert["annotations"]["runbook"] == "deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging"
        finally:
            os.kill(funding.pid, signal.SIGCONT)

    assert eventually(lambda: not lag_alert("firing"), timeout=120), monitored.query("berdaya:consumer_lag_seconds:max")
    assert eventually(lambda: delivered("resolved"), timeout=60), monitored.webhook.calls

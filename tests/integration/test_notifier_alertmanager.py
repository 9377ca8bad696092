"""Alertmanager's webhook on the real notifier, as a process on the session's PostgreSQL (and Kafka, which it needs to
start): Alertmanager 0.25's webhook bodies (version 4) for a firing alert, the same call again (Alertmanager's retry,
or its repeat notification every repeat_interval), then its resolution, make exactly two messages per recipient,
which the notifier's own delivery worker delivers through the local outbox (no gateway is configured); the
programme office's alert with no contact configured is kept in the local outbox with a reason. A wrong or missing
token and hostile bodies are refused with problem documents naming what is wrong, and record nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from tests.support import (
    TEST_SECRET,
    Infra,
    RunningService,
    drop_database,
    eventually,
    fresh_database,
    service_env,
    start_service,
)

pytestmark = pytest.mark.integration

TOKEN = "alertmanager-integration-" + uuid.uuid4().hex
OPS_EMAIL, OPS_PHONE = "ops@berdaya.kupangkota.go.id", "+6281377000111"


@dataclass
class AlertingNotifier:
    service: RunningService
    database_url: str
    outbox: Path
    tokens: TokenService

    async def post(self, body: Any, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with httpx.AsyncClient(timeout=60) as http:
            return await http.post(f"{self.service.url}/webhooks/alertmanager", content=content, headers=headers)

    async def messages(self, **params: str) -> dict[str, Any]:
        """GET /messages as an officer (who sees recipients in full)."""
        auth = {"Authorization": f"Bearer {self.tokens.mint('it-officer', ['officer'])}"}
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"{self.service.url}/messages", params={"page_size": "100", **params}, headers=auth)
        response.raise_for_status()
        return response.json()

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            return (await http.get(f"{self.service.url}/metrics")).text

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()


@pytest.fixture
async def notifier(infra: Infra, tmp_path: Path) -> AsyncIterator[AlertingNotifier]:
    """The notifier alone, as a process: Alertmanager's token set, two operators' contacts (an address and a phone),
    none for the programme office, no gateway (so every delivery goes to the local outbox, also as files)."""
    env = service_env(infra.kafka, f"it-{uuid.uuid4().hex[:8]}") | {
        "NOTIFIER_ALERTMANAGER_TOKEN": TOKEN, "NOTIFIER_OPERATOR_CONTACTS": f"{OPS_EMAIL}, 0813 7700 0111",
        "NOTIFIER_LOCAL_OUTBOX_DIR": str(tmp_path / "outbox"), "NOTIFIER_DELIVERY_POLL_SECONDS": "0.2",
    }  # fmt: skip
    env.pop("NOTIFIER_OFFICER_CONTACTS", None)
    database = await fresh_database(infra.postgres_url)
    try:
        service = start_service("notifier", env, database, tmp_path / "notifier.log")
        try:
            yield AlertingNotifier(service, database, tmp_path / "outbox", TokenService(TEST_SECRET))
        finally:
            stop_pid(service.pid)
    finally:
        await drop_database(infra.postgres_url, database)


def lag_alert(status: str = "firing", **overrides: Any) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 writes it (nanoseconds in startsAt, year 1 as the end of a firing alert)."""
    alert = {
        "status": status,
        "labels": {"alertname": "BerdayaConsumerLagging", "audience": "operators", "consumer": "funding-view",
                   "severity": "warning", "topic": "registry.business.v1"},
        "annotations": {"summary": "funding-view is 12m 3s behind on registry.business.v1",
                        "description": "The oldest event funding-view has not consumed on registry.business.v1 has "
                                       "waited more than 5 minutes, for 10 minutes.",
                        "runbook": "deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging"},
        "startsAt": "2026-11-23T01:48:15.372115234Z",
        "endsAt": "2026-11-23T02:13:45.1Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:59090/graph?g0.expr=berdaya%3Aconsumer_lag_seconds%3Amax+%3E+300&g0.tab=1",
        "fingerprint": "5c8a7e1f0b3d2a96",
    }  # fmt: skip
    return {**alert, **overrides}


def webhook_body(*alerts: dict[str, Any], receiver: str = "operators") -> dict[str, Any]:
    status = "firing" if any(a.get("status") == "firing" for a in alerts) else "resolved"
    return {
        "receiver": receiver, "status": status, "alerts": list(alerts),
        "groupLabels": {"alertname": "BerdayaConsumerLagging", "consumer": "funding-view"},
        "commonLabels": {"alertname": "BerdayaConsumerLagging", "audience": "operators", "severity": "warning"},
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:59093", "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="BerdayaConsumerLagging", consumer="funding-view"}',
        "truncatedAlerts": 0,
    }  # fmt: skip


async def test_a_firing_alert_its_repeat_and_its_resolution_make_two_messages_per_recipient_delivered_locally(
        notifier: AlertingNotifier) -> None:  # fmt: skip
    firing = await notifier.post(webhook_body(lag_alert()))
    retried = await notifier.post(webhook_body(lag_alert()))  # Alertmanager's retry, or repeat_interval later
    resolved = await notifier.post(webhook_body(lag_alert("resolved")))
    resolved_again = await notifier.post(webhook_body(lag_alert("resolved")))

    assert firing.status_code == 200, firing.text
    assert firing.json() == {"audience": "operators", "alerts": 1, "recorded": 1, "repeated": 0, "deliveries": 2,
                             "recipients": 2}  # fmt: skip
    assert (retried.status_code, retried.json()["recorded"], retried.json()["repeated"]) == (200, 0, 1)
    assert (resolved.status_code, resolved.json()["recorded"]) == (200, 1)
    assert (resolved_again.status_code, resolved_again.json()["repeated"]) == (200, 1)

    async def all_delivered() -> bool:
        page = await notifier.messages(audience="operators")
        return page["total"] == 2 and all(m["status"] == "delivered" for m in page["items"])

    assert await eventually(all_delivered, timeout=60), await notifier.messages(audience="operators")
    page = await notifier.messages(audience="operators")
    by_template = {m["template"]: m for m in page["items"]}
    assert set(by_template) == {"alert_firing", "alert_resolved"}
    assert by_template["alert_firing"]["body"].startswith(
        "[FIRING] BerdayaConsumerLagging (warning): funding-view is 12m 3s behind on registry.business.v1.")
    assert "Since 2026-11-23 09:48 WITA." in by_template["alert_firing"]["body"]
    assert "Fired from 2026-11-23 09:48 WITA to 2026-11-23 10:13 WITA (25 min)." in by_template["alert_resolved"]["body"]
    for message in page["items"]:
        assert message["business_id"] is None and message["subject"].startswith(("[FIRING]", "[RESOLVED]"))
        assert sorted((d["recipient"], d["channel"], d["status"]) for d in message["deliveries"]) == [
            (OPS_PHONE, "local", "delivered"), (OPS_EMAIL, "local", "delivered")]  # fmt: skip

    # Exactly two per recipient, delivered once each by the worker through the local outbox (table and files).
    rows = await notifier.fetch("SELECT l.recipient, m.template FROM local_outbox l JOIN delivery d ON d.id = l.delivery_id"
                                " JOIN message m ON m.id = d.message_id ORDER BY 1, 2")  # fmt: skip
    assert [(r["recipient"], r["template"]) for r in rows] == [
        (OPS_PHONE, "alert_firing"), (OPS_PHONE, "alert_resolved"),
        (OPS_EMAIL, "alert_firing"), (OPS_EMAIL, "alert_resolved")]  # fmt: skip
    files = sorted(notifier.outbox.glob("*/*.txt"))
    assert len(files) == 4 and all("Jenis: alert_" in f.read_text() for f in files)

    # The same alert firing again later (a new startsAt) is news again.
    again = await notifier.post(webhook_body(lag_alert(startsAt="2026-11-23T06:00:00Z")))
    assert again.json()["recorded"] == 1

    metrics = await notifier.metrics()
    assert 'berdaya_notifier_alerts_total{audience="operators",outcome="recorded",status="firing"} 2.0' in metrics
    assert 'berdaya_notifier_alerts_total{audience="operators",outcome="repeated",status="firing"} 1.0' in metrics
    logs = notifier.service.log_file.read_text()
    assert OPS_PHONE[3:] not in logs and OPS_PHONE[3:] not in metrics and OPS_EMAIL not in logs


async def test_the_programme_offices_alert_with_no_contact_is_kept_in_the_local_outbox_saying_whom_to_add(
        notifier: AlertingNotifier) -> None:  # fmt: skip
    alert = lag_alert(labels={"alertname": "BerdayaNibCoverageStalled", "audience": "officers", "severity": "info",
                              "kecamatan": "Oebobo"},
                      annotations={"summary": "No new NIB in Oebobo for 31d"}, fingerprint="0f0e0d0c0b0a0908")  # fmt: skip
    answer = await notifier.post(webhook_body(alert, receiver="officers"))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"audience": "officers", "alerts": 1, "recorded": 1, "repeated": 0, "deliveries": 1,
                             "recipients": 0}  # fmt: skip

    async def kept() -> bool:
        items = (await notifier.messages(audience="officers"))["items"]
        return len(items) == 1 and items[0]["status"] == "delivered"

    assert await eventually(kept, timeout=60), await notifier.messages(audience="officers")
    [message] = (await notifier.messages(audience="officers"))["items"]
    assert message["template"] == "alert_firing_officer" and message["kecamatan_code"] is None
    assert message["body"].startswith("[PERINGATAN] BerdayaNibCoverageStalled (info): No new NIB in Oebobo for 31d.")
    assert "Sejak 23 November 2026 pukul 09.48 WITA." in message["body"]
    [delivery] = message["deliveries"]
    assert (delivery["recipient"], delivery["channel"], delivery["status"]) == ("alerts:officers", "local", "delivered")
    assert "NOTIFIER_OFFICER_CONTACTS" in delivery["reason"]
    assert "no NOTIFIER_OFFICER_CONTACTS" in notifier.service.log_file.read_text()  # said at start, and warned again


async def test_wrong_or_missing_tokens_and_hostile_bodies_get_problems_naming_what_is_wrong_and_record_nothing(
        notifier: AlertingNotifier) -> None:  # fmt: skip
    def problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
        assert response.status_code == status, f"{response.status_code} instead of {status}: {response.text[:500]}"
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        if field is not None:
            assert body["errors"][0]["field"] == field, body
            assert body["errors"][0]["message"], body
        return body

    good = webhook_body(lag_alert())
    problem(await notifier.post(good, token=None), 401)
    problem(await notifier.post(good, token="guessed-" + TOKEN[8:]), 403)
    problem(await notifier.post({**good, "version": "3"}, token="guessed-" + TOKEN[8:]), 403)  # the token comes first

    problem(await notifier.post({**good, "version": "3"}), 422, "version")
    problem(await notifier.post(webhook_body(lag_alert(startsAt="not a time"))), 422, "alerts.0.startsAt")
    unknown = problem(await notifier.post(webhook_body(lag_alert(), receiver="pagerduty")), 422, "receiver")
    assert "pagerduty" in unknown["detail"]
    nul = problem(await notifier.post(webhook_body(lag_alert(labels={"alertname": "Lag\x00ging"}))), 422,
                  "alerts.0.labels.alertname")  # fmt: skip
    assert nul["errors"][0]["code"] == "text.nul"
    huge = problem(await notifier.post(webhook_body(lag_alert(labels={"alertname": "L", "job": "j" * 200_000}))), 422,
                   "alerts.0.labels.job")  # fmt: skip
    assert huge["errors"][0]["code"] == "string_too_long"
    too_many = [lag_alert(fingerprint=f"{i:016x}", annotations={}, generatorURL="") for i in range(1001)]
    problem(await notifier.post(webhook_body(*too_many)), 422, "alerts")
    one = json.dumps(lag_alert()).encode()
    hundred_thousand = b'{"version":"4","status":"firing","receiver":"operators","alerts":[' + b",".join([one] * 100_000) + b"]}"
    assert problem(await notifier.post(hundred_thousand), 413)["code"] == "body_too_large"
    two_megabytes = webhook_body(*[lag_alert(fingerprint=f"{i:016x}") for i in range(3000)])
    assert problem(await notifier.post(two_megabytes), 413)["code"] == "body_too_large"

    assert (await notifier.messages())["total"] == 0
    assert (await notifier.fetch("SELECT count(*) AS n FROM delivery"))[0]["n"] == 0
    metrics = await notifier.metrics()
    assert 'berdaya_notifier_webhooks_refused_total{source="alertmanager"} 3.0' in metrics
    assert TOKEN not in notifier.service.log_file.read_text()

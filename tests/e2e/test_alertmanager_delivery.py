"""A real Alertmanager (Debian's prometheus-alertmanager, configured from deploy/prometheus/alertmanager.yml as `berdaya
up` does, with shorter waits) sending to the real notifier's webhook with the bearer token from its credentials_file:
an alert posted to Alertmanager reaches the operators' contacts once, Alertmanager's repeat notification of the same
firing alert makes no second message, and its resolution makes exactly one more; the notifier's delivery worker
delivers each through the local outbox (no gateway configured)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from berdaya.stack.process import free_port, spawn, stop_pid, wait_until
from berdaya.stack.prometheus import WEBHOOK_PATH, alertmanager_config, tools
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

pytestmark = pytest.mark.e2e

TOKEN = "alertmanager-e2e-" + uuid.uuid4().hex
OPS_EMAIL, OPS_PHONE = "ops@berdaya.kupangkota.go.id", "+6281377000111"


@dataclass
class Alerting:
    notifier: RunningService
    alertmanager_url: str
    tokens: TokenService

    async def post_alert(self, starts_at: datetime, ends_at: datetime) -> None:
        alert = {"labels": {"alertname": "BerdayaOutboxEventsWaiting", "severity": "critical", "audience": "operators",
                            "job": "funding"},
                 "annotations": {"summary": "funding's oldest unpublished event is 6m old",
                                 "runbook": "deploy/prometheus/RUNBOOK.md#berdayaoutboxeventswaiting"},
                 "startsAt": starts_at.isoformat(), "endsAt": ends_at.isoformat(),
                 "generatorURL": "http://127.0.0.1:59090/graph?g0.expr=berdaya_outbox_oldest_unpublished_age_seconds"}  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{self.alertmanager_url}/api/v2/alerts", json=[alert])
        response.raise_for_status()

    async def messages(self) -> list[dict[str, Any]]:
        auth = {"Authorization": f"Bearer {self.tokens.mint('e2e-officer', ['officer'])}"}
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{self.notifier.url}/messages", params={"audience": "operators"}, headers=auth)
        response.raise_for_status()
        return response.json()["items"]

    async def counted(self, status: str, outcome: str) -> float:
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{self.notifier.url}/metrics")).text
        wanted = f'berdaya_notifier_alerts_total{{audience="operators",outcome="{outcome}",status="{status}"}} '
        return next((float(line.removeprefix(wanted)) for line in metrics.splitlines() if line.startswith(wanted)), 0.0)


def quick(config: dict[str, Any]) -> dict[str, Any]:
    """The shipped routing with waits of a second, and a repeat of a still-firing alert every 2 s."""
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="2s")
    return config


@pytest.fixture
async def alerting(infra: Infra, tmp_path: Path) -> AsyncIterator[Alerting]:
    env = service_env(infra.kafka, f"e2e-{uuid.uuid4().hex[:8]}") | {
        "NOTIFIER_ALERTMANAGER_TOKEN": TOKEN, "NOTIFIER_OPERATOR_CONTACTS": f"{OPS_EMAIL},{OPS_PHONE}",
        "NOTIFIER_DELIVERY_POLL_SECONDS": "0.2",
    }  # fmt: skip
    database = await fresh_database(infra.postgres_url)
    notifier = start_service("notifier", env, database, tmp_path / "notifier.log")
    token_file = tmp_path / "alertmanager" / "webhook-token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(TOKEN + "\n")
    config_file = tmp_path / "alertmanager" / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(quick(alertmanager_config(notifier.url + WEBHOOK_PATH, token_file))))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "alertmanager.log"
    alertmanager = spawn([str(tools().alertmanager), f"--config.file={config_file}",
                          f"--storage.path={tmp_path / 'alertmanager' / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                          "--cluster.listen-address="], log_file)  # fmt: skip

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 60, "alertmanager /-/ready", log_file)
        yield Alerting(notifier, url, TokenService(TEST_SECRET))
    finally:
        stop_pid(alertmanager.pid)
        stop_pid(notifier.pid)
        await drop_database(infra.postgres_url, database)


async def test_alertmanagers_alert_its_repeats_and_its_resolution_reach_each_operator_exactly_twice(
        alerting: Alerting) -> None:  # fmt: skip
    started = datetime.now(UTC) - timedelta(minutes=7)
    await alerting.post_alert(started, datetime.now(UTC) + timedelta(hours=1))

    async def firing_delivered() -> bool:
        found = await alerting.messages()
        return len(found) == 1 and found[0]["status"] == "delivered"

    assert await eventually(firing_delivered, timeout=60), await alerting.messages()
    # Alertmanager tells the notifier again every repeat_interval while the alert fires: nothing new is recorded.
    assert await eventually(lambda: alerting.counted("firing", "repeated"), timeout=60)  # type: ignore[arg-type]
    assert len(await alerting.messages()) == 1

    await alerting.post_alert(started, datetime.now(UTC) - timedelta(seconds=1))  # resolved

    async def resolved_delivered() -> bool:
        found = {m["template"]: m["status"] for m in await alerting.messages()}
        return found == {"alert_firing": "delivered", "alert_resolved": "delivered"}

    assert await eventually(resolved_delivered, timeout=60), await alerting.messages()
    found = {m["template"]: m for m in await alerting.messages()}
    assert found["alert_firing"]["body"].startswith(
        "[FIRING] BerdayaOutboxEventsWaiting (critical): funding's oldest unpublished event is 6m old.")
    assert found["alert_resolved"]["body"].startswith("[RESOLVED] BerdayaOutboxEventsWaiting (critical)")
    for message in found.values():
        assert sorted((d["recipient"], d["channel"], d["status"]) for d in message["deliveries"]) == [
            (OPS_PHONE, "local", "delivered"), (OPS_EMAIL, "local", "delivered")]  # fmt: skip
    assert await alerting.counted("firing", "recorded") == 1 and await alerting.counted("resolved", "recorded") == 1

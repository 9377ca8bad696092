"""Tests what operators are alerted by, with the tools Prometheus and Alertmanager ship: `promtool check config`,
`promtool check rules`, `promtool test rules` (every alert firing and not firing), `amtool check-config` and
`amtool config routes test`; and that every alert says what it is and has its runbook paragraph. The tools are
Debian's, installed by the project (berdaya.stack.prometheus) when missing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from berdaya.stack.prometheus import DEPLOY, RULES, LocalMonitoring, Target, Tools, alertmanager_config, prometheus_config, tools

RULE_FILE = RULES / "berdaya.rules.yml"
TEST_FILE = DEPLOY / "tests" / "berdaya.test.yml"
RUNBOOK = DEPLOY / "RUNBOOK.md"
ALWAYS_FIRING = {"BerdayaWatchdog"}  # by design it has no quiet state to test


@pytest.fixture(scope="module")
def tool() -> Tools:
    return tools()


def run(*argv: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd)


def alerts() -> list[dict]:
    rules = yaml.safe_load(RULE_FILE.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def alert_tests() -> list[dict]:
    return [case for test in yaml.safe_load(TEST_FILE.read_text())["tests"] for case in test.get("alert_rule_test", [])]


def test_the_shipped_prometheus_config_and_the_rules_it_loads_pass_promtool_check_config(tool):
    result = run(tool.promtool, "check", "config", DEPLOY / "prometheus.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout


def test_every_rule_file_passes_promtool_check_rules(tool):
    result = run(tool.promtool, "check", "rules", *sorted(RULES.glob("*.yml")))

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_behaves_as_its_unit_tests_say_under_promtool_test_rules(tool):
    result = run(tool.promtool, "test", "rules", TEST_FILE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not():
    firing = {c["alertname"] for c in alert_tests() if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in alert_tests() if not c.get("exp_alerts")}
    names = {a["alert"] for a in alerts()}

    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet - ALWAYS_FIRING == set(), "alerts never tested staying quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_says_how_bad_it_is_whom_it_is_for_and_what_happened():
    for alert in alerts():
        assert alert["labels"]["severity"] in {"critical", "warning", "info", "none"}, alert["alert"]
        assert alert["labels"]["audience"] in {"operators", "officers"}, alert["alert"]
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]
        assert alert["annotations"]["runbook"] == f"deploy/prometheus/RUNBOOK.md#{alert['alert'].lower()}"


def test_every_alert_has_a_runbook_paragraph_saying_what_to_check_and_what_to_do():
    sections = re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]
    by_name = {s.split("\n", 1)[0].strip(): s for s in sections}

    for alert in alerts():
        section = by_name.get(alert["alert"])
        assert section is not None, f"RUNBOOK.md has no section '## {alert['alert']}'"
        if alert["alert"] not in ALWAYS_FIRING:
            assert "Check" in section and "Do" in section, alert["alert"]


def test_a_consumer_is_alerted_on_by_how_long_its_oldest_event_has_waited_for_a_while_not_by_a_moment():
    [lagging] = [a for a in alerts() if a["alert"] == "BerdayaConsumerLagging"]

    assert "seconds" in lagging["expr"]
    assert lagging["for"] == "10m"


def test_the_registry_write_api_is_alerted_on_by_a_fast_and_a_slow_burn_each_over_a_long_and_a_short_window():
    by_name = {a["alert"]: a["expr"] for a in alerts()}

    assert set(re.findall(r"ratio_rate(\w+)", by_name["BerdayaRegistryWriteErrorBudgetBurnFast"])) == {"1h", "5m", "6h", "30m"}
    assert set(re.findall(r"ratio_rate(\w+)", by_name["BerdayaRegistryWriteErrorBudgetBurnSlow"])) == {"1d", "2h", "3d", "6h"}


def test_the_shipped_alertmanager_config_passes_amtool_check_config(tool):
    result = run(tool.amtool, "check-config", DEPLOY / "alertmanager.yml")

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    ({"alertname": "BerdayaServiceDown", "severity": "critical", "audience": "operators", "job": "funding"}, "operators"),
    ({"alertname": "BerdayaConsumerLagging", "severity": "warning", "audience": "operators"}, "operators"),
    ({"alertname": "BerdayaNibCoverageStalled", "severity": "info", "audience": "officers"}, "officers"),
    ({"alertname": "BerdayaPledgeExpiringUnallocated", "severity": "info", "audience": "officers"}, "officers"),
    ({"alertname": "BerdayaWatchdog", "severity": "none", "audience": "operators"}, "heartbeat"),
])  # fmt: skip
def test_alertmanager_routes_operators_alerts_to_operators_and_programme_alerts_to_the_programme_office(tool, labels, receiver):
    result = run(tool.amtool, "config", "routes", "test", f"--config.file={DEPLOY / 'alertmanager.yml'}",
                 f"--verify.receivers={receiver}", *(f"{k}={v}" for k, v in labels.items()))  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_goes_to_the_notifiers_webhook_with_a_bearer_token_from_a_file():
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    hooks = {r["name"]: r.get("webhook_configs", []) for r in config["receivers"]}

    for name in ("operators", "officers"):
        [hook] = hooks[name]
        assert hook["url"].endswith("/webhooks/alertmanager") and hook["send_resolved"] is True
        assert hook["http_config"]["authorization"]["type"] == "Bearer"
        assert "credentials_file" in hook["http_config"]["authorization"], "never a secret in the config itself"


def test_the_configs_the_stack_generates_for_its_ports_pass_promtool_and_amtool(tool, tmp_path):
    monitoring = LocalMonitoring(tmp_path, prometheus_port=19090, alertmanager_port=19093)
    targets = [Target("registry", "127.0.0.1:18001"), Target("funding", "127.0.0.1:18002")]

    monitoring.write_configs(targets, webhook_url="http://127.0.0.1:18004/webhooks/alertmanager", webhook_token="s3cret")

    assert run(tool.promtool, "check", "config", monitoring.prometheus_config_file).returncode == 0
    assert run(tool.amtool, "check-config", monitoring.alertmanager_config_file).returncode == 0
    assert monitoring.webhook_token_file.read_text() == "s3cret"
    assert monitoring.webhook_token_file.stat().st_mode & 0o077 == 0, "the token file is the owner's alone"
    assert "s3cret" not in monitoring.alertmanager_config_file.read_text()


def test_a_generated_prometheus_config_scrapes_every_service_alertmanager_and_itself_by_the_services_names():
    config = prometheus_config([Target("registry", "127.0.0.1:8001"), Target("notifier", "127.0.0.1:8004")],
                               prometheus="127.0.0.1:59090", alertmanager="127.0.0.1:59093", scrape_interval="1s")  # fmt: skip

    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in config["scrape_configs"]}
    assert jobs == {"prometheus": ["127.0.0.1:59090"], "alertmanager": ["127.0.0.1:59093"],
                    "registry": ["127.0.0.1:8001"], "notifier": ["127.0.0.1:8004"]}  # fmt: skip
    assert config["global"]["scrape_timeout"] == "1s", "a scrape never outlasts its interval"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:59093"]


def test_a_generated_alertmanager_config_keeps_the_shipped_routes_and_points_every_hook_at_the_given_notifier(tmp_path):
    config = alertmanager_config("http://10.0.0.4:8004/webhooks/alertmanager", tmp_path / "token")
    shipped = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())

    assert config["route"] == shipped["route"]
    assert config["inhibit_rules"] == shipped["inhibit_rules"]
    urls = {h["url"] for r in config["receivers"] for h in r.get("webhook_configs", [])}
    assert urls == {"http://10.0.0.4:8004/webhooks/alertmanager"}

"""Prometheus and Alertmanager from Debian's packages (`prometheus` 2.42 with promtool, `prometheus-alertmanager` 0.25
with amtool), run for the local stack or a test with configs generated from the shipped ones in deploy/prometheus/.

Installed with apt-get when missing and running as root (`apt-get update` once first, no recommended packages: the
node exporter is not wanted). The packages' own system services are not used: each stack runs its own processes, on
its own ports, with its data under its own home. Headless Chromium (Debian's `chromium`), for screenshots of the
consoles, is found or installed the same way.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from berdaya.stack.process import PidFile, port_open, spawn, wait_until
from berdaya.stack.secret_files import write_secret

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules"
CONSOLES = DEPLOY / "consoles"
CONSOLE_LIBRARIES = DEPLOY / "console_libraries"
WEBHOOK_PATH = "/webhooks/alertmanager"  # on the notifier; see deploy/prometheus/alertmanager.yml


class MonitoringUnavailable(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Debian's packages
# ---------------------------------------------------------------------------------------------------------------

_apt_updated = False


def apt_install(*packages: str) -> None:
    """apt-get install the packages (without recommends); `apt-get update` first, once per process."""
    global _apt_updated
    if os.geteuid() != 0:
        raise MonitoringUnavailable(f"{', '.join(packages)} not installed, and installing needs root: run "
                                    f"`sudo apt-get install --no-install-recommends {' '.join(packages)}`")  # fmt: skip
    if not shutil.which("apt-get"):
        raise MonitoringUnavailable(f"{', '.join(packages)} not installed and there is no apt-get on this machine "
                                    "(Berdaya installs Debian's packages); install them with the system's own tools")  # fmt: skip
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = ([] if _apt_updated else [["apt-get", "update", "-qq"]]) + [
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]]  # fmt: skip
    for argv in steps:
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            raise MonitoringUnavailable(f"`{' '.join(argv)}` failed (exit {result.returncode}):\n{tail}")
        if argv[1] == "update":
            _apt_updated = True


def _which(*names: str) -> Path | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


@dataclass(frozen=True)
class Tools:
    prometheus: Path
    promtool: Path
    alertmanager: Path
    amtool: Path


def _find_tools() -> dict[str, Path | None]:
    return {
        "prometheus": _which("prometheus"),
        "promtool": _which("promtool"),
        # Debian names the server prometheus-alertmanager; upstream's tarball, alertmanager.
        "alertmanager": _which("prometheus-alertmanager", "alertmanager"),
        "amtool": _which("amtool"),
    }


def tools(install: bool = True) -> Tools:
    """The four binaries; Debian's packages are installed first when any is missing (and `install`)."""
    found = _find_tools()
    if install and any(v is None for v in found.values()):
        packages = sorted({"prometheus" if k in ("prometheus", "promtool") else "prometheus-alertmanager"
                           for k, v in found.items() if v is None})  # fmt: skip
        apt_install(*packages)
        found = _find_tools()
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise MonitoringUnavailable(f"not found on PATH: {', '.join(missing)} (Debian: apt-get install prometheus "
                                    "prometheus-alertmanager)")  # fmt: skip
    return Tools(**found)  # type: ignore[arg-type]


def chromium(install: bool = True) -> Path:
    """Debian's headless-capable Chromium, installed when missing."""
    found = _which("chromium", "chromium-browser")
    if found is None and install:
        apt_install("chromium")
        found = _which("chromium", "chromium-browser")
    if found is None:
        raise MonitoringUnavailable("chromium not found (Debian: apt-get install --no-install-recommends chromium)")
    return found


# Flags for running Chromium headless as root in a container, with nothing phoning home.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")  # fmt: skip


def screenshot(url: str, out: Path, *, user_data_dir: Path, width: int = 1400, height: int = 2200,
               wait_ms: int = 8000) -> Path:  # fmt: skip
    """A PNG of `url` as headless Chromium renders it, after `wait_ms` of virtual time for its scripts (the consoles'
    graphs are drawn by JavaScript)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(chromium()), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not out.exists():
        raise MonitoringUnavailable(f"chromium could not screenshot {url} (exit {result.returncode}): {result.stderr[-1500:]}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Configs, generated from the shipped ones
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    job: str  # the service's name: rules and consoles select on it
    address: str  # host:port of its /metrics


def _shipped(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    raise ValueError(f"not a duration: {duration}")


def prometheus_config(targets: Sequence[Target], *, prometheus: str, alertmanager: str,
                      rule_files: Sequence[Path] = (RULES / "berdaya.rules.yml",), scrape_interval: str = "15s",
                      evaluation_interval: str = "15s") -> dict[str, Any]:  # fmt: skip
    """deploy/prometheus/prometheus.yml with these targets, rule files and intervals."""
    config = _shipped("prometheus.yml")
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = evaluation_interval
    shipped_timeout = config["global"].get("scrape_timeout", "10s")
    config["global"]["scrape_timeout"] = min(shipped_timeout, scrape_interval, key=_seconds)
    config["rule_files"] = [str(p) for p in rule_files]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    jobs = [Target("prometheus", prometheus), Target("alertmanager", alertmanager), *targets]
    config["scrape_configs"] = [{"job_name": t.job, "static_configs": [{"targets": [t.address]}]} for t in jobs]
    return config


def alertmanager_config(webhook_url: str, token_file: Path) -> dict[str, Any]:
    """deploy/prometheus/alertmanager.yml with the notifier's webhook address and the token's file."""
    config = copy.deepcopy(_shipped("alertmanager.yml"))
    receivers = []
    for receiver in config["receivers"]:
        receiver = copy.deepcopy(receiver)
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            hook.setdefault("http_config", {}).setdefault("authorization", {"type": "Bearer"})
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
        receivers.append(receiver)
    config["receivers"] = receivers
    return config


def _write_yaml(path: Path, config: dict[str, Any], source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated from deploy/prometheus/{source} by berdaya (berdaya/stack/prometheus.py); edits are overwritten.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False))


def check(argv: Sequence[str | Path]) -> str:
    """Run a promtool/amtool check; its output, or MonitoringUnavailable with it."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise MonitoringUnavailable(f"`{' '.join(str(a) for a in argv)}` failed:\n{output}")
    return output


# ---------------------------------------------------------------------------------------------------------------
# The processes
# ---------------------------------------------------------------------------------------------------------------


Adjust = Callable[[dict[str, Any], dict[str, Any]], None]  # (prometheus config, alertmanager config), changed in place


@dataclass
class LocalMonitoring:
    """A Prometheus and an Alertmanager of one stack, their configs and data under `base`."""

    base: Path
    prometheus_port: int = 59090
    alertmanager_port: int = 59093
    host: str = "127.0.0.1"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"

    @property
    def prometheus_dir(self) -> Path:
        return self.base / "prometheus"

    @property
    def alertmanager_dir(self) -> Path:
        return self.base / "alertmanager"

    @property
    def prometheus_config_file(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def alertmanager_config_file(self) -> Path:
        return self.alertmanager_dir / "alertmanager.yml"

    @property
    def webhook_token_file(self) -> Path:
        return self.alertmanager_dir / "webhook-token"

    def log_file(self, name: str) -> Path:
        return self.base / "logs" / f"{name}.log"

    def _pid_file(self, name: str) -> PidFile:
        return PidFile(self.base / "run" / f"{name}.pid")

    def pid(self, name: str) -> int | None:
        return self._pid_file(name).pid()

    def write_configs(self, targets: Sequence[Target], *, webhook_url: str, webhook_token: str,
                      rule_files: Sequence[Path] | None = None, scrape_interval: str = "15s",
                      evaluation_interval: str = "15s", adjust: Adjust | None = None) -> Tools:  # fmt: skip
        """Write both configs and check them with promtool and amtool; returns the tools. `adjust` may change the
        generated configs (prometheus, alertmanager) before they are written: a test's faster timings."""
        found = tools()
        self.write_webhook_token(webhook_token)
        prometheus = prometheus_config(
            targets, prometheus=f"{self.host}:{self.prometheus_port}", alertmanager=f"{self.host}:{self.alertmanager_port}",
            rule_files=rule_files or (RULES / "berdaya.rules.yml",), scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval)  # fmt: skip
        alertmanager = alertmanager_config(webhook_url, self.webhook_token_file)
        if adjust is not None:
            adjust(prometheus, alertmanager)
        _write_yaml(self.alertmanager_config_file, alertmanager, "alertmanager.yml")
        _write_yaml(self.prometheus_config_file, prometheus, "prometheus.yml")
        check([found.promtool, "check", "config", self.prometheus_config_file])
        check([found.amtool, "check-config", self.alertmanager_config_file])
        return found

    def write_webhook_token(self, token: str) -> None:
        """The notifier's bearer token, in the file Alertmanager's config names (credentials_file)."""
        write_secret(self.webhook_token_file, token)

    def start(self, targets: Sequence[Target], *, webhook_url: str, webhook_token: str,
              rule_files: Sequence[Path] | None = None, scrape_interval: str = "15s", evaluation_interval: str = "15s",
              retention: str = "35d", say: Callable[[str], None] = lambda _: None, timeout: float = 60,
              adjust: Adjust | None = None) -> None:  # fmt: skip
        """Start both (or have running ones reload their new configs) and wait until they are ready."""
        found = self.write_configs(targets, webhook_url=webhook_url, webhook_token=webhook_token, rule_files=rule_files,
                                   scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                                   adjust=adjust)  # fmt: skip
        self._run("alertmanager", self.alertmanager_port, self.alertmanager_url, [
            str(found.alertmanager), f"--config.file={self.alertmanager_config_file}",
            f"--storage.path={self.alertmanager_dir / 'data'}", f"--web.listen-address={self.host}:{self.alertmanager_port}",
            f"--web.external-url={self.alertmanager_url}/",
            "--cluster.listen-address=",  # one Alertmanager, no gossip port
        ], say, timeout)  # fmt: skip
        self._run("prometheus", self.prometheus_port, self.prometheus_url, [
            str(found.prometheus), f"--config.file={self.prometheus_config_file}",
            f"--storage.tsdb.path={self.prometheus_dir / 'data'}", f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address={self.host}:{self.prometheus_port}", f"--web.external-url={self.prometheus_url}/",
            f"--web.console.templates={CONSOLES}", f"--web.console.libraries={CONSOLE_LIBRARIES}",
            "--web.enable-lifecycle", "--web.page-title=Berdaya Prometheus",
        ], say, timeout)  # fmt: skip

    def _run(self, name: str, port: int, url: str, argv: list[str], say: Callable[[str], None], timeout: float) -> None:
        title = name.capitalize()
        if self.pid(name):
            # Running: a new config (the services' ports, a rule) is picked up without losing its data.
            httpx.post(f"{url}/-/reload", timeout=10).raise_for_status()
            say(f"{title}: already running on {url}; reloaded its config")
            return
        if port_open(port, self.host):
            raise MonitoringUnavailable(f"port {port} for {name} is taken by another program; stop it or set "
                                        f"BERDAYA_{name.upper()}_PORT")  # fmt: skip
        say(f"{title}: starting on {url}")
        process = spawn(argv, self.log_file(name), cwd=self.base)
        self._pid_file(name).write(process.pid)
        wait_until(lambda: self.ready(url) or process.poll() is not None, timeout, f"{name} /-/ready", self.log_file(name))
        if process.poll() is not None:
            self._pid_file(name).path.unlink(missing_ok=True)
            tail = "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-10:])
            raise MonitoringUnavailable(
                f"{name} exited at start (exit {process.returncode}); see {self.log_file(name)}:\n{tail}")

    @staticmethod
    def ready(url: str) -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, say: Callable[[str], None] = lambda _: None) -> None:
        for name in ("prometheus", "alertmanager"):
            if self.pid(name):
                say(f"{name.capitalize()}: stopping")
            self._pid_file(name).stop(timeout=30)

    def status(self) -> dict[str, str]:
        return {
            name: "up" if self.ready(url) else ("starting" if self.pid(name) else "down")
            for name, url in (("prometheus", self.prometheus_url), ("alertmanager", self.alertmanager_url))
        }

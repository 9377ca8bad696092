"""The dashboards (deploy/prometheus/consoles/, Prometheus console templates) served by a real Prometheus watching the
four services with a little of everything in them: businesses with and without an NIB in several kecamatan, a
sponsor's pledge with its offers, an open training cohort. Every page loads, every query on every page returns
series, and headless Chromium (Debian's) takes a screenshot of each page, saved where a person can look at it."""

from __future__ import annotations

import os
import re
import struct
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from berdaya.stack.prometheus import CONSOLES, chromium, screenshot
from shared.reference.wita import WITA
from tests.e2e.test_operators import Monitored, eventually, monitored_system
from tests.support import Infra, registration

pytestmark = pytest.mark.e2e

PAGES = sorted(p.name for p in CONSOLES.glob("*.html"))
SCREENSHOTS = Path(os.environ.get("BERDAYA_SCREENSHOTS", Path.home() / ".cache" / "berdaya" / "screenshots"))


def queries_of(page: str) -> list[str]:
    """Every PromQL expression on a page, as the console library's conventions write them: a literal after `query`,
    `args` or `printf` (but a number's format), or the second argument of graph(...). A printf's '%s' (a label value
    taken from a row) matches any value, so the query asks: is there such a series at all?"""
    text = (CONSOLES / page).read_text()
    found = re.findall(r'(?:\bquery|\(args|\bprintf)\s+"((?:[^"\\]|\\.)*)"', text)
    found += re.findall(r'graph\("[^"]+",\s*"((?:[^"\\]|\\.)*)"', text)
    exprs = []
    for expr in found:
        if re.fullmatch(r"%[.\d]*[a-z]", expr):
            continue  # a number's format (printf "%.0f" .Value), not a query
        expr = re.sub(r"(\w+)='%s'", r"\1=~'.+'", expr)
        assert "%" not in expr, f"{page}: a printf filling more than a label value: {expr}"
        exprs.append(expr)
    return exprs


def seed(system: Monitored) -> None:
    """Businesses in three kecamatan (food businesses with an NIB among them), a pledge matching them, a halal cohort."""
    officer, trainer = system.auth("officer"), system.auth("trainer")
    now = datetime.now(WITA)
    with httpx.Client(timeout=30) as http:
        for kecamatan, kelurahan, n, nibs in (("Oebobo", "Fatululi", 6, 4), ("Alak", "Namosain", 4, 1),
                                               ("Kelapa Lima", "Kelapa Lima", 3, 0)):  # fmt: skip
            for i in range(n):
                extra = {"nib": f"{uuid.uuid4().int % 10**13:013d}", "kbli_code": "10130"} if i < nibs else {}
                body = registration(kecamatan=kecamatan, kelurahan=kelurahan, **extra)
                assert http.post(f"{system.url('registry')}/businesses", json=body, headers=officer).status_code == 201
        sponsor = http.post(f"{system.url('funding')}/sponsors", json={"name": "Bank NTT", "kind": "bank"}, headers=officer)
        assert sponsor.status_code == 201, sponsor.text
        as_sponsor = system.auth("sponsor", sponsor_id=uuid.UUID(sponsor.json()["id"]))
        pledge = http.post(f"{system.url('funding')}/pledges", headers=as_sponsor, json={
            "sponsor_id": sponsor.json()["id"], "title": "Modal usaha pangan", "instrument": "grant",
            "total_rupiah": 20_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 2_000_000,
            "valid_from": date.today().isoformat(), "valid_until": (date.today() + timedelta(days=10)).isoformat(),
            "earmarks": {"nib_required": True}})  # fmt: skip
        assert pledge.status_code == 201, pledge.text
        programme = http.post(f"{system.url('training')}/programmes", headers=trainer, json={
            "topic": "halal_certification", "title": "Pendampingan Sertifikasi Halal (SEHATI)",
            "needs": ["halal_uncertified"], "requires_nib": True, "sessions": 1, "hours": 4})  # fmt: skip
        assert programme.status_code == 201, programme.text
        cohort = http.post(f"{system.url('training')}/cohorts", headers=trainer, json={
            "programme_id": programme.json()["id"], "starts_on": (now.date() + timedelta(days=3)).isoformat(),
            "ends_on": (now.date() + timedelta(days=3)).isoformat(), "capacity": 20, "venue": "Taman Nostalgia",
            # A morning session (WITA): "now + 4 hours" crosses midnight in the evening.
            "kecamatan": "Oebobo", "sessions": [{"starts_at": f"{(now.date() + timedelta(days=3)).isoformat()}T09:00:00+08:00",
                                                 "ends_at": f"{(now.date() + timedelta(days=3)).isoformat()}T13:00:00+08:00"}]})  # fmt: skip
        assert cohort.status_code == 201, cohort.text
        opened = http.post(f"{system.url('training')}/cohorts/{cohort.json()['id']}/open", headers=trainer)
        assert opened.status_code == 200, opened.text


@pytest.fixture(scope="module")
def watched(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    for system in monitored_system(infra, tmp_path_factory.mktemp("consoles"), "consoles"):
        seed(system)
        yield system


def empty_queries(system: Monitored, page: str) -> list[str]:
    return [expr for expr in queries_of(page) if not system.query(expr)]


def test_the_console_library_conventions_find_queries_on_every_page():
    assert PAGES == ["berdaya-operators.html", "berdaya-programme.html", "index.html"]
    for page in PAGES:
        assert len(queries_of(page)) >= 8, page


@pytest.mark.parametrize("page", PAGES)
def test_every_query_on_a_console_page_returns_series_once_the_services_have_something_to_show(watched, page):
    assert eventually(lambda: not empty_queries(watched, page), timeout=120), empty_queries(watched, page)


@pytest.mark.parametrize("page", PAGES)
def test_every_console_page_loads_from_prometheus_without_a_template_error(watched, page):
    response = httpx.get(f"{watched.monitoring.prometheus_url}/consoles/{page}", params={"range": "600"}, timeout=30)

    assert response.status_code == 200, response.text[:2000]
    assert "error executing template" not in response.text and "ZgotmplZ" not in response.text
    assert "Berdaya" in response.text


def test_the_programme_console_shows_each_kecamatan_and_sponsor_and_no_business_or_owner(watched):
    assert eventually(lambda: not empty_queries(watched, "berdaya-programme.html"), timeout=120)
    page = httpx.get(f"{watched.monitoring.prometheus_url}/consoles/berdaya-programme.html", timeout=30).text

    for shown in ("Oebobo", "Alak", "Kelapa Lima", "Bank NTT", "halal_certification"):
        assert shown in page
    assert "Tenun Ikat Ina Ndao" not in page and "Yuliana" not in page and "+62" not in page


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_headless_chromium_renders_every_console_page_with_its_graphs_and_the_screenshots_are_kept(watched, tmp_path):
    for page in PAGES:
        assert eventually(lambda page=page: not empty_queries(watched, page), timeout=120)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for page in PAGES:
        url = f"{watched.monitoring.prometheus_url}/consoles/{page}?range=180"
        out = screenshot(url, SCREENSHOTS / f"{stamp}-{page.removesuffix('.html')}.png",
                         user_data_dir=tmp_path / f"chromium-{page}", height=2400 if page != "index.html" else 1400)  # fmt: skip
        print(f"\nscreenshot of {page}: {out}")
        width, height = png_size(out)
        assert (width, height) == (1400, 2400 if page != "index.html" else 1400)
        assert out.stat().st_size > 40_000, "a page with numbers, tables and graphs, not a blank one"

    # The graphs are drawn by the console library's JavaScript: the rendered DOM holds Rickshaw's SVG for each.
    import subprocess

    from berdaya.stack.prometheus import CHROMIUM_FLAGS

    dom = subprocess.run([str(chromium()), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-dom'}",
                          "--virtual-time-budget=8000", "--dump-dom",
                          f"{watched.monitoring.prometheus_url}/consoles/berdaya-operators.html?range=600"],
                         capture_output=True, text=True, timeout=180).stdout  # fmt: skip
    assert dom.count("<svg") >= 10, "every graph of the operators' page was drawn"

"""Tests the HTTP metrics every service exports (shared/observability.py): requests counted by route TEMPLATE, method
and status, latency by route template and method, with bounded labels whatever a caller sends. On a tiny app wired
like the services (error handlers, BoundedInput, the metrics middleware outermost), served in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from shared.db import DatabaseBusy
from shared.observability import CLIENT_CLOSED, UNMATCHED_ROUTE, HttpMetrics, HttpMetricsMiddleware
from shared.web import BoundedInput, install_error_handlers


def new_app(registry: CollectorRegistry) -> FastAPI:
    """Routes on an included router, as the services have them."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=1_000)
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry), router_app=lambda: app)
    router = APIRouter()

    @router.get("/businesses/{business_id}")
    async def business(business_id: str) -> dict:
        return {"id": business_id}

    @router.post("/businesses", status_code=201)
    async def register(body: dict) -> dict:
        return body

    @router.get("/busy")
    async def busy() -> dict:
        raise DatabaseBusy("no connection")

    @router.get("/crash")
    async def crash() -> dict:
        raise RuntimeError("a bug")

    @app.get("/health")
    async def health() -> dict:
        return {}

    app.include_router(router)
    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def http(registry: CollectorRegistry) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=new_app(registry), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        yield client


def requests(registry: CollectorRegistry, route: str, method: str, status: str) -> float | None:
    return registry.get_sample_value("berdaya_http_requests_total", {"route": route, "method": method, "status": status})


def route_labels(registry: CollectorRegistry) -> set[str]:
    return {s.labels["route"] for m in registry.collect() for s in m.samples if "route" in s.labels}


async def test_a_request_is_counted_under_its_route_template_never_its_raw_path(http, registry):
    for business_id in ("a1b2", "5371044405980001", "c3d4"):
        assert (await http.get(f"/businesses/{business_id}")).status_code == 200

    assert requests(registry, "/businesses/{business_id}", "GET", "200") == 3
    assert route_labels(registry) == {"/businesses/{business_id}"}


async def test_every_request_is_timed_under_its_route_template_and_method(http, registry):
    await http.get("/businesses/x")
    assert (await http.post("/businesses", json={"name": "Tenun Ina"})).status_code == 201

    count = registry.get_sample_value("berdaya_http_request_duration_seconds_count",
                                      {"route": "/businesses/{business_id}", "method": "GET"})  # fmt: skip
    assert count == 1
    assert registry.get_sample_value("berdaya_http_request_duration_seconds_count",
                                     {"route": "/businesses", "method": "POST"}) == 1  # fmt: skip


async def test_a_path_no_route_answers_is_counted_as_unmatched_whatever_it_holds(http, registry):
    for path in ("/wp-admin.php", "/businesses/x/y/z", "/08123456789"):
        assert (await http.get(path)).status_code == 404

    assert requests(registry, UNMATCHED_ROUTE, "GET", "404") == 3
    assert route_labels(registry) == {UNMATCHED_ROUTE}


async def test_a_method_nobody_uses_is_counted_as_other_so_callers_cannot_invent_label_values(http, registry):
    response = await http.request("BREW", "/businesses/x")

    assert response.status_code == 405
    assert requests(registry, "/businesses/{business_id}", "other", "405") == 1


async def test_a_request_refused_before_routing_is_counted_against_the_route_it_was_for(http, registry):
    too_large = await http.post("/businesses", content=b"{" + b" " * 2_000 + b"}",
                                headers={"content-type": "application/json"})  # fmt: skip
    nul = await http.get("/businesses/a%00b")

    assert (too_large.status_code, nul.status_code) == (413, 422)
    assert requests(registry, "/businesses", "POST", "413") == 1
    assert requests(registry, "/businesses/{business_id}", "GET", "422") == 1


async def test_server_errors_are_counted_with_their_status_the_unhandled_ones_as_500(http, registry):
    assert (await http.get("/busy")).status_code == 503
    assert (await http.get("/crash")).status_code == 500

    assert requests(registry, "/busy", "GET", "503") == 1
    assert requests(registry, "/crash", "GET", "500") == 1


async def test_a_caller_leaving_before_any_answer_is_counted_as_499_not_as_a_server_error(registry):
    app = new_app(registry)
    messages = iter([{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        raise AssertionError(f"nothing is sent to a caller who left: {message}")

    scope = {"type": "http", "method": "POST", "path": "/businesses", "raw_path": b"/businesses", "query_string": b"",
             "headers": [(b"content-type", b"application/json")], "root_path": "", "scheme": "http",
             "server": ("registry", 80), "client": ("10.0.0.1", 5000), "http_version": "1.1", "asgi": {"version": "3.0"}}  # fmt: skip
    await app(scope, receive, send)

    assert requests(registry, "/businesses", "POST", str(CLIENT_CLOSED)) == 1


def test_every_routes_success_series_exists_at_zero_before_its_first_request(registry):
    primed = CollectorRegistry()
    metrics = HttpMetrics(primed)
    app = new_app(registry)

    @app.post("/cohorts", status_code=201)
    async def open_cohort() -> dict:
        return {}

    metrics.prime(app)

    assert requests(primed, "/businesses/{business_id}", "GET", "200") == 0
    assert requests(primed, "/businesses", "POST", "201") == 0, "a route of an included router, with its own status"
    assert requests(primed, "/health", "GET", "200") == 0
    assert requests(primed, "/cohorts", "POST", "201") == 0
    assert requests(primed, "/cohorts", "POST", "500") is None, "only the documented success, not every status"

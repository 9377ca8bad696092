"""Tests what every service's HTTP API shares (shared/web.py), on a tiny app served in memory: BoundedInput refusing
what no route should see, and every error answered as RFC 9457 problem details."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel

from shared.auth import TokenService
from shared.db import DatabaseBusy
from shared.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from shared import web
from shared.web import (
    PROBLEM_JSON,
    BoundedInput,
    Platform,
    Unauthorized,
    install_error_handlers,
    platform_routes,
    storable,
)

MAX_BODY = 1_000
# What requests met while the chaos run restarted PostgreSQL and cut its connections.
DATABASE_OUTAGES = {
    "refused": ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 55432)"),
    "reset": ConnectionResetError(104, "Connection reset by peer"),
    "shutting-down": asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    "admin-shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    "connection-gone": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "protocol-state": asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation is in progress"),
    "statement-timeout": asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    # asyncpg's words when the connection had closed under the request: no class of their own.
    "connection-closed": asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    "transaction-block-ended-on-a-closed-connection": asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"),
    # The server ended the session while the request held the connection (pg_terminate_backend, a restart) and the
    # pool took it back: a 500 in the chaos run, when a decline's ranking ran off the event loop meanwhile.
    "connection-taken-back-by-the-pool-as-it-closed": asyncpg.InterfaceError(
        "cannot call Connection.executemany(): connection has been released back to the pool"),
}
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "errors"}


class Item(BaseModel):
    name: str
    tags: list[str] = []
    attributes: dict[str, str] = {}
    parts: list[dict[str, Any]] = []


def new_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=MAX_BODY)

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        content_type = request.headers.get("content-type", "application/octet-stream")
        return Response(await request.body(), media_type=content_type)

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/search")
    async def search(q: str = "", kecamatan: str = "") -> dict[str, str]:
        return {"q": q, "kecamatan": kecamatan}

    @app.get("/conflict")
    async def conflict() -> None:
        details = {"status": "declined", "offer_status": "declined", "title": "x", "type": "y", "code": "z"}
        raise Conflict("the offer is no longer open", "offer.not_open", details)

    @app.get("/invalid")
    async def invalid() -> None:
        raise InvalidInput([FieldError("owner_nik", "nik.birth_date_mismatch", "the NIK does not match the birth date"),
                            FieldError("phone", "phone.not_mobile", "give a mobile number")])  # fmt: skip

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("no business 3f2a9c1e")

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise Forbidden("this pledge belongs to another sponsor")

    @app.get("/unauthenticated")
    async def unauthenticated() -> None:
        raise Unauthorized("missing bearer token")

    @app.get("/busy")
    async def busy() -> None:
        raise DatabaseBusy("no database connection free within 10s")

    @app.get("/database-gone/{kind}")
    async def database_gone(kind: str) -> None:
        raise DATABASE_OUTAGES[kind]

    @app.get("/connection-misused")
    async def connection_misused() -> None:
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=new_app()), base_url="http://berdaya.test") as c:
        yield c


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is RFC 9457 problem details with every standard member; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert PROBLEM_MEMBERS <= set(body)
    assert (body["type"], body["status"], body["code"]) == (f"urn:berdaya:problem:{code}", status, code)
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    return body


def nul_error(response: httpx.Response) -> dict[str, str]:
    body = assert_problem(response, 422, "invalid_input")
    (error,) = body["errors"]
    assert error["code"] == "text.nul"
    return error


def json_body(value: object) -> dict[str, Any]:
    return {"content": json.dumps(value).encode(), "headers": {"content-type": "application/json"}}


# ---------------------------------------------------------------------------------------------------------------
# Body size
# ---------------------------------------------------------------------------------------------------------------


async def test_a_body_declared_over_the_limit_is_refused_with_413_before_any_route_runs(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/echo", content=b"x" * (MAX_BODY + 1))

    body = assert_problem(response, 413, "body_too_large")
    assert "1,000 bytes" in body["detail"]


async def test_a_streamed_body_without_a_length_is_cut_off_once_it_passes_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 300

    response = await client.post("/echo", content=chunks())

    assert_problem(response, 413, "body_too_large")


def _guarded_app(routes_ran: list[str]) -> tuple[FastAPI, TokenService]:
    """An app as the services make it: a ten-megabyte limit, and a platform whose tokens verify callers."""
    tokens = TokenService("a-secret-of-thirty-two-characters-at-least")
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=10 * 1024 * 1024)
    app.state.platform = Platform(tokens=tokens, metrics=CollectorRegistry())

    @app.post("/echo")
    @app.post("/webhooks/whatsapp")
    async def echo(request: Request) -> Response:
        routes_ran.append(request.url.path)
        return Response(await request.body())

    return app, tokens


async def test_a_body_over_64_kib_without_a_token_that_verifies_is_refused_before_it_is_read_or_parsed() -> None:
    # FastAPI parses a body before the route checks the token: 10 MB of JSON from anyone held the event loop.
    ran: list[str] = []
    app, tokens = _guarded_app(ran)
    big = b"[" + b"{}," * 40_000 + b"{}]"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic eDp5"}):
            refused = await http.post("/echo", content=big, headers=headers)
            assert_problem(refused, 401, "unauthenticated")
            assert "needs a valid bearer token" in refused.json()["detail"]
        assert (await http.post("/echo", content=b"[{}]")).status_code == 200  # a small one reaches its route
        proven = {"Authorization": f"Bearer {tokens.mint('officer-1', ['officer'])}"}
        assert (await http.post("/echo", content=big, headers=proven)).content == big
    assert ran == ["/echo", "/echo"]


async def test_a_webhooks_body_over_a_mebibyte_is_refused_whatever_it_carries() -> None:
    # The webhooks prove their callers themselves, after the body: WhatsApp's and Alertmanager's calls are small.
    ran: list[str] = []
    app, tokens = _guarded_app(ran)
    proven = {"Authorization": f"Bearer {tokens.mint('officer-1', ['officer'])}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert_problem(await http.post("/webhooks/whatsapp", content=b"x" * (1024 * 1024 + 1), headers=proven), 413,
                       "body_too_large")  # fmt: skip
        assert (await http.post("/webhooks/whatsapp", content=b"x" * (1024 * 1024))).status_code == 200
    assert ran == ["/webhooks/whatsapp"]


async def test_a_gateways_webhook_reaches_its_route_with_a_nul_and_any_other_route_is_refused_one() -> None:
    # A gateway answers a refusal by retrying the whole batch, then dropping it: its route takes the NUL out.
    ran: list[str] = []
    app, _ = _guarded_app(ran)
    with_nul = json_body({"entry": [{"text": "STOP\u0000"}]})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        passed = await http.post("/webhooks/whatsapp", **with_nul)
        refused = await http.post("/echo", **with_nul)
        too_deep = await http.post("/webhooks/whatsapp", content=b"[" * 100_000 + b"]" * 100_000)

    assert passed.status_code == 200 and "\\u0000" in passed.text
    assert nul_error(refused)["field"] == "entry.0.text"
    assert_problem(too_deep, 422, "invalid_input")
    assert ran == ["/webhooks/whatsapp"]


def test_storable_takes_nuls_out_of_strings_and_keys_and_marks_half_an_emoji() -> None:
    parsed = json.loads('{"a\\u0000b": ["\\u0000STOP", "x \\ud83d", 7, null], "c": "Sei Sapi"}')

    assert storable(parsed) == {"ab": ["STOP", "x \ufffd", 7, None], "c": "Sei Sapi"}


async def test_a_body_of_exactly_the_limit_passes_through_intact(client: httpx.AsyncClient) -> None:
    payload = bytes(range(256)) * 3 + b"z" * (MAX_BODY - 768)

    response = await client.post("/echo", content=payload)

    assert response.status_code == 200
    assert response.content == payload


# ---------------------------------------------------------------------------------------------------------------
# NUL characters
# ---------------------------------------------------------------------------------------------------------------


async def test_a_nul_in_a_json_string_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", **json_body({"name": "Sei Sapi\u0000Ibu Maria"}))

    error = nul_error(response)
    assert error["field"] == "name"
    assert "name" in response.json()["detail"]


class CheckedWhere(BoundedInput):
    """BoundedInput noting the thread each body is checked on."""

    threads: list[int] = []

    @staticmethod
    def _check_body(body: bytes, *, nul_allowed: bool = False) -> Any:
        CheckedWhere.threads.append(threading.get_ident())
        return BoundedInput._check_body(body, nul_allowed=nul_allowed)


async def test_a_large_body_is_checked_off_the_event_loop_and_a_small_one_on_it() -> None:
    """Walking 10 MB of JSON for a NUL held the loop, and the service's consumers with it, for over a second."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(CheckedWhere, max_body_bytes=1_000_000)
    CheckedWhere.threads = []
    large = {"parts": [{"name": "Sei Sapi"}] * 20_000 + [{"name": "\u0000"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://berdaya.test") as client:
        refused = await client.post("/items", **json_body(large))
        small = await client.post("/items", **json_body({"name": "\u0000"}))

    assert nul_error(refused)["field"] == "parts.20000.name" and nul_error(small)["field"] == "name"
    assert [thread == threading.get_ident() for thread in CheckedWhere.threads] == [False, True]


async def test_a_nul_in_a_nested_list_is_refused_naming_its_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", **json_body({"name": "ok", "tags": ["kuliner", "ten\u0000un"]}))

    assert nul_error(response)["field"] == "tags.1"


async def test_a_nul_deep_inside_lists_and_objects_is_refused_naming_its_whole_path(client: httpx.AsyncClient) -> None:
    body = {"name": "ok", "parts": [{"a": "fine"}, {"b": [{"c": "x\u0000"}]}]}

    response = await client.post("/items", **json_body(body))

    assert nul_error(response)["field"] == "parts.1.b.0.c"


async def test_a_nul_in_a_key_is_refused_naming_where_the_key_is(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", **json_body({"name": "ok", "attributes": {"war\u0000na": "merah"}}))

    assert nul_error(response)["field"].startswith("attributes.war")


async def test_a_nul_in_a_top_level_json_list_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", **json_body(["ok", "\u0000"]))

    assert nul_error(response)["field"] == "1"


async def test_a_nul_in_json_that_starts_with_whitespace_is_refused_too(client: httpx.AsyncClient) -> None:
    raw = b'\n  {"name": "Sei Sapi\\u0000Ibu Maria"}'  # pretty-printed JSON may start with a newline

    response = await client.post("/items", content=raw, headers={"content-type": "application/json"})

    assert nul_error(response)["field"] == "name"


@pytest.mark.parametrize("encode", [
    lambda text: b"\xef\xbb\xbf" + text.encode(),  # UTF-8 with a byte-order mark
    lambda text: text.encode("utf-16-be"),
    lambda text: text.encode("utf-16"),  # with its byte-order mark
    lambda text: text.encode("utf-32-le"),
], ids=["utf-8-bom", "utf-16-be", "utf-16-bom", "utf-32-le"])  # fmt: skip
async def test_a_nul_in_json_sent_in_another_encoding_json_accepts_is_refused_too(client: httpx.AsyncClient,
                                                                                  encode) -> None:  # fmt: skip
    # The route would parse these bodies: a check that looked only at UTF-8 let the NUL through to PostgreSQL (a 500).
    raw = encode('{"name": "Sei Sapi\\u0000Ibu Maria"}')

    response = await client.post("/items", content=raw, headers={"content-type": "application/json"})

    assert nul_error(response)["field"] == "name"


async def test_json_sent_with_a_byte_order_mark_and_no_nul_still_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", content=b"\xef\xbb\xbf" + b'{"name": "Sei Sapi"}',
                                 headers={"content-type": "application/json"})  # fmt: skip

    assert response.status_code == 200
    assert response.json()["name"] == "Sei Sapi"


async def test_a_nul_in_a_query_parameter_is_refused_naming_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/search?kecamatan=Oebobo&q=Sei%00Sapi")

    error = nul_error(response)
    assert error["field"] == "q"
    assert "'q'" in response.json()["detail"]


async def test_a_nul_in_the_path_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/search%00")

    assert nul_error(response)["field"] == "path"


async def test_text_that_only_mentions_backslash_u0000_is_not_a_nul_and_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", **json_body({"name": "kode \\u0000 di catatan"}))

    assert response.status_code == 200
    assert response.json()["name"] == "kode \\u0000 di catatan"


# ---------------------------------------------------------------------------------------------------------------
# Nesting
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("opening", "closing"), [(b"[", b"]"), (b'{"a":', b"}")], ids=["lists", "objects"])
async def test_json_nested_a_hundred_thousand_levels_deep_is_refused_with_422_not_500(
    client: httpx.AsyncClient, opening: bytes, closing: bytes
) -> None:
    depth = 100_000
    deep = opening * depth + b"1" + closing * depth
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=len(deep) + 1)

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://berdaya.test") as big:
        response = await big.post("/items", content=deep, headers={"content-type": "application/json"})

    body = assert_problem(response, 422, "invalid_input")
    assert [e["code"] for e in body["errors"]] == ["json.depth"]


async def test_json_nested_deeply_after_leading_whitespace_is_refused_with_422_not_500() -> None:
    depth = 100_000
    deep = b"\n  " + b"[" * depth + b"]" * depth
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=len(deep) + 1)

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://berdaya.test") as big:
        response = await big.post("/items", content=deep, headers={"content-type": "application/json"})

    assert_problem(response, 422, "invalid_input")


# ---------------------------------------------------------------------------------------------------------------
# What passes through
# ---------------------------------------------------------------------------------------------------------------


async def test_a_normal_json_request_passes_through_with_its_body_intact(client: httpx.AsyncClient) -> None:
    item = {"name": "Sei Sapi Ibu Maria", "tags": ["kuliner", "daging asap"], "attributes": {"kecamatan": "Oebobo"},
            "parts": [{"harga": 50000}]}  # fmt: skip
    raw = json.dumps(item, indent=2).encode()

    echoed = await client.post("/echo", content=raw, headers={"content-type": "application/json"})
    created = await client.post("/items", **json_body(item))

    assert (echoed.status_code, echoed.content) == (200, raw)
    assert (created.status_code, created.json()) == (200, item)


async def test_a_body_that_is_not_json_passes_through_untouched(client: httpx.AsyncClient) -> None:
    csv = "business_name,owner_name\nSei Sapi Ibu Maria,Maria Goreti Ndun\n".encode()

    response = await client.post("/echo", content=csv, headers={"content-type": "text/csv"})

    assert (response.status_code, response.content) == (200, csv)


async def test_malformed_json_is_left_to_the_route_which_reports_where_it_broke(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", content=b'{"name": ', headers={"content-type": "application/json"})

    body = assert_problem(response, 422, "invalid_input")
    assert body["errors"]


async def test_a_normal_query_passes_through(client: httpx.AsyncClient) -> None:
    response = await client.get("/search", params={"q": "Sei Sapi 100%", "kecamatan": "Kota Lama"})

    assert (response.status_code, response.json()) == (200, {"q": "Sei Sapi 100%", "kecamatan": "Kota Lama"})


# ---------------------------------------------------------------------------------------------------------------
# One error shape
# ---------------------------------------------------------------------------------------------------------------


async def test_a_conflict_s_details_are_extension_members_that_never_replace_the_standard_ones(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/conflict")

    body = assert_problem(response, 409, "offer.not_open")
    assert body["status"] == 409
    assert (body["title"], body["detail"]) == ("Conflict", "the offer is no longer open")
    assert body["offer_status"] == "declined"


async def test_invalid_input_is_422_naming_each_field(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/invalid"), 422, "invalid_input")

    assert body["errors"] == [
        {"field": "owner_nik", "code": "nik.birth_date_mismatch", "message": "the NIK does not match the birth date"},
        {"field": "phone", "code": "phone.not_mobile", "message": "give a mobile number"},
    ]


async def test_a_request_the_route_s_model_refuses_is_422_naming_the_field_without_body_or_query(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/items", **json_body({"tags": "not a list"}))

    body = assert_problem(response, 422, "invalid_input")
    assert {e["field"] for e in body["errors"]} == {"name", "tags"}


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/missing", 404, "not_found"),
    ("/forbidden", 403, "forbidden"),
    ("/unauthenticated", 401, "unauthenticated"),
    ("/busy", 503, "database_busy"),
])  # fmt: skip
async def test_every_error_is_problem_details(client: httpx.AsyncClient, path: str, status: int, code: str) -> None:
    assert_problem(await client.get(path), status, code)


async def test_what_the_framework_itself_refuses_is_problem_details_too(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404, "not_found")
    assert_problem(await client.delete("/search"), 405, "method_not_allowed")


async def test_an_unauthenticated_request_is_told_to_send_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_database_too_busy_says_nothing_was_changed(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/busy"), 503, "database_busy")
    assert "Nothing was changed" in body["detail"]


@pytest.mark.parametrize("kind", sorted(DATABASE_OUTAGES))
async def test_a_database_outage_is_a_503_problem_telling_the_client_to_retry_not_a_bare_500(
    client: httpx.AsyncClient, kind: str
) -> None:
    response = await client.get(f"/database-gone/{kind}")
    body = assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"] == "5"
    assert "look it up first" in body["detail"]


async def test_a_misused_connection_is_a_500_not_disguised_as_the_database_being_away() -> None:
    transport = httpx.ASGITransport(app=new_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://berdaya.test") as client:
        response = await client.get("/connection-misused")
    assert_problem(response, 500, "internal_error")


# ---------------------------------------------------------------------------------------------------------------
# /ready
# ---------------------------------------------------------------------------------------------------------------


async def test_ready_tells_anyone_which_check_fails_but_only_the_log_why(caplog: pytest.LogCaptureFixture) -> None:
    reasons: list[str | None] = ["OSError: Connect call failed ('10.20.0.7', 5432)"] * 2 + [None]

    async def database() -> str | None:
        return reasons.pop(0)

    async def kafka() -> str | None:
        return None

    app = FastAPI()
    app.state.platform = Platform(tokens=TokenService("s" * 32), metrics=CollectorRegistry(),
                                  readiness={"database": database, "kafka": kafka})  # fmt: skip
    app.include_router(platform_routes())
    caplog.set_level(logging.INFO, logger="shared.web")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as http:
        first, second, third = [await http.get("/ready") for _ in range(3)]

    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json() == {"status": "not ready",
                            "checks": {"database": "failing; the reason is in the service's log", "kafka": "ok"}}
    assert "10.20.0.7" not in first.text
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["readiness: database fails: OSError: Connect call failed ('10.20.0.7', 5432)",
                      "readiness: database is ok again"]  # fmt: skip


async def test_metrics_answer_while_the_database_does_not_and_say_which_figures_are_stale(monkeypatch) -> None:
    monkeypatch.setattr(web, "SCRAPE_HOOK_SECONDS", 0.2)
    registry = CollectorRegistry()
    backlog = Gauge("berdaya_outbox_backlog", "rows", registry=registry)

    class Figures:
        async def refresh_backlog(self) -> None:
            backlog.set(7)

        async def refused(self) -> None:
            raise OSError("Connect call failed ('10.20.0.7', 5432)")

        async def pool_full(self) -> None:
            await asyncio.sleep(10)  # waiting for a connection, past Prometheus's scrape timeout

    figures = Figures()
    app = FastAPI()
    app.state.platform = Platform(tokens=TokenService("s" * 32), metrics=registry,
                                  scrape_hooks=[figures.refused, figures.pool_full, figures.refresh_backlog])  # fmt: skip
    app.include_router(platform_routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as http:
        scraped = await asyncio.wait_for(http.get("/metrics"), 5)

    assert scraped.status_code == 200
    assert "berdaya_outbox_backlog 7.0" in scraped.text
    assert 'berdaya_figures_refreshed{figures="Figures.refused"} 0.0' in scraped.text
    assert 'berdaya_figures_refreshed{figures="Figures.pool_full"} 0.0' in scraped.text
    assert 'berdaya_figures_refreshed{figures="Figures.refresh_backlog"} 1.0' in scraped.text


async def test_the_audit_trail_spanning_the_city_is_refused_to_an_officer_of_some_kecamatan_only() -> None:
    tokens = TokenService("s" * 32)
    app = FastAPI()
    app.state.platform = Platform(tokens=tokens, metrics=CollectorRegistry())
    install_error_handlers(app)
    app.include_router(platform_routes())
    alak = tokens.mint("petugas.alak", ["officer"], kecamatan=["53.71.01"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as http:
        refused = await http.get("/audit", headers={"Authorization": f"Bearer {alak}"})

    assert refused.status_code == 403 and "city-wide officer" in refused.json()["detail"]

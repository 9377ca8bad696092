"""What every service's HTTP API has in common: auth, bounded input, one error shape (RFC 9457), and the
health, readiness, metrics and audit routes."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import InvalidToken, Principal, TokenService
from shared.db import DATABASE_UNAVAILABLE, DatabaseBusy, connection_closed
from shared.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from shared.observability import scrub

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None when fine, else what is wrong
ScrapeHook = Callable[[], Awaitable[None]]  # refreshes gauges computed from the database

PROBLEM_JSON = "application/problem+json"


# Each scrape hook's time, under Prometheus's scrape timeout (5 s): a database that doesn't answer costs the figures
# read from it, not the whole scrape, which made a running service look down and blinded every other alert.
SCRAPE_HOOK_SECONDS = 2.0


@dataclass
class Platform:
    tokens: TokenService
    metrics: CollectorRegistry
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    scrape_hooks: list[ScrapeHook] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)  # each failing check's last reason, logged once per change
    figures_refreshed: Gauge = field(init=False)
    # Anyone may call /metrics and /ready, and each run reads whole tables or opens a Kafka connection: calls that
    # arrive while one runs wait for it and share its outcome, so fifty at once cost one.
    _refreshing: asyncio.Future[None] | None = field(default=None, init=False, repr=False)
    _checking: asyncio.Future[list[tuple[str, str | None]]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.figures_refreshed = Gauge(
            "berdaya_figures_refreshed",
            "1 when the figures this service reads from its database were refreshed at this scrape, 0 when the "
            "database did not answer in time (they keep their last values).",
            ["figures"], registry=self.metrics,
        )  # fmt: skip

    async def refresh_figures(self) -> None:
        """The figures read from the database, brought up to date; a call while a refresh runs shares it."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh_figures())
            self._refreshing.add_done_callback(lambda _: setattr(self, "_refreshing", None))
        # Shielded: one caller going away (a scrape that timed out) must not cancel the others' refresh.
        await asyncio.shield(self._refreshing)

    async def check_readiness(self) -> list[tuple[str, str | None]]:
        """Each readiness check by name, with its reason for failing or None; a call while the checks run shares
        them."""
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check(dict(self.readiness)))
            self._checking.add_done_callback(lambda _: setattr(self, "_checking", None))
        return await asyncio.shield(self._checking)

    @staticmethod
    async def _check(checks: dict[str, ReadinessCheck]) -> list[tuple[str, str | None]]:
        return list(zip(checks, await asyncio.gather(*(check() for check in checks.values())), strict=True))

    async def _refresh_figures(self) -> None:
        for hook in self.scrape_hooks:
            name = ".".join(getattr(hook, "__qualname__", repr(hook)).split(".")[-2:])  # e.g. FundingFigures.refresh
            try:
                await asyncio.wait_for(hook(), SCRAPE_HOOK_SECONDS)
            except Exception as exc:  # noqa: BLE001 - any failure costs these figures only
                timed_out = isinstance(exc, TimeoutError)
                reason = f"no answer within {SCRAPE_HOOK_SECONDS:.0f} s" if timed_out else repr(exc)
                _log_change(self.failing, name, reason, what="figures")
                self.figures_refreshed.labels(figures=name).set(0)
            else:
                _log_change(self.failing, name, None, what="figures")
                self.figures_refreshed.labels(figures=name).set(1)


# ---------------------------------------------------------------------------------------------------------------
# One error shape: RFC 9457 problem details
# ---------------------------------------------------------------------------------------------------------------


class ProblemField(BaseModel):
    field: str = Field(description="The field, query parameter or path part that is wrong, e.g. owner_nik or rows.3.values")
    code: str = Field(description="Machine-readable reason, e.g. nik.birth_date_mismatch")
    message: str = Field(description="What is wrong and what to do about it")


class Problem(BaseModel):
    """Every error of every Berdaya service (RFC 9457 problem details, media type application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:berdaya:problem:<code>")
    title: str
    status: int
    detail: str = Field(description="What happened and what to do next")
    code: str = Field(description="Machine-readable, stable: a UI translates by it")
    errors: list[ProblemField] = Field(default=[], description="Each wrong field, for 422")


_TITLES = {
    400: "Bad request", 401: "Not authenticated", 403: "Not allowed", 404: "Not found", 409: "Conflict",
    405: "Method not allowed", 413: "Request too large", 422: "Invalid input", 503: "Service unavailable",
}  # fmt: skip
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": title, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, title in _TITLES.items()
}


def problem(status: int, code: str, detail: str, errors: Sequence[FieldError] = (), extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"urn:berdaya:problem:{code}", "title": _TITLES.get(status, "Error"),
                            "status": status, "detail": detail, "code": code, "errors": [e.as_dict() for e in errors]}  # fmt: skip
    # Extension members never replace the standard ones.
    body.update({k: v for k, v in (extra or {}).items() if k not in body})
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or None)


class Unauthorized(Exception):
    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def _field_of(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # What the framework itself refuses (an unreadable body, an unknown path, a wrong method) in the same shape.
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 400:
            detail = f"{detail}: send a UTF-8 JSON body that matches the documented schema"
        return problem(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(_field_of(err.get("loc", ())), err.get("type", "invalid"),
                       str(err.get("msg", "")).removeprefix("Value error, "))  # fmt: skip
            for err in exc.errors()[:50]
        ]
        return problem(422, "invalid_input", "; ".join(f"{e.field}: {e.message}" for e in errors[:5]), errors)

    @app.exception_handler(InvalidInput)
    async def _invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        return problem(422, "invalid_input", str(exc), exc.errors)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return problem(409, exc.code, exc.message, extra=exc.details)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, "forbidden", str(exc))

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return problem(exc.status, "unauthenticated" if exc.status == 401 else "forbidden", str(exc))

    @app.exception_handler(DatabaseBusy)
    async def _busy(_: Request, exc: DatabaseBusy) -> JSONResponse:
        return problem(503, "database_busy", f"{exc}. Nothing was changed; try again in a moment.")

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database went away (restart, failover, a cut connection) or cancelled a statement: the transaction
        # was rolled back unless the connection dropped during its commit, so a client must check before repeating.
        log.warning("database unavailable: %s", scrub(f"{type(exc).__name__}: {exc}"))
        return problem(503, "database_unavailable", "The database is unavailable or too slow right now. Try again in "
                       "a moment; if this was a change, look it up first, as a connection lost while committing "
                       "leaves it unknown whether it was made.", headers={"Retry-After": "5"})  # fmt: skip

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable)

    @app.exception_handler(asyncpg.InterfaceError)
    async def _interface_error(request: Request, exc: asyncpg.InterfaceError) -> JSONResponse:
        if connection_closed(exc):
            return await _unavailable(request, exc)
        raise exc  # a misuse of the connection: a 500, logged with its traceback

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # A bug. Starlette still raises it to the server, which logs its traceback; the client gets the documented
        # shape, so one that reads `code` is not broken by a plain-text page.
        return problem(500, "internal_error", "Something went wrong in the service; its log has the error. If this "
                       "was a change, look it up before sending it again.")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Bounded input: body size, NUL characters, nesting
# ---------------------------------------------------------------------------------------------------------------


def _first_nul(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, or None."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = _first_nul(item, where)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_nul(item, f"{path}.{i}" if path else str(i))
            if found:
                return found
    return None


def storable(value: Any) -> Any:
    """Parsed JSON (or form fields) with every NUL taken out of its strings and keys, and half of any surrogate pair
    as U+FFFD: what PostgreSQL can store and Python encode. For callers that can't be asked to send it again
    without them (`NUL_DROPPED_BY_ROUTE`)."""
    if isinstance(value, str):
        if value.isascii() and "\x00" not in value:
            return value
        return _HALF_A_PAIR.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


_HALF_A_PAIR = re.compile("[\ud800-\udfff]")
_CHECK_ON_LOOP_BELOW = 64 * 1024  # bytes; smaller bodies take well under a millisecond to check
# Before a route checks who is calling, FastAPI reads and parses the body: 10 MB of JSON held the event loop (and
# with it the consumers and the relay) for 0.3 s, for anyone. So a body over this needs a token that verifies first.
UNPROVEN_BODY_BYTES = 64 * 1024
# The notifier's webhooks prove their callers themselves (a signature, a token) and are reachable from the internet;
# WhatsApp's, an SMS gateway's and Alertmanager's calls are far smaller than this.
WEBHOOK_PATHS, WEBHOOK_BODY_BYTES = "/webhooks/", 1024 * 1024
# Gateways forward what an owner's phone sent, NUL included, and answer a refusal by retrying the whole batch (other
# owners' STOPs in it) and then dropping it: their routes take NULs out (`storable`) instead.
NUL_DROPPED_BY_ROUTE = ("/webhooks/whatsapp", "/webhooks/sms")
# JSON with fewer brackets than this can't be nested too deeply to parse; without a NUL in it, it need not be parsed.
_SHALLOW_BELOW = 400


class BoundedInput:
    """ASGI middleware refusing, before any route runs, what no route should ever see: a body over the size limit
    (413), a NUL character in the path, a query parameter or any JSON string (422 naming where; a gateway's webhook
    takes them out itself), JSON nested deeper than Python can parse (422). PostgreSQL can't store NUL in text, and a
    huge body would stall the service."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", ""):
            await self._refuse(scope, receive, send, problem(422, "invalid_input", "the path holds a NUL character",
                                                             [FieldError("path", "text.nul", "NUL is not allowed")]))  # fmt: skip
            return
        query = scope.get("query_string", b"")
        if b"\x00" in query or b"%00" in query.lower():
            name = next((k for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                         if "\x00" in k or "\x00" in v), "query")  # fmt: skip
            await self._refuse(scope, receive, send, problem(
                422, "invalid_input", f"query parameter {name!r} holds a NUL character",
                [FieldError(name, "text.nul", "NUL is not allowed in text; remove it")]))  # fmt: skip
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit = self._limit(scope, headers)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, self._over(limit))
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._respond(scope, send, self._over(limit))
                return
        data = bytes(body)
        # A large body is checked on a worker thread: walking 10 MB of JSON for a NUL held the event loop (and with it
        # the service's consumers and relay) for over a second, for anyone able to send a request.
        small = len(data) < _CHECK_ON_LOOP_BELOW
        nul_allowed = scope.get("path", "") in NUL_DROPPED_BY_ROUTE
        check = functools.partial(self._check_body, data, nul_allowed=nul_allowed)
        refusal = check() if small else await asyncio.to_thread(check)
        if refusal is not None:
            await self._respond(scope, send, refusal)
            return
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _limit(self, scope: dict, headers: dict[bytes, bytes]) -> int:
        if scope.get("path", "").startswith(WEBHOOK_PATHS):
            return min(self.max_body, WEBHOOK_BODY_BYTES)
        platform = getattr(getattr(scope.get("app"), "state", None), "platform", None)
        if platform is None or self._proven(platform.tokens, headers):
            return self.max_body
        return min(self.max_body, UNPROVEN_BODY_BYTES)

    @staticmethod
    def _proven(tokens: TokenService, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            tokens.verify(token.strip())
        except InvalidToken:
            return False
        return True

    def _over(self, limit: int) -> JSONResponse:
        if limit < self.max_body and limit == UNPROVEN_BODY_BYTES:
            return problem(401, "unauthenticated", f"a request body over {limit:,} bytes needs a valid bearer token "
                           "('Authorization: Bearer <token>'; mint one with berdaya token)")  # fmt: skip
        return problem(413, "body_too_large", f"the request body is over {limit:,} bytes; send less at a time "
                       "(berdaya import splits a file into chunks)")  # fmt: skip

    @staticmethod
    def _check_body(body: bytes, *, nul_allowed: bool = False) -> JSONResponse | None:
        # Decoded as the route's JSON parsing decodes bytes (a UTF-8 byte-order mark, UTF-16 and UTF-32 included), so
        # no encoding carries a NUL past this check.
        try:
            text = body.decode(json.detect_encoding(body), "surrogatepass")
        except (UnicodeDecodeError, LookupError):
            return None  # the route's own parsing refuses it
        if text.lstrip()[:1] not in ("{", "["):
            return None
        if "\x00" not in text and "u0000" not in text and text.count("[") + text.count("{") < _SHALLOW_BELOW:
            return None  # nothing to find, and the route's own parsing can't fail on its depth
        try:
            value = json.loads(text)
        except RecursionError:
            return problem(422, "invalid_input", "the JSON body is nested too deeply",
                           [FieldError("body", "json.depth", "nest objects and lists less deeply")])  # fmt: skip
        except ValueError:
            return None  # the route's own parsing reports malformed JSON with its position
        if not nul_allowed and ("\\u0000" in text or "\x00" in text):
            where = _first_nul(value)
            if where:
                return problem(422, "invalid_input", f"{where} holds a NUL character",
                               [FieldError(where, "text.nul", "NUL is not allowed in text; remove it")])  # fmt: skip
        return None

    async def _refuse(self, scope: dict, receive: Callable, send: Callable, response: JSONResponse) -> None:
        await self._respond(scope, send, response)

    @staticmethod
    async def _respond(scope: dict, send: Callable, response: JSONResponse) -> None:
        async def no_body() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        await response(scope, no_body, send)


# ---------------------------------------------------------------------------------------------------------------
# Who is calling
# ---------------------------------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="A JWT minted with `berdaya token --role officer`.")

# Dependencies that never block are `async def`: FastAPI runs a plain `def` one in a worker thread, and those hops
# (four per request) cost the registry more CPU than checking the token itself.


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>' (mint one with berdaya token)")
    platform: Platform = request.app.state.platform
    try:
        return platform.tokens.verify(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from exc


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    wanted = frozenset(roles)

    async def dependency(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.has_any(wanted):
            raise Unauthorized(f"this needs one of the roles {sorted(wanted)}; the token has {sorted(who.roles)}", 403)
        return who

    return dependency


async def correlation_id(x_correlation_id: Annotated[str | None, Header(max_length=100)] = None) -> uuid.UUID:
    """Callers may pass X-Correlation-ID to tie our events to their request; otherwise each request gets one."""
    try:
        return uuid.UUID(x_correlation_id) if x_correlation_id else uuid.uuid4()
    except ValueError:
        return uuid.uuid4()


# Pages: offsets stay far inside bigint, and a page is small enough to build quickly.
MAX_PAGE = 100_000
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE:,}")]
PageSize = Annotated[int, Query(ge=1, le=500)]


# ---------------------------------------------------------------------------------------------------------------
# Health, readiness, metrics, audit
# ---------------------------------------------------------------------------------------------------------------


class AuditEntry(BaseModel):
    at: str = Field(description="UTC, ISO 8601")
    actor: str
    action: str
    aggregate_type: str
    aggregate_id: str
    event_id: uuid.UUID | None
    correlation_id: uuid.UUID | None


def _log_change(failing: dict[str, str], name: str, reason: str | None, what: str = "readiness") -> None:
    """A failing check is logged when it starts failing or its reason changes, and once when it passes again: probes
    and scrapes ask every few seconds."""
    key = f"{what}: {name}"
    if reason is None:
        if failing.pop(key, None) is not None:
            log.info("%s is ok again", key)
    elif failing.get(key) != reason:
        failing[key] = reason
        log.warning("%s fails: %s", key, reason)


def platform_routes() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", summary="The database and Kafka are reachable", responses={503: PROBLEM_RESPONSES[503]})
    async def ready(request: Request) -> JSONResponse:
        platform: Platform = request.app.state.platform
        checked = await platform.check_readiness()
        for name, reason in checked:
            _log_change(platform.failing, name, reason)
        # Anyone may ask, without a token: the reasons name hosts and addresses, so they go to the log only.
        checks = {name: "ok" if reason is None else "failing; the reason is in the service's log"
                  for name, reason in checked}  # fmt: skip
        ok = all(reason is None for _, reason in checked)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        platform: Platform = request.app.state.platform
        await platform.refresh_figures()
        return PlainTextResponse(generate_latest(platform.metrics), media_type=CONTENT_TYPE_LATEST)

    @router.get("/audit", summary="Who changed what: every event this service wrote, with its actor")
    async def audit(
        request: Request,
        who: Annotated[Principal, Depends(require_role("officer"))],
        aggregate_id: Annotated[str | None, Query(max_length=100)] = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        page: Page = 1,
        page_size: PageSize = 100,
    ) -> list[AuditEntry]:
        from shared.messaging.audit import audit_trail

        if who.limited_to_kecamatan:
            # The trail spans the city (whose NIK was revealed, by whom), and its entries name no kecamatan to filter on.
            raise Forbidden("the audit trail covers every kecamatan; your token acts in some only. Ask a city-wide "
                            "officer of the programme office")  # fmt: skip

        rows = await audit_trail(request.app.state.runtime.db, aggregate_id=aggregate_id, actor=actor, page=page,
                                 page_size=page_size)  # fmt: skip
        return [AuditEntry(**r) for r in rows]

    return router

"""What every service's HTTP API has in common: auth, health/readiness/metrics routes and clear error bodies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.auth import InvalidToken, Principal, TokenService
from shared.errors import Conflict, InvalidInput, NotFound

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None when fine, else what is wrong
ScrapeHook = Callable[[], Awaitable[None]]  # refreshes gauges computed from the database


@dataclass
class Platform:
    tokens: TokenService
    metrics: CollectorRegistry
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    scrape_hooks: list[ScrapeHook] = field(default_factory=list)


_bearer = HTTPBearer(auto_error=False, description="A JWT minted with `berdaya token --role officer`.")


class Unauthorized(Exception):
    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>' (mint one with berdaya token)")
    platform: Platform = request.app.state.platform
    try:
        return platform.tokens.verify(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from exc


def require_role(*roles: str) -> Callable[..., Principal]:
    wanted = frozenset(roles)

    def dependency(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.has_any(wanted):
            raise Unauthorized(f"this needs one of the roles {sorted(wanted)}; the token has {sorted(who.roles)}", 403)
        return who

    return dependency


def correlation_id(x_correlation_id: Annotated[str | None, Header()] = None) -> uuid.UUID:
    """Callers may pass X-Correlation-ID to tie our events to their request; otherwise each request gets one."""
    try:
        return uuid.UUID(x_correlation_id) if x_correlation_id else uuid.uuid4()
    except ValueError:
        return uuid.uuid4()


def _field_of(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Every error body has the same shape: {"errors": [{"field", "code", "message"}]} or {"error": ...}."""

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_of(err.get("loc", ())), "code": err.get("type", "invalid"), "message": str(err.get("msg", "")).removeprefix("Value error, ")}
            for err in exc.errors()
        ]
        return JSONResponse({"errors": errors}, status_code=422)

    @app.exception_handler(InvalidInput)
    async def _invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"errors": [e.as_dict() for e in exc.errors]}, status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": {"code": "not_found", "message": str(exc)}}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message, **exc.details}}, status_code=409
        )

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        code = "unauthenticated" if exc.status == 401 else "forbidden"
        return JSONResponse({"error": {"code": code, "message": str(exc)}}, status_code=exc.status, headers=headers)


def platform_routes() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", summary="The database and Kafka are reachable")
    async def ready(request: Request) -> JSONResponse:
        platform: Platform = request.app.state.platform
        names = list(platform.readiness)
        results = await asyncio.gather(*(platform.readiness[n]() for n in names))
        checks = {n: (r or "ok") for n, r in zip(names, results, strict=True)}
        ok = all(r is None for r in results)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        platform: Platform = request.app.state.platform
        for hook in platform.scrape_hooks:
            await hook()
        return PlainTextResponse(generate_latest(platform.metrics), media_type=CONTENT_TYPE_LATEST)

    return router

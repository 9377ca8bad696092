"""Metrics every service exports about its messaging, and logging that can never carry a NIK."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.db import DATABASE_UNAVAILABLE

_SIXTEEN_DIGITS = re.compile(r"(?<!\d)\d{16}(?!\d)")


def scrub(text: str) -> str:
    """Mask anything shaped like a NIK; a log line, metric label or dead-letter reason must never carry one."""
    return _SIXTEEN_DIGITS.sub("<16 digits redacted>", text)


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RepeatFilter(logging.Filter):
    """One line per `window` seconds for each message of the Kafka client that comes again and again, then the next
    with how many like it were held back. While a broker is down, aiokafka logs "Unable connect to node" and "Unable
    to update metadata" for every client at every retry: a five-minute outage left 56,000-72,000 ERROR lines in one
    service's log, burying everything an operator needed to read.

    A message is its text before the arguments are filled in and its first argument (the node, topic or group it is
    about): node 2 failing while node 1 is down, or a second topic refused, is a message of its own. A record with a
    traceback always passes. What was held back in a message's last window is told with its next line, so after an
    outage the log's last word on it may be up to `window` seconds old."""

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",), window: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self._prefixes, self._window, self._clock = prefixes, window, clock
        self._seen: dict[tuple[str, int, str, str], tuple[float, int]] = {}  # message -> (window's start, held back)
        self._lock = threading.Lock()  # handlers run their filters outside their own lock

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes) or record.exc_info:
            return True
        text = record.msg if isinstance(record.msg, str) else repr(record.msg)
        about = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        key = (record.name, record.levelno, text, about)
        with self._lock:
            now = self._clock()
            started, held = self._seen.get(key, (None, 0))
            if started is not None and now - started < self._window:
                self._seen[key] = (started, held + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 1000:  # messages that differ every time must not grow this forever
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._window}
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it in the {now - started:.0f} s before)"
            record.args = None
        return True


class OneLineFailure(logging.Filter):
    """A library's report of a failure the service expects and rides out, told in one line with the error's own words
    instead of a traceback. asyncpg's pool logs one at each attempt to reconnect while the database is away (about
    ten in a few minutes' outage, in every service): their frames told an operator nothing the service's own
    "database unavailable" lines do not, and a traceback in the log is what should mean "something unexpected".
    Any other failure the library reports keeps its traceback."""

    def __init__(self, logger: str, expected: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self._logger, self._expected = logger, expected

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == self._logger and isinstance(error, self._expected):
            record.msg, record.args = f"{record.getMessage()}: {type(error).__name__}: {error}", None
            record.exc_info, record.exc_text = None, None
        return True


def log_handler(service: str, stream: TextIO | None = None) -> logging.Handler:
    """The handler every service logs through (`configure_logging`), writing to `stream`, stderr unless given."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OneLineFailure("asyncpg.pool", DATABASE_UNAVAILABLE))  # before the scrub, which reads the line
    handler.addFilter(_ScrubFilter())
    handler.addFilter(RepeatFilter())
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(service)]
    root.setLevel(level)
    # aiokafka logs every coordinator hiccup at WARNING or ERROR; its INFO is noise.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


class MessagingMetrics:
    """The outbox, inbox and dead-letter figures operators watch, on a service's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.outbox_backlog = Gauge(
            "berdaya_outbox_backlog", "Committed outbox rows not yet published to Kafka.", registry=registry
        )
        self.outbox_oldest_age = Gauge(
            "berdaya_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row; grows when the relay or Kafka is stuck.",
            registry=registry,
        )
        self.outbox_published = Counter(
            "berdaya_outbox_published", "Outbox rows published to Kafka and marked.", registry=registry
        )
        self.outbox_publish_failures = Counter(
            "berdaya_outbox_publish_failures", "Outbox rows whose publish failed and will be retried.", registry=registry
        )
        self.outbox_commit_to_publish = Histogram(
            "berdaya_outbox_commit_to_publish_seconds",
            "Time from an outbox row's insert to its publish being acknowledged by Kafka.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.outbox_failing = Gauge(
            "berdaya_outbox_failing_rows",
            "Unpublished outbox rows whose last publish failed; each holds back its own aggregate's later events.",
            registry=registry,
        )
        self.relay_errors = Counter(
            "berdaya_outbox_relay_errors", "Relay loops that failed (database or Kafka) and backed off.", registry=registry
        )
        self.relay_leader = Gauge(
            "berdaya_outbox_relay_leader", "1 when this process holds the relay lease for its database.", registry=registry
        )
        self.consumed = Counter(
            "berdaya_consumer_records",
            "Records handled by a consumer, by outcome (processed, duplicate, ignored, dead_lettered).",
            ["consumer", "outcome"],
            registry=registry,
        )
        self.inbox_duplicates = Counter(
            "berdaya_inbox_duplicates",
            "Deliveries of an event a consumer had already applied (absorbed by the inbox).",
            ["consumer"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "berdaya_dlq_records",
            "Records sent to a dead-letter topic after failing.",
            ["consumer", "topic"],
            registry=registry,
        )
        self.retries = Counter(
            "berdaya_consumer_retries", "Processing attempts that failed and were retried.", ["consumer"], registry=registry
        )
        self.transient_failures = Counter(
            "berdaya_consumer_transient_failures",
            "Batch attempts that failed for the infrastructure's reasons (database down, deadlock, no connection) and "
            "were retried; never dead-lettered.",
            ["consumer"],
            registry=registry,
        )
        self.event_age = Histogram(
            "berdaya_consumer_event_age_seconds",
            "Time from an event occurring to a consumer applying it: end-to-end lag.",
            ["consumer"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "berdaya_consumer_lag_records",
            "Records on a partition after the one just handled (high watermark - position), as the consumer saw it at "
            "its last batch; it stops moving when the consumer does. Alert on berdaya_consumer_group_lag_seconds.",
            ["consumer", "topic", "partition"],
            registry=registry,
        )

    def prime(self, consumer: str, topic: str | None) -> None:
        """Create a consumer's series at 0 when it starts, so the first retry or dead letter is an increase that
        rate() and increase() can see (a series born at 1 looks like no change)."""
        for outcome in ("processed", "duplicate", "ignored", "dead_lettered"):
            self.consumed.labels(consumer, outcome)
        for metric in (self.inbox_duplicates, self.retries, self.transient_failures, self.event_age):
            metric.labels(consumer)
        if topic is not None:
            self.dead_lettered.labels(consumer, topic)


class LagMetrics:
    """Consumer lag as measured from committed offsets against end offsets (shared.messaging.lag)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["consumer", "topic", "partition"]
        self.records = Gauge(
            "berdaya_consumer_group_lag_records",
            "Records on a partition a consumer group has not committed yet (end offset - committed offset).",
            labels, registry=registry,
        )  # fmt: skip
        self.seconds = Gauge(
            "berdaya_consumer_group_lag_seconds",
            "Age of the oldest record a consumer group has not consumed on a partition (now - its Kafka timestamp); "
            "0 when caught up. Measured by every consuming service for every group of its deployment.",
            labels, registry=registry,
        )  # fmt: skip
        self.measured = Gauge(
            "berdaya_consumer_lag_measured_timestamp_seconds",
            "When this process last measured consumer lag successfully (Unix time).",
            registry=registry,
        )
        self.errors = Counter(
            "berdaya_consumer_lag_measurement_errors",
            "Lag measurements that failed (Kafka unreachable, not authorised, timed out).",
            registry=registry,
        )


# ---------------------------------------------------------------------------------------------------------------
# HTTP: requests by route template, method and status; latency by route template and method
# ---------------------------------------------------------------------------------------------------------------

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # any path no route answers: never the raw path, which could carry anything
CLIENT_CLOSED = 499


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "berdaya_http_requests",
            "HTTP requests answered, by route template (never the raw path), method and status code.",
            ["route", "method", "status"], registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "berdaya_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )

    def prime(self, app: Any) -> None:
        """Every route's success count at 0 from the start (its documented status, 200 unless it says otherwise), so
        its first requests are an increase rate() and increase() can see rather than a series born non-zero. (Not
        its latency histogram: fourteen series a route, for the first burst's percentiles only.)"""
        for route in _routes(app):
            path, methods = getattr(route, "path", None), getattr(route, "methods", None)
            status = getattr(getattr(route, "original_route", route), "status_code", None) or 200
            for method in sorted((methods or set()) & HTTP_METHODS - {"HEAD"}) if path else ():
                self.requests.labels(path, method, str(status))


def _routes(app: Any) -> Any:
    """An app's routes with their full paths, routers included (FastAPI 0.16x includes them lazily)."""
    routes = getattr(app, "routes", ())
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: app.routes is already flat
        return routes
    return iter_route_contexts(routes)


def _route_template(app: Any, scope: dict) -> str:
    """The template of the route that answered (`/businesses/{business_id}`). A request refused before routing (too
    large, a NUL in it) is matched against the routes here, so it still counts against the route it was for."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    from starlette.routing import Match

    for candidate in _routes(app):
        try:
            match, _ = candidate.matches(scope)
        except Exception:  # noqa: BLE001,S112 - a route that can't judge this scope is not it
            continue
        if match is not Match.NONE and getattr(candidate, "path", None):
            return candidate.path
    return UNMATCHED_ROUTE


class HttpMetricsMiddleware:
    """Outermost ASGI middleware: counts and times every HTTP request, including those refused before routing.
    Labels are bounded: the route template, one of seven methods (else "other"), the status code."""

    def __init__(self, app: Any, metrics: HttpMetrics, router_app: Callable[[], Any]) -> None:
        self.app = app
        self.metrics = metrics
        self._router_app = router_app  # the FastAPI app, whose routes name the template

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # 499 (nginx's "client closed request"): the caller left before any answer; 500 if the app raised first.
        status = CLIENT_CLOSED

        async def recording_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException:
            status = 500 if status == CLIENT_CLOSED else status
            raise
        finally:
            method = scope.get("method", "")
            method = method if method in HTTP_METHODS else "other"
            route = _route_template(self._router_app(), scope)
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.duration.labels(route, method).observe(time.perf_counter() - started)

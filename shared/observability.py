"""Metrics every service exports about its messaging, and logging that can never carry a NIK."""

from __future__ import annotations

import logging
import re
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
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
            "Records on a partition after the one just handled (high watermark - position).",
            ["consumer", "topic", "partition"],
            registry=registry,
        )

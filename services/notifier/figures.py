"""What operators see of the notifier on /metrics: deliveries and messages by channel and status, calls to gateways by
outcome, webhooks, replies. Labels are channels, statuses and outcomes only: never a phone number, an address or a
message body."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.notifier.domain.channels import CHANNELS
from services.notifier.domain.delivery import DELIVERY_STATUSES, MESSAGE_STATUSES
from services.notifier.domain.messages import OFFICERS, OPERATORS, OWNER, SPONSOR
from shared.db import Database


class NotifierFigures:
    def __init__(self, registry: CollectorRegistry, db: Database | None = None) -> None:
        self._db = db
        self.deliveries = Gauge("berdaya_notifier_deliveries", "Deliveries by channel and status.",
                                ["channel", "status"], registry=registry)  # fmt: skip
        self.messages = Gauge("berdaya_notifier_messages", "Messages by audience and status (the status of their "
                              "deliveries).", ["audience", "status"], registry=registry)  # fmt: skip
        self.oldest_due = Gauge("berdaya_notifier_oldest_due_age_seconds", "How long the oldest queued delivery that is "
                                "due has waited; grows when a gateway is down or rate-limited.", ["channel"],
                                registry=registry)  # fmt: skip
        self.attempts = Counter("berdaya_notifier_send_attempts", "Calls to a gateway, by outcome (accepted, rejected, "
                                "no_whatsapp: the number has no WhatsApp, transient, ambiguous: no answer, it may "
                                "have been taken).", ["channel", "outcome"],
                                registry=registry)  # fmt: skip
        self.stranded = Counter("berdaya_notifier_stranded_deliveries", "Deliveries left 'sending' by a stopped "
                                "process, by what was done (unknown: for an operator; queued: sent again).",
                                ["channel", "resolution"], registry=registry)  # fmt: skip
        self.status_reports = Counter("berdaya_notifier_status_reports", "Gateway status reports, matched to a "
                                      "delivery or not.", ["channel", "matched"], registry=registry)  # fmt: skip
        self.webhooks_refused = Counter("berdaya_notifier_webhooks_refused", "Webhook calls refused (bad signature or "
                                        "token, or Alertmanager's webhook without NOTIFIER_ALERTMANAGER_TOKEN).",
                                        ["source"], registry=registry)  # fmt: skip
        self.webhook_skipped = Counter("berdaya_notifier_webhook_skipped", "What a well-proven webhook held that is "
                                       "not ours, by reason (other_phone_number: a WhatsApp change for another number "
                                       "of the Meta app; sender_not_indonesian_mobile: a message from a number that "
                                       "cannot be an owner's).", ["source", "reason"], registry=registry)  # fmt: skip
        self.alerts = Counter("berdaya_notifier_alerts", "Alerts from Alertmanager by audience, status (firing, "
                              "resolved) and outcome (recorded: a new message; repeated: already told).",
                              ["audience", "status", "outcome"], registry=registry)  # fmt: skip
        self.replies = Counter("berdaya_notifier_replies", "Owners' replies by what they asked (stop, start, other).",
                               ["channel", "intent"], registry=registry)  # fmt: skip

    async def refresh(self) -> None:
        if self._db is None:
            return
        # Everything is read before any figure changes: a query that fails or times out (or a scrape running
        # alongside) must leave the last figures standing, never zeroed.
        deliveries = await self._db.fetch("SELECT channel, status, count(*) AS n FROM delivery GROUP BY 1, 2")
        messages = await self._db.fetch("SELECT audience, status, count(*) AS n FROM message GROUP BY 1, 2")
        oldest = await self._db.fetch(
            "SELECT channel, extract(epoch FROM now() - min(not_before)) AS age FROM delivery"
            " WHERE status = 'queued' AND not_before <= now() GROUP BY 1"
        )
        for channel in CHANNELS:
            for status in DELIVERY_STATUSES:
                self.deliveries.labels(channel, status).set(0)
            self.oldest_due.labels(channel).set(0)
        for audience in (OWNER, OFFICERS, SPONSOR, OPERATORS):
            for status in MESSAGE_STATUSES:
                self.messages.labels(audience, status).set(0)
        for row in deliveries:
            self.deliveries.labels(row["channel"], row["status"]).set(row["n"])
        for row in messages:
            self.messages.labels(row["audience"], row["status"]).set(row["n"])
        for row in oldest:
            self.oldest_due.labels(row["channel"]).set(max(0.0, float(row["age"] or 0)))

"""The use case of Alertmanager's webhook: the alerts of one call become messages to the operators or the programme
office, recorded with their deliveries in one transaction; the delivery worker sends them like any other message.
The rules (audience, recipients, text, the notice id that makes a repeat change nothing, timing) are in
domain/alerts.py; the webhook itself in webhooks.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from services.notifier.domain.alerts import (
    CONTACT_SETTINGS,
    Alert,
    AlertRecipients,
    alert_message,
    audience_of,
    is_email,
    plan_alert,
)
from services.notifier.domain.delivery import QUEUED, summarise
from services.notifier.recording import Deps
from services.notifier.store import NotifierUnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertsReceived:
    """One call of Alertmanager's webhook: the receiver it was sent to and its alerts."""

    receiver: str
    alerts: tuple[Alert, ...]
    truncated: int = 0  # alerts Alertmanager left out of this call (max_alerts)


@dataclass(slots=True)
class AlertsRecorded:
    audience: str
    alerts: int = 0
    recorded: int = 0  # new messages
    repeated: int = 0  # already told: Alertmanager's retry or repeat notification
    deliveries: int = 0
    recipients: int = 0  # 0: kept in the local outbox, see the deliveries' reason
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, recorded|repeated) -> alerts


async def record_alerts(cmd: AlertsReceived, uow: NotifierUnitOfWork, deps: Deps,
                        recipients: AlertRecipients) -> AlertsRecorded:  # fmt: skip
    """Record one message per alert not told yet to the receiver's audience, with one delivery per recipient; one
    transaction for the whole call, so Alertmanager's retry of a call that failed midway finds all or nothing."""
    audience = audience_of(cmd.receiver)
    contacts = recipients.of(audience)
    outcome = AlertsRecorded(audience, alerts=len(cmd.alerts), recipients=len(contacts))
    queued = False
    async with uow:
        now = deps.clock()
        # A phone's preference only chooses its channel (WhatsApp said the number has none: SMS).
        preferences = {c: await uow.store.preference(c) for c in contacts if not is_email(c)}
        for alert in cmd.alerts:
            message = alert_message(audience, alert, deps.new_id(), now)
            if not await uow.store.add_message(message):
                outcome.repeated += 1
                outcome.counts[(alert.status, "repeated")] += 1
                continue
            plan = plan_alert(message, alert.severity, contacts, preferences, deps.rules, now, deps.new_id)
            await uow.store.add_deliveries(plan.deliveries)
            status, channel = summarise(plan.deliveries)
            await uow.store.set_message_status(message.id, status, channel, now)
            outcome.recorded += 1
            outcome.deliveries += len(plan.deliveries)
            outcome.counts[(alert.status, "recorded")] += 1
            queued = queued or any(d.status == QUEUED for d in plan.deliveries)
        if queued:
            uow.after_commit(deps.wake)  # the worker looks now rather than at its next poll
        await uow.commit()
    if cmd.truncated:
        log.warning("Alertmanager left %d alert(s) out of a call to the %s receiver (max_alerts); they are on its page",
                    cmd.truncated, cmd.receiver)  # fmt: skip
    if outcome.recorded and not contacts:
        log.warning("%d alert(s) for %s kept in the local outbox: no contacts configured (set %s)", outcome.recorded,
                    audience, CONTACT_SETTINGS[audience])  # fmt: skip
    return outcome

"""A delivery: one message to one recipient on one channel, and how its status moves.

    queued -> sending -> sent -> delivered -> read
                     \\-> failed (with the gateway's reason)     \\-> unknown (the process stopped mid-send)
    queued -> withheld (opted out, the offer already answered, expired in quiet hours)

`sending` is written and committed before the gateway is called, so a process that dies between the gateway's
answer and recording it leaves a row that says so. When its lease runs out, the channel's guarantee decides:
at-most-once marks it `unknown` for an operator to resolve (never sent twice, perhaps not at all); at-least-once
queues it again (never lost, perhaps sent twice; SMTP carries a stable Message-ID so a mailbox shows one).

A gateway's status reports move a delivery forward only: they arrive out of order (read before delivered, sent after
delivered), and a 'failed' after a delivery (another of the owner's devices) does not undo it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.notifier.domain.channels import AT_MOST_ONCE, Accepted, Guarantee, Rejected, SendResult, Transient

QUEUED, SENDING, SENT, DELIVERED, READ = "queued", "sending", "sent", "delivered", "read"
FAILED, UNKNOWN, WITHHELD = "failed", "unknown", "withheld"
WAITING = "waiting"  # a message (not a delivery) whose owner's contact has not reached the notifier yet
# Why a queued delivery was withheld when the owner's number changed. Only such a delivery is queued again if the
# number changes back (`NotifierStore.add_deliveries`): any other withheld one stays as it was.
NUMBER_CHANGED = "the owner's number changed before this went; the message goes to the new number instead"
DELIVERY_STATUSES = (QUEUED, SENDING, SENT, DELIVERED, READ, FAILED, UNKNOWN, WITHHELD)
MESSAGE_STATUSES = (WAITING, *DELIVERY_STATUSES)
REPORTED = frozenset({SENT, DELIVERED, READ, FAILED})  # what a gateway's status webhook can say

_PROGRESS = {QUEUED: 0, SENDING: 1, SENT: 2, DELIVERED: 3, READ: 4}


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    message_id: uuid.UUID
    channel: str
    recipient: str  # +62... or an email address, or "officers:<kecamatan>" / "sponsor:<id>" in the local outbox
    status: str
    not_before: datetime
    attempts: int = 0
    provider_id: str | None = None
    reason: str | None = None
    fallback_of: uuid.UUID | None = None  # the delivery on another channel this one replaces
    retries_from: int = 0  # the attempts made when an operator last sent it again: the retries count from there
    critical: bool = False  # an alert marked critical: it goes at any hour


def advance(current: str, reported: str) -> str:
    """The status after a gateway reports `reported` for a delivery that is `current`."""
    if current == WITHHELD or reported not in REPORTED:
        return current
    if reported == FAILED:
        return FAILED if current in (QUEUED, SENDING, SENT, UNKNOWN, FAILED) else current
    if current == FAILED:
        # Some device got it: delivered or read. A late `sent` (reports come out of order) proves nothing: taken, it
        # moved a failure back to sent, which an operator may not resend and a filter on failures no longer shows.
        return reported if reported in (DELIVERED, READ) else current
    if current == UNKNOWN:  # the attempt whose answer was lost reached the gateway
        return reported
    return reported if _PROGRESS[reported] > _PROGRESS.get(current, -1) else current


def summarise(deliveries: Sequence[Delivery]) -> tuple[str, str]:
    """A message's status and channel from its deliveries: a delivery replaced by a fallback no longer counts; an
    unknown one needs an operator, so it shows first; then a failure; then the least progressed of the rest."""
    replaced = {d.fallback_of for d in deliveries if d.fallback_of is not None}
    current = [d for d in deliveries if d.id not in replaced]
    if not current:
        return WAITING, "none"
    for status in (UNKNOWN, FAILED):
        found = next((d for d in current if d.status == status), None)
        if found:
            return status, found.channel
    sending = [d for d in current if d.status != WITHHELD]
    if not sending:
        return WITHHELD, current[0].channel
    least = min(sending, key=lambda d: _PROGRESS[d.status])
    return least.status, least.channel


# ---------------------------------------------------------------------------------------------------------------
# Retrying and recording a gateway's answer
# ---------------------------------------------------------------------------------------------------------------


MAX_RETRY_AFTER_SECONDS = 86_400.0  # a gateway asking to wait longer than a day is waited a day


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits base * 2**(n-1), capped, times a factor between 0.5 and 1
    (so many messages failing together do not all come back at once); never sooner than the gateway asked."""

    base_seconds: float = 15.0
    cap_seconds: float = 3600.0
    max_attempts: int = 10

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> timedelta:
        # The exponent and the gateway's ask are bounded: a Retry-After of 1e12, inf or nan (or a resend after
        # thousands of attempts) overflowed, and the row was left sending until its lease ran out.
        exponential = min(self.cap_seconds, self.base_seconds * 2 ** min(max(0, attempt - 1), 64))
        seconds = exponential * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
        asked = retry_after if retry_after is not None and math.isfinite(retry_after) else 0.0
        return timedelta(seconds=max(seconds, min(asked, MAX_RETRY_AFTER_SECONDS)))


@dataclass(frozen=True, slots=True)
class Change:
    """What recording a send's outcome does to the delivery."""

    status: str
    reason: str | None = None
    provider_id: str | None = None
    not_before: datetime | None = None  # when queued again
    fallback: bool = False  # open a delivery on the fallback channel


def after_send(current: str, attempt: int, result: SendResult, now: datetime, retry: RetryPolicy, jitter: float,
               retries_from: int = 0) -> Change:  # fmt: skip
    """The delivery's next state once the gateway answered attempt `attempt` (a status webhook may have moved it on
    already: the answer never moves it back). `retries_from`: the attempts made before an operator last sent it
    again, which the retries do not count."""
    if isinstance(result, Accepted):
        # A status webhook may have come first (delivered, read, or failed): it stays.
        return Change(SENT if current in (QUEUED, SENDING, UNKNOWN) else current, provider_id=result.provider_id)
    if isinstance(result, Rejected):
        return Change(FAILED, reason=result.reason, fallback=result.no_whatsapp)
    assert isinstance(result, Transient)
    tries = attempt - retries_from
    if tries >= retry.max_attempts:
        since = " since it was sent again by hand" if retries_from else ""
        return Change(FAILED, reason=f"gave up after {tries} attempts{since}; the last: {result.reason}")
    if result.ambiguous:
        # The request went out and no answer came back: the gateway may have taken it. Retried as the issue asks
        # (a timeout is transient); the attempt's row says so, and a WhatsApp status report for this attempt
        # (matched by our delivery id) cancels the retry if it comes first.
        return Change(QUEUED, reason=f"attempt {attempt} got no answer (the gateway may have taken it), will retry: "
                      f"{result.reason}", not_before=now + retry.delay(tries, jitter, result.retry_after))  # fmt: skip
    return Change(QUEUED, reason=f"attempt {attempt} failed, will retry: {result.reason}",
                  not_before=now + retry.delay(tries, jitter, result.retry_after))  # fmt: skip


def reported_first(current: str, result: SendResult) -> bool:
    """Whether a status report (sent, delivered, read, failed) moved the delivery on before the gateway's answer to
    the send came back as a timeout or a refusal: the report knows more, so that answer is history only. Queued
    again, a message the owner already has would go twice."""
    return not isinstance(result, Accepted) and current in REPORTED


def after_lease_expired(guarantee: Guarantee, holder: str | None, attempt: int, now: datetime) -> Change:
    """A delivery left `sending` by a process that stopped before it recorded the gateway's answer."""
    who = f"process {holder}" if holder else "a process"
    if guarantee == AT_MOST_ONCE:
        return Change(UNKNOWN, reason=(
            f"{who} stopped after sending attempt {attempt} and before recording the gateway's answer: it may or may "
            "not have been sent. Not resent (at-most-once); check with the gateway, then resolve it with "
            "POST /deliveries/{id}/resolve"))  # fmt: skip
    return Change(QUEUED, not_before=now, reason=(
        f"{who} stopped after sending attempt {attempt} and before recording the gateway's answer: sent again "
        "(at-least-once), so the recipient may get it twice"))  # fmt: skip

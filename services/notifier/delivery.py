"""The delivery worker: a background job in every notifier process that sends what is queued.

One pass, per channel:
1. In one transaction: take the channel's tokens (a bucket shared by every process), claim up to that many due
   deliveries with `FOR UPDATE SKIP LOCKED` (two processes never claim one row), mark them `sending` with this
   process's name, one more attempt and a lease, take a last look (the owner opted out since, the offer was answered:
   withheld instead), write an attempt row, commit. From here on a crash leaves a row that says it was mid-send.
2. Send each, a few at once, so a slow or failing gateway call never holds up the others.
3. Record each answer in its own transaction: only if the row is still this attempt's (a late answer never
   overwrites a newer attempt), moving it to sent, failed (and to SMS if the number has no WhatsApp), or back to
   queued with backoff, never into quiet hours.

Local deliveries need no gateway: claimed, written to `local_outbox` and marked delivered in one transaction, so
exactly once. A pass also looks, at most every quarter of a lease, for `sending` rows whose lease ran out (their
process stopped) and applies the channel's guarantee (domain/delivery.py): at-most-once marks them `unknown` for an
operator, at-least-once queues them again.

A lease is set and judged on PostgreSQL's clock, not the injected one (store.py says why): processes on hosts whose
clocks differ would otherwise take one another's live leases for run-out ones. The injected clock still decides
what is due, quiet hours, backoff and the times recorded, and when this process next looks for stranded rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.channels.local import LocalLetter, LocalOutboxFiles
from services.notifier.delivery_outcomes import fall_back, owners_new_phone
from services.notifier.domain.channels import (
    AT_MOST_ONCE,
    LOCAL,
    PHONE_CHANNELS,
    Accepted,
    Rejected,
    SendResult,
    Transient,
)
from services.notifier.domain.delivery import (
    NUMBER_CHANGED,
    QUEUED,
    WITHHELD,
    Delivery,
    RetryPolicy,
    after_lease_expired,
    after_send,
    reported_first,
)
from services.notifier.domain.planning import at_send_time, last_look
from services.notifier.domain.policy import any_hour
from services.notifier.domain.schedule import next_send_time
from services.notifier.figures import NotifierFigures
from services.notifier.recording import Deps, offer_at_risk, readdress, refresh_message, refresh_messages
from services.notifier.store import NotifierUnitOfWork, Outgoing
from shared.observability import scrub

log = logging.getLogger(__name__)


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerSettings:
    holder: str
    batch: int = 50
    concurrency: int = 4
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _outcome(result: SendResult) -> str:
    if isinstance(result, Accepted):
        return "accepted"
    if isinstance(result, Rejected):
        # A number without WhatsApp is the owner's circumstance, not the gateway failing: counted apart, so the
        # channel alert can take every other refusal seriously.
        return "no_whatsapp" if result.no_whatsapp else "rejected"
    return "ambiguous" if result.ambiguous else "transient"


def _detail(result: SendResult) -> str | None:
    return result.provider_id if isinstance(result, Accepted) else result.reason


class DeliveryWorker:
    def __init__(self, unit_of_work: Callable[[], NotifierUnitOfWork], gateways: Mapping[str, Gateway],
                 files: LocalOutboxFiles, deps: Deps, settings: WorkerSettings, figures: NotifierFigures,
                 jitter: Callable[[], float] = random.random) -> None:  # fmt: skip
        self._uow = unit_of_work
        self._gateways = dict(gateways)
        self._files = files
        self._deps = deps
        self._settings = settings
        self._figures = figures
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._next_recovery: datetime | None = None

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the pass, so a wake-up that comes during it is kept: the wait below then returns at once.
            self._wake.clear()
            more = False
            try:
                _, more = await self._pass()
            except Exception as exc:  # noqa: BLE001 - the worker outlives any outage; rows stay queued or sending
                log.warning("delivery worker: %s", scrub(f"{type(exc).__name__}: {exc}"))
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self._wake), timeout=self._settings.poll_seconds)

    async def pass_once(self) -> int:
        """Recover stranded rows (if it is time to look), deliver what is due; returns how many deliveries were
        claimed."""
        claimed, _ = await self._pass()
        return claimed

    async def _pass(self) -> tuple[int, bool]:
        """How many deliveries were claimed, and whether a claim was full (more may be due at once)."""
        now = self._deps.clock()
        # A row is stranded only once its lease has run out, so looking more often than a part of the lease finds
        # nothing new; at a message a second, looking every pass was most of the worker's transactions. This
        # process's own clock is enough for that: it says how often to look, never whether a lease has run out.
        if self._next_recovery is None or now >= self._next_recovery:
            await self.recover()
            self._next_recovery = now + self._settings.lease / 4
        claimed, more = await self._local()
        for gateway in self._gateways.values():
            sent, full = await self._gateway(gateway)
            claimed, more = claimed + sent, more or full
        return claimed, more

    # --- recovering what a stopped process left ------------------------------------------------------------

    async def recover(self) -> int:
        now = self._deps.clock()
        async with self._uow() as uow:
            stranded = await uow.store.stranded(self._settings.batch)
            for found in stranded:
                delivery = found.delivery
                gateway = self._gateways.get(delivery.channel)
                guarantee = gateway.guarantee if gateway else AT_MOST_ONCE
                change = after_lease_expired(guarantee, found.holder, delivery.attempts, now)
                await uow.store.end_attempt(delivery.id, delivery.attempts, "lost", change.reason, now)
                again = replace(delivery, status=change.status, reason=change.reason,
                                not_before=change.not_before or delivery.not_before)  # fmt: skip
                await self._save_for_current_number(uow, again, now)
                uow.after_commit(self._figures.stranded.labels(delivery.channel, change.status).inc)
                log.warning("delivery %s on %s was left mid-send by %s: %s (%s)", delivery.id, delivery.channel,
                            found.holder or "a stopped process", change.status, guarantee)  # fmt: skip
            # Locked in id order, as every pass locks them: two processes recovering and delivering never deadlock.
            await refresh_messages(uow, {found.delivery.message_id for found in stranded}, now)
            await uow.commit()
        return len(stranded)

    # --- the local outbox ----------------------------------------------------------------------------------

    async def _local(self) -> tuple[int, bool]:
        now = self._deps.clock()
        async with self._uow() as uow:
            claimed = await uow.store.claim_due(LOCAL, now, self._settings.holder, self._settings.lease,
                                                self._settings.batch)  # fmt: skip
            going = [item for item in claimed if not await self._withheld(uow, item, now)]
            await uow.store.deliver_all_locally([(item.delivery, item.subject, item.body) for item in going],
                                                self._settings.holder, now)  # fmt: skip
            # Every message once, after all its deliveries in this pass have changed.
            await refresh_messages(uow, {item.delivery.message_id for item in claimed}, now)
            await uow.commit()
        letters = [LocalLetter(item.delivery.id, item.delivery.recipient, item.subject, item.body, item.template, now)
                   for item in going]  # fmt: skip
        if letters and self._files.directory is not None:
            await asyncio.to_thread(lambda: [self._files.write(letter) for letter in letters])
        if letters:
            self._figures.attempts.labels(LOCAL, "accepted").inc(len(letters))
        return len(claimed), len(claimed) >= self._settings.batch

    async def _withheld(self, uow: NotifierUnitOfWork, item: Outgoing, now: datetime) -> bool:
        """Whether the claimed delivery must not go now: withheld for good, or put back until quiet hours end.
        Either way claiming counted an attempt that was never made, and it is given back. The caller refreshes the
        message."""
        reason = last_look(item.template, item.audience, item.preference, item.offer_state)
        when = None if reason else at_send_time(item.delivery, item.template, item.deadline, self._deps.rules, now)
        given_back = item.delivery.attempts - 1
        if reason is not None or (when is not None and when.withhold_reason is not None):
            kept = replace(item.delivery, status=WITHHELD, reason=reason or when.withhold_reason, attempts=given_back)
        elif when is not None:
            kept = replace(item.delivery, status=QUEUED, not_before=when.not_before, attempts=given_back)
        else:
            return False
        await uow.store.save_delivery(kept, now)
        if when is not None and when.flag_officers:
            await offer_at_risk(uow, self._deps, kept)
        return True

    # --- a gateway -----------------------------------------------------------------------------------------

    async def _gateway(self, gateway: Gateway) -> tuple[int, bool]:
        now = self._deps.clock()
        channel = gateway.channel
        async with self._uow() as uow:
            bucket, filled_at = await uow.store.bucket(channel)
            # No more than can be sent at once: every claimed row is on its way at once, and answered (or timed out)
            # well within its lease, so no other process ever takes a slow send for a stopped one.
            allowance = min(self._settings.batch, self._settings.concurrency, gateway.rate.available(bucket, filled_at))
            claimed = await uow.store.claim_due(channel, now, self._settings.holder, self._settings.lease, allowance)
            going, held = [], set()
            for item in claimed:
                if await self._withheld(uow, item, now):
                    held.add(item.delivery.message_id)
                else:
                    going.append(item)
                    await uow.store.start_attempt(item.delivery.id, item.delivery.attempts, self._settings.holder, now)
            await refresh_messages(uow, held, now)
            await uow.store.save_bucket(channel, gateway.rate.spend(bucket, filled_at, len(going)))
            await uow.commit()
        await asyncio.gather(*(self._send(gateway, item) for item in going))
        return len(claimed), 0 < allowance <= len(claimed)

    async def _send(self, gateway: Gateway, item: Outgoing) -> None:
        delivery = item.delivery
        async with self._slots:
            try:
                async with asyncio.timeout(self._settings.lease.total_seconds() / 2):
                    result = await gateway.send(OutgoingMessage(delivery.id, delivery.attempts, delivery.recipient,
                                                                item.body, item.subject, item.template))  # fmt: skip
            except TimeoutError:
                result = Transient(f"the {gateway.channel} call took over half its lease", ambiguous=True)
            except Exception as exc:  # noqa: BLE001 - a gateway bug must not lose the row: it is retried
                result = Transient(f"the {gateway.channel} client failed: {type(exc).__name__}", ambiguous=True)
        self._figures.attempts.labels(gateway.channel, _outcome(result)).inc()
        try:
            await self.record(item, result)
        except Exception as exc:  # noqa: BLE001 - the row stays 'sending'; its lease decides what happens
            log.warning("could not record the answer for delivery %s: %s", delivery.id,
                        scrub(f"{type(exc).__name__}: {exc}"))  # fmt: skip

    async def record(self, item: Outgoing, result: SendResult) -> None:
        """Record the gateway's answer to one attempt, if that attempt still owns the row."""
        attempt = item.delivery.attempts
        async with self._uow() as uow:
            now = self._deps.clock()
            await uow.store.end_attempt(item.delivery.id, attempt, _outcome(result), _detail(result), now)
            current = await uow.store.delivery(item.delivery.id)
            if current is None or current.attempts != attempt or reported_first(current.status, result):
                await uow.commit()  # a newer attempt or a status report owns it now; this answer is history only
                return
            change = after_send(current.status, attempt, result, now, self._settings.retry, self._jitter(),
                                current.retries_from)
            not_before = current.not_before
            if change.status == QUEUED and change.not_before is not None:
                # As when it was first queued: an owner's message, or the programme office's alert, waits out quiet
                # hours on a phone unless urgent or critical.
                urgent = current.channel not in PHONE_CHANNELS or any_hour(item.template, current.critical)
                not_before = next_send_time(change.not_before, self._deps.rules.quiet, urgent=urgent)
            # A status report that came first (a failure) keeps its reason: the gateway's acceptance says nothing new.
            kept = change.status == current.status and change.reason is None
            updated = replace(current, status=change.status, reason=current.reason if kept else change.reason,
                              not_before=not_before, provider_id=change.provider_id or current.provider_id)  # fmt: skip
            moved = await self._save_for_current_number(uow, updated, now, falling_back=change.fallback)
            if change.fallback and not moved:
                await fall_back(uow, self._deps, updated, now)
            await refresh_message(uow, current.message_id, now)
            await uow.commit()
        if isinstance(result, Rejected | Transient):
            log.info("delivery %s on %s, attempt %d: %s -> %s", item.delivery.id, item.delivery.channel, attempt,
                     _outcome(result), change.status)  # fmt: skip


    async def _save_for_current_number(self, uow: NotifierUnitOfWork, delivery: Delivery, now: datetime, *,
                                       falling_back: bool = False) -> bool:  # fmt: skip
        """Save this delivery, to be tried again or to fall back. The owner's number may have changed while it was in
        flight (the contact's change readdressed what was queued, not this one): then it is withheld instead and its
        message planned for the new number, and this answers True."""
        moved_to = await owners_new_phone(uow, delivery) if delivery.status == QUEUED or falling_back else None
        if moved_to is not None and delivery.status == QUEUED:
            delivery = replace(delivery, status=WITHHELD, reason=NUMBER_CHANGED)
        await uow.store.save_delivery(delivery, now)
        if moved_to is not None:
            await readdress(uow, self._deps, [delivery.message_id], moved_to)
        return moved_to is not None


async def _first(stop: asyncio.Event, wake: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()

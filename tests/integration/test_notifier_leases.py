"""Delivery leases on a real PostgreSQL when notifier processes' clocks disagree: a lease is set and runs out on the
database's clock, so a process whose own clock runs ahead never takes a row another still holds (an email sent twice,
a WhatsApp marked unknown), and one whose clock runs behind still recovers a row whose holder stopped."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from services.notifier import handlers
from services.notifier.channels import SendResult
from services.notifier.delivery import DeliveryWorker, WorkerSettings
from services.notifier.domain.channels import AT_LEAST_ONCE, AT_MOST_ONCE, Guarantee
from services.notifier.store import Outgoing
from tests.gateways.notifier import Clock, Notifier, notifier, whatsapp_client
from tests.integration.test_notifier_guarantees import matched

pytestmark = pytest.mark.integration


LEASE = timedelta(seconds=30)
SKEW = timedelta(seconds=45)  # between two hosts' clocks: more than the lease


class AnswersLate(DeliveryWorker):
    """A worker whose gateway has answered and which has not recorded the answer yet (a slow database, a pause; or,
    if it never does, a process that stopped): until `answer`, the row is `sending` under its lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[tuple[Outgoing, SendResult]] = []

    async def record(self, item: Outgoing, result: SendResult) -> None:
        self.held.append((item, result))

    async def answer(self) -> None:
        for item, result in self.held:
            await super().record(item, result)


def on_host(n: Notifier, holder: str, clock: Clock, *, lease: timedelta = LEASE,
            cls: type[DeliveryWorker] = DeliveryWorker) -> Any:  # fmt: skip
    """A worker of another notifier process on the same database, whose host's clock says `clock`."""
    settings = WorkerSettings(holder=holder, batch=50, concurrency=8, lease=lease, poll_seconds=0.1, retry=n.retry)
    return cls(n.uow, n.gateways, n.files, replace(n.deps, clock=clock), settings, n.figures, jitter=lambda: 0.0)


@pytest.mark.parametrize("guarantee", [AT_MOST_ONCE, AT_LEAST_ONCE])
async def test_a_process_whose_clock_runs_ahead_never_recovers_a_row_another_holds_under_a_live_lease(
        database_url, cloud, guarantee: Guarantee) -> None:  # fmt: skip
    api, server = cloud
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url, guarantee=guarantee)}) as n:
        await n.handle(handlers.funding_offer, matched("+6281344440001"))
        holding: AnswersLate = on_host(n, "host-a:101", n.clock, cls=AnswersLate)
        await holding.pass_once()
        assert len(api.sent) == 1 and len(holding.held) == 1  # sent; the answer not recorded yet

        # host-b's clock is 45 s fast (the same as host-a's being 45 s slow): by it, host-a's 30 s lease ran out
        # long ago. By the database's clock it has just begun, and only that counts.
        ahead = on_host(n, "host-b:202", Clock(n.clock.now + SKEW))
        await ahead.recover()
        await ahead.pass_once()
        [row] = await n.deliveries()
        assert (row["status"], row["holder"], row["attempts"]) == ("sending", "host-a:101", 1)
        assert len(api.sent) == 1  # not sent again (at-least-once) and not marked unknown (at-most-once)

        await holding.answer()  # host-a, its lease still live, records WhatsApp's answer
        [row] = await n.deliveries()
        assert (row["status"], row["message_status"], row["attempts"]) == ("sent", "sent", 1)
        attempts = await n.fetch("SELECT attempt, holder, outcome FROM send_attempt")
        assert [tuple(a) for a in attempts] == [(1, "host-a:101", "accepted")]
        assert n.figures.stranded.labels("whatsapp", "unknown")._value.get() == 0


async def test_a_lease_runs_out_on_the_databases_clock_and_a_process_whose_clock_runs_behind_recovers_the_row(
        database_url, cloud) -> None:  # fmt: skip
    api, server = cloud
    lease = timedelta(seconds=4)  # short, to wait it out for real
    async with notifier(database_url, {"whatsapp": whatsapp_client(api, server.url)}) as n:
        await n.handle(handlers.funding_offer, matched("+6281344440002"))
        stopped: AnswersLate = on_host(n, "host-a:101", n.clock, lease=lease, cls=AnswersLate)
        await stopped.pass_once()  # and never records the answer: its process stopped
        # The lease was set from the database's clock, whatever host-a's says (the test's clock is weeks off it).
        left = await n.db.fetchval("SELECT lease_until - statement_timestamp() FROM delivery WHERE status = 'sending'")
        assert timedelta(0) < left <= lease

        slow = Clock(n.clock.now - timedelta(hours=1))  # host-b's clock is an hour slow: no matter
        behind = on_host(n, "host-b:202", slow)
        assert await behind.recover() == 0  # not yet
        recovered = 0
        for _ in range(100):
            if recovered := await behind.recover():
                break
            await asyncio.sleep(0.1)
        assert recovered == 1, "the row was never recovered after its lease ran out"
        [row] = await n.deliveries()
        assert (row["status"], row["message_status"]) == ("unknown", "unknown")  # WhatsApp: at-most-once
        assert "host-a:101 stopped after sending attempt 1" in row["reason"] and len(api.sent) == 1
        ran_out = await n.db.fetchval("SELECT finished_at FROM send_attempt WHERE outcome = 'lost'")
        assert ran_out == slow.now  # the times it records are still its own

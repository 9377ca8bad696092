"""A short chaos run (chaos/, `python -m chaos` for the full one) on the session's PostgreSQL and Kafka: the registry
and two replicas each of funding and the notifier as processes, about a thousand events of load through their
HTTP APIs, and five faults: the registry killed -9 while its relay is mid-batch in an import, funding's relay lease
holder killed -9, a notifier replica killed -9, the services' database sessions cut under running transactions,
and a funding replica frozen past its Kafka session timeout. The session's PostgreSQL and Kafka are shared with
other tests, so they are not restarted here; the full run restarts its own."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path

import pytest

from chaos.faults import FREEZE, KILLS, PG_CUT
from chaos.report import render
from chaos.run import Config, run_chaos
from chaos.system import SERVICES, Target
from tests.support import Infra, drop_database, fresh_database

pytestmark = pytest.mark.e2e


async def test_a_short_chaos_run_loses_nothing_and_duplicates_nothing(infra: Infra, tmp_path: Path, capsys):
    seed = int(os.environ.get("BERDAYA_CHAOS_SEED", "7"))
    databases = {service: await fresh_database(infra.postgres_url) for service in SERVICES}
    try:
        target = Target(infra.postgres_url, infra.kafka, f"chaos-{uuid.uuid4().hex[:8]}", databases, tmp_path)
        result = await run_chaos(target, Config.short(seed=seed), say=lambda _: None)
    finally:
        for url in databases.values():
            await drop_database(infra.postgres_url, url)
    with capsys.disabled():
        print("\n" + render(result))

    made = Counter(i.fault.kind for i in result.injected if i.ok)
    assert sum(made[k] for k in KILLS) >= 1 and made[PG_CUT] >= 1 and made[FREEZE] >= 1, made
    assert any(i.fault.kind == FREEZE and i.detail.startswith("funding") for i in result.injected)
    assert result.settled.settled, "the system did not settle: every outbox empty and every consumer's lag 0"
    assert not result.failures, "\n".join(
        f"[{f.section}] {f.label}: {f.value} e.g. {f.evidence}" for f in result.failures
    )

"""The halal pathway's stall sweep on a real PostgreSQL: a business that closed while its pathway waited is neither
chased with a PathwayStalled nor counted among the stalled pathways operators watch."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.training import halal_pathway
from services.training.domain.pathway import StepForm
from services.training.queries import TrainingQueries
from services.training.seating import Deps
from berdaya.stack.postgres import database_url
from shared.db import open_database
from shared.reference.wilayah import kota_kupang
from tests.integration.races import two_connections
from tests.integration.test_training_seating_races import DEPS, applied, joined
from tests.unit.training_fakes import ALAK, OEBOBO, OFFICER, FixedClock, business_closed, registered, updated

pytestmark = pytest.mark.integration


async def test_a_business_closed_while_its_pathway_waited_is_not_reported_stalled(infra):
    async with two_connections(infra, "training") as (conn, _):
        still_open, closing = registered(), registered()
        await applied(conn, still_open, closing)
        for b in (still_open, closing):
            form = StepForm(step="nib", done_on=date(2026, 3, 1))
            async with conn.transaction():
                await halal_pathway.record_step(halal_pathway.RecordStep(b.business_id, form, OFFICER), joined(conn),
                                                DEPS)  # fmt: skip
        await applied(conn, business_closed(closing.business_id, 2))

        later = Deps(wilayah=kota_kupang(), clock=FixedClock(datetime(2026, 4, 1, 2, tzinfo=UTC)))
        async with conn.transaction():
            assert await halal_pathway.flag_stalled_pathways(lambda: joined(conn), later) == 1

        stalled = await conn.fetch("SELECT business_id FROM pathway WHERE stalled_for IS NOT NULL")
        assert [r["business_id"] for r in stalled] == [still_open.business_id]

        # A business that closes after its stall was reported leaves the figure operators watch.
        await applied(conn, business_closed(still_open.business_id, 2))
        db = await open_database(database_url(infra.postgres_url, await conn.fetchval("SELECT current_database()")))
        try:
            assert await TrainingQueries(db, kota_kupang()).stalled_by_step() == []
        finally:
            await db.close()


async def test_a_business_that_moved_while_its_pathway_waited_is_chased_and_listed_in_its_new_kecamatan(infra):
    async with two_connections(infra, "training") as (conn, _):
        moving = registered(kecamatan_code=OEBOBO)
        await applied(conn, moving)
        async with conn.transaction():
            await halal_pathway.record_step(halal_pathway.RecordStep(
                moving.business_id, StepForm(step="nib", done_on=date(2026, 3, 1)), OFFICER), joined(conn), DEPS)  # fmt: skip
        await applied(conn, updated(moving.business_id, 2, changed=("kecamatan",), kecamatan_code=ALAK))

        later = Deps(wilayah=kota_kupang(), clock=FixedClock(datetime(2026, 4, 1, 2, tzinfo=UTC)))
        async with conn.transaction():
            assert await halal_pathway.flag_stalled_pathways(lambda: joined(conn), later) == 1

        # The PathwayStalled is made from the pathway as the sweep read it, which is saved with its stall.
        chased = await conn.fetchval("SELECT kecamatan_code FROM pathway WHERE business_id = $1", moving.business_id)
        assert chased == ALAK, "Alak's officers are told, who can act for the business now"
        db = await open_database(database_url(infra.postgres_url, await conn.fetchval("SELECT current_database()")))
        try:
            queries = TrainingQueries(db, kota_kupang())
            listed = {k: [p.business_id for p in await queries.pathways(kecamatan_code=k, stalled=None, page=1,
                                                                         page_size=50)] for k in (ALAK, OEBOBO)}  # fmt: skip
        finally:
            await db.close()
        assert listed == {ALAK: [moving.business_id], OEBOBO: []}

"""What partners report back, on real PostgreSQL: a sponsor's report counts each referral's outcome as funding
recorded it last (a correction may carry an earlier date than the mistake it corrects), and an outcome dated in the
future is refused without being recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.funding import handlers
from services.funding.domain import offers
from services.funding.domain.pledges import Pledge
from services.funding.matching import Deps
from services.funding.queries import FundingQueries
from services.funding.store import PartnerOutcome
from services.funding.store_pg import PgFundingStore, PgFundingUnitOfWork
from shared.contracts import new_envelope
from shared.contracts.public import FinancingApproved
from shared.db import Database
from shared.messaging.consumer import Delivery, Failure, RecordRefused, classify
from shared.reference.wilayah import kota_kupang
from shared.reference.wita import today_in_kupang
from shared.unit_of_work import Cause
from tests.unit.fakes import FixedClock
from tests.integration.test_funding_sweep import PUBLISHER, db  # noqa: F401 - `db` is a fixture
from tests.unit.funding_fakes import NOW, pledge, view

pytestmark = pytest.mark.integration

TOPIC = "partner.bri.outcomes.v1"
REFERRALS = 5  # fewer would be suppressed in the report


async def record(db: Database, deps: Deps, *events: FinancingApproved) -> None:
    deliveries = [Delivery(new_envelope(e, producer="bri", correlation_id=uuid.uuid4()), e, TOPIC) for e in events]
    await handlers.record_partner_outcomes(deliveries, PgFundingUnitOfWork(db, PUBLISHER, Cause.timer("test")), deps)


async def referred_offers(db: Database) -> tuple[Pledge, list[offers.Offer]]:
    """A pledge whose offers to REFERRALS businesses were each referred to the bank."""
    made = pledge(total_rupiah=REFERRALS * 5_000_000)
    async with db.acquire() as conn:
        store = PgFundingStore(conn)
        await store.add_sponsor(made.sponsor_id, made.sponsor_name, made.sponsor_kind, NOW)
        await store.add_pledge(made)
        _, referred = offers.allocate(made, offers.rank_candidates(made.earmarks, [view() for _ in range(REFERRALS)],
                                                                   NOW.date()), NOW, 14)  # fmt: skip
        await store.add_offers(referred)
    return made, referred


async def test_the_report_counts_each_referrals_outcome_as_recorded_last_not_as_dated_last(db) -> None:
    deps = Deps(wilayah=kota_kupang(), clock=FixedClock(datetime.now(UTC)))
    today = today_in_kupang(deps.clock())
    made, referred = await referred_offers(db)
    consents = [uuid.uuid4() for _ in referred]

    def approved(i: int, amount: int, on_day: int) -> FinancingApproved:
        return FinancingApproved(partner_id="bri", consent_id=consents[i], offer_id=referred[i].id,
                                 amount_rupiah=amount, approved_on=today + timedelta(days=on_day))  # fmt: skip

    # The bank approved Rp30 juta dated today by mistake, then corrected it: Rp25 juta, approved yesterday. For two
    # referrals the correction came in the same batch as the mistake (one transaction: one recorded_at).
    await record(db, deps, *(approved(i, 30_000_000, 0) for i in range(3)))
    await record(db, deps, *(approved(i, 25_000_000, -1) for i in range(3)))
    await record(db, deps, *(e for i in (3, 4) for e in (approved(i, 30_000_000, 1), approved(i, 25_000_000, -1))))
    with pytest.raises(RecordRefused, match="dated"):  # a typo years ahead is refused, not recorded
        await record(db, deps, approved(0, 99_000_000, 36 * 365))

    report = await FundingQueries(db, kota_kupang()).report("pledge", [made])

    [row] = report.partner_outcomes
    assert (row.partner_id, row.kind, row.businesses, row.amount_rupiah) == (
        "bri", "approved", REFERRALS, REFERRALS * 25_000_000)
    assert await db.fetchval("SELECT count(*) FROM partner_outcome WHERE amount_rupiah = 99000000") == 0


async def test_outcomes_of_one_offer_under_many_consents_count_once_in_the_sponsors_report(db) -> None:
    # A referral made twice (the owner's consent recorded again), or a partner's system re-keying its records, or one
    # inflating its figures, reported the same offer's financing under new consent ids: each counted again.
    deps = Deps(wilayah=kota_kupang(), clock=FixedClock(datetime.now(UTC)))
    today = today_in_kupang(deps.clock())
    made, referred = await referred_offers(db)

    def approved(offer: offers.Offer, amount: int) -> FinancingApproved:
        return FinancingApproved(partner_id="bri", consent_id=uuid.uuid4(), offer_id=offer.id, amount_rupiah=amount,
                                 approved_on=today)  # fmt: skip

    await record(db, deps, *(approved(offer, 20_000_000) for offer in referred))
    await record(db, deps, *(approved(referred[0], 10**15) for _ in range(10)))
    await record(db, deps, approved(referred[0], 25_000_000))  # the last word on that offer

    [row] = (await FundingQueries(db, kota_kupang()).report("pledge", [made])).partner_outcomes
    assert (row.businesses, row.amount_rupiah) == (REFERRALS, (REFERRALS - 1) * 20_000_000 + 25_000_000)


async def test_a_value_postgresql_cannot_hold_is_the_records_fault_so_it_is_dead_lettered_not_retried_for_ever(db):
    # asyncpg refuses an argument too large for its column before sending it. Were that a connection's failure (an
    # InterfaceError, as some of asyncpg's own are), such a record would be retried without end, holding its partition.
    async with db.acquire() as conn:
        with pytest.raises(Exception) as refused:
            await PgFundingStore(conn).add_partner_outcome(PartnerOutcome(
                uuid.uuid4(), "bri", uuid.uuid4(), None, "disbursed", 10**19, datetime.now(UTC).date()))  # fmt: skip
    assert classify(refused.value) is Failure.RECORD

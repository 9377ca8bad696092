"""What time brings: reminders of offers about to expire, and sponsors' weekly digests (bootstrap.py sweeps)."""

from __future__ import annotations

from services.notifier.domain import texts
from services.notifier.domain.digest import (
    digest_due,
    digest_event_id,
    pledge_week,
    reminder_event_id,
    week_bounds,
    worth_a_digest,
)
from services.notifier.domain.messages import compose, to_sponsor
from services.notifier.recording import Deps, UnitOfWorkFactory, owner_phone, record


async def remind_offers(unit_of_work: UnitOfWorkFactory, deps: Deps, batch: int = 200) -> int:
    """Owners whose offer is still open `reminder_lead` before it expires get one reminder (an offer made with less
    time than that left gets none: its own message is fresh), `batch` offers a transaction until none is left. Every
    process may sweep: the reminder's event id is derived from the offer, so two sweeps record one."""
    now = deps.clock()
    reminded = 0
    while True:
        before = reminded
        async with unit_of_work() as uow:
            offers = await uow.store.offers_to_remind(now, deps.rules.reminder_lead, batch)
            await uow.store.hold_owners([o.business_id for o in offers], changing=False)
            for offer in offers:
                body = texts.offer_reminder_text(offer.business_name, offer.amount_rupiah, offer.instrument,
                                                 offer.financing_programme, offer.sponsor_name,
                                                 offer.expires_at)  # fmt: skip
                phone = await owner_phone(uow, offer.business_id, offer.contact_phone)
                message = compose("offer_reminder", body, offer.business_id, phone,
                                  reminder_event_id(offer.offer_id), deps.new_id(), now, offer_id=offer.offer_id,
                                  deadline=offer.expires_at)  # fmt: skip
                reminded += await record(uow, deps, message)
            await uow.commit()
        if len(offers) < batch or reminded == before:  # the last page, or one another sweep recorded first
            return reminded


async def send_digests(unit_of_work: UnitOfWorkFactory, deps: Deps) -> int:
    """Each sponsor's digest of last week, once, after this week's digest moment (Monday 08.00 WITA by default)."""
    now = deps.clock()
    monday = digest_due(now, deps.digest_weekday, deps.digest_hour)
    if monday is None:
        return 0
    recorded = 0
    async with unit_of_work() as uow:
        for sponsor_id in await uow.store.sponsors():
            # Recorded earlier in the week (by any process): reading its pledges and offers again at every sweep,
            # all week, only made the same digest for the database to drop.
            if await uow.store.recorded_since([digest_event_id(sponsor_id, monday)], "sponsor_digest",
                                              week_bounds(monday)[1]):  # fmt: skip
                continue
            pledges = await uow.store.pledges_of(sponsor_id)
            weeks = []
            for pledge in pledges:
                week = pledge_week(pledge, await uow.store.offers_of(pledge.pledge_id), monday)
                if pledge.pledged_at < week_bounds(monday)[1] and worth_a_digest(pledge, week, monday):
                    weeks.append(week)
            if not weeks:
                continue
            sponsor_name = pledges[0].sponsor_name
            message = to_sponsor("sponsor_digest", texts.sponsor_digest_text(sponsor_name, monday, weeks), sponsor_id,
                                 digest_event_id(sponsor_id, monday), deps.new_id(), now,
                                 subject=texts.sponsor_digest_subject(sponsor_name, monday))  # fmt: skip
            recorded += await record(uow, deps, message)
        await uow.commit()
    return recorded

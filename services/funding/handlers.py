"""Funding's use cases: keep the view of businesses, record sponsors and pledges, match, and take offers through
their life. Each runs in one unit of work; money moves only with its pledge locked.

Every handler has the shape of every handler in Berdaya: `async def handle(message, uow, deps)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from services.funding import matching
from services.funding.domain import events, offers, pledges
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge, PledgeForm, SponsorForm
from services.funding.domain.view import BusinessView, updated_view
from services.funding.matching import Deps
from services.funding.store import FundingStore, FundingUnitOfWork, PartnerOutcome, TrainingFact
from shared import idempotency
from shared.auth import Principal
from shared.contracts.envelope import MAX_RUPIAH, ContractError
from shared.contracts.funding import CSRPledged
from shared.contracts.public import FinancingApproved, FinancingDeclined, FinancingDisbursed
from shared.contracts.public import PartnerOutcome as PartnerOutcomeEvent
from shared.contracts.topics import partner_topic
from shared.contracts.registry import BusinessEvent
from shared.contracts.training import TrainingCompleted
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.messaging.consumer import Delivery, RecordRefused
from shared.reference.wita import WITA, today_in_kupang
from shared.unit_of_work import Cause

# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterSponsor:
    form: SponsorForm
    by: Principal


@dataclass(frozen=True)
class MakePledge:
    form: PledgeForm
    by: Principal
    # The client's Idempotency-Key: the same request sent again under it gets the pledge made the first time.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ClosePledge:
    pledge_id: uuid.UUID
    reason: str
    by: Principal


@dataclass(frozen=True)
class AcceptOffer:
    offer_id: uuid.UUID
    by: Principal


@dataclass(frozen=True)
class DeclineOffer:
    offer_id: uuid.UUID
    reason: str
    by: Principal


@dataclass(frozen=True)
class DisburseOffer:
    offer_id: uuid.UUID
    reference: str
    by: Principal


@dataclass(frozen=True)
class WithdrawOffer:
    offer_id: uuid.UUID
    reason: str
    by: Principal


def require_sponsor(by: Principal, sponsor_id: uuid.UUID) -> None:
    """A sponsor officer acts only for the sponsor its token names."""
    if not by.acts_for_sponsor(sponsor_id):
        raise Forbidden(f"your token acts for sponsor {by.sponsor_id}, not {sponsor_id}; a sponsor acts only for itself")


# ---------------------------------------------------------------------------------------------------------------
# The view of businesses, from registry and training events
# ---------------------------------------------------------------------------------------------------------------


async def apply_registry_events(batch: Sequence[Delivery], uow: FundingUnitOfWork, deps: Deps) -> None:
    """A batch of registry events: the view rows locked in id order, each event applied in turn (older versions
    change nothing), the views written at once, then one settlement for the businesses whose facts changed.

    A business whose last event here is history read again after a rebuild only has its view rebuilt: read in
    batches, that history shows it as it was (in another kecamatan, or not yet grown out of an earmark), and matching
    on it would offer a pledge's money to a business that no longer qualifies. It is settled once the view has
    caught up (`settle_caught_up`)."""
    async with uow:
        views = await uow.store.lock_views([d.payload.business_id for d in batch])  # type: ignore[attr-defined]
        before = dict(views)  # read under the lock with their trainings and offers taken up
        changed: dict[uuid.UUID, Cause] = {}
        replayed: dict[uuid.UUID, bool] = {}
        written: list[BusinessView] = []
        for delivery in batch:
            event: BusinessEvent = delivery.payload  # type: ignore[assignment]
            view = updated_view(views.get(event.business_id), event, delivery.envelope.occurred_at)
            if view is not None:
                views[event.business_id] = view
                written.append(view)
                changed[event.business_id] = Cause.delivery(delivery)
            replayed[event.business_id] = delivery.replayed
        # Every version, in order, in one round trip: a write the database refuses still fails its own event.
        await uow.store.save_views(written)
        changed = {b: c for b, c in changed.items() if not replayed[b]}
        # The views read under the lock need no second read (the lock keeps training's consumer out, and a registry
        # event changes neither trainings nor offers); a business new to funding is read back whole.
        await _settle(changed, uow, deps, {i: views[i] for i in changed if i in before}, before)
        await uow.commit()


async def apply_training_events(batch: Sequence[Delivery], uow: FundingUnitOfWork, deps: Deps) -> None:
    """A batch of training events: completed topics recorded (kept even for a business funding has not heard of
    yet), then the businesses they make eligible are matched."""
    async with uow:
        # Locked like the registry consumer locks them, so a business closing meanwhile can't get a new offer.
        await uow.store.lock_views([d.payload.business_id for d in batch])  # type: ignore[attr-defined]
        changed: dict[uuid.UUID, Cause] = {}
        for delivery in batch:
            event: TrainingCompleted = delivery.payload  # type: ignore[assignment]
            fact = TrainingFact(event.business_id, event.topic, event.cohort_id, event.programme_id, event.completed_on,
                                event.participant_version, event.assessment)  # fmt: skip
            # History read again after a rebuild is only recorded: the business may not be in the view yet as it now
            # stands. It is settled once both consumers have caught up.
            if await uow.store.add_training(fact) and not delivery.replayed:
                changed[event.business_id] = Cause.delivery(delivery)
        await _settle(changed, uow, deps)
        await uow.commit()


async def settle_caught_up(business_ids: Sequence[uuid.UUID], uow: FundingUnitOfWork, deps: Deps) -> None:
    """Once a rebuilt view has caught up on the registry's and training's topics: what their history would have set
    off for these businesses, done once, on the view as it now stands (a closed one's offers withdrawn, an eligible
    one offered what open pledges can afford)."""
    async with uow:
        views = await uow.store.lock_views(sorted(business_ids))
        await matching.settle([(v, uow.cause) for v in views.values()], uow, deps)
        await uow.commit()


async def rank_after_catch_up(uow_factory: Callable[[], FundingUnitOfWork], deps: Deps) -> None:
    """Once a rebuilt view has caught up: the matching put off while it read history (`matching.refill`), done on the
    whole view, each open pledge in its own unit of work: a pledge made meanwhile is ranked, money given back by a
    decline or an expiry is offered to the next in line. A pledge with nothing to do changes nothing."""
    async with uow_factory() as uow:
        pledges = await uow.store.unclosed_pledges()
    for first_look in pledges:
        if not first_look.open_on(today_in_kupang(deps.clock())):
            continue
        async with uow_factory() as uow:
            # Not ranked yet: ranked as a new pledge is, with the ranking lock alone.
            pledge = await (_locked_pledge if first_look.matched_in_window else _pledge_to_rank)(uow.store, first_look.id)
            await matching.refill(pledge, uow, deps, deps.clock())
            await uow.commit()


async def _settle(changed: dict[uuid.UUID, Cause], uow: FundingUnitOfWork, deps: Deps,
                  known: dict[uuid.UUID, BusinessView] | None = None,
                  before: dict[uuid.UUID, BusinessView] | None = None) -> None:  # fmt: skip
    """`known`: views already whole and locked; the others are read back (trainings and offers taken up come from
    their own tables). `before`: the views as the batch found them."""
    if not changed:
        return
    views = dict(known or {})
    missing = [i for i in changed if i not in views]
    if missing:
        views.update(await uow.store.lock_views(missing))
    await matching.settle([(views[i], cause) for i, cause in changed.items() if i in views], uow, deps, before)


# ---------------------------------------------------------------------------------------------------------------
# Sponsors and pledges
# ---------------------------------------------------------------------------------------------------------------


async def register_sponsor(cmd: RegisterSponsor, uow: FundingUnitOfWork, deps: Deps) -> uuid.UUID:
    """Recorded by the programme office (a city-wide officer, or an admin): a sponsor's name is taken once, and an
    officer of one kecamatan recording "Bank NTT" first would keep the bank itself out."""
    if cmd.by.limited_to_kecamatan and "admin" not in cmd.by.roles:
        raise Forbidden("sponsors are recorded by the programme office, for the whole city; your token acts in "
                        f"kecamatan {', '.join(sorted(cmd.by.kecamatan_codes))} only: ask a city-wide officer")  # fmt: skip
    sponsor_id = deps.new_id()
    async with uow:
        existing = await uow.store.add_sponsor(sponsor_id, cmd.form.name, cmd.form.kind, deps.clock())
        if existing:
            raise Conflict(f"a sponsor named {cmd.form.name!r} already exists", "sponsor_exists",
                           {"existing_sponsor_id": str(existing)})  # fmt: skip
        await uow.commit()
    return sponsor_id


async def make_pledge(cmd: MakePledge, uow: FundingUnitOfWork, deps: Deps) -> Pledge:
    require_sponsor(cmd.by, cmd.form.sponsor_id)
    now = deps.clock()
    async with uow:
        sponsor = await uow.store.sponsor(cmd.form.sponsor_id)
        if sponsor is None:
            raise InvalidInput.one("sponsor_id", "sponsor.unknown", "no such sponsor; ask the programme office to record it")
        pledge_id = deps.new_id()
        # The key is looked up before the form is checked against today: a retry after midnight of a pledge valid
        # for one day gets the pledge made the first time, not a refusal of its window. A refused form rolls the
        # claim back with it.
        if earlier := await idempotency.made_before(uow.store.claim_pledge_request, uow.store.pledge, cmd.by.actor,
                                                    cmd.idempotency_key, cmd.form, pledge_id, "pledge"):  # fmt: skip
            return earlier
        pledge = pledges.new_pledge(cmd.form, deps.wilayah, today_in_kupang(now), pledge_id=pledge_id, sponsor=sponsor,
                                    created_at=now)  # fmt: skip
        await uow.store.add_pledge(pledge)
        # Matching happens when this event comes back from Kafka: the request stays fast, and a crash after the
        # commit still gets the pledge matched.
        uow.emit(events.PledgeMade(pledge))
        await uow.commit()
    return pledge


async def match_pledge(event: CSRPledged, uow: FundingUnitOfWork, deps: Deps) -> None:
    """A new pledge is matched against every eligible business already known when its CSRPledged comes back."""
    async with uow:
        await matching.refill(await _pledge_to_rank(uow.store, event.pledge_id), uow, deps, deps.clock())
        await uow.commit()


async def close_pledge(cmd: ClosePledge, uow: FundingUnitOfWork, deps: Deps) -> Pledge:
    """No more offers; unanswered offers are withdrawn, accepted ones stay to be disbursed."""
    async with uow:
        pledge = await _locked_pledge(uow.store, cmd.pledge_id)
        require_sponsor(cmd.by, pledge.sponsor_id)
        pledge = await _close(pledge, cmd.reason, uow, deps)
        await uow.commit()
    return pledge


async def _close(pledge: Pledge, reason: str, uow: FundingUnitOfWork, deps: Deps) -> Pledge:
    now = deps.clock()
    for offer in await uow.store.unanswered_offers(pledge.id):
        if offer.expires_at <= now:  # its time ran out before the close, whether or not the expiry sweep got to it
            pledge, offer = offers.expire(pledge, offer, now)
        else:
            pledge, offer = offers.release(pledge, offer, "withdrawn", now, "the pledge was closed")
        await uow.store.save_offer(offer)
        uow.emit(events.OfferDecided(offer))
    pledge = pledges.close_pledge(pledge, reason, now)
    await uow.store.save_pledge(pledge)
    uow.emit(events.PledgeEnded(pledge))
    return pledge


async def _pledge_to_rank(store: FundingStore, pledge_id: uuid.UUID) -> Pledge:
    """The pledge locked for its first ranked matching: the ranking lock first, alone, so every batch that made a
    business eligible has committed (and the ranking sees it) and every later batch sees the pledge ranked."""
    await store.hold_ranking(alone=True)
    return await _locked_pledge(store, pledge_id)


async def _locked_pledge(store: FundingStore, pledge_id: uuid.UUID) -> Pledge:
    pledges = await store.lock_pledges([pledge_id])
    if not pledges:
        raise NotFound(f"no pledge {pledge_id}")
    return pledges[0]


# ---------------------------------------------------------------------------------------------------------------
# An offer's life, over HTTP
# ---------------------------------------------------------------------------------------------------------------


async def _offer_and_pledge(uow: FundingUnitOfWork, offer_id: uuid.UUID) -> tuple[Offer, Pledge]:
    """Pledge first, then offer: the lock order every path follows."""
    found = await uow.store.offer(offer_id)
    if found is None:
        raise NotFound(f"no offer {offer_id}")
    pledge = await _locked_pledge(uow.store, found.pledge_id)
    offer = await uow.store.offer(offer_id, for_update=True)
    assert offer is not None
    return offer, pledge


_REBUILDING = ("funding does not know business {business} at the moment (its view is being rebuilt, `berdaya replay "
               "funding-view`); try again in a few minutes")


async def _business_in_scope(uow: FundingUnitOfWork, offer: Offer, by: Principal) -> BusinessView | None:
    """An officer answers for businesses of the kecamatan its token allows."""
    business = await uow.store.business(offer.business_id)
    if business is None and by.limited_to_kecamatan:
        # Its kecamatan can't be checked: an officer limited to one must not answer for any business meanwhile.
        raise Conflict(_REBUILDING.format(business=offer.business_id), "business_unknown")
    if business is not None and not by.acts_in_kecamatan(business.kecamatan_code):
        raise Forbidden(f"the business of offer {offer.id} is outside the kecamatan your token allows")
    return business


async def accept_offer(cmd: AcceptOffer, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, cmd.offer_id)
        now = deps.clock()  # once the locks are held: the wait for them may cross an expiry or midnight
        business = await _business_in_scope(uow, offer, cmd.by)
        if offers.repeated(offer, "accepted"):
            return offer
        pledge, offer = offers.accept(pledge, offer, business, now)
        await uow.store.save_offer(offer)
        await uow.store.save_pledge(pledge)
        uow.emit(events.OfferDecided(offer))
        await uow.commit()
    return offer


async def decline_offer(cmd: DeclineOffer, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, cmd.offer_id)
        now = deps.clock()  # once the locks are held: the wait for them may cross an expiry or midnight
        await _business_in_scope(uow, offer, cmd.by)
        if offers.repeated(offer, "declined", offers.decline_reason(cmd.reason)):
            return offer
        was = pledge.status
        if offers.lapsed(offer, now):
            # The business did not answer in time: recorded as the sweep would, not as a decision with a reason,
            # and the decline refused once that is committed.
            pledge, offer = offers.expire(pledge, offer, now)
        else:
            pledge, offer = offers.decline(pledge, offer, cmd.reason, now)
        await uow.store.save_offer(offer)
        uow.emit(events.OfferDecided(offer))
        await matching.refill(pledge, uow, deps, now, was)
        await uow.commit()
    if offer.status == "expired":
        raise Conflict(f"offer {offer.id} expired at {offer.expires_at.isoformat()}, before this decline; it is now "
                       "recorded as expired and its money is offered to the next in line", "offer_not_open",
                       {"offer_status": "expired"})  # fmt: skip
    return offer


async def disburse_offer(cmd: DisburseOffer, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, cmd.offer_id)
        now = deps.clock()  # once the locks are held: the wait for them may cross an expiry or midnight
        require_sponsor(cmd.by, pledge.sponsor_id)
        if offers.repeated(offer, "disbursed", cmd.reference.strip()):
            return offer
        pledge, offer = offers.disburse(pledge, offer, cmd.reference, now)
        business = await uow.store.business(offer.business_id)
        if business is None:  # offers are made to businesses of the view, which a rebuild empties for a while
            raise Conflict(_REBUILDING.format(business=offer.business_id), "business_unknown")
        await uow.store.save_offer(offer)
        await uow.store.save_pledge(pledge)
        uow.emit(events.OfferPaid(offer, business, pledge))
        await uow.commit()
    return offer


async def withdraw_offer(cmd: WithdrawOffer, uow: FundingUnitOfWork, deps: Deps) -> Offer:
    """The sponsor will not pay an accepted offer (a business that closed after accepting, say): the money is offered
    to the next in line. A closing business's accepted offers are left for this, or for the payment made already."""
    async with uow:
        offer, pledge = await _offer_and_pledge(uow, cmd.offer_id)
        now = deps.clock()  # once the locks are held
        require_sponsor(cmd.by, pledge.sponsor_id)
        if offers.repeated(offer, "withdrawn", cmd.reason.strip()):
            return offer
        was = pledge.status
        pledge, offer = offers.withdraw_accepted(pledge, offer, cmd.reason, now)
        await uow.store.save_offer(offer)
        uow.emit(events.OfferDecided(offer))
        await matching.refill(pledge, uow, deps, now, was)
        await uow.commit()
    return offer


# ---------------------------------------------------------------------------------------------------------------
# Time passing: offers expire, windows open and close
# ---------------------------------------------------------------------------------------------------------------


async def expire_due_offers(uow_factory: Callable[[], FundingUnitOfWork], deps: Deps, batch: int = 50) -> int:
    """Expire unanswered offers past their date, one pledge per unit of work, and offer the money to the next in line."""
    now = deps.clock()
    async with uow_factory() as uow:
        pledge_ids = await uow.store.pledges_with_due_offers(now, batch)
    expired = 0
    for pledge_id in pledge_ids:
        async with uow_factory() as uow:
            pledge = await _locked_pledge(uow.store, pledge_id)
            now = deps.clock()  # under the lock, for each pledge: the sweep may run long, and cross midnight
            was = pledge.status
            for offer in await uow.store.due_offers(pledge_id, now):
                pledge, offer = offers.expire(pledge, offer, now)
                await uow.store.save_offer(offer)
                uow.emit(events.OfferDecided(offer))
                expired += 1
            await matching.refill(pledge, uow, deps, now, was)
            await uow.commit()
    return expired


async def follow_pledge_windows(uow_factory: Callable[[], FundingUnitOfWork], deps: Deps) -> None:
    """Match pledges whose window has just opened, and once a day those with money left; close those whose window
    has ended."""
    now = deps.clock()
    today = today_in_kupang(now)
    async with uow_factory() as uow:
        starting = await uow.store.pledges_to_start(today)
        rematching = await uow.store.pledges_to_rematch(today)
        ending = await uow.store.pledges_past_window(today)
    # Each pledge is ranked at the time read once its locks are held: a sweep may run long, past the end of a window.
    for pledge_id in starting:
        async with uow_factory() as uow:
            pledge = await _pledge_to_rank(uow.store, pledge_id)
            await matching.refill(pledge, uow, deps, deps.clock())
            await uow.commit()
    # A pledge ranked in its window offers to each business the moment an event makes it eligible (`settle`), but a
    # business can become eligible with no event: on its first anniversary readiness gains its track-record points.
    # Ranked already, so the pledge lock is enough, as for the money an expiry gives back.
    for pledge_id in rematching:
        async with uow_factory() as uow:
            pledge = await _locked_pledge(uow.store, pledge_id)
            now = deps.clock()
            today = today_in_kupang(now)
            midnight = datetime.combine(today, time(0), tzinfo=WITA)
            # Another instance's sweep, or a decline, may have ranked it today meanwhile.
            if pledge.matched_at is not None and today_in_kupang(pledge.matched_at) < today:
                with uow.caused_by(replace(uow.cause, occurred_at=midnight)):  # when time made anyone eligible
                    await matching.refill(pledge, uow, deps, now)
            await uow.commit()
    for pledge_id in ending:
        async with uow_factory() as uow:
            pledge = await _locked_pledge(uow.store, pledge_id)
            if pledge.status != "closed":
                await _close(pledge, "the validity window ended", uow, deps)
            await uow.commit()


# ---------------------------------------------------------------------------------------------------------------
# What partners report back
# ---------------------------------------------------------------------------------------------------------------


# A partner's systems may keep another time zone or a clock a little ahead; a date later than this is a mistake.
OUTCOME_CLOCK_SKEW = timedelta(days=1)


async def record_partner_outcomes(batch: Sequence[Delivery], uow: FundingUnitOfWork, deps: Deps) -> None:
    """A partner writes only its own outcomes topic (its credentials allow nothing else); an event claiming another
    partner, or dated in the future, is refused as the record's own permanent fault: it goes to the dead-letter
    topic at its first attempt, for someone to look at, and holds up no other partner's outcomes (they all share
    one consumer)."""
    latest = today_in_kupang(deps.clock()) + OUTCOME_CLOCK_SKEW
    async with uow:
        for delivery in batch:
            event: PartnerOutcomeEvent = delivery.payload  # type: ignore[assignment]
            own = partner_topic(event.partner_id, "outcomes")
            if delivery.topic != own and not delivery.topic.endswith(f".{own}"):
                raise RecordRefused(f"an outcome claiming partner {event.partner_id!r} arrived on {delivery.topic}")
            kind, amount, on = _outcome(event)
            if amount is not None and amount > MAX_RUPIAH:  # the contract leaves it unbounded; PostgreSQL's bigint not
                raise RecordRefused(f"the {kind} outcome of consent {event.consent_id} is Rp{amount:,}, over "
                                    f"Rp{MAX_RUPIAH:,}: a mistake; send it again with the amount lent")  # fmt: skip
            if on > latest:
                raise RecordRefused(f"the {kind} outcome of consent {event.consent_id} is dated {on.isoformat()}, "
                                    f"after {latest.isoformat()}: a date in the future is a mistake; send it again "
                                    "with the date it happened")  # fmt: skip
            await uow.store.add_partner_outcome(PartnerOutcome(delivery.envelope.event_id, event.partner_id,
                                                               event.consent_id, event.offer_id, kind, amount, on))  # fmt: skip
        await uow.commit()


def _outcome(event: PartnerOutcomeEvent) -> tuple[str, int | None, date]:
    match event:
        case FinancingApproved():
            return "approved", event.amount_rupiah, event.approved_on
        case FinancingDisbursed():
            return "disbursed", event.amount_rupiah, event.disbursed_on
        case FinancingDeclined():
            return "declined", None, event.declined_on
    raise ContractError(f"no outcome in {event!r}")

"""In-memory fakes of funding's store and unit of work, plus builders of views, pledges, events and principals."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from services.funding import handlers, integration
from services.funding.domain.events import DomainEvent, PledgeMade
from services.funding.domain.offers import Offer
from services.funding.domain.pledges import Pledge
from services.funding.domain.view import BusinessView
from services.funding.matching import Deps
from services.funding.store import FundingStore, FundingUnitOfWork, PartnerOutcome, TrainingFact
from shared.auth import Principal
from shared.contracts import Envelope, EventPayload, new_envelope
from shared.contracts.funding import Earmarks
from shared.contracts.registry import (
    BusinessClosed,
    BusinessEvent,
    BusinessRegistered,
    BusinessUpdated,
    NIBApplied,
    NIBIssued,
    NIBRejected,
)
from shared.contracts.topics import FUNDING_PLEDGE
from shared.contracts.training import Assessment, TrainingCompleted
from shared.messaging.audit import AuditEntry
from shared.messaging.consumer import Delivery
from shared.reference.wilayah import kota_kupang
from shared.reference.wita import today_in_kupang
from shared.unit_of_work import Cause, Publisher

from .fakes import FixedClock, SnapshotUnitOfWork

# 2026-03-10 10.00 WITA.
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
TODAY = date(2026, 3, 10)

ALAK, MAULAFA, OEBOBO = "53.71.01", "53.71.02", "53.71.04"
_KECAMATAN = {k.code: k for k in kota_kupang().kecamatan}

SPONSOR_ID = uuid.UUID("00000000-0000-4000-8000-00000000b0b0")
OTHER_SPONSOR_ID = uuid.UUID("00000000-0000-4000-8000-00000000c0c0")

# Who calls: a sponsor officer acts for the sponsor its token names, an officer for the kecamatan its token names
# (none: the whole city), an admin for anyone.
SPONSOR = Principal("kasir@bankntt", frozenset({"sponsor"}), sponsor_id=SPONSOR_ID)
OTHER_SPONSOR = Principal("csr@bri", frozenset({"sponsor"}), sponsor_id=OTHER_SPONSOR_ID)
OFFICER = Principal("petugas.kota", frozenset({"officer"}))
OEBOBO_OFFICER = Principal("petugas.oebobo", frozenset({"officer"}), kecamatan_codes=frozenset({MAULAFA, OEBOBO}))
ALAK_OFFICER = Principal("petugas.alak", frozenset({"officer"}), kecamatan_codes=frozenset({ALAK}))
ADMIN = Principal("admin", frozenset({"admin"}))

_PLEDGE_STATUSES = {"open", "exhausted", "closed"}
_OFFER_STATUSES = {"offered", "accepted", "declined", "expired", "withdrawn", "disbursed"}
_FUNDED = ("accepted", "disbursed")


# ---------------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------------


def view(**overrides: Any) -> BusinessView:
    """An active, youth- and woman-owned food business in Oebobo with an NIB, registered in 2024: readiness 55."""
    defaults: dict[str, Any] = {
        "business_id": uuid.uuid4(), "version": 1, "business_name": "Sei Sapi Ibu Maria",
        "contact_phone": "+6281234567890", "kecamatan_code": OEBOBO, "kbli_code": "10130", "scale": "micro",
        "youth_owned": True, "women_owned": True, "nib_status": "issued", "status": "active",
        "annual_sales_rupiah": 50_000_000, "registered_at": datetime(2024, 1, 15, 1, 0, tzinfo=UTC),
    }  # fmt: skip
    return BusinessView(**{**defaults, **overrides})


def pledge(**overrides: Any) -> Pledge:
    """An open fixed-amount grant of 50,000,000 in offers of 5,000,000, valid March to June 2026, for everyone."""
    defaults: dict[str, Any] = {
        "id": uuid.uuid4(), "sponsor_id": SPONSOR_ID, "sponsor_name": "Bank NTT", "sponsor_kind": "bank",
        "title": "CSR Bank NTT untuk UMKM", "instrument": "grant", "financing_programme": None,
        "total_rupiah": 50_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 5_000_000,
        "min_offer_rupiah": 5_000_000, "valid_from": date(2026, 3, 1), "valid_until": date(2026, 6, 30),
        "earmarks": Earmarks(), "status": "open", "created_at": NOW,
    }  # fmt: skip
    return Pledge(**{**defaults, **overrides})


def _snapshot_fields(business_id: uuid.UUID, version: int, fields: dict[str, Any]) -> dict[str, Any]:
    kecamatan_code = fields.pop("kecamatan_code", OEBOBO)
    kec = _KECAMATAN[kecamatan_code]
    base: dict[str, Any] = {
        "business_id": business_id, "business_version": version, "business_name": "Sei Sapi Ibu Maria",
        "kbli_code": "10130", "kbli_version": 2020, "kecamatan": kec.name, "kecamatan_code": kec.code,
        "kecamatan_bps": kec.bps_code, "kelurahan": "Fatululi", "kelurahan_code": f"{kec.code}.1001",
        "scale": "micro", "scale_basis": "annual_sales", "capital_rupiah": 10_000_000,
        "annual_sales_rupiah": 50_000_000, "youth_owned": True, "women_owned": True, "nib_status": "issued",
        "contact_phone": "+6281234567890", "status": "active",
        "registered_at": datetime(2024, 1, 15, 1, 0, tzinfo=UTC),
    }  # fmt: skip
    return {**base, **fields}


def registered(business_id: uuid.UUID | None = None, **fields: Any) -> BusinessRegistered:
    """A BusinessRegistered (version 1 unless told) with the same defaults as `view`."""
    version = fields.pop("business_version", 1)
    return BusinessRegistered(**_snapshot_fields(business_id or uuid.uuid4(), version, fields), source="officer")


def updated(
    business_id: uuid.UUID, version: int, changed: tuple[str, ...] = ("kecamatan",), **fields: Any
) -> BusinessUpdated:
    return BusinessUpdated(**_snapshot_fields(business_id, version, fields), changed_fields=changed)


def nib_applied(business_id: uuid.UUID, version: int, kecamatan_code: str = OEBOBO) -> NIBApplied:
    return NIBApplied(business_id=business_id, business_version=version, application_id=uuid.uuid4(), applied_at=NOW,
                      kecamatan_code=kecamatan_code)  # fmt: skip


def nib_issued(business_id: uuid.UUID, version: int, kecamatan_code: str = OEBOBO) -> NIBIssued:
    return NIBIssued(business_id=business_id, business_version=version, application_id=uuid.uuid4(),
                     nib="8120000000001", issued_on=TODAY, kecamatan_code=kecamatan_code)  # fmt: skip


def nib_rejected(business_id: uuid.UUID, version: int, kecamatan_code: str = OEBOBO) -> NIBRejected:
    return NIBRejected(business_id=business_id, business_version=version, application_id=uuid.uuid4(),
                       reason="no NPWP", kecamatan_code=kecamatan_code)  # fmt: skip


def business_closed(business_id: uuid.UUID, version: int, kecamatan_code: str = OEBOBO) -> BusinessClosed:
    return BusinessClosed(business_id=business_id, business_version=version, reason="usaha tutup", closed_at=NOW,
                          kecamatan_code=kecamatan_code)  # fmt: skip


def training_completed(
    business_id: uuid.UUID, topic: str = "packaging", version: int = 1, assessment: Assessment | None = None
) -> TrainingCompleted:
    """A TrainingCompleted of the business's participation (version `version`)."""
    return TrainingCompleted(business_id=business_id, participant_version=version, cohort_id=uuid.uuid4(),
                             topic=topic, completed_on=TODAY, assessment=assessment)  # fmt: skip


def delivery(event: EventPayload, occurred_at: datetime | None = None, *, actor: str | None = None) -> Delivery:
    """The event as a consumer hands it on: in a fresh envelope of its producer."""
    producer = "training" if isinstance(event, TrainingCompleted) else "registry"
    envelope = new_envelope(event, producer=producer, correlation_id=uuid.uuid4(), occurred_at=occurred_at or NOW,
                            actor=actor)  # fmt: skip
    return Delivery(envelope, event)


# ---------------------------------------------------------------------------------------------------------------
# Store and unit of work
# ---------------------------------------------------------------------------------------------------------------


class FakeFundingStore(FundingStore):
    """Funding's tables as dicts of frozen dataclasses, with the SQL's constraints checked on every write: a pledge is
    never over-allocated and no counter goes negative, a business gets at most one offer per pledge.

    As in the SQL, a business's row holds only the registry's facts (`rows`); the topics completed come from the
    training facts and funded_count from the offers (accepted or disbursed) whenever a view is read (`businesses`).
    """

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, BusinessView] = {}  # business_view: the registry's facts only
        self.trainings: dict[tuple[uuid.UUID, str], TrainingFact] = {}  # business_training
        self.partner_outcomes: dict[uuid.UUID, PartnerOutcome] = {}  # what partners reported back
        self.sponsors: dict[uuid.UUID, tuple[str, str]] = {}
        self.pledges: dict[uuid.UUID, Pledge] = {}
        self.offers: dict[uuid.UUID, Offer] = {}
        self.locked: list[list[uuid.UUID]] = []  # the ids each lock_pledges call was given, in the order given
        self.view_locks: list[list[uuid.UUID]] = []  # the ids each lock_views call locked, in lock order
        self.steps: list[str] = []  # "ranking alone", "ranking shared", "pledges read", "pledges locked", in order
        self.catching_up = False  # a view consumer is still reading history after a rebuild
        self.pledge_requests: dict[tuple[str, str], tuple[uuid.UUID, bytes]] = {}  # (actor, key): (pledge, fingerprint)

    # State snapshots, used by FakeFundingUnitOfWork to roll back.
    def snapshot(self) -> tuple[dict[Any, Any], ...]:
        return (dict(self.rows), dict(self.trainings), dict(self.sponsors), dict(self.pledges), dict(self.offers),
                dict(self.pledge_requests))  # fmt: skip

    def restore(self, state: tuple[dict[Any, Any], ...]) -> None:
        self.rows, self.trainings, self.sponsors, self.pledges, self.offers, self.pledge_requests = (dict(s) for s in state)

    # Reading a view as VIEW_SELECT does.
    def _read(self, row: BusinessView) -> BusinessView:
        facts = [f for (b, _), f in self.trainings.items() if b == row.business_id]
        scores = [(a.management + a.leadership + a.business_prospects) // 3 for f in facts if (a := f.assessment)]
        funded = sum(o.business_id == row.business_id and o.status in _FUNDED for o in self.offers.values())
        return replace(row, trainings=frozenset(f.topic for f in facts), assessment=max(scores, default=None),
                       funded_count=funded)  # fmt: skip

    @property
    def businesses(self) -> dict[uuid.UUID, BusinessView]:
        """Every view as funding reads it (registry facts, trainings, offers taken up)."""
        return {i: self._read(row) for i, row in self.rows.items()}

    # Helpers for tests.
    def offers_of_pledge(self, pledge_id: uuid.UUID, status: str | None = None) -> list[Offer]:
        found = [o for o in self.offers.values() if o.pledge_id == pledge_id and (status is None or o.status == status)]
        return sorted(found, key=lambda o: (o.offered_at, o.rank or 0, str(o.id)))

    def offer_to(self, pledge_id: uuid.UUID, business_id: uuid.UUID) -> Offer | None:
        return next(
            (o for o in self.offers.values() if o.pledge_id == pledge_id and o.business_id == business_id), None
        )

    # Constraints of 001_funding.sql.
    @staticmethod
    def _check_pledge(p: Pledge) -> None:
        if p.status not in _PLEDGE_STATUSES:
            raise AssertionError(f"pledge status {p.status!r} violates its CHECK")
        if min(p.reserved_rupiah, p.accepted_rupiah, p.disbursed_rupiah) < 0:
            raise AssertionError(f"pledge {p.id} would have a negative counter: {p}")
        if p.reserved_rupiah + p.accepted_rupiah + p.disbursed_rupiah > p.total_rupiah:
            raise AssertionError(f"pledge {p.id} would be over-allocated (pledge_not_over_allocated)")
        if p.valid_until < p.valid_from or p.total_rupiah <= 0 or p.min_offer_rupiah <= 0:
            raise AssertionError(f"pledge {p.id} violates a CHECK")

    # FundingStore: what funding knows of businesses.
    async def lock_views(self, business_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BusinessView]:
        order = sorted(set(business_ids))
        self.view_locks.append(order)
        return {i: self._read(self.rows[i]) for i in order if i in self.rows}

    async def business(self, business_id: uuid.UUID) -> BusinessView | None:
        row = self.rows.get(business_id)
        return self._read(row) if row is not None else None

    async def save_view(self, view: BusinessView) -> None:
        current = self.rows.get(view.business_id)
        if current is not None and current.version >= view.version:
            return  # ... DO UPDATE ... WHERE business_view.version < excluded.version
        # Only the registry's columns are written; trainings and funded_count live in their own tables.
        self.rows[view.business_id] = replace(view, trainings=frozenset(), assessment=None, funded_count=0)

    async def add_training(self, fact: TrainingFact) -> bool:
        key = (fact.business_id, fact.topic)
        current = self.trainings.get(key)
        if current is not None and current.participant_version >= fact.participant_version:
            return False
        self.trainings[key] = fact
        return True

    async def candidates(self, pledge: Pledge) -> list[BusinessView]:
        """Every active business without an offer from the pledge, in no useful order: the domain rules decide."""
        offered = {o.business_id for o in self.offers.values() if o.pledge_id == pledge.id}
        found = [self._read(b) for b in self.rows.values() if b.status == "active" and b.business_id not in offered]
        return list(reversed(found))

    # Sponsors and pledges.
    async def view_catching_up(self) -> bool:
        return self.catching_up

    async def sponsor(self, sponsor_id: uuid.UUID) -> tuple[str, str] | None:
        return self.sponsors.get(sponsor_id)

    async def add_sponsor(self, sponsor_id: uuid.UUID, name: str, kind: str, now: datetime) -> uuid.UUID | None:
        for existing_id, (existing_name, _) in self.sponsors.items():
            if existing_name.lower() == name.lower():
                return existing_id
        self.sponsors[sponsor_id] = (name, kind)
        return None

    async def pledge(self, pledge_id: uuid.UUID) -> Pledge | None:
        return self.pledges.get(pledge_id)

    async def hold_ranking(self, alone: bool) -> None:
        self.steps.append("ranking alone" if alone else "ranking shared")

    async def lock_pledges(self, pledge_ids: Sequence[uuid.UUID]) -> list[Pledge]:
        self.locked.append(list(pledge_ids))
        self.steps.append("pledges locked")
        return sorted((self.pledges[i] for i in set(pledge_ids) if i in self.pledges), key=lambda p: p.id)

    async def unclosed_pledges(self) -> list[Pledge]:
        self.steps.append("pledges read")
        return sorted((p for p in self.pledges.values() if p.status != "closed"), key=lambda p: p.id)

    async def add_pledge(self, pledge: Pledge) -> None:
        if pledge.id in self.pledges:
            raise AssertionError(f"pledge {pledge.id} inserted twice")
        if pledge.sponsor_id not in self.sponsors:
            raise AssertionError(f"pledge {pledge.id} refers to no sponsor (foreign key)")
        self._check_pledge(pledge)
        self.pledges[pledge.id] = pledge

    async def claim_pledge_request(self, actor: str, key: str, fingerprint: bytes,
                                   pledge_id: uuid.UUID) -> tuple[uuid.UUID, bytes]:  # fmt: skip
        return self.pledge_requests.setdefault((actor, key), (pledge_id, fingerprint))

    async def save_pledge(self, pledge: Pledge) -> None:
        current = self.pledges.get(pledge.id)
        if current is None:
            raise AssertionError(f"saving pledge {pledge.id}, which was never added")
        saved = replace(
            current, status=pledge.status, reserved_rupiah=pledge.reserved_rupiah,
            accepted_rupiah=pledge.accepted_rupiah, disbursed_rupiah=pledge.disbursed_rupiah,
            closed_at=pledge.closed_at, close_reason=pledge.close_reason, matched_at=pledge.matched_at,
        )  # fmt: skip
        self._check_pledge(saved)
        self.pledges[pledge.id] = saved

    async def pledges_to_start(self, today: date) -> list[uuid.UUID]:
        return sorted(
            p.id for p in self.pledges.values()
            if p.status != "closed" and p.valid_from <= today <= p.valid_until
            and (p.matched_at is None or today_in_kupang(p.matched_at) < p.valid_from)
        )  # fmt: skip

    async def pledges_to_rematch(self, today: date) -> list[uuid.UUID]:
        return sorted(
            p.id for p in self.pledges.values()
            if p.status == "open" and p.open_on(today) and p.matched_in_window and today_in_kupang(p.matched_at) < today
        )  # fmt: skip

    async def pledges_past_window(self, today: date) -> list[uuid.UUID]:
        return sorted(p.id for p in self.pledges.values() if p.status != "closed" and p.valid_until < today)

    async def pledges_with_due_offers(self, now: datetime, limit: int) -> list[uuid.UUID]:
        due = {o.pledge_id for o in self.offers.values() if o.status == "offered" and o.expires_at <= now}
        return sorted(due)[:limit]

    # Offers.
    async def offer(self, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer | None:
        return self.offers.get(offer_id)

    async def has_offer(self, pledge_id: uuid.UUID, business_id: uuid.UUID) -> bool:
        return self.offer_to(pledge_id, business_id) is not None

    async def add_offers(self, offers: Sequence[Offer]) -> None:
        for o in offers:
            if o.id in self.offers:
                raise AssertionError(f"offer {o.id} inserted twice")
            if o.pledge_id not in self.pledges:
                raise AssertionError(f"offer {o.id} refers to no pledge (foreign key)")
            if self.offer_to(o.pledge_id, o.business_id) is not None:
                raise AssertionError(f"a second offer to {o.business_id} from {o.pledge_id} (offer_once_per_pledge)")
            if o.amount_rupiah <= 0 or o.status not in _OFFER_STATUSES:
                raise AssertionError(f"offer {o.id} violates a CHECK")
            self.offers[o.id] = o

    async def save_offer(self, offer: Offer) -> None:
        current = self.offers.get(offer.id)
        if current is None:
            raise AssertionError(f"saving offer {offer.id}, which was never added")
        if offer.status not in _OFFER_STATUSES:
            raise AssertionError(f"offer status {offer.status!r} violates its CHECK")
        self.offers[offer.id] = replace(current, status=offer.status, decided_at=offer.decided_at, reason=offer.reason,
                                        disbursed_at=offer.disbursed_at, reference=offer.reference)  # fmt: skip

    async def unanswered_offers_of(self, business_ids: Sequence[uuid.UUID]) -> list[Offer]:
        wanted = set(business_ids)
        found = [o for o in self.offers.values() if o.business_id in wanted and o.status == "offered"]
        return sorted(found, key=lambda o: (o.pledge_id, o.id))

    async def due_offers(self, pledge_id: uuid.UUID, now: datetime) -> list[Offer]:
        found = [o for o in self.offers.values()
                 if o.pledge_id == pledge_id and o.status == "offered" and o.expires_at <= now]  # fmt: skip
        return sorted(found, key=lambda o: o.id)

    async def unanswered_offers(self, pledge_id: uuid.UUID) -> list[Offer]:
        return sorted((o for o in self.offers.values() if o.pledge_id == pledge_id and o.status == "offered"),
                      key=lambda o: o.id)  # fmt: skip

    async def add_partner_outcome(self, outcome: PartnerOutcome) -> None:
        self.partner_outcomes.setdefault(outcome.event_id, outcome)


# Funding publishes on its pledge topic; the route is only needed by the outbox, which the fake has none of.
PSEUDONYM_KEY = b"a test key for the businesses' pseudonyms"


def internal(event: DomainEvent) -> list[EventPayload]:
    """The contracts funding's services read (translate also makes each one's public copy for partners)."""
    return [p for p in integration.translate(event, PSEUDONYM_KEY) if not p.aggregate_type.startswith("public_")]


PUBLISHER: Publisher[DomainEvent] = Publisher("funding", internal, lambda _: FUNDING_PLEDGE)


class FakeFundingUnitOfWork(SnapshotUnitOfWork, FundingUnitOfWork):
    """A transaction over a FakeFundingStore. Commit keeps the changes and records what would go to the outbox:
    the domain events and their causes, the contracts they translate to (`committed`, also appended to the shared
    `journal`, if given) and their envelopes. Leaving without commit restores the store's state."""

    def __init__(self, store: FakeFundingStore, journal: list[EventPayload] | None = None,
                 cause: Cause | None = None) -> None:  # fmt: skip
        super().__init__(cause)
        self.store: FakeFundingStore = store
        self.journal = journal if journal is not None else []
        self.committed_events: list[DomainEvent] = []
        self.committed_causes: list[Cause] = []  # in step with committed_events
        self.committed: list[EventPayload] = []
        self.envelopes: list[Envelope] = []  # in step with committed

    @property
    def snapshotted(self) -> FakeFundingStore:
        return self.store

    def record(self, events: list[DomainEvent], causes: list[Cause], audited: list[AuditEntry]) -> None:
        contracts = [payload for event in events for payload in internal(event)]
        self.envelopes += PUBLISHER.envelopes(events, causes)
        self.committed_events += events
        self.committed_causes += causes
        self.committed += contracts
        self.journal.extend(contracts)


class FundingWorld:
    """One funding service over a fake store with a fixed clock: every unit of work it hands out shares the store
    and records what it commits in `published`."""

    def __init__(self, now: datetime = NOW, offer_days: int = 14, store: FakeFundingStore | None = None) -> None:
        self.store = store if store is not None else FakeFundingStore()
        self.clock = FixedClock(now)
        self.matches: list[tuple[Offer, BusinessView, Pledge]] = []
        self.deps = Deps(wilayah=kota_kupang(), clock=self.clock, offer_days=offer_days,
                         matched=lambda *args: self.matches.append(args))  # fmt: skip
        self.published: list[EventPayload] = []
        self.uows: list[FakeFundingUnitOfWork] = []

    def uow(self, cause: Cause | None = None) -> FakeFundingUnitOfWork:
        uow = FakeFundingUnitOfWork(self.store, self.published, cause)
        self.uows.append(uow)
        return uow

    __call__ = uow  # a unit-of-work factory, as expire_due_offers and follow_pledge_windows take

    def of_type(self, name: str) -> list[Any]:
        return [e for e in self.published if type(e).__name__ == name]

    async def add_sponsor(self, sponsor_id: uuid.UUID = SPONSOR_ID, name: str = "Bank NTT", kind: str = "bank") -> None:
        await self.store.add_sponsor(sponsor_id, name, kind, NOW)

    async def add_pledge(self, p: Pledge | None = None, **overrides: Any) -> Pledge:
        """Store a pledge as make_pledge would (not yet matched), registering its sponsor if needed."""
        p = p or pledge(**overrides)
        if p.sponsor_id not in self.store.sponsors:
            await self.store.add_sponsor(p.sponsor_id, p.sponsor_name, p.sponsor_kind, NOW)
        await self.store.add_pledge(p)
        return p

    async def consume_batch(self, deliveries: Sequence[Delivery]) -> FakeFundingUnitOfWork:
        """What the funding-view or funding-training consumer does with a batch of new events (all of one kind)."""
        uow = self.uow(Cause.delivery(deliveries[0]))
        if all(isinstance(d.payload, TrainingCompleted) for d in deliveries):
            await handlers.apply_training_events(deliveries, uow, self.deps)
        else:
            assert all(isinstance(d.payload, BusinessEvent) for d in deliveries), "one consumer's events per batch"
            await handlers.apply_registry_events(deliveries, uow, self.deps)
        return uow

    async def consume(self, event: EventPayload, occurred_at: datetime | None = None) -> FakeFundingUnitOfWork:
        """What the funding-view and funding-training consumers do with a registry or training event."""
        return await self.consume_batch([delivery(event, occurred_at or self.clock())])

    async def register(self, **fields: Any) -> uuid.UUID:
        event = registered(**fields)
        await self.consume(event)
        return event.business_id

    async def match(self, pledge_id: uuid.UUID) -> FakeFundingUnitOfWork:
        """What the funding-matcher consumer does with the pledge's CSRPledged when it comes back."""
        made = self.store.pledges.get(pledge_id) or pledge(id=pledge_id)
        [event] = internal(PledgeMade(made))
        uow = self.uow()
        await handlers.match_pledge(event, uow, self.deps)  # type: ignore[arg-type]
        return uow

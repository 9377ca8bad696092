"""In-memory fakes of the registry's store and unit of work: no database, no Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from services.registry import integration
from services.registry.domain.business import Business, DomainEvent, NibApplication
from services.registry.domain.consent import Consent, Partner
from services.registry.domain.duplicates import DuplicateCandidate, Identity, business_identity
from services.registry.domain.scale import YouthRange
from services.registry.store import BusinessStore, RegistryUnitOfWork, StoredIdentity
from shared.contracts import Envelope
from shared.contracts.topics import topic_for
from shared.errors import Conflict
from shared.messaging.audit import AuditEntry
from shared.unit_of_work import Cause, Publisher

from .fakes import FixedClock, SnapshotUnitOfWork

__all__ = ["PSEUDONYM_KEY", "REGISTRY_PUBLISHER", "FakeBusinessStore", "FakeUnitOfWork", "FixedClock"]

# How the registry's domain events become envelopes, as bootstrap builds it (without a topic namespace).
PSEUDONYM_KEY = b"a test key for the businesses' pseudonyms"
REGISTRY_PUBLISHER: Publisher[DomainEvent] = Publisher(
    "registry", lambda event: integration.translate(event, PSEUDONYM_KEY), lambda e: topic_for(e.aggregate_type)
)


class FakeBusinessStore(BusinessStore):
    """The registry's tables as dicts. Values are frozen dataclasses, so copying the dicts snapshots the state."""

    def __init__(self) -> None:
        self.businesses: dict[uuid.UUID, Business] = {}
        self.identities: dict[uuid.UUID, StoredIdentity] = {}
        self.sources: dict[uuid.UUID, str] = {}
        self.applications: dict[uuid.UUID, NibApplication] = {}
        self.coverage_published: dict[str, tuple[int, int]] = {}
        self.partners: dict[str, Partner] = {}
        self.consents: dict[uuid.UUID, Consent] = {}
        self.identity_locks = 0

    # State snapshots, used by FakeUnitOfWork to roll back.
    def snapshot(self) -> tuple[dict[Any, Any], ...]:
        return (dict(self.businesses), dict(self.identities), dict(self.sources), dict(self.applications),
                dict(self.coverage_published), dict(self.partners), dict(self.consents))  # fmt: skip

    def restore(self, state: tuple[dict[Any, Any], ...]) -> None:
        (self.businesses, self.identities, self.sources, self.applications, self.coverage_published, self.partners,
         self.consents) = (dict(s) for s in state)  # fmt: skip

    async def lock_identities(self, nik_digests: Sequence[bytes], phones: Sequence[str], nibs: Sequence[str]) -> None:
        self.identity_locks += 1

    async def nik_digest(self, business_id: uuid.UUID) -> bytes | None:
        identity = self.identities.get(business_id)
        return identity.digest if identity is not None else None

    async def duplicate_candidates(
        self, nik_digests: Sequence[bytes], phones: Sequence[str]
    ) -> list[tuple[bytes, str, DuplicateCandidate]]:
        digests, phone_set = set(nik_digests), set(phones)
        found = []
        for business_id, business in self.businesses.items():
            digest = self.identities[business_id].digest
            if digest in digests or business.phone in phone_set:
                candidate = DuplicateCandidate(
                    business_id, business.business_name, digest in digests, business.phone in phone_set, business.status,
                    kecamatan_code=business.kecamatan.code,
                )
                found.append((digest, business.phone, candidate))
        return found

    async def add(self, businesses: Sequence[tuple[Business, StoredIdentity, str]]) -> None:
        for business, identity, source in businesses:
            if business.id in self.businesses:
                raise AssertionError(f"business {business.id} inserted twice")
            if business.nib is not None and any(b.nib == business.nib for b in self.businesses.values()):
                raise AssertionError(f"NIB {business.nib} would violate the unique constraint")
            self.businesses[business.id] = business
            self.identities[business.id] = identity
            self.sources[business.id] = source

    async def get(self, business_id: uuid.UUID) -> Business | None:
        return self.businesses.get(business_id)

    async def get_many_by_identity(self, keys: Sequence[Identity]) -> dict[Identity, Business]:
        wanted = set(keys)
        found: dict[Identity, Business] = {}
        for business_id in sorted(self.businesses, key=lambda i: (self.businesses[i].status == "closed", i)):
            business = self.businesses[business_id]
            key = business_identity(self.identities[business_id].digest, business.business_name)
            if key in wanted:
                found.setdefault(key, business)
        return found

    async def save(self, business: Business) -> None:
        if business.id not in self.businesses:
            raise AssertionError(f"saving business {business.id}, which was never added")
        if business.nib is not None and any(
            b.nib == business.nib and b.id != business.id for b in self.businesses.values()
        ):
            raise Conflict("this NIB was just recorded for another business; check the number", "nib_taken")
        self.businesses[business.id] = business

    async def nib_holders(self, nibs: Sequence[str]) -> dict[str, uuid.UUID]:
        wanted = set(nibs)
        return {b.nib: b.id for b in self.businesses.values() if b.nib is not None and b.nib in wanted}

    async def pending_application(self, business_id: uuid.UUID) -> NibApplication | None:
        for application in self.applications.values():
            if application.business_id == business_id and application.status == "pending":
                return application
        return None

    async def get_application(self, application_id: uuid.UUID) -> NibApplication | None:
        return self.applications.get(application_id)

    async def save_application(self, application: NibApplication) -> None:
        self.applications[application.id] = application

    async def nik_ciphertext(self, business_id: uuid.UUID) -> bytes | None:
        identity = self.identities.get(business_id)
        return identity.ciphertext if identity else None

    async def youth_flag_stale(self, youth: YouthRange, first_of_month: date, limit: int) -> list[Business]:
        # The same condition as the SQL: the published flag differs from "born in (after, up_to]".
        after, up_to = youth.birth_dates(first_of_month)
        stale = [
            b for _, b in sorted(self.businesses.items())
            if b.status == "active" and b.youth_owned != (after < b.owner_birth_date <= up_to)
        ]  # fmt: skip
        return stale[:limit]


    async def partner(self, partner_id: str, *, to_change: bool = False) -> Partner | None:
        return self.partners.get(partner_id)

    async def save_partner(self, partner: Partner) -> None:
        self.partners[partner.id] = partner

    async def add_consent(self, consent: Consent) -> None:
        if consent.partner_id not in self.partners or consent.business_id not in self.businesses:
            raise AssertionError("a consent must name a known partner and business (foreign keys)")
        self.consents[consent.id] = consent

    async def consent(self, consent_id: uuid.UUID) -> Consent | None:
        return self.consents.get(consent_id)

    async def save_consent(self, consent: Consent) -> None:
        self.consents[consent.id] = consent

    async def active_consents(self, business_id: uuid.UUID) -> list[Consent]:
        active = [c for c in self.consents.values() if c.business_id == business_id and c.withdrawn_at is None]
        return sorted(active, key=lambda c: (c.given_at, c.id))

    async def withdrawn_consents(self, partner_id: str) -> list[Consent]:
        withdrawn = [c for c in self.consents.values() if c.partner_id == partner_id and c.withdrawn_at is not None]
        return sorted(withdrawn, key=lambda c: (c.withdrawn_at, c.id))

    async def published_coverage(self) -> dict[str, tuple[int, int]]:
        return dict(self.coverage_published)

    async def coverage_counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, tuple[int, int]] = {}
        for b in self.businesses.values():
            if b.status == "active":
                registered, with_nib = counts.get(b.kecamatan.code, (0, 0))
                counts[b.kecamatan.code] = (registered + 1, with_nib + (b.nib_status == "issued"))
        return counts

    async def save_published_coverage(self, region_code: str, registered: int, with_nib: int, at: datetime) -> None:
        self.coverage_published[region_code] = (registered, with_nib)

class FakeUnitOfWork(SnapshotUnitOfWork, RegistryUnitOfWork):
    """A transaction over a FakeBusinessStore. Committing keeps the changes, records the events in `committed`,
    their envelopes (translated as the registry publishes them) in `outbox` and the audit entries in
    `audit_trail`, then runs the after-commit callbacks; leaving without a commit restores the state."""

    def __init__(
        self,
        store: FakeBusinessStore | None = None,
        cause: Cause | None = None,
        publisher: Publisher[DomainEvent] = REGISTRY_PUBLISHER,
    ) -> None:
        super().__init__(cause)
        self.businesses: BusinessStore = store if store is not None else FakeBusinessStore()
        self._publisher = publisher
        self.committed: list[DomainEvent] = []
        self.outbox: list[Envelope] = []  # the internal events, on registry.business.v1
        self.public: list[Envelope] = []  # what partners read: public copies, figures, consented referrals
        self.audit_trail: list[AuditEntry] = []

    @property
    def store(self) -> FakeBusinessStore:
        assert isinstance(self.businesses, FakeBusinessStore)
        return self.businesses

    @property
    def snapshotted(self) -> FakeBusinessStore:
        return self.store

    def record(self, events: list[DomainEvent], causes: list[Cause], audited: list[AuditEntry]) -> None:
        for envelope in self._publisher.envelopes(events, causes):  # a payload the contract refuses fails the commit
            internal = envelope.aggregate_type == "business"
            (self.outbox if internal else self.public).append(envelope)
        self.committed.extend(events)
        self.audit_trail.extend(audited)

"""The registry's use cases: each takes a command, the unit of work and its dependencies, runs the rules and commits.

Every handler here has the shape of every handler in Berdaya: `async def handle(command, uow, deps)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from services.registry.domain import business as aggregate
from services.registry.domain import consent as consents
from services.registry.domain.business import Business, NibApplication
from services.registry.domain.consent import Consent, ConsentForm, Partner
from services.registry.domain.coverage import NibCoverage
from services.registry.domain.duplicates import business_identity, comparable, duplicate_conflict, probable_duplicate
from services.registry.domain.forms import BusinessChanges, RegistrationForm
from services.registry.domain.identity import check_nib
from services.registry.domain.registration import RegistrationRules, validate_registration
from services.registry.nik_vault import NikVault
from services.registry.store import RegistryUnitOfWork, StoredIdentity
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound
from shared.contracts.public import nik_link
from shared.reference.wilayah import CITY_CODE, CITY_NAME
from shared.reference.wita import today_in_kupang


@dataclass(frozen=True)
class Deps:
    rules: RegistrationRules
    vault: NikVault
    clock: Callable[[], datetime]
    new_id: Callable[[], uuid.UUID] = uuid.uuid4


# ---------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterBusiness:
    form: RegistrationForm
    by: Principal


@dataclass(frozen=True)
class UpdateBusiness:
    business_id: uuid.UUID
    changes: BusinessChanges
    by: Principal


@dataclass(frozen=True)
class ApplyForNib:
    business_id: uuid.UUID
    by: Principal


@dataclass(frozen=True)
class RecordNibIssued:
    business_id: uuid.UUID
    application_id: uuid.UUID
    nib: str
    issued_on: date | None
    by: Principal


@dataclass(frozen=True)
class RecordNibRejected:
    business_id: uuid.UUID
    application_id: uuid.UUID
    reason: str
    by: Principal


@dataclass(frozen=True)
class CloseBusiness:
    business_id: uuid.UUID
    reason: str
    by: Principal


@dataclass(frozen=True)
class RevealNik:
    business_id: uuid.UUID
    by: Principal


@dataclass(frozen=True)
class SetUpPartner:
    """A partner referrals may go to (its Kafka credentials and topics are set up by `berdaya partner add`)."""

    partner_id: str
    name: str
    active: bool = True


@dataclass(frozen=True)
class GiveConsent:
    business_id: uuid.UUID
    form: ConsentForm
    by: Principal


@dataclass(frozen=True)
class WithdrawConsent:
    business_id: uuid.UUID
    consent_id: uuid.UUID
    by: Principal


@dataclass(frozen=True)
class PublishCoverage:
    """Publish NIB coverage for partners where it changed since last published."""


@dataclass(frozen=True)
class RefreshYouthFlags:
    """The monthly re-evaluation of published youth flags; `limit` businesses per unit of work."""

    limit: int = 1000


def require_scope(by: Principal, business: Business) -> None:
    """An officer whose token names kecamatan acts only for businesses there."""
    if not by.acts_in_kecamatan(business.kecamatan.code):
        raise Forbidden(f"business {business.id} is in {business.kecamatan.name}, outside the kecamatan your token "
                        f"allows ({', '.join(sorted(by.kecamatan_codes))}); ask an officer there")  # fmt: skip


async def _load(uow: RegistryUnitOfWork, business_id: uuid.UUID, by: Principal) -> Business:
    business = await uow.businesses.get(business_id)
    if business is None:
        raise NotFound(f"no business {business_id}")
    require_scope(by, business)
    return business


def _may_see(by: Principal, kecamatan_code: str | None) -> bool:
    """Whether a business the caller's input matched may be named to it: one of its own kecamatan (or of this very
    import), not another's."""
    return kecamatan_code is None or by.acts_in_kecamatan(kecamatan_code)


async def _same_business(uow: RegistryUnitOfWork, digest: bytes, name: str) -> Business | None:
    """The owner's active business of this very name: the identity an import goes by. (A closed one may start again
    under its old name.)"""
    key = business_identity(digest, name)
    existing = (await uow.businesses.get_many_by_identity([key])).get(key)
    return existing if existing is not None and existing.status != "closed" else None


async def _load_application(uow: RegistryUnitOfWork, business_id: uuid.UUID, application_id: uuid.UUID) -> NibApplication:
    application = await uow.businesses.get_application(application_id)
    if application is None or application.business_id != business_id:
        raise NotFound(f"no NIB application {application_id} for business {business_id}")
    return application


# ---------------------------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------------------------


async def register_business(cmd: RegisterBusiness, uow: RegistryUnitOfWork, deps: Deps) -> Business:
    form, now = cmd.form, deps.clock()
    new = validate_registration(form, deps.rules, today_in_kupang(now))
    if not cmd.by.acts_in_kecamatan(new.kecamatan.code):
        raise Forbidden(f"{new.kecamatan.name} is outside the kecamatan your token allows; ask an officer there")
    digest = deps.vault.digest(new.nik.digits)
    async with uow:
        nibs = [new.nib] if new.nib else []
        await uow.businesses.lock_identities([digest], [new.phone], nibs)
        if not form.confirm_distinct:
            found, holders = await uow.businesses.clashes([digest], [new.phone], nibs)
            candidates = comparable([c for _, _, c in found if c.same_nik], [c for _, _, c in found if c.same_phone])
            duplicate = probable_duplicate(form.business_name, candidates, deps.rules.duplicate_similarity)
            if duplicate:
                raise duplicate_conflict(duplicate, outside_scope=not _may_see(cmd.by, duplicate.kecamatan_code))
        elif (existing := await _same_business(uow, digest, form.business_name)) is not None:
            if not _may_see(cmd.by, existing.kecamatan.code):
                raise Conflict("the owner already has a business of this name, registered outside the kecamatan your "
                               "token allows; ask an officer of the city", "already_registered")  # fmt: skip
            # confirm_distinct vouches for a similar name, not the very same one: the same owner and name is the
            # business an import would update, and a client's retry of a confirmed registration must not make two.
            raise Conflict(f"the owner already has {existing.business_name!r} ({existing.id}), the same name once case, "
                           "punctuation and words like 'Warung' or 'Ibu' are left out; confirm_distinct is for a "
                           "similar name, not the same one: update that business, or give this one a name of its own",
                           "already_registered", {"existing_business_id": str(existing.id)})  # fmt: skip
        else:
            holders = await uow.businesses.nib_holders(nibs) if nibs else {}
        if new.nib:
            holder = holders.get(new.nib)
            if holder:
                raise Conflict(f"NIB {new.nib} is already registered to business {holder}", "nib_taken",
                               {"existing_business_id": str(holder)})  # fmt: skip
        business = aggregate.register(new, deps.new_id(), now, deps.rules.youth)
        await uow.businesses.add([(business, StoredIdentity(digest, deps.vault.encrypt(new.nik.digits)), "officer")])
        uow.emit(aggregate.Registered(business, "officer"))
        await uow.commit()
    return business


async def update_business(cmd: UpdateBusiness, uow: RegistryUnitOfWork, deps: Deps) -> Business:
    async with uow:
        digest = None
        if cmd.changes.business_name is not None:
            # A rename changes how an import or a registration recognises the business (owner's NIK and name): the
            # owner's identity lock before the row, as they take it, so one racing with the rename either finds the
            # business by its new name or is found by it, and never makes a second business of that name.
            digest = await uow.businesses.nik_digest(cmd.business_id)
            if digest is not None:
                await uow.businesses.lock_identities([digest], [], [])
        business = await _load(uow, cmd.business_id, cmd.by)
        updated, changed = aggregate.change(business, cmd.changes, deps.rules, deps.clock())
        if digest is not None and "business_name" in changed:
            same = await _same_business(uow, digest, updated.business_name)
            if same is not None and same.id != updated.id:
                shown = f"{same.business_name!r} ({same.id})" if _may_see(cmd.by, same.kecamatan.code) else "one"
                raise Conflict(f"the owner already has {shown} of this name, once case, punctuation and words like "
                               "'Warung' or 'Ibu' are left out; give this business a name of its own",
                               "already_registered", {"existing_business_id": str(same.id)} if shown != "one" else {})  # fmt: skip
        if changed:
            require_scope(cmd.by, updated)  # moving a business into another kecamatan needs that kecamatan too
            await uow.businesses.save(updated)
            uow.emit(aggregate.Updated(updated, changed))
            await uow.commit()
    return updated


async def apply_for_nib(cmd: ApplyForNib, uow: RegistryUnitOfWork, deps: Deps) -> NibApplication:
    async with uow:
        business = await _load(uow, cmd.business_id, cmd.by)
        pending = await uow.businesses.pending_application(cmd.business_id)
        business, application = aggregate.apply_for_nib(business, pending, deps.new_id(), deps.clock())
        await uow.businesses.save(business)
        await uow.businesses.save_application(application)
        uow.emit(aggregate.NibApplied(business, application))
        await uow.commit()
    return application


async def record_nib_issued(cmd: RecordNibIssued, uow: RegistryUnitOfWork, deps: Deps) -> NibApplication:
    now = deps.clock()
    nib = check_nib(cmd.nib)
    async with uow:
        # The NIB's lock before any row's, as an import takes them: an import of a row with this NIB then either
        # finds it taken or is waited for, where its COPY failed on the unique NIB (a 500 for the whole chunk).
        await uow.businesses.lock_identities([], [], [nib])
        business = await _load(uow, cmd.business_id, cmd.by)
        application = await _load_application(uow, cmd.business_id, cmd.application_id)
        business, application = aggregate.issue_nib(business, application, cmd.nib, cmd.issued_on or today_in_kupang(now), now)
        assert application.nib is not None and application.issued_on is not None
        holder = (await uow.businesses.nib_holders([application.nib])).get(application.nib)
        if holder and holder != cmd.business_id:
            raise Conflict(f"NIB {application.nib} is already registered to business {holder}; check the number",
                           "nib_taken", {"existing_business_id": str(holder)})  # fmt: skip
        await uow.businesses.save(business)
        await uow.businesses.save_application(application)
        uow.emit(aggregate.NibIssued(business, application.id, application.nib, application.issued_on))
        await uow.commit()
    return application


async def record_nib_rejected(cmd: RecordNibRejected, uow: RegistryUnitOfWork, deps: Deps) -> NibApplication:
    async with uow:
        business = await _load(uow, cmd.business_id, cmd.by)
        application = await _load_application(uow, cmd.business_id, cmd.application_id)
        business, application = aggregate.reject_nib(business, application, cmd.reason, deps.clock())
        await uow.businesses.save(business)
        await uow.businesses.save_application(application)
        uow.emit(aggregate.NibRejected(business, application))
        await uow.commit()
    return application


async def close_business(cmd: CloseBusiness, uow: RegistryUnitOfWork, deps: Deps) -> Business:
    async with uow:
        business = aggregate.close(await _load(uow, cmd.business_id, cmd.by), cmd.reason, deps.clock())
        await uow.businesses.save(business)
        uow.emit(aggregate.Closed(business))
        await uow.commit()
    return business


def must_see_personal_data(by: Principal, what: str) -> None:
    """An admin token passes every role check, but admins run the system and have no need to know an owner's data:
    its NIK, or whom it shares its contact with (an owner's consents, given or withdrawn)."""
    if not by.may_see_personal_data:
        raise Forbidden(f"only an officer may {what}; your token has the roles {sorted(by.roles)}: ask an officer who "
                        "works with the owner")  # fmt: skip


async def reveal_nik(cmd: RevealNik, uow: RegistryUnitOfWork, deps: Deps) -> str:
    """The full NIK, for an officer who must see it; the reveal itself goes into the audit trail."""
    must_see_personal_data(cmd.by, "see an owner's full NIK")
    async with uow:
        await _load(uow, cmd.business_id, cmd.by)
        blob = await uow.businesses.nik_ciphertext(cmd.business_id)
        assert blob is not None
        uow.audit("NIKRevealed", "business", cmd.business_id)
        await uow.commit()
    return deps.vault.decrypt(blob)


async def refresh_youth_flags(cmd: RefreshYouthFlags, uow: RegistryUnitOfWork, deps: Deps) -> int:
    """Publish a BusinessUpdated for each owner whose youth flag changed this month; returns how many (at most
    `limit`: run again while it returns the limit). Two registry instances sweeping at once skip each other's rows."""
    now = deps.clock()
    refreshed = 0
    async with uow:
        stale = await uow.businesses.youth_flag_stale(deps.rules.youth, today_in_kupang(now).replace(day=1), cmd.limit)
        for business in stale:
            changed = aggregate.refresh_youth(business, deps.rules.youth, now)
            if changed is not None:
                await uow.businesses.save(changed)
                uow.emit(aggregate.Updated(changed, ("youth_owned",)))
                refreshed += 1
        await uow.commit()
    return refreshed



async def publish_coverage(cmd: PublishCoverage, uow: RegistryUnitOfWork, deps: Deps) -> int:
    """Returns how many figures changed (each kecamatan's and the city's)."""
    now = deps.clock()
    async with uow:
        published = await uow.businesses.published_coverage()
        # Counted once the lock is held, not before: two registries counting first could each wait for the other
        # and publish the older count after the newer, a figure going back for partners.
        coverage = NibCoverage.of(deps.rules.wilayah.kecamatan, await uow.businesses.coverage_counts())
        figures = [(k.kecamatan.code, k.kecamatan.name, k.registered, k.with_nib) for k in coverage.by_kecamatan]
        figures.append((CITY_CODE, CITY_NAME, coverage.registered, coverage.with_nib))
        changed = [f for f in figures if published.get(f[0]) != (f[2], f[3])]
        for code, name, registered, with_nib in changed:
            await uow.businesses.save_published_coverage(code, registered, with_nib, now)
            uow.emit(aggregate.CoverageChanged(code, name, registered, with_nib, now))
        await uow.commit()
    return len(changed)


# ---------------------------------------------------------------------------------------------------------------
# Partners and owners' consent to referrals
# ---------------------------------------------------------------------------------------------------------------


async def set_up_partner(cmd: SetUpPartner, uow: RegistryUnitOfWork, deps: Deps) -> Partner:
    """A revoked partner is sent nothing more (the registry's grant to write its topic goes once it is told); one
    admitted again is first told of every withdrawal of its consents, those made while it was revoked included, so
    each supersedes its referral on the partner's compacted topic before the partner can read it again."""
    partner = Partner(cmd.partner_id, cmd.name, cmd.active)
    async with uow:
        was = await uow.businesses.partner(cmd.partner_id, to_change=True)
        await uow.businesses.save_partner(partner)
        uow.audit("PartnerSetUp" if cmd.active else "PartnerRevoked", "partner", cmd.partner_id)
        if cmd.active and was is not None and not was.active:
            for withdrawn in await uow.businesses.withdrawn_consents(cmd.partner_id):
                uow.emit(consents.ConsentWithdrawn(withdrawn))
        await uow.commit()
    return partner


async def give_consent(cmd: GiveConsent, uow: RegistryUnitOfWork, deps: Deps) -> Consent:
    """Record the owner's consent and send the partner exactly what the referral needs, on its own topic."""
    must_see_personal_data(cmd.by, "send an owner's name, phone and NIK link to a partner")
    async with uow:
        business = await _load(uow, cmd.business_id, cmd.by)
        partner = await uow.businesses.partner(cmd.form.partner_id)
        consent = consents.give(cmd.form, business, partner, deps.new_id(), cmd.by.actor, deps.clock())
        # The business's lock makes two such requests at once one after the other: the second finds the first's.
        repeated = consents.already_given(consent, await uow.businesses.active_consents(business.id))
        if repeated is not None:
            return repeated
        blob = await uow.businesses.nik_ciphertext(business.id)
        assert blob is not None
        link = nik_link(deps.vault.decrypt(blob), deps.vault.partner_key(consent.partner_id))
        await uow.businesses.add_consent(consent)
        uow.emit(consents.ConsentGiven(business, consent, link))
        await uow.commit()
    return consent


async def withdraw_consent(cmd: WithdrawConsent, uow: RegistryUnitOfWork, deps: Deps) -> Consent:
    """The partner is told at once; from then on it may not use what the referral shared. A revoked partner may
    no longer read its topic (nor the registry write it): the withdrawal is recorded and audited, and the partner is
    told if it is ever admitted again (`set_up_partner`)."""
    must_see_personal_data(cmd.by, "withdraw an owner's consent to a partner")
    async with uow:
        await _load(uow, cmd.business_id, cmd.by)
        found = await uow.businesses.consent(cmd.consent_id)
        if found is None or found.business_id != cmd.business_id:
            raise NotFound(f"no consent {cmd.consent_id} of business {cmd.business_id}")
        withdrawn = consents.withdraw(found, cmd.by.actor, deps.clock())
        # Read with a share lock: a revoke committing meanwhile waits for this withdrawal, which is then published
        # before the revoke lets `berdaya partner revoke` take the registry's grant away.
        partner = await uow.businesses.partner(found.partner_id)
        await uow.businesses.save_consent(withdrawn)
        if partner is not None and partner.active:
            uow.emit(consents.ConsentWithdrawn(withdrawn))
        else:
            uow.audit("ReferralConsentWithdrawn", "referral", withdrawn.id)
        await uow.commit()
    return withdrawn

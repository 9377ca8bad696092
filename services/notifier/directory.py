"""What officers (and sponsors) set: owners' preferences and consent, the officers' directory, sponsors' addresses.

Every change is audited; a consent an officer records is kept with who recorded it, like an owner's STOP.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from services.notifier.domain.consent import LANGUAGES, Preference
from services.notifier.domain.messages import Contact
from services.notifier.recording import Deps, withhold_confirmations
from services.notifier.store import NotifierUnitOfWork
from shared.auth import Principal
from shared.errors import Forbidden, InvalidInput, NotFound

# ---------------------------------------------------------------------------------------------------------------
# Owners' preferences
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetPreference:
    business_id: uuid.UUID
    by: Principal
    channel: Literal["whatsapp", "sms"] | None = None
    clear_channel: bool = False
    language: str | None = None
    opted_out: bool | None = None


async def owner_preference(business_id: uuid.UUID, by: Principal, uow: NotifierUnitOfWork,
                           to_change: bool = False) -> tuple[Contact, Preference]:  # fmt: skip
    contact = await uow.store.contact(business_id)
    if contact is None:
        raise NotFound(f"the notifier knows no business {business_id} (it learns of them from the registry's events)")
    if not by.acts_in_kecamatan(contact.kecamatan_code or ""):
        raise Forbidden("this business is outside the kecamatan your token acts in")
    read = uow.store.preference_to_change if to_change else uow.store.preference
    return contact, await read(contact.phone) or Preference(contact.phone)


async def set_preference(cmd: SetPreference, uow: NotifierUnitOfWork, deps: Deps) -> Preference:
    """An officer records an owner's wishes: their channel, their language, or their consent (as the owner asked in
    person); audited, and a consent change is kept with who recorded it."""
    if cmd.language is not None and cmd.language not in LANGUAGES:
        raise InvalidInput.one("language", "language.unsupported",
                               f"messages are written in {', '.join(LANGUAGES)} only (Bahasa Indonesia: 'id')")  # fmt: skip
    async with uow:
        now = deps.clock()
        contact, preference = await owner_preference(cmd.business_id, cmd.by, uow, to_change=True)
        updated = preference
        if cmd.channel is not None or cmd.clear_channel:
            updated = replace(updated, channel=None if cmd.clear_channel else cmd.channel)
        if cmd.language is not None:
            updated = replace(updated, language=cmd.language)
        if cmd.opted_out is not None and cmd.opted_out != preference.opted_out:
            updated = replace(updated, opted_out_at=now if cmd.opted_out else None)
            await uow.store.record_consent(contact.phone, "stop" if cmd.opted_out else "start", f"officer:{cmd.by.actor}", now)
            await withhold_confirmations(uow, contact.phone, now)  # they would contradict what the officer recorded
        await uow.store.save_preference(updated)
        uow.audit("preference_changed", "business", cmd.business_id)
        await uow.commit()
    return updated


# ---------------------------------------------------------------------------------------------------------------
# The directories of officers and sponsors
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SaveOfficer:
    email: str
    name: str
    kecamatan_codes: tuple[str, ...]
    by: Principal


def _may_keep(by: Principal, codes: Sequence[str]) -> None:
    """An officer whose token names kecamatan keeps the directory of those only; city-wide entries need a city-wide
    officer or an admin."""
    if not by.limited_to_kecamatan:
        return
    if not codes or any(not by.acts_in_kecamatan(c) for c in codes):
        raise Forbidden("your token acts in kecamatan " + ", ".join(sorted(by.kecamatan_codes)) + " only")


async def save_officer(cmd: SaveOfficer, uow: NotifierUnitOfWork, deps: Deps) -> uuid.UUID:
    """Add an officer, or change the entry with that email: an officer limited to some kecamatan may change only an
    entry that is theirs to keep, as for removing one."""
    _may_keep(cmd.by, cmd.kecamatan_codes)
    async with uow:
        existing = await uow.store.officer_by_email(cmd.email)
        if existing is not None:
            _may_keep(cmd.by, existing[1])
        officer_id = await uow.store.save_officer(deps.new_id(), cmd.email, cmd.name, cmd.kecamatan_codes)
        uow.audit("officer_saved", "officer", officer_id)
        await uow.commit()
    return officer_id


async def remove_officer(officer_id: uuid.UUID, by: Principal, uow: NotifierUnitOfWork, deps: Deps) -> None:
    async with uow:
        found = await uow.store.officer(officer_id)
        if found is None:
            raise NotFound(f"no officer {officer_id} in the directory")
        _may_keep(by, found[1])
        await uow.store.remove_officer(officer_id)
        uow.audit("officer_removed", "officer", officer_id)
        await uow.commit()


async def save_sponsor_contact(sponsor_id: uuid.UUID, email: str, name: str | None, by: Principal,
                               uow: NotifierUnitOfWork) -> None:  # fmt: skip
    """Where a sponsor's weekly digest goes: set by a city-wide officer or an admin, or by the sponsor itself. A
    sponsor belongs to no kecamatan, so an officer whose token is limited to some may not redirect its digest (its
    pledges and payments)."""
    city_wide_officer = by.has_any({"officer"}) and not by.limited_to_kecamatan
    if not (city_wide_officer or by.acts_for_sponsor(sponsor_id)):
        raise Forbidden("a sponsor's digest address is set by the sponsor itself, an admin, or an officer whose token "
                        "is not limited to kecamatan")  # fmt: skip
    async with uow:
        await uow.store.save_sponsor_contact(sponsor_id, email, name)
        uow.audit("sponsor_contact_saved", "sponsor", sponsor_id)
        await uow.commit()


"""The officers' directory on a real PostgreSQL: an officer limited to some kecamatan keeps their part of it only,
whether they add, change or take over an entry by its email, and two saves of one email at once are judged in turn.
An owner's STOP and an officer's change of the owner's preferences at once: neither undoes the other."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.notifier.delivery_outcomes import Reply, owner_replied
from services.notifier.directory import SaveOfficer, SetPreference, save_officer, set_preference
from services.notifier.domain.consent import Preference
from services.notifier.domain.messages import Contact
from shared.auth import Principal
from shared.errors import Forbidden
from tests.gateways.notifier import notifier
from tests.integration.races import held_back

pytestmark = pytest.mark.integration

OEBOBO, ALAK = "53.71.04", "53.71.01"
CITY_WIDE = Principal("petugas-kota", frozenset({"officer"}))
IN_OEBOBO = Principal("petugas-oebobo", frozenset({"officer"}), kecamatan_codes=frozenset({OEBOBO}))
IN_ALAK = Principal("petugas-alak", frozenset({"officer"}), kecamatan_codes=frozenset({ALAK}))


async def _entries(n) -> dict[str, tuple[str, ...]]:  # noqa: ANN001
    rows = await n.fetch("SELECT email, kecamatan_codes FROM officer")
    return {r["email"]: tuple(r["kecamatan_codes"]) for r in rows}


async def test_an_officer_of_one_kecamatan_cannot_take_over_another_kecamatans_or_a_city_wide_entry(database_url):
    async with notifier(database_url) as n:
        await save_officer(SaveOfficer("yohana@kupangkota.go.id", "Yohana", (OEBOBO,), IN_OEBOBO), n.uow(), n.deps)
        await save_officer(SaveOfficer("kota@kupangkota.go.id", "Kota", (), CITY_WIDE), n.uow(), n.deps)
        before = await _entries(n)

        for email in ("yohana@kupangkota.go.id", "kota@kupangkota.go.id"):
            with pytest.raises(Forbidden, match="kecamatan 53.71.01 only"):
                await save_officer(SaveOfficer(email, "Diambil", (ALAK,), IN_ALAK), n.uow(), n.deps)

        assert await _entries(n) == before
        # Their own entry they still change, and a new one in their kecamatan they still add.
        await save_officer(SaveOfficer("yohana@kupangkota.go.id", "Yohana B.", (OEBOBO,), IN_OEBOBO), n.uow(), n.deps)
        await save_officer(SaveOfficer("maria@kupangkota.go.id", "Maria", (ALAK,), IN_ALAK), n.uow(), n.deps)
        assert await _entries(n) == {**before, "maria@kupangkota.go.id": (ALAK,)}


async def test_a_save_of_an_email_another_officer_is_adding_waits_and_is_judged_on_that_entry(database_url):
    async with notifier(database_url) as n:
        email = "baru@kupangkota.go.id"
        async with n.uow() as first:
            assert await first.store.officer_by_email(email) is None
            await first.store.save_officer(n.deps.new_id(), email, "Kota", ())
            second = asyncio.create_task(save_officer(SaveOfficer(email, "Alak", (ALAK,), IN_ALAK), n.uow(), n.deps))
            await held_back(second, database_url)  # until the first save ends, though the entry did not exist
            await first.commit()

        with pytest.raises(Forbidden):
            await second
        assert await _entries(n) == {email: ()}


async def an_owner(n, phone: str) -> uuid.UUID:  # noqa: ANN001
    """A business in Oebobo the notifier knows, with the owner's phone; its id."""
    business_id = uuid.uuid4()
    async with n.uow() as uow:
        await uow.store.save_contact(Contact(business_id, 1, "Sei Sapi Ibu Maria", phone, "Oebobo", "Fatululi", "active",
                                             OEBOBO))  # fmt: skip
        await uow.commit()
    return business_id


async def test_an_owners_stop_while_an_officer_changes_their_channel_stands_though_the_number_had_no_preferences(
    database_url,
):
    async with notifier(database_url) as n:
        phone = "+6281311110005"
        await an_owner(n, phone)
        assert await n.fetch("SELECT * FROM recipient WHERE phone = $1", phone) == []

        async with n.uow() as officers:  # what set_preference does, held open between its read and its write
            assert await officers.store.preference_to_change(phone) is None
            stop = asyncio.create_task(owner_replied(Reply("sms", phone, "STOP", uuid.uuid4()), n.uow(), n.deps))
            await held_back(stop, database_url)  # until the officer's change ends, though the number had no row
            await officers.store.save_preference(Preference(phone, channel="sms"))
            await officers.commit()

        assert await stop == "stop"
        [row] = await n.fetch("SELECT channel, opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["channel"] == "sms" and row["opted_out_at"] is not None


async def test_an_officers_change_of_channel_after_an_owners_stop_keeps_the_stop(database_url):
    async with notifier(database_url) as n:
        phone = "+6281311110006"
        business_id = await an_owner(n, phone)
        await owner_replied(Reply("sms", phone, "STOP", uuid.uuid4()), n.uow(), n.deps)

        await set_preference(SetPreference(business_id, CITY_WIDE, channel="sms"), n.uow(), n.deps)

        [row] = await n.fetch("SELECT channel, opted_out_at FROM recipient WHERE phone = $1", phone)
        assert row["channel"] == "sms" and row["opted_out_at"] is not None

"""Tests the registry's use cases (register, update, NIB steps, close, reveal, youth flags, CSV import) against
in-memory fakes."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.registry import bulk_import, handlers
from services.registry.bulk_import import ImportReport, ImportRows
from services.registry.domain import business as aggregate
from services.registry.domain.business import Business, NibApplication
from services.registry.domain.consent import ConsentForm, Partner, _visible
from services.registry.domain.forms import BusinessChanges
from services.registry.handlers import (
    ApplyForNib,
    CloseBusiness,
    Deps,
    RecordNibIssued,
    RecordNibRejected,
    RefreshYouthFlags,
    RegisterBusiness,
    RevealNik,
    UpdateBusiness,
)
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.contracts.public import nik_link
from shared.messaging.audit import AuditEntry
from shared.unit_of_work import Cause

from .builders import MARIA, MARIA_NIK, NOW, OEBOBO_OFFICER, OFFICER, YOHANES, YOHANES_NIK, form, rules, vault
from .registry_fakes import FakeBusinessStore, FakeUnitOfWork, FixedClock

pytestmark = pytest.mark.asyncio

NEW_PHONE = "0813 9999 0000"


def new_uow(store: FakeBusinessStore, by: Principal = OFFICER) -> FakeUnitOfWork:
    """One request's unit of work over the shared store, on behalf of `by`, translating its events as the real one."""
    return FakeUnitOfWork(store, Cause.request(uuid.uuid4(), by.actor))


def csv_row(base: dict[str, Any], **overrides: Any) -> dict[str, str]:
    """A row as the import receives it: every cell is text."""
    return {k: str(v) for k, v in {**base, **overrides}.items()}


@pytest.fixture
def store() -> FakeBusinessStore:
    return FakeBusinessStore()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return Deps(rules=rules(), vault=vault(), clock=clock)


async def register(
    store: FakeBusinessStore, deps: Deps, base: dict[str, Any] | None = None, **overrides: Any
) -> Business:
    """A business registered by a city-wide officer, committed."""
    return await handlers.register_business(RegisterBusiness(form(base, **overrides), OFFICER), new_uow(store), deps)


async def apply(store: FakeBusinessStore, deps: Deps, business_id: uuid.UUID) -> NibApplication:
    return await handlers.apply_for_nib(ApplyForNib(business_id, OFFICER), new_uow(store), deps)


async def import_rows(
    rows: list[tuple[int, dict[str, str]]], uow: FakeUnitOfWork, deps: Deps, by: Principal = OFFICER
) -> ImportReport:
    return await bulk_import.import_rows(ImportRows(rows, by), uow, deps)


# ---------------------------------------------------------------------------------------------------------------
# register_business
# ---------------------------------------------------------------------------------------------------------------


async def test_registering_writes_one_business_emits_one_registered_event_and_commits(store, deps) -> None:
    uow = new_uow(store)

    b = await handlers.register_business(RegisterBusiness(form(), OFFICER), uow, deps)

    assert list(store.businesses.values()) == [b]
    assert store.sources[b.id] == "officer"
    assert uow.committed == [aggregate.Registered(b, "officer")]
    assert uow.commits == 1
    assert [e.event_type for e in uow.outbox] == ["BusinessRegistered"]
    assert store.identity_locks == 1


async def test_the_events_of_a_request_name_the_officer_as_actor_and_carry_its_correlation(store, deps) -> None:
    uow = new_uow(store)

    b = await handlers.register_business(RegisterBusiness(form(), OFFICER), uow, deps)

    (envelope,) = uow.outbox
    assert (envelope.actor, envelope.correlation_id) == (OFFICER.subject, uow.cause.correlation_id)
    assert (envelope.aggregate_id, envelope.aggregate_version) == (str(b.id), 1)


async def test_a_registered_nik_is_stored_only_as_a_keyed_digest_and_a_ciphertext(store, deps) -> None:
    b = await register(store, deps)

    identity = store.identities[b.id]
    assert identity.digest == deps.vault.digest(MARIA_NIK)
    assert MARIA_NIK.encode() not in identity.ciphertext
    assert deps.vault.decrypt(identity.ciphertext) == MARIA_NIK
    assert b.nik_masked == "5371********0001"


async def test_an_authorised_officer_can_reveal_the_nik_of_a_registered_business(store, deps) -> None:
    b = await register(store, deps)

    assert await handlers.reveal_nik(RevealNik(b.id, OFFICER), new_uow(store), deps) == MARIA_NIK
    with pytest.raises(NotFound):
        await handlers.reveal_nik(RevealNik(uuid.uuid4(), OFFICER), new_uow(store), deps)


async def test_revealing_a_nik_records_an_audit_entry_naming_the_officer_as_actor(store, deps) -> None:
    b = await register(store, deps)
    uow = new_uow(store, OFFICER)

    await handlers.reveal_nik(RevealNik(b.id, OFFICER), uow, deps)

    assert uow.audit_trail == [
        AuditEntry(OFFICER.subject, "NIKRevealed", "business", str(b.id), uow.cause.correlation_id)
    ]
    assert (uow.commits, uow.committed, uow.outbox) == (1, [], [])  # audited, but nothing changed


async def test_a_nik_that_could_not_be_revealed_leaves_no_audit_entry(store, deps) -> None:
    uow = new_uow(store)

    with pytest.raises(NotFound):
        await handlers.reveal_nik(RevealNik(uuid.uuid4(), OFFICER), uow, deps)

    assert (uow.audit_trail, uow.commits) == ([], 0)


async def test_an_admin_passes_the_officer_role_check_but_may_not_reveal_a_nik_and_nothing_is_audited(store, deps):
    b = await register(store, deps)
    uow = new_uow(store)

    with pytest.raises(Forbidden, match="only an officer may see an owner's full NIK"):
        await handlers.reveal_nik(RevealNik(b.id, Principal("admin@berdaya", frozenset({"admin"}))), uow, deps)

    assert (uow.audit_trail, uow.commits) == ([], 0)


async def test_a_probable_duplicate_registration_raises_conflict_and_commits_nothing(store, deps) -> None:
    first = await register(store, deps)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.register_business(
            RegisterBusiness(form(business_name="Warung Sei Sapi Maria", phone="0813 1111 2222"), OFFICER), uow, deps
        )

    assert exc.value.code == "probable_duplicate"
    assert exc.value.details["existing_business_id"] == str(first.id)
    assert "confirm_distinct=true" in exc.value.message
    assert list(store.businesses) == [first.id]
    assert (uow.commits, uow.committed, uow.outbox) == (0, [], [])


async def test_confirm_distinct_registers_a_probable_duplicate_anyway(store, deps) -> None:
    await register(store, deps)
    uow = new_uow(store)

    second = await handlers.register_business(
        RegisterBusiness(form(business_name="Sei Sapi Maria Oesapa", confirm_distinct="ya"), OFFICER), uow, deps
    )

    assert len(store.businesses) == 2
    assert uow.committed == [aggregate.Registered(second, "officer")]


async def test_confirm_distinct_does_not_register_the_owners_same_name_again_unless_that_business_closed(
    store, deps
) -> None:
    first = await register(store, deps)
    # The same name to an import too: no case, punctuation or generic words like "Warung" or "Ibu".
    again = RegisterBusiness(form(business_name="WARUNG Sei-Sapi Maria", confirm_distinct="ya"), OFFICER)

    with pytest.raises(Conflict) as refused:
        await handlers.register_business(again, new_uow(store), deps)
    assert (refused.value.code, refused.value.details) == ("already_registered", {"existing_business_id": str(first.id)})
    assert len(store.businesses) == 1

    await handlers.close_business(CloseBusiness(first.id, "usaha tutup", OFFICER), new_uow(store), deps)
    started_again = await handlers.register_business(again, new_uow(store), deps)
    assert started_again.id != first.id and len(store.businesses) == 2


async def test_the_same_owner_may_register_a_differently_named_second_business(store, deps) -> None:
    await register(store, deps)

    second = await register(store, deps, business_name="Tenun Ikat Maria", kbli_code="13912")

    assert len(store.businesses) == 2
    assert store.identities[second.id].digest == deps.vault.digest(MARIA_NIK)


async def test_registering_with_an_nib_that_another_business_holds_is_a_conflict(store, deps) -> None:
    holder = await register(store, deps, nib="1234567890123")
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.register_business(RegisterBusiness(form(YOHANES, nib="1234567890123"), OFFICER), uow, deps)

    assert (exc.value.code, exc.value.details) == ("nib_taken", {"existing_business_id": str(holder.id)})
    assert len(store.businesses) == 1
    assert uow.committed == []


async def test_an_invalid_registration_touches_nothing(store, deps) -> None:
    uow = new_uow(store)

    with pytest.raises(InvalidInput):
        await handlers.register_business(RegisterBusiness(form(phone="0380 821234"), OFFICER), uow, deps)

    assert store.businesses == {}
    assert (uow.begun, uow.commits, store.identity_locks) == (0, 0, 0)


# ---------------------------------------------------------------------------------------------------------------
# update, NIB steps, close
# ---------------------------------------------------------------------------------------------------------------


async def test_updating_a_business_saves_it_and_emits_updated_with_the_changed_fields(store, deps) -> None:
    b = await register(store, deps)
    uow = new_uow(store)

    updated = await handlers.update_business(UpdateBusiness(b.id, BusinessChanges(phone=NEW_PHONE), OFFICER), uow, deps)

    assert store.businesses[b.id] == updated
    assert updated.version == 2
    assert uow.committed == [aggregate.Updated(updated, ("phone",))]
    assert uow.outbox[0].payload["changed_fields"] == ["phone"]


async def test_an_update_that_changes_nothing_commits_nothing(store, deps) -> None:
    b = await register(store, deps)
    uow = new_uow(store)

    unchanged = await handlers.update_business(
        UpdateBusiness(b.id, BusinessChanges(phone="+62 812 3456 7890"), OFFICER), uow, deps
    )

    assert unchanged == b
    assert (uow.commits, uow.committed) == (0, [])


async def test_updating_an_unknown_business_is_not_found(store, deps) -> None:
    with pytest.raises(NotFound):
        await handlers.update_business(
            UpdateBusiness(uuid.uuid4(), BusinessChanges(phone=NEW_PHONE), OFFICER), new_uow(store), deps
        )


async def test_an_nib_application_then_its_issue_each_commit_one_event(store, deps) -> None:
    b = await register(store, deps)

    apply_uow = new_uow(store)
    application = await handlers.apply_for_nib(ApplyForNib(b.id, OFFICER), apply_uow, deps)
    issue_uow = new_uow(store)
    issued = await handlers.record_nib_issued(
        RecordNibIssued(b.id, application.id, "1234567890123", date(2026, 3, 9), OFFICER), issue_uow, deps
    )

    assert [type(e) for e in apply_uow.committed] == [aggregate.NibApplied]
    assert [type(e) for e in issue_uow.committed] == [aggregate.NibIssued]
    assert issue_uow.committed[0].application_id == application.id
    assert (issued.status, store.applications[application.id].status) == ("issued", "issued")
    assert (store.businesses[b.id].nib_status, store.businesses[b.id].nib, store.businesses[b.id].version) == (
        "issued", "1234567890123", 3,
    )  # fmt: skip


async def test_an_issued_nib_without_a_date_is_dated_today_in_kupang(store, deps) -> None:
    b = await register(store, deps)
    application = await apply(store, deps, b.id)

    issued = await handlers.record_nib_issued(
        RecordNibIssued(b.id, application.id, "1234567890123", None, OFFICER), new_uow(store), deps
    )

    assert issued.issued_on == date(2026, 3, 10)


async def test_a_second_application_while_one_is_pending_is_a_conflict_and_changes_nothing(store, deps) -> None:
    b = await register(store, deps)
    await apply(store, deps, b.id)
    before = dict(store.businesses)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.apply_for_nib(ApplyForNib(b.id, OFFICER), uow, deps)

    assert exc.value.code == "nib_application_pending"
    assert store.businesses == before
    assert len(store.applications) == 1
    assert uow.committed == []


async def test_issuing_an_nib_held_by_another_business_is_a_conflict_and_rolls_back(store, deps) -> None:
    await register(store, deps, YOHANES, nib="1234567890123")
    b = await register(store, deps)
    application = await apply(store, deps, b.id)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.record_nib_issued(
            RecordNibIssued(b.id, application.id, "1234567890123", None, OFFICER), uow, deps
        )

    assert exc.value.code == "nib_taken"
    assert store.businesses[b.id].nib_status == "applied"
    assert store.applications[application.id].status == "pending"
    assert uow.rollbacks == 1


async def test_an_application_of_another_business_is_not_found(store, deps) -> None:
    maria = await register(store, deps)
    yohanes = await register(store, deps, YOHANES)
    application = await apply(store, deps, maria.id)

    with pytest.raises(NotFound):
        await handlers.record_nib_rejected(RecordNibRejected(yohanes.id, application.id, "salah", OFFICER),
                                           new_uow(store), deps)  # fmt: skip


async def test_a_rejection_is_recorded_with_its_reason(store, deps) -> None:
    b = await register(store, deps)
    application = await apply(store, deps, b.id)
    uow = new_uow(store)

    rejected = await handlers.record_nib_rejected(
        RecordNibRejected(b.id, application.id, "KBLI tidak sesuai", OFFICER), uow, deps
    )

    assert (rejected.status, rejected.reason) == ("rejected", "KBLI tidak sesuai")
    assert uow.outbox[0].event_type == "NIBRejected"
    assert uow.outbox[0].payload["reason"] == "KBLI tidak sesuai"


async def test_closing_a_business_commits_a_closed_event(store, deps) -> None:
    b = await register(store, deps)
    uow = new_uow(store)

    gone = await handlers.close_business(CloseBusiness(b.id, "usaha berhenti", OFFICER), uow, deps)

    assert store.businesses[b.id].status == "closed"
    assert uow.committed == [aggregate.Closed(gone)]
    assert uow.outbox[0].event_type == "BusinessClosed"


# ---------------------------------------------------------------------------------------------------------------
# Officers limited to kecamatan
# ---------------------------------------------------------------------------------------------------------------


async def test_an_officer_limited_to_a_kecamatan_may_not_register_a_business_in_another(store, deps) -> None:
    uow = new_uow(store, OEBOBO_OFFICER)

    with pytest.raises(Forbidden):
        await handlers.register_business(RegisterBusiness(form(YOHANES), OEBOBO_OFFICER), uow, deps)  # Alak

    assert store.businesses == {}
    assert (uow.begun, uow.commits, uow.outbox) == (0, 0, [])


async def test_an_officer_limited_to_a_kecamatan_registers_and_looks_after_businesses_there(store, deps) -> None:
    by = OEBOBO_OFFICER

    maria = await handlers.register_business(RegisterBusiness(form(), by), new_uow(store, by), deps)
    changes = BusinessChanges(phone=NEW_PHONE)
    await handlers.update_business(UpdateBusiness(maria.id, changes, by), new_uow(store, by), deps)
    application = await handlers.apply_for_nib(ApplyForNib(maria.id, by), new_uow(store, by), deps)
    await handlers.record_nib_issued(
        RecordNibIssued(maria.id, application.id, "1234567890123", None, by), new_uow(store, by), deps
    )
    nik = await handlers.reveal_nik(RevealNik(maria.id, by), new_uow(store, by), deps)
    await handlers.close_business(CloseBusiness(maria.id, "usaha berhenti", by), new_uow(store, by), deps)

    assert nik == MARIA_NIK
    assert (store.businesses[maria.id].status, store.businesses[maria.id].version) == ("closed", 5)


@pytest.fixture
async def alak(store, deps) -> tuple[Business, NibApplication]:
    """Yohanes's business in Alak (53.71.01), with a pending NIB application, registered by a city-wide officer."""
    yohanes = await register(store, deps, YOHANES)
    return yohanes, await apply(store, deps, yohanes.id)


# Each step an officer takes on a registered business, given (business id, pending application id, officer).
STEPS: dict[str, Callable[[uuid.UUID, uuid.UUID, Principal], Any]] = {
    "update": lambda b, _, by: (handlers.update_business, UpdateBusiness(b, BusinessChanges(phone=NEW_PHONE), by)),
    "close": lambda b, _, by: (handlers.close_business, CloseBusiness(b, "usaha berhenti", by)),
    "apply for an NIB": lambda b, _, by: (handlers.apply_for_nib, ApplyForNib(b, by)),
    "record an NIB issued": lambda b, a, by: (
        handlers.record_nib_issued, RecordNibIssued(b, a, "1234567890123", None, by)
    ),
    "record an NIB rejected": lambda b, a, by: (handlers.record_nib_rejected, RecordNibRejected(b, a, "salah", by)),
    "reveal the NIK": lambda b, _, by: (handlers.reveal_nik, RevealNik(b, by)),
}


@pytest.mark.parametrize("step", STEPS)
async def test_an_officer_limited_to_a_kecamatan_is_forbidden_every_step_on_a_business_in_another(
    store, deps, alak, step
) -> None:
    yohanes, application = alak
    handle, command = STEPS[step](yohanes.id, application.id, OEBOBO_OFFICER)
    before = store.snapshot()
    uow = new_uow(store, OEBOBO_OFFICER)

    with pytest.raises(Forbidden) as exc:
        await handle(command, uow, deps)

    assert "Alak" in str(exc.value)  # says where the business is
    assert (uow.commits, uow.committed, uow.outbox, uow.audit_trail) == (0, [], [], [])
    assert store.snapshot() == before


async def test_an_officer_limited_to_a_kecamatan_may_not_move_a_business_into_another(store, deps) -> None:
    maria = await register(store, deps)  # Oebobo
    uow = new_uow(store, OEBOBO_OFFICER)

    with pytest.raises(Forbidden):
        await handlers.update_business(
            UpdateBusiness(maria.id, BusinessChanges(kecamatan="Alak", kelurahan="Namosain"), OEBOBO_OFFICER), uow, deps
        )

    assert store.businesses[maria.id] == maria
    assert uow.committed == []


async def test_an_import_by_an_officer_limited_to_a_kecamatan_reports_rows_of_other_kecamatan(store, deps) -> None:
    uow = new_uow(store, OEBOBO_OFFICER)

    report = await import_rows([(2, csv_row(MARIA)), (3, csv_row(YOHANES))], uow, deps, by=OEBOBO_OFFICER)

    assert report.registered == 1
    assert [(e.line, e.field, e.code) for e in report.errors] == [(3, "kecamatan", "scope.kecamatan")]
    assert [b.business_name for b in store.businesses.values()] == ["Sei Sapi Ibu Maria"]
    assert [e.event_type for e in uow.outbox] == ["BusinessRegistered"]


async def test_an_import_by_an_officer_limited_to_a_kecamatan_cannot_move_a_business_of_another_into_it(
    store, deps, alak
) -> None:
    yohanes, _ = alak
    uow = new_uow(store, OEBOBO_OFFICER)
    # The row names Yohanes's business (same NIK and name), registered in Alak, as being in Oebobo.
    row = csv_row(YOHANES, kecamatan="Oebobo", kelurahan="Fatululi")

    report = await import_rows([(2, row)], uow, deps, by=OEBOBO_OFFICER)

    assert [(e.line, e.code) for e in report.errors] == [(2, "scope.kecamatan")]
    assert store.businesses[yohanes.id].kecamatan.name == "Alak"
    assert uow.committed == []


# ---------------------------------------------------------------------------------------------------------------
# refresh_youth_flags
# ---------------------------------------------------------------------------------------------------------------

# A man born 5 March 1995, KTP from Oebobo: 30 on 1 March 2026, 31 from 5 March 2026.
TURNS_31_IN_MARCH = {**YOHANES, "business_name": "Kios Pulsa Adi", "owner_nik": "5371040503950001",
                     "owner_birth_date": "1995-03-05", "phone": "0813 5555 6666"}  # fmt: skip
# Another, born 15 March 1995.
TURNS_31_IN_MARCH_TOO = {**TURNS_31_IN_MARCH, "business_name": "Bengkel Las Budi", "owner_nik": "5371041503950001",
                         "owner_birth_date": "1995-03-15", "phone": "0813 7777 8888"}  # fmt: skip
FIRST_OF_APRIL = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 1 April 2026 00.00 WITA


async def test_the_youth_sweep_publishes_the_cleared_flag_of_an_owner_who_turned_thirty_one_last_month(
    store, deps, clock
) -> None:
    maria = await register(store, deps)  # 35: not a youth
    yohanes = await register(store, deps, YOHANES)  # 26: a youth
    adi = await register(store, deps, TURNS_31_IN_MARCH)  # registered on 10 March, already 31...
    assert (maria.youth_owned, yohanes.youth_owned, adi.youth_owned) == (False, True, True)  # ...but 30 on 1 March
    clock.set(FIRST_OF_APRIL)
    uow = FakeUnitOfWork(store, Cause.timer("registry"))

    refreshed = await handlers.refresh_youth_flags(RefreshYouthFlags(), uow, deps)

    assert refreshed == 1
    after = store.businesses[adi.id]
    assert (after.youth_owned, after.version, after.updated_at) == (False, 2, FIRST_OF_APRIL)
    assert uow.committed == [aggregate.Updated(after, ("youth_owned",))]
    (envelope,) = uow.outbox
    assert (envelope.event_type, envelope.aggregate_id, envelope.actor) == ("BusinessUpdated", str(adi.id), "registry")
    assert envelope.payload["changed_fields"] == ["youth_owned"]
    assert (envelope.payload["youth_owned"], envelope.payload["business_version"]) == (False, 2)
    assert store.businesses[maria.id] == maria and store.businesses[yohanes.id] == yohanes


async def test_the_youth_sweep_publishes_nothing_later_in_the_month_of_the_thirty_first_birthday(
    store, deps, clock
) -> None:
    adi = await register(store, deps, TURNS_31_IN_MARCH)
    clock.set(FIRST_OF_APRIL - timedelta(minutes=1))  # 31 March 23.59 WITA
    uow = FakeUnitOfWork(store, Cause.timer("registry"))

    assert await handlers.refresh_youth_flags(RefreshYouthFlags(), uow, deps) == 0

    assert store.businesses[adi.id] == adi
    assert (uow.committed, uow.outbox) == ([], [])


async def test_the_youth_sweep_publishes_each_change_once(store, deps, clock) -> None:
    await register(store, deps, TURNS_31_IN_MARCH)
    clock.set(FIRST_OF_APRIL)
    await handlers.refresh_youth_flags(RefreshYouthFlags(), FakeUnitOfWork(store, Cause.timer("registry")), deps)
    clock.set(FIRST_OF_APRIL + timedelta(days=10))
    again = FakeUnitOfWork(store, Cause.timer("registry"))

    assert await handlers.refresh_youth_flags(RefreshYouthFlags(), again, deps) == 0
    assert again.outbox == []


async def test_the_youth_sweep_refreshes_at_most_its_limit_per_unit_of_work(store, deps, clock) -> None:
    await register(store, deps, TURNS_31_IN_MARCH)
    await register(store, deps, TURNS_31_IN_MARCH_TOO)
    clock.set(FIRST_OF_APRIL)
    sweep = RefreshYouthFlags(limit=1)

    counts = [await handlers.refresh_youth_flags(sweep, FakeUnitOfWork(store), deps) for _ in range(3)]

    assert counts == [1, 1, 0]
    assert not any(b.youth_owned for b in store.businesses.values())


async def test_the_youth_sweep_leaves_a_closed_business_alone(store, deps, clock) -> None:
    adi = await register(store, deps, TURNS_31_IN_MARCH)
    await handlers.close_business(CloseBusiness(adi.id, "usaha berhenti", OFFICER), new_uow(store), deps)
    closed = store.businesses[adi.id]
    clock.set(FIRST_OF_APRIL)
    uow = FakeUnitOfWork(store, Cause.timer("registry"))

    assert await handlers.refresh_youth_flags(RefreshYouthFlags(), uow, deps) == 0
    assert store.businesses[adi.id] == closed
    assert uow.outbox == []


# ---------------------------------------------------------------------------------------------------------------
# import_rows
# ---------------------------------------------------------------------------------------------------------------

BAD_NIK_AND_PHONE = csv_row(MARIA, business_name="Kios Pulsa Lasiana", owner_birth_date="18-08-1990", phone="0380 821234")
NO_OWNER_NAME = {k: v for k, v in csv_row(YOHANES, owner_nik="5371010101000003").items() if k != "owner_name"}


def first_import() -> list[tuple[int, dict[str, str]]]:
    return [(2, csv_row(MARIA)), (3, BAD_NIK_AND_PHONE), (4, csv_row(YOHANES)), (5, NO_OWNER_NAME)]


async def test_an_import_registers_the_good_rows_and_reports_each_bad_row_by_line_and_field(store, deps) -> None:
    uow = new_uow(store)

    report = await import_rows(first_import(), uow, deps)

    assert (report.received, report.registered, report.updated, report.unchanged) == (4, 2, 0, 0)
    assert {(e.line, e.field, e.code) for e in report.errors} == {
        (3, "owner_nik", "nik.birth_date_mismatch"),
        (3, "phone", "phone.not_mobile"),
        (5, "owner_name", "missing"),
    }
    assert [e.line for e in report.errors] == sorted(e.line for e in report.errors)
    assert sorted(b.business_name for b in store.businesses.values()) == ["Bengkel Motor Yohanes", "Sei Sapi Ibu Maria"]
    assert set(store.sources.values()) == {"import"}
    assert [(type(e), e.source) for e in uow.committed] == [(aggregate.Registered, "import")] * 2
    assert uow.commits == 1


async def test_an_imports_rows_are_decided_off_the_event_loop(store, deps) -> None:
    # Thousands of rows sharing one phone are each compared with every earlier one: seconds of CPU.
    class Recording(FakeUnitOfWork):
        threads: set[int] = set()

        def emit(self, event) -> None:  # noqa: ANN001
            self.threads.add(threading.get_ident())
            super().emit(event)

    report = await import_rows(first_import(), Recording(store, Cause.request(uuid.uuid4(), OFFICER.actor)), deps)
    assert report.registered == 2
    assert Recording.threads and threading.get_ident() not in Recording.threads


async def test_an_import_cancelled_while_its_rows_are_decided_stops_deciding_them(store, deps, monkeypatch) -> None:
    # The thread outlives the request's coroutine: without being told, it went on through every row.
    entered, release = threading.Event(), threading.Event()
    pool, running = ThreadPoolExecutor(2), []

    async def to_thread(fn, *args):  # noqa: ANN001, ANN202 - asyncio.to_thread, keeping each thread's future
        running.append(pool.submit(fn, *args))
        return await asyncio.wrap_future(running[-1])

    class Held(FakeUnitOfWork):
        emitted = 0

        def emit(self, event) -> None:  # noqa: ANN001
            Held.emitted += 1
            entered.set()
            release.wait(10)
            super().emit(event)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    importing = asyncio.create_task(import_rows(first_import(), Held(store, Cause.request(uuid.uuid4(), "t")), deps))
    await asyncio.wrap_future(pool.submit(entered.wait, 10))
    importing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await importing
    release.set()
    running[-1].result(timeout=10)  # the thread's end
    pool.shutdown()
    assert Held.emitted == 1  # the first row's event, emitted as it was cancelled; none after
    assert store.businesses == {}


async def test_importing_the_same_rows_again_changes_nothing(store, deps) -> None:
    await import_rows(first_import(), new_uow(store), deps)
    before = dict(store.businesses)
    uow = new_uow(store)

    report = await import_rows(first_import(), uow, deps)

    assert (report.registered, report.updated, report.unchanged) == (0, 0, 2)
    assert {e.line for e in report.errors} == {3, 5}  # the bad rows are still bad
    assert store.businesses == before
    assert (uow.committed, uow.outbox) == ([], [])


async def test_importing_again_a_row_that_gives_only_annual_sales_changes_nothing(store, deps) -> None:
    row = csv_row(MARIA, capital_rupiah="")
    await import_rows([(2, row)], new_uow(store), deps)
    uow = new_uow(store)

    report = await import_rows([(2, row)], uow, deps)

    assert (report.registered, report.unchanged, report.errors) == (0, 1, [])
    assert uow.committed == []


async def test_importing_again_a_row_whose_address_has_extra_spaces_or_a_line_break_changes_nothing(store, deps) -> None:
    row = csv_row(MARIA, address="Jl. Frans  Seda 12,\nOebobo")  # two spaces; Alt+Enter in a spreadsheet cell
    await import_rows([(2, row)], new_uow(store), deps)
    uow = new_uow(store)

    report = await import_rows([(2, row)], uow, deps)

    assert (report.updated, report.unchanged, report.errors) == (0, 1, [])
    assert [b.address for b in store.businesses.values()] == ["Jl. Frans Seda 12, Oebobo"]


async def test_a_list_without_capital_or_sales_updates_a_registered_business_but_cannot_register_a_new_one(
    store, deps
) -> None:
    b = await register(store, deps)
    def without_money(row: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in row.items() if k not in ("capital_rupiah", "annual_sales_rupiah")}

    uow = new_uow(store)
    report = await import_rows([(2, without_money(csv_row(MARIA, phone="081298765432"))),
                                (3, without_money(csv_row(YOHANES)))], uow, deps)  # fmt: skip

    assert (report.registered, report.updated) == (0, 1)
    assert [(e.line, e.field, e.code) for e in report.errors] == [(3, "annual_sales_rupiah", "scale.missing")]
    kept = store.businesses[b.id]
    assert (kept.phone, kept.scale, kept.annual_sales_rupiah) == ("+6281298765432", b.scale, b.annual_sales_rupiah)


async def test_a_row_about_a_closed_business_says_it_was_closed_when_it_would_change_it_and_nothing_otherwise(
    store, deps
) -> None:
    b = await register(store, deps)
    await handlers.close_business(CloseBusiness(b.id, "usaha tutup", OFFICER), new_uow(store), deps)
    closed = store.businesses[b.id]
    unchanged = await import_rows([(2, csv_row(MARIA))], new_uow(store), deps)
    uow = new_uow(store)

    report = await import_rows([(3, csv_row(MARIA, address="Jl. Baru 1"))], uow, deps)

    assert (unchanged.unchanged, unchanged.errors) == (1, [])
    assert [(e.line, e.code) for e in report.errors] == [(3, "business_closed")]
    assert "address" in report.errors[0].message and "POST /businesses" in report.errors[0].message
    assert store.businesses[b.id] == closed and uow.committed == []


async def test_a_row_about_a_closed_business_of_another_kecamatan_says_only_that_it_is_outside_the_officers(
    store, deps, alak
) -> None:
    yohanes, _ = alak
    await handlers.close_business(CloseBusiness(yohanes.id, "usaha tutup", OFFICER), new_uow(store), deps)
    # Which fields differ would confirm or refute a guess of the owner's phone, one row at a time.
    guesses = [(2, csv_row(YOHANES, kecamatan="Oebobo", kelurahan="Fatululi", phone=phone))
               for phone in ("+6281211112222", yohanes.phone)]  # fmt: skip

    reports = [await import_rows([guess], new_uow(store, OEBOBO_OFFICER), deps, by=OEBOBO_OFFICER) for guess in guesses]

    assert [(e.code, e.message) for report in reports for e in report.errors] == [(
        "scope.kecamatan", "the business is registered outside the kecamatan your token allows; ask an officer of the city",
    )] * 2  # fmt: skip


async def test_renaming_a_business_to_the_name_of_the_owner_s_other_business_is_a_conflict_and_changes_nothing(
    store, deps
) -> None:
    warung = await register(store, deps, business_name="Warung Sei Sapi Maria")
    bengkel = await register(store, deps, business_name="Bengkel Maria Jaya", kbli_code="45201", confirm_distinct="ya")
    uow = new_uow(store)

    with pytest.raises(Conflict) as refused:
        await handlers.update_business(UpdateBusiness(bengkel.id, BusinessChanges(business_name="Sei-Sapi Maria"), OFFICER),
                                       uow, deps)  # fmt: skip

    assert (refused.value.code, refused.value.details) == ("already_registered", {"existing_business_id": str(warung.id)})
    assert store.businesses[bengkel.id] == bengkel and uow.committed == []


async def test_a_rename_takes_the_owner_s_identity_lock_before_the_business_s_row(store, deps) -> None:
    b = await register(store, deps)
    before = store.identity_locks

    await handlers.update_business(UpdateBusiness(b.id, BusinessChanges(business_name="Sei Sapi Oma Maria"), OFFICER),
                                   new_uow(store), deps)  # fmt: skip

    assert store.identity_locks == before + 1


async def test_a_probable_duplicate_of_another_kecamatan_is_not_named_to_an_officer_limited_to_one(store, deps, alak) -> None:
    yohanes, _ = alak
    in_oebobo = {"kecamatan": "Oebobo", "kelurahan": "Fatululi", "business_name": "Bengkel Motor Yohanes Kupang"}

    with pytest.raises(Conflict) as registered:
        await handlers.register_business(RegisterBusiness(form(YOHANES, **in_oebobo), OEBOBO_OFFICER),
                                         new_uow(store, OEBOBO_OFFICER), deps)  # fmt: skip
    report = await import_rows([(2, csv_row(YOHANES, **in_oebobo))], new_uow(store, OEBOBO_OFFICER), deps,
                               by=OEBOBO_OFFICER)  # fmt: skip

    assert (registered.value.code, registered.value.details) == ("probable_duplicate", {})
    [row] = report.errors
    assert row.code == "probable_duplicate"
    for said in (registered.value.message, row.message):
        assert "outside the kecamatan your token allows" in said
        assert str(yohanes.id) not in said and "Bengkel" not in said and "Alak" not in said
    assert len(store.businesses) == 1


async def test_a_city_wide_officer_is_told_which_business_a_probable_duplicate_is(store, deps, alak) -> None:
    yohanes, _ = alak
    in_oebobo = {"kecamatan": "Oebobo", "kelurahan": "Fatululi", "business_name": "Bengkel Motor Yohanes Kupang"}

    with pytest.raises(Conflict) as registered:
        await handlers.register_business(RegisterBusiness(form(YOHANES, **in_oebobo), OFFICER), new_uow(store), deps)

    assert registered.value.details["existing_business_id"] == str(yohanes.id)


async def test_a_list_without_the_address_or_capital_an_officer_recorded_keeps_them(store, deps) -> None:
    b = await register(store, deps, address="Jl. Frans Seda 12")
    row = {k: v for k, v in csv_row(MARIA, address="").items() if k != "capital_rupiah"}
    uow = new_uow(store)

    report = await import_rows([(2, row)], uow, deps)

    assert (report.updated, report.unchanged, report.errors) == (0, 1, [])
    assert uow.committed == []
    kept = store.businesses[b.id]
    assert (kept.address, kept.capital_rupiah, kept.annual_sales_rupiah, kept.scale, kept.version) == (
        "Jl. Frans Seda 12", b.capital_rupiah, b.annual_sales_rupiah, b.scale, b.version)  # fmt: skip


async def test_a_list_that_gives_only_a_new_capital_changes_the_capital_and_keeps_the_sales(store, deps) -> None:
    b = await register(store, deps)
    uow = new_uow(store)

    report = await import_rows([(2, csv_row(MARIA, capital_rupiah="20.000.000", annual_sales_rupiah=""))], uow, deps)

    assert (report.updated, report.errors) == (1, [])
    assert [e.changed_fields for e in uow.committed] == [("capital_rupiah",)]
    assert (store.businesses[b.id].capital_rupiah, store.businesses[b.id].annual_sales_rupiah) == (
        20_000_000, b.annual_sales_rupiah)  # fmt: skip


async def test_a_row_repeated_within_one_import_is_reported_as_repeated(store, deps) -> None:
    report = await import_rows([(2, csv_row(MARIA)), (7, csv_row(MARIA, owner_name="Maria G. Ndun"))],
                               new_uow(store), deps)  # fmt: skip

    assert report.registered == 1
    assert [(e.line, e.field, e.code) for e in report.errors] == [(7, "business_name", "import.repeated_row")]
    assert "line 2" in report.errors[0].message
    assert len(store.businesses) == 1


async def test_a_row_like_an_earlier_row_of_the_same_import_is_a_probable_duplicate(store, deps) -> None:
    rows = [(2, csv_row(MARIA)), (3, csv_row(MARIA, business_name="Sapi Maria"))]

    report = await import_rows(rows, new_uow(store), deps)

    assert report.registered == 1
    assert [(e.line, e.code) for e in report.errors] == [(3, "probable_duplicate")]
    assert "line 2" in report.errors[0].message
    assert "import again" in report.errors[0].message


async def test_a_row_with_a_longer_version_of_an_earlier_row_s_name_is_a_probable_duplicate(store, deps) -> None:
    rows = [(2, csv_row(MARIA)), (3, csv_row(MARIA, business_name="Sei Sapi Maria Kupang"))]

    report = await import_rows(rows, new_uow(store), deps)

    assert [(e.line, e.code) for e in report.errors] == [(3, "probable_duplicate")]


async def test_an_imported_row_like_an_already_registered_business_is_a_probable_duplicate(store, deps) -> None:
    await register(store, deps)

    report = await import_rows([(2, csv_row(MARIA, business_name="Sei Sapi Maria Kupang"))], new_uow(store), deps)

    assert report.registered == 0
    assert [(e.line, e.field, e.code) for e in report.errors] == [(2, "business_name", "probable_duplicate")]


async def test_an_imported_probable_duplicate_marked_confirm_distinct_is_registered(store, deps) -> None:
    await register(store, deps)

    report = await import_rows(
        [(2, csv_row(MARIA, business_name="Sei Sapi Maria Kupang", confirm_distinct="ya"))], new_uow(store), deps
    )

    assert (report.registered, report.errors) == (1, [])


async def test_reimporting_a_business_with_a_new_nib_records_the_nib_and_emits_nib_issued(store, deps) -> None:
    await import_rows([(2, csv_row(MARIA))], new_uow(store), deps)
    uow = new_uow(store)

    report = await import_rows([(2, csv_row(MARIA, nib="1234567890123"))], uow, deps)

    assert (report.registered, report.updated, report.unchanged) == (0, 1, 0)
    (b,) = store.businesses.values()
    assert (b.nib_status, b.nib, b.version) == ("issued", "1234567890123", 2)
    assert uow.committed == [aggregate.NibIssued(b, None, "1234567890123", date(2026, 3, 10))]
    assert uow.outbox[0].event_type == "NIBIssued"
    assert uow.outbox[0].payload["application_id"] is None


@pytest.mark.parametrize("outcome", ["rejected", "issued with another NIB", "issued with the same NIB"])
async def test_an_oss_outcome_for_an_application_an_import_overtook_with_the_nib_changes_nothing(store, deps, outcome):
    b = await register(store, deps)
    application = await apply(store, deps, b.id)
    await import_rows([(2, csv_row(MARIA, nib="1234567890123"))], new_uow(store), deps)
    before, uow = store.businesses[b.id], new_uow(store)

    with pytest.raises(Conflict, match="already has NIB 1234567890123") as exc:
        if outcome == "rejected":
            await handlers.record_nib_rejected(handlers.RecordNibRejected(b.id, application.id, "data tidak lengkap",
                                                                          OFFICER), uow, deps)  # fmt: skip
        else:
            nib = "1234567890123" if outcome.endswith("same NIB") else "9999999999999"
            await handlers.record_nib_issued(RecordNibIssued(b.id, application.id, nib, None, OFFICER), uow, deps)

    assert exc.value.code == "nib_already_recorded"
    assert (store.businesses[b.id], uow.committed) == (before, [])
    assert (before.nib_status, before.nib) == ("issued", "1234567890123")


async def test_reimporting_a_business_with_a_new_phone_updates_it(store, deps) -> None:
    await import_rows([(2, csv_row(MARIA))], new_uow(store), deps)
    uow = new_uow(store)

    report = await import_rows([(2, csv_row(MARIA, phone=NEW_PHONE))], uow, deps)

    assert report.updated == 1
    (b,) = store.businesses.values()
    assert uow.committed == [aggregate.Updated(b, ("phone",))]


async def test_a_second_line_about_one_registered_business_is_reported_so_importing_the_file_again_changes_nothing(
    store, deps
) -> None:
    b = await register(store, deps)
    rows = [(2, csv_row(MARIA, phone=NEW_PHONE)), (5, csv_row(MARIA, address="Jl. Baru 1", phone="+6281211112222"))]
    first = await import_rows(rows, new_uow(store), deps)
    after_first = store.businesses[b.id]
    again = [new_uow(store), new_uow(store)]

    reports = [await import_rows(rows, uow, deps) for uow in again]

    assert (first.updated, [(e.line, e.code) for e in first.errors]) == (1, [(5, "import.repeated_row")])
    assert "line 2" in first.errors[0].message and "remove the other" in first.errors[0].message
    assert (after_first.version, after_first.phone, after_first.address) == (b.version + 1, "+6281399990000", b.address)
    assert [(r.updated, r.unchanged, [(e.line, e.code) for e in r.errors]) for r in reports] == [
        (0, 1, [(5, "import.repeated_row")])] * 2  # fmt: skip
    assert [uow.outbox for uow in again] == [[], []]
    assert store.businesses[b.id] == after_first


async def test_a_new_nib_and_a_new_phone_in_one_row_for_a_registered_business_get_consecutive_versions(
    store, deps
) -> None:
    b = await register(store, deps)
    uow = new_uow(store)

    report = await import_rows([(4, csv_row(MARIA, nib="1234567890123", phone=NEW_PHONE))], uow, deps)

    assert (report.updated, report.errors) == (1, [])
    assert [(e.event_type, e.aggregate_version) for e in uow.outbox] == [("BusinessUpdated", 2), ("NIBIssued", 3)]
    stored = store.businesses[b.id]
    assert (stored.version, stored.nib, stored.phone) == (3, "1234567890123", "+6281399990000")


async def test_an_owners_second_business_whose_name_differs_only_by_words_like_warung_never_overwrites_the_first(
    store, deps
) -> None:
    warung = await register(store, deps, business_name="Warung Sei Sapi Maria")
    uow = new_uow(store)
    kios = csv_row(MARIA, business_name="Kios Sei Sapi Maria", kbli_code="47711", address="Pasar Oeba",
                   confirm_distinct="ya")  # fmt: skip

    report = await import_rows([(2, kios)], uow, deps)

    assert (report.registered, report.updated) == (0, 0)
    assert [(e.line, e.field, e.code) for e in report.errors] == [(2, "business_name", "already_registered")]
    assert "'Warung Sei Sapi Maria'" in report.errors[0].message and f"PATCH /businesses/{warung.id}" in (
        report.errors[0].message)  # fmt: skip
    assert store.businesses == {warung.id: warung} and uow.outbox == []


async def test_a_reimported_name_differing_only_in_case_and_punctuation_is_the_same_business_spelled_better(
    store, deps
) -> None:
    b = await register(store, deps, business_name="sei sapi maria")
    uow = new_uow(store)

    report = await import_rows([(2, csv_row(MARIA, business_name="Sei-Sapi Maria"))], uow, deps)

    assert (report.updated, report.errors) == (1, [])
    assert store.businesses[b.id].business_name == "Sei-Sapi Maria"


async def test_reimporting_a_business_with_a_different_nib_than_it_has_is_reported_not_applied(store, deps) -> None:
    await import_rows([(2, csv_row(MARIA, nib="1234567890123"))], new_uow(store), deps)
    uow = new_uow(store)

    report = await import_rows([(9, csv_row(MARIA, nib="9999999999999"))], uow, deps)

    assert [(e.line, e.field, e.code) for e in report.errors] == [(9, "nib", "nib.differs")]
    assert next(iter(store.businesses.values())).nib == "1234567890123"
    assert uow.committed == []


async def test_an_imported_row_with_an_nib_held_by_another_business_is_reported(store, deps) -> None:
    await register(store, deps, YOHANES, nib="1234567890123")

    report = await import_rows([(2, csv_row(MARIA, nib="1234567890123"))], new_uow(store), deps)

    assert [(e.line, e.field, e.code) for e in report.errors] == [(2, "nib", "nib_taken")]
    assert len(store.businesses) == 1


async def test_an_import_of_only_bad_rows_opens_no_transaction(store, deps) -> None:
    uow = new_uow(store)

    report = await import_rows([(2, BAD_NIK_AND_PHONE)], uow, deps)

    assert report.registered == 0
    assert {e.field for e in report.errors} == {"owner_nik", "phone"}
    assert (uow.begun, uow.commits, store.identity_locks) == (0, 0, 0)


# ---------------------------------------------------------------------------------------------------------------
# What events never carry: a NIK, a birth date
# ---------------------------------------------------------------------------------------------------------------


async def test_no_envelope_written_by_a_registration_or_an_import_carries_a_nik(store, deps) -> None:
    uow1, uow2 = new_uow(store), new_uow(store)
    await handlers.register_business(RegisterBusiness(form(), OFFICER), uow1, deps)
    await import_rows([(2, csv_row(YOHANES))], uow2, deps)

    for envelope in uow1.outbox + uow2.outbox:
        text = envelope.to_json_bytes().decode()
        assert MARIA_NIK not in text and YOHANES_NIK not in text


def dates_in(value: Any) -> Iterator[date]:
    """Every date written in a JSON value (ISO dates and the dates of ISO timestamps)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from dates_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from dates_in(item)
    elif isinstance(value, str):
        for found in re.findall(r"\d{4}-\d{2}-\d{2}", value):
            yield date.fromisoformat(found)


async def test_no_registry_event_payload_carries_a_birth_date_or_a_date_derived_from_one(store, deps, clock) -> None:
    uows: list[FakeUnitOfWork] = []

    def uow() -> FakeUnitOfWork:
        uows.append(new_uow(store))
        return uows[-1]

    maria = await handlers.register_business(RegisterBusiness(form(), OFFICER), uow(), deps)
    await import_rows([(2, csv_row(YOHANES)), (3, csv_row(TURNS_31_IN_MARCH))], uow(), deps)
    await handlers.update_business(UpdateBusiness(maria.id, BusinessChanges(phone=NEW_PHONE), OFFICER), uow(), deps)
    application = await handlers.apply_for_nib(ApplyForNib(maria.id, OFFICER), uow(), deps)
    await handlers.record_nib_issued(
        RecordNibIssued(maria.id, application.id, "1234567890123", None, OFFICER), uow(), deps
    )
    await handlers.close_business(CloseBusiness(maria.id, "usaha berhenti", OFFICER), uow(), deps)
    clock.set(FIRST_OF_APRIL)
    await handlers.refresh_youth_flags(RefreshYouthFlags(), uow(), deps)

    envelopes = [e for u in uows for e in u.outbox]
    assert {e.event_type for e in envelopes} == {"BusinessRegistered", "BusinessUpdated", "NIBApplied", "NIBIssued",
                                                 "BusinessClosed"}  # fmt: skip
    births = [date.fromisoformat(b) for b in ("1990-08-17", "2000-01-01", "1995-03-05")]
    # A date on the owner's birthday in any year (birth date + N years), or the day before one (the last youth day).
    telling = {(d.month, d.day) for born in births for d in (born, born - timedelta(days=1))}
    published = [d for e in envelopes for d in dates_in(e.payload)]
    assert published  # registered_at, applied_at, issued_on, closed_at...
    assert [d for d in published if (d.month, d.day) in telling] == []
    assert not [key for e in envelopes for key in e.payload if "birth" in key or "youth_until" in key]


async def test_nib_coverage_is_published_for_partners_only_where_it_changed_since_it_was_last_published(store, deps) -> None:
    maria = await register(store, deps)  # Oebobo
    await register(store, deps, YOHANES)  # Alak

    first = new_uow(store)
    assert await handlers.publish_coverage(handlers.PublishCoverage(), first, deps) == 7  # six kecamatan, the city
    again = new_uow(store)
    assert await handlers.publish_coverage(handlers.PublishCoverage(), again, deps) == 0
    application = await apply(store, deps, maria.id)
    await handlers.record_nib_issued(RecordNibIssued(maria.id, application.id, "1234567890123", date(2026, 3, 9),
                                                     OFFICER), new_uow(store), deps)  # fmt: skip
    changed = new_uow(store)
    assert await handlers.publish_coverage(handlers.PublishCoverage(), changed, deps) == 2

    assert sorted((e.payload["region_code"], e.payload["registered"], e.payload["with_nib"]) for e in first.public) == [
        ("53.71", 2, 0), ("53.71.01", 1, 0), ("53.71.02", 0, 0), ("53.71.03", 0, 0), ("53.71.04", 1, 0),
        ("53.71.05", 0, 0), ("53.71.06", 0, 0)]  # fmt: skip
    assert (first.outbox, again.public) == ([], [])  # figures go to partners only
    assert sorted((e.payload["region_code"], e.payload["with_nib"]) for e in changed.public) == [("53.71", 1),
                                                                                                 ("53.71.04", 1)]


# ---------------------------------------------------------------------------------------------------------------
# Consented referrals
# ---------------------------------------------------------------------------------------------------------------

BRI = Partner("bri", "Bank Rakyat Indonesia", True)


def consent_form(**overrides: Any) -> ConsentForm:
    fields = {"partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI untuk modal kerja", "financing_programme": "KUR Mikro",
              "amount_sought_rupiah": 25_000_000}  # fmt: skip
    return ConsentForm(**{**fields, **overrides})


async def test_an_owners_consent_sends_that_partner_alone_what_it_needs_and_links_the_nik_with_its_own_key(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    uow = FakeUnitOfWork(store, Cause.request(uuid.uuid4(), OFFICER.actor))

    consent = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), uow, deps)

    [referral] = uow.public
    assert (referral.event_type, referral.aggregate_type, referral.aggregate_id) == (
        "ReferralConsented", "referral", str(consent.id))
    payload = referral.payload
    assert (payload["partner_id"], payload["owner_name"], payload["owner_phone"]) == ("bri", b.owner_name, b.phone)
    assert payload["owner_nik_link"] == nik_link(YOHANES_NIK, deps.vault.partner_key("bri")) != nik_link(
        YOHANES_NIK, deps.vault.partner_key("pos-indonesia"))
    assert YOHANES_NIK not in referral.model_dump_json()
    assert (payload["recorded_by"], referral.actor) == (OFFICER.subject, OFFICER.subject)
    assert uow.outbox == []  # nothing for the services: a consent changes no business


async def test_a_consent_to_an_unknown_or_revoked_partner_is_refused_and_nothing_is_shared(store, deps) -> None:
    b = await register(store, deps, YOHANES)
    with pytest.raises(InvalidInput) as unknown:
        await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), FakeUnitOfWork(store), deps)
    store.partners["bri"] = Partner("bri", "BRI", active=False)
    revoked = FakeUnitOfWork(store)
    with pytest.raises(Conflict):
        await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), revoked, deps)
    assert [e.field for e in unknown.value.errors] == ["partner_id"]
    assert (store.consents, revoked.public) == ({}, [])


async def test_withdrawing_consent_tells_the_partner_at_once_and_can_only_happen_once(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    consent = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), FakeUnitOfWork(store), deps)
    uow = FakeUnitOfWork(store)

    withdrawn = await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, consent.id, OFFICER), uow, deps)

    [told] = uow.public
    assert (told.event_type, told.payload["consent_id"], told.payload["partner_id"]) == (
        "ReferralConsentWithdrawn", str(consent.id), "bri")
    assert withdrawn.withdrawn_by == OFFICER.subject
    with pytest.raises(Conflict):
        await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, consent.id, OFFICER), FakeUnitOfWork(store), deps)


async def test_an_officer_of_another_kecamatan_cannot_record_an_owners_consent(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)  # Alak
    with pytest.raises(Forbidden):
        await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OEBOBO_OFFICER), FakeUnitOfWork(store), deps)
    assert store.consents == {}


async def test_an_admin_may_not_send_an_owners_contact_to_a_partner(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps)
    uow, admin = FakeUnitOfWork(store), Principal("admin@berdaya", frozenset({"admin"}))

    with pytest.raises(Forbidden, match="only an officer may send an owner's name, phone and NIK link"):
        await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), admin), uow, deps)

    assert (store.consents, uow.public) == ({}, [])


async def test_an_admin_may_not_withdraw_an_owners_consent_and_the_partner_is_told_nothing(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    given = handlers.GiveConsent(b.id, consent_form(), OFFICER)
    consent = await handlers.give_consent(given, FakeUnitOfWork(store), deps)
    uow, admin = FakeUnitOfWork(store), Principal("admin@berdaya", frozenset({"admin"}))

    with pytest.raises(Forbidden, match="only an officer may withdraw an owner's consent"):
        await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, consent.id, admin), uow, deps)

    assert (store.consents[consent.id].withdrawn_at, uow.public) == (None, [])


@pytest.mark.parametrize("field, typed", [
    ("purpose", "\u200b" * 10 + "\u202e"),  # zero-width spaces and a bidi override: nothing to read
    ("purpose", "\u3164" * 12),  # Hangul fillers: letters that show nothing
    ("purpose", "\u2067 1234567890 !!! \u2069"),  # nothing an owner could have agreed to
    ("financing_programme", "\u200b\u200d\ufeff"),
    ("financing_programme", "\u202e\u3164\u034f"),
])  # fmt: skip
async def test_a_consent_whose_purpose_or_programme_shows_no_letters_is_refused_naming_the_field(field, typed) -> None:
    with pytest.raises(ValidationError) as refused:
        consent_form(**{field: typed})

    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


async def test_a_consents_purpose_and_programme_are_kept_as_typed_less_what_no_one_can_see() -> None:
    form = consent_form(purpose="Rujukan\u200b KUR\u202e Mikro  BRI\u3164 untuk modal kerja",
                        financing_programme="KUR\u2066 Mikro\u2069\ufe0f")  # fmt: skip

    assert (form.purpose, form.financing_programme) == ("Rujukan KUR Mikro BRI untuk modal kerja", "KUR Mikro")


async def test_a_purpose_far_too_long_is_refused_for_its_length_without_being_cleaned_a_character_at_a_time() -> None:
    # 10 MB of it, with one accented letter, held the registry's event loop for 0.4 s before the length check.
    huge = "a" * 2_000_000 + "\u00e9"

    assert _visible(huge) is huge
    with pytest.raises(ValidationError) as refused:
        consent_form(purpose=huge)
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("purpose",), "string_too_long")]


async def test_a_withdrawal_after_the_partner_was_revoked_is_recorded_and_audited_not_sent(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    given = handlers.GiveConsent(b.id, consent_form(), OFFICER)
    consent = await handlers.give_consent(given, FakeUnitOfWork(store), deps)
    await handlers.set_up_partner(handlers.SetUpPartner("bri", BRI.name, active=False), FakeUnitOfWork(store), deps)
    uow = FakeUnitOfWork(store)

    withdrawn = await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, consent.id, OFFICER), uow, deps)

    assert uow.public == []  # the registry may no longer write the partner's topic: a row there would wait for ever
    assert store.consents[consent.id].withdrawn_at == withdrawn.withdrawn_at is not None
    assert [(a.action, a.aggregate_id) for a in uow.audit_trail] == [("ReferralConsentWithdrawn", str(consent.id))]


async def test_the_same_consent_recorded_again_is_the_one_given_and_the_partner_gets_one_referral(store, deps) -> None:
    # An officer's retry after a timeout sent the owner's data twice, and withdrawing "the" consent left the twin's
    # referral standing on the partner's topic.
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    first, again, other = FakeUnitOfWork(store), FakeUnitOfWork(store), FakeUnitOfWork(store)

    given = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), first, deps)
    repeated = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), again, deps)
    larger = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(amount_sought_rupiah=50_000_000),
                                                              OFFICER), other, deps)  # fmt: skip

    assert repeated == given and again.public == [] and len(first.public) == 1
    assert larger.id != given.id and len(other.public) == 1  # another amount sought: another referral
    await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, given.id, OFFICER), FakeUnitOfWork(store), deps)
    renewed = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), FakeUnitOfWork(store),
                                          deps)  # fmt: skip
    assert renewed.id not in (given.id, larger.id)  # given again after a withdrawal: a new consent


async def test_the_same_consent_recorded_months_later_is_the_owner_applying_again_and_a_new_referral(
        store, deps, clock) -> None:  # fmt: skip
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    january = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), FakeUnitOfWork(store),
                                          deps)  # fmt: skip
    clock.set(clock() + timedelta(minutes=16))  # past the window in which it is a retry
    uow = FakeUnitOfWork(store)

    june = await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(), OFFICER), uow, deps)

    assert june.id != january.id and len(uow.public) == 1


async def test_a_partner_admitted_again_is_first_told_of_every_withdrawal_of_its_consents(store, deps) -> None:
    store.partners["bri"] = BRI
    b = await register(store, deps, YOHANES)
    given = [await handlers.give_consent(handlers.GiveConsent(b.id, consent_form(amount_sought_rupiah=n * 10**7),
                                                              OFFICER), FakeUnitOfWork(store), deps)
             for n in (1, 2, 3)]  # fmt: skip
    await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, given[0].id, OFFICER), FakeUnitOfWork(store), deps)
    await handlers.set_up_partner(handlers.SetUpPartner("bri", BRI.name, active=False), FakeUnitOfWork(store), deps)
    await handlers.withdraw_consent(handlers.WithdrawConsent(b.id, given[1].id, OFFICER), FakeUnitOfWork(store), deps)

    again, still = FakeUnitOfWork(store), FakeUnitOfWork(store)
    await handlers.set_up_partner(handlers.SetUpPartner("bri", BRI.name), again, deps)
    await handlers.set_up_partner(handlers.SetUpPartner("bri", BRI.name), still, deps)

    told = sorted((e.event_type, e.payload["consent_id"]) for e in again.public)  # one withdrawal time: any order
    assert told == sorted(("ReferralConsentWithdrawn", str(c.id)) for c in given[:2])
    assert still.public == []  # an add run again for a partner never revoked tells nothing

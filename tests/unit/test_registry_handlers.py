"""Tests the registry's use cases (register, update, NIB steps, close, reveal, CSV import) against in-memory fakes."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from services.registry import domain, handlers
from services.registry.domain import BusinessChanges, YouthRange
from services.registry.events import translator
from services.registry.handlers import Deps
from shared.errors import Conflict, InvalidInput, NotFound

from .builders import MARIA, MARIA_NIK, NOW, YOHANES, YOHANES_NIK, form, rules, vault
from .fakes import FakeBusinessStore, FakeUnitOfWork, FixedClock

pytestmark = pytest.mark.asyncio


def new_deps() -> Deps:
    return Deps(rules=rules(), vault=vault(), clock=FixedClock(NOW))


def new_uow(store: FakeBusinessStore) -> FakeUnitOfWork:
    """One request's unit of work over the shared store, translating its events as the real one does."""
    return FakeUnitOfWork(store, translate=translator(YouthRange()))


def csv_row(base: dict[str, Any], **overrides: Any) -> dict[str, str]:
    """A row as the import receives it: every cell is text."""
    return {k: str(v) for k, v in {**base, **overrides}.items()}


@pytest.fixture
def store() -> FakeBusinessStore:
    return FakeBusinessStore()


@pytest.fixture
def deps() -> Deps:
    return new_deps()


# ---------------------------------------------------------------------------------------------------------------
# register_business
# ---------------------------------------------------------------------------------------------------------------


async def test_registering_writes_one_business_emits_one_registered_event_and_commits(store, deps) -> None:
    uow = new_uow(store)

    b = await handlers.register_business(form(), uow, deps)

    assert list(store.businesses.values()) == [b]
    assert store.sources[b.id] == "officer"
    assert uow.committed == [domain.Registered(b, "officer")]
    assert uow.commits == 1
    assert [e.event_type for e in uow.outbox] == ["BusinessRegistered"]
    assert store.identity_locks == 1


async def test_a_registered_nik_is_stored_only_as_a_keyed_digest_and_a_ciphertext(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)

    identity = store.identities[b.id]
    assert identity.digest == deps.vault.digest(MARIA_NIK)
    assert MARIA_NIK.encode() not in identity.ciphertext
    assert deps.vault.decrypt(identity.ciphertext) == MARIA_NIK
    assert b.nik_masked == "5371********0001"


async def test_an_authorised_officer_can_reveal_the_nik_of_a_registered_business(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)

    assert await handlers.reveal_nik(b.id, new_uow(store), deps) == MARIA_NIK
    with pytest.raises(NotFound):
        await handlers.reveal_nik(uuid.uuid4(), new_uow(store), deps)


async def test_a_probable_duplicate_registration_raises_conflict_and_commits_nothing(store, deps) -> None:
    first = await handlers.register_business(form(), new_uow(store), deps)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.register_business(form(business_name="Warung Sei Sapi Maria", phone="0813 1111 2222"), uow, deps)

    assert exc.value.code == "probable_duplicate"
    assert exc.value.details["existing_business_id"] == str(first.id)
    assert "confirm_distinct=true" in exc.value.message
    assert list(store.businesses) == [first.id]
    assert (uow.commits, uow.committed, uow.outbox) == (0, [], [])


async def test_confirm_distinct_registers_a_probable_duplicate_anyway(store, deps) -> None:
    await handlers.register_business(form(), new_uow(store), deps)
    uow = new_uow(store)

    second = await handlers.register_business(form(business_name="Warung Sei Sapi Maria", confirm_distinct="ya"), uow, deps)

    assert len(store.businesses) == 2
    assert uow.committed == [domain.Registered(second, "officer")]


async def test_the_same_owner_may_register_a_differently_named_second_business(store, deps) -> None:
    await handlers.register_business(form(), new_uow(store), deps)

    second = await handlers.register_business(form(business_name="Tenun Ikat Maria", kbli_code="13912"), new_uow(store), deps)

    assert len(store.businesses) == 2
    assert store.identities[second.id].digest == deps.vault.digest(MARIA_NIK)


async def test_registering_with_an_nib_that_another_business_holds_is_a_conflict(store, deps) -> None:
    holder = await handlers.register_business(form(nib="1234567890123"), new_uow(store), deps)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.register_business(form(YOHANES, nib="1234567890123"), uow, deps)

    assert (exc.value.code, exc.value.details) == ("nib_taken", {"existing_business_id": str(holder.id)})
    assert len(store.businesses) == 1
    assert uow.committed == []


async def test_an_invalid_registration_touches_nothing(store, deps) -> None:
    uow = new_uow(store)

    with pytest.raises(InvalidInput):
        await handlers.register_business(form(phone="0380 821234"), uow, deps)

    assert store.businesses == {}
    assert (uow.commits, store.identity_locks) == (0, 0)


# ---------------------------------------------------------------------------------------------------------------
# update, NIB steps, close
# ---------------------------------------------------------------------------------------------------------------


async def test_updating_a_business_saves_it_and_emits_updated_with_the_changed_fields(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)
    uow = new_uow(store)

    updated = await handlers.update_business(b.id, BusinessChanges(phone="0813 9999 0000"), uow, deps)

    assert store.businesses[b.id] == updated
    assert updated.version == 2
    assert uow.committed == [domain.Updated(updated, ("phone",))]
    assert uow.outbox[0].payload["changed_fields"] == ["phone"]


async def test_an_update_that_changes_nothing_commits_nothing(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)
    uow = new_uow(store)

    unchanged = await handlers.update_business(b.id, BusinessChanges(phone="+62 812 3456 7890"), uow, deps)

    assert unchanged == b
    assert (uow.commits, uow.committed) == (0, [])


async def test_updating_an_unknown_business_is_not_found(store, deps) -> None:
    with pytest.raises(NotFound):
        await handlers.update_business(uuid.uuid4(), BusinessChanges(phone="0813 9999 0000"), new_uow(store), deps)


async def test_an_nib_application_then_its_issue_each_commit_one_event(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)

    apply_uow = new_uow(store)
    application = await handlers.apply_for_nib(b.id, apply_uow, deps)
    issue_uow = new_uow(store)
    issued = await handlers.record_nib_issued(b.id, application.id, "1234567890123", date(2026, 3, 9), issue_uow, deps)

    assert [type(e) for e in apply_uow.committed] == [domain.NibApplied]
    assert [type(e) for e in issue_uow.committed] == [domain.NibIssued]
    assert issue_uow.committed[0].application_id == application.id
    assert (issued.status, store.applications[application.id].status) == ("issued", "issued")
    assert (store.businesses[b.id].nib_status, store.businesses[b.id].nib, store.businesses[b.id].version) == (
        "issued", "1234567890123", 3,
    )  # fmt: skip


async def test_an_issued_nib_without_a_date_is_dated_today_in_kupang(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)
    application = await handlers.apply_for_nib(b.id, new_uow(store), deps)

    issued = await handlers.record_nib_issued(b.id, application.id, "1234567890123", None, new_uow(store), deps)

    assert issued.issued_on == date(2026, 3, 10)


async def test_a_second_application_while_one_is_pending_is_a_conflict_and_changes_nothing(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)
    await handlers.apply_for_nib(b.id, new_uow(store), deps)
    before = dict(store.businesses)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.apply_for_nib(b.id, uow, deps)

    assert exc.value.code == "nib_application_pending"
    assert store.businesses == before
    assert len(store.applications) == 1
    assert uow.committed == []


async def test_issuing_an_nib_held_by_another_business_is_a_conflict_and_rolls_back(store, deps) -> None:
    await handlers.register_business(form(YOHANES, nib="1234567890123"), new_uow(store), deps)
    b = await handlers.register_business(form(), new_uow(store), deps)
    application = await handlers.apply_for_nib(b.id, new_uow(store), deps)
    uow = new_uow(store)

    with pytest.raises(Conflict) as exc:
        await handlers.record_nib_issued(b.id, application.id, "1234567890123", None, uow, deps)

    assert exc.value.code == "nib_taken"
    assert store.businesses[b.id].nib_status == "applied"
    assert store.applications[application.id].status == "pending"
    assert uow.rollbacks == 1


async def test_an_application_of_another_business_is_not_found(store, deps) -> None:
    maria = await handlers.register_business(form(), new_uow(store), deps)
    yohanes = await handlers.register_business(form(YOHANES), new_uow(store), deps)
    application = await handlers.apply_for_nib(maria.id, new_uow(store), deps)

    with pytest.raises(NotFound):
        await handlers.record_nib_rejected(yohanes.id, application.id, "salah", new_uow(store), deps)


async def test_a_rejection_is_recorded_with_its_reason(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)
    application = await handlers.apply_for_nib(b.id, new_uow(store), deps)
    uow = new_uow(store)

    rejected = await handlers.record_nib_rejected(b.id, application.id, "KBLI tidak sesuai", uow, deps)

    assert (rejected.status, rejected.reason) == ("rejected", "KBLI tidak sesuai")
    assert uow.outbox[0].event_type == "NIBRejected"
    assert uow.outbox[0].payload["reason"] == "KBLI tidak sesuai"


async def test_closing_a_business_commits_a_closed_event(store, deps) -> None:
    b = await handlers.register_business(form(), new_uow(store), deps)
    uow = new_uow(store)

    gone = await handlers.close_business(b.id, "usaha berhenti", uow, deps)

    assert store.businesses[b.id].status == "closed"
    assert uow.committed == [domain.Closed(gone)]
    assert uow.outbox[0].event_type == "BusinessClosed"


# ---------------------------------------------------------------------------------------------------------------
# import_rows
# ---------------------------------------------------------------------------------------------------------------

BAD_NIK_AND_PHONE = csv_row(MARIA, business_name="Kios Pulsa Lasiana", owner_birth_date="18-08-1990", phone="0380 821234")
NO_OWNER_NAME = {k: v for k, v in csv_row(YOHANES, owner_nik="5371010101000003").items() if k != "owner_name"}


def first_import() -> list[tuple[int, dict[str, Any]]]:
    return [(2, csv_row(MARIA)), (3, BAD_NIK_AND_PHONE), (4, csv_row(YOHANES)), (5, NO_OWNER_NAME)]


async def test_an_import_registers_the_good_rows_and_reports_each_bad_row_by_line_and_field(store, deps) -> None:
    uow = new_uow(store)

    report = await handlers.import_rows(first_import(), uow, deps)

    assert (report.received, report.registered, report.updated, report.unchanged) == (4, 2, 0, 0)
    assert {(e.line, e.field, e.code) for e in report.errors} == {
        (3, "owner_nik", "nik.birth_date_mismatch"),
        (3, "phone", "phone.not_mobile"),
        (5, "owner_name", "missing"),
    }
    assert [e.line for e in report.errors] == sorted(e.line for e in report.errors)
    assert sorted(b.business_name for b in store.businesses.values()) == ["Bengkel Motor Yohanes", "Sei Sapi Ibu Maria"]
    assert set(store.sources.values()) == {"import"}
    assert [(type(e), e.source) for e in uow.committed] == [(domain.Registered, "import")] * 2
    assert uow.commits == 1


async def test_importing_the_same_rows_again_changes_nothing(store, deps) -> None:
    await handlers.import_rows(first_import(), new_uow(store), deps)
    before = dict(store.businesses)
    uow = new_uow(store)

    report = await handlers.import_rows(first_import(), uow, deps)

    assert (report.registered, report.updated, report.unchanged) == (0, 0, 2)
    assert {e.line for e in report.errors} == {3, 5}  # the bad rows are still bad
    assert store.businesses == before
    assert (uow.committed, uow.outbox) == ([], [])


async def test_importing_again_a_row_that_gives_only_annual_sales_changes_nothing(store, deps) -> None:
    row = csv_row(MARIA, capital_rupiah="")
    await handlers.import_rows([(2, row)], new_uow(store), deps)
    uow = new_uow(store)

    report = await handlers.import_rows([(2, row)], uow, deps)

    assert (report.registered, report.unchanged, report.errors) == (0, 1, [])
    assert uow.committed == []


async def test_a_row_repeated_within_one_import_is_reported_as_repeated(store, deps) -> None:
    report = await handlers.import_rows([(2, csv_row(MARIA)), (7, csv_row(MARIA, owner_name="Maria G. Ndun"))],
                                        new_uow(store), deps)  # fmt: skip

    assert report.registered == 1
    assert [(e.line, e.field, e.code) for e in report.errors] == [(7, "business_name", "import.repeated_row")]
    assert "line 2" in report.errors[0].message
    assert len(store.businesses) == 1


async def test_a_row_like_an_earlier_row_of_the_same_import_is_a_probable_duplicate(store, deps) -> None:
    rows = [(2, csv_row(MARIA)), (3, csv_row(MARIA, business_name="Sapi Maria"))]

    report = await handlers.import_rows(rows, new_uow(store), deps)

    assert report.registered == 1
    assert [(e.line, e.code) for e in report.errors] == [(3, "probable_duplicate")]
    assert "line 2" in report.errors[0].message
    assert "import again" in report.errors[0].message


async def test_a_row_with_a_longer_version_of_an_earlier_row_s_name_is_a_probable_duplicate(store, deps) -> None:
    rows = [(2, csv_row(MARIA)), (3, csv_row(MARIA, business_name="Sei Sapi Maria Kupang"))]

    report = await handlers.import_rows(rows, new_uow(store), deps)

    assert [(e.line, e.code) for e in report.errors] == [(3, "probable_duplicate")]


async def test_an_imported_row_like_an_already_registered_business_is_a_probable_duplicate(store, deps) -> None:
    await handlers.register_business(form(), new_uow(store), deps)

    report = await handlers.import_rows([(2, csv_row(MARIA, business_name="Sei Sapi Maria Kupang"))], new_uow(store), deps)

    assert report.registered == 0
    assert [(e.line, e.field, e.code) for e in report.errors] == [(2, "business_name", "probable_duplicate")]


async def test_an_imported_probable_duplicate_marked_confirm_distinct_is_registered(store, deps) -> None:
    await handlers.register_business(form(), new_uow(store), deps)

    report = await handlers.import_rows(
        [(2, csv_row(MARIA, business_name="Sei Sapi Maria Kupang", confirm_distinct="ya"))], new_uow(store), deps
    )

    assert (report.registered, report.errors) == (1, [])


async def test_reimporting_a_business_with_a_new_nib_records_the_nib_and_emits_nib_issued(store, deps) -> None:
    await handlers.import_rows([(2, csv_row(MARIA))], new_uow(store), deps)
    uow = new_uow(store)

    report = await handlers.import_rows([(2, csv_row(MARIA, nib="1234567890123"))], uow, deps)

    assert (report.registered, report.updated, report.unchanged) == (0, 1, 0)
    (b,) = store.businesses.values()
    assert (b.nib_status, b.nib, b.version) == ("issued", "1234567890123", 2)
    assert uow.committed == [domain.NibIssued(b, None, "1234567890123", date(2026, 3, 10))]
    assert uow.outbox[0].event_type == "NIBIssued"
    assert uow.outbox[0].payload["application_id"] is None


async def test_reimporting_a_business_with_a_new_phone_updates_it(store, deps) -> None:
    await handlers.import_rows([(2, csv_row(MARIA))], new_uow(store), deps)
    uow = new_uow(store)

    report = await handlers.import_rows([(2, csv_row(MARIA, phone="0813 9999 0000"))], uow, deps)

    assert report.updated == 1
    (b,) = store.businesses.values()
    assert uow.committed == [domain.Updated(b, ("phone",))]


async def test_reimporting_a_business_with_a_different_nib_than_it_has_is_reported_not_applied(store, deps) -> None:
    await handlers.import_rows([(2, csv_row(MARIA, nib="1234567890123"))], new_uow(store), deps)
    uow = new_uow(store)

    report = await handlers.import_rows([(9, csv_row(MARIA, nib="9999999999999"))], uow, deps)

    assert [(e.line, e.field, e.code) for e in report.errors] == [(9, "nib", "nib.differs")]
    assert next(iter(store.businesses.values())).nib == "1234567890123"
    assert uow.committed == []


async def test_an_imported_row_with_an_nib_held_by_another_business_is_reported(store, deps) -> None:
    await handlers.register_business(form(YOHANES, nib="1234567890123"), new_uow(store), deps)

    report = await handlers.import_rows([(2, csv_row(MARIA, nib="1234567890123"))], new_uow(store), deps)

    assert [(e.line, e.field, e.code) for e in report.errors] == [(2, "nib", "nib_taken")]
    assert len(store.businesses) == 1


async def test_an_import_of_only_bad_rows_opens_no_transaction(store, deps) -> None:
    uow = new_uow(store)

    report = await handlers.import_rows([(2, BAD_NIK_AND_PHONE)], uow, deps)

    assert report.registered == 0
    assert {e.field for e in report.errors} == {"owner_nik", "phone"}
    assert (uow.commits, store.identity_locks) == (0, 0)


async def test_an_imported_closed_business_is_left_unchanged(store, deps) -> None:
    await handlers.import_rows([(2, csv_row(MARIA))], new_uow(store), deps)
    (b,) = store.businesses.values()
    await handlers.close_business(b.id, "usaha berhenti", new_uow(store), deps)
    uow = new_uow(store)

    report = await handlers.import_rows([(2, csv_row(MARIA, phone="0813 9999 0000"))], uow, deps)

    assert (report.updated, report.unchanged) == (0, 1)
    assert store.businesses[b.id].phone == "+6281234567890"
    assert uow.committed == []


async def test_no_envelope_written_by_a_registration_or_an_import_carries_a_nik(store, deps) -> None:
    uow1, uow2 = new_uow(store), new_uow(store)
    await handlers.register_business(form(), uow1, deps)
    await handlers.import_rows([(2, csv_row(YOHANES))], uow2, deps)

    for envelope in uow1.outbox + uow2.outbox:
        text = envelope.to_json_bytes().decode()
        assert MARIA_NIK not in text and YOHANES_NIK not in text


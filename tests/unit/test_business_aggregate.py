"""Tests the business aggregate: registering, correcting fields, the NIB application state machine, closing and the
monthly youth flag."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.registry.domain import business as aggregate
from services.registry.domain.business import Business, NibApplication
from services.registry.domain.forms import BusinessChanges
from services.registry.domain.registration import validate_registration
from services.registry.domain.scale import YouthRange
from shared.errors import Conflict, InvalidInput

from .builders import NOW, YOHANES, business, form, rules

LATER = NOW + timedelta(days=3)


def closed(b: Business) -> Business:
    return aggregate.close(b, "pindah ke Kabupaten Kupang", LATER)


def applied(b: Business) -> tuple[Business, NibApplication]:
    return aggregate.apply_for_nib(b, None, uuid.uuid4(), LATER)


# ---------------------------------------------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------------------------------------------


def test_a_registered_business_starts_active_at_version_one_without_an_nib() -> None:
    b = business()

    assert b.version == 1
    assert b.status == "active"
    assert (b.nib_status, b.nib) == ("none", None)
    assert b.registered_at == b.updated_at == NOW
    assert b.nik_masked == "5371********0001"
    assert b.women_owned


def test_a_registration_with_an_nib_starts_with_the_nib_issued() -> None:
    b = business(nib="1234567890123")
    assert (b.nib_status, b.nib) == ("issued", "1234567890123")


def test_names_are_registered_with_runs_of_spaces_collapsed() -> None:
    b = business(business_name="Sei  Sapi   Ibu Maria", owner_name="Maria  Goreti Ndun")
    assert (b.business_name, b.owner_name) == ("Sei Sapi Ibu Maria", "Maria Goreti Ndun")


def test_a_man_s_business_is_not_women_owned() -> None:
    assert not business(YOHANES).women_owned


# ---------------------------------------------------------------------------------------------------------------
# change
# ---------------------------------------------------------------------------------------------------------------


def test_a_change_lists_the_fields_that_really_changed_and_bumps_the_version() -> None:
    b = business()

    updated, changed = aggregate.change(
        b, BusinessChanges(business_name="Sei Sapi Mama Maria", phone="0813 9999 0000"), rules(), LATER
    )

    assert changed == ("business_name", "phone")
    assert updated.business_name == "Sei Sapi Mama Maria"
    assert updated.phone == "+6281399990000"
    assert updated.version == 2
    assert updated.updated_at == LATER
    assert updated.registered_at == NOW


def test_a_change_that_repeats_the_current_values_changes_nothing_and_keeps_the_version() -> None:
    b = business()

    updated, changed = aggregate.change(
        b, BusinessChanges(business_name="Sei Sapi  Ibu Maria", phone="+62 812-3456-7890", kecamatan="oebobo",
                           kelurahan="FATULULI"), rules(), LATER,
    )  # fmt: skip

    assert changed == ()
    assert updated is b


def test_new_annual_sales_reclassify_the_business() -> None:
    b = business()

    updated, changed = aggregate.change(b, BusinessChanges(annual_sales_rupiah="3.000.000.000"), rules(), LATER)

    assert changed == ("annual_sales_rupiah", "scale")
    assert (updated.scale, updated.scale_basis) == ("small", "annual_sales")
    assert updated.capital_rupiah == b.capital_rupiah


def test_a_new_kelurahan_alone_is_looked_up_in_the_business_s_kecamatan() -> None:
    b = business()

    updated, changed = aggregate.change(b, BusinessChanges(kelurahan="Oebufu"), rules(), LATER)

    assert changed == ("kelurahan",)
    assert (updated.kecamatan.name, updated.kelurahan.name) == ("Oebobo", "Oebufu")


def test_moving_to_another_kecamatan_changes_both_region_fields() -> None:
    updated, changed = aggregate.change(
        business(), BusinessChanges(kecamatan="Alak", kelurahan="Namosain"), rules(), LATER
    )

    assert changed == ("kecamatan", "kelurahan")
    assert updated.kecamatan.code == "53.71.01"


def test_a_new_kbli_edition_alone_is_checked_against_the_existing_code() -> None:
    b = business(kbli_code="45201", kbli_version=2020)

    with pytest.raises(InvalidInput) as exc:
        aggregate.change(b, BusinessChanges(kbli_version=2025), rules(), LATER)
    assert [(e.field, e.code) for e in exc.value.errors] == [("kbli_code", "kbli.unknown_division")]


def test_every_wrong_field_of_a_change_is_reported_at_once_and_nothing_changes() -> None:
    b = business()

    with pytest.raises(InvalidInput) as exc:
        aggregate.change(
            b, BusinessChanges(phone="0380 821234", kelurahan="Namosain", annual_sales_rupiah=60_000_000_000), rules(), LATER
        )

    assert {e.field for e in exc.value.errors} == {"phone", "kelurahan", "annual_sales_rupiah"}


def test_a_closed_business_cannot_be_changed() -> None:
    with pytest.raises(Conflict) as exc:
        aggregate.change(closed(business()), BusinessChanges(business_name="Sei Sapi Baru"), rules(), LATER)
    assert exc.value.code == "business_closed"


@pytest.mark.parametrize("field", ["business_name", "owner_name", "phone"])
def test_an_explicit_null_for_a_name_or_the_phone_is_refused_as_invalid(field: str) -> None:
    with pytest.raises((ValidationError, InvalidInput)):
        aggregate.change(business(), BusinessChanges.model_validate({field: None}), rules(), LATER)


def test_the_owner_s_identity_is_not_among_the_fields_that_can_be_changed() -> None:
    with pytest.raises(ValueError, match="owner_nik"):
        BusinessChanges.model_validate({"owner_nik": "5371045708900001"})


# ---------------------------------------------------------------------------------------------------------------
# NIB applications
# ---------------------------------------------------------------------------------------------------------------


def test_applying_for_an_nib_opens_a_pending_application_and_marks_the_business_applied() -> None:
    b = business()
    application_id = uuid.uuid4()

    after, application = aggregate.apply_for_nib(b, None, application_id, LATER)

    assert (after.nib_status, after.version, after.updated_at) == ("applied", 2, LATER)
    assert application == NibApplication(application_id, b.id, LATER)
    assert application.status == "pending"


def test_applying_again_while_an_application_is_pending_is_a_conflict() -> None:
    b, pending = applied(business())

    with pytest.raises(Conflict) as exc:
        aggregate.apply_for_nib(b, pending, uuid.uuid4(), LATER)

    assert exc.value.code == "nib_application_pending"
    assert exc.value.details == {"application_id": str(pending.id)}


def test_a_business_that_already_has_an_nib_cannot_apply_for_one() -> None:
    with pytest.raises(Conflict) as exc:
        aggregate.apply_for_nib(business(nib="1234567890123"), None, uuid.uuid4(), LATER)
    assert exc.value.code == "nib_already_issued"


def test_issuing_an_nib_records_it_on_the_business_and_decides_the_application() -> None:
    b, application = applied(business())

    after, decided = aggregate.issue_nib(b, application, "1234-5678-90123", date(2026, 3, 12), LATER)

    assert (after.nib_status, after.nib, after.version) == ("issued", "1234567890123", 3)
    assert (decided.status, decided.nib, decided.issued_on, decided.decided_at) == (
        "issued", "1234567890123", date(2026, 3, 12), LATER,
    )  # fmt: skip


def test_issuing_an_nib_that_is_not_thirteen_digits_is_invalid_input() -> None:
    b, application = applied(business())

    with pytest.raises(InvalidInput) as exc:
        aggregate.issue_nib(b, application, "12345", date(2026, 3, 12), LATER)
    assert [(e.field, e.code) for e in exc.value.errors] == [("nib", "nib.format")]


def test_issuing_an_nib_twice_for_the_same_application_is_a_conflict() -> None:
    b, application = applied(business())
    b, decided = aggregate.issue_nib(b, application, "1234567890123", date(2026, 3, 12), LATER)

    with pytest.raises(Conflict) as exc:
        aggregate.issue_nib(b, decided, "1234567890123", date(2026, 3, 12), LATER)
    assert exc.value.code == "nib_application_decided"


def test_an_nib_issued_on_a_day_still_in_the_future_in_kupang_is_refused() -> None:
    b, application = applied(business())
    # 2026-03-12 23.30 UTC is already 13 March in Kupang: the 13th is fine, the 14th is not.
    now = datetime(2026, 3, 12, 23, 30, tzinfo=UTC)

    assert aggregate.issue_nib(b, application, "1234567890123", date(2026, 3, 13), now)[0].nib == "1234567890123"
    with pytest.raises(InvalidInput) as exc:
        aggregate.issue_nib(b, application, "1234567890123", date(2026, 3, 14), now)
    assert [(e.field, e.code) for e in exc.value.errors] == [("issued_on", "date.future")]


def test_an_nib_dated_before_oss_began_issuing_them_is_refused() -> None:
    b, application = applied(business())

    assert aggregate.issue_nib(b, application, "1234567890123", aggregate.OSS_STARTED, NOW)[1].issued_on == date(2018, 7, 9)
    with pytest.raises(InvalidInput) as exc:
        aggregate.issue_nib(b, application, "1234567890123", date(1, 1, 1), NOW)
    assert [(e.field, e.code) for e in exc.value.errors] == [("issued_on", "date.before_oss")]


def test_rejecting_an_application_needs_a_reason() -> None:
    b, application = applied(business())

    with pytest.raises(InvalidInput) as exc:
        aggregate.reject_nib(b, application, "   ", LATER)
    assert [(e.field, e.code) for e in exc.value.errors] == [("reason", "reason.missing")]


def test_a_rejected_application_keeps_its_reason_and_the_business_becomes_rejected() -> None:
    b, application = applied(business())

    after, decided = aggregate.reject_nib(b, application, "  KBLI tidak sesuai  ", LATER)

    assert (after.nib_status, after.version) == ("rejected", 3)
    assert (decided.status, decided.reason) == ("rejected", "KBLI tidak sesuai")


def test_a_rejected_business_may_apply_again() -> None:
    b, application = applied(business())
    b, _ = aggregate.reject_nib(b, application, "KBLI tidak sesuai", LATER)

    after, second = aggregate.apply_for_nib(b, None, uuid.uuid4(), LATER)
    assert (after.nib_status, second.status) == ("applied", "pending")


def test_a_decided_application_cannot_be_rejected_afterwards() -> None:
    b, application = applied(business())
    b, decided = aggregate.issue_nib(b, application, "1234567890123", date(2026, 3, 12), LATER)

    with pytest.raises(Conflict) as exc:
        aggregate.reject_nib(b, decided, "salah", LATER)
    assert exc.value.code == "nib_application_decided"


def test_a_closed_business_refuses_every_nib_step() -> None:
    b, application = applied(business())
    gone = closed(b)

    for step in (
        lambda: aggregate.apply_for_nib(gone, None, uuid.uuid4(), LATER),
        lambda: aggregate.issue_nib(gone, application, "1234567890123", date(2026, 3, 12), LATER),
        lambda: aggregate.reject_nib(gone, application, "salah", LATER),
    ):
        with pytest.raises(Conflict) as exc:
            step()
        assert exc.value.code == "business_closed"


# ---------------------------------------------------------------------------------------------------------------
# close
# ---------------------------------------------------------------------------------------------------------------


def test_closing_a_business_records_when_and_why() -> None:
    b = closed(business())

    assert (b.status, b.closed_reason, b.closed_at, b.version) == ("closed", "pindah ke Kabupaten Kupang", LATER, 2)


def test_closing_needs_a_reason() -> None:
    with pytest.raises(InvalidInput) as exc:
        aggregate.close(business(), " ", LATER)
    assert [(e.field, e.code) for e in exc.value.errors] == [("reason", "reason.missing")]


def test_a_closed_business_cannot_be_closed_again() -> None:
    with pytest.raises(Conflict) as exc:
        closed(closed(business()))
    assert exc.value.code == "business_closed"



# ---------------------------------------------------------------------------------------------------------------
# The youth flag: youth on the first day of the month (WITA)
# ---------------------------------------------------------------------------------------------------------------

YOUTH = YouthRange()
# A man born 5 March 1995, KTP from Oebobo: 30 on 1 March 2026, 31 from 5 March 2026.
TURNS_31_ON_5_MARCH = {**YOHANES, "owner_nik": "5371040503950001", "owner_birth_date": "1995-03-05"}
# A man born 1 April 1995: 30 on 1 March 2026, 31 on 1 April 2026.
TURNS_31_ON_1_APRIL = {**YOHANES, "owner_nik": "5371040104950001", "owner_birth_date": "1995-04-01"}
# A boy born 15 April 2010: 15 on 1 April 2026, 16 on 1 May 2026.
TURNS_16_ON_15_APRIL = {**YOHANES, "owner_nik": "5371041504100001", "owner_birth_date": "2010-04-15"}


def registered_at(row: dict[str, object], now: datetime) -> Business:
    return aggregate.register(validate_registration(form(row), rules(), NOW.date()), uuid.uuid4(), now, YOUTH)


def test_an_owner_who_was_a_youth_on_the_first_of_the_month_registers_youth_owned_though_now_thirty_one() -> None:
    b = registered_at(TURNS_31_ON_5_MARCH, NOW)  # 10 March 2026: already 31, but 30 on 1 March

    assert b.youth_owned is True


def test_the_youth_flag_at_registration_is_judged_on_the_kupang_date_not_the_utc_date() -> None:
    # 31 March 2026 16.00 UTC is already 1 April in Kupang, when this owner is 31.
    assert registered_at(TURNS_31_ON_1_APRIL, datetime(2026, 3, 31, 15, 59, tzinfo=UTC)).youth_owned is True
    assert registered_at(TURNS_31_ON_1_APRIL, datetime(2026, 3, 31, 16, 0, tzinfo=UTC)).youth_owned is False


def test_refreshing_the_youth_flag_within_the_month_changes_nothing() -> None:
    b = registered_at(TURNS_31_ON_5_MARCH, NOW)

    assert aggregate.refresh_youth(b, YOUTH, datetime(2026, 3, 31, 15, 59, tzinfo=UTC)) is None


def test_refreshing_the_youth_flag_in_the_month_after_the_thirty_first_birthday_clears_it_with_a_new_version() -> None:
    b = registered_at(TURNS_31_ON_5_MARCH, NOW)
    first_of_april = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 1 April 00.00 WITA

    after = aggregate.refresh_youth(b, YOUTH, first_of_april)

    assert after is not None
    assert (after.youth_owned, after.version, after.updated_at) == (False, 2, first_of_april)
    assert after.registered_at == NOW


def test_refreshing_the_youth_flag_in_the_month_after_the_sixteenth_birthday_sets_it() -> None:
    b = registered_at(TURNS_16_ON_15_APRIL, NOW)
    assert b.youth_owned is False

    assert aggregate.refresh_youth(b, YOUTH, datetime(2026, 4, 20, 2, 0, tzinfo=UTC)) is None
    after = aggregate.refresh_youth(b, YOUTH, datetime(2026, 5, 1, 2, 0, tzinfo=UTC))
    assert after is not None and (after.youth_owned, after.version) == (True, 2)


def test_a_closed_business_s_youth_flag_is_not_refreshed() -> None:
    gone = closed(registered_at(TURNS_31_ON_5_MARCH, NOW))

    assert aggregate.refresh_youth(gone, YOUTH, datetime(2026, 4, 1, 2, 0, tzinfo=UTC)) is None


def test_a_change_of_other_fields_keeps_the_published_youth_flag() -> None:
    b = registered_at(TURNS_31_ON_5_MARCH, NOW)

    updated, _ = aggregate.change(b, BusinessChanges(phone="0813 9999 0000"), rules(), datetime(2026, 4, 2, tzinfo=UTC))

    assert updated.youth_owned is True  # the monthly sweep, not a correction, publishes the flag's change

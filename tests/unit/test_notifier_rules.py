"""The notifier's rules, with no I/O: which channel reaches whom, quiet hours in WITA, consent, how a delivery's status
moves, retries, rate limits, what gateways' answers mean, sponsors' weeks, and every template in plain Bahasa
Indonesia."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.notifier.channels import sms as zenziva
from services.notifier.channels import whatsapp
from services.notifier.domain import phones, texts
from services.notifier.domain.channels import (
    AT_LEAST_ONCE,
    AT_MOST_ONCE,
    EMAIL,
    LOCAL,
    SMS,
    WHATSAPP,
    Accepted,
    Available,
    NoChannel,
    Rejected,
    Transient,
    address_channel,
    fallback,
    phone_channel,
)
from services.notifier.domain.consent import Preference, reply_intent, withhold_reason
from services.notifier.domain.delivery import (
    DELIVERED,
    FAILED,
    QUEUED,
    READ,
    SENDING,
    SENT,
    UNKNOWN,
    WAITING,
    WITHHELD,
    Delivery,
    RetryPolicy,
    advance,
    after_lease_expired,
    after_send,
    reported_first,
    summarise,
)
from services.notifier.domain.digest import (
    ACCEPTED,
    DECLINED,
    DISBURSED,
    EXPIRED,
    OfferFact,
    PledgeFact,
    digest_due,
    moved_on,
    pledge_week,
    week_start,
)
from services.notifier.domain.planning import last_look
from services.notifier.domain.policy import TEMPLATES, policy_of
from services.notifier.domain.ratelimit import Bucket, RateLimit
from services.notifier.domain.schedule import QuietHours, next_send_time, timing
from shared.reference.wita import WITA


def wita(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment given in Kupang's time, as the UTC instant the notifier stores."""
    return datetime(year, month, day, hour, minute, tzinfo=WITA).astimezone(UTC)


NOW = wita(2026, 11, 23, 10)
RECHECK = timedelta(days=30)
PHONE = "+6281234567890"


# ---------------------------------------------------------------------------------------------------------------
# Which channel
# ---------------------------------------------------------------------------------------------------------------


def test_with_no_phone_gateway_configured_an_owner_is_reached_through_the_local_outbox() -> None:
    assert phone_channel(Available(), None, NOW, RECHECK) == LOCAL
    assert phone_channel(Available(email=True), Preference(PHONE, channel=SMS), NOW, RECHECK) == LOCAL


def test_an_owner_is_reached_on_whatsapp_first_when_it_is_configured() -> None:
    assert phone_channel(Available(whatsapp=True, sms=True), None, NOW, RECHECK) == WHATSAPP
    assert phone_channel(Available(whatsapp=True), Preference(PHONE), NOW, RECHECK) == WHATSAPP


def test_an_owner_who_prefers_sms_gets_sms_where_it_is_configured_and_whatsapp_where_only_that_is() -> None:
    prefers_sms = Preference(PHONE, channel=SMS)
    assert phone_channel(Available(whatsapp=True, sms=True), prefers_sms, NOW, RECHECK) == SMS
    assert phone_channel(Available(whatsapp=True), prefers_sms, NOW, RECHECK) == WHATSAPP


def test_a_number_found_without_whatsapp_gets_sms_until_the_recheck_period_has_passed() -> None:
    both = Available(whatsapp=True, sms=True)
    recently = Preference(PHONE, no_whatsapp_since=NOW - timedelta(days=3))
    long_ago = Preference(PHONE, no_whatsapp_since=NOW - timedelta(days=31))
    assert phone_channel(both, recently, NOW, RECHECK) == SMS
    assert phone_channel(both, long_ago, NOW, RECHECK) == WHATSAPP  # people install WhatsApp: try again


def test_a_number_without_whatsapp_has_no_channel_when_no_sms_gateway_is_configured() -> None:
    with pytest.raises(NoChannel, match="no SMS gateway is configured"):
        phone_channel(Available(whatsapp=True), Preference(PHONE, no_whatsapp_since=NOW), NOW, RECHECK)


def test_officers_and_sponsors_get_email_when_smtp_is_configured_and_the_local_outbox_otherwise() -> None:
    assert address_channel(Available(email=True)) == EMAIL
    assert address_channel(Available(whatsapp=True, sms=True)) == LOCAL


def test_only_a_whatsapp_delivery_falls_back_and_only_to_a_configured_sms_gateway() -> None:
    assert fallback(WHATSAPP, Available(whatsapp=True, sms=True)) == SMS
    assert fallback(WHATSAPP, Available(whatsapp=True)) is None
    assert fallback(SMS, Available(whatsapp=True, sms=True)) is None


# ---------------------------------------------------------------------------------------------------------------
# Quiet hours in WITA
# ---------------------------------------------------------------------------------------------------------------

QUIET = QuietHours()  # 21.00 to 07.00 WITA


@pytest.mark.parametrize(("moment", "quiet"), [
    (wita(2026, 11, 23, 20, 59), False), (wita(2026, 11, 23, 21, 0), True), (wita(2026, 11, 24, 0, 30), True),
    (wita(2026, 11, 24, 6, 59), True), (wita(2026, 11, 24, 7, 0), False), (wita(2026, 11, 24, 12, 0), False),
])  # fmt: skip
def test_quiet_hours_run_from_21_00_to_07_00_wita_across_midnight(moment: datetime, quiet: bool) -> None:
    assert QUIET.quiet(moment) is quiet


def test_quiet_hours_are_kupangs_whatever_zone_the_moment_is_given_in() -> None:
    # 13.30 UTC is 21.30 in Kupang (and 20.30 in Jakarta): quiet.
    assert QUIET.quiet(datetime(2026, 11, 23, 13, 30, tzinfo=UTC))
    assert not QUIET.quiet(datetime(2026, 11, 23, 12, 30, tzinfo=UTC))


def test_a_message_recorded_late_in_the_evening_waits_until_07_00_wita_the_next_morning() -> None:
    opens = QUIET.next_allowed(wita(2026, 11, 23, 22, 30))
    assert opens == wita(2026, 11, 24, 7, 0)
    assert opens.astimezone(WITA).time() == time(7, 0) and opens == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


def test_a_message_recorded_after_midnight_waits_until_07_00_the_same_morning() -> None:
    assert QUIET.next_allowed(wita(2026, 11, 24, 2, 15)) == wita(2026, 11, 24, 7, 0)


def test_a_message_outside_quiet_hours_goes_at_once() -> None:
    assert timing(NOW, QUIET, urgent=False, deadline=None, min_lead=timedelta(hours=24)).not_before == NOW


def test_an_urgent_message_is_never_held_back() -> None:
    night = wita(2026, 11, 23, 23, 0)
    assert timing(night, QUIET, urgent=True, deadline=None, min_lead=timedelta(hours=24)).not_before == night


def test_equal_start_and_end_mean_no_quiet_hours_and_a_daytime_window_works_too() -> None:
    never = QuietHours(time(0, 0), time(0, 0))
    assert never.disabled and not never.quiet(wita(2026, 11, 23, 23, 0))
    siesta = QuietHours(time(13, 0), time(15, 0))
    assert siesta.quiet(wita(2026, 11, 23, 14, 0)) and not siesta.quiet(wita(2026, 11, 23, 15, 0))
    assert siesta.next_allowed(wita(2026, 11, 23, 13, 10)) == wita(2026, 11, 23, 15, 0)


def test_an_offer_that_expires_before_the_morning_is_not_sent_and_the_officers_are_told() -> None:
    when = timing(wita(2026, 11, 23, 22, 0), QUIET, urgent=False, deadline=wita(2026, 11, 24, 6, 0),
                  min_lead=timedelta(hours=24))  # fmt: skip
    assert when.withhold_reason and "expire during quiet hours" in when.withhold_reason
    assert when.flag_officers


def test_an_offer_reaching_its_owner_with_too_little_time_left_goes_at_07_00_and_the_officers_are_told() -> None:
    when = timing(wita(2026, 11, 23, 22, 0), QUIET, urgent=False, deadline=wita(2026, 11, 24, 12, 0),
                  min_lead=timedelta(hours=24))  # fmt: skip
    assert (when.not_before, when.withhold_reason, when.flag_officers) == (wita(2026, 11, 24, 7, 0), None, True)


def test_an_offer_with_days_left_simply_waits_for_the_morning() -> None:
    when = timing(wita(2026, 11, 23, 22, 0), QUIET, urgent=False, deadline=wita(2026, 12, 7, 16, 0),
                  min_lead=timedelta(hours=24))  # fmt: skip
    assert (when.not_before, when.withhold_reason, when.flag_officers) == (wita(2026, 11, 24, 7, 0), None, False)


def test_an_offer_whose_deadline_passed_before_it_reached_the_notifier_is_not_sent_day_or_night() -> None:
    for now, urgent in ((NOW, False), (wita(2026, 11, 23, 23, 0), False), (NOW, True)):
        when = timing(now, QUIET, urgent=urgent, deadline=now - timedelta(days=6), min_lead=timedelta(hours=24))
        assert when.withhold_reason and "deadline had passed" in when.withhold_reason and not when.flag_officers


def test_a_retry_to_a_phone_never_lands_in_quiet_hours_but_an_urgent_one_may() -> None:
    assert next_send_time(wita(2026, 11, 23, 21, 5), QUIET, urgent=False) == wita(2026, 11, 24, 7, 0)
    assert next_send_time(wita(2026, 11, 23, 21, 5), QUIET, urgent=True) == wita(2026, 11, 23, 21, 5)


# ---------------------------------------------------------------------------------------------------------------
# Consent
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["STOP", "stop", "Stop.", " berhenti ", "BERHENTI!", "Berhenti ya", "unsubscribe"])
def test_stop_and_berhenti_opt_out_in_any_case_and_with_punctuation(text: str) -> None:
    assert reply_intent(text) == "stop"


@pytest.mark.parametrize("text", ["MULAI", "mulai", "Start", "mulai lagi"])
def test_mulai_and_start_opt_back_in(text: str) -> None:
    assert reply_intent(text) == "start"


@pytest.mark.parametrize("text", ["Terima kasih", "Saya mau stop", "", "   ", "Kapan dana cair? Mohon dibantu stop", None])
def test_any_other_reply_is_left_for_an_officer_to_read(text: str | None) -> None:
    assert reply_intent(text) is None


def test_an_owner_who_opted_out_gets_only_the_required_templates() -> None:
    opted_out = Preference(PHONE, opted_out_at=NOW)
    still_sent = {name for name, policy in TEMPLATES.items()
                  if policy.audience == "owner" and withhold_reason(policy, opted_out) is None}  # fmt: skip
    assert still_sent == {"funds_disbursed", "opted_out", "opted_in"}
    assert all(withhold_reason(p, Preference(PHONE)) is None for p in TEMPLATES.values())


def test_the_last_look_withholds_what_the_owner_opted_out_of_since_and_offers_answered_meanwhile() -> None:
    opted_out = Preference(PHONE, opted_out_at=NOW)
    assert "opted out" in (last_look("welcome", "owner", opted_out, None) or "")
    assert last_look("funds_disbursed", "owner", opted_out, None) is None
    assert last_look("offer_reminder", "owner", None, ACCEPTED) == "the offer was accepted before this message went"
    assert last_look("offer_reminder", "owner", None, "open") is None
    assert last_look("halal_stalled_officer", "officers", opted_out, None) is None  # consent is the owner's


# ---------------------------------------------------------------------------------------------------------------
# A delivery's status
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "reported", "after"), [
    (SENDING, SENT, SENT), (SENT, DELIVERED, DELIVERED), (DELIVERED, READ, READ), (SENT, READ, READ),
    (READ, DELIVERED, READ), (DELIVERED, SENT, DELIVERED),  # reports out of order never move it back
    (SENT, FAILED, FAILED), (DELIVERED, FAILED, DELIVERED),  # a failure on another device does not undo a delivery
    (FAILED, DELIVERED, DELIVERED), (FAILED, READ, READ), (UNKNOWN, SENT, SENT), (QUEUED, SENT, SENT),
    (FAILED, SENT, FAILED),  # a late "sent" after the failure proves no device got it
    (WITHHELD, DELIVERED, WITHHELD), (SENT, "deleted", SENT),
])  # fmt: skip
def test_a_gateways_report_moves_a_delivery_forward_only(current: str, reported: str, after: str) -> None:
    assert advance(current, reported) == after


def _delivery(status: str, channel: str = WHATSAPP, fallback_of: uuid.UUID | None = None) -> Delivery:
    return Delivery(uuid.uuid4(), uuid.UUID(int=1), channel, PHONE, status, NOW, fallback_of=fallback_of)


def test_a_messages_status_shows_an_unknown_delivery_first_then_a_failed_one_then_the_least_progressed() -> None:
    assert summarise([]) == (WAITING, "none")
    assert summarise([_delivery(READ, EMAIL), _delivery(UNKNOWN, EMAIL), _delivery(FAILED, EMAIL)]) == (UNKNOWN, EMAIL)
    assert summarise([_delivery(READ), _delivery(FAILED)]) == (FAILED, WHATSAPP)
    assert summarise([_delivery(READ), _delivery(SENT)]) == (SENT, WHATSAPP)
    assert summarise([_delivery(WITHHELD), _delivery(DELIVERED)]) == (DELIVERED, WHATSAPP)
    assert summarise([_delivery(WITHHELD)]) == (WITHHELD, WHATSAPP)


def test_a_delivery_replaced_by_its_sms_fallback_no_longer_counts() -> None:
    failed = _delivery(FAILED)
    assert summarise([failed, _delivery(SENT, SMS, fallback_of=failed.id)]) == (SENT, SMS)


# ---------------------------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------------------------

RETRY = RetryPolicy(base_seconds=15, cap_seconds=3600, max_attempts=10)


def test_backoff_doubles_with_each_attempt_up_to_its_cap() -> None:
    assert [RETRY.delay(n, jitter=1.0).total_seconds() for n in (1, 2, 3, 4, 9, 10)] == [15, 30, 60, 120, 3600, 3600]


def test_jitter_spreads_a_retry_between_half_and_all_of_its_backoff() -> None:
    assert RETRY.delay(3, jitter=0.0).total_seconds() == 30
    assert RETRY.delay(3, jitter=0.5).total_seconds() == 45
    assert RETRY.delay(3, jitter=7).total_seconds() == 60  # a jitter source out of range is clamped


def test_a_retry_never_comes_sooner_than_the_gateway_asked() -> None:
    assert RETRY.delay(1, jitter=0.0, retry_after=120).total_seconds() == 120


@pytest.mark.parametrize("asked", [1e12, float("inf"), float("nan"), -5.0])
def test_a_gateways_absurd_retry_after_is_bounded_to_a_day_and_never_overflows(asked: float) -> None:
    seconds = RETRY.delay(1, jitter=0.0, retry_after=asked).total_seconds()

    assert 7.5 <= seconds <= 86_400


def test_a_delivery_resent_after_thousands_of_attempts_waits_the_cap_rather_than_overflowing() -> None:
    assert RETRY.delay(5_000, jitter=1.0).total_seconds() == 3600


def test_an_accepted_send_is_sent_with_the_gateways_id() -> None:
    assert after_send(SENDING, 1, Accepted("wamid.X"), NOW, RETRY, 0.0) == after_send(SENDING, 1, Accepted("wamid.X"), NOW, RETRY, 0.5)
    change = after_send(SENDING, 1, Accepted("wamid.X"), NOW, RETRY, 0.0)
    assert (change.status, change.provider_id, change.reason) == (SENT, "wamid.X", None)


def test_an_acceptance_recorded_after_the_status_webhook_came_keeps_the_reported_status() -> None:
    assert after_send(DELIVERED, 1, Accepted("wamid.X"), NOW, RETRY, 0.0).status == DELIVERED
    assert after_send(UNKNOWN, 1, Accepted("wamid.X"), NOW, RETRY, 0.0).status == SENT  # a late answer settles it


def test_a_timeout_or_refusal_after_a_status_report_is_history_and_only_an_acceptance_is_recorded_over_one() -> None:
    timeout, refusal = Transient("read timeout", ambiguous=True), Rejected("WhatsApp: 131000 - Something went wrong")
    for reported in (SENT, DELIVERED, READ, FAILED):
        assert reported_first(reported, timeout) and reported_first(reported, refusal)
        assert not reported_first(reported, Accepted("wamid.X"))
    for waiting in (SENDING, UNKNOWN, QUEUED):
        assert not reported_first(waiting, timeout)


def test_a_rejection_fails_the_delivery_with_the_reason_and_asks_for_a_fallback_only_for_a_number_without_whatsapp() -> None:
    refused = after_send(SENDING, 1, Rejected("WhatsApp: 131009 - Parameter value is not valid"), NOW, RETRY, 0.0)
    assert (refused.status, refused.reason, refused.fallback) == (FAILED, "WhatsApp: 131009 - Parameter value is not valid", False)
    assert after_send(SENDING, 1, Rejected("131026", no_whatsapp=True), NOW, RETRY, 0.0).fallback


def test_a_transient_failure_is_queued_again_after_its_backoff_until_the_last_attempt() -> None:
    again = after_send(SENDING, 2, Transient("HTTP 503"), NOW, RETRY, 1.0)
    assert (again.status, again.not_before) == (QUEUED, NOW + timedelta(seconds=30))
    assert "attempt 2 failed, will retry: HTTP 503" == again.reason
    last = after_send(SENDING, 10, Transient("HTTP 503"), NOW, RETRY, 1.0)
    assert (last.status, last.reason) == (FAILED, "gave up after 10 attempts; the last: HTTP 503")


def test_a_delivery_sent_again_by_hand_counts_its_retries_from_then() -> None:
    again = after_send(SENDING, 11, Transient("HTTP 503"), NOW, RETRY, 1.0, retries_from=10)
    assert (again.status, again.not_before) == (QUEUED, NOW + timedelta(seconds=15))  # the first retry's wait
    last = after_send(SENDING, 20, Transient("HTTP 503"), NOW, RETRY, 1.0, retries_from=10)
    assert (last.status, last.reason) == (
        FAILED, "gave up after 10 attempts since it was sent again by hand; the last: HTTP 503")


def test_a_send_that_got_no_answer_is_retried_and_says_the_gateway_may_have_taken_it() -> None:
    change = after_send(SENDING, 1, Transient("read timeout", ambiguous=True), NOW, RETRY, 1.0)
    assert change.status == QUEUED and "may have taken it" in (change.reason or "")


def test_a_send_left_unanswered_by_a_stopped_process_is_unknown_under_at_most_once_and_resent_under_at_least_once() -> None:
    at_most = after_lease_expired(AT_MOST_ONCE, "host-a:12", 1, NOW)
    assert at_most.status == UNKNOWN and "host-a:12" in (at_most.reason or "") and "POST /deliveries" in (at_most.reason or "")
    at_least = after_lease_expired(AT_LEAST_ONCE, None, 2, NOW)
    assert (at_least.status, at_least.not_before) == (QUEUED, NOW) and "may get it twice" in (at_least.reason or "")


# ---------------------------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------------------------

LIMIT = RateLimit(rate=5, burst=10)


def test_a_new_bucket_is_full_and_spending_takes_tokens_out() -> None:
    assert LIMIT.available(None, NOW) == 10
    assert LIMIT.spend(None, NOW, 7) == Bucket(3, NOW)


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    empty = Bucket(0, NOW)
    assert LIMIT.available(empty, NOW + timedelta(milliseconds=500)) == 2
    assert LIMIT.available(empty, NOW + timedelta(seconds=1)) == 5
    assert LIMIT.available(empty, NOW + timedelta(hours=1)) == 10


def test_spending_more_than_the_bucket_holds_is_refused() -> None:
    with pytest.raises(ValueError, match="spending 3 tokens"):
        LIMIT.spend(Bucket(2.5, NOW), NOW, 3)


def test_an_empty_bucket_says_how_long_until_the_next_token() -> None:
    assert LIMIT.wait_for_one(Bucket(0, NOW), NOW) == pytest.approx(0.2)
    assert LIMIT.wait_for_one(Bucket(4, NOW), NOW) == 0.0


def test_a_clock_that_steps_back_never_adds_tokens() -> None:
    assert LIMIT.available(Bucket(1, NOW), NOW - timedelta(minutes=5)) == 1


def test_a_clock_a_little_behind_the_one_that_last_refilled_the_bucket_gains_nothing_from_the_difference() -> None:
    ahead = Bucket(1, NOW + timedelta(seconds=30))
    assert LIMIT.available(ahead, NOW) == LIMIT.available(ahead, NOW + timedelta(seconds=1)) == 1


def test_a_bucket_left_by_a_clock_a_day_ahead_refills_from_the_time_the_other_clocks_keep() -> None:
    spent = LIMIT.spend(None, NOW + timedelta(days=1), 10)  # one process's clock was a day ahead, and it sent a burst

    assert LIMIT.available(spent, NOW + timedelta(hours=1)) == 0  # what it spent stays spent
    refilled = LIMIT.refill(spent, NOW + timedelta(hours=1))
    assert LIMIT.available(refilled, NOW + timedelta(hours=1, seconds=1)) == 5  # and the bucket refills from now


# ---------------------------------------------------------------------------------------------------------------
# What gateways answer
# ---------------------------------------------------------------------------------------------------------------


def test_the_cloud_apis_answers_are_read_as_documented() -> None:
    assert whatsapp.interpret(200, {"messages": [{"id": "wamid.HBg"}]}) == Accepted("wamid.HBg")
    assert whatsapp.interpret(400, {"error": {"code": 131026, "message": "Message Undeliverable."}}).no_whatsapp  # type: ignore[union-attr]
    assert isinstance(whatsapp.interpret(400, {"error": {"code": 130429, "message": "Rate limit hit"}}), Transient)
    assert isinstance(whatsapp.interpret(401, {"error": {"code": 190, "message": "Invalid OAuth access token"}}), Transient)
    assert isinstance(whatsapp.interpret(502, {}), Transient)
    refused = whatsapp.interpret(400, {"error": {"code": 131009, "message": "(#131009) Parameter value is not valid",
                                                 "error_data": {"details": "Recipient 6281234567890 is not valid"}}})  # fmt: skip
    assert isinstance(refused, Rejected) and "131009" in refused.reason and "6281234567890" not in refused.reason
    missing = whatsapp.interpret(200, {"messaging_product": "whatsapp"})
    assert isinstance(missing, Transient) and missing.ambiguous


@pytest.mark.parametrize("status", [301, 302, 307, 404, 405])
def test_a_gateway_address_that_is_wrong_is_retried_naming_the_setting_not_failed_for_every_message(status: int) -> None:
    for answer in (zenziva.interpret(status, None), whatsapp.interpret(status, {})):
        assert isinstance(answer, Transient) and "NOTIFIER_*_BASE_URL" in answer.reason


def test_zenzivas_answers_are_read_as_documented() -> None:
    assert zenziva.interpret(200, {"messageId": "123", "to": "0812", "status": "1", "text": "Success"}) == Accepted("123")
    assert zenziva.interpret(200, {"status": "0", "text": "Nomor tujuan tidak valid"}) == Rejected(
        "Zenziva: Nomor tujuan tidak valid", "0")  # fmt: skip
    assert isinstance(zenziva.interpret(200, {"status": "0", "text": "Saldo tidak mencukupi"}), Transient)
    assert isinstance(zenziva.interpret(200, {"status": "0", "text": "Userkey / Passkey Salah"}), Transient)
    assert isinstance(zenziva.interpret(503, None), Transient)
    assert isinstance(zenziva.interpret(400, None), Rejected)
    unreadable = zenziva.interpret(200, None)
    assert isinstance(unreadable, Transient) and unreadable.ambiguous


def test_a_whatsapp_webhook_is_trusted_only_with_the_hmac_of_its_exact_body() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    good = "sha256=" + __import__("hmac").new(b"secret", body, "sha256").hexdigest()
    assert whatsapp.signed_by(b"secret", body, good)
    assert not whatsapp.signed_by(b"secret", body + b" ", good)
    assert not whatsapp.signed_by(b"other", body, good)
    assert not whatsapp.signed_by(b"secret", body, None)
    assert not whatsapp.signed_by(b"secret", body, good.removeprefix("sha256="))
    assert not whatsapp.signed_by(b"", body, good)


def test_a_webhook_gives_its_statuses_with_our_delivery_id_and_its_text_replies_and_skips_the_rest() -> None:
    ours = uuid.uuid4()
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "statuses": [{"id": "wamid.A", "status": "failed", "recipient_id": "6281234567890",
                      "biz_opaque_callback_data": f"berdaya:{ours}",
                      "errors": [{"code": 131026, "title": "Message undeliverable"}]},
                     {"id": "wamid.B", "status": "read", "biz_opaque_callback_data": "someone else's"},
                     {"status": "sent"}, "junk"],
        "messages": [{"from": "6281234567890", "id": "wamid.C", "type": "text", "text": {"body": "STOP"}},
                     {"from": "6281234567890", "type": "image", "image": {}}]}}]}, "junk"]}  # fmt: skip

    content = whatsapp.parse_webhook(payload)
    statuses, replies = content.statuses, content.replies

    assert [(s.provider_id, s.status, s.delivery_id, s.no_whatsapp) for s in statuses] == [
        ("wamid.A", "failed", ours, True), ("wamid.B", "read", None, False)]  # fmt: skip
    assert "Message undeliverable" in (statuses[0].error or "")
    assert [(r.phone, r.text, r.provider_id) for r in replies] == [("+6281234567890", "STOP", "wamid.C")]
    assert whatsapp.parse_webhook([1, 2]) == whatsapp.WebhookContent()


@pytest.mark.parametrize(("timestamp", "written_at"), [
    ("1795399200", datetime(2026, 11, 23, 2, 0, tzinfo=UTC)),
    (1795399200, None), ("-5", None), ("1e9", None), ("\u0661\u0662", None), ("9" * 400, None), (None, None),
])  # fmt: skip
def test_a_whatsapp_reply_carries_when_the_owner_wrote_it_and_a_time_that_is_no_time_is_left_out(
        timestamp: object, written_at: datetime | None) -> None:  # fmt: skip
    message = {"from": "6281234567890", "id": "wamid.C", "type": "text", "text": {"body": "STOP"}, "timestamp": timestamp}
    payload = {"entry": [{"changes": [{"value": {"messages": [message]}}]}]}

    [reply] = whatsapp.parse_webhook(payload).replies

    assert reply.written_at == written_at


def test_an_sms_reply_is_read_from_the_fields_gateways_use() -> None:
    assert zenziva.parse_inbound({"from": "081234567890", "message": "BERHENTI"}).phone == "+6281234567890"  # type: ignore[union-attr]
    assert zenziva.parse_inbound({"nohp": "6281234567890", "pesan": "mulai"}).text == "mulai"  # type: ignore[union-attr]
    assert zenziva.parse_inbound({"message": "STOP"}) is None


def test_a_template_parameter_is_sent_on_one_line() -> None:
    assert whatsapp.one_line("Yth. Bapak,\n\nDana\tsudah     cair.") == "Yth. Bapak, Dana sudah cair."


# ---------------------------------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["081234567890", "+6281234567890", "6281234567890", "+62 812-3456-7890",
                                 "0812-3456-7890"])
def test_a_mobile_number_written_any_way_a_gateway_writes_it_is_normalised_to_plus_62(raw: str) -> None:
    assert phones.normalise(raw) == "+6281234567890"


@pytest.mark.parametrize("raw", ["0211234567", "12345", "", "+6591234567", "0812345",
                                 "08\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",
                                 "81234567890", "85212345678", "+852 1234 5678", "+0812 3456 7890"])
def test_what_is_not_an_indonesian_mobile_is_not_normalised(raw: str) -> None:
    assert phones.normalise(raw) is None


def test_phones_and_addresses_are_masked_for_operators_and_in_gateway_reasons() -> None:
    assert phones.mask("+6281234567890") == "***********890"
    assert phones.mask("yohana@kupangkota.go.id") == "y***@kupangkota.go.id"
    assert phones.redact("Recipient 6281234567890 is not valid") == "Recipient **********890 is not valid"
    assert phones.redact("(#131009) Parameter value is not valid") == "(#131009) Parameter value is not valid"
    assert phones.redact("550 5.1.1 <budi.santoso@kupangkota.go.id>: Recipient address rejected") == (
        "550 5.1.1 <b***@kupangkota.go.id>: Recipient address rejected")


# ---------------------------------------------------------------------------------------------------------------
# Sponsors' weeks
# ---------------------------------------------------------------------------------------------------------------

SPONSOR = uuid.UUID(int=7)
PLEDGE = PledgeFact(uuid.UUID(int=8), SPONSOR, "Bank NTT", "CSR Bank NTT: modal usaha kuliner", "grant", 50_000_000,
                    wita(2026, 11, 2, 9))  # fmt: skip


def offer_fact(offered: datetime, amount: int = 5_000_000) -> OfferFact:
    return OfferFact(uuid.uuid4(), PLEDGE.pledge_id, uuid.uuid4(), "Usaha", PHONE, "53.71.04", "Bank NTT", "grant", None,
                     amount, offered, offered + timedelta(days=14))  # fmt: skip


def test_a_sponsors_week_runs_from_monday_00_00_to_sunday_24_00_wita() -> None:
    assert week_start(wita(2026, 11, 23, 0, 0)) == date(2026, 11, 23)  # a Monday
    assert week_start(wita(2026, 11, 29, 23, 59)) == date(2026, 11, 23)
    assert week_start(datetime(2026, 11, 22, 16, 30, tzinfo=UTC)) == date(2026, 11, 23)  # 00.30 WITA on Monday


def test_last_weeks_digest_is_due_from_monday_08_00_wita_and_a_late_start_catches_up_during_the_week() -> None:
    assert digest_due(wita(2026, 11, 23, 7, 59), weekday=0, hour=8) is None
    assert digest_due(wita(2026, 11, 23, 8, 0), weekday=0, hour=8) == date(2026, 11, 16)
    assert digest_due(wita(2026, 11, 26, 15, 0), weekday=0, hour=8) == date(2026, 11, 16)


def test_a_pledges_week_counts_what_happened_in_it_and_totals_what_it_has_done_so_far() -> None:
    monday = date(2026, 11, 16)
    before, during = wita(2026, 11, 10, 9), wita(2026, 11, 17, 9)
    paid_before = moved_on(moved_on(offer_fact(before), ACCEPTED, before + timedelta(days=1)), DISBURSED, before + timedelta(days=2))
    accepted = moved_on(offer_fact(during), ACCEPTED, during + timedelta(hours=3))
    paid = moved_on(moved_on(offer_fact(during), ACCEPTED, during + timedelta(hours=1)), DISBURSED, during + timedelta(days=1))
    declined = moved_on(offer_fact(before), DECLINED, during)
    expired = moved_on(offer_fact(before), EXPIRED, wita(2026, 11, 24, 9))  # next week: not this one
    still_open = offer_fact(during)

    week = pledge_week(PLEDGE, [paid_before, accepted, paid, declined, expired, still_open], monday)

    assert (week.offered, week.offered_rupiah) == (3, 15_000_000)
    assert (week.accepted, week.declined, week.expired, week.withdrawn) == (2, 1, 0, 0)
    assert (week.disbursed, week.disbursed_rupiah) == (1, 5_000_000)
    assert (week.funded_businesses, week.disbursed_to_date_rupiah) == (2, 10_000_000)
    assert (week.reserved_rupiah, week.accepted_rupiah, week.remaining_rupiah) == (5_000_000, 5_000_000, 30_000_000)
    assert not week.quiet and not week.closed


def test_a_disbursement_arriving_twice_or_an_answer_after_it_never_undoes_the_payment() -> None:
    paid = moved_on(offer_fact(NOW), DISBURSED, NOW)
    assert moved_on(paid, ACCEPTED, NOW + timedelta(hours=1)) == paid


# ---------------------------------------------------------------------------------------------------------------
# Texts: every template, in plain Bahasa Indonesia, times in WITA
# ---------------------------------------------------------------------------------------------------------------

ENGLISH = re.compile(r"\b(the|your|you|business|registered|welcome|offer|expires|issued|rejected|reason|funds|"
                     r"disbursed|until|from|thank|week|pledge|summary)\b", re.IGNORECASE)  # fmt: skip
ANY_TIME = re.compile(r"\b\d{2}[.:]\d{2}\b")
EXPIRES = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)  # 8 December, 00.30 WITA


def new_texts() -> dict[str, str]:
    week = pledge_week(PLEDGE, [offer_fact(wita(2026, 11, 17, 9))], date(2026, 11, 16))
    return {
        "offer_reminder": texts.offer_reminder_text("Sei Sapi Ibu Maria", 5_000_000, "financing_referral", "KUR", "BRI",
                                                    EXPIRES),  # fmt: skip
        "offer_at_risk_officer": texts.offer_at_risk_officer_text("Sei Sapi Ibu Maria", uuid.UUID(int=3), 5_000_000,
                                                                  "Bank NTT", EXPIRES, wita(2026, 12, 7, 7)),  # fmt: skip
        "offer_at_risk_officer_unsent": texts.offer_at_risk_officer_text("Sei Sapi Ibu Maria", uuid.UUID(int=3),
                                                                         5_000_000, "Bank NTT", EXPIRES, None),  # fmt: skip
        "opted_out": texts.opted_out_text(),
        "opted_in": texts.opted_in_text(),
        "sponsor_digest": texts.sponsor_digest_text("Bank NTT", date(2026, 11, 16), [week]),
    }


@pytest.mark.parametrize("template", list(new_texts()))
def test_the_new_templates_are_plain_bahasa_indonesia_with_every_time_in_wita(template: str) -> None:
    body = new_texts()[template]
    assert not ENGLISH.search(body), f"{template}: {ENGLISH.search(body)}"
    for shown in ANY_TIME.finditer(body):
        assert body[shown.end():].startswith(" WITA"), body
    assert "16.30" not in body and "7 Desember 2026 pukul 16" not in body  # never the UTC time or day


def test_every_template_has_a_policy_and_every_owners_text_fits_one_whatsapp_template_parameter() -> None:
    assert set(TEMPLATES) >= {"welcome", "funding_offer", "offer_reminder", "funds_disbursed", "opted_out", "opted_in",
                              "halal_stalled_officer", "offer_at_risk_officer", "sponsor_digest"}  # fmt: skip
    bodies = new_texts()
    for template in ("offer_reminder", "opted_out", "opted_in"):
        assert policy_of(template).audience == "owner"
        assert len(bodies[template]) < 1000 and "\n" not in bodies[template]


def test_the_reminder_names_the_instrument_amount_sponsor_and_the_wita_deadline() -> None:
    text = new_texts()["offer_reminder"]
    assert text.startswith("Pengingat: tawaran rujukan pembiayaan KUR sebesar Rp5.000.000 dari BRI untuk usaha "
                           "Sei Sapi Ibu Maria berlaku sampai 8 Desember 2026 pukul 00.30 WITA.")  # fmt: skip


def test_the_officers_hear_when_an_offer_will_reach_its_owner_late_or_not_at_all() -> None:
    late, unsent = new_texts()["offer_at_risk_officer"], new_texts()["offer_at_risk_officer_unsent"]
    assert "baru dapat dikirim 7 Desember 2026 pukul 07.00 WITA" in late and "(nomor registrasi 00000000)" in late
    assert "tidak terkirim" in unsent and "Mohon hubungi pemilik" in unsent


def test_the_sponsors_digest_gives_the_week_and_the_totals_so_far_in_rupiah() -> None:
    text = new_texts()["sponsor_digest"]
    assert text.startswith("Yth. Bank NTT,\n\nBerikut ringkasan mingguan program UMKM Berdaya Kota Kupang, "
                           "16 November 2026 sampai 22 November 2026.")  # fmt: skip
    assert "Program \"CSR Bank NTT: modal usaha kuliner\" (total Rp50.000.000):" in text
    assert "- Minggu ini: 1 tawaran baru senilai Rp5.000.000; 0 diterima" in text
    assert "Rp5.000.000 menunggu jawaban pemilik usaha" in text and "sisa Rp45.000.000." in text
    assert texts.sponsor_digest_subject("Bank NTT", date(2026, 11, 16)) == (
        "Ringkasan mingguan Berdaya untuk Bank NTT, pekan 16 November 2026")  # fmt: skip

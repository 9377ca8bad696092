"""Alertmanager's alerts in the notifier, with fakes (no database, no gateway, no waiting): who hears of an alert and
what it says (domain/alerts.py, texts.py), why a retry or a repeat notification makes no second message, when an
alert may go, the use case recording a call, the delivery worker sending what it recorded, and the webhook's HTTP
contract (its token, its bounds, its errors) served by the real route over a fake unit of work."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.notifier import alerts, webhooks
from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.channels.local import LocalOutboxFiles
from services.notifier.delivery import DeliveryWorker, WorkerSettings
from services.notifier.domain import texts
from services.notifier.domain.alerts import (
    Alert,
    AlertRecipients,
    alert_message,
    alert_not_before,
    audience_of,
    notice_id,
    parse_contacts,
    plan_alert,
    runbook_of,
)
from services.notifier.domain.channels import (
    EMAIL,
    LOCAL,
    SMS,
    WHATSAPP,
    Accepted,
    Available,
    Rejected,
    SendResult,
    Transient,
)
from services.notifier.domain.consent import Preference
from services.notifier.domain.planning import DeliveryRules
from services.notifier.domain.schedule import QuietHours
from services.notifier.figures import NotifierFigures
from services.notifier.recording import Deps
from services.notifier.routes import NotifierContext
from services.notifier.settings import NotifierSettings
from shared.errors import InvalidInput
from shared.reference.wita import WITA
from shared.unit_of_work import Cause
from shared.web import BoundedInput, install_error_handlers

from .fakes import FakeNotifierStore, FakeNotifierUnitOfWork, FixedClock


def wita(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=WITA).astimezone(UTC)


MORNING = wita(2026, 11, 23, 10)  # a Monday, 10.00 WITA
NIGHT = wita(2026, 11, 23, 23)
STARTED = wita(2026, 11, 23, 9, 48)
ENDED = wita(2026, 11, 23, 10, 13)
TOKEN = "alertmanager-unit-test-token-0123456789"
OPS_EMAIL, OPS_PHONE = "ops@berdaya.kupangkota.go.id", "+6281377000111"


def lagging(status: str = "firing", **overrides: Any) -> Alert:
    values: dict[str, Any] = dict(
        status=status,
        labels={"alertname": "BerdayaConsumerLagging", "severity": "warning", "audience": "operators",
                "consumer": "funding-view", "topic": "registry.business.v1"},
        annotations={"summary": "funding-view is 12m 3s behind on registry.business.v1",
                     "description": "The oldest event funding-view has not consumed has waited more than 5 minutes.",
                     "runbook": "deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging"},
        starts_at=STARTED, ends_at=ENDED if status == "resolved" else datetime(1, 1, 1, tzinfo=UTC),
        fingerprint="a1b2c3d4e5f60718",
    )  # fmt: skip
    return Alert(**{**values, **overrides})


def stalled(status: str = "firing", severity: str = "info") -> Alert:
    return Alert(status, {"alertname": "BerdayaNibCoverageStalled", "severity": severity, "audience": "officers",
                          "kecamatan": "Oebobo"},
                 {"summary": "No new NIB in Oebobo for 31d", "runbook": "deploy/prometheus/RUNBOOK.md#berdayanibcoveragestalled"},
                 STARTED, ENDED if status == "resolved" else None, "0f0e0d0c0b0a0908")  # fmt: skip


def new_deps(clock: FixedClock, available: Available = Available(), quiet: QuietHours = QuietHours()) -> Deps:
    ids = iter(uuid.UUID(int=n) for n in range(1, 100_000))
    return Deps(clock=clock, new_id=lambda: next(ids), rules=DeliveryRules(available=available, quiet=quiet))


# ---------------------------------------------------------------------------------------------------------------
# What an alert says
# ---------------------------------------------------------------------------------------------------------------


def test_a_firing_alert_tells_operators_what_fires_how_badly_since_when_in_wita_and_where_the_runbook_is() -> None:
    message = alert_message("operators", lagging(), uuid.UUID(int=1), MORNING)

    assert message.body == (
        "[FIRING] BerdayaConsumerLagging (warning): funding-view is 12m 3s behind on registry.business.v1. The oldest "
        "event funding-view has not consumed has waited more than 5 minutes. Since 2026-11-23 09:48 WITA. Labels: "
        "consumer=funding-view, topic=registry.business.v1. Runbook: deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging"
    )
    assert message.subject == "[FIRING] BerdayaConsumerLagging (warning): funding-view is 12m 3s behind on registry.business.v1"
    assert (message.template, message.audience, message.business_id, message.recipient_phone) == (
        "alert_firing", "operators", None, None)


def test_a_resolved_alert_tells_operators_when_it_fired_and_for_how_long() -> None:
    message = alert_message("operators", lagging("resolved"), uuid.UUID(int=1), MORNING)

    assert message.template == "alert_resolved"
    assert message.body.startswith("[RESOLVED] BerdayaConsumerLagging (warning): funding-view is 12m 3s behind")
    assert "Fired from 2026-11-23 09:48 WITA to 2026-11-23 10:13 WITA (25 min)." in message.body
    assert message.subject.startswith("[RESOLVED] BerdayaConsumerLagging (warning)")


def test_the_programme_offices_alerts_are_in_bahasa_indonesia_with_times_in_wita() -> None:
    firing = alert_message("officers", stalled(), uuid.UUID(int=1), MORNING)
    resolved = alert_message("officers", stalled("resolved"), uuid.UUID(int=2), MORNING)

    assert firing.body == ("[PERINGATAN] BerdayaNibCoverageStalled (info): No new NIB in Oebobo for 31d. Sejak 23 "
                           "November 2026 pukul 09.48 WITA. Label: kecamatan=Oebobo. Panduan: "
                           "deploy/prometheus/RUNBOOK.md#berdayanibcoveragestalled")  # fmt: skip
    assert (firing.template, firing.audience, firing.kecamatan_code) == ("alert_firing_officer", "officers", None)
    assert resolved.body.startswith("[SELESAI] BerdayaNibCoverageStalled (info)")
    assert "Berlangsung dari 23 November 2026 pukul 09.48 WITA sampai 23 November 2026 pukul 10.13 WITA." in resolved.body
    assert resolved.template == "alert_resolved_officer"


def test_an_alert_without_a_runbook_annotation_points_at_its_section_of_the_runbook() -> None:
    assert runbook_of(lagging(annotations={"summary": "x"})) == "deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging"
    assert runbook_of(lagging(annotations={"runbook_url": "https://wiki.example/lag"})) == "https://wiki.example/lag"
    assert runbook_of(lagging(labels={"severity": "critical"}, annotations={})) == "deploy/prometheus/RUNBOOK.md"
    message = alert_message("operators", lagging(labels={}, annotations={}), uuid.UUID(int=1), MORNING)
    assert message.body == "[FIRING] unnamed alert. Since 2026-11-23 09:48 WITA. Runbook: deploy/prometheus/RUNBOOK.md"


def test_a_text_is_one_line_under_a_thousand_characters_whatever_the_annotations_hold() -> None:
    huge = lagging(annotations={"summary": "line one\nline two\t" + "s" * 5000, "description": "d\r\n" * 3000,
                                "runbook": "deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging"},
                   labels={"alertname": "BerdayaConsumerLagging", **{f"label_{i}": "v" * 300 for i in range(50)}})  # fmt: skip
    for audience in ("operators", "officers"):
        message = alert_message(audience, huge, uuid.UUID(int=1), MORNING)
        assert len(message.body) <= texts.ALERT_BODY_LIMIT and "\n" not in message.body and "\t" not in message.body
        assert message.body.startswith(("[FIRING] BerdayaConsumerLagging: line one line two sss",
                                        "[PERINGATAN] BerdayaConsumerLagging: line one line two sss"))  # fmt: skip
        assert message.body.endswith("deploy/prometheus/RUNBOOK.md#berdayaconsumerlagging")  # the runbook always fits
        assert len(message.subject or "") <= texts.ALERT_SUBJECT_LIMIT


# ---------------------------------------------------------------------------------------------------------------
# Once per (audience, fingerprint, status, startsAt)
# ---------------------------------------------------------------------------------------------------------------


def test_a_retry_or_a_repeat_notification_of_a_firing_alert_is_the_same_notice_but_its_resolution_is_not() -> None:
    firing = notice_id("operators", lagging())
    repeated = notice_id("operators", lagging(annotations={"summary": "funding-view is 4h behind"}))  # 4h later

    assert repeated == firing
    assert notice_id("operators", lagging("resolved")) not in (firing, None)
    assert notice_id("operators", lagging(starts_at=STARTED + timedelta(hours=6))) != firing  # it fired again later
    assert notice_id("operators", lagging(fingerprint="ffffffffffffffff")) != firing  # another alert
    assert notice_id("officers", lagging()) != firing  # routed to both: each audience hears of it


def test_the_notice_depends_on_the_instant_the_alert_started_not_on_how_it_was_written() -> None:
    in_wita = STARTED.astimezone(WITA)
    assert notice_id("operators", lagging(starts_at=in_wita)) == notice_id("operators", lagging())


def test_an_alert_without_a_fingerprint_is_known_by_its_labels_in_any_order() -> None:
    labels = {"alertname": "BerdayaServiceDown", "job": "funding", "instance": "127.0.0.1:8002"}
    reordered = dict(reversed(list(labels.items())))
    one, other = lagging(fingerprint=None, labels=labels), lagging(fingerprint=None, labels=reordered)

    assert one.identity == other.identity and one.identity.startswith("labels:")
    assert lagging(fingerprint=None, labels={**labels, "job": "registry"}).identity != one.identity


# ---------------------------------------------------------------------------------------------------------------
# Who hears of it, how and when
# ---------------------------------------------------------------------------------------------------------------


def test_the_receiver_decides_the_audience_and_an_unknown_receiver_is_refused_naming_it() -> None:
    assert (audience_of("operators"), audience_of("officers")) == ("operators", "officers")
    with pytest.raises(InvalidInput) as refused:
        audience_of("heartbeat")
    [error] = refused.value.errors
    assert (error.field, error.code) == ("receiver", "alertmanager.receiver_unknown")
    assert "'heartbeat'" in error.message and "officers and operators" in error.message


def test_contacts_are_email_addresses_and_phones_normalised_to_e164_without_duplicates() -> None:
    raw = f" {OPS_EMAIL}, 0813-7700-0111 ,+61 412 345 678,, 6281377000111, {OPS_EMAIL}"
    assert parse_contacts(raw, "NOTIFIER_OPERATOR_CONTACTS") == (OPS_EMAIL, OPS_PHONE, "+61412345678")
    assert parse_contacts("", "NOTIFIER_OPERATOR_CONTACTS") == ()


@pytest.mark.parametrize("raw", ["ops@", "12345", "ops@berdaya.id;0812", "+0123456789"])
def test_a_contact_that_is_neither_an_address_nor_a_phone_number_names_the_setting_and_its_position(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^NOTIFIER_OFFICER_CONTACTS: entry 2 \("):
        parse_contacts(f"{OPS_EMAIL},{raw}", "NOTIFIER_OFFICER_CONTACTS")


def test_a_wrong_contact_stops_the_service_at_start_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_OPERATOR_CONTACTS", f"{OPS_EMAIL},not-a-contact")
    with pytest.raises(ValueError, match="NOTIFIER_OPERATOR_CONTACTS: entry 2"):
        NotifierSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    monkeypatch.setenv("NOTIFIER_OPERATOR_CONTACTS", f"{OPS_EMAIL}, 0813 7700 0111")
    monkeypatch.setenv("NOTIFIER_ALERTMANAGER_TOKEN", "too-short")
    with pytest.raises(ValueError, match="NOTIFIER_ALERTMANAGER_TOKEN is shorter than 16 characters"):
        NotifierSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    monkeypatch.setenv("NOTIFIER_ALERTMANAGER_TOKEN", f" {TOKEN}\n")
    settings = NotifierSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    assert settings.alert_recipients == AlertRecipients(operators=(OPS_EMAIL, OPS_PHONE))
    assert settings.alertmanager_token is not None and settings.alertmanager_token.get_secret_value() == TOKEN


def test_alerts_wait_on_a_phone_at_night_unless_critical_the_operators_and_the_programme_offices_alike() -> None:
    quiet = QuietHours()
    seven = wita(2026, 11, 24, 7)
    assert alert_not_before("alert_firing", "critical", WHATSAPP, NIGHT, quiet) == NIGHT
    assert alert_not_before("alert_resolved", "critical", SMS, NIGHT, quiet) == NIGHT
    assert alert_not_before("alert_firing", "warning", WHATSAPP, NIGHT, quiet) == seven
    assert alert_not_before("alert_resolved", None, SMS, NIGHT, quiet) == seven
    assert alert_not_before("alert_firing", "warning", EMAIL, NIGHT, quiet) == NIGHT
    assert alert_not_before("alert_firing_officer", "info", WHATSAPP, NIGHT, quiet) == seven
    assert alert_not_before("alert_resolved_officer", "info", SMS, NIGHT, quiet) == seven
    assert alert_not_before("alert_firing_officer", "critical", WHATSAPP, NIGHT, quiet) == NIGHT
    assert alert_not_before("alert_firing_officer", "info", EMAIL, NIGHT, quiet) == NIGHT
    assert alert_not_before("alert_firing_officer", "info", WHATSAPP, MORNING, quiet) == MORNING


def test_each_recipient_gets_one_delivery_on_its_own_channel() -> None:
    rules = DeliveryRules(available=Available(whatsapp=True, sms=True, email=True))
    message = alert_message("operators", lagging(), uuid.UUID(int=1), MORNING)
    no_whatsapp = "+6281377000222"
    ids = iter(uuid.UUID(int=n) for n in range(10, 20))
    plan = plan_alert(message, "warning", (OPS_EMAIL, OPS_PHONE, no_whatsapp),
                      {no_whatsapp: Preference(no_whatsapp, no_whatsapp_since=MORNING - timedelta(days=1))}, rules,
                      MORNING, lambda: next(ids))  # fmt: skip

    assert [(d.channel, d.recipient, d.status, d.not_before) for d in plan.deliveries] == [
        (EMAIL, OPS_EMAIL, "queued", MORNING), (WHATSAPP, OPS_PHONE, "queued", MORNING),
        (SMS, no_whatsapp, "queued", MORNING)]  # fmt: skip


def test_every_delivery_of_a_critical_alert_says_so_even_one_that_found_no_channel_and_may_be_resent() -> None:
    rules = DeliveryRules(available=Available(whatsapp=True, email=True))  # no SMS for a number without WhatsApp
    message = alert_message("officers", stalled(severity="critical"), uuid.UUID(int=1), NIGHT)
    plan = plan_alert(message, "critical", (OPS_EMAIL, OPS_PHONE),
                      {OPS_PHONE: Preference(OPS_PHONE, no_whatsapp_since=NIGHT - timedelta(days=1))}, rules, NIGHT,
                      uuid.uuid4)  # fmt: skip

    assert [(d.channel, d.status, d.critical) for d in plan.deliveries] == [(EMAIL, "queued", True),
                                                                         (WHATSAPP, "failed", True)]  # fmt: skip


def test_without_gateways_every_recipient_is_served_by_the_local_outbox_under_their_own_address() -> None:
    message = alert_message("operators", lagging(), uuid.UUID(int=1), MORNING)
    plan = plan_alert(message, "warning", (OPS_EMAIL, OPS_PHONE), {}, DeliveryRules(), MORNING, uuid.uuid4)

    assert [(d.channel, d.recipient, d.reason) for d in plan.deliveries] == [(LOCAL, OPS_EMAIL, None),
                                                                          (LOCAL, OPS_PHONE, None)]  # fmt: skip


def test_with_no_contacts_an_alert_is_kept_in_the_local_outbox_saying_which_setting_to_fill_in() -> None:
    rules = DeliveryRules(available=Available(whatsapp=True, email=True))
    for audience, setting in (("operators", "NOTIFIER_OPERATOR_CONTACTS"), ("officers", "NOTIFIER_OFFICER_CONTACTS")):
        message = alert_message(audience, lagging(), uuid.UUID(int=1), MORNING)
        [delivery] = plan_alert(message, "warning", (), {}, rules, MORNING, uuid.uuid4).deliveries
        assert (delivery.channel, delivery.recipient, delivery.status) == (LOCAL, f"alerts:{audience}", "queued")
        assert delivery.reason is not None and setting in delivery.reason


# ---------------------------------------------------------------------------------------------------------------
# The use case, and the delivery worker
# ---------------------------------------------------------------------------------------------------------------


def uow(store: FakeNotifierStore) -> FakeNotifierUnitOfWork:
    return FakeNotifierUnitOfWork(store, Cause.request(uuid.uuid4(), "alertmanager"))


def received(receiver: str, *found: Alert, truncated: int = 0) -> alerts.AlertsReceived:
    return alerts.AlertsReceived(receiver, found, truncated)


async def test_a_call_sent_again_and_repeated_records_each_alert_once_and_its_resolution_once_more() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    recipients = AlertRecipients(operators=(OPS_EMAIL, OPS_PHONE))
    down = Alert("firing", {"alertname": "BerdayaServiceDown", "severity": "critical", "job": "funding"}, {},
                 STARTED, None, "1111222233334444")  # fmt: skip

    first = await alerts.record_alerts(received("operators", lagging(), down), uow(store), deps, recipients)
    retry = await alerts.record_alerts(received("operators", lagging(), down), uow(store), deps, recipients)
    deps.clock.set(MORNING + timedelta(hours=4))  # type: ignore[attr-defined] - repeat_interval later, still firing
    repeat = await alerts.record_alerts(received("operators", lagging()), uow(store), deps, recipients)
    resolved = await alerts.record_alerts(received("operators", lagging("resolved")), uow(store), deps, recipients)

    assert (first.recorded, first.repeated, first.deliveries, first.recipients) == (2, 0, 4, 2)
    assert (retry.recorded, retry.repeated, retry.deliveries) == (0, 2, 0)
    assert (repeat.recorded, repeat.repeated) == (0, 1)
    assert (resolved.recorded, resolved.repeated, resolved.deliveries) == (1, 0, 2)
    assert sorted(m.template for m in store.messages) == ["alert_firing", "alert_firing", "alert_resolved"]
    lag = [m for m in store.messages if "ConsumerLagging" in m.body]
    for recipient in (OPS_EMAIL, OPS_PHONE):
        mine = [d for d in store.deliveries.values() if d.recipient == recipient and d.message_id in {m.id for m in lag}]
        assert len(mine) == 2  # the firing and the resolution, once each
    assert {store.status_of(m) for m in store.messages} == {"queued"}
    assert first.counts == {("firing", "recorded"): 2} and retry.counts == {("firing", "repeated"): 2}


async def test_two_alerts_of_one_call_that_are_the_same_notice_make_one_message() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    outcome = await alerts.record_alerts(received("operators", lagging(), lagging()), uow(store), deps, AlertRecipients())
    assert (outcome.recorded, outcome.repeated, len(store.messages)) == (1, 1, 1)


async def test_a_call_to_an_unknown_receiver_records_nothing() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING))
    with pytest.raises(InvalidInput):
        await alerts.record_alerts(received("pagerduty", lagging()), uow(store), deps, AlertRecipients())
    assert store.messages == [] and store.deliveries == {}


async def test_an_owners_stop_on_an_operators_number_never_holds_back_an_alert() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(MORNING), Available(whatsapp=True))
    store.preferences[OPS_PHONE] = Preference(OPS_PHONE, opted_out_at=MORNING - timedelta(days=3))
    gateway = RecordingGateway(WHATSAPP)

    await alerts.record_alerts(received("operators", lagging()), uow(store), deps, AlertRecipients(operators=(OPS_PHONE,)))
    await worker(store, deps, {WHATSAPP: gateway}).pass_once()

    [sent] = gateway.sent
    assert sent.recipient == OPS_PHONE and sent.body.startswith("[FIRING] BerdayaConsumerLagging")
    [delivery] = store.deliveries.values()
    assert (delivery.channel, delivery.status) == (WHATSAPP, "sent")


@dataclass
class RecordingGateway(Gateway):
    """A gateway that takes every message and remembers it."""

    channel: str
    sent: list[OutgoingMessage] = field(default_factory=list)

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return Accepted(f"{self.channel}-{len(self.sent)}")

    def describe(self) -> str:
        return f"recording {self.channel}"


def worker(store: FakeNotifierStore, deps: Deps, gateways: dict[str, Gateway], files: LocalOutboxFiles | None = None,
           figures: NotifierFigures | None = None) -> DeliveryWorker:  # fmt: skip
    settings = WorkerSettings(holder="host:1", batch=50, concurrency=4, lease=timedelta(seconds=60))
    return DeliveryWorker(lambda: uow(store), gateways, files or LocalOutboxFiles(None), deps, settings,
                          figures or NotifierFigures(CollectorRegistry()), jitter=lambda: 1.0)  # fmt: skip


async def test_the_delivery_worker_sends_alert_messages_by_email_and_to_the_local_outbox(tmp_path: Any) -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT), Available(email=True))
    smtp = RecordingGateway(EMAIL)
    await alerts.record_alerts(received("operators", lagging()), uow(store), deps, AlertRecipients(operators=(OPS_EMAIL,)))
    await alerts.record_alerts(received("officers", stalled()), uow(store), deps, AlertRecipients())

    await worker(store, deps, {EMAIL: smtp}, LocalOutboxFiles(tmp_path)).pass_once()

    [email] = smtp.sent
    assert (email.recipient, email.template) == (OPS_EMAIL, "alert_firing")
    assert email.subject == "[FIRING] BerdayaConsumerLagging (warning): funding-view is 12m 3s behind on registry.business.v1"
    kept = {d.recipient: (d.channel, d.status) for d in store.deliveries.values()}
    assert kept == {OPS_EMAIL: (EMAIL, "sent"), "alerts:officers": (LOCAL, "delivered")}
    [local] = [d for d in store.deliveries.values() if d.channel == LOCAL]
    assert store.local_outbox[local.id][0] == "alerts:officers" and "NOTIFIER_OFFICER_CONTACTS" in (local.reason or "")
    [file] = list(tmp_path.glob("*/*.txt"))
    assert "Kepada: alerts:officers" in file.read_text() and "[PERINGATAN] BerdayaNibCoverageStalled" in file.read_text()


@dataclass
class AnsweringGateway(Gateway):
    """A gateway that gives the answers it is told, in turn, then takes every message."""

    channel: str
    answers: list[SendResult]
    sent: list[OutgoingMessage] = field(default_factory=list)

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return self.answers.pop(0) if self.answers else Accepted(f"{self.channel}-{len(self.sent)}")

    def describe(self) -> str:
        return f"answering {self.channel}"


@pytest.mark.parametrize(("severity", "retried_at"), [
    ("info", wita(2026, 11, 24, 7)),  # the end of quiet hours
    ("critical", wita(2026, 11, 23, 21, 0) + timedelta(seconds=5)),  # the first retry's 15 s
])  # fmt: skip
async def test_a_programme_office_alert_retried_by_phone_waits_out_quiet_hours_unless_it_is_critical(
    severity: str, retried_at: datetime,
) -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(wita(2026, 11, 23, 20, 59) + timedelta(seconds=50)),
                                                Available(sms=True))  # fmt: skip
    sms = AnsweringGateway(SMS, [Transient("HTTP 503")])
    await alerts.record_alerts(received("officers", stalled(severity=severity)), uow(store), deps,
                               AlertRecipients(officers=(OPS_PHONE,)))  # fmt: skip

    await worker(store, deps, {SMS: sms}).pass_once()

    [delivery] = store.deliveries.values()
    assert (delivery.status, delivery.not_before, delivery.critical) == ("queued", retried_at, severity == "critical")


async def test_a_critical_programme_office_alert_to_a_number_without_whatsapp_goes_by_sms_at_once_at_night() -> None:
    store, deps = FakeNotifierStore(), new_deps(FixedClock(NIGHT), Available(whatsapp=True, sms=True))
    whatsapp = AnsweringGateway(WHATSAPP, [Rejected("131026 Message undeliverable", no_whatsapp=True)])
    await alerts.record_alerts(received("officers", stalled(severity="critical")), uow(store), deps,
                               AlertRecipients(officers=(OPS_PHONE,)))  # fmt: skip

    await worker(store, deps, {WHATSAPP: whatsapp, SMS: AnsweringGateway(SMS, [])}).pass_once()

    by_channel = {d.channel: d for d in store.deliveries.values()}
    assert by_channel[WHATSAPP].status == "failed"
    assert (by_channel[SMS].not_before, by_channel[SMS].critical) == (NIGHT, True)


# ---------------------------------------------------------------------------------------------------------------
# The webhook over HTTP: the real route and error handlers, a fake unit of work
# ---------------------------------------------------------------------------------------------------------------


def payload(*found: dict[str, Any], receiver: str = "operators", status: str = "firing") -> dict[str, Any]:
    """Alertmanager 0.25's webhook body."""
    return {"receiver": receiver, "status": status, "alerts": list(found),
            "groupLabels": {"alertname": "BerdayaConsumerLagging"}, "commonLabels": {"alertname": "BerdayaConsumerLagging"},
            "commonAnnotations": {}, "externalURL": "http://127.0.0.1:59093", "version": "4",
            "groupKey": '{}/{severity="critical"}:{alertname="BerdayaConsumerLagging"}', "truncatedAlerts": 0}  # fmt: skip


def wire_alert(status: str = "firing", **overrides: Any) -> dict[str, Any]:
    alert = {"status": status, "labels": {"alertname": "BerdayaConsumerLagging", "severity": "warning",
                                          "consumer": "funding-view", "topic": "registry.business.v1"},
             "annotations": {"summary": "funding-view is 12m behind on registry.business.v1"},
             "startsAt": "2026-11-23T01:48:00.123456789Z",
             "endsAt": "2026-11-23T02:13:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
             "generatorURL": "http://127.0.0.1:59090/graph?g0.expr=berdaya%3Aconsumer_lag_seconds%3Amax",
             "fingerprint": "a1b2c3d4e5f60718"}  # fmt: skip
    return {**alert, **overrides}


@dataclass
class Webhook:
    http: httpx.AsyncClient
    store: FakeNotifierStore
    figures: NotifierFigures
    registry: CollectorRegistry

    async def post(self, body: Any, token: str | None = TOKEN, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post("/webhooks/alertmanager", content=content,
                                    headers={"Content-Type": "application/json", **headers})  # fmt: skip

    def refused(self) -> float:
        return self.registry.get_sample_value("berdaya_notifier_webhooks_refused_total", {"source": "alertmanager"}) or 0


class UnreachableDatabase(FakeNotifierUnitOfWork):
    async def _begin(self) -> None:
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")


def webhook_app(store: FakeNotifierStore, token: str | None, *, down: bool = False,
                registry: CollectorRegistry | None = None) -> tuple[FastAPI, NotifierFigures]:  # fmt: skip
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedInput, max_body_bytes=10 * 1024 * 1024)
    app.include_router(webhooks.router)
    figures = NotifierFigures(registry or CollectorRegistry())
    unit = UnreachableDatabase if down else FakeNotifierUnitOfWork
    app.state.service = NotifierContext(
        queries=None, deps=new_deps(FixedClock(MORNING)), unit_of_work=lambda cause: unit(store, cause),  # type: ignore[arg-type]
        figures=figures, channels=[], alertmanager_token=token,
        alert_recipients=AlertRecipients(operators=(OPS_EMAIL, OPS_PHONE)),
    )  # fmt: skip
    return app, figures


@pytest.fixture
async def hook() -> AsyncIterator[Webhook]:
    store, registry = FakeNotifierStore(), CollectorRegistry()
    app, figures = webhook_app(store, TOKEN, registry=registry)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier.test") as http:
        yield Webhook(http, store, figures, registry)


async def test_a_good_call_answers_200_with_what_was_recorded_and_a_repeat_records_nothing(hook: Webhook) -> None:
    first = await hook.post(payload(wire_alert()))
    again = await hook.post(payload(wire_alert()))

    assert first.status_code == 200, first.text
    assert first.json() == {"audience": "operators", "alerts": 1, "recorded": 1, "repeated": 0, "deliveries": 2,
                            "recipients": 2}  # fmt: skip
    assert again.status_code == 200 and again.json()["repeated"] == 1 and again.json()["recorded"] == 0
    [message] = hook.store.messages
    assert message.body.startswith("[FIRING] BerdayaConsumerLagging (warning): funding-view is 12m behind")
    assert "Since 2026-11-23 09:48 WITA" in message.body
    counted = hook.registry.get_sample_value("berdaya_notifier_alerts_total",
                                             {"audience": "operators", "status": "firing", "outcome": "repeated"})  # fmt: skip
    assert counted == 1


async def test_without_a_token_configured_the_webhook_answers_503_naming_the_setting_and_takes_nothing() -> None:
    store = FakeNotifierStore()
    app, figures = webhook_app(store, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier.test") as http:
        answer = await http.post("/webhooks/alertmanager", json=payload(wire_alert()),
                                 headers={"Authorization": "Bearer anything-at-all-will-do"})  # fmt: skip

    assert answer.status_code == 503 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "alertmanager webhook not configured: set NOTIFIER_ALERTMANAGER_TOKEN"
    assert store.messages == []


async def test_a_missing_token_is_401_a_wrong_one_403_and_each_refusal_is_counted(hook: Webhook) -> None:
    missing = await hook.post(payload(wire_alert()), token=None)
    basic = await hook.post(payload(wire_alert()), token=None, Authorization=f"Basic {TOKEN}")
    wrong = await hook.post(payload(wire_alert()), token=TOKEN + "x")
    empty = await hook.post(payload(wire_alert()), token="")

    assert (missing.status_code, basic.status_code, wrong.status_code, empty.status_code) == (401, 401, 403, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["code"] == "webhook.unauthenticated" and wrong.json()["code"] == "webhook.refused"
    assert TOKEN not in wrong.text
    assert hook.refused() == 4 and hook.store.messages == []


@pytest.mark.parametrize(("body", "field", "code"), [
    ({**payload(wire_alert()), "version": "3"}, "version", "literal_error"),
    ({k: v for k, v in payload(wire_alert()).items() if k != "version"}, "version", "missing"),
    (payload(wire_alert(status="pending")), "alerts.0.status", "literal_error"),
    (payload(wire_alert(startsAt="yesterday")), "alerts.0.startsAt", "datetime_from_date_parsing"),
    (payload(wire_alert(startsAt="2026-11-23T01:48:00")), "alerts.0.startsAt", "timezone_aware"),
    (payload(wire_alert(startsAt="0001-01-01T00:00:00+05:00")), "alerts.0.startsAt", "value_error"),
    (payload(wire_alert(startsAt="9999-12-31T23:59:59-05:00")), "alerts.0.startsAt", "value_error"),
    (payload(wire_alert("resolved", endsAt="9999-12-31T23:59:59Z")), "alerts.0.endsAt", "value_error"),
    (payload(wire_alert(labels=["alertname"])), "alerts.0.labels", "dict_type"),
    (payload(wire_alert(fingerprint="not a fingerprint!")), "alerts.0.fingerprint", "string_pattern_mismatch"),
    (payload(wire_alert(labels={"alertname": "x" * 5000})), "alerts.0.labels.alertname", "string_too_long"),
    (payload(*[wire_alert(fingerprint=f"{i:016x}") for i in range(1001)]), "alerts", "too_long"),
    (payload(wire_alert(), receiver="pagerduty"), "receiver", "alertmanager.receiver_unknown"),
    ([payload(wire_alert())], "body", "model_type"),
    (b'{"version": "4", "alerts": [', "body", "json_invalid"),
    (json.dumps(payload(wire_alert(labels={"alertname": "\ud800"}))).encode(), "body", "json_invalid"),  # lone surrogate
    (b'{"version": "4", "receiver": "\xff\xfe"}', "body", "json_invalid"),  # not UTF-8
])  # fmt: skip
async def test_a_bad_body_is_422_naming_the_field_and_why(hook: Webhook, body: Any, field: str, code: str) -> None:
    answer = await hook.post(body)

    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "invalid_input" and answer.headers["content-type"] == "application/problem+json"
    assert (problem["errors"][0]["field"], problem["errors"][0]["code"]) == (field, code), problem
    assert problem["errors"][0]["message"] and field in problem["detail"]
    assert hook.store.messages == []


async def test_an_end_at_alertmanagers_zero_time_in_any_offset_is_no_end(hook: Webhook) -> None:
    answer = await hook.post(payload(wire_alert("resolved", endsAt="0001-01-01T00:00:00+05:00")))

    assert answer.status_code == 200, answer.text
    [message] = hook.store.messages
    assert message.template == "alert_resolved" and "Fired from 2026-11-23 09:48 WITA. " in message.body


async def test_a_nul_character_anywhere_is_422_naming_where(hook: Webhook) -> None:
    answer = await hook.post(payload(wire_alert(annotations={"summary": "lag\x00ging"})))

    assert answer.status_code == 422
    assert answer.json()["errors"][0] == {"field": "alerts.0.annotations.summary", "code": "text.nul",
                                          "message": "NUL is not allowed in text; remove it"}  # fmt: skip
    assert hook.store.messages == []


async def test_a_body_over_a_megabyte_is_413_and_one_over_the_platform_limit_never_reaches_the_route(hook: Webhook) -> None:
    many = payload(*[wire_alert(fingerprint=f"{i:016x}") for i in range(5000)])  # ~2 MB
    answer = await hook.post(many)
    assert answer.status_code == 413 and answer.json()["code"] == "body_too_large"
    assert "1,048,576 bytes" in answer.json()["detail"]

    hundred_thousand = b'{"version":"4","alerts":[' + b",".join([json.dumps(wire_alert()).encode()] * 100_000) + b"]}"
    assert (await hook.post(hundred_thousand)).status_code == 413
    assert hook.store.messages == []


async def test_a_wrong_token_is_refused_before_the_body_is_looked_at(hook: Webhook) -> None:
    answer = await hook.post(payload(*[wire_alert()] * 2000), token="wrong-token-wrong-token")  # 0.9 MB
    assert answer.status_code == 403
    # Over the webhooks' limit, refused before the token is asked for: the body is not even read whole.
    answer = await hook.post(payload(*[wire_alert()] * 5000), token="wrong-token-wrong-token")  # 2.2 MB
    assert answer.status_code == 413


async def test_a_database_outage_answers_503_with_retry_after_so_alertmanager_retries() -> None:
    store = FakeNotifierStore()
    app, _ = webhook_app(store, TOKEN, down=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier.test") as http:
        answer = await http.post("/webhooks/alertmanager", json=payload(wire_alert()),
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip

    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["code"] == "database_unavailable" and store.messages == []


async def test_the_webhook_documents_its_body_and_every_answer() -> None:
    app, _ = webhook_app(FakeNotifierStore(), TOKEN)
    operation = app.openapi()["paths"]["/webhooks/alertmanager"]["post"]

    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["version"]["const"] == "4" and schema["properties"]["alerts"]["maxItems"] == 1000
    assert "startsAt" in schema["properties"]["alerts"]["items"]["properties"]
    assert {"200", "401", "403", "413", "422", "503"} <= set(operation["responses"])

"""Composition root of the notifier: what it consumes, its routes, and what it builds from the running infrastructure
(units of work, consumers, the gateways its settings configure, the delivery worker, the sweeps that let time pass,
figures)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from services.notifier import subscribers, sweeps, webhooks
from services.notifier.channels import Gateway
from services.notifier.channels.email import Smtp
from services.notifier.channels.local import LocalOutboxFiles
from services.notifier.channels.sms import SmsGateway, Zenziva
from services.notifier.channels.whatsapp import WhatsAppCloud
from services.notifier.delivery import DeliveryWorker, WorkerSettings, holder_name
from services.notifier.domain.alerts import CONTACT_SETTINGS
from services.notifier.domain.channels import AT_LEAST_ONCE, EMAIL, LOCAL, SMS, WHATSAPP, Available
from services.notifier.domain.delivery import RetryPolicy
from services.notifier.domain.messages import OFFICERS, OPERATORS
from services.notifier.domain.planning import DeliveryRules
from services.notifier.domain.ratelimit import RateLimit
from services.notifier.domain.schedule import QuietHours
from services.notifier.figures import NotifierFigures
from services.notifier.queries import MessageQueries
from services.notifier.recording import Deps
from services.notifier.routes import ChannelInfo, NotifierContext, router
from services.notifier.settings import NotifierSettings
from services.notifier.store_pg import PgNotifierUnitOfWork
from shared.messaging.consumer import BatchTransaction
from shared.service import Parts, Runtime, ServiceDefinition, asyncapi_app, create_service_app, periodic
from shared.unit_of_work import Cause

log = logging.getLogger(__name__)


def _rate(per_second: float) -> RateLimit:
    return RateLimit(rate=per_second, burst=max(1.0, per_second))


def build_whatsapp(settings: NotifierSettings) -> WhatsAppCloud | None:
    if not settings.whatsapp_on:
        return None
    assert settings.whatsapp_token is not None and settings.whatsapp_phone_number_id is not None
    return WhatsAppCloud(token=settings.whatsapp_token, phone_number_id=settings.whatsapp_phone_number_id,
                         base_url=settings.whatsapp_base_url, api_version=settings.whatsapp_api_version,
                         template=settings.whatsapp_template, language=settings.whatsapp_template_language,
                         timeout=settings.gateway_timeout_seconds, guarantee=settings.whatsapp_guarantee,
                         rate=_rate(settings.whatsapp_rate_per_second))  # fmt: skip


def build_sms_gateway(settings: NotifierSettings) -> SmsGateway | None:
    """Zenziva; a second gateway would be chosen here by a setting (NOTIFIER_SMS_GATEWAY) and built the same way."""
    if not settings.sms_on:
        return None
    assert settings.sms_userkey is not None and settings.sms_passkey is not None
    return Zenziva(userkey=settings.sms_userkey, passkey=settings.sms_passkey, base_url=settings.sms_base_url,
                   timeout=settings.gateway_timeout_seconds, guarantee=settings.sms_guarantee,
                   rate=_rate(settings.sms_rate_per_second))  # fmt: skip


def build_email(settings: NotifierSettings) -> Smtp | None:
    if not settings.email_on:
        return None
    assert settings.smtp_host is not None and settings.email_from is not None
    return Smtp(host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
                password=settings.smtp_password, security=settings.smtp_security, sender=settings.email_from,
                domain=settings.email_domain, timeout=settings.gateway_timeout_seconds,
                guarantee=settings.email_guarantee, rate=_rate(settings.email_rate_per_second),
                validate_certs=settings.smtp_validate_certs)  # fmt: skip


def gateways_of(settings: NotifierSettings) -> dict[str, Gateway]:
    built = {WHATSAPP: build_whatsapp(settings), SMS: build_sms_gateway(settings), EMAIL: build_email(settings)}
    return {channel: gateway for channel, gateway in built.items() if gateway is not None}


def rules_of(settings: NotifierSettings, gateways: dict[str, Gateway]) -> DeliveryRules:
    return DeliveryRules(
        available=Available(whatsapp=WHATSAPP in gateways, sms=SMS in gateways, email=EMAIL in gateways),
        quiet=QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
        min_lead=timedelta(hours=settings.offer_min_lead_hours),
        no_whatsapp_recheck=timedelta(days=settings.no_whatsapp_recheck_days),
        reminder_lead=timedelta(hours=settings.offer_reminder_hours),
    )


def channel_infos(gateways: dict[str, Gateway], files: LocalOutboxFiles) -> list[ChannelInfo]:
    infos = []
    for channel in (WHATSAPP, SMS, EMAIL):
        gateway = gateways.get(channel)
        if gateway is None:
            infos.append(ChannelInfo(channel, False, "not configured: its messages go to the local outbox", "-", "-", None))
        else:
            infos.append(ChannelInfo(channel, True, gateway.describe(), gateway.guarantee, gateway.idempotency,
                                     gateway.rate.rate))  # fmt: skip
    infos.append(ChannelInfo(LOCAL, True, files.describe(), "exactly_once (written in the worker's transaction)",
                             "the delivery id is the outbox row's key", None))  # fmt: skip
    return infos


def build(runtime: Runtime) -> Parts:
    settings: NotifierSettings = runtime.settings  # type: ignore[assignment]
    # httpx logs every request line at INFO: a gateway call per message would drown the log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    gateways = gateways_of(settings)
    files = LocalOutboxFiles(Path(settings.local_outbox_dir) if settings.local_outbox_dir else None)
    figures = NotifierFigures(runtime.registry, runtime.db)
    publisher = runtime.publisher(lambda _: [])  # the notifier publishes nothing
    queries = MessageQueries(runtime.db)

    def unit_of_work(cause: Cause) -> PgNotifierUnitOfWork:
        return PgNotifierUnitOfWork(runtime.db, publisher, cause)

    def joined(tx: BatchTransaction, cause: Cause) -> PgNotifierUnitOfWork:
        return PgNotifierUnitOfWork(tx, publisher, cause)

    def by_time() -> PgNotifierUnitOfWork:
        return unit_of_work(Cause.timer("notifier"))

    holder = holder_name()
    worker_settings = WorkerSettings(
        holder=holder, batch=settings.delivery_batch, concurrency=settings.delivery_concurrency,
        lease=timedelta(seconds=max(settings.lease_seconds, 2 * settings.gateway_timeout_seconds)),
        poll_seconds=settings.delivery_poll_seconds,
        retry=RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds, settings.retry_max_attempts),
    )  # fmt: skip
    wake: list[DeliveryWorker] = []
    deps = Deps(clock=lambda: datetime.now(UTC), rules=rules_of(settings, gateways), wake=lambda: wake[0].wake(),
                digest_weekday=settings.digest_weekday, digest_hour=settings.digest_hour)  # fmt: skip
    worker = DeliveryWorker(by_time, gateways, files, deps, worker_settings, figures)
    wake.append(worker)

    async def sweep() -> None:
        await sweeps.remind_offers(by_time, deps)
        await sweeps.send_digests(by_time, deps)
        await queries.prune_status_reports(settings.status_report_retention_days)

    async def deliver(stop) -> None:  # noqa: ANN001 - the stop event
        try:
            await worker.run(stop)
        finally:
            for gateway in gateways.values():
                await gateway.close()

    _announce(settings, gateways, files, deps.rules, holder)
    context = NotifierContext(
        queries=queries, deps=deps, unit_of_work=unit_of_work, figures=figures, channels=channel_infos(gateways, files),
        whatsapp_app_secret=settings.whatsapp_app_secret.get_secret_value().encode() if settings.whatsapp_app_secret else None,
        whatsapp_phone_number_id=settings.whatsapp_phone_number_id,
        whatsapp_verify_token=settings.whatsapp_verify_token.get_secret_value() if settings.whatsapp_verify_token else None,
        sms_inbound_token=settings.sms_inbound_token.get_secret_value() if settings.sms_inbound_token else None,
        alertmanager_token=settings.alertmanager_token.get_secret_value() if settings.alertmanager_token else None,
        alert_recipients=settings.alert_recipients,
    )  # fmt: skip
    return Parts(
        context=context,
        consumers=subscribers.consumers(joined, deps),
        jobs=[deliver, periodic("notifier sweeper", settings.sweep_interval_seconds, sweep)],
        scrape_hooks=[figures.refresh],
    )


def _announce(settings: NotifierSettings, gateways: dict[str, Gateway], files: LocalOutboxFiles, rules: DeliveryRules,
              holder: str) -> None:  # fmt: skip
    """Say at start what will happen to messages: which gateways, or that everything goes to the local outbox."""
    if not gateways:
        log.info("no gateway is configured (NOTIFIER_WHATSAPP_*, NOTIFIER_SMS_*, NOTIFIER_SMTP_*): every message is "
                 "delivered to the %s", files.describe())  # fmt: skip
    for gateway in gateways.values():
        log.info("%s: %s, %s; %s", gateway.channel, gateway.describe(), gateway.guarantee.replace("_", "-"),
                 "a send whose answer is lost is sent again" if gateway.guarantee == AT_LEAST_ONCE
                 else "a send whose answer is lost is marked unknown for an operator")  # fmt: skip
    missing = [c for c in (WHATSAPP, SMS, EMAIL) if c not in gateways]
    if gateways and missing:
        log.info("not configured: %s; their messages go to the %s", ", ".join(missing), files.describe())
    quiet = "none" if rules.quiet.disabled else f"{rules.quiet.start:%H.%M} to {rules.quiet.end:%H.%M} WITA"
    log.info("quiet hours: %s; delivery worker %s", quiet, holder)
    _announce_alerts(settings)


def _announce_alerts(settings: NotifierSettings) -> None:
    """Say at start whether Alertmanager's webhook takes alerts, and who hears of them."""
    if settings.alertmanager_token is None:
        log.warning("NOTIFIER_ALERTMANAGER_TOKEN is not set: POST /webhooks/alertmanager answers 503 (Alertmanager "
                    "keeps retrying) until it is")  # fmt: skip
    recipients = settings.alert_recipients
    for audience, contacts in ((OPERATORS, recipients.operators), (OFFICERS, recipients.officers)):
        if contacts:
            emails = sum(1 for c in contacts if "@" in c)
            log.info("alerts for %s go to %d email address(es) and %d phone(s)", audience, emails, len(contacts) - emails)
        else:
            log.warning("no %s: alerts for %s are kept in the local outbox (addressed alerts:%s)",
                        CONTACT_SETTINGS[audience], audience, audience)  # fmt: skip


SERVICE = ServiceDefinition(
    name="notifier",
    title="Berdaya notifier",
    description="Tells owners (WhatsApp, SMS), officers and sponsors (email) what they should hear of, in Bahasa "
    "Indonesia with times in WITA: one message per event, one delivery per recipient and channel, with its status "
    "from the gateways; owners' consent and quiet hours respected. Alertmanager's alerts reach the operators and the "
    "programme office the same way (POST /webhooks/alertmanager). Without gateway credentials, every message goes to "
    "a local outbox.",
    package="services.notifier",
    produces=(),
    subscriptions=subscribers.SUBSCRIPTIONS,
    routers=(router, webhooks.router),
    build=build,
)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or NotifierSettings())  # type: ignore[call-arg]


# For `faststream docs gen services.notifier.bootstrap:asyncapi`.
asyncapi = asyncapi_app(SERVICE)

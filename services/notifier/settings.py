"""The notifier's settings: NOTIFIER_* variables plus the platform's shared ones.

A channel is on when its credentials are set (all of them: a half-configured channel stops the service at start with
the missing names); with none set, every message goes to the local outbox and the service says so at start and at
`GET /channels`. Secrets are SecretStr: never logged, never shown.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.notifier.channels.email import Security
from services.notifier.domain.alerts import AlertRecipients, parse_contacts
from services.notifier.domain.channels import AT_LEAST_ONCE, AT_MOST_ONCE, Guarantee
from shared.settings import PlatformSettings


class NotifierSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", populate_by_name=True)

    http_port: int = 8004
    database_url: str = "postgresql://127.0.0.1:5432/berdaya_notifier"

    # --- WhatsApp Business Cloud API ------------------------------------------------------------------------
    whatsapp_token: SecretStr | None = Field(None, description="A system user's access token for the Cloud API")
    whatsapp_phone_number_id: str | None = Field(None, max_length=64, description="The business phone number's id")
    whatsapp_app_secret: SecretStr | None = Field(None, description="The Meta app's secret: signs the webhooks")
    whatsapp_verify_token: SecretStr | None = Field(None, description="Echoed in the webhook verification handshake")
    whatsapp_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$")
    whatsapp_template: str = Field("berdaya_pesan", description="An approved template whose body is one parameter {{1}}")
    whatsapp_template_language: str = "id"
    whatsapp_rate_per_second: float = Field(20.0, gt=0, description="Cloud API throughput is 80/s per number by default")
    whatsapp_guarantee: Guarantee = AT_MOST_ONCE

    # --- SMS: Zenziva ---------------------------------------------------------------------------------------
    sms_userkey: SecretStr | None = None
    sms_passkey: SecretStr | None = None
    sms_base_url: str = "https://console.zenziva.net"
    sms_inbound_token: SecretStr | None = Field(None, description="The token in the gateway's inbound callback URL, "
                                                "at least 16 characters; unset: the callback is refused")  # fmt: skip
    sms_rate_per_second: float = Field(5.0, gt=0)
    sms_guarantee: Guarantee = AT_MOST_ONCE

    # --- Email: SMTP ----------------------------------------------------------------------------------------
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Security = "starttls"
    smtp_validate_certs: bool = True
    email_from: str | None = Field(None, description="e.g. Berdaya Kota Kupang <berdaya@kupangkota.go.id>")
    email_domain: str = Field("notifier.berdaya", description="The right-hand side of each Message-ID")
    email_rate_per_second: float = Field(5.0, gt=0)
    email_guarantee: Guarantee = AT_LEAST_ONCE

    # --- The local outbox -----------------------------------------------------------------------------------
    local_outbox_dir: Path | None = Field(None, description="Also write each local delivery as a text file here")

    # --- Delivery -------------------------------------------------------------------------------------------
    gateway_timeout_seconds: float = Field(10.0, gt=0, le=120)
    delivery_poll_seconds: float = Field(1.0, gt=0)
    delivery_batch: int = Field(50, ge=1, le=1000)
    delivery_concurrency: int = Field(8, ge=1, le=64, description="Sends in flight per channel (and per pass)")
    lease_seconds: float = Field(60.0, ge=5, description="A 'sending' row older than this was left by a stopped process")
    retry_base_seconds: float = Field(15.0, ge=0)
    retry_cap_seconds: float = Field(3600.0, gt=0)
    retry_max_attempts: int = Field(10, ge=1)

    # --- When and what ---------------------------------------------------------------------------------------
    quiet_hours_start: time = Field(time(21, 0), description="WITA; equal to the end: no quiet hours")
    quiet_hours_end: time = Field(time(7, 0), description="WITA")
    offer_min_lead_hours: float = Field(24.0, ge=0, description="An offer must reach its owner with this long left")
    offer_reminder_hours: float = Field(48.0, gt=0, description="Remind an owner this long before an offer expires")
    no_whatsapp_recheck_days: float = Field(30.0, gt=0, description="How long a number without WhatsApp gets SMS")
    digest_weekday: int = Field(0, ge=0, le=6, description="0 = Monday: when sponsors' weekly digests go")
    digest_hour: int = Field(8, ge=0, le=23, description="WITA")
    sweep_interval_seconds: float = Field(60.0, gt=0, description="How often reminders and digests are looked for")
    status_report_retention_days: float = Field(30.0, gt=0)

    # --- Alertmanager's webhook (POST /webhooks/alertmanager) ------------------------------------------------
    alertmanager_token: SecretStr | None = Field(
        None, description="The bearer token Alertmanager sends (its credentials_file), at least 16 characters; "
        "unset: the webhook answers 503 and accepts nothing")
    operator_contacts: str = Field("", description="Who hears of operators' alerts: email addresses and phone "
                                   "numbers, separated by commas; none: the local outbox, addressed alerts:operators")
    officer_contacts: str = Field("", description="Who hears of the programme office's alerts (audience=officers), "
                                  "the same way; none: the local outbox, addressed alerts:officers")

    @field_validator("alertmanager_token", "sms_inbound_token", mode="before")
    @classmethod
    def _token_or_nothing(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    # Both tokens are all that proves their caller (an SMS gateway signs nothing): a short one can be guessed.
    @field_validator("alertmanager_token", "sms_inbound_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(f"NOTIFIER_{(info.field_name or '').upper()} is shorter than 16 characters: anyone "
                             "could guess it; make one with `python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'`")  # fmt: skip
        return value

    @field_validator("operator_contacts", "officer_contacts")
    @classmethod
    def _contacts(cls, value: str, info: ValidationInfo) -> str:
        return ",".join(parse_contacts(value, f"NOTIFIER_{(info.field_name or '').upper()}"))

    @model_validator(mode="after")
    def _whole_channels(self) -> NotifierSettings:
        groups = {
            "WhatsApp": ("whatsapp_token", "whatsapp_phone_number_id", "whatsapp_app_secret"),
            "SMS": ("sms_userkey", "sms_passkey"),
            "email": ("smtp_host", "email_from"),
        }
        for channel, names in groups.items():
            given = [n for n in names if getattr(self, n)]
            if given and len(given) < len(names):
                missing = ", ".join(f"NOTIFIER_{n.upper()}" for n in names if n not in given)
                raise ValueError(f"{channel} is half configured: set {missing} as well, or unset the others")
        return self

    @property
    def whatsapp_on(self) -> bool:
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id and self.whatsapp_app_secret)

    @property
    def sms_on(self) -> bool:
        return bool(self.sms_userkey and self.sms_passkey)

    @property
    def email_on(self) -> bool:
        return bool(self.smtp_host and self.email_from)

    @property
    def alert_recipients(self) -> AlertRecipients:
        return AlertRecipients(operators=parse_contacts(self.operator_contacts, "NOTIFIER_OPERATOR_CONTACTS"),
                               officers=parse_contacts(self.officer_contacts, "NOTIFIER_OFFICER_CONTACTS"))

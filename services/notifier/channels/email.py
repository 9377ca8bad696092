"""Email over SMTP (aiosmtplib), to officers and sponsors.

Each message carries `Message-ID: <delivery id@NOTIFIER_EMAIL_DOMAIN>`, the same on every attempt: SMTP has no
idempotency, but a mailbox that receives a resend shows it as the same message. A server's 4xx is transient, its 5xx
for a recipient or the message is a rejection; an email stays `sent` once the server took it (SMTP reports no
delivery to the mailbox).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

import aiosmtplib
from pydantic import SecretStr

from services.notifier.channels import Gateway, OutgoingMessage
from services.notifier.domain import phones
from services.notifier.domain.channels import EMAIL, Accepted, Guarantee, Rejected, SendResult, Transient
from services.notifier.domain.ratelimit import RateLimit

Security = Literal["starttls", "tls", "none"]


class Smtp(Gateway):
    channel = EMAIL
    idempotency = "a stable Message-ID per delivery (SMTP itself has no idempotency)"

    def __init__(self, *, host: str, port: int, username: str | None, password: SecretStr | None, security: Security,
                 sender: str, domain: str, timeout: float, guarantee: Guarantee, rate: RateLimit,
                 validate_certs: bool = True) -> None:  # fmt: skip
        self._host, self._port = host, port
        self._username, self._password = username, password
        self._security = security
        self._sender, self._domain = sender, domain
        self._timeout = timeout
        self._validate_certs = validate_certs
        self.guarantee = guarantee
        self.rate = rate

    def describe(self) -> str:
        return f"SMTP {self._host}:{self._port} ({self._security}) from {self._sender}"

    def message_id(self, message: OutgoingMessage) -> str:
        return f"<{message.delivery_id}@{self._domain}>"

    def compose(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.recipient
        email["Subject"] = message.subject or "Berdaya"
        email["Message-ID"] = self.message_id(message)
        email["Date"] = formatdate(localtime=False)
        email["Content-Language"] = "id"
        email.set_content(message.body)
        return email

    async def send(self, message: OutgoingMessage) -> SendResult:
        try:
            await aiosmtplib.send(
                self.compose(message), hostname=self._host, port=self._port, username=self._username,
                password=self._password.get_secret_value() if self._password else None, timeout=self._timeout,
                use_tls=self._security == "tls", start_tls=self._security == "starttls",
                validate_certs=self._validate_certs,
            )  # fmt: skip
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [r.code for r in refused.recipients]
            reason = phones.redact("; ".join(f"{r.code} {r.message}" for r in refused.recipients))[:500]
            return Transient(f"SMTP: {reason}") if all(400 <= c < 500 for c in codes) else Rejected(f"SMTP: {reason}", str(codes[0]))
        except aiosmtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            reason = f"SMTP {exc.code}: {phones.redact(exc.message)}"[:500]
            return Rejected(reason, str(exc.code)) if 500 <= exc.code < 600 and exc.code not in (530, 535) else Transient(reason)
        except aiosmtplib.SMTPReadTimeoutError as exc:
            return Transient(f"SMTP: no answer in time ({exc})", ambiguous=True)
        except aiosmtplib.SMTPServerDisconnected as exc:
            return Transient(f"SMTP: the server hung up ({exc})", ambiguous=True)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Transient(f"SMTP: {type(exc).__name__}: {exc}"[:500])
        return Accepted(self.message_id(message))

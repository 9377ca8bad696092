"""Run the local gateways standalone, for a demo or a chaos run that wants real gateway traffic without an account:

    .venv/bin/python -m tests.gateways --webhook-url http://127.0.0.1:8004/webhooks/whatsapp

prints the NOTIFIER_* settings that point a notifier at them, then serves until interrupted; every minute (and at
the end) it prints how many messages each gateway took and how many it took more than once (which must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter

from tests.gateways import LocalServer
from tests.gateways.smtp import LocalSmtp
from tests.gateways.whatsapp_cloud import CloudApi
from tests.gateways.zenziva import ZenzivaApi


def _report(cloud: CloudApi, zenziva: ZenzivaApi, smtp: LocalSmtp) -> str:
    twice = sum(1 for n in Counter(m.callback for m in cloud.sent).values() if n > 1)
    mail_twice = sum(1 for n in Counter(r.message["Message-ID"] for r in smtp.sink.received).values() if n > 1)
    return (f"whatsapp: {len(cloud.sent)} taken, {twice} more than once; sms: {len(zenziva.sent)} taken; "
            f"email: {len(smtp.sink.received)} taken, {mail_twice} more than once")  # fmt: skip


async def main(webhook_url: str | None, statuses: list[str]) -> None:
    cloud, zenziva = CloudApi(webhook_url=webhook_url, auto_statuses=statuses), ZenzivaApi()
    with LocalSmtp() as smtp:
        async with LocalServer(cloud.app) as cloud_server, LocalServer(zenziva.app) as zenziva_server:
            print("\n".join([
                f"NOTIFIER_WHATSAPP_BASE_URL={cloud_server.url}", f"NOTIFIER_WHATSAPP_TOKEN={cloud.token}",
                f"NOTIFIER_WHATSAPP_PHONE_NUMBER_ID={cloud.phone_number_id}",
                f"NOTIFIER_WHATSAPP_APP_SECRET={cloud.app_secret}", "NOTIFIER_WHATSAPP_VERIFY_TOKEN=local-verify-token",
                f"NOTIFIER_SMS_BASE_URL={zenziva_server.url}", f"NOTIFIER_SMS_USERKEY={zenziva.userkey}",
                f"NOTIFIER_SMS_PASSKEY={zenziva.passkey}", "NOTIFIER_SMTP_HOST=127.0.0.1",
                f"NOTIFIER_SMTP_PORT={smtp.port}", "NOTIFIER_SMTP_SECURITY=none",
                "NOTIFIER_EMAIL_FROM=Berdaya Kota Kupang <berdaya@localhost>",
            ]), flush=True)  # fmt: skip
            try:
                while True:
                    await asyncio.sleep(60)
                    print(_report(cloud, zenziva, smtp), flush=True)
            finally:
                print(_report(cloud, zenziva, smtp), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhook-url", help="the notifier's /webhooks/whatsapp, for signed status webhooks")
    parser.add_argument("--statuses", default="sent,delivered,read", help="what the Cloud API reports for each message")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.webhook_url, [s for s in args.statuses.split(",") if s]))

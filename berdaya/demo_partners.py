"""The demo's partner part: two partners admitted, one reading its public topic and refused an internal one, and a
consented KUR referral arriving on BRI's own topic."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from confluent_kafka import Consumer, KafkaError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from berdaya import partners
from berdaya.partners import PartnerAccess
from berdaya.stack.local import LocalStack
from shared.auth import TokenService
from shared.contracts.topics import PUBLIC_BUSINESS, REGISTRY_BUSINESS, namespaced, partner_topic
from shared.messaging.kafka import KafkaAccess

PARTNERS = (("bri", "Bank Rakyat Indonesia"), ("bank-ntt", "Bank NTT"))
_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
            KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}  # fmt: skip


def read_as(access: KafkaAccess, topic: str, group: str, want: int = 1, seconds: float = 30) -> list[dict] | str:
    """What a partner's own client sees: up to `want` events of `topic`, or the broker's refusal."""
    errors: list[KafkaError] = []
    consumer = Consumer({**access.confluent(), "group.id": group, "auto.offset.reset": "earliest", "log_level": 0,
                         "enable.auto.commit": False, "error_cb": errors.append})  # fmt: skip
    found: list[dict] = []
    try:
        consumer.subscribe([topic])
        for _ in range(int(seconds * 2)):
            message = consumer.poll(0.5)
            if errors and errors[0].code() in _REFUSED:
                return errors[0].str()
            if message is None:
                if found:
                    break
                continue
            if message.error():
                if message.error().code() in _REFUSED:
                    return message.error().str()
                continue
            found.append(json.loads(message.value()))
            if len(found) >= want:
                break
        return found
    finally:
        consumer.close()


async def run_partners(http: httpx.AsyncClient, urls: dict[str, str], stack: LocalStack, console: Console,
                       tokens: TokenService) -> None:  # fmt: skip
    console.rule("[bold]Partners read Berdaya's topics with their own credentials")
    admin = stack.kafka_admin
    if not admin.authenticated:
        console.print("  The cluster has no authentication (an external one without KAFKA_USERNAME): partners skipped")
        return
    as_admin = {"Authorization": f"Bearer {tokens.mint('demo-admin', ['admin'], ttl=timedelta(hours=1))}"}

    def register(partner_id: str) -> None:
        name = dict(PARTNERS)[partner_id]
        httpx.put(f"{urls['registry']}/partners/{partner_id}", json={"id": partner_id, "name": name},
                  headers=as_admin, timeout=30).raise_for_status()  # fmt: skip

    # Named and made as the services name and make theirs (BERDAYA_TOPIC_NAMESPACE, _PARTITIONS, _REPLICATION_FACTOR).
    deployment = partners.deployment_topics()
    ns = deployment.namespace
    admitted: dict[str, PartnerAccess] = {}
    for partner_id, _ in PARTNERS:
        access = await partners.add(admin, partner_id, namespace=ns, partitions=deployment.partitions,
                                    replication_factor=deployment.replication_factor, register=register)  # fmt: skip
        if access.password is None:  # admitted by an earlier demo run; its password was shown then
            access = partners.rotate(admin, partner_id, namespace=ns)
        admitted[partner_id] = access
        console.print(f"  berdaya partner add {partner_id}: Kafka user [bold]{access.user}[/bold], SCRAM-SHA-512, "
                      f"reads {', '.join(access.reads)}; writes {', '.join(access.writes)}")  # fmt: skip
    ntt = admitted["bank-ntt"]
    ntt_access = admin.as_user(ntt.user, ntt.password or "")
    public, internal = namespaced(PUBLIC_BUSINESS, ns), namespaced(REGISTRY_BUSINESS, ns)
    events = await asyncio.to_thread(read_as, ntt_access, public, f"{ntt.group_prefix}demo", 3)
    if isinstance(events, str):
        console.print(Text(f"  Bank NTT could not read {public}: {events}", style="red"))
    else:
        console.print(f"  Bank NTT's client reads {public}; a redacted event, as it sees it:")
        if events:
            payload = events[0].get("payload", events[0])
            console.print("    " + json.dumps(payload, ensure_ascii=False)[:400], markup=False)
    refused = await asyncio.to_thread(read_as, ntt_access, internal, f"{ntt.group_prefix}demo", 1, 15)
    console.print(Text.assemble(f"  Bank NTT asks for the internal {internal}: ",
                                ("refused: " + refused, "") if isinstance(refused, str) else ("NOT refused", "red")))
    await _consented_referral(http, urls, admin, admitted["bri"], ntt_access, f"{ntt.group_prefix}demo", ns, console)


async def _consented_referral(http: httpx.AsyncClient, urls: dict[str, str], admin: KafkaAccess, bri: PartnerAccess,
                              other: KafkaAccess, other_group: str, ns: str, console: Console) -> None:  # fmt: skip
    """A business offered BRI's KUR referral accepts and consents; BRI's topic carries exactly what BRI needs."""
    pledges = (await http.get(f"{urls['funding']}/pledges")).json()
    kur = next((p for p in pledges if p.get("instrument") == "financing_referral"), None)
    offers = (await http.get(f"{urls['funding']}/pledges/{kur['id']}/offers", params={"status": "offered"})).json() if kur else []
    if not offers:
        console.print("  No business was offered BRI's KUR referral in this run, so no referral to show")
        return
    offer = offers[0]
    accepted = await http.post(f"{urls['funding']}/offers/{offer['id']}/accept")
    consent = await http.post(f"{urls['registry']}/businesses/{offer['business_id']}/consents", json={
        "partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI untuk modal kerja", "financing_programme": "KUR Mikro",
        "amount_sought_rupiah": offer["amount_rupiah"], "offer_id": offer["id"]})  # fmt: skip
    if consent.status_code != 201:
        console.print(Text(f"  The consent was not recorded ({consent.status_code}): {consent.text[:200]}", style="red"))
        return
    console.print(f"  The owner accepts BRI's KUR referral ({accepted.status_code}) and consents to share their contact "
                  "with BRI, for that purpose (UU PDP 27/2022)")  # fmt: skip
    bri_access = admin.as_user(bri.user, bri.password or "")
    topic = namespaced(partner_topic("bri", "referral"), ns)
    wanted = consent.json()["id"]
    referrals = await asyncio.to_thread(read_as, bri_access, topic, f"{bri.group_prefix}demo-{wanted[:8]}", 1000, 30)
    mine = [r for r in referrals if isinstance(r, dict) and r.get("payload", {}).get("consent_id") == wanted] \
        if not isinstance(referrals, str) else []  # fmt: skip
    if not mine:
        console.print(Text(f"  BRI's topic {topic} did not show the referral: "
                           f"{referrals if isinstance(referrals, str) else ''}", style="red"))
        return
    table = Table(title=f"What BRI's client reads on {topic}", show_header=False)
    for key, value in mine[0]["payload"].items():
        shown = str(value)
        if key.endswith("phone") and len(shown) > 6:
            shown = shown[:5] + "•" * (len(shown) - 8) + shown[-3:]  # the demo's screen is not BRI's
        table.add_row(key, Text(shown))
    console.print(table)
    refused = await asyncio.to_thread(read_as, other, topic, other_group, 1, 15)
    console.print(Text.assemble(f"  Bank NTT asks for BRI's {topic}: ",
                                ("refused: " + refused, "") if isinstance(refused, str) else ("NOT refused", "red")))

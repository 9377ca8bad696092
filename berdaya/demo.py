"""The demo's second half: officers take businesses through NIB issuance, then we show what every part saw."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from datetime import date, timedelta

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table
from rich.text import Text

from berdaya.demo_partners import run_partners
from berdaya.demo_training import run_training
from berdaya.stack.local import SERVICES, LocalStack
from berdaya.views import print_coverage
from shared.auth import TokenService
from shared.contracts.topics import REGISTRY_BUSINESS, dlq
from shared.messaging.kafka import KafkaAccess


async def topic_size(bootstrap: KafkaAccess | str, topic: str) -> int:
    """Events on a topic: the sum of its partitions' end offsets (the topics are never compacted)."""
    consumer = AIOKafkaConsumer(**KafkaAccess.of(bootstrap).aiokafka(), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - a fresh consumer knows no topics yet
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _wait_for_funding_view(http: httpx.AsyncClient, funding: str, bootstrap: KafkaAccess | str, console: Console) -> None:
    """Funding learns of businesses from registry events; pledging before it has caught up would match fewer."""
    events = await topic_size(bootstrap, REGISTRY_BUSINESS)
    with console.status(f"funding is reading the {events:,} registry events into its view of businesses"):
        for _ in range(600):
            seen = metric_sum((await http.get(f"{funding}/metrics")).text, "berdaya_consumer_records_total",
                              consumer="funding-view")  # fmt: skip
            if seen >= events:
                break
            await asyncio.sleep(1)
    console.print(f"  funding knows the {events:,} registry events")


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(match[1]) if match else 0.0


async def run_demo(stack: LocalStack, console: Console, tokens: TokenService) -> None:
    urls = {s.name: stack.url(s) for s in SERVICES}
    auth = bearer(tokens.mint("demo-officer", ["officer"], ttl=timedelta(hours=1)))
    rng = random.Random()  # new NIBs each run: the demo can be run again on the same stack
    async with httpx.AsyncClient(headers=auth, timeout=60) as http:
        page = (await http.get(f"{urls['registry']}/businesses", params={"nib_status": "none", "page_size": 40})).json()
        issued = rejected = 0
        for n, business in enumerate(page["items"]):
            base = f"{urls['registry']}/businesses/{business['id']}/nib-applications"
            application = (await http.post(base)).json()
            if n % 8 == 7:
                body = {"outcome": "rejected", "reason": "Kode KBLI tidak sesuai dengan kegiatan usaha"}
                rejected += 1
            else:
                body = {"outcome": "issued", "nib": f"91{rng.randrange(10**10, 10**11)}"}
                issued += 1
            response = await http.post(f"{base}/{application['id']}/outcome", json=body)
            response.raise_for_status()
        console.print(f"  {len(page['items'])} NIB applications recorded: {issued} issued, {rejected} rejected")

        sample = page["items"][0] if page["items"] else None
        if sample:
            again = {
                "business_name": sample["business_name"].upper(), "owner_name": sample["owner"]["name"],
                "owner_nik": (await http.get(f"{urls['registry']}/businesses/{sample['id']}/nik")).json()["nik"],
                "owner_gender": sample["owner"]["gender"], "owner_birth_date": sample["owner"]["birth_date"],
                "phone": sample["owner"]["phone"], "kbli_code": sample["kbli_code"], "kbli_version": sample["kbli_version"],
                "kecamatan": sample["kecamatan"]["name"], "kelurahan": sample["kelurahan"]["name"],
                "annual_sales_rupiah": sample["annual_sales_rupiah"] or 100_000_000,
            }  # fmt: skip
            duplicate = await http.post(f"{urls['registry']}/businesses", json=again)
            console.print(f"  Registering {again['business_name']!r} again answers {duplicate.status_code}: "
                          f"{duplicate.json()['detail'][:110]}...", markup=False)  # fmt: skip

        await _wait_for_funding_view(http, urls["funding"], stack.kafka_admin, console)
        pledges = await _funding(http, urls, console, tokens)
        await run_training(http, urls, console, tokens)
        await run_partners(http, urls, stack, console, tokens)

        coverage = (await http.get(f"{urls['registry']}/stats/nib-coverage")).json()
        expected = coverage["registered"]
        console.rule("[bold]6. Waiting for the notifier to catch up")
        for _ in range(600):
            counts = (await http.get(f"{urls['notifier']}/stats/messages")).json()
            offers = sum(p["offers"] for p in pledges)
            if (counts.get("welcome", 0) >= expected and counts.get("nib_issued", 0) >= issued
                    and counts.get("funding_offer", 0) >= offers):  # fmt: skip
                break
            await asyncio.sleep(0.5)
        messages = (await http.get(f"{urls['notifier']}/messages", params={"page_size": 200})).json()
        registry_metrics = (await http.get(f"{urls['registry']}/metrics")).text
        notifier_metrics = (await http.get(f"{urls['notifier']}/metrics")).text

    console.rule("[bold]What happened")
    print_coverage(console, coverage)
    events = await topic_size(stack.kafka_admin, REGISTRY_BUSINESS)
    dead = await topic_size(stack.kafka_admin, dlq(REGISTRY_BUSINESS))
    table = Table(title="Events and messages", show_header=False)
    table.add_row("events on registry.business.v1", f"{events:,}")
    table.add_row("outbox rows waiting to be published", f"{metric(registry_metrics, 'berdaya_outbox_backlog'):,.0f}")
    table.add_row("dead-lettered records (registry.business.v1.dlq)", f"{dead:,}")
    for template, count in sorted(counts.items()):
        table.add_row(f"messages to owners: {template}", f"{count:,}")
    table.add_row("duplicate deliveries absorbed by the notifier's inbox",
                  f"{metric(notifier_metrics, 'berdaya_inbox_duplicates_total'):,.0f}")
    console.print(table)
    for template in ("welcome", "nib_issued", "nib_rejected", "funding_offer", "funds_disbursed"):
        example = next((m for m in messages["items"] if m["template"] == template), None)
        if example:
            console.print(Text.assemble((template, "bold"), f" to {example['recipient_phone']}:\n  ",
                                        (example["body"], "italic")))  # fmt: skip


PLEDGES = (
    ("Bank NTT", "bank", {
        "title": "CSR Bank NTT: modal usaha kuliner muda di Oebobo", "instrument": "grant",
        "total_rupiah": 50_000_000, "amount_mode": "fixed", "amount_per_business_rupiah": 5_000_000,
        "earmarks": {"kecamatan": ["Oebobo"], "kbli": ["10", "11", "56"], "youth_owned_only": True, "nib_required": True}}),
    ("PT Pos Indonesia", "pos_indonesia", {
        "title": "Pos Indonesia: alat tenun untuk penenun perempuan", "instrument": "equipment",
        "total_rupiah": 30_000_000, "amount_mode": "capped", "amount_per_business_rupiah": 3_000_000,
        "earmarks": {"kbli": ["13"], "women_owned_only": True}}),
    ("BRI", "state_owned", {
        "title": "Rujukan KUR Mikro BRI untuk usaha siap tumbuh", "instrument": "financing_referral",
        "financing_programme": "KUR Mikro", "total_rupiah": 2_000_000_000, "amount_mode": "fixed",
        "amount_per_business_rupiah": 50_000_000, "earmarks": {"scales": ["micro"], "nib_required": True, "min_readiness": 45}}),
)  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _funding(http: httpx.AsyncClient, urls: dict[str, str], console: Console, tokens: TokenService) -> list[dict]:
    """Sponsors pledge, funding matches, a business declines and the next in line is offered, one is paid out."""
    console.rule("[bold]5. Sponsors pledge; funding matches eligible businesses")
    funding = urls["funding"]
    today = date.today()
    made = []
    as_sponsor: dict[str, dict[str, str]] = {}
    for sponsor_name, kind, body in PLEDGES:
        # The programme office records the sponsor; the sponsor's officer then acts for it alone.
        sponsor = await http.post(f"{funding}/sponsors", json={"name": sponsor_name, "kind": kind})
        sponsor_id = sponsor.json()["id"] if sponsor.status_code == 201 else sponsor.json()["existing_sponsor_id"]
        as_sponsor[sponsor_id] = bearer(tokens.mint(f"officer@{kind}", ["sponsor"], ttl=timedelta(hours=1),
                                                    sponsor_id=uuid.UUID(sponsor_id)))  # fmt: skip
        pledge = {**body, "sponsor_id": sponsor_id, "valid_from": today.isoformat(),
                  "valid_until": (today + timedelta(days=90)).isoformat()}  # fmt: skip
        if not made:
            simulated = (await http.post(f"{funding}/pledges/simulate", json=pledge, headers=as_sponsor[sponsor_id])).json()
            console.print(f"  {sponsor_name} simulates first: {simulated['businesses_funded']} of "
                          f"{simulated['eligible_businesses']} eligible businesses funded, "
                          f"{rupiah(simulated['remaining_rupiah'])} left")  # fmt: skip
        response = await http.post(f"{funding}/pledges", json=pledge, headers=as_sponsor[sponsor_id])
        response.raise_for_status()
        made.append(response.json())

    async def settled() -> list[dict]:
        # Matching runs as funding consumes the events; it is done when two looks a second apart agree.
        previous = None
        for _ in range(300):
            current = [(await http.get(f"{funding}/pledges/{p['id']}")).json() for p in made]
            key = [p["totals"] for p in current]
            if key == previous:
                return current
            previous = key
            await asyncio.sleep(1)
        return current

    current = await settled()
    first = made[0]["id"]
    offers = (await http.get(f"{funding}/pledges/{first}/offers")).json()
    if offers:
        declined = offers[0]
        await http.post(f"{funding}/offers/{declined['id']}/decline", json={"reason": "Pemilik belum siap menambah usaha"})
        after = (await http.get(f"{funding}/pledges/{first}/offers", params={"status": "offered"})).json()
        newest = max(after, key=lambda o: o["offered_at"]) if after else None
        if newest and newest["business_id"] != declined["business_id"]:
            console.print(f"  A business declines Bank NTT's offer; the next in line (rank {newest['rank']} of those "
                          f"waiting, readiness {newest['readiness']}) is offered {rupiah(newest['amount_rupiah'])}")  # fmt: skip
    tenun = (await http.get(f"{funding}/pledges/{made[1]['id']}/offers")).json()
    if tenun:
        await http.post(f"{funding}/offers/{tenun[0]['id']}/accept")
        await http.post(f"{funding}/offers/{tenun[0]['id']}/disburse", json={"reference": "POS-ALAT-TENUN-0001"},
                        headers=as_sponsor[made[1]["sponsor_id"]])  # fmt: skip
        console.print("  A weaver accepts Pos Indonesia's loom and it is handed over (FundsDisbursed)")
    older = (await http.get(f"{urls['registry']}/businesses", params={
        "kecamatan": "Oebobo", "kbli": "56", "youth_owned": "false", "nib_status": "issued", "page_size": 1})).json()  # fmt: skip
    if older["items"]:
        why = (await http.get(f"{funding}/explain", params={"pledge_id": first, "business_id": older["items"][0]["id"]})).json()
        if "checks" in why:
            failed = [f"{c['earmark']} (needs {c['required']}, is {c['value']})" for c in why["checks"] if not c["passed"]]
            console.print(f"  Why is {older['items'][0]['business_name']!r} not offered Bank NTT's grant? {', '.join(failed)}")

    current = await settled()
    table = Table(title="Pledges (rupiah in juta)")
    for column in ("sponsor", "offers", "pledged", "reserved", "accepted", "paid", "left", "status"):
        table.add_column(column, justify="left" if column in ("sponsor", "status") else "right", no_wrap=True)
    summary = []
    for p in current:
        count = len((await http.get(f"{funding}/pledges/{p['id']}/offers")).json())
        t = p["totals"]
        table.add_row(p["sponsor_name"], str(count), *(f"{t[k] / 1e6:,.0f}".replace(",", ".") for k in (
            "pledged_rupiah", "reserved_rupiah", "accepted_rupiah", "disbursed_rupiah", "remaining_rupiah")), p["status"])  # fmt: skip
        summary.append({"offers": count})
    console.print(table)
    return summary


def rupiah(amount: int) -> str:
    return f"Rp{amount:,}".replace(",", ".")

"""The demo's second half: officers take businesses through NIB issuance, then we show what every part saw."""

from __future__ import annotations

import asyncio
import random
import re

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from berdaya.stack.local import SERVICES, LocalStack
from berdaya.views import print_coverage
from shared.contracts.topics import REGISTRY_BUSINESS, dlq


async def topic_size(bootstrap: str, topic: str) -> int:
    """Events on a topic: the sum of its partitions' end offsets (the topics are never compacted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(match[1]) if match else 0.0


async def run_demo(stack: LocalStack, console: Console, token: str) -> None:
    urls = {s.name: stack.url(s) for s in SERVICES}
    auth = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)
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
                          f"{duplicate.json()['error']['message'][:110]}...")  # fmt: skip

        coverage = (await http.get(f"{urls['registry']}/stats/nib-coverage")).json()
        expected = coverage["registered"]
        console.rule("[bold]5. Waiting for the notifier to catch up")
        for _ in range(600):
            counts = (await http.get(f"{urls['notifier']}/stats/messages")).json()
            if counts.get("welcome", 0) >= expected and counts.get("nib_issued", 0) >= issued:
                break
            await asyncio.sleep(0.5)
        messages = (await http.get(f"{urls['notifier']}/messages", params={"page_size": 200})).json()
        registry_metrics = (await http.get(f"{urls['registry']}/metrics")).text
        notifier_metrics = (await http.get(f"{urls['notifier']}/metrics")).text

    console.rule("[bold]What happened")
    print_coverage(console, coverage)
    events = await topic_size(stack.bootstrap_servers, REGISTRY_BUSINESS)
    dead = await topic_size(stack.bootstrap_servers, dlq(REGISTRY_BUSINESS))
    table = Table(title="Events and messages", show_header=False)
    table.add_row("events on registry.business.v1", f"{events:,}")
    table.add_row("outbox rows waiting to be published", f"{metric(registry_metrics, 'berdaya_outbox_backlog'):,.0f}")
    table.add_row("dead-lettered records (registry.business.v1.dlq)", f"{dead:,}")
    for template, count in sorted(counts.items()):
        table.add_row(f"messages to owners: {template}", f"{count:,}")
    table.add_row("duplicate deliveries absorbed by the notifier's inbox",
                  f"{metric(notifier_metrics, 'berdaya_inbox_duplicates_total'):,.0f}")
    console.print(table)
    for template in ("welcome", "nib_issued", "nib_rejected"):
        example = next((m for m in messages["items"] if m["template"] == template), None)
        if example:
            console.print(f"[bold]{template}[/bold] to {example['recipient_phone']}:\n  [italic]{example['body']}[/italic]")

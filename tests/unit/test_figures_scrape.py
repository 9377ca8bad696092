"""Figures read from the database at each scrape: a read that fails midway leaves the last figures standing, and
scrapes arriving at once share one read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from services.funding.figures import _NEXT_PLEDGE_END, _OFFERS, FundingFigures
from services.notifier.figures import NotifierFigures
from shared.auth import TokenService
from shared.web import Platform

ENDS_AT = datetime(2026, 12, 31, 16, tzinfo=UTC)


class ScriptedDb:
    """Answers each query from `answers` (by a piece of its text); one named in `failing` loses its connection."""

    def __init__(self, answers: dict[str, list[dict]]) -> None:
        self.answers = answers
        self.failing: str | None = None

    async def fetch(self, sql: str, *args: object) -> list[dict]:
        for piece, rows in self.answers.items():
            if piece in sql:
                if piece == self.failing:
                    raise ConnectionResetError("connection lost")
                return rows
        return []


class FundingQueries:
    def __init__(self, db: ScriptedDb) -> None:
        self._db, self._names = db, {"53.71.01": "Alak"}

    async def money_by_sponsor(self) -> list[dict]:
        return []


def platform(registry: CollectorRegistry, hook) -> Platform:  # noqa: ANN001
    p = Platform(tokens=TokenService("x" * 32, "berdaya"), metrics=registry)
    p.scrape_hooks.append(hook)
    return p


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_funding_scrape_whose_last_read_fails_keeps_the_pledge_end_an_alert_is_counting_on():
    db = ScriptedDb({_OFFERS: [], _NEXT_PLEDGE_END: [{"name": "Bank NTT", "ends_at": ENDS_AT,
                                                      "unallocated": 10_000_000}]})  # fmt: skip
    registry = CollectorRegistry()
    scrape = platform(registry, FundingFigures(registry, FundingQueries(db)).refresh)
    await scrape.refresh_figures()

    db.failing = _NEXT_PLEDGE_END
    await scrape.refresh_figures()

    ends = value(registry, "berdaya_funding_pledge_next_end_timestamp_seconds", sponsor="Bank NTT")
    assert ends == ENDS_AT.timestamp()
    assert value(registry, "berdaya_funding_pledge_next_end_unallocated_rupiah", sponsor="Bank NTT") == 10_000_000
    assert value(registry, "berdaya_figures_refreshed", figures="FundingFigures.refresh") == 0


async def test_offers_of_businesses_the_view_has_not_heard_of_count_as_unknown_and_then_zero_again():
    offer = {"kecamatan_code": None, "status": "offered", "n": 3, "next_expiry": ENDS_AT}
    db = ScriptedDb({_OFFERS: [offer], _NEXT_PLEDGE_END: []})
    registry = CollectorRegistry()
    scrape = platform(registry, FundingFigures(registry, FundingQueries(db)).refresh)
    await scrape.refresh_figures()
    waiting = value(registry, "berdaya_funding_offers", kecamatan="unknown", status="offered")

    db.answers[_OFFERS] = [{**offer, "kecamatan_code": "53.71.01"}]  # the view caught up
    await scrape.refresh_figures()

    assert waiting == 3
    assert value(registry, "berdaya_funding_offers", kecamatan="unknown", status="offered") == 0
    assert value(registry, "berdaya_funding_offers", kecamatan="Alak", status="offered") == 3


async def test_a_notifier_scrape_whose_second_read_fails_never_shows_a_queue_of_zero():
    db = ScriptedDb({
        "FROM delivery GROUP": [{"channel": "whatsapp", "status": "queued", "n": 250}],
        "FROM message GROUP": [{"audience": "owner", "status": "queued", "n": 250}],
        "not_before <= now()": [{"channel": "whatsapp", "age": 1800.0}],
    })  # fmt: skip
    registry = CollectorRegistry()
    scrape = platform(registry, NotifierFigures(registry, db).refresh)
    await scrape.refresh_figures()

    db.failing = "FROM message GROUP"
    await scrape.refresh_figures()

    assert value(registry, "berdaya_notifier_deliveries", channel="whatsapp", status="queued") == 250
    assert value(registry, "berdaya_notifier_oldest_due_age_seconds", channel="whatsapp") == 1800
    assert value(registry, "berdaya_figures_refreshed", figures="NotifierFigures.refresh") == 0


async def test_scrapes_arriving_while_the_figures_are_read_share_that_one_reading():
    reads = 0
    release = asyncio.Event()

    async def slow_figures() -> None:
        nonlocal reads
        reads += 1
        await release.wait()

    scrape = platform(CollectorRegistry(), slow_figures)
    waiting = [asyncio.ensure_future(scrape.refresh_figures()) for _ in range(50)]
    await asyncio.sleep(0)
    waiting[0].cancel()  # one scraper gave up: the others' reading goes on
    release.set()
    await asyncio.gather(*waiting[1:])
    await scrape.refresh_figures()

    assert reads == 2  # the fifty, then the one after


async def test_readiness_asked_fifty_times_at_once_checks_kafka_once():
    checks = 0

    async def kafka() -> str | None:
        nonlocal checks
        checks += 1
        await asyncio.sleep(0.01)
        return "no broker"

    p = platform(CollectorRegistry(), slow_none)
    p.readiness["kafka"] = kafka

    answers = await asyncio.gather(*(p.check_readiness() for _ in range(50)))

    assert checks == 1 and answers == [[("kafka", "no broker")]] * 50


async def slow_none() -> None:
    return None

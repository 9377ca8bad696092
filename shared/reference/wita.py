"""Kupang's time zone: stored times are UTC, times shown to people are WITA (UTC+8, no daylight saving)."""

from datetime import date, datetime, timedelta, timezone

WITA = timezone(timedelta(hours=8), "WITA")


def today_in_kupang(now: datetime) -> date:
    return now.astimezone(WITA).date()

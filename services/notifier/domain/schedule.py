"""Quiet hours in Kupang's time (WITA): when a phone may buzz, and what happens to an offer that would run out while
the owner sleeps.

A non-urgent message to an owner's phone recorded in quiet hours (default 21.00 to 07.00 WITA) waits for the start of
the next allowed window. A message with a deadline (an offer and its reminder) that would expire before that window
opens is not sent at all (it could only tell the owner about something gone) and the officers of the kecamatan are
told instead; one that would reach the owner with less than `min_lead` left is sent at the window's start and the
officers are told as well, so someone can call in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from shared.reference.wita import WITA


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time = time(21, 0)
    end: time = time(7, 0)

    @property
    def disabled(self) -> bool:
        return self.start == self.end

    def quiet(self, moment: datetime) -> bool:
        if self.disabled:
            return False
        local = moment.astimezone(WITA).time()
        if self.start < self.end:  # e.g. 13.00 to 15.00
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight, e.g. 21.00 to 07.00

    def next_allowed(self, moment: datetime) -> datetime:
        """`moment` itself when it is not quiet, else the end of the quiet hours it falls in (in UTC)."""
        if not self.quiet(moment):
            return moment
        local = moment.astimezone(WITA)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(moment.tzinfo)


@dataclass(frozen=True, slots=True)
class Timing:
    not_before: datetime
    withhold_reason: str | None = None  # not sent at all
    flag_officers: bool = False  # the kecamatan's officers should hear of it


def timing(now: datetime, quiet: QuietHours, *, urgent: bool, deadline: datetime | None, min_lead: timedelta) -> Timing:
    """When a message to an owner's phone may go."""
    if deadline is not None and deadline <= now:  # an offer re-driven days late, say: it could only mislead
        return Timing(now, "its deadline had passed when it reached the notifier; it could only tell of something gone")
    if urgent or not quiet.quiet(now):
        return Timing(now)
    opens = quiet.next_allowed(now)
    if deadline is not None and deadline <= opens:
        return Timing(opens, "it would expire during quiet hours, before it could be sent; the officers were told",
                      flag_officers=True)  # fmt: skip
    return Timing(opens, flag_officers=deadline is not None and deadline - opens < min_lead)


def next_send_time(moment: datetime, quiet: QuietHours, *, urgent: bool) -> datetime:
    """When a retry to an owner's phone may go: never into quiet hours."""
    return moment if urgent else quiet.next_allowed(moment)

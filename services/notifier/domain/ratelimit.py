"""A token bucket per channel: a gateway's rate limit honoured by every notifier process together (the bucket's
state is a row in the database, taken under lock when deliveries are claimed).

The bucket holds at most `burst` tokens and gains `rate` a second; sending one message spends one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# The bucket fills on the database's clock (`NotifierStore.bucket`), and keeps the latest time it was refilled. A
# time further ahead than this came from a clock that was wrong (the database host's, stepped back by NTP): kept, it
# would stall the channel until the clock caught up with it, a day for a clock that was a day ahead.
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    refilled_at: datetime


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float  # tokens a second
    burst: float  # the most that can be spent at once

    def refill(self, bucket: Bucket | None, now: datetime) -> Bucket:
        if bucket is None:
            return Bucket(self.burst, now)
        if bucket.refilled_at > now + CLOCK_SKEW:
            return Bucket(bucket.tokens, now)  # refilled from now on: the time ahead is neither waited for nor counted
        elapsed = max(0.0, (now - bucket.refilled_at).total_seconds())
        return Bucket(min(self.burst, bucket.tokens + elapsed * self.rate), max(now, bucket.refilled_at))

    def available(self, bucket: Bucket | None, now: datetime) -> int:
        return int(self.refill(bucket, now).tokens)

    def spend(self, bucket: Bucket | None, now: datetime, count: int) -> Bucket:
        """The bucket after spending `count` tokens now (never more than it holds)."""
        full = self.refill(bucket, now)
        if count > int(full.tokens):
            raise ValueError(f"spending {count} tokens from a bucket holding {full.tokens:.2f}")
        return Bucket(full.tokens - count, full.refilled_at)

    def wait_for_one(self, bucket: Bucket | None, now: datetime) -> float:
        """Seconds until one token is there."""
        missing = 1.0 - self.refill(bucket, now).tokens
        return 0.0 if missing <= 0 else missing / self.rate

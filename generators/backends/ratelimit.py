"""Client-side rate limits: token buckets for requests and tokens per minute, plus a shared
pause that follows the server's own signals (Retry-After, x-ratelimit-* headers).

When one request is told to wait, every request waits: hammering a server that just said
429 only buys more 429s. A caller that will not wait that long gets PauseTooLong at once.
"""
from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping


class TokenBucket:
    """`rate_per_min` units per minute, bursting up to one minute's worth."""

    def __init__(self, rate_per_min: float) -> None:
        self.rate = rate_per_min / 60.0
        self.capacity = float(rate_per_min)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float) -> float:
        self._refill()
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|h|m|s))")


def parse_duration(text: str | None) -> float | None:
    """'1s', '6m0s', '20ms', '1h2m', '0.5' -> seconds; None when absent or unreadable."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(value) * scale[unit] for value, unit in parts)


def _http_date_wait(text: str) -> float | None:
    """Seconds until an HTTP date (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`), else None."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def retry_after(headers: Mapping[str, str]) -> tuple[float, str] | None:
    """How long the server says to wait before retrying, and the header that says it:
    retry-after-ms (as the OpenAI SDK reads it) or Retry-After (seconds or an HTTP date)."""
    try:
        millis = float(headers.get("retry-after-ms") or "")
        return max(0.0, millis / 1000.0), "retry-after-ms"
    except ValueError:
        pass
    text = headers.get("retry-after")
    seconds = parse_duration(text)
    if seconds is None and text:
        seconds = _http_date_wait(text)
    return None if seconds is None else (seconds, "Retry-After")


def ratelimit_reset(headers: Mapping[str, str]) -> tuple[float, str] | None:
    """The longest x-ratelimit-reset-* wait among the limits whose x-ratelimit-remaining-* is 0
    (1 s when the reset is missing), and the header that says it."""
    longest: tuple[float, str] | None = None
    for kind in ("requests", "tokens"):
        try:
            left = float(headers.get(f"x-ratelimit-remaining-{kind}") or "")
        except ValueError:
            continue
        if left > 0:
            continue
        name = f"x-ratelimit-reset-{kind}"
        reset = parse_duration(headers.get(name))
        wait = (reset, name) if reset is not None else (1.0, f"x-ratelimit-remaining-{kind}: 0")
        if longest is None or wait[0] > longest[0]:
            longest = wait
    return longest


class PauseTooLong(Exception):
    """The shared pause (what the server asked for) is longer than the caller will wait."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"paused {seconds:.0f} s ({reason})")
        self.seconds, self.reason = seconds, reason


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self.paused_until = 0.0
        self.pause_reason = ""

    async def acquire(self, estimated_tokens: int, max_pause_s: float | None = None) -> None:
        """Wait until a request of about `estimated_tokens` may be sent, then take its share.
        PauseTooLong, at once, while the shared pause has more than `max_pause_s` left."""
        while True:
            delay = self.paused_until - time.monotonic()
            if max_pause_s is not None and delay > max_pause_s:
                raise PauseTooLong(delay, self.pause_reason)
            if self.requests:
                delay = max(delay, self.requests.wait_time(1))
            if self.tokens:
                delay = max(delay, self.tokens.wait_time(estimated_tokens))
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        if self.requests:
            self.requests.take(1)
        if self.tokens:
            self.tokens.take(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens:
            self.tokens.give_back(estimated_tokens - actual_tokens)

    def pause(self, seconds: float, reason: str = "") -> None:
        """Hold every request for `seconds` (or longer, when an earlier pause ends later)."""
        until = time.monotonic() + seconds
        if until > self.paused_until:
            self.paused_until, self.pause_reason = until, reason

    def observe_headers(self, headers: Mapping[str, str]) -> tuple[float, str] | None:
        """Follow x-ratelimit-remaining-*/reset-* headers: at zero remaining, wait for the reset.
        Returns that wait and its header, or None."""
        wait = ratelimit_reset(headers)
        if wait is not None:
            self.pause(*wait)
        return wait

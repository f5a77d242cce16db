"""Client-side rate limits: token buckets for requests and tokens per minute, plus a shared
pause that follows the server's own signals (Retry-After, x-ratelimit-* headers).

When one request is told to wait, every request waits: hammering a server that just said
429 only buys more 429s.
"""
from __future__ import annotations

import asyncio
import re
import time
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


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self.paused_until = 0.0
        self.waited_s = 0.0

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until a request of about `estimated_tokens` may be sent, then take its share."""
        while True:
            delay = self.paused_until - time.monotonic()
            if self.requests:
                delay = max(delay, self.requests.wait_time(1))
            if self.tokens:
                delay = max(delay, self.tokens.wait_time(estimated_tokens))
            if delay <= 0:
                break
            self.waited_s += delay
            await asyncio.sleep(delay)
        if self.requests:
            self.requests.take(1)
        if self.tokens:
            self.tokens.take(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens:
            self.tokens.give_back(estimated_tokens - actual_tokens)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Follow x-ratelimit-remaining-*/reset-* headers: at zero remaining, wait for the reset."""
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is None:
                continue
            try:
                left = float(remaining)
            except ValueError:
                continue
            if left <= 0:
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                self.pause(reset if reset is not None else 1.0)

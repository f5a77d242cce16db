"""Adaptive concurrency (`--concurrency auto`): how many requests may be in flight, learnt from
the server's own answers.

A server's rate limit is rarely known and often changes; a fixed concurrency is either too
timid (idle capacity) or too bold (a storm of 429s, each one a shared pause). So the level
follows AIMD, the rule TCP uses for the same problem: a 429 or a 503 cuts it by a quarter,
and a run of successes adds one. Until the first cut the run is one success (slow start: the
level doubles every round trip, so reaching a capacity of hundreds takes a few round trips,
not hundreds); after it, the run is as long as the level (one more request per round trip).

Two guards keep the level honest:
- one cut per congestion event: a 429 on a request sent before the latest cut says nothing
  new (the cut already answered it), so it does not cut again;
- no growth without use: successes while fewer requests want to go than the level allows say
  nothing about a higher level, so they do not raise it.

`Aimd` is the arithmetic (no asyncio, testable alone), `Gate` the asyncio semaphore whose
limit is the level, `History` the level over time for the manifest.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable

START_LEVEL = 16  # the default fixed --concurrency: safe on any server worth using
HISTORY_POINTS = 300  # the manifest's history: a few hundred points whatever the run's length


class History:
    """(seconds since start, level) at every change; thinned as it grows, so a day-long run
    keeps a bounded list that still shows every peak and trough."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keep: int = 4096) -> None:
        self.clock = clock
        self.started = clock()
        self.keep = keep
        self.points: list[tuple[float, int]] = []

    def add(self, level: int) -> None:
        self.points.append((self.clock() - self.started, level))
        if len(self.points) > self.keep:
            self.points = thin(self.points, self.keep // 2)

    def report(self, limit: int = HISTORY_POINTS) -> list[list[float]]:
        return [[round(t, 3), level] for t, level in thin(self.points, limit)]


def thin(points: list[tuple[float, int]], limit: int) -> list[tuple[float, int]]:
    """At most `limit` points: time is cut into equal buckets and each keeps its lowest and
    highest level (in time order), so the sawtooth's extremes survive; the last point stays."""
    if len(points) <= limit:
        return list(points)
    buckets = max(1, (limit - 1) // 2)
    start, end = points[0][0], points[-1][0]
    width = (end - start) / buckets or 1.0
    chosen: dict[int, list[int]] = {}
    for index, (t, level) in enumerate(points[:-1]):
        bucket = min(buckets - 1, int((t - start) / width))
        low_high = chosen.setdefault(bucket, [index, index])
        if level < points[low_high[0]][1]:
            low_high[0] = index
        if level > points[low_high[1]][1]:
            low_high[1] = index
    keep = sorted({i for pair in chosen.values() for i in pair})
    return [points[i] for i in keep] + [points[-1]]


class Aimd:
    """The level of requests in flight, between `minimum` and `maximum`."""

    def __init__(self, maximum: int, *, start: int = START_LEVEL, minimum: int = 1, cut: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.cut = cut
        self.level = self._bounded(start)
        self.peak = self.level
        self.epoch = 0  # cuts so far; a request remembers the epoch it was sent in
        self.cuts = 0
        self.slow_start = True
        self._run = 0
        self.history = History(clock)
        self.history.add(self.level)

    def _bounded(self, level: int) -> int:
        return max(self.minimum, min(self.maximum, level))

    def _set(self, level: int) -> None:
        level = self._bounded(level)
        if level != self.level:
            self.level = level
            self.peak = max(self.peak, level)
            self.history.add(level)

    def succeeded(self, *, in_use: bool = True) -> None:
        """One request answered. `in_use`: the level was the limit (requests were waiting for
        it, or all of it was in flight); otherwise the success says nothing about a higher one."""
        if not in_use:
            return
        self._run += 1
        if self._run >= (1 if self.slow_start else self.level):
            self._run = 0
            self._set(self.level + 1)

    def congested(self, epoch: int, in_flight: int | None = None) -> bool:
        """A 429 or 503 on a request sent in `epoch`: cut by a quarter, once per event.
        The quarter is taken off what was really in flight when that is below the level (slow
        start can raise the level faster than requests go out), so one cut lands under the
        server's limit instead of two. Returns whether it cut."""
        if epoch < self.epoch:
            return False
        self.slow_start = False
        self.epoch += 1
        self.cuts += 1
        self._run = 0
        used = self.level if in_flight is None else max(1, min(self.level, in_flight))
        self._set(int(used * (1.0 - self.cut)))
        return True

    def report(self) -> dict[str, Any]:
        return {"final": self.level, "max": self.maximum, "peak": self.peak, "cuts": self.cuts,
                "history": self.history.report()}


class Gate:
    """An asyncio semaphore whose limit is `aimd.level`, read whenever a slot frees or the
    level moves. Slots are handed to waiters in arrival order (no barging)."""

    def __init__(self, aimd: Aimd) -> None:
        self.aimd = aimd
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch to pass to `congested`."""
        if self.in_flight < self.aimd.level and not self._waiters:
            self.in_flight += 1
            return self.aimd.epoch
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # a slot was handed over: give it back
                self.release()
            else:
                self._waiters.remove(future)
            raise
        return self.aimd.epoch

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def succeeded(self) -> None:
        """Call before `release`: the request still counts as in flight."""
        self.aimd.succeeded(in_use=self.in_flight + len(self._waiters) >= self.aimd.level)
        self._wake()

    def congested(self, epoch: int) -> None:
        """Call before `release`: the refused request still counts as in flight."""
        self.aimd.congested(epoch, in_flight=self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.aimd.level:
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

"""The AIMD controller and its gate (generators/backends/adaptive.py): arithmetic, bounds, the
once-per-event cut, the history kept for the manifest, and the gate's slots."""
from __future__ import annotations

import asyncio

import pytest

from generators.backends.adaptive import Aimd, Gate, History, thin


class Clock:
    """A hand-moved clock, so history times are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def after_first_cut(level: int, maximum: int = 256) -> Aimd:
    """A controller in congestion avoidance (past slow start) at `level`."""
    aimd = Aimd(maximum, start=level * 2)
    aimd.congested(aimd.epoch)
    aimd.level = level
    return aimd


def test_a_429_cuts_the_level_by_a_quarter():
    aimd = Aimd(256, start=40)
    assert aimd.congested(aimd.epoch) is True
    assert aimd.level == 30 and aimd.cuts == 1
    aimd.congested(aimd.epoch)
    assert aimd.level == 22  # 30 * 0.75 = 22.5, rounded down so every cut lowers the level


def test_one_cut_per_congestion_event():
    aimd = Aimd(256, start=64)
    sent_before = aimd.epoch  # a whole burst went out at 64
    assert aimd.congested(sent_before) is True
    for _ in range(20):  # the rest of the burst's 429s arrive later: already answered
        assert aimd.congested(sent_before) is False
    assert aimd.level == 48 and aimd.cuts == 1
    assert aimd.congested(aimd.epoch) is True  # a request sent after the cut counts again
    assert aimd.level == 36


def test_slow_start_adds_one_per_success_until_the_first_cut():
    aimd = Aimd(256, start=16)
    for _ in range(10):
        aimd.succeeded()
    assert aimd.level == 26 and aimd.slow_start


def test_after_a_cut_one_is_added_after_a_run_as_long_as_the_level():
    aimd = after_first_cut(20)
    for _ in range(19):
        aimd.succeeded()
    assert aimd.level == 20
    aimd.succeeded()
    assert aimd.level == 21
    for _ in range(20):  # the next run is one longer
        aimd.succeeded()
    assert aimd.level == 21
    aimd.succeeded()
    assert aimd.level == 22


def test_a_cut_restarts_the_run():
    aimd = after_first_cut(10)
    for _ in range(9):
        aimd.succeeded()
    aimd.congested(aimd.epoch)
    assert aimd.level == 7
    for _ in range(6):
        aimd.succeeded()
    assert aimd.level == 7  # the nine before the cut do not count
    aimd.succeeded()
    assert aimd.level == 8


def test_successes_below_the_level_do_not_raise_it():
    aimd = Aimd(256, start=16)
    for _ in range(100):
        aimd.succeeded(in_use=False)
    assert aimd.level == 16


@pytest.mark.parametrize("start,expected", [(500, 64), (0, 1), (-3, 1), (10, 10)])
def test_the_start_is_bounded(start, expected):
    assert Aimd(64, start=start).level == expected


def test_the_level_stays_between_one_and_the_maximum():
    aimd = Aimd(20, start=16)
    for _ in range(100):
        aimd.succeeded()
    assert aimd.level == 20 and aimd.peak == 20
    for _ in range(30):
        aimd.congested(aimd.epoch)
    assert aimd.level == 1
    aimd.congested(aimd.epoch)
    assert aimd.level == 1 and aimd.minimum == 1


def test_report_has_final_max_peak_cuts_and_a_timed_history():
    clock = Clock()
    aimd = Aimd(64, start=16, clock=clock)
    clock.now += 1.5
    aimd.succeeded()
    clock.now += 1.0
    aimd.congested(aimd.epoch)
    report = aimd.report()
    assert report == {"final": 12, "max": 64, "peak": 17, "cuts": 1,
                      "history": [[0.0, 16], [1.5, 17], [2.5, 12]]}


def test_history_is_thinned_to_a_few_hundred_points_keeping_extremes():
    clock = Clock()
    history = History(clock, keep=1000)
    for step in range(10_000):  # a sawtooth: 40..60, one point per tick
        clock.now += 0.01
        history.add(40 + step % 21)
    assert len(history.points) <= 1000
    points = history.report(limit=300)
    assert 100 <= len(points) <= 300
    levels = [level for _, level in points]
    assert min(levels) == 40 and max(levels) == 60
    times = [t for t, _ in points]
    assert times == sorted(times) and points[-1][1] == 40 + 9_999 % 21


def test_thin_leaves_short_lists_alone():
    points = [(0.0, 1), (1.0, 2)]
    assert thin(points, 300) == points


def run(coro):
    return asyncio.run(coro)


def test_the_gate_holds_requests_above_the_level():
    async def go():
        gate = Gate(Aimd(64, start=2))
        await gate.acquire()
        await gate.acquire()
        third = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        assert not third.done() and gate.waiting == 1 and gate.in_flight == 2
        gate.release()
        await asyncio.sleep(0)
        assert third.done() and gate.in_flight == 2 and gate.waiting == 0
    run(go())


def test_a_success_with_waiters_raises_the_level_and_lets_one_more_in():
    async def go():
        gate = Gate(Aimd(64, start=1))
        await gate.acquire()
        waiting = [asyncio.ensure_future(gate.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        gate.succeeded()  # slow start: +1, and the freed headroom goes to a waiter at once
        await asyncio.sleep(0)
        assert gate.aimd.level == 2 and gate.in_flight == 2 and sum(w.done() for w in waiting) == 1
        gate.release()
        await asyncio.sleep(0)
        assert gate.in_flight == 2 and sum(w.done() for w in waiting) == 2
        for w in waiting:
            w.cancel()
    run(go())


def test_a_cut_lets_no_one_in_until_the_level_is_below_it():
    async def go():
        gate = Gate(Aimd(64, start=4))
        epochs = [await gate.acquire() for _ in range(4)]
        waiter = asyncio.ensure_future(gate.acquire())
        gate.congested(epochs[0])  # 4 -> 3
        gate.release()  # 3 in flight, level 3: still full
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.release()
        await asyncio.sleep(0)
        assert waiter.done() and waiter.result() == 1  # sent in the epoch after the cut
    run(go())


def test_a_cancelled_waiter_gives_its_place_back():
    async def go():
        gate = Gate(Aimd(64, start=1))
        await gate.acquire()
        waiter = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        assert gate.waiting == 0
        gate.release()
        assert gate.in_flight == 0
        await gate.acquire()
        assert gate.in_flight == 1
    run(go())


def test_the_cut_is_taken_off_what_was_really_in_flight():
    aimd = Aimd(256, start=64)
    assert aimd.congested(aimd.epoch, in_flight=40)  # slow start had run ahead of the requests
    assert aimd.level == 30
    aimd.congested(aimd.epoch, in_flight=100)  # more in flight than the level: the level counts
    assert aimd.level == 22

"""Simulated time for the live service: estimated from stamps, or given by a lockstep pacer.

Live, `SimClock` turns the `observedAt` stamps heard into a running estimate of simulated
time. In an evaluation, `Pacer` hands the service each decision instant from the
simulation's thread and blocks that thread until the service has decided, so a twin far
faster than any round trip stays in lockstep with it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tick:
    """One lockstep decision: its simulated time, and the stamps due by then (stamp -> count)."""

    at: float
    readings: dict[float, int] = field(default_factory=dict)
    states: dict[float, int] = field(default_factory=dict)


class Pacer:
    """The lockstep bridge: a simulation thread hands ticks over and waits for the decision."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticks: asyncio.Queue[Tick | None] | None = None
        self._bound = threading.Event()
        self._done = threading.Condition()
        self._answered: tuple[float, int] | None = None

    # the service's side (its event loop)
    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ticks = asyncio.Queue(maxsize=1)
        self._bound.set()

    async def next_tick(self) -> Tick | None:
        assert self._ticks is not None, "bind() first"
        return await self._ticks.get()

    def done(self, at: float, sent: int) -> None:
        with self._done:
            self._answered = (at, sent)
            self._done.notify_all()

    # the simulation's side (another thread)
    def wait_bound(self, timeout: float) -> bool:
        return self._bound.wait(timeout)

    def tick(self, tick: Tick, timeout: float) -> int | None:
        """Hand a tick over; the service's commands sent so far once it decided (None: timeout)."""
        assert self._loop is not None and self._ticks is not None, "the service is not running"
        with self._done:
            self._answered = None
        self._loop.call_soon_threadsafe(self._ticks.put_nowait, tick)
        with self._done:
            self._done.wait_for(lambda: self._answered is not None, timeout)
            answered = self._answered
        return answered[1] if answered is not None and answered[0] == tick.at else None

    def finish(self) -> None:
        if self._loop is not None and self._ticks is not None:
            self._loop.call_soon_threadsafe(self._ticks.put_nowait, None)


class SimClock:
    """Simulated time estimated from the stamps heard (live mode)."""

    def __init__(self, rate: float = 1.0, ahead: float = 60.0) -> None:
        self.rate, self.ahead = rate, ahead
        self.latest: float | None = None
        self.wall = 0.0
        self._anchor: tuple[float, float] | None = None

    def heard(self, stamp: float, wall: float) -> None:
        if self.latest is not None and stamp <= self.latest:
            return
        if self._anchor is not None and wall - self._anchor[1] >= 0.5:
            observed = (stamp - self._anchor[0]) / (wall - self._anchor[1])
            self.rate = min(max(0.7 * self.rate + 0.3 * observed, 0.01), 10_000.0)
            self._anchor = (stamp, wall)
        elif self._anchor is None:
            self._anchor = (stamp, wall)
        self.latest, self.wall = stamp, wall

    def now(self, wall: float) -> float | None:
        if self.latest is None:
            return None
        return self.latest + min((wall - self.wall) * self.rate, self.ahead)

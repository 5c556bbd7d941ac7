"""History retention: raw instances for a while, then hourly aggregates, then nothing.

So a disk never silently fills: raw instances older than `history_days` (by
recording time) are folded into hourly aggregates (count, sum, sum of squares,
min, max per entity, attribute and observation hour) and deleted; aggregates
of hours older than `rollup_days` are deleted. Aggregated temporal queries
with whole-hour periods keep answering from the aggregates.

One process of the hub does this (`try_lead("retention")`), in chunks of
`CHUNK` rows, each its own small write job with a pause between them, so
writers never wait behind it for long. The leader also publishes the history
size in /metrics after each pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from starlette.routing import BaseRoute

from dosi.hub.state import HubState
from dosi.hub.store.base import DEFAULT_TENANT
from dosi.hub.store.temporal import HOUR_MS

log = logging.getLogger("dosi.retention")
DAY_MS = 24 * HOUR_MS
CHUNK = 5_000
PAUSE_S = 0.01  # between chunks: lets queued writes commit in between
FIRST_PASS_S = 5.0


@dataclass(frozen=True)
class RetentionReport:
    rolled_up: int  # raw instances folded into hourly aggregates
    pruned: int  # hourly aggregates deleted


class Retention:
    routes: Sequence[BaseRoute] = ()

    def __init__(self) -> None:
        self._state: HubState | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self, state: HubState) -> None:
        self._state = state
        settings = state.settings
        if settings.history_days <= 0 and settings.rollup_days <= 0:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="dosi-retention")

    async def stop(self) -> None:
        # Never cancel a pass mid-write: ask it to stop and wait for the current chunk.
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        state = self._state
        assert state is not None
        delay = min(FIRST_PASS_S, state.settings.retention_interval_s)
        while not await self._sleep(delay):
            delay = state.settings.retention_interval_s
            if not state.store.try_lead("retention"):
                continue
            try:
                await retain(state, should_stop=self._stop.is_set)
                await self._publish_size()
            except Exception:  # a failed pass is retried at the next interval
                log.exception("history retention pass failed")

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True if asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _publish_size(self) -> None:
        state = self._state
        assert state is not None
        raw = rolled = 0
        for tenant in [DEFAULT_TENANT, *await state.store.tenants()]:
            size = await state.store.temporal.size(tenant)
            raw += size.instances
            rolled += size.rollup_rows
        gauges = state.metrics.gauges
        gauges["dosi_history_instances"] = ("Raw history instances kept (all tenants).", raw)
        gauges["dosi_history_hourly_rows"] = ("Hourly history aggregates kept.", rolled)


async def retain(
    state: HubState, *, now_ms: int | None = None, should_stop: Callable[[], bool] | None = None
) -> RetentionReport:
    """One retention pass over every tenant; `now_ms` lets tests move the clock."""
    settings = state.settings
    stop = should_stop or (lambda: False)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    temporal = state.store.temporal
    rolled = pruned = 0
    for tenant in [DEFAULT_TENANT, *await state.store.tenants()]:
        if settings.history_days > 0:
            cutoff = now - settings.history_days * DAY_MS
            rolled += await _chunks(partial(temporal.roll_up, tenant, cutoff, CHUNK), stop)
        if settings.rollup_days > 0:
            cutoff = now - max(settings.rollup_days, settings.history_days) * DAY_MS
            pruned += await _chunks(partial(temporal.prune_rollup, tenant, cutoff, CHUNK), stop)
    if rolled or pruned:
        log.info("history retention", extra={"rolled_up": rolled, "pruned": pruned})
    return RetentionReport(rolled, pruned)


async def _chunks(step: Callable[[], Awaitable[int]], should_stop: Callable[[], bool]) -> int:
    done = 0
    while True:
        n = await step()
        done += n
        if n == 0 or should_stop():
            return done
        await asyncio.sleep(PAUSE_S)

"""Many small measurements -> few store transactions.

Each measurement is one mutation; applying them one `store.apply` at a time
would cost a job, a thread hop and a commit each. The batcher gathers what
arrives within a couple of milliseconds (or while earlier batches are being
written) into one `store.apply` per tenant, with at most `max_inflight`
batches in the writer's queue. It holds at most `max_pending` mutations:
producers check `full` and wait for `room` (backpressure, no unbounded queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from dosi.hub.metrics import Metrics
from dosi.hub.store.base import Mutation, Outcome, Store
from dosi.ngsi.errors import InternalError, NgsiError

log = logging.getLogger("dosi.ingest")


@dataclass(slots=True)
class _Item:
    entity_id: str
    mutation: Mutation
    waiter: asyncio.Future[Outcome] | None
    measurement: bool


class Batcher:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        max_batch: int = 2000,
        max_pending: int = 20_000,
        max_inflight: int = 2,
        linger_s: float = 0.002,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._max_inflight = max_inflight
        self._linger_s = linger_s
        self._pending: dict[str, list[_Item]] = {}
        self._count = 0
        self._inflight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.room = asyncio.Event()
        self.room.set()
        # Called when room frees up after the batcher was full (the MQTT link resumes).
        self.on_room: Callable[[], None] | None = None

    @property
    def full(self) -> bool:
        return self._count >= self._max_pending

    def add(
        self,
        tenant: str,
        entity_id: str,
        mutation: Mutation,
        *,
        waiter: asyncio.Future[Outcome] | None = None,
        measurement: bool = True,
    ) -> None:
        """Queue one mutation; `waiter` (if any) gets its Outcome once committed."""
        self._pending.setdefault(tenant, []).append(_Item(entity_id, mutation, waiter, measurement))
        self._count += 1
        self._idle.clear()
        if self._count >= self._max_pending:
            self.room.clear()
        if self._count >= self._max_batch:
            self._flush()
        elif self._timer is None and self._inflight < self._max_inflight:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending and self._inflight < self._max_inflight:
            tenant = next(iter(self._pending))
            items = self._pending[tenant]
            if len(items) > self._max_batch:
                batch, self._pending[tenant] = items[: self._max_batch], items[self._max_batch :]
            else:
                batch = self._pending.pop(tenant)
            self._count -= len(batch)
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._apply(tenant, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not self.full and not self.room.is_set():
            self.room.set()
            if self.on_room is not None:
                self.on_room()

    async def _apply(self, tenant: str, batch: list[_Item]) -> None:
        try:
            outcomes = await self._store.apply(tenant, [(i.entity_id, i.mutation) for i in batch])
        except Exception as exc:  # the store failed the whole batch
            error = exc if isinstance(exc, NgsiError) else InternalError(str(exc))
            log.error(
                "measurements not stored",
                extra={"tenant": tenant, "count": len(batch), "error": str(exc)},
            )
            for item in batch:
                if item.measurement:
                    self._metrics.ingest_rejected["store"] += 1
                if item.waiter is not None and not item.waiter.done():
                    item.waiter.set_exception(error)
        else:
            self._settle(tenant, batch, outcomes)
        finally:
            self._inflight -= 1
            if self._pending:
                self._flush()
            elif not self._inflight:
                self._idle.set()

    def _settle(self, tenant: str, batch: list[_Item], outcomes: list[Outcome]) -> None:
        stored = changed = 0
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome.change is not None:
                changed += 1
            if item.measurement:
                if outcome.error is None:
                    stored += 1
                else:
                    self._metrics.ingest_rejected["store"] += 1
                    log.warning(
                        "measurement refused by the store",
                        extra={
                            "tenant": tenant,
                            "entity": item.entity_id,
                            "error": str(outcome.error),
                        },
                    )
            if item.waiter is not None and not item.waiter.done():
                item.waiter.set_result(outcome)
        self._metrics.ingest_stored += stored
        self._metrics.entities_written += changed

    async def close(self) -> None:
        """Write everything queued so far and wait for it."""
        while self._count or self._inflight:
            self._flush()
            await self._idle.wait()

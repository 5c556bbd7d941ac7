"""Periodic subscriptions (timeInterval): every N seconds, the matching entities as they are.

Each run queries the store with the subscription's filter and queues the
results in the outbox like any other notification, so periodic ones are
delivered (and retried) the same way. The first run is right away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

from dosi.hub.query import selection
from dosi.hub.state import HubState
from dosi.hub.subscriptions.registry import LiveSub, TenantSubs
from dosi.hub.subscriptions.rendering import render_entity_item

log = logging.getLogger("dosi.notify")
PAGE = 1000
MAX_ENTITIES = 10_000  # per run; a bigger match set is cut here


class Periodic:
    def __init__(self, state: HubState, poke: Callable[[str, str], None]) -> None:
        self._state = state
        self._poke = poke
        self._due: dict[tuple[str, str], float] = {}

    async def tick(self, tenant: str, subs: TenantSubs) -> None:
        """Run every periodic subscription of `tenant` whose time has come."""
        now = time.monotonic()
        now_ms = int(time.time() * 1000)
        present = set()
        for live in subs.periodic:
            key = (tenant, live.id)
            present.add(key)
            interval = live.spec.time_interval
            assert interval is not None
            due = self._due.get(key)
            if due is not None and now < due:
                continue
            self._due[key] = now + interval
            if live.spec.status(now_ms) == "active":
                await self._run(tenant, live, now_ms)
        for key in [k for k in self._due if k[0] == tenant and k not in present]:
            del self._due[key]

    async def _run(self, tenant: str, live: LiveSub, now_ms: int) -> None:
        rows: list[tuple[str, int, bytes]] = []
        offset = 0
        while offset < MAX_ENTITIES:
            page = await self._state.store.select(
                tenant, selection(live.spec.filter, limit=PAGE, offset=offset, count=False)
            )
            for entity in page.entities:
                item = render_entity_item(live.spec, live.ctx, entity)
                rows.append((live.id, now_ms, orjson.dumps(item)))
            if len(page.entities) < PAGE:
                break
            offset += PAGE
        if rows:
            await self._state.store.events.outbox_add(tenant, rows, None)
            self._poke(tenant, live.id)

"""Import checked export lines (lines.py) into a store; running it twice changes nothing.

What "again" does, per kind:

- entity: stored as exported (system times included), replacing the stored
  one; an identical stored entity is left alone. Writes go through
  `Store.apply`, one transaction per batch and all-or-nothing per entity.
  The store should be opened with history off: the export's history lines
  bring the entity's history, with its original times.
- history: the record is saved (keeping types only a stored record has);
  instances are added unless an identical row (attribute, both times,
  document) is stored already, counting copies; hourly rollups replace the
  stored hour. One transaction per line. Instance ids are the target's
  (`urn:ngsi-ld:attribute:instance:<seq>` names a row of the store).
- subscription: created if absent (its journal position is the target's
  current one, so it is not notified of what was imported before it),
  replaced if its document differs; delivery counters restored.
- context: the hosted @context is written unless identical.

A store error is reported with the line it came from; the lines before it
stay imported (and history lines already in flight after it), so the same
import can be rerun once the problem is fixed.
"""

from __future__ import annotations

import asyncio
from collections import deque

from dosi.hub.context_store import KV_NAMESPACE
from dosi.hub.store.base import Mutation, Store
from dosi.hub.store.dump import dump_of
from dosi.hub.transfer.export import Tally
from dosi.hub.transfer.lines import (
    ContextItem,
    EntityItem,
    HistoryItem,
    Item,
    LineError,
    SubscriptionItem,
)
from dosi.ngsi.errors import BadRequestData, NgsiError, NonexistentTenant
from dosi.ngsi.model import Entity

ENTITY_BATCH = 500
# History lines written at once: each is its own transaction, but the SQLite writer
# commits queued ones together and PostgreSQL runs them on several connections.
HISTORY_WINDOW = 32
SUBSCRIPTION_CAP = 1_000_000  # the import restores what a hub held, whatever its own cap


def _replace_with(entity: Entity) -> Mutation:
    def mutation(current: Entity | None) -> Entity | None:
        return current if current == entity else entity

    return mutation


class Importer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dump = dump_of(store)
        self.tally = Tally()
        self._batch: list[tuple[int, EntityItem]] = []
        self._inflight: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._contexts: dict[str, bytes] | None = None
        self._last_record: str | None = None

    async def add(self, number: int, item: Item) -> None:
        """Import the item of line `number`; some are written later: call `finish` at the end.

        A write the store refuses is a LineError naming its line; history lines after
        it that were already in flight may be imported too.
        """
        if isinstance(item, EntityItem):
            if self._batch and self._batch[0][1].tenant != item.tenant:
                await self.finish()
            self._batch.append((number, item))
            if len(self._batch) >= ENTITY_BATCH:
                await self.finish()
            return
        await self._flush_entities()
        if isinstance(item, HistoryItem):
            if item.record["id"] != self._last_record:  # an entity's lines come together
                self._last_record = item.record["id"]
                self.tally.records += 1
            self._inflight.append((number, asyncio.ensure_future(self._history(item))))
            if len(self._inflight) >= HISTORY_WINDOW:
                await self._settle_oldest()
            return
        await self.finish()
        try:
            if isinstance(item, SubscriptionItem):
                await self._subscription(item)
            else:
                await self._context(item)
        except NgsiError as exc:
            raise LineError(number, exc.detail) from None

    async def finish(self) -> None:
        """Write everything still batched or in flight."""
        await self._flush_entities()
        while self._inflight:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        number, write = self._inflight.popleft()
        try:
            await write
        except NgsiError as exc:
            rest = [w for _, w in self._inflight]
            self._inflight.clear()
            await asyncio.gather(*rest, return_exceptions=True)
            raise LineError(number, exc.detail) from None

    async def _flush_entities(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        tenant = batch[0][1].tenant
        ops = [(item.entity["id"], _replace_with(item.entity)) for _, item in batch]
        try:
            outcomes = await self.store.apply(tenant, ops)
        except NgsiError as exc:
            # The store refused the whole batch (e.g. while indexing one entity): one by
            # one finds the line, and the entities before it are imported.
            if len(batch) == 1:
                raise LineError(batch[0][0], exc.detail) from None
            for one in batch:
                self._batch = [one]
                await self._flush_entities()
            return
        for (number, _), outcome in zip(batch, outcomes, strict=True):
            if outcome.error is not None:
                raise LineError(number, outcome.error.detail)
            if outcome.change is None:
                self.tally.unchanged += 1
            else:
                self.tally.entities += 1

    async def _history(self, item: HistoryItem) -> None:
        added = await self.dump.write_history(
            item.tenant, item.record, item.attr, item.instances, item.hourly
        )
        self.tally.instances += added
        self.tally.unchanged += len(item.instances) - added
        self.tally.hourly += len(item.hourly)

    async def _subscription(self, item: SubscriptionItem) -> None:
        events = self.store.events
        try:
            stored = await events.subscription_get(item.tenant, item.id)
        except NonexistentTenant:
            stored = None
        if stored is None:
            await events.subscription_create(item.tenant, item.id, item.doc, SUBSCRIPTION_CAP)
            self.tally.subscriptions += 1
        elif stored.doc != item.doc:
            if not await events.subscription_update(item.tenant, item.id, stored.doc, item.doc):
                raise BadRequestData(f"subscription {item.id} changed while it was imported")
            self.tally.subscriptions += 1
        else:
            self.tally.unchanged += 1
        if item.status is not None and (stored is None or stored.status != item.status):
            await events.status_save(item.tenant, [(item.id, item.status)])

    async def _context(self, item: ContextItem) -> None:
        if self._contexts is None:
            self._contexts = dict(await self.store.kv_items(KV_NAMESPACE))
        if self._contexts.get(item.key) == item.value:
            self.tally.unchanged += 1
            return
        await self.store.kv_put(KV_NAMESPACE, item.key, item.value)
        self._contexts[item.key] = item.value
        self.tally.contexts += 1

"""Export a hub's contents as NDJSON lines (format: lines.py), streaming.

Memory stays bounded whatever the hub's size: entities and temporal records
are read in keyset pages, history one series at a time in pages, and each
line is handed to the caller as soon as it is made. Order: the header, the
hosted @contexts (hub-wide), then per tenant its entities, its history and
its subscriptions (after the entities, so an import does not notify them
about the entities it brings along).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dosi.hub.context_store import KV_NAMESPACE
from dosi.hub.store.base import Store
from dosi.hub.store.dump import Dump, RawInstance, Record, Series, dump_of
from dosi.hub.store.migrations import LATEST
from dosi.hub.transfer import lines
from dosi.ngsi.values import now_iso

ENTITY_PAGE = 500
RECORD_PAGE = 100
ROW_PAGE = 2_000
ROWS_PER_LINE = 1_000
SUBSCRIPTION_PAGE = 100
_FIRST = -(2**63)


@dataclass
class Tally:
    """What an export wrote or an import did, for the summary line."""

    contexts: int = 0
    entities: int = 0
    records: int = 0
    instances: int = 0
    hourly: int = 0
    subscriptions: int = 0
    unchanged: int = 0  # import: entities, instances and the like already there


class Exporter:
    """The lines of `tenants` ("" is the default tenant); `advance(n)` after n entities or
    temporal records (see `total`)."""

    def __init__(
        self,
        store: Store,
        tenants: list[str],
        *,
        selected: str | None = None,
        advance: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.store = store
        self.dump: Dump = dump_of(store)
        self.tenants = tenants
        self.selected = selected
        self.advance = advance
        self.tally = Tally()

    async def total(self) -> int:
        """Entities and temporal records to export (what `advance` counts)."""
        total = 0
        for tenant in self.tenants:
            entities, records = await self.dump.counts(tenant)
            total += entities + records
        return total

    async def lines(self) -> AsyncIterator[bytes]:
        yield lines.header_line(self.selected, now_iso(), LATEST)
        for key, value in await self.store.kv_items(KV_NAMESPACE):
            self.tally.contexts += 1
            yield lines.context_line(key, value)
        for tenant in self.tenants:
            async for line in self._entities(tenant):
                yield line
            async for line in self._history(tenant):
                yield line
            async for line in self._subscriptions(tenant):
                yield line

    async def _entities(self, tenant: str) -> AsyncIterator[bytes]:
        after = _FIRST
        while True:
            page = await self.dump.entities(tenant, after, ENTITY_PAGE)
            for _, entity in page:
                yield lines.entity_line(tenant, entity)
            self.tally.entities += len(page)
            self.advance(len(page))
            if len(page) < ENTITY_PAGE:
                return
            after = page[-1][0]

    async def _history(self, tenant: str) -> AsyncIterator[bytes]:
        after = _FIRST
        while True:
            page = await self.dump.records(tenant, after, RECORD_PAGE)
            for key, record in page:
                async for line in self._entity_history(tenant, key, record):
                    yield line
                self.tally.records += 1
                self.advance(1)
            if len(page) < RECORD_PAGE:
                return
            after = page[-1][0]

    async def _entity_history(self, tenant: str, key: int, record: Record) -> AsyncIterator[bytes]:
        series = await self.dump.series(tenant, key)
        if not series:
            yield lines.history_line(tenant, record)
        for one in series:
            if one.raw:
                async for chunk in self._instances(tenant, key, one):
                    self.tally.instances += len(chunk)
                    yield lines.history_line(tenant, record, one.attr, instances=chunk)
            after = _FIRST
            while one.hourly:
                hours = await self.dump.hourly(tenant, key, one.key, after, ROWS_PER_LINE)
                if hours:
                    self.tally.hourly += len(hours)
                    yield lines.history_line(tenant, record, one.attr, hourly=hours)
                if len(hours) < ROWS_PER_LINE:
                    break
                after = hours[-1].hour

    async def _instances(
        self, tenant: str, key: int, series: Series
    ) -> AsyncIterator[list[RawInstance]]:
        """Chunks of one series, oldest first. A chunk never ends between identical rows,
        so an import (which adds each identical row once per copy) sees them together."""
        after = (_FIRST, _FIRST)
        chunk: list[RawInstance] = []
        while True:
            page = await self.dump.instances(tenant, key, series.key, after, ROW_PAGE)
            for _, _, inst in page:
                if len(chunk) >= ROWS_PER_LINE and inst != chunk[-1]:
                    yield chunk
                    chunk = []
                chunk.append(inst)
            if len(page) < ROW_PAGE:
                break
            after = (page[-1][0], page[-1][1])
        if chunk:
            yield chunk

    async def _subscriptions(self, tenant: str) -> AsyncIterator[bytes]:
        offset = 0
        events = self.store.events
        while True:
            rows, total = await events.subscription_list(tenant, offset, SUBSCRIPTION_PAGE)
            for row in rows:
                yield lines.subscription_line(tenant, row.id, row.doc, row.status)
            self.tally.subscriptions += len(rows)
            offset += len(rows)
            if not rows or offset >= total:
                return

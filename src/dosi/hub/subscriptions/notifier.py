"""The notifier: follows the journal, matches subscriptions, delivers from an outbox.

Exactly one process of a hub delivers: the one holding the "notifier" role
(`store.try_lead`); the others retry taking it every second, so a second
worker takes over when the leader dies. The leader follows each tenant's
journal from a durable cursor; for each batch of entries it matches the
subscriptions and, in ONE transaction, queues the rendered notifications in
the outbox and moves the cursor. Delivery (outbox.py) deletes rows only once
acknowledged: a crash, even SIGKILL, loses nothing, and at worst repeats a
notification (at-least-once).

Every worker also serves live streams (live.py) and the subscription
routes; both reach this object through `notifier_of(state)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.routing import BaseRoute

from dosi.hub.state import HubState
from dosi.hub.store.base import DEFAULT_TENANT, JournalEntry
from dosi.hub.subscriptions.live import LiveStreams
from dosi.hub.subscriptions.matching import delta_of, fires
from dosi.hub.subscriptions.outbox import Dispatcher, LaneConfig
from dosi.hub.subscriptions.periodic import Periodic
from dosi.hub.subscriptions.registry import Registry, TenantSubs
from dosi.hub.subscriptions.rendering import render_change
from dosi.hub.subscriptions.status import StatusBook

log = logging.getLogger("dosi.notify")
ROLE = "notifier"
LEAD_RETRY_S = 1.0
POLL_S = 0.05  # commits of other worker processes are found by polling
JOURNAL_BATCH = 1000
MAX_ROWS_PER_BATCH = 20_000  # matches x subscriptions queued by one transaction
HOUSEKEEPING_S = 1.0
PERIODIC_S = 0.2
PRUNE_EVERY_S = 1.0
JOURNAL_KEEP_MS = 60_000  # live streams of other workers may still be reading


def notifier_of(state: HubState) -> Notifier | None:
    """The running notifier of a hub (None before start and after stop)."""
    return state.notifier


class Notifier:
    routes: Sequence[BaseRoute] = ()

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._leading = False
        self.live: LiveStreams | None = None
        self._status = StatusBook()
        self._known: frozenset[str] = frozenset()
        self._tenants_stale = True

    # -- extension --------------------------------------------------------
    async def start(self, state: HubState) -> None:
        self._state = state
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        wake = self._wake

        def committed(tenant: str) -> None:  # on the store's writer thread
            if tenant not in self._known:
                self._tenants_stale = True  # a new tenant: list them again now
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to wake
                loop.call_soon_threadsafe(wake.set)

        state.store.add_commit_listener(committed)
        self.live = LiveStreams(state)
        # Live streams never end by themselves, and the server drains open responses
        # before it shuts the app down: end them as soon as draining starts.
        self._drain_task = asyncio.create_task(self._end_streams_when_draining(state))
        state.notifier = self
        self._task = asyncio.create_task(self._run(), name="dosi-notifier")

    async def _end_streams_when_draining(self, state: HubState) -> None:
        await state.draining.wait()
        if self.live is not None:
            self.live.close_all()

    async def stop(self) -> None:
        self._drain_task.cancel()
        self._stop.set()
        self._wake.set()
        if self.live is not None:
            await self.live.stop()
        if self._task is not None:
            await self._task
        self._state.notifier = None

    # -- for the routes ---------------------------------------------------
    def subscriptions_changed(self) -> None:
        """A subscription was created, updated or deleted in this process: look now."""
        self._wake.set()

    def counters(self, tenant: str, sub_id: str) -> dict[str, Any] | None:
        """Live delivery counters, where this process is the one delivering."""
        if not self._leading:
            return None
        counters = self._status.get(tenant, sub_id)
        return counters.as_json() if counters is not None else None

    # -- leadership -------------------------------------------------------
    async def _run(self) -> None:
        while not self._stop.is_set():
            if not self._state.store.try_lead(ROLE):
                await self._sleep(LEAD_RETRY_S)
                continue
            try:
                await self._lead()
            except Exception:
                log.exception("notifier failed; restarting it")
                await self._sleep(LEAD_RETRY_S)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _lead(self) -> None:
        state = self._state
        settings = state.settings
        self._registry = Registry(state)
        self._dispatcher = Dispatcher(
            state.store.events,
            self._registry,
            self._status,
            state.metrics,
            LaneConfig(
                batch_max=max(1, settings.notify_batch_max),
                concurrency=max(1, settings.notify_concurrency),
                timeout_s=settings.notify_timeout_s,
                retry_max_s=settings.notify_retry_max_s,
                max_age_s=settings.notify_max_age_s,
            ),
        )
        self._periodic = Periodic(state, self._dispatcher.poke)
        self._cursors: dict[str, int] = {}
        self._persisted: dict[str, int] = {}
        self._throttle: dict[tuple[str, str], int] = {}
        self._pruned: dict[str, tuple[int, int]] = {}  # tenant -> (cursor, when) last pruned
        self._leading = True
        try:
            await self._loop()
        finally:
            await self._dispatcher.close(settings.notify_stop_timeout_s)
            with contextlib.suppress(Exception):
                await self._save()
            self._leading = False

    async def _loop(self) -> None:
        tenants: list[str] = []
        next_tenants = next_house = next_periodic = next_prune = 0.0
        resumed: set[str] = set()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tenants or self._tenants_stale:
                if not self._state.store.try_lead(ROLE):
                    # The role was lost (e.g. its database connection dropped) and another
                    # worker may hold it now: stop delivering rather than deliver twice.
                    log.warning("notifier role lost; standing by")
                    return
                self._tenants_stale = False
                tenants = [DEFAULT_TENANT, *await self._state.store.tenants()]
                self._known = frozenset(tenants)
                next_tenants = now + HOUSEKEEPING_S
            self._wake.clear()
            progressed = False
            for tenant in tenants:
                try:
                    if tenant not in resumed:
                        await self._resume(tenant)
                        resumed.add(tenant)
                    progressed |= await self._pump(tenant)
                except Exception:
                    log.exception("notifier pass failed", extra={"tenant": tenant})
                    await self._sleep(LEAD_RETRY_S)
            now = time.monotonic()
            if now >= next_periodic:
                next_periodic = now + PERIODIC_S
                for tenant in tenants:
                    subs = self._registry.cached(tenant)
                    if subs.periodic:
                        await self._periodic.tick(tenant, subs)
            if now >= next_house:
                next_house = now + HOUSEKEEPING_S
                await self._save()
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY_S
                await self._prune(tenants)
            if not progressed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _resume(self, tenant: str) -> None:
        """After a start or a takeover: deliver what the outbox still holds."""
        await self._refresh(tenant)
        for sub_id in await self._state.store.events.outbox_pending(tenant):
            self._dispatcher.poke(tenant, sub_id)

    async def _refresh(self, tenant: str) -> TenantSubs:
        subs, touched = await self._registry.refresh(tenant)
        for sub_id in touched:
            live = subs.subs.get(sub_id)
            if live is None:
                self._status.forget(tenant, sub_id)
                self._throttle.pop((tenant, sub_id), None)
            else:
                self._status.load(tenant, sub_id, live.status)
            self._dispatcher.poke(tenant, sub_id)
        return subs

    async def _cursor(self, tenant: str) -> int:
        cursor = self._cursors.get(tenant)
        if cursor is None:
            cursor = await self._state.store.events.notifier_cursor(tenant)
            self._cursors[tenant] = self._persisted[tenant] = cursor
        return cursor

    # -- journal -> outbox ------------------------------------------------
    async def _pump(self, tenant: str) -> bool:
        """Queue notifications for the next batch of `tenant`'s journal; True if any entry."""
        store = self._state.store
        cursor = await self._cursor(tenant)
        if not self._registry.cached(tenant).on_change:
            # Nothing to match: skip reading entries. The end is read before the
            # subscriptions, so a subscription created meanwhile starts after it.
            last = await store.journal_last(tenant)
            subs = await self._refresh(tenant)
            if not subs.on_change:
                self._cursors[tenant] = max(cursor, last)
                return False
        limit = max(16, min(JOURNAL_BATCH, MAX_ROWS_PER_BATCH // max(1, self._n_on_change(tenant))))
        entries = await store.journal_read(tenant, cursor, limit)
        # Subscriptions after the entries: one committed before an entry is then known.
        subs = await self._refresh(tenant)
        if not entries:
            return False
        rows, touched = self._match(tenant, subs, entries)
        await store.events.outbox_add(tenant, rows, entries[-1].seq)
        self._cursors[tenant] = self._persisted[tenant] = entries[-1].seq
        for sub_id in touched:
            self._dispatcher.poke(tenant, sub_id)
        return True

    def _n_on_change(self, tenant: str) -> int:
        return len(self._registry.cached(tenant).on_change)

    def _match(
        self, tenant: str, subs: TenantSubs, entries: list[JournalEntry]
    ) -> tuple[list[tuple[str, int, bytes]], set[str]]:
        rows: list[tuple[str, int, bytes]] = []
        touched: set[str] = set()
        for entry in entries:
            delta = delta_of(entry)
            rendered: dict[tuple[Any, ...], bytes] = {}
            for live in subs.on_change:
                spec = live.spec
                if entry.seq <= live.since or spec.status(entry.at) != "active":
                    continue
                if not fires(spec, delta):
                    continue
                if spec.throttling is not None:
                    key = (tenant, live.id)
                    last = self._throttle.get(key)
                    if last is not None and entry.at - last < spec.throttling * 1000:
                        continue
                    self._throttle[key] = entry.at
                # Subscriptions that render alike share one rendering of the change.
                shape = (
                    live.ctx.key,
                    spec.form,
                    spec.sys_attrs,
                    spec.attributes,
                    spec.show_changes,
                    spec.lang,
                    spec.endpoint.accept,
                    "attributeDeleted" in spec.triggers,
                )
                data = rendered.get(shape)
                if data is None:
                    try:
                        item = render_change(spec, live.ctx, delta, entry.at, entry.before)
                    except Exception:
                        log.exception("rendering a notification failed", extra={"id": live.id})
                        continue
                    data = rendered[shape] = orjson.dumps(item)
                rows.append((live.id, entry.at, data))
                touched.add(live.id)
        return rows, touched

    # -- persistence ------------------------------------------------------
    async def _save(self) -> None:
        """Counters that changed, and cursors moved without queuing anything."""
        events = self._state.store.events
        for tenant, items in self._status.take_dirty().items():
            await events.status_save(tenant, items)
        for tenant, cursor in list(self._cursors.items()):
            if cursor > self._persisted.get(tenant, 0):
                await events.notifier_set_cursor(tenant, cursor)
                self._persisted[tenant] = cursor

    async def _prune(self, tenants: list[str]) -> None:
        """Drop journal entries already queued (cursor persisted) and older than
        JOURNAL_KEEP_MS. Run often, each delete stays small; a tenant whose cursor did
        not move is looked at again only once its last entries have aged."""
        now_ms = int(time.time() * 1000)
        for tenant in tenants:
            upto = self._persisted.get(tenant, 0)
            last_upto, last_ms = self._pruned.get(tenant, (0, 0))
            if upto == 0 or (upto == last_upto and now_ms - last_ms < JOURNAL_KEEP_MS):
                continue
            try:
                await self._state.store.journal_prune(tenant, upto, now_ms - JOURNAL_KEEP_MS)
            except Exception:
                log.exception("journal prune failed", extra={"tenant": tenant})
            self._pruned[tenant] = (upto, now_ms)

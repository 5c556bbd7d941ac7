"""Live streams (dosi extension): every committed change, as server-sent events.

Each worker process follows the journal itself (one `JournalFollower` from
the end, shared by the worker's streams), so a stream sees every change
whichever worker wrote it. Each client has a filter, a view and a bounded
queue of rendered events; a client that falls `stream_queue` events behind
gets an `overflow` event and is closed, so a slow reader never holds memory
or the others back. Heartbeat comments keep proxies from closing idle streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from dosi.hub.journal import JournalFollower
from dosi.hub.query import EntityFilter
from dosi.hub.state import HubState
from dosi.hub.store.base import JournalEntry
from dosi.hub.subscriptions.model import Selector
from dosi.ngsi.context import Context
from dosi.ngsi.errors import NgsiError
from dosi.ngsi.render import View, render_entity

log = logging.getLogger("dosi.stream")
IDLE_SKIP_S = 0.5


class TooManyStreams(NgsiError):
    """HTTP 503: the worker already serves its maximum of live streams."""

    error_type = "TooManyStreams"
    status = 503
    title = "Too many live streams"

    @property
    def type_uri(self) -> str:
        return "urn:dosi:errors:TooManyStreams"


class StreamClient:
    def __init__(
        self, tenant: str, flt: EntityFilter, view: View, ctx: Context, queue_size: int
    ) -> None:
        self.tenant = tenant
        self.selects = Selector(flt)
        self.attrs = flt.attrs
        self.view = view
        self.ctx = ctx
        self.opened_ms = int(time.time() * 1000)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)
        self.behind = False
        self.closed = False

    def offer(self, entry: JournalEntry) -> None:
        if self.behind or self.closed or entry.at < self.opened_ms:
            return
        state = entry.after if entry.after is not None else entry.before
        if state is None or not self.selects(state):
            return
        updated = entry.before is not None and entry.after is not None
        if updated and self.attrs is not None and self.attrs.isdisjoint(entry.changed):
            return
        if entry.after is None:
            types = [self.ctx.compact(t) for t in state.get("type", ())]
            data: dict[str, Any] = {
                "id": state["id"],
                "type": types[0] if len(types) == 1 else types,
                "deleted": True,
            }
        else:
            data = render_entity(entry.after, self.ctx, self.view)
        try:
            self.queue.put_nowait(b"event: change\ndata: " + orjson.dumps(data) + b"\n\n")
        except asyncio.QueueFull:
            self.behind = True

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    async def events(self, streams: LiveStreams, heartbeat_s: float) -> AsyncIterator[bytes]:
        if not streams.register(self):
            yield b'event: error\ndata: {"detail": "too many live streams"}\n\n'
            return
        try:
            yield b": dosi live stream\n\n"
            while not self.closed:
                if self.behind:
                    yield (
                        b'event: overflow\ndata: {"detail": "the client fell behind; '
                        b'changes were dropped and the stream ends"}\n\n'
                    )
                    return
                try:
                    item = await asyncio.wait_for(self.queue.get(), heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if item is None:
                    return
                yield item
        finally:
            streams.unregister(self)


class LiveStreams:
    """The streams of one worker and the journal follower that feeds them."""

    def __init__(self, state: HubState) -> None:
        self._state = state
        self._clients: set[StreamClient] = set()
        self._active = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def full(self) -> bool:
        return len(self._clients) >= self._state.settings.max_streams

    def register(self, client: StreamClient) -> bool:
        if self.full() or client.closed:
            return False
        self._clients.add(client)
        self._state.metrics.streams_open = len(self._clients)
        self._active.set()
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="dosi-live-streams")
        return True

    def unregister(self, client: StreamClient) -> None:
        self._clients.discard(client)
        self._state.metrics.streams_open = len(self._clients)
        if not self._clients:
            self._active.clear()

    def close_all(self) -> None:
        """End every stream (shutdown): their responses complete, so the server can stop."""
        for client in list(self._clients):
            client.close()

    async def stop(self) -> None:
        self.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        store = self._state.store
        follower = JournalFollower(store)
        while True:
            try:
                while not self._clients:
                    # Nobody listens: keep up with the journal's end without reading it. A
                    # new client then finds at most IDLE_SKIP_S of entries to skip (by time).
                    try:
                        await asyncio.wait_for(self._active.wait(), IDLE_SKIP_S)
                    except TimeoutError:
                        for tenant in follower.cursors:
                            follower.advance(tenant, await store.journal_last(tenant))
                found = await follower.wait()
            except Exception:  # a tenant file went away, ...: try again shortly
                log.exception("live stream follower failed")
                await asyncio.sleep(1)
                continue
            for tenant, entries in found:
                clients = [c for c in self._clients if c.tenant == tenant]
                for entry in entries:
                    for client in clients:
                        try:
                            client.offer(entry)
                        except Exception:  # one client's rendering must not end the others'
                            log.exception("live stream rendering failed")
                            client.close()
                follower.advance(tenant, entries[-1].seq)

"""Following the journal: every committed change of every tenant, in commit order.

Subscriptions, live streams and device commands are all *followers*: each
keeps a cursor per tenant and reads what was committed after it. Commits of
this process wake followers at once; commits of other worker processes are
found by polling, so a follower works the same with one worker or several.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from dosi.hub.store.base import DEFAULT_TENANT, JournalEntry, Store

TENANTS_TTL_S = 1.0  # how stale a follower's list of tenants may be (other processes' new ones)


class JournalFollower:
    """Reads the journal of every tenant from per-tenant cursors.

    A follower created with `start=None` begins at the current end of each
    journal (it sees only what is committed from now on); pass saved cursors
    to resume where a previous run stopped.
    """

    def __init__(
        self,
        store: Store,
        *,
        start: Mapping[str, int] | None = None,
        batch: int = 1000,
        poll_s: float = 0.05,
    ) -> None:
        self._store = store
        self._cursors: dict[str, int] = dict(start or {})
        self._from_end = start is None
        self._batch = batch
        self._poll_s = poll_s
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._known: list[str] = []
        self._listed_at = -TENANTS_TTL_S
        store.add_commit_listener(self._committed)

    @property
    def cursors(self) -> dict[str, int]:
        return dict(self._cursors)

    def _committed(self, tenant: str) -> None:
        # Called from the store's writer thread.
        if tenant not in self._cursors:
            self._listed_at = -TENANTS_TTL_S  # a new tenant: list them again
        self._loop.call_soon_threadsafe(self._wakeup.set)

    async def _tenants(self) -> list[str]:
        # Listing tenants costs the store a query (SQLite opens a connection for it), and
        # a busy hub wakes followers at every commit: list at most once per TENANTS_TTL_S,
        # or at once when this process commits to a tenant not seen yet.
        now = time.monotonic()
        if now - self._listed_at < TENANTS_TTL_S:
            return self._known
        self._listed_at = now
        tenants = [DEFAULT_TENANT, *await self._store.tenants()]
        for tenant in tenants:
            if tenant not in self._cursors:
                # Tenants that exist when a fresh follower starts are read from their
                # end; any tenant that appears later, from its very first change.
                self._cursors[tenant] = (
                    await self._store.journal_last(tenant) if self._from_end else 0
                )
        self._from_end = False
        self._known = tenants
        return tenants

    async def read(self) -> list[tuple[str, list[JournalEntry]]]:
        """What was committed since the last call, per tenant; [] if nothing."""
        found: list[tuple[str, list[JournalEntry]]] = []
        for tenant in await self._tenants():
            entries = await self._store.journal_read(tenant, self._cursors[tenant], self._batch)
            if entries:
                found.append((tenant, entries))
        return found

    def advance(self, tenant: str, seq: int) -> None:
        """Mark everything up to `seq` of `tenant` as handled."""
        self._cursors[tenant] = max(self._cursors.get(tenant, 0), seq)

    async def wait(self) -> list[tuple[str, list[JournalEntry]]]:
        """Wait until there is something new, then return it (cursors advance on `advance`)."""
        while True:
            self._wakeup.clear()
            found = await self.read()
            if found:
                return found
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes, and the follower's task would not stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wakeup.wait()

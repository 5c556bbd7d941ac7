"""Single-holder roles on PostgreSQL: session advisory locks on a connection of their own.

`Store.try_lead` is synchronous (callers poll it from their loops), while
asyncpg is not; so the roles live on a dedicated connection driven by a
small event loop in its own thread, and `try_lead` waits for one round trip.
Held roles are remembered and answered without a round trip. A lock belongs
to its session: it is released when the store closes, when the process dies
(the server notices the closed socket), or when the connection is lost, in
which case every role is dropped here and must be taken again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import asyncpg

from dosi.hub.store.postgres_schema import lock_key

log = logging.getLogger("dosi.hub.store")
_TIMEOUT_S = 5.0
_BACKOFF_S = 5.0  # after a failed attempt, answer False at once for this long


class LeadLocks:
    def __init__(self, url: str, namespace: str) -> None:
        self._url = url
        self._namespace = namespace
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn: asyncpg.Connection | None = None
        self._retry_at = 0.0

    def try_lead(self, role: str) -> bool:
        """Blocks the caller for one round trip; never long, since a failed attempt
        (the database unreachable) makes the next ones answer False for a while."""
        with self._lock:
            if role in self._held:
                return True
            if time.monotonic() < self._retry_at:
                return False
            loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._try(role), loop)
        try:
            return future.result(timeout=_TIMEOUT_S)
        except Exception as exc:
            future.cancel()
            self._retry_at = time.monotonic() + _BACKOFF_S
            log.warning("could not take role %s: %s", role, exc or type(exc).__name__)
            return False

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="dosi-lead", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    async def _try(self, role: str) -> bool:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._url,
                timeout=_TIMEOUT_S,
                server_settings={"application_name": "dosi-lead"},
            )
            self._conn.add_termination_listener(self._lost)
        taken = bool(
            await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", lock_key("dosi-role", self._namespace, role)
            )
        )
        if taken:
            with self._lock:
                self._held.add(role)
        return taken

    def _lost(self, conn: Any) -> None:
        with self._lock:
            if self._held:
                log.warning("lost the connection holding roles %s", sorted(self._held))
            self._held.clear()

    def close(self) -> None:
        """Release every role (by closing the session) and stop the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._held.clear()
        if loop is None or thread is None:
            return
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                asyncio.run_coroutine_threadsafe(conn.close(timeout=5), loop).result(_TIMEOUT_S)
            except Exception:
                log.warning("closing the role connection failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_TIMEOUT_S)
        loop.close()

"""Drive an ASGI app's lifespan (startup/shutdown) without a server.

In-process clients need the hub's storage open, and only the app's lifespan
opens it. This speaks the ASGI lifespan protocol directly, so it works for any
ASGI app, not only Starlette.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message


class Lifespan:
    """Run `app`'s lifespan as a background task: `await startup()`, later `await shutdown()`."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        if self._task is not None:
            return
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": {},
        }
        self._task = asyncio.create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        await self._expect("lifespan.startup.complete")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._expect("lifespan.shutdown.complete")
        await self._task

    async def _run(self, scope: dict[str, Any]) -> None:
        await self._app(scope, self._inbox.get, self._outbox.put)

    async def _expect(self, wanted: str) -> None:
        """Wait for the app's answer, surfacing its failure or early exit as an error."""
        assert self._task is not None
        reply = asyncio.ensure_future(self._outbox.get())
        done, _ = await asyncio.wait({reply, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if reply not in done:
            reply.cancel()
            self._task.result()  # re-raises the app's exception, if any
            raise RuntimeError(f"ASGI app ended its lifespan before sending {wanted}")
        message = reply.result()
        if message["type"] != wanted:
            raise RuntimeError(f"ASGI lifespan: {message.get('message') or message['type']}")

"""A real HTTP notification receiver for the notification tests (aiohttp, loopback).

Imported by tests/hub/test_notifications*.py; its one test checks the receiver itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from aiohttp import web

from conftest import BASE

SUBSCRIPTIONS = f"{BASE}/subscriptions"


class Receiver:
    """Records every notification it acknowledges; `fail(n)` may answer request n with a status."""

    def __init__(self, fail: Callable[[int], int | None] | None = None) -> None:
        self.fail = fail
        self.delay = 0.0  # seconds each answer waits
        self.calls = 0
        self.notifications: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.fail(self.calls) if self.fail is not None else None
        if status is not None:
            return web.Response(status=status)
        self.notifications.append(orjson.loads(body))
        self.headers.append(dict(request.headers))
        return web.Response(status=200)

    @property
    def entities(self) -> list[dict[str, Any]]:
        """Every data[] item received, in order."""
        return [item for n in self.notifications for item in n["data"]]

    async def wait_for(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least `count` entities arrived; return them all."""
        deadline = time.monotonic() + within
        while len(self.entities) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} notified entities, got {self.entities}")
            await asyncio.sleep(0.02)
        return self.entities

    async def quiet(self, seconds: float = 0.4) -> list[dict[str, Any]]:
        """Let `seconds` pass (to see that nothing more arrives); return what came."""
        await asyncio.sleep(seconds)
        return self.entities


@asynccontextmanager
async def running(fail: Callable[[int], int | None] | None = None) -> AsyncIterator[Receiver]:
    found = Receiver(fail)
    await found.start()
    try:
        yield found
    finally:
        await found.stop()


async def subscribe(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None, **members: Any
) -> str:
    """Create a subscription notifying `url` (members may override notification); its id."""
    notification = {"endpoint": {"uri": url}, **members.pop("notification", {})}
    body = {"type": "Subscription", "notification": notification, **members}
    response = await client.post(SUBSCRIPTIONS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    location: str = response.headers["Location"]
    return location.rsplit("/", 1)[1]


async def test_receiver_records_and_fails_on_request() -> None:
    receiver = Receiver(fail=lambda n: 500 if n == 1 else None)
    await receiver.start()
    try:
        async with httpx.AsyncClient() as http:
            first = await http.post(receiver.url, json={"data": [1]})
            second = await http.post(receiver.url, json={"data": [2]})
        assert (first.status_code, second.status_code) == (500, 200)
        assert await receiver.wait_for(1) == [2]
    finally:
        await receiver.stop()

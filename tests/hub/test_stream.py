"""GET /ngsi-ld/v1/stream: live changes as server-sent events, read over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from helpers import (
    BASE,
    DEFAULT_VOCAB,
    JSON_LD_REL,
    assert_problem,
    attrs_url,
    entity_url,
    host_context,
    prop,
)

from dosi.hub.app import create_app
from dosi.hub.query import EntityFilter
from dosi.hub.settings import HubSettings
from dosi.hub.store.base import JournalEntry
from dosi.hub.subscriptions.live import StreamClient
from dosi.hub.subscriptions.notifier import notifier_of
from dosi.ngsi.context import ContextResolver
from dosi.ngsi.render import View
from servers import free_port

STREAM = f"{BASE}/stream"
SSE = {"Accept": "text/event-stream"}


@contextlib.asynccontextmanager
async def serving(settings: HubSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The hub under uvicorn on a free port (httpx over ASGI cannot stream)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def http(settings: HubSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as client:
        yield client


class Events:
    """Reads one stream in the background; `next()` returns (event, data) pairs."""

    def __init__(self, http: httpx.AsyncClient, params: dict[str, str], **headers: str) -> None:
        self._http = http
        self._params = params
        self._headers = {**SSE, **headers}
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.comments: list[str] = []
        self.opened = asyncio.Event()
        self.response: httpx.Response | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Events:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.opened.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        async with self._http.stream(
            "GET", STREAM, params=self._params, headers=self._headers
        ) as response:
            self.response = response
            self.opened.set()
            event, data = "message", ""
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line:
                    if data:
                        await self.queue.put((event, orjson.loads(data)))
                    event, data = "message", ""
            await self.queue.put(("closed", None))

    async def next(self, within: float = 5) -> tuple[str, Any]:
        return await asyncio.wait_for(self.queue.get(), within)

    async def nothing(self, seconds: float = 0.3) -> None:
        await asyncio.sleep(seconds)
        assert self.queue.empty(), self.queue.get_nowait()


async def upsert(http: httpx.AsyncClient, *entities: dict[str, Any], **headers: str) -> None:
    """Batch upsert that merges into existing entities (options=update)."""
    response = await http.post(
        f"{BASE}/entityOperations/upsert",
        json=list(entities),
        headers=headers,
        params={"options": "update"},
    )
    assert response.status_code in (201, 204), response.text


def room(n: int, **attrs: Any) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Room:{n}", "type": "Room", **attrs}


async def test_matching_changes_arrive_as_events(http: httpx.AsyncClient) -> None:
    async with Events(http, {"type": "Room", "q": "temperature>20"}) as events:
        assert events.response is not None
        assert events.response.headers["content-type"].startswith("text/event-stream")
        await upsert(http, room(1, temperature=prop(25)), room(2, temperature=prop(10)))
        await upsert(http, {"id": "urn:ngsi-ld:Car:1", "type": "Car", "temperature": prop(30)})
        await upsert(http, room(2, temperature=prop(22)))
        first = await events.next()
        second = await events.next()
        assert first == (
            "change",
            {"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": prop(25)},
        )
        assert second[1]["id"] == "urn:ngsi-ld:Room:2"
        await events.nothing()


async def test_deletion_events_and_key_values(http: httpx.AsyncClient) -> None:
    await upsert(http, room(1, temperature=prop(25)))
    async with Events(http, {"type": "Room", "options": "keyValues"}) as events:
        assert (
            await http.patch(attrs_url("urn:ngsi-ld:Room:1"), json={"temperature": prop(26)})
        ).status_code == 204
        assert (await http.delete(entity_url("urn:ngsi-ld:Room:1"))).status_code == 204
        assert await events.next() == (
            "change",
            {"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 26},
        )
        assert await events.next() == (
            "change",
            {"id": "urn:ngsi-ld:Room:1", "type": "Room", "deleted": True},
        )


async def test_attrs_narrow_updates_and_geo_filters(http: httpx.AsyncClient) -> None:
    here = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5, 5]}}
    there = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [50, 5]}}
    await upsert(http, room(1, location=here, temperature=prop(1), humidity=prop(1)))
    await upsert(http, room(2, location=there, temperature=prop(1)))
    params = {
        "type": "Room",
        "attrs": "temperature",
        "georel": "near;maxDistance==2000",
        "geometry": "Point",
        "coordinates": "[5, 5.001]",
    }
    async with Events(http, params) as events:
        await upsert(http, room(1, humidity=prop(2)))  # not a watched attribute
        await upsert(http, room(2, temperature=prop(2)))  # too far
        await upsert(http, room(1, temperature=prop(3)))
        _, data = await events.next()
        assert data == {"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": prop(3)}
        await events.nothing()


async def test_terms_compacted_with_the_link_context(http: httpx.AsyncClient) -> None:
    ctx = await host_context(
        http, {"Room": "https://example.org/Room", "t": "https://example.org/t"}
    )
    link = f"<{ctx}>; {JSON_LD_REL}"
    async with Events(http, {"type": "Room"}, Link=link) as events:
        await upsert(http, room(1, t=prop(1)), Link=link)
        _, data = await events.next()
        assert data == {"id": "urn:ngsi-ld:Room:1", "type": "Room", "t": prop(1)}
    async with Events(http, {"type": "https://example.org/Room"}) as events:
        await upsert(http, room(2, t=prop(2)), Link=link)
        _, data = await events.next()
        assert data["type"] == "https://example.org/Room"
        assert "https://example.org/t" in data


async def test_tenants_are_separate(http: httpx.AsyncClient) -> None:
    await upsert(http, room(1, t=prop(1)), **{"NGSILD-Tenant": "t1"})
    async with Events(http, {"type": "Room"}, **{"NGSILD-Tenant": "t1"}) as events:
        await upsert(http, room(2, t=prop(1)))
        await upsert(http, room(3, t=prop(1)), **{"NGSILD-Tenant": "t1"})
        _, data = await events.next()
        assert data["id"] == "urn:ngsi-ld:Room:3"
        await events.nothing()


async def test_refusals(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get(STREAM, params={"type": "Room"}), 406)
    bad_q = await http.get(STREAM, params={"q": "a>>1"}, headers=SSE)
    assert_problem(bad_q, 400, "BadRequestData")
    unknown = await http.get(STREAM, headers={**SSE, "NGSILD-Tenant": "nobody"})
    assert_problem(unknown, 404, "NonexistentTenant")


async def test_cap_and_heartbeat(settings: HubSettings) -> None:
    settings = dataclasses.replace(settings, max_streams=1, stream_heartbeat_s=0.1)
    async with serving(settings) as http, Events(http, {}) as events:
        refused = await http.get(STREAM, headers=SSE)
        assert refused.status_code == 503, refused.text
        await asyncio.sleep(0.35)
        assert ": heartbeat" in events.comments
        await upsert(http, room(1, t=prop(1)))
        assert (await events.next())[1]["id"] == "urn:ngsi-ld:Room:1"


async def test_a_client_that_falls_behind_is_told_and_closed(settings: HubSettings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        notifier = notifier_of(app.state.hub)
        assert notifier is not None and notifier.live is not None
        ctx = await ContextResolver().resolve(None)
        client = StreamClient("", EntityFilter(), View(), ctx, queue_size=3)
        later = int(time.time() * 1000) + 1000
        for n in range(5):
            entity = {"id": f"urn:ngsi-ld:Room:{n}", "type": [DEFAULT_VOCAB + "Room"]}
            client.offer(JournalEntry(n + 1, later, entity["id"], None, entity, []))
        assert client.behind
        chunks = [chunk async for chunk in client.events(notifier.live, heartbeat_s=5)]
        assert chunks[0].startswith(b":")
        assert chunks[-1].startswith(b"event: overflow")
        assert len(chunks) == 2  # what was queued is dropped: the client must resynchronise
        assert not notifier.live.full()
        assert app.state.hub.metrics.streams_open == 0

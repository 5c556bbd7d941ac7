"""Helpers of the web tests: the web app in-process over ASGI, or under uvicorn on a port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn

from dosi.web.app import create_web_app
from dosi.web.settings import WebSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def in_process(settings: WebSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The web app over ASGI with its lifespan run (responses arrive whole: no streams)."""
    app = create_web_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http,
    ):
        yield http


@asynccontextmanager
async def on_port(settings: WebSettings) -> AsyncIterator[str]:
    """The web app under uvicorn on a free port, in this event loop; yields its URL."""
    port = free_port()
    app = create_web_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.draining.set()  # as `dosi web` does when it begins to stop
        server.should_exit = True
        await asyncio.wait_for(task, 15)

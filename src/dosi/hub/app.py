"""The hub as an ASGI application: routes, error mapping, logging, metrics, lifespan."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dosi.hub import context_store
from dosi.hub.extension import Extension
from dosi.hub.routes import (
    batch,
    contexts,
    discovery,
    entities,
    ops,
    resources,
    stream,
    subscriptions,
    temporal,
)
from dosi.hub.settings import HubSettings
from dosi.hub.state import HubState
from dosi.hub.store.base import Store
from dosi.hub.store.sqlite import SqliteStore
from dosi.hub.subscriptions.notifier import Notifier
from dosi.hub.temporal.retention import Retention
from dosi.ngsi.context import ContextResolver
from dosi.ngsi.errors import (
    InternalError,
    NgsiError,
)
from dosi.ngsi.problems import http_error_handler, ngsi_error_handler, problem_response

log = logging.getLogger("dosi.hub")
# Request ids: unique per process start, cheap (uuid4 costs a syscall per request).
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)
access_log = logging.getLogger("dosi.access")


def create_app(
    settings: HubSettings | None = None, extensions: Sequence[Extension] = ()
) -> Starlette:
    """The hub; `extensions` (the IoT agent, ...) add routes and background work."""
    settings = settings or HubSettings()
    parts: list[Extension] = [Notifier(), Retention(), *extensions]

    def context_changed(event: str, record: dict[str, Any]) -> None:
        # Hosted and implicitly created contexts must survive a restart.
        task = asyncio.get_running_loop().create_task(
            context_store.save_change(state, event, record)
        )
        state.pending.add(task)
        task.add_done_callback(state.pending.discard)

    resolver = ContextResolver(
        fetch_timeout_s=settings.context_fetch_timeout_s,
        max_bytes=settings.max_context_bytes,
        cache_size=settings.context_cache_size,
        on_change=context_changed,
        base_url=settings.base_url,
    )
    state = HubState(
        settings=settings,
        store=create_store(settings, indexed_iris(settings.indexed_attributes, resolver)),
        contexts=resolver,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.store.open()
        await context_store.restore(state)
        started: list[Extension] = []
        try:
            for part in parts:
                await part.start(state)
                started.append(part)
            log.info("hub started", extra={"data_dir": str(settings.data_dir)})
            yield
        finally:
            # Uvicorn stops accepting and drains in-flight requests before this runs;
            # extensions then finish their work, and closing the store commits every
            # queued write.
            for part in reversed(started):
                await part.stop()
            await state.settle()
            await state.store.close()
            log.info("hub stopped")

    app = Starlette(
        routes=[
            *ops.ROUTES,
            *entities.ROUTES,
            *resources.ROUTES,
            *batch.ROUTES,
            *discovery.ROUTES,
            *contexts.ROUTES,
            *temporal.ROUTES,
            *subscriptions.ROUTES,
            *stream.ROUTES,
            *(route for part in parts for route in part.routes),
        ],
        exception_handlers={
            NgsiError: ngsi_error_handler,
            HTTPException: http_error_handler,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.hub = state
    app.add_middleware(RequestLogMiddleware, state=state)
    return app


def create_store(settings: HubSettings, indexed: frozenset[str]) -> Store:
    """PostgreSQL when `settings.db_url` is set, else SQLite files in the data dir."""
    if settings.db_url:
        from dosi.hub.store.postgres import PostgresStore

        return PostgresStore(settings.db_url, indexed_attributes=indexed, history=settings.history)
    return SqliteStore(settings.data_dir, indexed_attributes=indexed, history=settings.history)


def indexed_attributes_of(settings: HubSettings) -> frozenset[str]:
    """The settings' indexed attribute names as IRIs (expanded with the core context)."""
    return indexed_iris(settings.indexed_attributes, ContextResolver())


def indexed_iris(names: tuple[str, ...], resolver: ContextResolver) -> frozenset[str]:
    return frozenset(resolver.core.expand(name) for name in names)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(InternalError("the hub failed to handle this request"))


class RequestLogMiddleware:
    """Request id, one structured log line and metrics per HTTP request."""

    def __init__(self, app: ASGIApp, state: HubState) -> None:
        self.app = app
        self.metrics = state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight -= 1
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], template, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                    },
                )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            text: str = value.decode("latin-1")[:128]
            return text
    return None


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (Loki, Elastic) ingest without parsing rules."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger("dosi")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False

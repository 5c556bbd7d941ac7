"""The dashboard's server: the built front end, the hub pass-through, config and what-if jobs.

Routes:
  GET  /                       the front end (static/index.html), never cached
  GET  /assets/...             its hashed bundles, cached for a year
  *    /ngsi-ld/{path}         the hub, passed through (dosi.web.proxy)
  GET  /api/config             scenario, map origin, what-if targets, KPI labels
  POST /api/whatif             start a what-if job; GET /api/whatif/{id} its state
  GET  /health, /metrics       this server's own (the hub's through /ngsi-ld are not needed)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from dosi.ngsi.errors import (
    BadRequestData,
    InternalError,
    InvalidRequest,
    NgsiError,
    ResourceNotFound,
    UnsupportedMediaType,
)
from dosi.ngsi.problems import http_error_handler, ngsi_error_handler, problem_response
from dosi.twin.kpi import KPI_LABELS
from dosi.twin.whatif import describe, parse_what_if
from dosi.web.district import District, load_district
from dosi.web.metrics import WebMetrics
from dosi.web.proxy import HubProxy
from dosi.web.settings import WebSettings
from dosi.web.whatif import WhatIfJobs

log = logging.getLogger("dosi.web")
NOT_BUILT = "front end not built: run make web\n"
MAX_API_BODY = 16_384
IMMUTABLE = "public, max-age=31536000, immutable"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_web_app(settings: WebSettings) -> Starlette:
    """The app; its lifespan opens the hub client and stops what-if jobs on the way out."""
    district = load_district(settings.scenario)
    metrics = WebMetrics()
    proxy = HubProxy(
        settings.hub_url,
        max_body_bytes=settings.max_body_bytes,
        timeout_s=settings.hub_timeout_s,
        max_streams=settings.max_streams,
        metrics=metrics,
    )
    jobs = WhatIfJobs(district.source, keep=settings.jobs_kept, metrics=metrics)
    config = _config(settings, district)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await proxy.open()
        log.info("web started", extra={"hub": settings.hub_url, "scenario": district.name})
        try:
            yield
        finally:
            await jobs.close()
            await proxy.close()
            log.info("web stopped")

    async def index(request: Request) -> Response:
        page = settings.static_dir / "index.html"
        if not page.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    async def health(request: Request) -> Response:
        hub = "ok" if await proxy.hub_ok() else "unreachable"
        return _json({"status": "ok", "hub": hub})

    async def metrics_text(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def api_config(request: Request) -> Response:
        return _json(config)

    async def start_whatif(request: Request) -> Response:
        event_text, hours = await _whatif_request(request, settings, district)
        job = jobs.start(event_text, describe(parse_what_if(event_text)), hours)
        return _json(job.to_json(), status=202)

    async def whatif_state(request: Request) -> Response:
        job = jobs.get(request.path_params["job"])
        if job is None:
            raise ResourceNotFound("no such what-if job (only the last few are kept)")
        return _json(job.to_json())

    async def unknown_api(request: Request) -> Response:
        raise ResourceNotFound(f"no such resource: {request.url.path}")

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET", "HEAD"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            Route("/api/config", api_config, methods=["GET"]),
            Route("/api/whatif", start_whatif, methods=["POST"]),
            Route("/api/whatif/{job}", whatif_state, methods=["GET"]),
            Route("/api/{rest:path}", unknown_api, methods=METHODS),
            Route("/ngsi-ld/{path:path}", proxy.forward, methods=METHODS),
            Mount("/", app=FrontEnd(settings.static_dir)),
        ],
        exception_handlers={
            NgsiError: ngsi_error_handler,
            HTTPException: http_error_handler,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.proxy = proxy
    app.state.jobs = jobs
    app.state.draining = proxy.draining  # `dosi web` sets it when uvicorn begins to stop
    app.add_middleware(CountRequests, metrics=metrics)
    return app


def _config(settings: WebSettings, district: District) -> dict[str, Any]:
    return {
        "scenario": district.name,
        "origin": list(district.origin),
        "timezone": district.timezone,
        "hub": settings.hub_url,
        "whatIf": {
            "kinds": list(district.kinds),
            "roads": list(district.roads),
            "junctions": list(district.burst_nodes),
            "maxHours": settings.whatif_max_hours,
        },
        "kpis": {
            key: {
                "en": kpi.en,
                "ko": kpi.ko,
                "unit": kpi.unit,
                "lowerIsBetter": kpi.lower_is_better,
                "digits": kpi.digits,
            }
            for key, kpi in KPI_LABELS.items()
        },
    }


async def _whatif_request(
    request: Request, settings: WebSettings, district: District
) -> tuple[str, float]:
    """The checked (event, hours) of a POST /api/whatif; 400 for anything else."""
    if "json" not in request.headers.get("content-type", ""):
        raise UnsupportedMediaType("send the what-if as application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_API_BODY:
            raise BadRequestData(f"a what-if request is at most {MAX_API_BODY} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequestData('expected {"event": "road-closure:EDGE", "hours": 0.25}')
    event_text, hours = document.get("event"), document.get("hours", 0.25)
    if not isinstance(event_text, str) or not 0 < len(event_text) <= 200:
        raise BadRequestData('"event" must be a what-if such as "road-closure:B2-C2"')
    limit = settings.whatif_max_hours
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not math.isfinite(hours)
        or not 0 < hours <= limit
    ):
        raise BadRequestData(f'"hours" must be a number more than 0 and at most {limit:g}')
    try:
        district.check(parse_what_if(event_text), float(hours))
    except ValueError as exc:
        raise BadRequestData(str(exc)) from None
    return event_text, float(hours)


class FrontEnd:
    """The built front end's files: hashed /assets/ cached for good, the rest revalidated.
    Before `make web` has built it, every path is a 404 (and `/` a 503 that says why)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._files is None:
            if not self.directory.is_dir():
                await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
                return
            self._files = CachedFiles(directory=self.directory)
        await self._files(scope, receive, send)


class CachedFiles(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        scope = kwargs.get("scope") or args[2]
        hashed = str(scope.get("path", "")).startswith("/assets/")
        response.headers["Cache-Control"] = IMMUTABLE if hashed else "no-cache"
        return response


class CountRequests:
    """Requests and time by kind, for /metrics."""

    def __init__(self, app: ASGIApp, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        kind = (
            "proxy" if path.startswith("/ngsi-ld/")
            else "api" if path.startswith("/api/")
            else "ops" if path in ("/health", "/metrics")
            else "static"
        )  # fmt: skip
        start = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(kind, scope["method"], status, time.perf_counter() - start)


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type="application/json")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(InternalError("the web server failed to handle this request"))

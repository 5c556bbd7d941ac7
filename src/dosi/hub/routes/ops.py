"""Operations endpoints: /health, /metrics, /openapi.json, and the core @context."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dosi import __version__
from dosi.hub.http import json_response, state_of
from dosi.hub.openapi import openapi_document


async def health(request: Request) -> Response:
    state = state_of(request)
    tenants = await state.store.tenants()
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "uptimeSeconds": round(time.time() - state.metrics.started, 3),
            "tenants": len(tenants),
        }
    )


async def metrics(request: Request) -> Response:
    return PlainTextResponse(
        state_of(request).metrics.render(), media_type="text/plain; version=0.0.4"
    )


async def openapi(request: Request) -> Response:
    return json_response(openapi_document(state_of(request).settings.base_url))


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]

"""NGSI-LD ProblemDetails as Starlette responses and exception handlers.

The hub and the dashboard's server answer errors the same way, so the shape lives here
once. It is the one module of `dosi.ngsi` that knows an HTTP framework (Starlette, which
both servers are built on); the rest of the package stays pure.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dosi.ngsi.errors import InternalError, MethodNotAllowed, NgsiError, ResourceNotFound

PROBLEM = "application/problem+json"


def problem_response(error: NgsiError) -> Response:
    return Response(orjson.dumps(error.to_problem()), status_code=error.status, media_type=PROBLEM)


async def ngsi_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiError)
    return problem_response(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (and any HTTPException) as ProblemDetails."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return problem_response(ResourceNotFound(f"no such resource: {request.url.path}"))
    if exc.status_code == 405:
        return problem_response(
            MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")
        )
    response = problem_response(InternalError(str(exc.detail)))
    response.status_code = exc.status_code
    return response

"""HTTP edge of the hub: body limits, content negotiation, @context, tenants, responses.

Routes stay small because everything about *how* NGSI-LD travels over HTTP
lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dosi.hub import context_store
from dosi.hub.state import HubState
from dosi.hub.store.base import DEFAULT_TENANT
from dosi.ngsi.context import Context, parse_link_header
from dosi.ngsi.errors import (
    BadRequestData,
    InvalidRequest,
    NonexistentTenant,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from dosi.ngsi.model import DEFAULT_CORE_CONTEXT

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


@dataclass(frozen=True)
class Call:
    """What every NGSI-LD operation needs to know about its request."""

    state: HubState
    tenant: str
    ctx: Context
    accept: str  # JSON, JSON_LD or GEO_JSON


def state_of(request: Request) -> HubState:
    state: HubState = request.app.state.hub
    return state


def tenant_of(request: Request) -> str:
    tenant = request.headers.get("ngsild-tenant")
    if tenant is None:
        return DEFAULT_TENANT
    tenant = tenant.strip()
    if not tenant:
        raise BadRequestData("NGSILD-Tenant header must not be empty")
    return tenant


async def require_tenant(state: HubState, tenant: str) -> None:
    """Reads of an unknown tenant fail; writes create it (clause 4.14)."""
    if tenant != DEFAULT_TENANT and not await state.store.tenant_exists(tenant):
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")


def negotiate(request: Request, *, geojson: bool = False) -> str:
    """Pick the response media type from Accept (clause 6.3.6)."""
    header = request.headers.get("accept")
    if not header:
        return JSON
    best: tuple[float, str] | None = None
    for part in header.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        chosen = _media(media, geojson)
        if chosen and weight > 0 and (best is None or weight > best[0]):
            best = (weight, chosen)
    if best is None:
        raise NotAcceptable(f"cannot produce any of: {header}")
    return best[1]


def _media(media: str, geojson: bool) -> str | None:
    if media in (JSON, "*/*", "application/*"):
        return JSON
    if media == JSON_LD:
        return JSON_LD
    if media == GEO_JSON and geojson:
        return GEO_JSON
    return None


async def read_body(request: Request, *, allow_merge_patch: bool = False) -> tuple[Any, str]:
    """The parsed JSON body and its media type, with the size limit enforced while reading."""
    state = state_of(request)
    limit = state.settings.max_body_bytes
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = {JSON, JSON_LD} | ({MERGE_PATCH} if allow_merge_patch else set())
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type must be one of {', '.join(sorted(allowed))}, got {media or 'none'}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("the request body is empty")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    return body, media


async def request_context(request: Request, body: Any = None, media: str = JSON) -> Context:
    """The @context in force: inline for JSON-LD bodies, else the Link header, else core."""
    state = state_of(request)
    link = request.headers.get("link")
    if media == JSON_LD:
        if link is not None and parse_link_header(link) is not None:
            raise BadRequestData(
                "a JSON-LD body carries its @context; do not also send a Link header"
            )
        contexts = _inline_contexts(body)
        return await state.contexts.resolve(contexts)
    if _has_inline_context(body):
        raise BadRequestData(
            "@context in a body is only allowed with Content-Type application/ld+json"
        )
    url = parse_link_header(link) if link else None
    await context_store.ensure_known(state, url)
    return await state.contexts.resolve(url)


def _has_inline_context(body: Any) -> bool:
    if isinstance(body, dict):
        return "@context" in body
    if isinstance(body, list):
        return any(isinstance(item, dict) and "@context" in item for item in body)
    return False


def _inline_contexts(body: Any) -> Any:
    if isinstance(body, dict):
        if "@context" not in body:
            raise BadRequestData("a JSON-LD body must carry an @context member")
        return body["@context"]
    if isinstance(body, list) and body:
        first = body[0].get("@context") if isinstance(body[0], dict) else None
        for item in body:
            if not isinstance(item, dict) or "@context" not in item:
                raise BadRequestData(
                    "every entity of a JSON-LD array must carry an @context member"
                )
        return first
    raise BadRequestData("a JSON-LD body must be an object or a non-empty array")


async def begin(request: Request, *, geojson: bool = False) -> Call:
    """Tenant, Accept and @context for a request without a body (reads and deletes:
    the tenant must exist; only writes with a body create one)."""
    state = state_of(request)
    tenant = tenant_of(request)
    accept = negotiate(request, geojson=geojson)
    await require_tenant(state, tenant)
    ctx = await request_context(request)
    return Call(state, tenant, ctx, accept)


async def begin_with_body(request: Request, *, allow_merge_patch: bool = False) -> tuple[Call, Any]:
    state = state_of(request)
    tenant = tenant_of(request)
    accept = negotiate(request)
    body, media = await read_body(request, allow_merge_patch=allow_merge_patch)
    ctx = await request_context(request, body, media)
    return Call(state, tenant, ctx, accept), body


async def entity_response(
    call: Call, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON with a Link header, or JSON-LD with @context inside each entity.

    A Link to an implicitly created @context is only sent once that context is stored.
    """
    out_headers = dict(headers or {})
    if call.accept == JSON_LD:
        context = call.ctx.source if call.ctx.source is not None else DEFAULT_CORE_CONTEXT
        if isinstance(data, list):
            data = [{**item, "@context": context} for item in data]
        elif isinstance(data, dict):
            data = {**data, "@context": context}
        media = JSON_LD
    else:
        url = call.state.contexts.url_for(call.ctx, call.state.settings.base_url)
        await call.state.settle()
        context_link = f"<{url}>; {LINK_REL}"
        paging = out_headers.get("Link")
        out_headers["Link"] = f"{context_link}, {paging}" if paging else context_link
        media = call.accept
    if call.tenant:
        out_headers["NGSILD-Tenant"] = call.tenant
    return Response(orjson.dumps(data), status_code=status, media_type=media, headers=out_headers)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON, headers=headers)


def no_content(call: Call | None = None) -> Response:
    headers = {"NGSILD-Tenant": call.tenant} if call is not None and call.tenant else None
    return Response(status_code=204, headers=headers)

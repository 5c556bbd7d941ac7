"""@context management: /jsonldContexts add, list, serve, delete (clause 5.13)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi.hub import context_store
from dosi.hub.http import JSON_LD, json_response, read_body, state_of
from dosi.ngsi.context_cache import HOSTED_KINDS
from dosi.ngsi.errors import BadRequestData, ResourceNotFound

BASE = "/ngsi-ld/v1/jsonldContexts"


async def add_context(request: Request) -> Response:
    state = state_of(request)
    body, _ = await read_body(request)
    if not isinstance(body, dict) or "@context" not in body:
        raise BadRequestData("a context to host must be a JSON object with an @context member")
    info = state.contexts.host(body)
    await state.settle()  # acknowledged means stored
    url = f"{state.settings.base_url}{BASE}/{info.local_id}"
    return Response(status_code=201, headers={"Location": url})


async def list_contexts(request: Request) -> Response:
    state = state_of(request)
    await context_store.restore(state)
    details = request.query_params.get("details") == "true"
    kind = request.query_params.get("kind")
    if kind is not None and kind not in ("Hosted", "Cached", "ImplicitlyCreated"):
        raise BadRequestData("kind must be Hosted, Cached or ImplicitlyCreated")
    infos = state.contexts.list(kind=kind)
    base = state.settings.base_url
    if details:
        return json_response([info.to_json(details=True, base_url=base) for info in infos])
    return json_response([info.url_at(base) for info in infos])


async def serve_context(request: Request) -> Response:
    state = state_of(request)
    context_id = request.path_params["contextId"]
    await context_store.ensure_known(state, context_id)
    details = request.query_params.get("details") == "true"
    info, document = state.contexts.get(context_id, count_hit=not details)
    if details:
        return json_response(info.to_json(details=True, base_url=state.settings.base_url))
    is_core = bool((info.extra_info or {}).get("core"))
    if info.kind not in HOSTED_KINDS and not is_core:
        # Clause 5.13.4: a cached copy of someone else's context is not ours to serve.
        raise ResourceNotFound(f"@context {context_id} is cached, not hosted: ask for details=true")
    return Response(orjson.dumps(document), media_type=JSON_LD)


async def delete_context(request: Request) -> Response:
    state = state_of(request)
    context_id = request.path_params["contextId"]
    await context_store.ensure_known(state, context_id)
    reload = request.query_params.get("reload") == "true"
    await state.contexts.delete(context_id, reload=reload)
    await state.settle()
    return Response(status_code=204)


ROUTES = [
    Route(BASE, add_context, methods=["POST"]),
    Route(BASE, list_contexts, methods=["GET"]),
    Route(f"{BASE}/{{contextId:path}}", serve_context, methods=["GET"]),
    Route(f"{BASE}/{{contextId:path}}", delete_context, methods=["DELETE"]),
]

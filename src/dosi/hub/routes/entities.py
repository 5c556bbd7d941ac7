"""Entities: create, retrieve, query, replace, merge, delete (clauses 5.6.1-5.7.2, 5.6.17-18)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi.hub.http import begin, begin_with_body, entity_response, no_content
from dosi.hub.query import expand_names, parse_filter, parse_view
from dosi.hub.service import (
    create_mutation,
    delete_mutation,
    existing,
    query_response,
    render_one,
    write_one,
)
from dosi.ngsi.errors import BadRequestData, ResourceNotFound
from dosi.ngsi.mutate import merge_entity, replace_entity
from dosi.ngsi.parse import parse_entity, parse_fragment
from dosi.ngsi.values import now_iso, require_uri

BASE = "/ngsi-ld/v1"


def path_id(request: Request) -> str:
    """Entity ids are URIs and may hold '/' (percent-encoded): see routes.resources."""
    return require_uri(request.path_params["entityId"], "entity id in the path")


async def create_entity(request: Request) -> Response:
    call, body = await begin_with_body(request)
    entity = parse_entity(body, call.ctx, now=now_iso())
    await write_one(call, entity["id"], create_mutation(entity))
    location = f"{BASE}/entities/{quote(entity['id'], safe=':')}"
    headers = {"Location": location}
    if call.tenant:
        headers["NGSILD-Tenant"] = call.tenant
    return Response(status_code=201, headers=headers)


async def retrieve_entity(request: Request) -> Response:
    call = await begin(request, geojson=True)
    entity_id = path_id(request)
    params = request.query_params
    attrs = expand_names(params.get("attrs"), call.ctx)
    view = parse_view(params, call.ctx, attrs=attrs)
    entity = await call.state.store.get(call.tenant, entity_id)
    if entity is None:
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    if attrs is not None and not any(a in entity for a in attrs):
        raise ResourceNotFound(f"entity {entity_id} has none of the requested attributes")
    return await entity_response(call, render_one(call, entity, view, params))


async def query_entities(request: Request) -> Response:
    call = await begin(request, geojson=True)
    params = request.query_params
    flt = parse_filter(params, call.ctx)
    if flt.is_empty and params.get("local") != "true":
        raise BadRequestData(
            "a query needs at least one of type, id, idPattern, attrs, q, scopeQ or a geo-query"
        )
    view = parse_view(params, call.ctx, attrs=flt.attrs)
    return await query_response(request, call, flt, view, params)


async def delete_entity(request: Request) -> Response:
    call = await begin(request)
    entity_id = path_id(request)
    await write_one(call, entity_id, delete_mutation(entity_id))
    return no_content(call)


async def replace_entity_route(request: Request) -> Response:
    call, body = await begin_with_body(request)
    entity_id = path_id(request)
    if isinstance(body, dict):
        if "id" in body and body["id"] != entity_id:
            raise BadRequestData("the entity id in the body differs from the one in the path")
        body = {**body, "id": entity_id}
    now = now_iso()
    new = parse_entity(body, call.ctx, now=now, require_type=False)
    await write_one(call, entity_id, lambda old: replace_entity(existing(old, entity_id), new, now))
    return no_content(call)


async def merge_entity_route(request: Request) -> Response:
    call, body = await begin_with_body(request, allow_merge_patch=True)
    entity_id = path_id(request)
    if isinstance(body, dict) and "id" in body and body["id"] != entity_id:
        raise BadRequestData("the entity id in the body differs from the one in the path")
    now = now_iso()
    types, attrs, scope = parse_fragment(body, call.ctx, now=now, allow_null=True)
    await write_one(
        call,
        entity_id,
        lambda old: merge_entity(existing(old, entity_id), attrs, now, types=types, scope=scope),
    )
    return no_content(call)


ROUTES = [
    Route(f"{BASE}/entities", create_entity, methods=["POST"]),
    Route(f"{BASE}/entities", query_entities, methods=["GET"]),
]

"""The temporal API (clauses 5.6.11-5.6.16, 5.7.3, 5.7.4; HTTP binding 6.18-6.22, 6.24).

Reads come from the history every write records; temporal writes add,
correct or delete history instances only and never touch the current state
of an entity (its /entities resource).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from dosi.hub.http import begin, begin_with_body, no_content, require_tenant
from dosi.hub.query import EntityFilter, expand_names, parse_filter
from dosi.hub.query_body import filter_from_body
from dosi.hub.store.temporal import instance_seq
from dosi.hub.temporal.params import parse_temporal
from dosi.hub.temporal.payload import (
    apply_update,
    parse_instance_update,
    parse_temporal_attributes,
    parse_temporal_entity,
)
from dosi.hub.temporal.query import query_answer, respond, temporal_selection
from dosi.hub.temporal.routing import RawPathRoute
from dosi.ngsi.errors import BadRequestData, ResourceNotFound
from dosi.ngsi.parse import parse_scope, parse_types
from dosi.ngsi.values import Expander, now_iso, require_name, require_uri

BASE = "/ngsi-ld/v1/temporal"
ENTITY = f"{BASE}/entities/{{entityId}}"
ATTR = f"{ENTITY}/attrs/{{attrId}}"


def _entity_id(request: Request) -> str:
    return require_uri(request.path_params["entityId"], "entity id in the path")


def _attr(request: Request, ctx: Expander) -> tuple[str, str]:
    name = require_name(request.path_params["attrId"], "attribute name in the path")
    return name, ctx.expand(name)


async def query_temporal(request: Request) -> Response:
    """GET /temporal/entities (clause 5.7.4)."""
    call = await begin(request)
    params = request.query_params
    flt = parse_filter(params, call.ctx)
    if flt.is_empty and params.get("local") != "true":
        raise BadRequestData(
            "a temporal query needs at least one of type, id, idPattern, attrs, q, scopeQ "
            "or a geo-query"
        )
    tp = parse_temporal(params)
    return await query_answer(request, call, flt, tp, params)


async def post_query_temporal(request: Request) -> Response:
    """POST /temporal/entityOperations/query: the body's temporalQ carries the window."""
    call, body = await begin_with_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("a query must be a JSON object")
    if body.get("type", "Query") != "Query":
        raise BadRequestData("the query body's type must be Query")
    await require_tenant(call.state, call.tenant)
    params = dict(request.query_params)
    flt = filter_from_body(body, call.ctx)
    extra = {"lang": body["lang"]} if "lang" in body else {}
    tp = parse_temporal({**extra, **params}, body.get("temporalQ"))
    return await query_answer(request, call, flt, tp, params)


async def retrieve_temporal(request: Request) -> Response:
    """GET /temporal/entities/{entityId} (clause 5.7.3)."""
    call = await begin(request)
    entity_id = _entity_id(request)
    params = request.query_params
    flt = EntityFilter(
        ids=frozenset([entity_id]), attrs=expand_names(params.get("attrs"), call.ctx)
    )
    tp = parse_temporal(params)
    selection = temporal_selection(
        flt, tp, call, limit=1, offset=0, count=False, require_data=False
    )
    page = await call.state.store.temporal.query(call.tenant, selection)
    if not page.entities:
        raise ResourceNotFound(f"entity {entity_id} has no temporal representation")
    return await respond(call, page, tp, {}, many=False)


async def upsert_temporal(request: Request) -> Response:
    """POST /temporal/entities (clause 5.6.11): 201 when created, 204 when instances were added."""
    call, body = await begin_with_body(request)
    entity_id, types, scope, instances = parse_temporal_entity(body, call.ctx, now=now_iso())
    created = await call.state.store.temporal.upsert(
        call.tenant, entity_id, types, scope, instances
    )
    if not created:
        return no_content(call)
    headers = {"Location": f"{BASE}/entities/{quote(entity_id, safe=':')}"}
    if call.tenant:
        headers["NGSILD-Tenant"] = call.tenant
    return Response(status_code=201, headers=headers)


async def append_temporal(request: Request) -> Response:
    """POST /temporal/entities/{entityId}/attrs (clause 5.6.12)."""
    call, body = await begin_with_body(request)
    entity_id = _entity_id(request)
    if not isinstance(body, dict):
        raise BadRequestData("the request body must be a JSON object of attributes")
    if "id" in body and body["id"] != entity_id:
        raise BadRequestData("the entity id in the body differs from the one in the path")
    types = parse_types(body.get("type"), call.ctx, required=False)
    scope = parse_scope(body["scope"]) if "scope" in body else None
    instances = parse_temporal_attributes(body, call.ctx, now=now_iso())
    await call.state.store.temporal.upsert(
        call.tenant, entity_id, types, scope, instances, must_exist=True
    )
    return no_content(call)


async def delete_temporal(request: Request) -> Response:
    """DELETE /temporal/entities/{entityId} (clause 5.6.16)."""
    call = await begin(request)
    await call.state.store.temporal.delete_entity(call.tenant, _entity_id(request))
    return no_content(call)


async def delete_attr_temporal(request: Request) -> Response:
    """DELETE /temporal/entities/{entityId}/attrs/{attrId} (clause 5.6.13)."""
    call = await begin(request)
    entity_id = _entity_id(request)
    _, iri = _attr(request, call.ctx)
    params = request.query_params
    dataset_id = params.get("datasetId")
    if dataset_id is not None:
        require_uri(dataset_id, "datasetId")
    delete_all = params.get("deleteAll", "false")
    if delete_all not in ("true", "false"):
        raise BadRequestData("deleteAll must be true or false")
    await call.state.store.temporal.delete_attribute(
        call.tenant, entity_id, iri, dataset_id=dataset_id, delete_all=delete_all == "true"
    )
    return no_content(call)


def _instance(request: Request) -> int:
    value = require_uri(request.path_params["instanceId"], "instanceId")
    seq = instance_seq(value)
    if seq is None:
        raise ResourceNotFound(f"no attribute instance {value}")
    return seq


async def update_instance_temporal(request: Request) -> Response:
    """PATCH /temporal/entities/{entityId}/attrs/{attrId}/{instanceId} (clause 5.6.14)."""
    call, body = await begin_with_body(request)
    entity_id = _entity_id(request)
    name, iri = _attr(request, call.ctx)
    seq = _instance(request)
    now = now_iso()
    patch = parse_instance_update(name, body, call.ctx, now=now)
    await call.state.store.temporal.update_instance(
        call.tenant, entity_id, iri, seq, lambda old: apply_update(old, patch, now)
    )
    return no_content(call)


async def delete_instance_temporal(request: Request) -> Response:
    """DELETE /temporal/entities/{entityId}/attrs/{attrId}/{instanceId} (clause 5.6.15)."""
    call = await begin(request)
    entity_id = _entity_id(request)
    _, iri = _attr(request, call.ctx)
    await call.state.store.temporal.delete_instance(call.tenant, entity_id, iri, _instance(request))
    return no_content(call)


ROUTES = [
    RawPathRoute(f"{BASE}/entities", query_temporal, methods=["GET"]),
    RawPathRoute(f"{BASE}/entities", upsert_temporal, methods=["POST"]),
    RawPathRoute(f"{BASE}/entityOperations/query", post_query_temporal, methods=["POST"]),
    RawPathRoute(ENTITY, retrieve_temporal, methods=["GET"]),
    RawPathRoute(ENTITY, delete_temporal, methods=["DELETE"]),
    RawPathRoute(f"{ENTITY}/attrs", append_temporal, methods=["POST"]),
    RawPathRoute(ATTR, delete_attr_temporal, methods=["DELETE"]),
    RawPathRoute(f"{ATTR}/{{instanceId}}", update_instance_temporal, methods=["PATCH"]),
    RawPathRoute(f"{ATTR}/{{instanceId}}", delete_instance_temporal, methods=["DELETE"]),
]

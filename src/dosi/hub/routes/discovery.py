"""Discovery: entity types and attributes in use (clause 5.7.5-5.7.10)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi.hub.http import Call, begin, entity_response
from dosi.hub.store.base import AttributeStat
from dosi.ngsi.errors import ResourceNotFound
from dosi.ngsi.values import require_name

BASE = "/ngsi-ld/v1"


def _details(request: Request) -> bool:
    return request.query_params.get("details") == "true"


def _list_id(kind: str) -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4().hex}"


async def _stats(call: Call) -> list[AttributeStat]:
    return await call.state.store.attribute_stats(call.tenant)


async def list_types(request: Request) -> Response:
    call = await begin(request)
    stats = await _stats(call)
    attrs_by_type: defaultdict[str, set[str]] = defaultdict(set)
    for s in stats:
        if not s.entity_type:
            continue
        if s.attribute:
            attrs_by_type[s.entity_type].add(s.attribute)
        else:
            attrs_by_type.setdefault(s.entity_type, set())
    if _details(request):
        data: Any = [
            {
                "id": t,
                "type": "EntityType",
                "typeName": call.ctx.compact(t),
                "attributeNames": sorted(call.ctx.compact(a) for a in attrs),
            }
            for t, attrs in sorted(attrs_by_type.items())
        ]
    else:
        data = {
            "id": _list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": sorted(call.ctx.compact(t) for t in attrs_by_type),
        }
    return await entity_response(call, data)


async def type_info(request: Request) -> Response:
    call = await begin(request)
    name = require_name(request.path_params["type"], "entity type")
    iri = call.ctx.expand(name)
    stats = [s for s in await _stats(call) if s.entity_type == iri]
    count = sum(s.count for s in stats if not s.attribute)
    if not count:
        raise ResourceNotFound(f"no entity of type {name} exists")
    attr_types: defaultdict[str, set[str]] = defaultdict(set)
    for s in stats:
        if s.attribute:
            attr_types[s.attribute].add(s.attribute_type)
    data = {
        "id": iri,
        "type": "EntityTypeInfo",
        "typeName": call.ctx.compact(iri),
        "entityCount": count,
        "attributeDetails": [
            {
                "id": attr,
                "type": "Attribute",
                "attributeName": call.ctx.compact(attr),
                "attributeTypes": sorted(kinds),
            }
            for attr, kinds in sorted(attr_types.items())
        ],
    }
    return await entity_response(call, data)


def _attribute_summary(call: Call, attr: str, stats: list[AttributeStat]) -> dict[str, Any]:
    mine = [s for s in stats if s.attribute == attr and s.entity_type]
    return {
        "id": attr,
        "type": "Attribute",
        "attributeName": call.ctx.compact(attr),
        "attributeCount": sum(s.count for s in stats if s.attribute == attr and not s.entity_type),
        "attributeTypes": sorted({s.attribute_type for s in mine}),
        "typeNames": sorted({call.ctx.compact(s.entity_type) for s in mine}),
    }


async def list_attributes(request: Request) -> Response:
    call = await begin(request)
    stats = await _stats(call)
    names = sorted({s.attribute for s in stats if s.attribute and not s.entity_type})
    if _details(request):
        data: Any = [_attribute_summary(call, a, stats) for a in names]
    else:
        data = {
            "id": _list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": sorted(call.ctx.compact(a) for a in names),
        }
    return await entity_response(call, data)


async def attribute_info(request: Request) -> Response:
    call = await begin(request)
    name = require_name(request.path_params["attr"], "attribute name")
    iri = call.ctx.expand(name)
    stats = await _stats(call)
    if not any(s.attribute == iri and not s.entity_type for s in stats):
        raise ResourceNotFound(f"no entity has an attribute {name}")
    return await entity_response(call, _attribute_summary(call, iri, stats))


ROUTES = [
    Route(f"{BASE}/types", list_types, methods=["GET"]),
    Route(f"{BASE}/types/{{type:path}}", type_info, methods=["GET"]),
    Route(f"{BASE}/attributes", list_attributes, methods=["GET"]),
    Route(f"{BASE}/attributes/{{attr:path}}", attribute_info, methods=["GET"]),
]

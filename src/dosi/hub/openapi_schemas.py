"""JSON Schemas of the bodies the hub reads and writes, for its OpenAPI document.

Kept apart from `openapi` (parameters, responses and paths) so each file
reads as one table. The shapes follow the data types of ETSI GS CIM 009
clause 5.2; they describe what the hub accepts, not every optional member
the specification defines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dosi.ngsi.geo import REFERENCE_GEOMETRY_TYPES
from dosi.ngsi.model import VALUE_KEY

Json = dict[str, Any]

STRING: Json = {"type": "string"}
# Attribute names and entity types: a term or an IRI, without control characters and
# without the characters clause 4.6.2 forbids.
NAME: Json = {
    "type": "string",
    "pattern": "^[^\\x00-\\x20\\x7f\\s<>\"'=;()&?\\\\]+$",
    "maxLength": 512,
}
# Scopes are paths: "/", "/Madrid" or "/Madrid/Gardens", never ending in "/".
SCOPE: Json = {"type": "string", "pattern": "^/(.*[^/])?$"}
GEOREL: Json = {
    "type": "string",
    "pattern": (
        "^(within|contains|intersects|equals|disjoint|overlaps"
        "|near(;(maxDistance|minDistance)==[0-9]+(\\.[0-9]+)?){1,2})$"
    ),
}
URI: Json = {"type": "string", "format": "uri"}
DATE_TIME: Json = {"type": "string", "format": "date-time"}
INTEGER: Json = {"type": "integer", "minimum": 0}
ANY: Json = {}

# Attribute type -> the member holding its value (clause 4.5.1): the data model's own table.
VALUE_MEMBER: dict[str, str] = VALUE_KEY
ATTRIBUTE_TYPES = tuple(VALUE_MEMBER)
GEOMETRY_TYPES = tuple(sorted(REFERENCE_GEOMETRY_TYPES))
CONTEXT_KINDS = ("Hosted", "Cached", "ImplicitlyCreated")


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Json, *, min_items: int = 0) -> Json:
    out: Json = {"type": "array", "items": items}
    if min_items:
        out["minItems"] = min_items
    return out


def enum(*values: str) -> Json:
    return {"type": "string", "enum": list(values)}


def const(value: str) -> Json:
    return enum(value)


def obj(
    properties: Mapping[str, Json],
    *,
    required: Iterable[str] = (),
    additional: Json | bool | None = None,
    description: str | None = None,
) -> Json:
    """An object schema; `additional` None leaves additionalProperties unset (allowed)."""
    out: Json = {"type": "object", "properties": dict(properties)}
    names = list(required)
    if names:
        out["required"] = names
    if additional is not None:
        out["additionalProperties"] = additional
    if description:
        out["description"] = description
    return out


def one_or_many(item: Json) -> Json:
    return {"anyOf": [item, array(item, min_items=1)]}


# Members an attribute instance may carry next to its sub-attributes.
_INSTANCE_MEMBERS: dict[str, Json] = {
    "type": enum(*ATTRIBUTE_TYPES),
    "value": ANY,
    "object": one_or_many(URI),
    "objectType": one_or_many(NAME),
    "languageMap": obj({}, additional=STRING),
    "vocab": one_or_many(NAME),
    "valueList": array(ANY),
    "objectList": array(ANY),
    "json": ANY,
    "datasetId": URI,
    "observedAt": DATE_TIME,
    "unitCode": NAME,
}

_ENTITY_MEMBERS: dict[str, Json] = {
    "id": URI,
    "type": one_or_many(NAME),
    "scope": one_or_many(SCOPE),
    "@context": ref("LdContext"),
}

_GEOJSON_GEOMETRY = obj(
    {"type": enum(*GEOMETRY_TYPES), "coordinates": array(ANY, min_items=1)},
    required=("type", "coordinates"),
    description="A GeoJSON geometry (RFC 7946).",
)

SCHEMAS: dict[str, Json] = {
    "ProblemDetails": obj(
        {
            "type": URI,
            "title": STRING,
            "status": {"type": "integer"},
            "detail": STRING,
            "instance": STRING,
        },
        required=("type", "title"),
        description="RFC 7807 problem details; `type` names the NGSI-LD error (clause 5.5.2).",
    ),
    "LdContext": {
        "description": "A JSON-LD @context: a URL, an inline object or an array of both.",
        "anyOf": [URI, {"type": "object"}, array({"anyOf": [URI, {"type": "object"}]})],
    },
    "Geometry": _GEOJSON_GEOMETRY,
    "AttributeInstance": {
        "description": (
            "One instance of an attribute in normalized form (clause 4.5.1): its type and "
            "the member holding its value; other members are sub-attributes."
        ),
        "allOf": [
            obj(_INSTANCE_MEMBERS),
            {
                "anyOf": [
                    {"properties": {"type": const(kind)}, "required": ["type", member]}
                    for kind, member in VALUE_MEMBER.items()
                ]
            },
        ],
    },
    "AttributeValue": {
        "description": (
            "An attribute: one instance, an array of instances (a multi-attribute), "
            "or a concise or simplified value."
        ),
        "anyOf": [
            ref("AttributeInstance"),
            array(ref("AttributeInstance"), min_items=1),
            {"description": "concise or simplified value"},
        ],
    },
    "Entity": obj(
        _ENTITY_MEMBERS,
        required=("id", "type"),
        additional=ref("AttributeValue"),
        description="An entity to create; members other than id, type, scope are attributes.",
    ),
    "EntityFragment": obj(
        _ENTITY_MEMBERS,
        additional=ref("AttributeValue"),
        description="Part of an entity: attributes to append, update or merge (and types, scope).",
    ),
    "EntityUpdate": obj(
        _ENTITY_MEMBERS,
        required=("id",),
        additional=ref("AttributeValue"),
        description="An entity fragment naming the entity it changes (batch update and merge).",
    ),
    "AttributePatch": {
        **obj(
            {**_INSTANCE_MEMBERS, "@context": ref("LdContext")},
            description="A partial update of one attribute (clause 5.6.4); null removes a member.",
        ),
        "minProperties": 1,
    },
    "AttributeReplacement": {
        "description": "The new value of one attribute (clause 5.6.19).",
        "anyOf": [
            {"allOf": [ref("AttributeInstance"), obj({"@context": ref("LdContext")})]},
            array(ref("AttributeInstance"), min_items=1),
        ],
    },
    "EntityOutput": obj(
        _ENTITY_MEMBERS,
        additional=ref("AttributeValue"),
        description="An entity as rendered: normalized, concise or simplified (keyValues).",
    ),
    "Feature": obj(
        {
            "id": URI,
            "type": const("Feature"),
            "geometry": {**_GEOJSON_GEOMETRY, "nullable": True},
            "properties": {"type": "object"},
        },
        required=("id", "type", "geometry", "properties"),
        description="An entity as a GeoJSON Feature.",
    ),
    "FeatureCollection": obj(
        {"type": const("FeatureCollection"), "features": array(ref("Feature"))},
        required=("type", "features"),
    ),
    "BatchEntityError": obj(
        {"entityId": STRING, "error": ref("ProblemDetails")},
        required=("entityId", "error"),
    ),
    "BatchOperationResult": obj(
        {"success": array(URI), "errors": array(ref("BatchEntityError"))},
        required=("success", "errors"),
        description="Per-entity outcome of a batch operation.",
    ),
    "UpdateResult": obj(
        {
            "updated": array(STRING),
            "notUpdated": array(
                obj({"attributeName": STRING, "reason": STRING}, required=("attributeName",))
            ),
        },
        required=("updated", "notUpdated"),
        description="Which attributes were and were not changed (clause 5.2.18).",
    ),
    "GeoQuery": obj(
        {
            "georel": GEOREL,
            "geometry": enum(*GEOMETRY_TYPES),
            "coordinates": {"anyOf": [STRING, array(ANY, min_items=1)]},
            "geoproperty": NAME,
        },
        required=("georel", "geometry", "coordinates"),
    ),
    "EntitySelector": obj(
        {"id": URI, "idPattern": STRING, "type": NAME},
        description="Selects entities by id, id pattern or type expression.",
    ),
    "Query": obj(
        {
            "type": const("Query"),
            "entities": array(ref("EntitySelector"), min_items=1),
            "attrs": array(NAME, min_items=1),
            "q": STRING,
            "scopeQ": STRING,
            "geoQ": ref("GeoQuery"),
            "lang": STRING,
            "@context": ref("LdContext"),
        },
        description="A query in a body, as accepted by POST /entityOperations/query.",
    )
    | {"anyOf": [{"required": [k]} for k in ("entities", "attrs", "q", "scopeQ", "geoQ")]},
    "EntityTypeList": obj(
        {"id": URI, "type": const("EntityTypeList"), "typeList": array(STRING)},
        required=("id", "type", "typeList"),
    ),
    "EntityType": obj(
        {
            "id": URI,
            "type": const("EntityType"),
            "typeName": STRING,
            "attributeNames": array(STRING),
        },
        required=("id", "type", "typeName", "attributeNames"),
    ),
    "EntityTypeInfo": obj(
        {
            "id": URI,
            "type": const("EntityTypeInfo"),
            "typeName": STRING,
            "entityCount": INTEGER,
            "attributeDetails": array(
                obj(
                    {
                        "id": URI,
                        "type": const("Attribute"),
                        "attributeName": STRING,
                        "attributeTypes": array(STRING),
                    },
                    required=("id", "type", "attributeName"),
                )
            ),
        },
        required=("id", "type", "typeName", "entityCount", "attributeDetails"),
    ),
    "AttributeList": obj(
        {"id": URI, "type": const("AttributeList"), "attributeList": array(STRING)},
        required=("id", "type", "attributeList"),
    ),
    "AttributeInfo": obj(
        {
            "id": URI,
            "type": const("Attribute"),
            "attributeName": STRING,
            "attributeCount": INTEGER,
            "attributeTypes": array(STRING),
            "typeNames": array(STRING),
        },
        required=("id", "type", "attributeName"),
    ),
    "ContextDocument": obj(
        {"@context": ref("LdContext")},
        required=("@context",),
        description="A JSON-LD document whose @context the hub hosts (clause 5.13.2).",
    ),
    "ContextDetails": obj(
        {
            "URL": URI,
            "localId": STRING,
            "kind": enum(*CONTEXT_KINDS),
            "createdAt": DATE_TIME,
            "lastUsage": DATE_TIME,
            "numberOfHits": INTEGER,
            "extraInfo": {"type": "object"},
        },
        required=("URL", "localId", "kind"),
        description="What the hub knows about one stored @context (clause 5.13.3).",
    ),
    "Health": obj(
        {
            "status": const("ok"),
            "version": STRING,
            "uptimeSeconds": {"type": "number", "minimum": 0},
            "tenants": INTEGER,
        },
        required=("status", "version"),
    ),
}

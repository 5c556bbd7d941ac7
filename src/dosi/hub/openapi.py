"""The OpenAPI 3.0 description of the routes the hub serves, at GET /openapi.json.

Built from tables: parameters, error responses and operations are each
declared once and referenced by name, so adding a route is one `_op(...)`
line. The document does not change within a process; only the `servers`
entry depends on the hub's public URL, so everything else is built once.
Body schemas live in `openapi_schemas`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from dosi import __version__
from dosi.hub.openapi_schemas import (
    CONTEXT_KINDS,
    GEOMETRY_TYPES,
    GEOREL,
    NAME,
    SCHEMAS,
    STRING,
    URI,
    Json,
    array,
    enum,
    ref,
)
from dosi.hub.subscriptions.openapi import (
    SUBSCRIPTION_PARAMETERS,
    SUBSCRIPTION_SCHEMAS,
    subscription_operations,
)
from dosi.hub.temporal.openapi import TEMPORAL_PARAMETERS, TEMPORAL_SCHEMAS, temporal_operations
from dosi.ngsi.problems import PROBLEM

API = "/ngsi-ld/v1"
JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"

BOOLEAN: Json = {"type": "boolean"}
LINK: Json = {"type": "string", "pattern": '^<[^<>]+>(; *[A-Za-z]+="[^"]*")*$'}
TENANT: Json = {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,128}$"}
VIEW_OPTIONS = ("sysAttrs", "keyValues", "concise", "normalized", "simplified")
FORMATS = ("normalized", "concise", "keyValues", "simplified")


def _list(items: Json) -> Json:
    return array(items, min_items=1)


# --- parameters: component name -> (wire name, location, schema, description) ----------------

_PARAMETERS: dict[str, tuple[str, str, Json, str]] = {
    "entityId": ("entityId", "path", URI, "Id of the entity (a URI, percent-encoded)"),
    "attrId": ("attrId", "path", NAME, "Attribute name: a term of the @context or an IRI"),
    "typeName": ("type", "path", NAME, "Entity type: a term of the @context or an IRI"),
    "attrName": ("attrId", "path", NAME, "Attribute name: a term of the @context or an IRI"),
    "contextId": ("contextId", "path", NAME, "Local id (or URL) of a stored @context"),
    "Link": ("Link", "header", LINK, "JSON-LD @context link (rel=json-ld#context)"),
    "NGSILD-Tenant": ("NGSILD-Tenant", "header", TENANT, "Tenant; absent means the default"),
    "id": ("id", "query", _list(URI), "Entity ids, comma-separated"),
    "idPattern": ("idPattern", "query", STRING, "Regular expression over entity ids (RE2)"),
    "type": ("type", "query", NAME, "Entity type selection (clause 4.17)"),
    "attrs": ("attrs", "query", _list(NAME), "Attribute names to match and return"),
    "pick": ("pick", "query", _list(NAME), "Entity members to keep in the response"),
    "omit": ("omit", "query", _list(NAME), "Entity members to drop from the response"),
    "q": ("q", "query", STRING, "Query language filter (clause 4.9)"),
    "scopeQ": ("scopeQ", "query", STRING, "Scope query (clause 4.19)"),
    "georel": ("georel", "query", GEOREL, "Geo-relationship (clause 4.10)"),
    "geometry": (
        "geometry",
        "query",
        enum(*GEOMETRY_TYPES),
        "Geometry of a geo-query (clause 4.10)",
    ),
    "coordinates": ("coordinates", "query", STRING, "Geo-query coordinates as JSON"),
    "geoproperty": ("geoproperty", "query", NAME, "GeoProperty a geo-query applies to"),
    "geometryProperty": ("geometryProperty", "query", NAME, "GeoProperty of GeoJSON output"),
    "limit": (
        "limit",
        "query",
        {"type": "integer", "minimum": 0, "maximum": 1000},
        "Page size; 0 only with count=true",
    ),
    "offset": ("offset", "query", {"type": "integer", "minimum": 0}, "Entities to skip"),
    "count": ("count", "query", BOOLEAN, "Return the total in NGSILD-Results-Count"),
    "local": ("local", "query", BOOLEAN, "Allow a query without any filter"),
    "options": ("options", "query", _list(enum(*VIEW_OPTIONS)), "Representation options"),
    "appendOptions": ("options", "query", _list(enum("noOverwrite")), "Keep existing attributes"),
    "updateOptions": ("options", "query", enum("noOverwrite"), "Keep existing attributes"),
    "upsertOptions": (
        "options",
        "query",
        enum("replace", "update"),
        "Replace existing entities (default) or update their attributes",
    ),
    "format": ("format", "query", enum(*FORMATS), "Representation of the entities"),
    "lang": ("lang", "query", STRING, "Preferred languages of LanguageProperties"),
    "datasetId": ("datasetId", "query", _list(STRING), "Dataset ids to return; @none = default"),
    "deleteDatasetId": ("datasetId", "query", URI, "Delete only the instance with this id"),
    "deleteAll": ("deleteAll", "query", BOOLEAN, "Delete every instance of the attribute"),
    "details": ("details", "query", BOOLEAN, "Return details instead of names"),
    "kind": ("kind", "query", enum(*CONTEXT_KINDS), "Only @contexts of this kind"),
    "reload": ("reload", "query", BOOLEAN, "Download a cached @context again"),
}
_PARAMETERS.update(TEMPORAL_PARAMETERS)
_PARAMETERS.update(SUBSCRIPTION_PARAMETERS)


def _parameter(key: str) -> Json:
    name, location, schema, description = _PARAMETERS[key]
    out: Json = {"name": name, "in": location, "description": description, "schema": schema}
    if location == "path":
        out["required"] = True
    if schema.get("type") == "array":
        out["style"] = "form"
        out["explode"] = False
    return out


HEADERS = ("Link", "NGSILD-Tenant")
VIEW = ("attrs", "pick", "omit", "options", "format", "lang", "datasetId", "geometryProperty")
FILTER = ("id", "idPattern", "type", "q", "scopeQ", "georel", "geometry", "coordinates")
PAGE = ("limit", "offset", "count")


# --- responses ---------------------------------------------------------------------------------

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "InvalidRequest or BadRequestData"),
    403: ("TooManyResults", "TooManyResults: limit is above the hub's maximum page size"),
    404: ("NotFound", "ResourceNotFound or NonexistentTenant"),
    406: ("NotAcceptable", "No acceptable representation"),
    409: ("Conflict", "AlreadyExists"),
    413: ("PayloadTooLarge", "The body exceeds the hub's limit"),
    415: ("UnsupportedMediaType", "The body is not JSON or JSON-LD"),
    422: ("Unprocessable", "OperationNotSupported"),
    503: ("ContextUnavailable", "LdContextNotAvailable: an @context could not be retrieved"),
}


def _error_response(description: str) -> Json:
    return {"description": description, "content": {PROBLEM: {"schema": ref("ProblemDetails")}}}


def _content(schema: Json, media: Iterable[str] = (JSON, JSON_LD)) -> Json:
    return {m: {"schema": schema} for m in media}


_HEADER_DOCS: dict[str, str] = {
    "Location": "URL of the created resource",
    "NGSILD-Results-Count": "Total number of matches (with count=true)",
    "Link": "@context of the body, and next/prev pages of a query",
}


def _response(description: str, content: Json | None = None, *headers: str) -> Json:
    out: Json = {"description": description}
    if content:
        out["content"] = content
    if headers:
        out["headers"] = {h: {"description": _HEADER_DOCS[h], "schema": STRING} for h in headers}
    return out


def _ok(description: str, schema: Json, media: Iterable[str] = (JSON, JSON_LD)) -> Json:
    return _response(description, _content(schema, media))


def _ngsi(description: str, schema: Json) -> Json:
    """An NGSI-LD body as JSON (its @context in a Link header) or JSON-LD (inline)."""
    return _response(description, _content(schema), "Link")


def _entities(description: str, *, one: bool, headers: Iterable[str] = ()) -> Json:
    """Entities as JSON, JSON-LD or GeoJSON (Accept decides)."""
    entity = ref("EntityOutput")
    content = {
        **_content(entity if one else array(entity)),
        GEO_JSON: {"schema": ref("Feature" if one else "FeatureCollection")},
    }
    return _response(description, content, "Link", *headers)


NO_CONTENT = _response("Done; nothing to return")
CREATED = _response("Created", None, "Location")
PARTIAL = _ok("Some changes were not applied", ref("UpdateResult"), (JSON,))
BATCH_RESULT = _ok("Some entities failed; see errors", ref("BatchOperationResult"), (JSON,))
CREATED_IDS = _ok("All entities created; their ids", array(URI), (JSON,))
QUERY_RESULT = _entities("Matching entities", one=False, headers=("NGSILD-Results-Count",))


# --- operations --------------------------------------------------------------------------------


# JSON bodies take their @context from the Link header, JSON-LD bodies carry it inline.
_WITH_CONTEXT: Json = {"required": ["@context"]}
_WITHOUT_CONTEXT: Json = {"not": _WITH_CONTEXT}


def _body(schema: str, *, merge_patch: bool = False, many: bool = False) -> Json:
    def shape(rule: Json) -> Json:
        item = {"allOf": [ref(schema), rule]}
        return array(item, min_items=1) if many else item

    content = {JSON: {"schema": shape(_WITHOUT_CONTEXT)}, JSON_LD: {"schema": shape(_WITH_CONTEXT)}}
    if merge_patch:
        content[MERGE_PATCH] = content[JSON]
    return {"required": True, "content": content}


def _op(
    operation_id: str,
    summary: str,
    tag: str,
    *,
    params: Iterable[str] = HEADERS,
    body: Json | None = None,
    ok: Mapping[int, Json],
    errors: Iterable[int] = (400,),
) -> Json:
    responses: Json = {str(status): response for status, response in ok.items()}
    if "limit" in params:  # a page larger than the hub serves is refused, not cut
        errors = (*errors, 403)
    for status in errors:
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    out: Json = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
        "responses": responses,
    }
    if body is not None:
        out["requestBody"] = body
    return out


# Every NGSI-LD operation negotiates Accept (406) and resolves an @context (503).
READ_ERRORS = (400, 404, 406, 503)
WRITE_ERRORS = (400, 404, 406, 413, 415, 503)
BATCH_ERRORS = (400, 406, 413, 415, 503)
ENT, ATTR, BATCH, DISC, CTX, OPS = (
    "Entities",
    "Attributes",
    "Batch operations",
    "Discovery",
    "@context",
    "Operations",
)


def _operations() -> dict[str, dict[str, Json]]:
    entity = f"{API}/entities/{{entityId}}"
    attrs = f"{entity}/attrs"
    batch = f"{API}/entityOperations"
    contexts = f"{API}/jsonldContexts"
    with_id = ("entityId", *HEADERS)
    with_attr = ("entityId", "attrId", *HEADERS)
    batch_created = {201: CREATED_IDS, 207: BATCH_RESULT}
    batch_done = {204: NO_CONTENT, 207: BATCH_RESULT}
    return {
        f"{API}/entities": {
            "post": _op(
                "createEntity",
                "Create Entity (clause 5.6.1)",
                ENT,
                body=_body("Entity"),
                ok={201: CREATED},
                errors=(400, 406, 409, 413, 415, 503),
            ),
            "get": _op(
                "queryEntities",
                "Query Entities (clause 5.7.2)",
                ENT,
                params=(*FILTER, "geoproperty", "local", *VIEW, *PAGE, *HEADERS),
                ok={200: QUERY_RESULT},
                errors=READ_ERRORS,
            ),
        },
        entity: {
            "get": _op(
                "retrieveEntity",
                "Retrieve Entity (clause 5.7.1)",
                ENT,
                params=("entityId", *VIEW, *HEADERS),
                ok={200: _entities("The entity", one=True)},
                errors=READ_ERRORS,
            ),
            "put": _op(
                "replaceEntity",
                "Replace Entity (clause 5.6.18)",
                ENT,
                params=with_id,
                body=_body("EntityFragment"),
                ok={204: NO_CONTENT},
                errors=WRITE_ERRORS,
            ),
            "patch": _op(
                "mergeEntity",
                "Merge Entity (clause 5.6.17)",
                ENT,
                params=with_id,
                body=_body("EntityFragment", merge_patch=True),
                ok={204: NO_CONTENT},
                errors=WRITE_ERRORS,
            ),
            "delete": _op(
                "deleteEntity",
                "Delete Entity (clause 5.6.6)",
                ENT,
                params=with_id,
                ok={204: NO_CONTENT},
                errors=READ_ERRORS,
            ),
        },
        attrs: {
            "post": _op(
                "appendAttrs",
                "Append Entity Attributes (clause 5.6.3)",
                ATTR,
                params=("entityId", "appendOptions", *HEADERS),
                body=_body("EntityFragment"),
                ok={204: NO_CONTENT, 207: PARTIAL},
                errors=WRITE_ERRORS,
            ),
            "patch": _op(
                "updateAttrs",
                "Update Entity Attributes (clause 5.6.2)",
                ATTR,
                params=with_id,
                body=_body("EntityFragment"),
                ok={204: NO_CONTENT, 207: PARTIAL},
                errors=WRITE_ERRORS,
            ),
        },
        f"{attrs}/{{attrId}}": {
            "patch": _op(
                "partialAttrUpdate",
                "Partial Attribute Update (clause 5.6.4)",
                ATTR,
                params=with_attr,
                body=_body("AttributePatch", merge_patch=True),
                ok={204: NO_CONTENT},
                errors=WRITE_ERRORS,
            ),
            "put": _op(
                "replaceAttr",
                "Replace Attribute (clause 5.6.19)",
                ATTR,
                params=with_attr,
                body=_body("AttributeReplacement"),
                ok={204: NO_CONTENT},
                errors=WRITE_ERRORS,
            ),
            "delete": _op(
                "deleteAttr",
                "Delete Attribute (clause 5.6.5)",
                ATTR,
                params=("entityId", "attrId", "deleteDatasetId", "deleteAll", *HEADERS),
                ok={204: NO_CONTENT},
                errors=READ_ERRORS,
            ),
        },
        f"{batch}/create": {
            "post": _op(
                "batchCreate",
                "Batch Entity Creation (clause 5.6.7)",
                BATCH,
                body=_body("Entity", many=True),
                ok=batch_created,
                errors=BATCH_ERRORS,
            )
        },
        f"{batch}/upsert": {
            "post": _op(
                "batchUpsert",
                "Batch Entity Creation or Update (clause 5.6.8)",
                BATCH,
                params=("upsertOptions", *HEADERS),
                body=_body("Entity", many=True),
                ok={**batch_created, 204: NO_CONTENT},
                errors=BATCH_ERRORS,
            )
        },
        f"{batch}/update": {
            "post": _op(
                "batchUpdate",
                "Batch Entity Update (clause 5.6.9)",
                BATCH,
                params=("updateOptions", *HEADERS),
                body=_body("EntityUpdate", many=True),
                ok=batch_done,
                errors=BATCH_ERRORS,
            )
        },
        f"{batch}/delete": {
            "post": _op(
                "batchDelete",
                "Batch Entity Delete (clause 5.6.10)",
                BATCH,
                body={"required": True, "content": _content(array(URI, min_items=1), (JSON,))},
                ok=batch_done,
                errors=BATCH_ERRORS,
            )
        },
        f"{batch}/merge": {
            "post": _op(
                "batchMerge",
                "Batch Entity Merge (clause 5.6.20)",
                BATCH,
                body=_body("EntityUpdate", many=True),
                ok=batch_done,
                errors=BATCH_ERRORS,
            )
        },
        f"{batch}/query": {
            "post": _op(
                "queryBatch",
                "Query Entities via POST (clause 5.7.2)",
                BATCH,
                params=(*[p for p in VIEW if p != "attrs"], *PAGE, *HEADERS),
                body=_body("Query"),
                ok={200: QUERY_RESULT},
                errors=WRITE_ERRORS,
            )
        },
        f"{API}/types": {
            "get": _op(
                "retrieveTypes",
                "Retrieve Available Entity Types (clauses 5.7.5, 5.7.6)",
                DISC,
                params=("details", *HEADERS),
                ok={
                    200: _ngsi(
                        "Type names, or details of each type with details=true",
                        {"anyOf": [ref("EntityTypeList"), array(ref("EntityType"))]},
                    )
                },
                errors=READ_ERRORS,
            )
        },
        f"{API}/types/{{type}}": {
            "get": _op(
                "retrieveTypeInfo",
                "Retrieve Available Entity Type Information (clause 5.7.7)",
                DISC,
                params=("typeName", *HEADERS),
                ok={200: _ngsi("About this type", ref("EntityTypeInfo"))},
                errors=READ_ERRORS,
            )
        },
        f"{API}/attributes": {
            "get": _op(
                "retrieveAttributes",
                "Retrieve Available Attributes (clauses 5.7.8, 5.7.9)",
                DISC,
                params=("details", *HEADERS),
                ok={
                    200: _ngsi(
                        "Attribute names, or details of each with details=true",
                        {"anyOf": [ref("AttributeList"), array(ref("AttributeInfo"))]},
                    )
                },
                errors=READ_ERRORS,
            )
        },
        f"{API}/attributes/{{attrId}}": {
            "get": _op(
                "retrieveAttrInfo",
                "Retrieve Available Attribute Information (clause 5.7.10)",
                DISC,
                params=("attrName", *HEADERS),
                ok={200: _ngsi("About this attribute", ref("AttributeInfo"))},
                errors=READ_ERRORS,
            )
        },
        contexts: {
            "post": _op(
                "addContext",
                "Add @context (clause 5.13.2)",
                CTX,
                params=(),
                body={"required": True, "content": _content(ref("ContextDocument"))},
                ok={201: CREATED},
                errors=(400, 409, 413, 415),
            ),
            "get": _op(
                "listContexts",
                "List @contexts (clause 5.13.3)",
                CTX,
                params=("details", "kind"),
                ok={
                    200: _ok(
                        "Their URLs, or details with details=true",
                        {"anyOf": [array(URI), array(ref("ContextDetails"))]},
                        (JSON,),
                    )
                },
            ),
        },
        f"{contexts}/{{contextId}}": {
            "get": _op(
                "serveContext",
                "Serve @context (clause 5.13.4)",
                CTX,
                params=("contextId", "details"),
                ok={
                    200: {
                        "description": "The @context document, or its details with details=true",
                        "content": {
                            JSON_LD: {"schema": ref("ContextDocument")},
                            JSON: {"schema": ref("ContextDetails")},
                        },
                    }
                },
                errors=(400, 404),
            ),
            "delete": _op(
                "deleteContext",
                "Delete and Reload @context (clause 5.13.5)",
                CTX,
                params=("contextId", "reload"),
                ok={204: NO_CONTENT},
                errors=(400, 404, 503),
            ),
        },
        **temporal_operations(),
        **subscription_operations(),
        "/health": {
            "get": _op(
                "health",
                "Liveness and basic facts (dosi extension)",
                OPS,
                params=(),
                ok={200: _ok("The hub is up", ref("Health"), (JSON,))},
                errors=(),
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Prometheus metrics (dosi extension)",
                OPS,
                params=(),
                ok={200: _ok("Text exposition format", STRING, ("text/plain",))},
                errors=(),
            )
        },
        "/openapi.json": {
            "get": _op(
                "openapi",
                "This OpenAPI document (dosi extension)",
                OPS,
                params=(),
                ok={200: _ok("OpenAPI 3.0 document", {"type": "object"}, (JSON,))},
                errors=(),
            )
        },
    }


@cache
def _static() -> Json:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "dosi NGSI-LD hub",
            "version": __version__,
            "description": (
                "NGSI-LD context broker API (ETSI GS CIM 009 V1.8.1) as served by dosi. "
                "Clause numbers in summaries refer to that specification."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "tags": [{"name": t} for t in (ENT, ATTR, BATCH, DISC, CTX, OPS)],
        "paths": _operations(),
        "components": {
            "schemas": {**SCHEMAS, **TEMPORAL_SCHEMAS, **SUBSCRIPTION_SCHEMAS},
            "parameters": {key: _parameter(key) for key in _PARAMETERS},
            "responses": {
                name: _error_response(description) for name, description in _ERRORS.values()
            },
        },
    }


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document; shared parts are cached, so treat it as read-only."""
    return {**_static(), "servers": [{"url": base_url.rstrip("/") or "/"}]}

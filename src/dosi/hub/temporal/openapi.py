"""The temporal API's part of the OpenAPI document (merged in by hub/openapi.py).

Parameters and schemas are plain tables; the operations are built with
hub/openapi.py's helpers, imported when the document is built (that module
imports this one).
"""

from __future__ import annotations

from typing import Any

from dosi.hub.openapi_schemas import (
    ANY,
    DATE_TIME,
    NAME,
    STRING,
    URI,
    Json,
    array,
    const,
    enum,
    obj,
    ref,
)
from dosi.hub.temporal.params import AGGR_METHODS, TIMERELS

TAG = "Temporal"
_BOOL: Json = {"type": "boolean"}
_TIME_PROPERTIES = ("observedAt", "createdAt", "modifiedAt", "deletedAt")
_OPTIONS = ("temporalValues", "aggregatedValues", "sysAttrs", "concise", "normalized")
_FORMATS = ("normalized", "concise", "temporalValues", "aggregatedValues")

TEMPORAL_PARAMETERS: dict[str, tuple[str, str, Json, str]] = {
    "instanceId": ("instanceId", "path", URI, "instanceId of an attribute instance"),
    "timerel": ("timerel", "query", enum(*TIMERELS), "Temporal relation to timeAt (clause 4.11)"),
    "timeAt": ("timeAt", "query", DATE_TIME, "DateTime the relation refers to"),
    "endTimeAt": ("endTimeAt", "query", DATE_TIME, "End of the window for timerel=between"),
    "timeproperty": (
        "timeproperty",
        "query",
        enum(*_TIME_PROPERTIES),
        "Temporal property the window applies to (default observedAt)",
    ),
    "lastN": ("lastN", "query", {"type": "integer", "minimum": 1}, "Newest N instances each"),
    "aggrMethods": (
        "aggrMethods",
        "query",
        array(enum(*AGGR_METHODS), min_items=1),
        "Aggregation methods (with aggregatedValues)",
    ),
    "aggrPeriodDuration": (
        "aggrPeriodDuration",
        "query",
        STRING,
        "ISO 8601 duration of each aggregation period; absent: the whole window",
    ),
    "temporalOptions": (
        "options",
        "query",
        array(enum(*_OPTIONS), min_items=1),
        "Temporal representation options",
    ),
    "temporalFormat": ("format", "query", enum(*_FORMATS), "Temporal representation"),
    "deleteAllInstances": ("deleteAll", "query", _BOOL, "Delete the instances of every dataset"),
}

_TEMPORAL_QUERY = obj(
    {
        "timerel": enum(*TIMERELS),
        "timeAt": DATE_TIME,
        "endTimeAt": DATE_TIME,
        "timeproperty": enum(*_TIME_PROPERTIES),
        "lastN": {"type": "integer", "minimum": 1},
        "aggrMethods": array(enum(*AGGR_METHODS), min_items=1),
        "aggrPeriodDuration": STRING,
    },
    description="A temporal query (clause 5.2.21).",
)
_INSTANCES = {
    "anyOf": [
        ref("AttributeInstance"),
        array(ref("AttributeInstance"), min_items=1),
        {"description": "simplified temporal form (clause 4.5.9)", "type": "object"},
    ]
}
_TEMPORAL_MEMBERS: dict[str, Json] = {
    "id": URI,
    "type": {"anyOf": [NAME, array(NAME, min_items=1)]},
    "scope": ANY,
    "@context": ref("LdContext"),
}

TEMPORAL_SCHEMAS: dict[str, Json] = {
    "TemporalQuery": _TEMPORAL_QUERY,
    "EntityTemporal": obj(
        _TEMPORAL_MEMBERS,
        required=("id",),
        additional=_INSTANCES,
        description="A temporal entity: each attribute an array of instances (clause 5.2.20).",
    ),
    "EntityTemporalFragment": obj(
        _TEMPORAL_MEMBERS,
        additional=_INSTANCES,
        description="Attribute instances to add, or the members of one instance to change.",
    ),
    "EntityTemporalOutput": obj(
        {**_TEMPORAL_MEMBERS, "id": URI},
        additional=ANY,
        description="A temporal entity as rendered: normalized, concise, temporalValues or "
        "aggregatedValues.",
    ),
    "QueryTemporal": obj(
        {
            "type": const("Query"),
            "entities": array(ref("EntitySelector"), min_items=1),
            "attrs": array(NAME, min_items=1),
            "q": STRING,
            "scopeQ": STRING,
            "geoQ": ref("GeoQuery"),
            "lang": STRING,
            "temporalQ": ref("TemporalQuery"),
            "@context": ref("LdContext"),
        },
        description="A temporal query in a body (clause 5.2.23).",
    )
    | {"anyOf": [{"required": [k]} for k in ("entities", "attrs", "q", "scopeQ", "geoQ")]},
}

_WINDOW = ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN")
_SHAPE = ("aggrMethods", "aggrPeriodDuration", "temporalOptions", "temporalFormat", "lang")


def temporal_operations() -> dict[str, dict[str, Any]]:
    from dosi.hub import openapi as api

    base = f"{api.API}/temporal"
    entity = f"{base}/entities/{{entityId}}"
    attr = f"{entity}/attrs/{{attrId}}"
    headers = api.HEADERS

    def answer(description: str, schema: Json) -> Json:
        """A partial answer (clause 6.3.10): what it covers is in Content-Range."""
        out = api._ngsi(description, schema)
        cover = {"description": "date-time <start>-<end>/<size>", "schema": STRING}
        out["headers"] = {**out.get("headers", {}), "Content-Range": cover}
        return out

    many = array(ref("EntityTemporalOutput"))
    one = ref("EntityTemporalOutput")
    query_ok = {
        200: api._ngsi("Matching temporal entities", many),
        206: answer("Some instances left out (lastN or the hub's cap)", many),
    }
    read_errors = api.READ_ERRORS
    write_errors = api.WRITE_ERRORS
    body = api._body
    no_content = api.NO_CONTENT
    op = api._op
    return {
        f"{base}/entities": {
            "post": op(
                "upsertTemporal",
                "Create or Update Temporal Representation (clause 5.6.11)",
                TAG,
                body=body("EntityTemporal"),
                ok={201: api.CREATED, 204: no_content},
                errors=(400, 406, 413, 415, 503),
            ),
            "get": op(
                "queryTemporal",
                "Query Temporal Evolution of Entities (clause 5.7.4)",
                TAG,
                params=(
                    *api.FILTER,
                    "geoproperty",
                    "attrs",
                    "local",
                    *_WINDOW,
                    *_SHAPE,
                    *api.PAGE,
                    *headers,
                ),
                ok=query_ok,
                errors=read_errors,
            ),
        },
        f"{base}/entityOperations/query": {
            "post": op(
                "queryTemporalPost",
                "Query Temporal Evolution of Entities via POST (clause 5.7.4)",
                TAG,
                params=(*_SHAPE, "lastN", *api.PAGE, *headers),
                body=body("QueryTemporal"),
                ok=query_ok,
                errors=write_errors,
            )
        },
        entity: {
            "get": op(
                "retrieveTemporal",
                "Retrieve Temporal Evolution of an Entity (clause 5.7.3)",
                TAG,
                params=("entityId", "attrs", *_WINDOW, *_SHAPE, *headers),
                ok={
                    200: api._ngsi("The temporal entity", one),
                    206: answer("Some instances left out", one),
                },
                errors=read_errors,
            ),
            "delete": op(
                "deleteTemporal",
                "Delete Temporal Representation of an Entity (clause 5.6.16)",
                TAG,
                params=("entityId", *headers),
                ok={204: no_content},
                errors=read_errors,
            ),
        },
        f"{entity}/attrs": {
            "post": op(
                "appendAttrsTemporal",
                "Add Attributes to Temporal Representation of an Entity (clause 5.6.12)",
                TAG,
                params=("entityId", *headers),
                body=body("EntityTemporalFragment"),
                ok={204: no_content},
                errors=write_errors,
            )
        },
        attr: {
            "delete": op(
                "deleteAttrTemporal",
                "Delete Attribute from Temporal Representation of an Entity (clause 5.6.13)",
                TAG,
                params=("entityId", "attrId", "deleteDatasetId", "deleteAllInstances", *headers),
                ok={204: no_content},
                errors=read_errors,
            )
        },
        f"{attr}/{{instanceId}}": {
            "patch": op(
                "updateAttrInstanceTemporal",
                "Modify Attribute instance in Temporal Representation of an Entity (clause 5.6.14)",
                TAG,
                params=("entityId", "attrId", "instanceId", *headers),
                body=body("EntityTemporalFragment"),
                ok={204: no_content},
                errors=write_errors,
            ),
            "delete": op(
                "deleteAttrInstanceTemporal",
                "Delete Attribute instance from Temporal Representation of an Entity "
                "(clause 5.6.15)",
                TAG,
                params=("entityId", "attrId", "instanceId", *headers),
                ok={204: no_content},
                errors=read_errors,
            ),
        },
    }

"""A query given as a JSON body (POST /entityOperations/query, temporal query) -> filter."""

from __future__ import annotations

from dataclasses import replace as dc_replace
from typing import Any

from dosi.hub.query import EntityFilter, compile_pattern, parse_filter
from dosi.ngsi.context import Context
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geo import parse_geoquery
from dosi.ngsi.typeexpr import compile_types
from dosi.ngsi.values import require_uri


def filter_from_body(body: dict[str, Any], ctx: Context) -> EntityFilter:
    """The query of a POST body (clause 5.2.23 Query): entities, attrs, q, scopeQ, geoQ."""
    params: dict[str, Any] = {}
    for key in ("q", "scopeQ"):
        if key in body:
            if not isinstance(body[key], str):
                raise BadRequestData(f"{key} must be a string")
            params[key] = body[key]
    if "attrs" in body:
        attrs = body["attrs"]
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            raise BadRequestData("attrs must be an array of attribute names")
        params["attrs"] = ",".join(attrs)
    geo = None
    if "geoQ" in body:
        geo_q = body["geoQ"]
        if not isinstance(geo_q, dict):
            raise BadRequestData("geoQ must be an object")
        geo = parse_geoquery(
            geo_q.get("georel"),
            geo_q.get("geometry"),
            geo_q.get("coordinates"),
            geo_q.get("geoproperty"),
        )
    selectors = body.get("entities")
    base = parse_filter(params, ctx, geo=geo)
    if selectors is None:
        if base.is_empty:
            raise BadRequestData("a query needs entities, attrs, q, scopeQ or geoQ")
        return base
    if not isinstance(selectors, list) or not selectors:
        raise BadRequestData("entities must be a non-empty array of selectors")
    return _with_selectors(base, [_selector(s, ctx) for s in selectors])


def _selector(raw: Any, ctx: Context) -> EntityFilter:
    if not isinstance(raw, dict):
        raise BadRequestData("each entities selector must be an object")
    ids = frozenset([require_uri(raw["id"], "id")]) if "id" in raw else None
    pattern = compile_pattern(raw["idPattern"]) if "idPattern" in raw else None
    types = compile_types(raw["type"], ctx.expand) if "type" in raw else None
    if ids is None and pattern is None and types is None:
        raise BadRequestData("an entities selector needs id, idPattern or type")
    return EntityFilter(ids=ids, id_pattern=pattern, types=types)


def _with_selectors(base: EntityFilter, selectors: list[EntityFilter]) -> EntityFilter:
    if len(selectors) == 1:
        s = selectors[0]
        return dc_replace(base, ids=s.ids, id_pattern=s.id_pattern, types=s.types)
    return dc_replace(base, selectors=tuple(selectors))

"""Query parameters and POST query bodies -> a store `Selection` and a render `View`.

One translation for GET /entities, POST /entityOperations/query and
GET /entities/{id}, so every entry point filters and projects alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import re2

from dosi.hub.store.base import Prefilter, Selection
from dosi.ngsi.context import Context
from dosi.ngsi.errors import BadRequestData, TooManyResults
from dosi.ngsi.geo import GeoQuery, parse_geoquery
from dosi.ngsi.model import ENTITY_RESERVED, LOCATION, Entity
from dosi.ngsi.qlang import CompiledQ, compile_q
from dosi.ngsi.qlang_ast import And, Range, Term, Value
from dosi.ngsi.render import CONCISE, NORMALIZED, SIMPLIFIED, View
from dosi.ngsi.scopeq import compile_scope
from dosi.ngsi.typeexpr import compile_types
from dosi.ngsi.values import require_uri

MAX_PATTERN = 1024
_FORMATS = {
    "normalized": NORMALIZED,
    "concise": CONCISE,
    "keyValues": SIMPLIFIED,
    "simplified": SIMPLIFIED,
}
_OPTIONS = {
    "sysAttrs",
    "keyValues",
    "concise",
    "normalized",
    "simplified",
    "noOverwrite",
    "replace",
    "update",
}


@dataclass(frozen=True)
class EntityFilter:
    """Everything that decides whether an entity matches, before paging."""

    ids: frozenset[str] | None = None
    id_pattern: Any = None  # compiled re2 pattern
    types: Any = None  # TypeFilter
    attrs: frozenset[str] | None = None
    q: Any = None  # CompiledQ
    scope: Any = None  # ScopeFilter
    geo: GeoQuery | None = None
    geo_property: str = LOCATION
    # POST query's `entities`: several id/idPattern/type selectors, any may match.
    selectors: tuple[EntityFilter, ...] | None = None
    # Numeric bounds q implies, for a backend's attribute-value index (see value_bounds).
    values: tuple[tuple[str, str, float], ...] = ()

    @property
    def is_empty(self) -> bool:
        return all(
            getattr(self, name) is None
            for name in ("ids", "id_pattern", "types", "attrs", "q", "scope", "geo", "selectors")
        )

    def prefilter(self) -> Prefilter:
        ids = self.ids
        types = self.types.mentioned if self.types is not None else None
        if self.selectors is not None:
            if all(s.ids is not None for s in self.selectors):
                ids = frozenset().union(*(s.ids or () for s in self.selectors))
            if all(s.types is not None for s in self.selectors):
                types = frozenset().union(*(s.types.mentioned for s in self.selectors))
        bbox = self.geo.prefilter_bbox() if self.geo is not None else None
        near = None
        geo = self.geo
        if geo is not None and geo.georel == "near" and bbox and geo.geometry["type"] == "Point":
            lon, lat = geo.geometry["coordinates"][:2]
            near = (float(lon), float(lat))
        return Prefilter(
            ids=ids,
            types=types,
            bbox=bbox,
            geo_property=self.geo_property if bbox is not None else None,
            near=near,
            values=self.values,
        )

    def predicate(self) -> Callable[[Entity], bool] | None:
        checks: list[Callable[[Entity], bool]] = []
        if self.selectors is not None:
            alternatives = [s.identity_check() for s in self.selectors]
            checks.append(lambda e: any(alt(e) for alt in alternatives))
        if self.id_pattern is not None:
            pattern = self.id_pattern
            checks.append(lambda e: pattern.search(e["id"]) is not None)
        if self.types is not None and not self.types.is_simple_union:
            types = self.types
            checks.append(lambda e: bool(types.matches(e.get("type", ()))))
        if self.attrs is not None:
            attrs = self.attrs
            checks.append(lambda e: any(a in e for a in attrs))
        if self.scope is not None:
            scope = self.scope
            checks.append(lambda e: bool(scope.matches(e.get("scope", ()))))
        if self.geo is not None and self.geo.georel != "near":  # near: see key_range
            geo, prop = self.geo, self.geo_property
            checks.append(
                lambda e: any(
                    inst.get("type") == "GeoProperty" and geo.matches(inst["value"])
                    for inst in e.get(prop, ())
                )
            )
        # q last: the checks above are cheaper and reject more.
        if self.q is not None:
            q = self.q
            checks.append(lambda e: bool(q.matches(e)))
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda e: first(e) and second(e)
        return lambda e: all(check(e) for check in checks)

    def identity_check(self) -> Callable[[Entity], bool]:
        """id, idPattern and type alone, exactly (for one selector among several)."""
        ids, pattern, types = self.ids, self.id_pattern, self.types

        def check(entity: Entity) -> bool:
            if ids is not None and entity["id"] not in ids:
                return False
            if pattern is not None and pattern.search(entity["id"]) is None:
                return False
            return types is None or bool(types.matches(entity.get("type", ())))

        return check

    def key_range(self) -> tuple[float, float] | None:
        """near's distance bounds, applied to the order key instead of a second predicate."""
        if self.geo is None or self.geo.georel != "near":
            return None
        low = self.geo.min_distance if self.geo.min_distance is not None else 0.0
        high = self.geo.max_distance if self.geo.max_distance is not None else math.inf
        return (float(low), float(high))

    def order_key(self) -> Callable[[Entity], float] | None:
        if self.geo is None or self.geo.georel != "near":
            return None
        geo, prop = self.geo, self.geo_property

        def distance(entity: Entity) -> float:
            return min(
                (
                    geo.distance(i["value"])
                    for i in entity.get(prop, ())
                    if i.get("type") == "GeoProperty"
                ),
                default=float("inf"),
            )

        return distance


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise BadRequestData("an empty list is not a valid parameter value")
    return items


def parse_filter(
    params: Mapping[str, Any], ctx: Context, *, geo: GeoQuery | None = None
) -> EntityFilter:
    """From GET-style parameters (strings) — also used for POST query bodies after adaptation."""
    ids = split_list(params.get("id"))
    id_set = frozenset(require_uri(i, "id") for i in ids) if ids is not None else None
    id_pattern = None
    if params.get("idPattern") is not None:
        id_pattern = compile_pattern(params["idPattern"])
    types = None
    if params.get("type") is not None:
        types = compile_types(params["type"], ctx.expand)
    attrs = expand_names(params.get("attrs"), ctx)
    q = compile_q(params["q"], ctx.expand) if params.get("q") is not None else None
    scope = compile_scope(params["scopeQ"]) if params.get("scopeQ") is not None else None
    if geo is None:
        geo = parse_geoquery(
            params.get("georel"),
            params.get("geometry"),
            params.get("coordinates"),
            params.get("geoproperty"),
        )
    geo_property = ctx.expand(geo.geoproperty) if geo is not None else LOCATION
    values = value_bounds(q, ctx.expand) if q is not None else ()
    return EntityFilter(
        id_set, id_pattern, types, attrs, q, scope, geo, geo_property, values=values
    )


# SQL comparisons implied by q's; strict ones widen to inclusive because the index
# holds floats (two large integers may round to one float) and must never miss a match.
_INDEX_OPS = {"==": "=", ">": ">=", ">=": ">=", "<": "<=", "<=": "<="}


def value_bounds(q: CompiledQ, expand: Callable[[str], str]) -> tuple[tuple[str, str, float], ...]:
    """(attribute, operator, number) for each top-level AND term comparing an attribute's
    value with a number: every matching entity has a numeric value satisfying each."""
    node = q.ast
    terms = node.items if isinstance(node, And) else (node,)
    bounds: list[tuple[str, str, float]] = []
    for term in terms:
        if not isinstance(term, Term) or term.negated or term.op not in _INDEX_OPS:
            continue
        path, operand = term.path, term.operand
        if path.subs or path.meta or path.trail:
            continue
        attr = expand(path.attr)
        if isinstance(operand, Value) and operand.kind == "number":
            bounds.append((attr, _INDEX_OPS[term.op], float(operand.value)))  # type: ignore[arg-type]
        elif (
            isinstance(operand, Range)
            and term.op == "=="
            and operand.low.kind == "number"
            and operand.high.kind == "number"
        ):
            bounds.append((attr, ">=", float(operand.low.value)))  # type: ignore[arg-type]
            bounds.append((attr, "<=", float(operand.high.value)))  # type: ignore[arg-type]
    return tuple(bounds)


def compile_pattern(pattern: Any) -> Any:
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        raise BadRequestData(
            f"idPattern must be a regular expression of at most {MAX_PATTERN} characters"
        )
    try:
        return re2.compile(pattern)
    except re2.error as exc:
        raise BadRequestData(f"idPattern is not a valid regular expression: {exc}") from None


def expand_names(value: Any, ctx: Context) -> frozenset[str] | None:
    items = split_list(value) if isinstance(value, str) else value
    if items is None:
        return None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadRequestData("attribute lists must be lists of names")
    return frozenset(ctx.expand(i) for i in items)


def _members(value: str | None, ctx: Context) -> frozenset[str] | None:
    """pick/omit name id/type/scope or attributes: reserved names stay unexpanded."""
    items = split_list(value)
    if items is None:
        return None
    return frozenset(i if i in ENTITY_RESERVED else ctx.expand(i) for i in items)


def parse_view(params: Mapping[str, Any], ctx: Context, *, attrs: frozenset[str] | None) -> View:
    options = set(split_list(params.get("options")) or [])
    unknown = options - _OPTIONS
    if unknown:
        raise BadRequestData(f"unknown options: {', '.join(sorted(unknown))}")
    form = NORMALIZED
    if "keyValues" in options or "simplified" in options:
        form = SIMPLIFIED
    elif "concise" in options:
        form = CONCISE
    fmt = params.get("format")
    if fmt is not None:
        if fmt not in _FORMATS:
            raise BadRequestData(f"format must be normalized, concise or keyValues, got {fmt!r}")
        form = _FORMATS[fmt]
    pick = _members(params.get("pick"), ctx)
    omit = _members(params.get("omit"), ctx)
    if pick is not None and omit is not None:
        raise BadRequestData("pick and omit cannot be used together")
    datasets = split_list(params.get("datasetId"))
    dataset_ids = (
        frozenset(None if d == "@none" else require_uri(d, "datasetId") for d in datasets)
        if datasets is not None
        else None
    )
    return View(
        form=form,
        sys_attrs="sysAttrs" in options,
        attrs=attrs,
        pick=pick,
        omit=omit,
        dataset_ids=dataset_ids,
        lang=params.get("lang"),
    )


def page_params(params: Mapping[str, Any], *, default: int, maximum: int) -> tuple[int, int, bool]:
    count = _boolean(params.get("count"), "count")
    limit = _integer(params.get("limit"), "limit", default)
    offset = _integer(params.get("offset"), "offset", 0)
    if limit < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed together with count=true")
    if limit > maximum:
        raise TooManyResults(f"limit must not exceed {maximum} (the hub's maximum page size)")
    return limit, offset, count


def _integer(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadRequestData(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise BadRequestData(f"{name} must be an integer, got {value!r}")


def _boolean(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise BadRequestData(f"{name} must be true or false, got {value!r}")


def selection(flt: EntityFilter, *, limit: int, offset: int, count: bool) -> Selection:
    return Selection(
        prefilter=flt.prefilter(),
        predicate=flt.predicate(),
        order_key=flt.order_key(),
        key_range=flt.key_range(),
        offset=offset,
        limit=limit,
        count=count,
    )

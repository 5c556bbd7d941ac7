"""Temporal request bodies -> instances in the internal form (clauses 5.6.11-5.6.14).

A temporal entity or fragment gives each attribute as an array of instances
(or one instance); the simplified form of clause 4.5.9 ("values": [[value,
time], ...]) is accepted too. Instances are parsed one by one with the
normal parser, so the same checks protect history as the current state.
"""

from __future__ import annotations

from typing import Any

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.model import ENTITY_RESERVED, VALUE_KEY, Instance
from dosi.ngsi.parse import (
    NULL_MARK,
    parse_instance,
    parse_instance_patch,
    parse_scope,
    parse_types,
)
from dosi.ngsi.values import Expander, require_datetime, require_name, require_uri

MAX_INSTANCES = 100_000  # in one request body
# Clause 4.5.9's simplified members -> (attribute type, value key).
_SIMPLIFIED = {
    "values": ("Property", "value"),
    "objects": ("Relationship", "object"),
    "languageMaps": ("LanguageProperty", "languageMap"),
    "vocabs": ("VocabProperty", "vocab"),
    "valueLists": ("ListProperty", "valueList"),
    "objectLists": ("ListRelationship", "objectList"),
    "jsons": ("JsonProperty", "json"),
}

Parsed = tuple[str, list[str], list[str] | None, list[tuple[str, Instance]]]


def parse_temporal_entity(body: Any, ctx: Expander, *, now: str) -> Parsed:
    """(id, types, scope or None, [(attribute IRI, instance)]) of a temporal entity."""
    if not isinstance(body, dict):
        raise BadRequestData("a temporal entity must be a JSON object")
    entity_id = require_uri(body.get("id"), "entity id")
    types = parse_types(body.get("type"), ctx, required=False)
    scope = parse_scope(body["scope"]) if "scope" in body else None
    return entity_id, types, scope, parse_temporal_attributes(body, ctx, now=now)


def parse_temporal_attributes(
    body: dict[str, Any], ctx: Expander, *, now: str
) -> list[tuple[str, Instance]]:
    out: list[tuple[str, Instance]] = []
    for name, raw in body.items():
        if name in ENTITY_RESERVED:
            continue
        iri = ctx.expand(require_name(name, "attribute name"))
        items = _simplified(name, raw) if _is_simplified(raw) else raw
        if not isinstance(items, list):
            items = [items]
        if not items:
            raise BadRequestData(f"attribute {name!r} has no instances")
        if len(out) + len(items) > MAX_INSTANCES:
            raise BadRequestData(f"a request adds at most {MAX_INSTANCES} instances")
        out.extend((iri, parse_instance(name, item, ctx, now=now, depth=0)) for item in items)
    return out


def _is_simplified(raw: Any) -> bool:
    return isinstance(raw, dict) and any(key in raw for key in _SIMPLIFIED)


def _simplified(name: str, raw: dict[str, Any]) -> list[dict[str, Any]]:
    key = next(k for k in _SIMPLIFIED if k in raw)
    attr_type, value_key = _SIMPLIFIED[key]
    attr_type = raw.get("type", attr_type)
    pairs = raw[key]
    if not isinstance(pairs, list):
        raise BadRequestData(f"{key} of {name!r} must be an array of [value, time] pairs")
    items = []
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadRequestData(f"{key} of {name!r} must hold [value, time] pairs")
        item = {"type": attr_type, value_key: pair[0]}
        item["observedAt"] = require_datetime(pair[1], f"time of {name!r}")
        if "datasetId" in raw:
            item["datasetId"] = raw["datasetId"]
        items.append(item)
    return items


def parse_instance_update(name: str, body: Any, ctx: Expander, *, now: str) -> Instance:
    """The body of 5.6.14: {attribute: instance or [instance]}, or the bare instance."""
    if not isinstance(body, dict):
        raise BadRequestData("the request body must be a JSON object")
    body = {k: v for k, v in body.items() if k != "@context"}
    iri = ctx.expand(name)
    keyed = [k for k in body if k not in ENTITY_RESERVED and ctx.expand(k) == iri]
    raw: Any = body
    if keyed:
        raw = body[keyed[0]]
        if isinstance(raw, list):
            if len(raw) != 1:
                raise BadRequestData(f"give exactly one instance of {name!r}")
            raw = raw[0]
    patch = parse_instance_patch(name, raw, ctx, now=now)
    if NULL_MARK in patch:
        raise BadRequestData("an instance cannot be set to null; delete it instead")
    if "datasetId" in patch:
        require_uri(patch["datasetId"], "datasetId")
    return patch


def apply_update(old: Instance, patch: Instance, now: str) -> Instance:
    """Clause 5.6.14: the given members replace the stored ones; null sub-attributes go."""
    new = dict(old)
    if "type" in patch and patch["type"] != old.get("type"):
        new.pop(VALUE_KEY.get(old.get("type", "Property"), "value"), None)
    for key, value in patch.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    new["modifiedAt"] = now
    attr_type = new.get("type", "Property")
    if VALUE_KEY.get(attr_type, "value") not in new:
        raise BadRequestData(f"a {attr_type} instance needs its {VALUE_KEY[attr_type]!r} member")
    return new

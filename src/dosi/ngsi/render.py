"""The internal expanded form -> what a client asked to see.

Representations (clause 4.5): normalized, concise and simplified (keyValues),
compacted with the caller's @context, with the projections `attrs`, `pick`,
`omit`, `datasetId`, `lang` and `sysAttrs` applied.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from dosi.ngsi.model import ENTITY_RESERVED, INSTANCE_RESERVED, VALUE_KEY, Entity, Instance
from dosi.ngsi.values import Expander

NORMALIZED = "normalized"
CONCISE = "concise"
SIMPLIFIED = "simplified"
_SYSTEM = ("createdAt", "modifiedAt")
_META = ("datasetId", "observedAt", "unitCode")
_WRAPPED_IN_SIMPLIFIED = frozenset(
    {"LanguageProperty", "VocabProperty", "ListProperty", "ListRelationship", "JsonProperty"}
)


@dataclass(frozen=True)
class View:
    """How one response wants entities shown. Attribute sets hold expanded IRIs."""

    form: str = NORMALIZED
    sys_attrs: bool = False
    attrs: frozenset[str] | None = None  # project onto these attributes
    pick: frozenset[str] | None = None  # entity members to keep (id/type/scope or attribute IRIs)
    omit: frozenset[str] | None = None  # entity members to drop
    dataset_ids: frozenset[str | None] | None = None  # None in the set = the default instance
    lang: str | None = None


def render_entity(entity: Entity, ctx: Expander, view: View) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if _keep("id", view):
        out["id"] = entity["id"]
    if "type" in entity and _keep("type", view):
        types = [ctx.compact(t) for t in entity["type"]]
        out["type"] = types[0] if len(types) == 1 else types
    if "scope" in entity and _keep("scope", view):
        scope = entity["scope"]
        out["scope"] = scope[0] if len(scope) == 1 else scope
    for key, instances in entity.items():
        if key in ENTITY_RESERVED:
            continue
        if view.attrs is not None and key not in view.attrs:
            continue
        if not _keep(key, view):
            continue
        chosen = _select_instances(instances, view.dataset_ids)
        if not chosen:
            continue
        name = ctx.compact(key)
        if len(chosen) == 1:
            out[name] = _render_instance(chosen[0], ctx, view)
        elif view.form == SIMPLIFIED:
            # Clause 4.5.4: instances keyed by datasetId, the default one under "@none".
            out[name] = {
                "dataset": {
                    inst.get("datasetId", "@none"): _render_instance(inst, ctx, view)
                    for inst in chosen
                }
            }
        else:
            # Inside an array every instance stays an object, so concise round-trips.
            out[name] = [_render_instance(inst, ctx, view, bare=False) for inst in chosen]
    if view.sys_attrs and view.form != SIMPLIFIED:
        for key in _SYSTEM:
            if key in entity:
                out[key] = entity[key]
    return out


def _keep(member: str, view: View) -> bool:
    if view.pick is not None and member not in view.pick:
        return False
    return not (view.omit is not None and member in view.omit)


def _select_instances(
    instances: list[Instance], dataset_ids: Collection[str | None] | None
) -> list[Instance]:
    if dataset_ids is None:
        return instances
    return [inst for inst in instances if inst.get("datasetId") in dataset_ids]


def _render_instance(inst: Instance, ctx: Expander, view: View, *, bare: bool = True) -> Any:
    attr_type = inst["type"]
    value = _compact_value(inst, ctx)
    if view.form == SIMPLIFIED:
        if attr_type == "LanguageProperty" and view.lang is not None:
            return pick_language(inst["languageMap"], view.lang)[0]
        if attr_type in _WRAPPED_IN_SIMPLIFIED:
            # Clause 4.5.4: these keep their key so the kind survives simplification.
            return {VALUE_KEY[attr_type]: value}
        return value
    out: dict[str, Any] = {}
    if attr_type == "LanguageProperty" and view.lang is not None:
        text, tag = pick_language(inst["languageMap"], view.lang)
        out["type"] = "Property"
        out["value"] = text
        out["lang"] = tag
    else:
        out["type"] = attr_type
        out[VALUE_KEY[attr_type]] = value
    # One pass over the members (this runs for every attribute of every result).
    for key, member in inst.items():
        if key in INSTANCE_RESERVED:
            if key in _META:
                out[key] = member
            elif key == "objectType":
                out[key] = _compact_names(member, ctx)
            elif view.sys_attrs and key in _SYSTEM:
                out[key] = member
        else:
            out[ctx.compact(key)] = _render_instance(member, ctx, view)
    if view.form == CONCISE:
        return _concise(out, bare=bare)
    return out


def _concise(out: dict[str, Any], *, bare: bool) -> Any:
    """Drop what concise form leaves implicit; a lone bare Property becomes its value."""
    attr_type = out.pop("type")
    if bare and len(out) == 1:
        if attr_type == "Property" and not _needs_wrapper(out["value"]):
            return out["value"]
        if attr_type == "GeoProperty":
            return out["value"]
    return out


def _needs_wrapper(value: Any) -> bool:
    """A bare dict value could be misread as an attribute object on the way back in."""
    return isinstance(value, dict)


def _compact_value(inst: Instance, ctx: Expander) -> Any:
    attr_type = inst["type"]
    value = inst[VALUE_KEY[attr_type]]
    if attr_type == "VocabProperty":
        return _compact_names(value, ctx)
    if attr_type == "ListRelationship":
        return [{"object": target} for target in value]
    return value


def _compact_names(value: str | list[str], ctx: Expander) -> str | list[str]:
    if isinstance(value, list):
        return [ctx.compact(v) for v in value]
    return ctx.compact(value)


def pick_language(language_map: dict[str, Any], wanted: str) -> tuple[Any, str]:
    """Clause 4.15: choose one language of a LanguageProperty by an Accept-Language-like list."""
    for tag in _language_preferences(wanted):
        if tag == "*":
            break
        if tag in language_map:
            return language_map[tag], tag
        for key, text in language_map.items():
            if key.split("-")[0].lower() == tag.split("-")[0].lower():
                return text, key
    if "@none" in language_map:
        return language_map["@none"], "@none"
    first = next(iter(language_map))
    return language_map[first], first


def _language_preferences(wanted: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(wanted.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag:
            weighted.append((-weight, position, tag))
    return [tag for _, _, tag in sorted(weighted)]

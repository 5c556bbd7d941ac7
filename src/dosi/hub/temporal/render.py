"""Temporal representations of an entity (clauses 4.5.7-4.5.9, 4.5.19).

normalized and concise: every attribute an array of instances, each with its
instanceId; temporalValues: [value, time] pairs per datasetId;
aggregatedValues: [value, start, end] per period for each requested method.
A deleted attribute instance shows as NGSI-LD Null with `deletedAt`.
"""

from __future__ import annotations

from typing import Any

from dosi.hub.store.temporal import HistoryInstance, Series, TemporalEntity, instance_id
from dosi.hub.temporal.aggregation import method_value
from dosi.hub.temporal.params import (
    AGGREGATED_VALUES,
    CONCISE,
    TEMPORAL_VALUES,
    TemporalParams,
    iso,
)
from dosi.ngsi.model import VALUE_KEY, Instance
from dosi.ngsi.parse import NGSI_NULL
from dosi.ngsi.render import CONCISE as CONCISE_FORM
from dosi.ngsi.render import NORMALIZED as NORMALIZED_FORM
from dosi.ngsi.render import View, pick_language, render_entity
from dosi.ngsi.values import Expander

# temporalValues: the member holding the pairs, by attribute type (clause 4.5.9).
_PAIRS = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
    "JsonProperty": "jsons",
}
_SYSTEM = ("createdAt", "modifiedAt", "deletedAt")


def render_temporal(entity: TemporalEntity, ctx: Expander, tp: TemporalParams) -> dict[str, Any]:
    record = entity.record
    out: dict[str, Any] = {"id": record["id"]}
    types = [ctx.compact(t) for t in record["type"]]
    out["type"] = types[0] if len(types) == 1 else types
    if "scope" in record:
        scope = record["scope"]
        out["scope"] = scope[0] if len(scope) == 1 else scope
    for series in entity.series:
        if not series.instances and not series.buckets:
            continue
        name = ctx.compact(series.attr)
        if tp.form == AGGREGATED_VALUES:
            out[name] = _aggregated(series, tp)
        elif tp.form == TEMPORAL_VALUES:
            out[name] = _pairs(series, ctx, tp)
        else:
            out[name] = _instances(series, ctx, tp)
    if tp.sys_attrs:
        out.update((key, record[key]) for key in _SYSTEM if key in record)
    return out


def _instances(series: Series, ctx: Expander, tp: TemporalParams) -> list[Any]:
    view = View(
        form=CONCISE_FORM if tp.form == CONCISE else NORMALIZED_FORM,
        sys_attrs=tp.sys_attrs,
        lang=tp.lang,
    )
    live = [i.doc for i in series.instances if "deletedAt" not in i.doc]
    rendered = iter(_render_all(series.attr, live, ctx, view) if live else ())
    out: list[Any] = []
    for item in series.instances:
        if "deletedAt" in item.doc:
            shown = _deletion(item.doc)
        else:
            shown = next(rendered)
            if not isinstance(shown, dict):  # concise: a lone value came back bare
                shown = {"value": shown}
        shown["instanceId"] = instance_id(item.seq)
        out.append(shown)
    return out


def _render_all(attr: str, instances: list[Instance], ctx: Expander, view: View) -> list[Any]:
    """The instances through the entity renderer (compaction, sub-attributes, lang)."""
    rendered = render_entity({"id": "", attr: instances}, ctx, view)[ctx.compact(attr)]
    return rendered if isinstance(rendered, list) else [rendered]


def _deletion(doc: Instance) -> dict[str, Any]:
    attr_type = doc.get("type", "Property")
    out: dict[str, Any] = {"type": attr_type, VALUE_KEY.get(attr_type, "value"): _null(attr_type)}
    if "datasetId" in doc:
        out["datasetId"] = doc["datasetId"]
    out["deletedAt"] = doc["deletedAt"]
    return out


def _null(attr_type: str) -> Any:
    if attr_type == "LanguageProperty":
        return {"@none": NGSI_NULL}
    if attr_type in ("ListProperty", "ListRelationship"):
        return [NGSI_NULL]
    return NGSI_NULL


def _pairs(series: Series, ctx: Expander, tp: TemporalParams) -> Any:
    """Clause 4.5.9: one object per datasetId, each with [value, time] pairs."""
    groups: dict[str | None, dict[str, Any]] = {}
    for item in series.instances:
        doc = item.doc
        dataset = doc.get("datasetId")
        attr_type = doc.get("type", "Property")
        group = groups.get(dataset)
        if group is None:
            group = groups[dataset] = {"type": attr_type}
            if dataset is not None:
                group["datasetId"] = dataset
            group[_PAIRS.get(attr_type, "values")] = []
        pairs = group.get(_PAIRS.get(attr_type, "values"))
        if pairs is None:  # the type changed along the way: keep the first one's member
            pairs = next(v for k, v in group.items() if k in _PAIRS.values())
        pairs.append([_plain_value(doc, ctx, tp), _time_of(item, tp)])
    objects = list(groups.values())
    return objects[0] if len(objects) == 1 else objects


def _plain_value(doc: Instance, ctx: Expander, tp: TemporalParams) -> Any:
    attr_type = doc.get("type", "Property")
    if "deletedAt" in doc:
        return _null(attr_type)
    value: Any = doc.get(VALUE_KEY.get(attr_type, "value"))
    if attr_type == "VocabProperty":
        return [ctx.compact(v) for v in value] if isinstance(value, list) else ctx.compact(value)
    if attr_type == "LanguageProperty" and tp.lang is not None:
        return pick_language(value, tp.lang)[0]
    if attr_type == "ListRelationship":
        return [{"object": target} for target in value]
    return value


def _time_of(item: HistoryInstance, tp: TemporalParams) -> str:
    """observedAt (deletedAt) as the client (hub) wrote it; else the time the window used."""
    prop = tp.window.prop
    stamp = item.doc.get(prop) if prop in ("observedAt", "deletedAt") else None
    if "deletedAt" in item.doc:
        stamp = item.doc["deletedAt"]
    return stamp if isinstance(stamp, str) else iso(item.time)


def _aggregated(series: Series, tp: TemporalParams) -> dict[str, Any]:
    assert tp.aggregation is not None
    out: dict[str, Any] = {"type": series.attr_type}
    for method in tp.aggregation.methods:
        periods = []
        for bucket in series.buckets:
            value = method_value(method, bucket.stats)
            if value is not None:
                periods.append([value, iso(bucket.start), iso(bucket.end)])
        out[method] = periods
    return out

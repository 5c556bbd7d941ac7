"""Notification payloads (clause 5.3.1): one rendered entity per change, then the body.

Each change is rendered once, when it is queued, in the subscription's format
and @context, and stored as JSON bytes; a notification is those bytes joined
into `data[]`, so delivering a backlog of many changes in one request costs
a concatenation, not a re-render.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from typing import Any

import orjson

from dosi.hub.subscriptions.matching import Delta
from dosi.hub.subscriptions.model import GEO_JSON, JSON_LD, Spec
from dosi.ngsi.model import DEFAULT_CORE_CONTEXT, LOCATION, VALUE_KEY, Entity, Instance
from dosi.ngsi.render import SIMPLIFIED, View, render_entity
from dosi.ngsi.values import Expander

NGSI_NULL = "urn:ngsi-ld:null"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
_PREVIOUS = {
    "value": "previousValue",
    "object": "previousObject",
    "languageMap": "previousLanguageMap",
    "vocab": "previousVocab",
    "valueList": "previousValueList",
    "objectList": "previousObjectList",
    "json": "previousJson",
}
_VALUE_KEYS = frozenset(_PREVIOUS)
# Notification ids: unique per process start without a syscall per notification.
_ID_PREFIX = os.urandom(6).hex()
_IDS = itertools.count(1)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def view_of(spec: Spec) -> View:
    return View(form=spec.form, sys_attrs=spec.sys_attrs, attrs=spec.attributes, lang=spec.lang)


def render_change(
    spec: Spec, ctx: Expander, delta: Delta, at_ms: int, before: Entity | None
) -> Any:
    """The data[] item for one change: the entity, deleted attributes as NGSI-LD Null,
    previous values with showChanges; a deleted entity as id, type and deletedAt."""
    if delta.deleted:
        entity = delta.state
        types = [ctx.compact(t) for t in entity.get("type", ())]
        out: dict[str, Any] = {
            "id": entity["id"],
            "type": types[0] if len(types) == 1 else types,
            "deletedAt": iso_ms(at_ms),
        }
        return _as_feature(out, None) if spec.endpoint.accept == GEO_JSON else out
    view = view_of(spec)
    out = render_entity(delta.state, ctx, view)
    if before is not None:
        if delta.removed and "attributeDeleted" in spec.triggers:
            for attr in delta.removed:
                if spec.attributes is None or attr in spec.attributes:
                    out[ctx.compact(attr)] = _deleted(
                        before.get(attr, ()), ctx, view, at_ms, spec.show_changes
                    )
        if spec.show_changes:
            for attr in delta.updated:
                name = ctx.compact(attr)
                if name in out:
                    out[name] = _with_previous(out[name], before.get(attr, ()), ctx, view)
    if spec.endpoint.accept == GEO_JSON:
        return _as_feature(out, delta.state)
    return out


def render_entity_item(spec: Spec, ctx: Expander, entity: Entity) -> Any:
    """The data[] item for a periodic notification: the entity as it is now."""
    out = render_entity(entity, ctx, view_of(spec))
    return _as_feature(out, entity) if spec.endpoint.accept == GEO_JSON else out


def _as_feature(rendered: dict[str, Any], entity: Entity | None) -> dict[str, Any]:
    geometry = None
    for inst in (entity or {}).get(LOCATION, ()):
        if inst.get("type") == "GeoProperty":
            geometry = inst["value"]
            break
    properties = {k: v for k, v in rendered.items() if k != "id"}
    return {"id": rendered["id"], "type": "Feature", "geometry": geometry, "properties": properties}


def _previous_value(inst: Instance, ctx: Expander) -> tuple[str, Any]:
    key = VALUE_KEY.get(inst.get("type", "Property"), "value")
    value: Any = inst.get(key)
    if inst.get("type") == "VocabProperty":
        value = [ctx.compact(v) for v in value] if isinstance(value, list) else ctx.compact(value)
    return _PREVIOUS[key], value


def _deleted(old: list[Instance], ctx: Expander, view: View, at_ms: int, show_changes: bool) -> Any:
    """A deleted attribute in a notification: its value is the NGSI-LD Null."""
    if view.form == SIMPLIFIED:
        return NGSI_NULL
    items = []
    for inst in old or [{"type": "Property"}]:
        attr_type = inst.get("type", "Property")
        item: dict[str, Any] = {"type": attr_type, VALUE_KEY.get(attr_type, "value"): NGSI_NULL}
        if "datasetId" in inst:
            item["datasetId"] = inst["datasetId"]
        item["deletedAt"] = iso_ms(at_ms)
        if show_changes and VALUE_KEY.get(attr_type, "value") in inst:
            key, value = _previous_value(inst, ctx)
            item[key] = value
        items.append(item)
    return items[0] if len(items) == 1 else items


def _with_previous(rendered: Any, old: list[Instance], ctx: Expander, view: View) -> Any:
    """Add previousValue (previousObject, ...) to each rendered instance that had one."""
    by_dataset = {inst.get("datasetId"): inst for inst in old}
    if isinstance(rendered, list):
        return [_add_previous(item, by_dataset, ctx, view) for item in rendered]
    return _add_previous(rendered, by_dataset, ctx, view)


def _add_previous(
    item: Any, by_dataset: dict[str | None, Instance], ctx: Expander, view: View
) -> Any:
    if not isinstance(item, dict) or not _VALUE_KEYS.intersection(item):
        item = {"value": item}  # a concise bare value (or bare geometry) gets its wrapper back
    previous = by_dataset.get(item.get("datasetId"))
    if previous is None:
        return item
    key, value = _previous_value(previous, ctx)
    return {**item, key: value}


def notification_body(
    sub_id: str, accept: str, context: Any, items: list[bytes], now: str
) -> bytes:
    """The notification (clause 5.3.1) around already rendered data[] items."""
    head: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Notification:{_ID_PREFIX}-{next(_IDS):x}",
        "type": "Notification",
        "subscriptionId": sub_id,
        "notifiedAt": now,
    }
    if accept == JSON_LD:
        head["@context"] = context if context is not None else DEFAULT_CORE_CONTEXT
    joined = b",".join(items)
    if accept == GEO_JSON:
        data = b'{"type":"FeatureCollection","features":[' + joined + b"]}"
    else:
        data = b"[" + joined + b"]"
    return orjson.dumps(head)[:-1] + b',"data":' + data + b"}"


def headers_for(accept: str, link_url: str, tenant: str, spec: Spec) -> dict[str, str]:
    """HTTP headers (MQTT metadata) of a notification: media type, @context link, tenant,
    and the subscription's receiverInfo."""
    headers = {"Content-Type": accept}
    if accept != JSON_LD:
        headers["Link"] = f"<{link_url}>; {LINK_REL}"
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    for key, value in spec.endpoint.receiver_info:
        headers[key] = value
    return headers

"""Client payloads (normalized or concise) -> the internal expanded form.

Every check that protects stored data happens here, before any store is
touched, so a rejected request can never leave a half-written entity.
"""

from __future__ import annotations

from typing import Any

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geo import REFERENCE_GEOMETRY_TYPES, validate_geometry
from dosi.ngsi.model import (
    ATTRIBUTE_TYPES,
    ENTITY_RESERVED,
    INSTANCE_RESERVED,
    VALUE_KEY,
    Entity,
    Instance,
)
from dosi.ngsi.values import (
    Expander,
    is_uri,
    require_datetime,
    require_name,
    require_uri,
)

NGSI_NULL = "urn:ngsi-ld:null"
# In a parsed update or merge, an instance carrying this key deletes the stored
# instance with the same datasetId (clause 5.5.8: "NGSI-LD Null" means delete).
NULL_MARK = "@null"
_GEO_TYPES = REFERENCE_GEOMETRY_TYPES  # what a concise bare geometry may be
# Concise form: the key that reveals an attribute's type when "type" is left out.
_CONCISE_KEYS = (
    ("object", "Relationship"),
    ("languageMap", "LanguageProperty"),
    ("vocab", "VocabProperty"),
    ("valueList", "ListProperty"),
    ("objectList", "ListRelationship"),
    ("json", "JsonProperty"),
    ("value", "Property"),
)
MAX_NESTING = 8


def parse_entity(body: Any, ctx: Expander, *, now: str, require_type: bool = True) -> Entity:
    """A whole entity as given to create/replace/upsert."""
    if not isinstance(body, dict):
        raise BadRequestData("an entity must be a JSON object")
    entity_id = require_uri(body.get("id"), "entity id")
    entity: Entity = {"id": entity_id}
    types = parse_types(body.get("type"), ctx, required=require_type)
    if types:
        entity["type"] = types
    if "scope" in body:
        entity["scope"] = parse_scope(body["scope"])
    entity["createdAt"] = now
    entity["modifiedAt"] = now
    entity.update(parse_attributes(body, ctx, now=now))
    return entity


def parse_fragment(
    body: Any, ctx: Expander, *, now: str, allow_null: bool = False
) -> tuple[list[str], dict[str, list[Instance] | None], list[str] | None]:
    """An attributes fragment (append/update/merge): (types, attrs, scope).

    With `allow_null` (merge-patch), an attribute whose value is null or
    "urn:ngsi-ld:null" maps to None, meaning "delete it".
    """
    if not isinstance(body, dict):
        raise BadRequestData("the request body must be a JSON object of attributes")
    if "id" in body and not is_uri(body["id"]):
        raise BadRequestData("entity id in the body must be a URI")
    types = parse_types(body.get("type"), ctx, required=False)
    scope = parse_scope(body["scope"]) if "scope" in body else None
    attrs = parse_attributes(body, ctx, now=now, allow_null=allow_null)
    return types, attrs, scope


def parse_types(value: Any, ctx: Expander, *, required: bool) -> list[str]:
    if value is None:
        if required:
            raise BadRequestData("entity type is required")
        return []
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData("entity type must not be an empty list")
    expanded: list[str] = []
    for item in items:
        iri = ctx.expand(require_name(item, "entity type"))
        if iri not in expanded:
            expanded.append(iri)
    return expanded


def parse_scope(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if (
            not isinstance(item, str)
            or not item.startswith("/")
            or (item.endswith("/") and item != "/")
        ):
            raise BadRequestData(f"scope {item!r} must be a path like /City/District")
        if any(part in ("", "+", "#") for part in item[1:].split("/")) and item != "/":
            raise BadRequestData(f"scope {item!r} has an empty or wildcard level")
    return list(dict.fromkeys(items))


def parse_attributes(
    body: dict[str, Any], ctx: Expander, *, now: str, allow_null: bool = False
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    expand = ctx.expand
    for name, raw in body.items():
        if name in ENTITY_RESERVED:
            continue
        iri = expand(require_name(name, "attribute name"))
        if iri in attrs:
            raise BadRequestData(f"attribute {name!r} is given twice")
        if _is_null(raw):
            if not allow_null:
                raise BadRequestData(f"attribute {name!r} must not be null here")
            attrs[iri] = _null_marks(name, raw)
        elif type(raw) is dict:  # the common case: one instance
            attrs[iri] = [parse_instance(name, raw, ctx, now=now, depth=0, allow_null=allow_null)]
        else:
            attrs[iri] = parse_attribute(name, raw, ctx, now=now, allow_null=allow_null)
    return attrs


def parse_attribute(
    name: str, raw: Any, ctx: Expander, *, now: str, allow_null: bool = False
) -> list[Instance]:
    """One attribute: a single instance, or an array of instances (multi-attribute)."""
    if isinstance(raw, list) and raw and all(_looks_like_instance(item) for item in raw):
        instances = [
            parse_instance(name, item, ctx, now=now, depth=0, allow_null=allow_null) for item in raw
        ]
    else:
        instances = [parse_instance(name, raw, ctx, now=now, depth=0, allow_null=allow_null)]
    seen: set[str | None] = set()
    for inst in instances:
        dataset = inst.get("datasetId")
        if dataset in seen:
            label = dataset or "the default instance"
            raise BadRequestData(f"attribute {name!r} repeats datasetId {label}")
        seen.add(dataset)
    return instances


def _null_marks(name: str, raw: Any) -> list[Instance] | None:
    """None deletes the whole attribute; marks delete the instances they name."""
    if isinstance(raw, dict) and "datasetId" in raw:
        return [
            {NULL_MARK: True, "datasetId": require_uri(raw["datasetId"], f"datasetId of {name!r}")}
        ]
    return None


def parse_instance(
    name: str, raw: Any, ctx: Expander, *, now: str, depth: int, allow_null: bool = False
) -> Instance:
    if depth > MAX_NESTING:
        raise BadRequestData(f"attribute {name!r} nests sub-attributes too deeply")
    if depth == 0 and _is_null(raw):
        # Only reached inside an array of instances: each null names one instance.
        if not allow_null:
            raise BadRequestData(f"attribute {name!r} must not be null here")
        mark: Instance = {NULL_MARK: True}
        if isinstance(raw, dict) and "datasetId" in raw:
            mark["datasetId"] = require_uri(raw["datasetId"], f"datasetId of {name!r}")
        return mark
    if type(raw) is not dict:
        if raw is None:
            raise BadRequestData(f"attribute {name!r} must not be null")
        return _concise_value(name, raw)
    attr_type = raw.get("type")
    if attr_type is None:
        if not any(key in raw for key, _ in _CONCISE_KEYS):
            return _concise_value(name, raw)
        attr_type = _infer_type(raw)
    elif attr_type not in ATTRIBUTE_TYPES:
        return _concise_value(name, raw)
    inst: Instance = {"type": attr_type}
    if attr_type == "Property" and raw.get("value") is not None:
        inst["value"] = raw["value"]  # the hot path: nothing to check in a plain value
    else:
        _parse_value(name, attr_type, raw, inst, ctx)
    inst["createdAt"] = now
    _parse_members(name, raw, inst, ctx, now=now, depth=depth, allow_null=allow_null)
    return inst


def parse_instance_patch(name: str, raw: Any, ctx: Expander, *, now: str) -> Instance:
    """A partial attribute update (clause 5.6.4): every member optional, null removes."""
    if not isinstance(raw, dict) or not raw:
        raise BadRequestData(f"the update of {name!r} must be a non-empty JSON object")
    if _is_null(raw):
        mark: Instance = {NULL_MARK: True}
        if "datasetId" in raw:
            mark["datasetId"] = require_uri(raw["datasetId"], f"datasetId of {name!r}")
        return mark
    inst: Instance = {}
    if "type" in raw or any(key in raw for key, _ in _CONCISE_KEYS):
        attr_type = raw.get("type") or _infer_type(raw)
        if attr_type not in ATTRIBUTE_TYPES:
            raise BadRequestData(f"attribute {name!r} has unknown type {attr_type!r}")
        inst["type"] = attr_type
        if VALUE_KEY[attr_type] in raw:
            _parse_value(name, attr_type, raw, inst, ctx)
    _parse_members(name, raw, inst, ctx, now=now, depth=0, allow_null=True)
    return inst


def _parse_members(
    name: str,
    raw: dict[str, Any],
    inst: Instance,
    ctx: Expander,
    *,
    now: str,
    depth: int,
    allow_null: bool,
) -> None:
    """Metadata and sub-attributes of one instance, in one pass over its members."""
    for key, sub in raw.items():
        if key in INSTANCE_RESERVED:
            if key == "observedAt":
                inst[key] = require_datetime(sub, f"observedAt of {name!r}")
            elif key == "datasetId":
                inst[key] = require_uri(sub, f"datasetId of {name!r}")
            elif key == "unitCode":
                if not isinstance(sub, str) or not sub:
                    raise BadRequestData(f"unitCode of {name!r} must be a non-empty string")
                inst[key] = sub
            elif key == "objectType" and inst.get("type") == "Relationship":
                inst[key] = _expand_names(sub, ctx, f"objectType of {name!r}")
            continue
        sub_iri = ctx.expand(require_name(key, f"sub-attribute of {name!r}"))
        if _is_null(sub):
            if not allow_null:
                raise BadRequestData(f"sub-attribute {key!r} of {name!r} must not be null here")
            inst[sub_iri] = None
        else:
            inst[sub_iri] = parse_instance(
                key, sub, ctx, now=now, depth=depth + 1, allow_null=allow_null
            )
    inst["modifiedAt"] = now


def _parse_value(
    name: str, attr_type: str, raw: dict[str, Any], inst: Instance, ctx: Expander
) -> None:
    key = VALUE_KEY[attr_type]
    if key not in raw:
        raise BadRequestData(f"attribute {name!r} of type {attr_type} needs a {key!r} member")
    value = raw[key]
    if value is None:
        raise BadRequestData(f"attribute {name!r}: {key!r} must not be null")
    if attr_type == "GeoProperty":
        value = validate_geometry(value)
    elif attr_type == "Relationship":
        targets = value if isinstance(value, list) else [value]
        if not targets:
            raise BadRequestData(f"relationship {name!r} needs at least one object")
        for target in targets:
            require_uri(target, f"object of relationship {name!r}")
    elif attr_type == "LanguageProperty":
        _check_language_map(name, value)
    elif attr_type == "VocabProperty":
        value = _expand_names(value, ctx, f"vocab of {name!r}")
    elif attr_type == "ListProperty":
        if not isinstance(value, list):
            raise BadRequestData(f"valueList of {name!r} must be an array")
    elif attr_type == "ListRelationship":
        value = _object_list(name, value)
    inst[key] = value


def _object_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadRequestData(f"objectList of {name!r} must be an array")
    objects: list[str] = []
    for item in value:
        target = item.get("object") if isinstance(item, dict) else item
        objects.append(require_uri(target, f"objectList item of {name!r}"))
    return objects


def _check_language_map(name: str, value: Any) -> None:
    if not isinstance(value, dict) or not value:
        raise BadRequestData(f"languageMap of {name!r} must be a non-empty object")
    for lang, text in value.items():
        texts = text if isinstance(text, list) else [text]
        if not isinstance(lang, str) or not all(isinstance(t, str) for t in texts):
            raise BadRequestData(f"languageMap of {name!r} maps language tags to strings")


def _expand_names(value: Any, ctx: Expander, what: str) -> str | list[str]:
    if isinstance(value, list):
        if not value:
            raise BadRequestData(f"{what} must not be empty")
        return [ctx.expand(require_name(item, what)) for item in value]
    return ctx.expand(require_name(value, what))


def _concise_value(name: str, raw: Any) -> Instance:
    """A bare value in concise form: a GeoJSON geometry or a Property value."""
    if isinstance(raw, dict) and raw.get("type") in _GEO_TYPES:
        return {"type": "GeoProperty", "value": validate_geometry(raw)}
    if isinstance(raw, dict) and "type" in raw and raw["type"] not in ATTRIBUTE_TYPES:
        raise BadRequestData(f"attribute {name!r} has unknown type {raw['type']!r}")
    return {"type": "Property", "value": raw}


def _infer_type(raw: dict[str, Any]) -> str:
    for key, attr_type in _CONCISE_KEYS:
        if key in raw:
            if attr_type == "Property" and _is_geometry(raw[key]):
                return "GeoProperty"
            return attr_type
    return "Property"


def _looks_like_instance(raw: Any) -> bool:
    if not isinstance(raw, dict):
        return False
    if raw.get("type") in ATTRIBUTE_TYPES:
        return True
    return "type" not in raw and any(key in raw for key, _ in _CONCISE_KEYS)


def _is_geometry(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in _GEO_TYPES and "coordinates" in value


def _is_null(raw: Any) -> bool:
    """JSON null or "NGSI-LD Null" in any attribute shape (clause 5.2.1)."""
    if raw is None or raw == NGSI_NULL:
        return True
    if isinstance(raw, dict) and _looks_like_instance(raw):
        attr_type = raw.get("type") or _infer_type(raw)
        key = VALUE_KEY.get(attr_type, "value")
        if key not in raw:
            return False
        value = raw[key]
        if value is None or value == NGSI_NULL:
            return True
        if attr_type == "LanguageProperty" and isinstance(value, dict):
            return value == {"@none": NGSI_NULL}
        if attr_type in ("ListProperty", "ListRelationship") and isinstance(value, list):
            return value == [NGSI_NULL]
    return False

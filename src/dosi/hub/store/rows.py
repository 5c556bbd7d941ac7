"""What the indexes need from an entity: its types, geometries and attribute stats.

Shared by the backends so that SQLite and PostgreSQL index exactly the same things.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from dosi.ngsi.geo import geometry_bbox
from dosi.ngsi.model import ENTITY_RESERVED, Entity

GeoEntry = tuple[str, tuple[float, float, float, float]]  # (expanded property, bbox)


def geo_entries(entity: Entity) -> list[GeoEntry]:
    """Bounding boxes of every GeoProperty instance (all datasetIds)."""
    entries: list[GeoEntry] = []
    for key, instances in entity.items():
        if key in ENTITY_RESERVED:
            continue
        for inst in instances:
            if inst.get("type") == "GeoProperty":
                entries.append((key, geometry_bbox(inst["value"])))
    return entries


def stat_keys(entity: Entity) -> set[tuple[str, str, str]]:
    """What discovery counts, as (type, attribute, attribute type) triples.

    ("T", "", "") counts entities of type T; ("T", a, k) those of type T with
    attribute a of kind k; ("", a, "") entities with attribute a whatever their
    types, so that an entity with two types is counted once per attribute.
    """
    keys: set[tuple[str, str, str]] = set()
    attr_types: set[tuple[str, str]] = set()
    for key, instances in entity.items():
        if key in ENTITY_RESERVED:
            continue
        keys.add(("", key, ""))
        for inst in instances:
            attr_types.add((key, inst.get("type", "Property")))
    for entity_type in entity.get("type", ()):
        keys.add((entity_type, "", ""))
        for attr, attr_type in attr_types:
            keys.add((entity_type, attr, attr_type))
    return keys


def stat_delta(before: Entity | None, after: Entity | None, into: Counter[Any]) -> None:
    if before is not None:
        for key in stat_keys(before):
            into[key] -= 1
    if after is not None:
        for key in stat_keys(after):
            into[key] += 1


_NEVER = object()  # equal to no value: keeps every member that is not a system time


def pack(entity: Entity) -> bytes:
    """The stored document: attribute-instance times equal to the entity's are left out.

    Most instances share the entity's createdAt/modifiedAt; dropping them makes
    a typical sensor entity ~40% smaller on disk, so more of a city fits in the
    page cache and every read decodes less. Sub-attributes keep theirs: they
    are rare, and restoring only one level keeps `unpack` on the hot read path cheap.
    """
    times = {"createdAt": entity.get("createdAt"), "modifiedAt": entity.get("modifiedAt")}
    packed = {
        key: value
        if key in ENTITY_RESERVED
        else [{k: v for k, v in inst.items() if times.get(k, _NEVER) != v} for inst in value]
        for key, value in entity.items()
    }
    return orjson.dumps(packed)


def unpack(doc: bytes) -> Entity:
    entity: Entity = orjson.loads(doc)
    created, modified = entity.get("createdAt"), entity.get("modifiedAt")
    for key, value in entity.items():
        if key not in ENTITY_RESERVED:
            for inst in value:
                if "createdAt" not in inst:
                    inst["createdAt"] = created
                if "modifiedAt" not in inst:
                    inst["modifiedAt"] = modified
    return entity

"""What the indexes need from an entity: its types, geometries and attribute stats.

Shared by the backends so that SQLite and PostgreSQL index exactly the same things.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

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

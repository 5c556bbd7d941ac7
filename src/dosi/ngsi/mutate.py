"""Pure NGSI-LD entity operations on the internal form: old entity -> new entity.

The store runs these inside its write transaction, so a read-modify-write is
atomic and an operation that raises leaves the stored entity untouched.
Inputs are never modified: every function returns a fresh entity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dosi.ngsi.errors import BadRequestData, ResourceNotFound
from dosi.ngsi.model import ENTITY_RESERVED, INSTANCE_RESERVED, VALUE_KEY, Entity, Instance
from dosi.ngsi.parse import NULL_MARK


@dataclass
class UpdateReport:
    """Which attributes an append/update touched (clause 5.2.18 UpdateResult)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)  # (attribute IRI, reason)


def attributes_of(entity: Entity) -> dict[str, list[Instance]]:
    return {k: v for k, v in entity.items() if k not in ENTITY_RESERVED}


def replace_entity(old: Entity, new: Entity, now: str) -> Entity:
    """PUT /entities/{id}: everything but the creation time comes from `new`."""
    out = dict(new)
    out["createdAt"] = old["createdAt"]
    out["modifiedAt"] = now
    if "type" not in out and "type" in old:
        out["type"] = list(old["type"])
    return out


def add_types(entity: Entity, types: list[str]) -> None:
    current = entity.setdefault("type", [])
    for t in types:
        if t not in current:
            current.append(t)


def append_attributes(
    old: Entity,
    attrs: Mapping[str, list[Instance] | None],
    now: str,
    *,
    types: list[str] | None = None,
    scope: list[str] | None = None,
    no_overwrite: bool = False,
) -> tuple[Entity, UpdateReport]:
    """POST /entities/{id}/attrs and batch update/upsert-update: add or overwrite instances."""
    entity = _shallow_copy(old)
    report = UpdateReport()
    for name, instances in attrs.items():
        if instances is None:
            continue
        existing = list(entity.get(name, []))
        for inst in instances:
            index = _find_instance(existing, inst.get("datasetId"))
            if index is None:
                existing.append(inst)
                report.updated.append(name)
            elif no_overwrite:
                report.not_updated.append((name, "attribute exists and noOverwrite was requested"))
            else:
                existing[index] = _keep_created(existing[index], inst)
                report.updated.append(name)
        entity[name] = existing
    if types:
        add_types(entity, types)
    if scope is not None:
        entity["scope"] = scope
    _touch(entity, now, changed=bool(report.updated) or bool(types) or scope is not None)
    report.updated = list(dict.fromkeys(report.updated))
    return entity, report


def update_attributes(
    old: Entity, attrs: dict[str, list[Instance] | None], now: str
) -> tuple[Entity, UpdateReport]:
    """PATCH /entities/{id}/attrs: replace existing instances only."""
    entity = _shallow_copy(old)
    report = UpdateReport()
    for name, instances in attrs.items():
        existing = list(entity.get(name, []))
        if instances is None:  # "NGSI-LD Null": delete the attribute
            if existing:
                del entity[name]
                report.updated.append(name)
            else:
                report.not_updated.append((name, "attribute not found"))
            continue
        touched = False
        for inst in instances:
            index = _find_instance(existing, inst.get("datasetId"))
            if index is None:
                reason = "attribute not found" if not existing else "datasetId not found"
                report.not_updated.append((name, reason))
            elif NULL_MARK in inst:
                del existing[index]
                touched = True
            else:
                existing[index] = _keep_created(existing[index], inst)
                touched = True
        if touched:
            _set_or_drop(entity, name, existing)
            report.updated.append(name)
    _touch(entity, now, changed=bool(report.updated))
    return entity, report


def partial_update_attribute(
    old: Entity, name: str, fragment: list[Instance], now: str, *, replace: bool = False
) -> Entity:
    """PATCH (merge into) or PUT (replace) one attribute instance: clause 5.6.4 / 5.6.19."""
    entity = _shallow_copy(old)
    existing = list(entity.get(name, []))
    if not existing:
        raise ResourceNotFound(f"entity {old['id']} has no attribute {name}")
    for inst in fragment:
        index = _find_instance(existing, inst.get("datasetId"))
        if index is None:
            raise ResourceNotFound(
                f"attribute {name} of {old['id']} has no instance with datasetId "
                f"{inst.get('datasetId') or '(default)'}"
            )
        if NULL_MARK in inst:
            del existing[index]
        elif replace:
            existing[index] = _keep_created(existing[index], inst)
        else:
            existing[index] = merge_instance(existing[index], inst, now)
    _set_or_drop(entity, name, existing)
    _touch(entity, now, changed=True)
    return entity


def delete_attribute(
    old: Entity, name: str, now: str, *, dataset_id: str | None = None, delete_all: bool = False
) -> Entity:
    entity = _shallow_copy(old)
    existing = entity.get(name)
    if not existing:
        raise ResourceNotFound(f"entity {old['id']} has no attribute {name}")
    if delete_all:
        del entity[name]
    else:
        remaining = [inst for inst in existing if inst.get("datasetId") != dataset_id]
        if len(remaining) == len(existing):
            raise ResourceNotFound(
                f"attribute {name} of {old['id']} has no instance with datasetId "
                f"{dataset_id or '(default)'}"
            )
        if remaining:
            entity[name] = remaining
        else:
            del entity[name]
    _touch(entity, now, changed=True)
    return entity


def merge_entity(
    old: Entity,
    attrs: dict[str, list[Instance] | None],
    now: str,
    *,
    types: list[str] | None = None,
    scope: list[str] | None = None,
) -> Entity:
    """PATCH /entities/{id} (merge-patch, clause 5.6.17): null deletes, objects merge."""
    entity = _shallow_copy(old)
    for name, instances in attrs.items():
        if instances is None:
            entity.pop(name, None)
            continue
        existing = list(entity.get(name, []))
        for inst in instances:
            index = _find_instance(existing, inst.get("datasetId"))
            if NULL_MARK in inst:
                if index is not None:
                    del existing[index]
            elif index is None:
                existing.append(_drop_nulls(inst))
            else:
                existing[index] = merge_instance(existing[index], inst, now)
        _set_or_drop(entity, name, existing)
    if types:
        add_types(entity, types)
    if scope is not None:
        entity["scope"] = scope
    _touch(entity, now, changed=True)
    return entity


def merge_instance(old: Instance, patch: Instance, now: str) -> Instance:
    """Merge one attribute instance: members in the patch win, null sub-attributes go."""
    old_type: str = old.get("type", "Property")
    new_type: str = patch.get("type", old_type)
    if new_type != old_type and VALUE_KEY[new_type] not in patch:
        raise BadRequestData(
            f"changing an attribute from {old_type} to {new_type} needs a new value"
        )
    out = dict(old)
    if new_type != old_type:
        out.pop(VALUE_KEY[old_type], None)
    for key, value in patch.items():
        if key == "createdAt":
            continue
        if value is None:
            out.pop(key, None)
        elif key not in INSTANCE_RESERVED and isinstance(out.get(key), dict):
            out[key] = merge_instance(out[key], value, now)
        else:
            out[key] = value
    out["modifiedAt"] = now
    return out


def _set_or_drop(entity: Entity, name: str, instances: list[Instance]) -> None:
    if instances:
        entity[name] = instances
    else:
        entity.pop(name, None)


def _drop_nulls(inst: Instance) -> Instance:
    return {k: v for k, v in inst.items() if v is not None}


def _find_instance(instances: list[Instance], dataset_id: str | None) -> int | None:
    for index, inst in enumerate(instances):
        if inst.get("datasetId") == dataset_id:
            return index
    return None


def _keep_created(old: Instance, new: Instance) -> Instance:
    out = dict(new)
    if "createdAt" in old:
        out["createdAt"] = old["createdAt"]
    return out


def _shallow_copy(entity: Entity) -> Entity:
    out = dict(entity)
    if "type" in out:
        out["type"] = list(out["type"])
    return out


def _touch(entity: Entity, now: str, *, changed: bool) -> None:
    if changed:
        entity["modifiedAt"] = now

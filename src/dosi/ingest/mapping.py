"""A provisioned device, resolved once: measurements -> NGSI-LD attributes and entity mutations.

A `Binding` merges a device with its service group (the device wins) and
expands every name with the core @context, so the hot path only looks up
object ids and converts values. Mutations upsert: a measurement for a
device whose entity was deleted recreates it with its static attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dosi.hub.store.base import Mutation
from dosi.ingest.model import INFO_SUFFIX, STATUS_SUFFIX, Device, ServiceGroup, is_ultralight
from dosi.ingest.values import Converter, converter
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.model import ENTITY_RESERVED, LOCATION, Entity, Instance
from dosi.ngsi.mutate import append_attributes
from dosi.ngsi.values import require_name

Expand = Callable[[str], str]
Attrs = dict[str, list[Instance]]
MAX_PASSTHROUGH_NAMES = 65_536
# Command status values, as the FIWARE IoT Agents report them.
UNKNOWN, PENDING, OK, ERROR = "UNKNOWN", "PENDING", "OK", "ERROR"


@dataclass(frozen=True)
class Mapped:
    iri: str
    convert: Converter
    unit_code: str | None


@dataclass(frozen=True)
class Command:
    name: str
    iri: str
    status_iri: str
    info_iri: str


@dataclass(frozen=True)
class Static:
    iri: str
    convert: Converter
    value: Any
    unit_code: str | None


@dataclass(frozen=True)
class Binding:
    tenant: str
    device_id: str
    apikey: str | None
    entity_id: str
    entity_type: str  # IRI
    ultralight: bool
    explicit: bool
    mapped: dict[str, Mapped]  # by object_id
    statics: tuple[Static, ...]
    commands: dict[str, Command]  # by command name
    command_by_iri: dict[str, Command]
    blocked: frozenset[str]  # IRIs a measurement must not write: commands and their status
    expand: Expand

    def static_attrs(self, now: str) -> Attrs:
        attrs: Attrs = {}
        for static in self.statics:
            attrs[static.iri] = [
                _instance(static.convert(static.value, False), now, static.unit_code)
            ]
        return attrs

    def command_attrs(self, now: str) -> Attrs:
        attrs: Attrs = {}
        for command in self.commands.values():
            attrs[command.iri] = [_plain("", now)]
            attrs[command.status_iri] = [_plain(UNKNOWN, now)]
            attrs[command.info_iri] = [_plain("", now)]
        return attrs

    def new_entity(self, now: str) -> Entity:
        return {
            "id": self.entity_id,
            "type": [self.entity_type],
            "createdAt": now,
            "modifiedAt": now,
            **self.static_attrs(now),
            **self.command_attrs(now),
        }

    def measurement(
        self, values: Iterable[tuple[str, Any]], *, text: bool, observed_at: str, now: str
    ) -> Attrs:
        """Attributes of one measurement; BadRequestData if a value does not convert."""
        attrs: Attrs = {}
        mapped = self.mapped
        for key, value in values:
            spec = mapped.get(key)
            if spec is not None:
                try:
                    converted = spec.convert(value, text)
                except BadRequestData as exc:
                    raise BadRequestData(f"{key}: {exc.detail}") from None
                inst = _instance(converted, now, spec.unit_code)
                iri = spec.iri
            elif self.explicit:
                continue
            else:
                iri = self._passthrough(key)
                if iri in self.blocked:
                    continue  # a device cannot set its own commands (that would loop)
                inst = {"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}
            inst["observedAt"] = observed_at
            attrs[iri] = [inst]
        if not attrs:
            raise BadRequestData("the measurement carries no attribute to write")
        return attrs

    def _passthrough(self, key: str) -> str:
        iri = _PASSTHROUGH.get(key)
        if iri is None:
            name = require_name(key, "attribute name")
            if name in ENTITY_RESERVED:
                raise BadRequestData(f"{name!r} cannot be an attribute name")
            if len(_PASSTHROUGH) >= MAX_PASSTHROUGH_NAMES:
                _PASSTHROUGH.clear()
            iri = _PASSTHROUGH[key] = self.expand(name)
        return iri

    def upsert(self, attrs: Attrs, now: str) -> Mutation:
        """Write `attrs` on the device's entity, creating it if it is missing."""

        def apply(old: Entity | None) -> Entity:
            return _overwrite(old if old is not None else self.new_entity(now), attrs, now)

        return apply

    def provision(self, now: str) -> Mutation:
        """Create the entity, or refresh its type, static attributes and command attributes."""

        def apply(old: Entity | None) -> Entity:
            if old is None:
                return self.new_entity(now)
            attrs = self.static_attrs(now)
            for iri, instances in self.command_attrs(now).items():
                if iri not in old:
                    attrs[iri] = instances
            new, _ = append_attributes(old, attrs, now, types=[self.entity_type])
            return new

        return apply

    def command_status(self, command: Command, status: str, info: Any, now: str) -> Mutation:
        attrs: Attrs = {command.status_iri: [_plain(status, now)]}
        if info is not None:
            attrs[command.info_iri] = [_plain(info, now)]
        return self.upsert(attrs, now)


_PASSTHROUGH: dict[str, str] = {}


def bind(tenant: str, device: Device, group: ServiceGroup | None, expand: Expand) -> Binding:
    """Merge a device with its group; BadRequestData if no entity type can be found."""
    entity_type = device.entity_type or (group.entity_type if group else None)
    if entity_type is None:
        raise BadRequestData(
            f"device {device.device_id!r} needs an entity_type (or a service group with one)"
        )
    specs = {a.object_id: a for a in (group.attributes if group else ())}
    specs.update({a.object_id: a for a in device.attributes})
    mapped = {
        oid: Mapped(expand(a.name), converter(a.type), a.unit_code) for oid, a in specs.items()
    }
    statics = {s.name: s for s in (group.static_attributes if group else ())}
    statics.update({s.name: s for s in device.static_attributes})
    static_list = [
        Static(expand(s.name), converter(s.type), s.value, s.unit_code) for s in statics.values()
    ]
    if device.location is not None:
        static_list.append(Static(LOCATION, converter("geo:json"), device.location, None))
    names = dict.fromkeys((*(group.commands if group else ()), *device.commands))
    commands = {
        name: Command(name, expand(name), expand(name + STATUS_SUFFIX), expand(name + INFO_SUFFIX))
        for name in names
    }
    blocked = frozenset(i for c in commands.values() for i in (c.iri, c.status_iri, c.info_iri))
    explicit = device.explicit_attrs
    if explicit is None:
        explicit = group.explicit_attrs if group else False
    return Binding(
        tenant=tenant,
        device_id=device.device_id,
        apikey=device.apikey or (group.apikey if group else None),
        entity_id=device.entity_name or f"urn:ngsi-ld:{entity_type}:{device.device_id}",
        entity_type=expand(entity_type),
        ultralight=is_ultralight(device.protocol or (group.protocol if group else None)),
        explicit=explicit,
        mapped=mapped,
        statics=tuple(static_list),
        commands=commands,
        command_by_iri={c.iri: c for c in commands.values()},
        blocked=blocked,
        expand=expand,
    )


def _overwrite(entity: Entity, attrs: Attrs, now: str) -> Entity:
    """`append_attributes` for the agent's own attributes, which are single default
    instances: the same result, without the general case's copying (it runs once per
    measurement on the store's writer thread)."""
    out = dict(entity)
    for iri, instances in attrs.items():
        current = entity.get(iri)
        if current is None:
            out[iri] = instances
        elif len(current) == 1 and "datasetId" not in current[0]:
            (inst,) = instances
            created = current[0].get("createdAt")
            if created is not None:
                inst["createdAt"] = created
            out[iri] = instances
        else:  # the attribute also has datasetId instances: the general path
            return append_attributes(entity, attrs, now)[0]
    out["modifiedAt"] = now
    return out


def _instance(converted: tuple[str, str, Any], now: str, unit_code: str | None) -> Instance:
    attr_type, key, value = converted
    inst: Instance = {"type": attr_type, key: value, "createdAt": now, "modifiedAt": now}
    if unit_code:
        inst["unitCode"] = unit_code
    return inst


def _plain(value: Any, now: str) -> Instance:
    return {"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}

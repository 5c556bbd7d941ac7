"""Provisioning records: service groups and devices, as the FIWARE IoT Agent API shapes them.

A *service group* binds an apikey to an entity type and default attribute
mappings; a *device* binds a device id to one entity and may override or add
mappings, static attributes, commands and a location. Parsing checks every
field a body may carry (unknown FIWARE fields are ignored), so a record that
exists is always usable; `to_json` gives the stored and returned form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dosi.ingest.ultralight import TIME_KEYS
from dosi.ingest.values import converter
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geojson import validate_geometry
from dosi.ngsi.model import ENTITY_RESERVED
from dosi.ngsi.values import require_name, require_uri

# Apikeys and device ids are MQTT topic levels and UltraLight tokens: no / + # @ | or spaces.
_TOKEN = re.compile(r"^[A-Za-z0-9_.:~\-]{1,256}$")
# Topic prefixes of the protocol-specific MQTT topics: an apikey must not look like one.
RESERVED_APIKEYS = frozenset({"ul", "json"})
MAX_ATTRIBUTES = 256
STATUS_SUFFIX = "_status"
INFO_SUFFIX = "_info"
DEFAULT_RESOURCE = "/iot/d"


@dataclass(frozen=True)
class AttrSpec:
    """A measured attribute: the device's short `object_id` -> an entity attribute."""

    object_id: str
    name: str
    type: str = "Property"
    unit_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object_id": self.object_id, "name": self.name, "type": self.type}
        if self.unit_code:
            out["unitCode"] = self.unit_code
        return out


@dataclass(frozen=True)
class StaticAttr:
    """An attribute the entity always carries, whatever the device sends."""

    name: str
    type: str
    value: Any
    unit_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "value": self.value}
        if self.unit_code:
            out["unitCode"] = self.unit_code
        return out


@dataclass(frozen=True)
class ServiceGroup:
    apikey: str
    entity_type: str
    resource: str = DEFAULT_RESOURCE
    protocol: str | None = None
    transport: str | None = None
    explicit_attrs: bool = False
    attributes: tuple[AttrSpec, ...] = ()
    static_attributes: tuple[StaticAttr, ...] = ()
    commands: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apikey": self.apikey,
            "entity_type": self.entity_type,
            "resource": self.resource,
            "explicitAttrs": self.explicit_attrs,
            "attributes": [a.to_json() for a in self.attributes],
            "static_attributes": [a.to_json() for a in self.static_attributes],
            "commands": [{"name": c, "type": "command"} for c in self.commands],
        }
        if self.protocol:
            out["protocol"] = self.protocol
        if self.transport:
            out["transport"] = self.transport
        return out


@dataclass(frozen=True)
class Device:
    device_id: str
    entity_name: str | None = None
    entity_type: str | None = None
    apikey: str | None = None
    protocol: str | None = None
    transport: str | None = None
    explicit_attrs: bool | None = None  # None: the service group's choice
    attributes: tuple[AttrSpec, ...] = ()
    static_attributes: tuple[StaticAttr, ...] = ()
    commands: tuple[str, ...] = ()
    location: dict[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": self.device_id}
        for key, value in (
            ("entity_name", self.entity_name),
            ("entity_type", self.entity_type),
            ("apikey", self.apikey),
            ("protocol", self.protocol),
            ("transport", self.transport),
            ("explicitAttrs", self.explicit_attrs),
            ("location", self.location),
        ):
            if value is not None:
                out[key] = value
        out["attributes"] = [a.to_json() for a in self.attributes]
        out["static_attributes"] = [a.to_json() for a in self.static_attributes]
        out["commands"] = [{"name": c, "type": "command"} for c in self.commands]
        return out


def require_token(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise BadRequestData(
            f"{what} must be 1-256 letters, digits or _.:~- (it is an MQTT topic level), "
            f"got {_short(value)}"
        )
    return value


def parse_group(raw: Any) -> ServiceGroup:
    """One entry of `{"services": [...]}`."""
    body = _object(raw, "a service group")
    apikey = require_token(body.get("apikey"), "apikey")
    if apikey in RESERVED_APIKEYS:
        raise BadRequestData(f"apikey {apikey!r} is reserved (it is an MQTT topic prefix)")
    resource = body.get("resource", DEFAULT_RESOURCE)
    if not isinstance(resource, str) or not resource.startswith("/") or len(resource) > 256:
        raise BadRequestData(f"resource must be a path like /iot/d, got {_short(resource)}")
    attributes, statics, commands = _mappings(body)
    return ServiceGroup(
        apikey=apikey,
        entity_type=require_name(body.get("entity_type"), "entity_type"),
        resource=resource,
        protocol=_optional_text(body, "protocol"),
        transport=_optional_text(body, "transport"),
        explicit_attrs=_optional_bool(body, "explicitAttrs") or False,
        attributes=attributes,
        static_attributes=statics,
        commands=commands,
    )


def parse_device(raw: Any) -> Device:
    """One entry of `{"devices": [...]}`."""
    body = _object(raw, "a device")
    device_id = require_token(body.get("device_id"), "device_id")
    entity_name = body.get("entity_name")
    if entity_name is not None:
        entity_name = require_uri(entity_name, "entity_name")
    entity_type = body.get("entity_type")
    if entity_type is not None:
        entity_type = require_name(entity_type, "entity_type")
    apikey = body.get("apikey")
    if apikey is not None:
        apikey = require_token(apikey, "apikey")
        if apikey in RESERVED_APIKEYS:
            raise BadRequestData(f"apikey {apikey!r} is reserved (it is an MQTT topic prefix)")
    location = body.get("location")
    if location is not None:
        location = validate_geometry(location)
    attributes, statics, commands = _mappings(body)
    return Device(
        device_id=device_id,
        entity_name=entity_name,
        entity_type=entity_type,
        apikey=apikey,
        protocol=_optional_text(body, "protocol"),
        transport=_optional_text(body, "transport"),
        explicit_attrs=_optional_bool(body, "explicitAttrs"),
        attributes=attributes,
        static_attributes=statics,
        commands=commands,
        location=location,
    )


def is_ultralight(protocol: str | None) -> bool:
    """FIWARE names the protocol `PDI-IoTA-UltraLight` or `IoTA-UL`; dosi also takes `UL`."""
    if not protocol:
        return False
    lowered = protocol.lower()
    return "ultralight" in lowered or lowered in ("ul", "iota-ul", "ul2", "ul20")


def list_of(body: Any, key: str) -> list[Any]:
    """The non-empty array under `key` of a provisioning body."""
    obj = _object(body, "the request body")
    items = obj.get(key)
    if not isinstance(items, list) or not items:
        raise BadRequestData(f"the request body must be {{{key!r}: [ ... ]}} with at least one")
    return items


def _mappings(
    body: dict[str, Any],
) -> tuple[tuple[AttrSpec, ...], tuple[StaticAttr, ...], tuple[str, ...]]:
    attributes = tuple(_attr_spec(a) for a in _list(body, "attributes"))
    statics = tuple(_static(a) for a in _list(body, "static_attributes"))
    commands = tuple(_command(c) for c in _list(body, "commands"))
    if len(attributes) + len(statics) + len(commands) > MAX_ATTRIBUTES:
        raise BadRequestData(f"at most {MAX_ATTRIBUTES} attributes, static attributes and commands")
    _unique([a.object_id for a in attributes], "object_id")
    command_names = [n for c in commands for n in (c, c + STATUS_SUFFIX, c + INFO_SUFFIX)]
    _unique([s.name for s in statics] + command_names, "attribute name")
    if set(command_names) & {a.name for a in attributes}:
        raise BadRequestData("a command (or its _status, _info) must not share a measured name")
    return attributes, statics, commands


def _attr_spec(raw: Any) -> AttrSpec:
    obj = _object(raw, "an attribute mapping")
    name = _attribute_name(obj.get("name"))
    object_id = obj.get("object_id", name)
    if not isinstance(object_id, str) or not object_id or len(object_id) > 256:
        raise BadRequestData(f"object_id of {name!r} must be a non-empty string")
    if any(c in object_id for c in "|#"):
        raise BadRequestData(f"object_id {object_id!r} must not contain | or #")
    type_name = _type_name(obj.get("type", "Property"), name)
    return AttrSpec(object_id, name, type_name, _unit_code(obj, name))


def _static(raw: Any) -> StaticAttr:
    obj = _object(raw, "a static attribute")
    name = _attribute_name(obj.get("name"))
    type_name = _type_name(obj.get("type", "Property"), name)
    if "value" not in obj or obj["value"] is None:
        raise BadRequestData(f"static attribute {name!r} needs a value")
    try:
        converter(type_name)(obj["value"], False)  # proves the value converts
    except BadRequestData as exc:
        raise BadRequestData(f"static attribute {name!r}: {exc.detail}") from None
    return StaticAttr(name, type_name, obj["value"], _unit_code(obj, name))


def _command(raw: Any) -> str:
    obj = _object(raw, "a command")
    return _attribute_name(obj.get("name"))


def _attribute_name(value: Any) -> str:
    name = require_name(value, "attribute name")
    if name in ENTITY_RESERVED or name in TIME_KEYS:
        raise BadRequestData(f"{name!r} cannot be an attribute name")
    return name


def _type_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadRequestData(f"type of {name!r} must be a short string")
    return value


def _unit_code(obj: dict[str, Any], name: str) -> str | None:
    """`"unitCode": "CEL"`, or FIWARE's `"metadata": {"unitCode": {"value": "CEL"}}`."""
    unit = obj.get("unitCode")
    metadata = obj.get("metadata")
    if unit is None and isinstance(metadata, dict) and isinstance(metadata.get("unitCode"), dict):
        unit = metadata["unitCode"].get("value")
    if unit is None:
        return None
    if not isinstance(unit, str) or not unit or len(unit) > 32:
        raise BadRequestData(f"unitCode of {name!r} must be a short non-empty string")
    return unit


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData(f"{what} must be a JSON object")
    return value


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequestData(f"{key} must be an array")
    return value


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequestData(f"{key} must be a short string")
    return value


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise BadRequestData(f"{key} must be true or false")
    return value


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise BadRequestData(f"{what} {value!r} is given twice")
        seen.add(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

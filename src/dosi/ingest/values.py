"""Device values -> NGSI-LD attribute values, by the type an attribute is provisioned with.

Types follow the FIWARE IoT Agent conventions (`Number`, `Boolean`, `Text`,
`DateTime`, `geo:point`, `geo:json`, `Relationship`, ...); NGSI-LD attribute
types (`Property`, `GeoProperty`, `Relationship`) are accepted as well.
UltraLight values arrive as text and are converted; JSON values keep their
JSON type unless the provisioned type asks for a conversion. A value that
cannot be converted is a malformed measurement: nothing of it is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geojson import validate_geometry
from dosi.ngsi.values import require_datetime, require_uri

# (NGSI-LD attribute type, key of the value in an instance, value)
Converted = tuple[str, str, Any]
Converter = Callable[[Any, bool], Converted]

_INT = re.compile(r"^[+-]?\d{1,18}$")


def _number(value: Any, text: bool) -> Converted:
    if isinstance(value, str):
        stripped = value.strip()
        if _INT.match(stripped):
            return ("Property", "value", int(stripped))
        try:
            value = float(stripped)
        except ValueError:
            raise BadRequestData(f"{_short(value)} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestData(f"{_short(value)} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequestData(f"{_short(value)} is not a finite number")
    return ("Property", "value", value)


def _integer(value: Any, text: bool) -> Converted:
    _, _, number = _number(value, text)
    if isinstance(number, float):
        if not number.is_integer():
            raise BadRequestData(f"{_short(value)} is not an integer")
        number = int(number)
    return ("Property", "value", number)


_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def _boolean(value: Any, text: bool) -> Converted:
    if isinstance(value, bool):
        return ("Property", "value", value)
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in _TRUE:
        return ("Property", "value", True)
    if word in _FALSE:
        return ("Property", "value", False)
    raise BadRequestData(f"{_short(value)} is not a boolean")


def _text_value(value: Any, text: bool) -> Converted:
    if isinstance(value, dict | list):
        raise BadRequestData(f"{_short(value)} is not text")
    if isinstance(value, bool):
        return ("Property", "value", "true" if value else "false")
    return ("Property", "value", str(value))


def _datetime(value: Any, text: bool) -> Converted:
    stamp = require_datetime(value, "a DateTime value")
    return ("Property", "value", {"@type": "DateTime", "@value": stamp})


def _geo_point(value: Any, text: bool) -> Converted:
    """FIWARE's `geo:point` is the text "latitude, longitude"; a GeoJSON Point also works."""
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            raise BadRequestData(f"geo:point {_short(value)} must be 'latitude, longitude'")
        try:
            lat, lon = (float(p) for p in parts)
        except ValueError:
            raise BadRequestData(f"geo:point {_short(value)} must hold two numbers") from None
        value = {"type": "Point", "coordinates": [lon, lat]}
    return ("GeoProperty", "value", validate_geometry(value))


def _geo_json(value: Any, text: bool) -> Converted:
    if isinstance(value, str):
        value = _json_text(value)
    return ("GeoProperty", "value", validate_geometry(value))


def _relationship(value: Any, text: bool) -> Converted:
    return ("Relationship", "object", require_uri(value, "a relationship target"))


def _structured(value: Any, text: bool) -> Converted:
    return ("Property", "value", _json_text(value) if text else value)


def _as_is(value: Any, text: bool) -> Converted:
    return ("Property", "value", value)


_CONVERTERS: dict[str, Converter] = {
    "number": _number,
    "float": _number,
    "double": _number,
    "decimal": _number,
    "integer": _integer,
    "int": _integer,
    "boolean": _boolean,
    "bool": _boolean,
    "text": _text_value,
    "string": _text_value,
    "datetime": _datetime,
    "iso8601": _datetime,
    "geo:point": _geo_point,
    "geo:json": _geo_json,
    "geoproperty": _geo_json,
    "relationship": _relationship,
    "object": _structured,
    "array": _structured,
    "structuredvalue": _structured,
    "json": _structured,
    "property": _as_is,
}


def converter(type_name: str) -> Converter:
    """The conversion for a provisioned type; unknown types keep the value as it came."""
    return _CONVERTERS.get(type_name.lower(), _as_is)


def _json_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadRequestData(f"{_short(value)} is not JSON") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

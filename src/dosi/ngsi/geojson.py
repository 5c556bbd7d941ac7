"""GeoJSON geometries as NGSI-LD accepts them in GeoProperty values (clause 4.7, RFC 7946).

Validation is structural and pure-Python: it runs on every write of a
GeoProperty, so it must be cheap and must never touch shapely. Conversion to
shapely shapes lives here too so that the query side has one place that knows
how GeoJSON nesting maps onto shapely constructors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import shapely

from dosi.ngsi.errors import BadRequestData

GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    }
)

# Nesting depth of "coordinates" per type: 0 = a position, 1 = list of positions, ...
_DEPTH = {
    "Point": 0,
    "LineString": 1,
    "MultiPoint": 1,
    "Polygon": 2,
    "MultiLineString": 2,
    "MultiPolygon": 3,
}

BBox = tuple[float, float, float, float]


def _bad(path: str, why: str) -> BadRequestData:
    return BadRequestData(f"Invalid GeoJSON geometry: {path} {why}")


def _check_number(value: object, path: str) -> float:
    # bool is an int subclass, but `true` is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = " (wrong nesting depth?)" if isinstance(value, list | tuple) else ""
        raise _bad(path, f"must be a number, got {type(value).__name__}{hint}")
    # Huge ints stay ints here so that the range check rejects them without overflow.
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(path, "must be a finite number")
    return value


def _check_position(pos: object, path: str) -> None:
    if not isinstance(pos, list | tuple):
        raise _bad(path, "must be a position [longitude, latitude(, altitude)]")
    for i, item in enumerate(pos):
        kind = type(item)
        # Fast path for plain numbers; the message (and its f-string) only on failure.
        if kind is int or (kind is float and math.isfinite(item)):
            continue
        _check_number(item, f"{path}[{i}]")
    if len(pos) not in (2, 3):
        raise _bad(path, f"must have 2 or 3 numbers, got {len(pos)}")
    lon, lat = pos[0], pos[1]
    if not -180 <= lon <= 180:
        raise _bad(path, f"longitude {lon} is outside [-180, 180]")
    if not -90 <= lat <= 90:
        raise _bad(path, f"latitude {lat} is outside [-90, 90]")


def _check_list(value: object, path: str, what: str) -> list[Any] | tuple[Any, ...]:
    """An array whose items are arrays (positions, rings, ...); items are checked by the caller."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, list | tuple) for v in value):
        raise _bad(path, f"must be an array of {what} (wrong nesting depth?)")
    return value


def _check_count(value: list[Any] | tuple[Any, ...], path: str, what: str, minimum: int) -> None:
    if len(value) < minimum:
        raise _bad(path, f"must hold at least {minimum} {what}, got {len(value)}")


def _check_line(value: object, path: str) -> None:
    line = _check_list(value, path, "positions")
    for i, pos in enumerate(line):
        _check_position(pos, f"{path}[{i}]")
    _check_count(line, path, "positions", 2)


def _check_polygon(value: object, path: str) -> None:
    rings = _check_list(value, path, "linear rings")
    _check_count(rings, path, "linear rings", 1)
    for r, ring_obj in enumerate(rings):
        rpath = f"{path}[{r}]"
        ring = _check_list(ring_obj, rpath, "positions")
        for i, pos in enumerate(ring):
            _check_position(pos, f"{rpath}[{i}]")
        _check_count(ring, rpath, "positions", 4)
        if list(ring[0]) != list(ring[-1]):
            raise _bad(rpath, "is not closed: the first and last positions must be identical")


def validate_geometry(obj: object) -> dict[str, Any]:
    """Check that `obj` is a GeoJSON geometry NGSI-LD can store and query; return it unchanged.

    Empty multi-geometries and collections are rejected: an empty location can
    never match a geo-query, so it is almost certainly a client mistake.
    Foreign members (e.g. "bbox") are allowed, as RFC 7946 permits them.
    Nested GeometryCollections are rejected (RFC 7946 section 3.1.8 discourages them).
    """
    return _validate(obj, nested=False)


def _validate(obj: object, *, nested: bool) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequestData("Invalid GeoJSON geometry: must be a JSON object")
    gtype = obj.get("type")
    if not isinstance(gtype, str) or gtype not in GEOMETRY_TYPES:
        raise BadRequestData(
            f"Invalid GeoJSON geometry: unknown type {gtype!r}; expected one of "
            + ", ".join(sorted(GEOMETRY_TYPES))
        )
    if gtype == "GeometryCollection":
        if nested:
            raise BadRequestData("Invalid GeoJSON geometry: nested GeometryCollection")
        members = obj.get("geometries")
        if not isinstance(members, list | tuple):
            raise _bad("geometries", "must be an array of geometries")
        _check_count(members, "geometries", "geometries", 1)
        for i, member in enumerate(members):
            try:
                _validate(member, nested=True)
            except BadRequestData as exc:
                raise BadRequestData(f"{exc.detail} (in geometries[{i}])") from None
        return obj
    if "coordinates" not in obj:
        raise _bad(gtype, "has no 'coordinates'")
    coords = obj["coordinates"]
    path = "coordinates"
    if gtype == "Point":
        _check_position(coords, path)
    elif gtype == "LineString":
        _check_line(coords, path)
    elif gtype == "MultiPoint":
        points = _check_list(coords, path, "positions")
        for i, pos in enumerate(points):
            _check_position(pos, f"{path}[{i}]")
        _check_count(points, path, "positions", 1)
    elif gtype == "Polygon":
        _check_polygon(coords, path)
    elif gtype == "MultiLineString":
        lines = _check_list(coords, path, "line strings")
        for i, line in enumerate(lines):
            _check_line(line, f"{path}[{i}]")
        _check_count(lines, path, "line strings", 1)
    else:  # MultiPolygon
        polygons = _check_list(coords, path, "polygons")
        for i, poly in enumerate(polygons):
            _check_polygon(poly, f"{path}[{i}]")
        _check_count(polygons, path, "polygons", 1)
    return obj


def _positions(geometry: dict[str, Any]) -> list[Any]:
    """Flatten a (validated) geometry into its positions."""
    gtype = geometry["type"]
    if gtype == "GeometryCollection":
        out: list[Any] = []
        for member in geometry["geometries"]:
            out.extend(_positions(member))
        return out
    flat: list[Any] = [geometry["coordinates"]]
    for _ in range(_DEPTH[gtype]):
        flat = [item for sub in flat for item in sub]
    return flat


def geometry_bbox(geometry: dict[str, Any]) -> BBox:
    """(min lon, min lat, max lon, max lat) of a validated geometry; O(1) for a Point."""
    if geometry["type"] == "Point":
        c = geometry["coordinates"]
        x, y = float(c[0]), float(c[1])
        return (x, y, x, y)
    positions = _positions(geometry)
    xs = [p[0] for p in positions]
    ys = [p[1] for p in positions]
    return (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))


Positions = Sequence[Sequence[Any]]
PositionMapper = Callable[[Positions], list[tuple[float, float]]]


def plain_xy(positions: Positions) -> list[tuple[float, float]]:
    """The default position mapper: lon/lat pairs, altitude dropped.

    Predicates and distances are 2-D, and mixed 2-D/3-D positions would make a
    ragged array shapely cannot ingest.
    """
    return [(p[0], p[1]) for p in positions]


def to_shape(geometry: dict[str, Any], xy: PositionMapper = plain_xy) -> shapely.Geometry:
    """Build the 2-D shapely geometry of a validated GeoJSON geometry.

    `xy` maps each list of positions to planar pairs; callers pass a projection
    here so coordinates are transformed while the shape is built (far cheaper
    than shapely.transform on small shapes).
    """
    gtype = geometry["type"]
    if gtype == "GeometryCollection":
        return shapely.GeometryCollection([to_shape(g, xy) for g in geometry["geometries"]])
    c = geometry["coordinates"]
    if gtype == "Point":
        x, y = xy((c,))[0]
        return shapely.Point(x, y)
    if gtype == "LineString":
        return shapely.LineString(xy(c))
    if gtype == "Polygon":
        return shapely.Polygon(xy(c[0]), [xy(r) for r in c[1:]])
    if gtype == "MultiPoint":
        return shapely.MultiPoint(xy(c))
    if gtype == "MultiLineString":
        return shapely.MultiLineString([xy(line) for line in c])
    if gtype == "MultiPolygon":
        return shapely.MultiPolygon([shapely.Polygon(xy(p[0]), [xy(r) for r in p[1:]]) for p in c])
    raise BadRequestData(f"Invalid GeoJSON geometry: unknown type {gtype!r}")

"""NGSI-LD geo-queries (ETSI GS CIM 009 clause 4.10): parsing and evaluation.

A geo-query compares an entity's GeoProperty value with a reference geometry
given as ``georel`` + ``geometry`` + ``coordinates``. Topological relations
(within, contains, intersects, equals, disjoint, overlaps) are evaluated by
shapely on lon/lat coordinates, with the entity geometry as the subject:
``within`` means "the entity geometry is within the reference".

Distances (``near``) are metres on a sphere of the Earth's mean radius:

* Point/MultiPoint against Point/MultiPoint: exact great-circle distance
  (haversine), the nearest pair of points.
* Anything else: both geometries are projected into a local equirectangular
  frame centred on the reference geometry's centroid (x = R·cos(lat0)·Δlon,
  y = R·Δlat, Δlon wrapped across the antimeridian); the nearest pair of
  points is found there (shapely, or a pure-Python loop for a Point against a
  small reference) and the great-circle distance of that pair is returned.
  The pair is a real pair of points of the two geometries, so the result never
  underestimates; choosing it in a slightly distorted frame overestimates by a
  second-order amount, far below 1% at city scale.

This module is pure (no I/O) and sits on the query hot path: the reference
shape is built and prepared once per query, Point entities use pure-math fast
paths, and ``prefilter_bbox`` lets callers skip most entities with an index.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson
import shapely
from shapely.errors import GEOSException

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geojson import (
    BBox,
    PositionMapper,
    Positions,
    geometry_bbox,
    to_shape,
    validate_geometry,
)

__all__ = [
    "EARTH_RADIUS_M",
    "GEORELS",
    "REFERENCE_GEOMETRY_TYPES",
    "GeoQuery",
    "geometry_bbox",
    "haversine",
    "parse_geoquery",
    "validate_geometry",
]

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
_RAD = math.pi / 180.0

GEORELS = frozenset({"near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"})
# Clause 4.10 lists these as reference geometries; a collection cannot be written as coordinates.
REFERENCE_GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
_POINTISH = frozenset({"Point", "MultiPoint"})
_POLYGONAL = frozenset({"Polygon", "MultiPolygon"})
# Up to this many reference segments, point distances are computed in pure Python
# (cheaper than a shapely call); above it shapely's C loop wins.
_MAX_PY_SEGMENTS = 256
_DISTANCE_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Relative slack on the prefilter box so float rounding can never drop a true match.
_BOX_SLACK = 1.0 + 1e-9


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two lon/lat points (degrees)."""
    p1 = lat1 * _RAD
    p2 = lat2 * _RAD
    sdp = math.sin((p2 - p1) * 0.5)
    sdl = math.sin((lon2 - lon1) * _RAD * 0.5)
    a = sdp * sdp + math.cos(p1) * math.cos(p2) * sdl * sdl
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(a) if a < 1.0 else 1.0)


def _points(geometry: dict[str, Any]) -> list[Any]:
    c = geometry["coordinates"]
    return [c] if geometry["type"] == "Point" else list(c)


@dataclass(frozen=True)
class GeoQuery:
    """A validated geo-query; build with `parse_geoquery` (direct construction is validated too)."""

    georel: str
    geometry: dict[str, Any]
    max_distance: float | None = None
    min_distance: float | None = None
    geoproperty: str = "location"

    # Per-query caches, built once in __post_init__ so matches() allocates little.
    _ref: Any = field(init=False, repr=False, compare=False)  # prepared lon/lat shape
    _ref_proj: Any = field(init=False, repr=False, compare=False)  # prepared metric shape
    _ref_points: tuple[tuple[float, float], ...] | None = field(
        init=False, repr=False, compare=False
    )
    _origin: tuple[float, float, float] = field(init=False, repr=False, compare=False)
    _xy: PositionMapper = field(init=False, repr=False, compare=False)  # lon/lat -> metres
    # Projected reference segments (ax, ay, dx, dy, |d|²) for the pure-Python point path.
    _segments: tuple[tuple[float, float, float, float, float], ...] | None = field(
        init=False, repr=False, compare=False
    )
    _ref_box: BBox = field(init=False, repr=False, compare=False)  # lon/lat bbox of the reference
    _poly_box: BBox | None = field(init=False, repr=False, compare=False)  # projected, polygons
    _bbox: BBox | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.georel not in GEORELS:
            raise BadRequestData(f"Unknown georel {self.georel!r}")
        for name in ("max_distance", "min_distance"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.georel != "near":
                raise BadRequestData(f"{name} is only allowed with georel 'near'")
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and value >= 0
            ):
                raise BadRequestData(f"{name} must be a finite number >= 0, got {value!r}")
        if self.georel == "near" and self.max_distance is None and self.min_distance is None:
            raise BadRequestData("georel 'near' needs maxDistance or minDistance")
        if (
            self.max_distance is not None
            and self.min_distance is not None
            and self.min_distance > self.max_distance
        ):
            raise BadRequestData("minDistance must not exceed maxDistance")
        validate_geometry(self.geometry)
        if self.geometry["type"] == "Point":
            # The common case (near a point): no shapely object until a query needs one.
            lon0, lat0 = (float(v) for v in self.geometry["coordinates"][:2])
            ref = ref_proj = None
        else:
            ref = to_shape(self.geometry)
            if not shapely.is_valid(ref):
                reason = shapely.is_valid_reason(ref)
                raise BadRequestData(f"Invalid reference geometry: {reason}")
            shapely.prepare(ref)
            centroid = ref.centroid
            lon0, lat0 = float(centroid.x), float(centroid.y)
        kx = _M_PER_DEG * math.cos(lat0 * _RAD)
        origin = (lon0, lat0, kx)
        xy = _projector(origin)
        if ref is not None:
            ref_proj = to_shape(self.geometry, xy)
            shapely.prepare(ref_proj)
        ref_points = None
        if self.geometry["type"] in _POINTISH:
            ref_points = tuple((float(p[0]), float(p[1])) for p in _points(self.geometry))
        set_ = object.__setattr__
        set_(self, "_ref", ref)
        set_(self, "_ref_proj", ref_proj)
        set_(self, "_ref_points", ref_points)
        set_(self, "_origin", origin)
        set_(self, "_xy", xy)
        set_(self, "_segments", _segments(self.geometry, xy))
        poly_box = None
        if self.geometry["type"] in _POLYGONAL:
            x0, y0, x1, y1 = (float(v) for v in shapely.bounds(ref_proj))
            poly_box = (x0, y0, x1, y1)
        set_(self, "_poly_box", poly_box)
        set_(self, "_ref_box", geometry_bbox(self.geometry))
        set_(self, "_bbox", self._compute_bbox())

    def _shapes(self) -> tuple[Any, Any]:
        """The prepared reference shapes (lon/lat, metric), built on first use for a Point."""
        if self._ref is None:
            ref = to_shape(self.geometry)
            shapely.prepare(ref)
            ref_proj = to_shape(self.geometry, self._xy)
            shapely.prepare(ref_proj)
            object.__setattr__(self, "_ref_proj", ref_proj)  # benign if two threads race
            object.__setattr__(self, "_ref", ref)
        return self._ref, self._ref_proj

    def _compute_bbox(self) -> BBox | None:
        if self.georel == "disjoint":
            return None
        minx, miny, maxx, maxy = geometry_bbox(self.geometry)
        if self.georel != "near":
            return (minx, miny, maxx, maxy)
        if self.max_distance is None:
            return None
        # A great-circle distance d spans at least d/R radians of latitude, and at most
        # d/(R·cos φ) of longitude where φ is the most poleward latitude reachable.
        dlat = self.max_distance / _M_PER_DEG * _BOX_SLACK + 1e-12
        lo, hi = miny - dlat, maxy + dlat
        if lo <= -90.0 or hi >= 90.0:
            return (-180.0, max(lo, -90.0), 180.0, min(hi, 90.0))
        dlon = dlat / math.cos(max(-lo, hi) * _RAD)
        west, east = minx - dlon, maxx + dlon
        if west < -180.0 or east > 180.0:
            # Crosses the antimeridian: a single box must then span all longitudes.
            west, east = -180.0, 180.0
        return (west, lo, east, hi)

    def prefilter_bbox(self) -> BBox | None:
        """A lon/lat box (minx, miny, maxx, maxy) every matching geometry intersects.

        None when no such box exists (disjoint, near with only minDistance). For
        near;maxDistance it is the reference bbox grown by the distance, widened
        to all longitudes when it touches a pole or crosses the antimeridian.
        """
        return self._bbox

    def distance(self, geometry: dict[str, Any]) -> float:
        """Metres from the reference geometry to `geometry`; inf if it is malformed."""
        try:
            etype = geometry["type"]
            ref_points = self._ref_points
            if etype == "Point":
                c = geometry["coordinates"]
                x, y = c[0], c[1]
                if ref_points is not None:
                    return min(haversine(x, y, rx, ry) for rx, ry in ref_points)
                return self._point_distance(x, y)
            if etype == "MultiPoint" and ref_points is not None:
                return min(
                    haversine(p[0], p[1], rx, ry)
                    for p in geometry["coordinates"]
                    for rx, ry in ref_points
                )
            line = shapely.shortest_line(self._shapes()[1], to_shape(geometry, self._xy))
            (x0, y0), (x1, y1) = shapely.get_coordinates(line).tolist()
            return self._projected_pair_distance(x0, y0, x1, y1)
        except (KeyError, IndexError, TypeError, ValueError, GEOSException):
            return math.inf

    def _projected_pair_distance(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Great-circle distance between two points given in the local frame."""
        if x0 == x1 and y0 == y1:
            return 0.0
        lon0, lat0, kx = self._origin
        return haversine(
            x0 / kx + lon0, y0 / _M_PER_DEG + lat0, x1 / kx + lon0, y1 / _M_PER_DEG + lat0
        )

    def _point_distance(self, lon: float, lat: float) -> float:
        """Distance from a lon/lat point to a non-point reference (see the module docstring)."""
        lon0, lat0, kx = self._origin
        x = ((lon - lon0 + 180.0) % 360.0 - 180.0) * kx
        y = (lat - lat0) * _M_PER_DEG
        segments = self._segments
        if segments is None:
            line = shapely.shortest_line(self._shapes()[1], shapely.Point(x, y))
            (x0, y0), (x1, y1) = shapely.get_coordinates(line).tolist()
            return self._projected_pair_distance(x0, y0, x1, y1)
        box = self._poly_box
        if (
            box is not None
            and box[0] <= x <= box[2]
            and box[1] <= y <= box[3]
            and shapely.intersects_xy(self._shapes()[1], x, y)
        ):
            return 0.0
        best = math.inf
        cx = cy = 0.0
        for ax, ay, dx, dy, len2 in segments:
            t = ((x - ax) * dx + (y - ay) * dy) / len2 if len2 > 0.0 else 0.0
            t = 0.0 if t < 0.0 else (1.0 if t > 1.0 else t)
            px = ax + t * dx
            py = ay + t * dy
            d2 = (px - x) * (px - x) + (py - y) * (py - y)
            if d2 < best:
                best, cx, cy = d2, px, py
        return self._projected_pair_distance(cx, cy, x, y)

    def matches(self, geometry: dict[str, Any]) -> bool:
        """Whether an entity's GeoProperty value satisfies this geo-query.

        Malformed geometries never match (stored values are validated on write).
        """
        georel = self.georel
        if georel == "near":
            return self._near(geometry)
        try:
            ref = self._shapes()[0]
            if geometry["type"] == "Point":
                c = geometry["coordinates"]
                x, y = c[0], c[1]
                box = self._ref_box
                if georel in ("within", "intersects", "disjoint") and not (
                    box[0] <= x <= box[2] and box[1] <= y <= box[3]
                ):
                    # Most points of a large store fall outside: skip GEOS entirely.
                    return georel == "disjoint"
                # contains_xy / intersects_xy use the prepared reference without a Point object.
                if georel == "within":
                    return bool(shapely.contains_xy(ref, x, y))
                if georel == "intersects":
                    return bool(shapely.intersects_xy(ref, x, y))
                if georel == "disjoint":
                    return not shapely.intersects_xy(ref, x, y)
            shape = to_shape(geometry)
            # The prepared reference goes first so GEOS can use its index.
            if georel == "within":
                return bool(ref.contains(shape))
            if georel == "contains":
                return bool(ref.within(shape))
            if georel == "intersects":
                return bool(ref.intersects(shape))
            if georel == "disjoint":
                return bool(ref.disjoint(shape))
            if georel == "overlaps":
                return bool(ref.overlaps(shape))
            return bool(shapely.equals(shape, ref))
        except (KeyError, IndexError, TypeError, ValueError, GEOSException):
            return False

    def _near(self, geometry: dict[str, Any]) -> bool:
        max_d = self.max_distance
        ref_points = self._ref_points
        if max_d is not None and ref_points is not None and len(ref_points) == 1:
            # Hot path, Point reference: reject on latitude alone before any trigonometry
            # (a great-circle distance is never shorter than the latitude difference).
            try:
                if geometry["type"] == "Point":
                    c = geometry["coordinates"]
                    rx, ry = ref_points[0]
                    if abs(c[1] - ry) * _M_PER_DEG > max_d:
                        return False
                    d = haversine(c[0], c[1], rx, ry)
                    min_d = self.min_distance
                    return d <= max_d and (min_d is None or d >= min_d)
            except (KeyError, IndexError, TypeError):
                return False
        d = self.distance(geometry)
        if d == math.inf:
            return False
        if max_d is not None and d > max_d:
            return False
        return self.min_distance is None or d >= self.min_distance


def _projector(origin: tuple[float, float, float]) -> PositionMapper:
    """Position mapper into the local metric frame described in the module docstring."""
    lon0, lat0, kx = origin
    ky = _M_PER_DEG

    def xy(positions: Positions) -> list[tuple[float, float]]:
        return [
            (((p[0] - lon0 + 180.0) % 360.0 - 180.0) * kx, (p[1] - lat0) * ky) for p in positions
        ]

    return xy


def _segments(
    geometry: dict[str, Any], xy: PositionMapper
) -> tuple[tuple[float, float, float, float, float], ...] | None:
    """Projected segments of a linear or polygonal reference, or None when shapely should measure."""
    gtype = geometry["type"]
    c: Any = geometry.get("coordinates")
    lines: list[Any]
    if gtype == "LineString":
        lines = [c]
    elif gtype in ("MultiLineString", "Polygon"):
        lines = list(c)
    elif gtype == "MultiPolygon":
        lines = [ring for poly in c for ring in poly]
    else:
        return None
    if sum(len(line) - 1 for line in lines) > _MAX_PY_SEGMENTS:
        return None
    out = []
    for line in lines:
        pts = xy(line)
        for (ax, ay), (bx, by) in pairwise(pts):
            dx, dy = bx - ax, by - ay
            out.append((ax, ay, dx, dy, dx * dx + dy * dy))
    return tuple(out)


def _parse_distance(name: str, text: str) -> float:
    if not _DISTANCE_RE.fullmatch(text):
        raise BadRequestData(
            f"Invalid georel: {name} must be a non-negative decimal number of metres, got {text!r}"
        )
    value = float(text)
    if not math.isfinite(value):
        raise BadRequestData(f"Invalid georel: {name} {text!r} is out of range")
    return value


def _parse_georel(georel: str) -> tuple[str, float | None, float | None]:
    parts = [p.strip() for p in georel.split(";")]
    op = parts[0]
    if op != "near":
        if op not in GEORELS:
            raise BadRequestData(
                f"Invalid georel {georel!r}: expected near;maxDistance==<m>, "
                "near;minDistance==<m>, within, contains, intersects, equals, disjoint or overlaps"
            )
        if len(parts) > 1:
            raise BadRequestData(f"Invalid georel {georel!r}: {op!r} takes no modifiers")
        return op, None, None
    if len(parts) == 1:
        raise BadRequestData(
            "Invalid georel 'near': a distance is required (near;maxDistance==<m> "
            "or near;minDistance==<m>)"
        )
    found: dict[str, float] = {}
    for part in parts[1:]:
        name, sep, num = part.partition("==")
        name = name.strip()
        if not sep or name not in ("maxDistance", "minDistance"):
            raise BadRequestData(
                f"Invalid georel {georel!r}: expected maxDistance==<m> or minDistance==<m>, "
                f"got {part!r}"
            )
        if name in found:
            raise BadRequestData(f"Invalid georel {georel!r}: {name} given twice")
        found[name] = _parse_distance(name, num.strip())
    return "near", found.get("maxDistance"), found.get("minDistance")


def _parse_coordinates(coordinates: str | list[Any]) -> Any:
    if isinstance(coordinates, list):
        return coordinates
    if not isinstance(coordinates, str):
        raise BadRequestData("Invalid geo-query: coordinates must be a JSON array")
    try:
        parsed = orjson.loads(coordinates)
    except orjson.JSONDecodeError:
        raise BadRequestData(
            f"Invalid geo-query: coordinates {coordinates[:80]!r} are not a JSON array"
        ) from None
    if not isinstance(parsed, list):
        raise BadRequestData("Invalid geo-query: coordinates must be a JSON array")
    return parsed


def parse_geoquery(
    georel: str | None,
    geometry: str | None,
    coordinates: str | list[Any] | None,
    geoproperty: str | None = None,
) -> GeoQuery | None:
    """Build a GeoQuery from query parameters or a GeoQuery object (clause 5.2.13).

    `coordinates` is a JSON string (GET parameters, or the string encoding clause
    4.7.1 allows) or an already-parsed list. Returns None when none of georel,
    geometry and coordinates is given; a partial or invalid geo-query raises
    BadRequestData. A lone geoproperty is ignored (it only qualifies a geo-query).
    """
    if georel is None and geometry is None and coordinates is None:
        return None
    if georel is None or geometry is None or coordinates is None:
        missing = [
            name
            for name, value in (
                ("georel", georel),
                ("geometry", geometry),
                ("coordinates", coordinates),
            )
            if value is None
        ]
        raise BadRequestData(
            f"Incomplete geo-query: missing {', '.join(missing)} "
            "(georel, geometry and coordinates must be given together)"
        )
    if not isinstance(georel, str):
        raise BadRequestData("Invalid geo-query: georel must be a string")
    if not isinstance(geometry, str):
        raise BadRequestData("Invalid geo-query: geometry must be a string")
    op, max_d, min_d = _parse_georel(georel)
    if geometry not in REFERENCE_GEOMETRY_TYPES:
        raise BadRequestData(
            f"Invalid geo-query: unknown geometry {geometry!r}; expected one of "
            + ", ".join(sorted(REFERENCE_GEOMETRY_TYPES))
        )
    ref = validate_geometry({"type": geometry, "coordinates": _parse_coordinates(coordinates)})
    if geoproperty is None:
        geoproperty = "location"
    elif not isinstance(geoproperty, str) or not geoproperty.strip():
        raise BadRequestData("Invalid geo-query: geoproperty must be a non-empty string")
    return GeoQuery(op, ref, max_d, min_d, geoproperty)

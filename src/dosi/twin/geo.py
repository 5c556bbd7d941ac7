"""Placing a simulator's local metre coordinates on the map around the scenario's origin.

A district spans a few kilometres, so a local tangent plane (equirectangular
around the origin) is exact to well under a metre there; each domain may be
shifted, scaled and rotated to sit where the scenario says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Geometry = dict[str, Any]  # GeoJSON geometry, WGS84 lon/lat

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Placement:
    """Local (x east, y north) metres -> WGS84 lon/lat."""

    origin_lon: float
    origin_lat: float
    offset_x: float = 0.0  # metres east of the origin where local (0, 0) lies
    offset_y: float = 0.0
    scale: float = 1.0  # local units -> metres
    rotation_deg: float = 0.0  # counter-clockwise

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        angle = math.radians(self.rotation_deg)
        sx, sy = x * self.scale, y * self.scale
        east = self.offset_x + sx * math.cos(angle) - sy * math.sin(angle)
        north = self.offset_y + sx * math.sin(angle) + sy * math.cos(angle)
        lat = self.origin_lat + math.degrees(north / EARTH_RADIUS_M)
        lon = self.origin_lon + math.degrees(
            east / (EARTH_RADIUS_M * math.cos(math.radians(self.origin_lat)))
        )
        return round(lon, 7), round(lat, 7)

    def point(self, x: float, y: float) -> Geometry:
        lon, lat = self.lonlat(x, y)
        return {"type": "Point", "coordinates": [lon, lat]}

    def line(self, coords: Iterable[tuple[float, float]]) -> Geometry:
        return {"type": "LineString", "coordinates": [list(self.lonlat(x, y)) for x, y in coords]}

    def polygon(self, ring: Iterable[tuple[float, float]]) -> Geometry:
        points = [list(self.lonlat(x, y)) for x, y in ring]
        if points and points[0] != points[-1]:
            points.append(points[0])
        return {"type": "Polygon", "coordinates": [points]}

"""Geo-queries (clause 4.10) and GeoJSON geometry validation (clause 4.7)."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geo import (
    EARTH_RADIUS_M,
    GeoQuery,
    geometry_bbox,
    haversine,
    parse_geoquery,
    validate_geometry,
)
from dosi.ngsi.geojson import to_shape

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
PROPS = settings(max_examples=200, deadline=None)

Geo = dict[str, Any]


def pt(lon: float, lat: float) -> Geo:
    return {"type": "Point", "coordinates": [lon, lat]}


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def poly(x0: float, y0: float, x1: float, y1: float) -> Geo:
    return {"type": "Polygon", "coordinates": [box(x0, y0, x1, y1)]}


def q(georel: str, geometry: Geo) -> GeoQuery:
    """A geo-query as GET parameters would carry it (coordinates as a JSON string)."""
    gq = parse_geoquery(georel, geometry["type"], orjson.dumps(geometry["coordinates"]).decode())
    assert gq is not None
    return gq


# Reference: the square (0,0)-(1,1) (small enough that planar predicates are meaningful).
SQUARE = poly(0, 0, 1, 1)

ENTITIES: dict[str, Geo] = {
    # Points
    "pt_in": pt(0.5, 0.5),
    "pt_edge": pt(0, 0.5),
    "pt_out": pt(2, 2),
    # LineStrings
    "line_in": {"type": "LineString", "coordinates": [[0.2, 0.2], [0.8, 0.8]]},
    "line_cross": {"type": "LineString", "coordinates": [[0.5, 0.5], [2, 0.5]]},
    "line_edge": {"type": "LineString", "coordinates": [[0, 0], [1, 0]]},
    "line_out": {"type": "LineString", "coordinates": [[2, 2], [3, 3]]},
    # Polygons
    "poly_in": poly(0.2, 0.2, 0.8, 0.8),
    "poly_overlap": poly(0.5, 0.5, 1.5, 1.5),
    "poly_cover": poly(-1, -1, 2, 2),
    "poly_equal": {"type": "Polygon", "coordinates": [[[1, 1], [0, 1], [0, 0], [1, 0], [1, 1]]]},
    "poly_touch": poly(1, 0, 2, 1),
    "poly_out": poly(3, 3, 4, 4),
    "poly_hole": {
        "type": "Polygon",
        "coordinates": [box(-1, -1, 2, 2), box(-0.5, -0.5, 1.5, 1.5)],
    },
    # MultiPoints
    "mpt_in": {"type": "MultiPoint", "coordinates": [[0.1, 0.1], [0.9, 0.9]]},
    "mpt_some": {"type": "MultiPoint", "coordinates": [[0.1, 0.1], [5, 5]]},
    "mpt_out": {"type": "MultiPoint", "coordinates": [[5, 5], [6, 6]]},
    # MultiLineStrings
    "mline_in": {
        "type": "MultiLineString",
        "coordinates": [[[0.1, 0.1], [0.2, 0.2]], [[0.5, 0.5], [0.9, 0.6]]],
    },
    "mline_cross": {
        "type": "MultiLineString",
        "coordinates": [[[0.1, 0.1], [0.2, 0.2]], [[0.5, 0.5], [3, 0.5]]],
    },
    "mline_out": {"type": "MultiLineString", "coordinates": [[[5, 5], [6, 6]], [[7, 7], [8, 8]]]},
    # MultiPolygons
    "mpoly_in": {
        "type": "MultiPolygon",
        "coordinates": [[box(0.1, 0.1, 0.3, 0.3)], [box(0.6, 0.6, 0.9, 0.9)]],
    },
    "mpoly_overlap": {
        "type": "MultiPolygon",
        "coordinates": [[box(0.1, 0.1, 0.3, 0.3)], [box(0.8, 0.8, 3, 3)]],
    },
    "mpoly_cover": {
        "type": "MultiPolygon",
        "coordinates": [[box(-1, -1, 2, 2)], [box(5, 5, 6, 6)]],
    },
    "mpoly_out": {"type": "MultiPolygon", "coordinates": [[box(5, 5, 6, 6)], [box(7, 7, 8, 8)]]},
}

# The entities each topological georel accepts against SQUARE; all others must be rejected.
EXPECTED: dict[str, set[str]] = {
    # line_edge lies on the boundary only: it touches the square but is not within it.
    "within": {"pt_in", "line_in", "poly_in", "poly_equal", "mpt_in", "mline_in", "mpoly_in"},
    "contains": {"poly_cover", "poly_equal", "mpoly_cover"},
    "intersects": set(ENTITIES)
    - {"pt_out", "line_out", "poly_out", "poly_hole", "mpt_out", "mline_out", "mpoly_out"},
    "disjoint": {"pt_out", "line_out", "poly_out", "poly_hole", "mpt_out", "mline_out"}
    | {"mpoly_out"},
    "equals": {"poly_equal"},
    "overlaps": {"poly_overlap", "mpoly_overlap"},
}


def test_expected_sets_agree_with_shapely() -> None:
    """Guards the hand-written table itself (entity is the subject, SQUARE the object)."""
    ref = to_shape(SQUARE)
    for georel in EXPECTED:
        got = {name for name, g in ENTITIES.items() if getattr(to_shape(g), georel)(ref)}
        assert got == EXPECTED[georel], georel


@pytest.mark.parametrize("georel", sorted(EXPECTED))
@pytest.mark.parametrize("name", sorted(ENTITIES))
def test_topological_georel_against_polygon(georel: str, name: str) -> None:
    assert q(georel, SQUARE).matches(ENTITIES[name]) is (name in EXPECTED[georel])


def test_within_is_strict_on_the_boundary_for_points() -> None:
    """A point on the edge is not *within* the reference (its interior misses it) but intersects."""
    assert not q("within", SQUARE).matches(pt(0, 0.5))
    assert q("intersects", SQUARE).matches(pt(0, 0.5))
    assert q("intersects", SQUARE).matches(pt(1, 1))  # a corner
    assert not q("disjoint", SQUARE).matches(pt(1, 1))


@pytest.mark.parametrize(
    ("georel", "reference", "entity", "expected"),
    [
        # Point reference
        ("contains", pt(0.5, 0.5), SQUARE, True),
        ("contains", pt(0, 0.5), SQUARE, False),  # boundary: not in the interior
        ("contains", pt(0.5, 0.5), ENTITIES["line_in"], True),
        ("contains", pt(0.5, 0.5), ENTITIES["mpt_in"], False),
        ("equals", pt(0.5, 0.5), pt(0.5, 0.5), True),
        ("equals", pt(0.5, 0.5), {"type": "MultiPoint", "coordinates": [[0.5, 0.5]]}, True),
        ("equals", pt(0.5, 0.5), pt(0.5, 0.6), False),
        ("within", pt(0.5, 0.5), pt(0.5, 0.5), True),
        ("intersects", pt(0.5, 0.5), ENTITIES["mpoly_in"], False),
        ("disjoint", pt(0.5, 0.5), ENTITIES["mpoly_in"], True),
        ("overlaps", pt(0.5, 0.5), pt(0.5, 0.5), False),
        # LineString reference
        ("intersects", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, SQUARE, True),
        ("intersects", {"type": "LineString", "coordinates": [[0, 1], [1, 0]]}, pt(0.5, 0.5), True),
        ("within", {"type": "LineString", "coordinates": [[0, 0], [2, 0]]}, pt(1, 0), True),
        ("within", {"type": "LineString", "coordinates": [[0, 0], [2, 0]]}, pt(0, 0), False),
        (
            "overlaps",
            {"type": "LineString", "coordinates": [[0, 0], [2, 0]]},
            {"type": "LineString", "coordinates": [[1, 0], [3, 0]]},
            True,
        ),
        (
            "equals",
            {"type": "LineString", "coordinates": [[0, 0], [2, 0]]},
            {"type": "LineString", "coordinates": [[2, 0], [1, 0], [0, 0]]},
            True,
        ),
        (
            "contains",
            {"type": "LineString", "coordinates": [[0.2, 0.5], [0.4, 0.5]]},
            ENTITIES["mline_in"],
            False,
        ),
        ("contains", {"type": "LineString", "coordinates": [[0.2, 0.5], [0.4, 0.5]]}, SQUARE, True),
        # MultiPoint reference
        ("within", {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]}, pt(1, 1), True),
        ("contains", {"type": "MultiPoint", "coordinates": [[0.1, 0.1], [0.9, 0.9]]}, SQUARE, True),
        (
            "contains",
            {"type": "MultiPoint", "coordinates": [[0.1, 0.1], [5, 5]]},
            SQUARE,
            False,
        ),
        ("disjoint", {"type": "MultiPoint", "coordinates": [[5, 5], [6, 6]]}, SQUARE, True),
        # MultiLineString reference
        (
            "intersects",
            {"type": "MultiLineString", "coordinates": [[[5, 5], [6, 6]], [[0.5, -1], [0.5, 2]]]},
            SQUARE,
            True,
        ),
        (
            "within",
            {"type": "MultiLineString", "coordinates": [[[5, 5], [6, 6]], [[0.5, -1], [0.5, 2]]]},
            {"type": "LineString", "coordinates": [[0.5, 0], [0.5, 1]]},
            True,
        ),
        # MultiPolygon reference
        (
            "within",
            {"type": "MultiPolygon", "coordinates": [[box(0, 0, 1, 1)], [box(5, 5, 6, 6)]]},
            pt(5.5, 5.5),
            True,
        ),
        (
            "within",
            {"type": "MultiPolygon", "coordinates": [[box(0, 0, 1, 1)], [box(5, 5, 6, 6)]]},
            {"type": "LineString", "coordinates": [[0.5, 0.5], [5.5, 5.5]]},
            False,
        ),
        (
            "contains",
            {"type": "MultiPolygon", "coordinates": [[box(0, 0, 1, 1)], [box(5, 5, 6, 6)]]},
            poly(-1, -1, 7, 7),
            True,
        ),
        (
            "overlaps",
            {"type": "MultiPolygon", "coordinates": [[box(0, 0, 1, 1)], [box(5, 5, 6, 6)]]},
            poly(0.5, 0.5, 5.5, 5.5),
            True,
        ),
        # Polygon with a hole: points in the hole are outside.
        ("within", ENTITIES["poly_hole"], pt(0.5, 0.5), False),
        ("within", ENTITIES["poly_hole"], pt(1.8, 1.8), True),
        ("disjoint", ENTITIES["poly_hole"], pt(0.5, 0.5), True),
    ],
)
def test_georel_with_other_reference_types(
    georel: str, reference: Geo, entity: Geo, expected: bool
) -> None:
    assert q(georel, reference).matches(entity) is expected
    # The table is checked against shapely too, so the test documents shapely's semantics.
    e, r = to_shape(entity), to_shape(reference)
    assert getattr(e, georel)(r) is expected


def test_altitude_is_ignored_and_geometry_collections_are_queried() -> None:
    assert q("within", SQUARE).matches({"type": "Point", "coordinates": [0.5, 0.5, 120.0]})
    line3d = {"type": "LineString", "coordinates": [[0.2, 0.2, 1], [0.8, 0.8]]}
    assert q("within", SQUARE).matches(line3d)
    gc = {"type": "GeometryCollection", "geometries": [pt(0.5, 0.5), ENTITIES["line_in"]]}
    assert q("within", SQUARE).matches(gc)
    assert not q("disjoint", SQUARE).matches(gc)
    gc_out = {"type": "GeometryCollection", "geometries": [pt(0.5, 0.5), pt(9, 9)]}
    assert not q("within", SQUARE).matches(gc_out)


@pytest.mark.parametrize(
    "bad",
    [None, "x", {}, {"type": "Point"}, {"type": "Point", "coordinates": ["a", 0]}, [1, 2]],
)
@pytest.mark.parametrize("georel", ["within", "contains", "intersects", "disjoint", "near"])
def test_malformed_entity_geometries_never_match(bad: Any, georel: str) -> None:
    query = parse_geoquery(
        georel if georel != "near" else "near;maxDistance==100000000",
        "Polygon",
        "[" + str(box(0, 0, 1, 1)) + "]",
    )
    assert query is not None
    assert query.matches(bad) is False


# --- near ------------------------------------------------------------------------------

SEOUL = (126.9780, 37.5665)  # City Hall
BUSAN = (129.0756, 35.1796)  # City Hall


def north(lon: float, lat: float, metres: float) -> Geo:
    return pt(lon, lat + metres / M_PER_DEG)


def east(lon: float, lat: float, metres: float) -> Geo:
    return pt(lon + metres / (M_PER_DEG * math.cos(math.radians(lat))), lat)


def test_haversine_known_distances() -> None:
    assert haversine(*SEOUL, *BUSAN) == pytest.approx(325_000, rel=0.005)
    assert haversine(0, 0, 0, 0) == 0
    assert haversine(0, 0, 180, 0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    assert haversine(10, 89.999, -170, 89.999) == pytest.approx(2 * 0.001 * M_PER_DEG, rel=1e-6)


@pytest.mark.parametrize("lat", [0.0, 35.18, 60.0, -45.0])
def test_one_kilometre(lat: float) -> None:
    gq = q("near;maxDistance==1000", pt(129.0, lat))
    one_north = north(129.0, lat, 1000)
    assert gq.distance(one_north) == pytest.approx(1000, rel=1e-3)
    assert gq.distance(east(129.0, lat, 1000)) == pytest.approx(1000, rel=3e-3)
    assert gq.matches(north(129.0, lat, 999))
    assert not gq.matches(north(129.0, lat, 1001))


def test_seoul_busan_via_query() -> None:
    gq = q("near;maxDistance==330000", pt(*SEOUL))
    assert gq.distance(pt(*BUSAN)) == pytest.approx(325_000, rel=0.005)
    assert gq.matches(pt(*BUSAN))
    assert not q("near;maxDistance==320000", pt(*SEOUL)).matches(pt(*BUSAN))
    assert q("near;minDistance==320000", pt(*SEOUL)).matches(pt(*BUSAN))
    assert not q("near;minDistance==330000", pt(*SEOUL)).matches(pt(*BUSAN))


LON, LAT = BUSAN
D = 500.0  # metres
DLAT = D / M_PER_DEG
DLON = D / (M_PER_DEG * math.cos(math.radians(LAT)))

NEAR_ENTITIES: dict[str, tuple[Geo, float]] = {
    # name: (geometry, true distance in metres from the reference point BUSAN)
    "point": (north(LON, LAT, D), D),
    "line": (
        {"type": "LineString", "coordinates": [[LON - 0.1, LAT + DLAT], [LON + 0.1, LAT + DLAT]]},
        D,
    ),
    "polygon": (poly(LON + DLON, LAT - 0.01, LON + 0.02, LAT + 0.01), D),
    "polygon_around": (poly(LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01), 0.0),
    "multipoint": ({"type": "MultiPoint", "coordinates": [[LON, LAT + DLAT], [LON + 1, LAT]]}, D),
    "multiline": (
        {
            "type": "MultiLineString",
            "coordinates": [
                [[LON + 1, LAT], [LON + 2, LAT]],
                [[LON - DLON, LAT - 0.1], [LON - DLON, LAT + 0.1]],
            ],
        },
        D,
    ),
    "multipolygon": (
        {
            "type": "MultiPolygon",
            "coordinates": [
                [box(LON + 1, LAT, LON + 2, LAT + 1)],
                [box(LON - 0.1, LAT - 0.1, LON + 0.1, LAT - DLAT)],
            ],
        },
        D,
    ),
}


@pytest.mark.parametrize("name", sorted(NEAR_ENTITIES))
def test_near_point_reference_every_entity_type(name: str) -> None:
    geometry, true_d = NEAR_ENTITIES[name]
    ref = pt(LON, LAT)
    got = q("near;maxDistance==1", ref).distance(geometry)
    assert got == pytest.approx(true_d, rel=0.005, abs=0.5)
    assert q(f"near;maxDistance=={true_d * 1.01 + 1}", ref).matches(geometry)
    if true_d > 0:
        assert not q(f"near;maxDistance=={true_d * 0.99}", ref).matches(geometry)
        assert q(f"near;minDistance=={true_d * 0.99}", ref).matches(geometry)
    assert not q(f"near;minDistance=={true_d * 1.01 + 1}", ref).matches(geometry)
    both = q(f"near;maxDistance=={true_d + 100};minDistance=={max(true_d - 100, 0)}", ref)
    assert both.matches(geometry)


@pytest.mark.parametrize(
    "reference",
    [
        {"type": "LineString", "coordinates": [[LON, LAT - 0.05], [LON, LAT + 0.05]]},
        poly(LON - 0.05, LAT - 0.05, LON, LAT + 0.05),
        {"type": "MultiPoint", "coordinates": [[LON, LAT], [LON - 1, LAT - 1]]},
        {"type": "MultiLineString", "coordinates": [[[LON, LAT - 0.05], [LON, LAT + 0.05]]]},
        {"type": "MultiPolygon", "coordinates": [[box(LON - 0.05, LAT - 0.05, LON, LAT + 0.05)]]},
    ],
    ids=lambda r: r["type"],
)
def test_near_other_reference_types(reference: Geo) -> None:
    """An entity 1 km east of the reference's eastern edge (at LAT) is 1 km away."""
    entity = east(LON, LAT, 1000)
    gq = q("near;maxDistance==1010", reference)
    assert gq.distance(entity) == pytest.approx(1000, rel=0.005)
    assert gq.matches(entity)
    assert not q("near;maxDistance==990", reference).matches(entity)
    line = {"type": "LineString", "coordinates": [entity["coordinates"], [LON + 1, LAT]]}
    assert gq.distance(line) == pytest.approx(1000, rel=0.005)


def test_projected_distance_agrees_with_haversine_at_city_scale() -> None:
    """Polygon-to-point distances (projection) vs the great-circle distance to the nearest corner."""
    square = poly(LON, LAT, LON + 0.01, LAT + 0.01)
    gq = q("near;maxDistance==1", square)
    for dx, dy in [(0.05, 0.05), (-0.03, 0.08), (0.1, -0.07), (-0.08, -0.02)]:
        cx = LON + 0.01 if dx > 0 else LON
        cy = LAT + 0.01 if dy > 0 else LAT
        entity = pt(cx + dx, cy + dy)
        assert gq.distance(entity) == pytest.approx(haversine(cx + dx, cy + dy, cx, cy), rel=0.005)


def test_distance_is_zero_inside_and_orders_entities() -> None:
    gq = q("near;maxDistance==5000", pt(LON, LAT))
    assert gq.distance(poly(LON - 1, LAT - 1, LON + 1, LAT + 1)) == 0
    pts = [north(LON, LAT, d) for d in (3000, 10, 700)]
    assert sorted(pts, key=gq.distance) == [pts[1], pts[2], pts[0]]
    assert gq.distance({"type": "Nope"}) == math.inf


# --- prefilter_bbox ---------------------------------------------------------------------


def test_prefilter_bbox() -> None:
    assert q("within", SQUARE).prefilter_bbox() == (0, 0, 1, 1)
    assert q("overlaps", ENTITIES["mpoly_in"]).prefilter_bbox() == (0.1, 0.1, 0.9, 0.9)
    assert q("disjoint", SQUARE).prefilter_bbox() is None
    assert q("near;minDistance==10", pt(1, 1)).prefilter_bbox() is None
    x0, y0, x1, y1 = q("near;maxDistance==1000", pt(LON, LAT)).prefilter_bbox() or (0, 0, 0, 0)
    assert y1 - LAT == pytest.approx(1000 / M_PER_DEG, rel=1e-6)
    assert LAT - y0 == pytest.approx(1000 / M_PER_DEG, rel=1e-6)
    assert x1 - LON > 1000 / (M_PER_DEG * math.cos(math.radians(LAT)))
    assert x1 - LON < 1.001 * 1000 / (M_PER_DEG * math.cos(math.radians(LAT)))
    assert LON - x0 == pytest.approx(x1 - LON)
    # Crossing the antimeridian or reaching a pole widens to all longitudes, clamped latitudes.
    dateline = q("near;maxDistance==1000", pt(179.999, 0)).prefilter_bbox()
    assert dateline is not None and (dateline[0], dateline[2]) == (-180, 180)
    polar = q("near;maxDistance==200000", pt(10, 89)).prefilter_bbox()
    assert polar is not None
    assert polar[0] == -180 and polar[2] == 180 and polar[3] == 90
    assert q("near;maxDistance==30000000", pt(0, 0)).prefilter_bbox() == (-180, -90, 180, 90)


def test_near_across_the_antimeridian() -> None:
    gq = q("near;maxDistance==3000", pt(179.99, 0))
    other_side = pt(-179.99, 0)
    assert gq.distance(other_side) == pytest.approx(0.02 * M_PER_DEG, rel=1e-6)
    assert gq.matches(other_side)
    bbox = gq.prefilter_bbox()
    assert bbox is not None and bbox[0] <= -179.99
    line = {"type": "LineString", "coordinates": [[-179.99, -1], [-179.99, 1]]}
    assert gq.distance(line) == pytest.approx(0.02 * M_PER_DEG, rel=1e-3)


# --- parse_geoquery ----------------------------------------------------------------------


def test_parse_geoquery_forms() -> None:
    assert parse_geoquery(None, None, None) is None
    assert parse_geoquery(None, None, None, "location") is None
    gq = parse_geoquery("near;maxDistance==2000", "Point", "[8,40]")
    assert gq == GeoQuery("near", pt(8, 40), 2000.0, None, "location")
    assert gq is not None and gq.geometry == pt(8, 40)
    # A POST /entityOperations/query body or subscription geoQ: coordinates already parsed.
    body = parse_geoquery("within", "Polygon", [box(0, 0, 1, 1)], "observationSpace")
    assert body is not None
    assert (body.georel, body.geoproperty, body.max_distance) == (
        "within",
        "observationSpace",
        None,
    )
    assert body.geometry == SQUARE
    near = parse_geoquery("near;minDistance==10.5", "Point", " [8, 40] ")
    assert near is not None and (near.max_distance, near.min_distance) == (None, 10.5)
    both = parse_geoquery("near;maxDistance==100;minDistance==10", "Point", "[8,40]")
    assert both is not None and (both.max_distance, both.min_distance) == (100, 10)
    zero = parse_geoquery("near;maxDistance==0", "Point", "[8,40]")
    assert zero is not None and zero.matches(pt(8, 40)) and not zero.matches(pt(8, 40.00001))
    for georel in ("within", "contains", "intersects", "equals", "disjoint", "overlaps"):
        parsed = parse_geoquery(georel, "Point", "[8,40]")
        assert parsed is not None and parsed.georel == georel
        assert (parsed.max_distance, parsed.min_distance) == (None, None)


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "fragment"),
    [
        ("within", None, None, "missing geometry, coordinates"),
        (None, "Point", "[1,2]", "missing georel"),
        ("within", "Point", None, "missing coordinates"),
        ("near", "Point", "[1,2]", "distance is required"),
        ("near;", "Point", "[1,2]", "maxDistance"),
        ("near;maxDistance=2000", "Point", "[1,2]", "maxDistance"),
        ("near;maxDistance:2000", "Point", "[1,2]", "maxDistance"),
        ("near;maxDistance==", "Point", "[1,2]", "decimal"),
        ("near;maxDistance==-5", "Point", "[1,2]", "decimal"),
        ("near;maxDistance==1e3", "Point", "[1,2]", "decimal"),
        ("near;maxDistance==abc", "Point", "[1,2]", "decimal"),
        ("near;maxDistance==1.", "Point", "[1,2]", "decimal"),
        ("near;maxDistance==" + "9" * 400, "Point", "[1,2]", "out of range"),
        ("near;maxDistance==1;maxDistance==2", "Point", "[1,2]", "twice"),
        ("near;maxDistance==1;minDistance==2", "Point", "[1,2]", "must not exceed"),
        ("near;radius==10", "Point", "[1,2]", "maxDistance"),
        ("within;maxDistance==10", "Point", "[1,2]", "no modifiers"),
        ("inside", "Point", "[1,2]", "Invalid georel"),
        ("", "Point", "[1,2]", "Invalid georel"),
        ("WITHIN", "Point", "[1,2]", "Invalid georel"),
        ("within", "Circle", "[1,2]", "unknown geometry"),
        ("within", "GeometryCollection", "[]", "unknown geometry"),
        ("within", "point", "[1,2]", "unknown geometry"),
        ("within", "Point", "1,2", "not a JSON array"),
        ("within", "Point", "[1,2", "not a JSON array"),
        ("within", "Point", '{"a": 1}', "JSON array"),
        ("within", "Point", "[200,2]", "longitude"),
        ("within", "Point", "[1,95]", "latitude"),
        ("within", "Point", '["1","2"]', "must be a number"),
        ("within", "Point", "[[1,2]]", "must be a number"),
        ("within", "Polygon", "[[1,2],[3,4],[5,6],[1,2]]", "positions"),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", "not closed"),
        ("within", "Polygon", "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]", "Self-intersection"),
        ("within", "LineString", "[[0,0]]", "at least 2"),
        ("within", "LineString", "[[0,0],[0,0]]", "Invalid reference geometry"),
    ],
)
def test_parse_geoquery_errors(
    georel: str | None, geometry: str | None, coordinates: str | None, fragment: str
) -> None:
    with pytest.raises(BadRequestData) as info:
        parse_geoquery(georel, geometry, coordinates)
    assert fragment in info.value.detail
    assert info.value.status == 400


def test_parse_geoquery_bad_types_and_geoproperty() -> None:
    with pytest.raises(BadRequestData):
        parse_geoquery("within", "Point", 12)  # type: ignore[arg-type]
    with pytest.raises(BadRequestData):
        parse_geoquery(["within"], "Point", "[1,2]")  # type: ignore[arg-type]
    with pytest.raises(BadRequestData, match="geoproperty"):
        parse_geoquery("within", "Point", "[1,2]", "")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(BadRequestData):
        GeoQuery("near", pt(0, 0), None, None, "location")
    with pytest.raises(BadRequestData):
        GeoQuery("within", pt(0, 0), 10.0, None, "location")
    with pytest.raises(BadRequestData):
        GeoQuery("near", pt(0, 0), -1.0, None, "location")
    with pytest.raises(BadRequestData):
        GeoQuery("nearby", pt(0, 0), None, None, "location")
    with pytest.raises(BadRequestData):
        GeoQuery("within", {"type": "Point", "coordinates": [0]}, None, None, "location")


# --- validate_geometry / geometry_bbox ---------------------------------------------------

VALID: list[Geo] = [
    pt(0, 0),
    pt(-180, -90),
    pt(180, 90),
    {"type": "Point", "coordinates": [1.5, 2, 30]},
    {"type": "Point", "coordinates": [1, 2], "bbox": [1, 2, 1, 2]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
    {"type": "LineString", "coordinates": [[0, 0, 1], [1, 1]]},
    SQUARE,
    ENTITIES["poly_hole"],
    {"type": "MultiPoint", "coordinates": [[0, 0]]},
    ENTITIES["mline_in"],
    ENTITIES["mpoly_in"],
    {"type": "GeometryCollection", "geometries": [pt(0, 0), SQUARE]},
]


@pytest.mark.parametrize("geometry", VALID, ids=lambda g: g["type"])
def test_valid_geometries_are_returned_unchanged(geometry: Geo) -> None:
    assert validate_geometry(geometry) is geometry


INVALID: list[tuple[Any, str]] = [
    (None, "JSON object"),
    ([0, 0], "JSON object"),
    ({}, "unknown type"),
    ({"type": "Circle", "coordinates": [0, 0]}, "unknown type"),
    ({"type": "point", "coordinates": [0, 0]}, "unknown type"),
    ({"type": "Feature", "geometry": pt(0, 0)}, "unknown type"),
    ({"type": "Point"}, "no 'coordinates'"),
    ({"type": "Point", "coordinates": None}, "must be a position"),
    ({"type": "Point", "coordinates": "[0,0]"}, "must be a position"),
    ({"type": "Point", "coordinates": [0]}, "2 or 3"),
    ({"type": "Point", "coordinates": [0, 0, 0, 0]}, "2 or 3"),
    ({"type": "Point", "coordinates": ["1", 2]}, "must be a number"),
    ({"type": "Point", "coordinates": [True, 2]}, "must be a number"),
    ({"type": "Point", "coordinates": [1, None]}, "must be a number"),
    ({"type": "Point", "coordinates": [1, 2, "high"]}, "must be a number"),
    ({"type": "Point", "coordinates": [float("nan"), 2]}, "finite"),
    ({"type": "Point", "coordinates": [float("inf"), 2]}, "finite"),
    ({"type": "Point", "coordinates": [10**400, 2]}, "longitude"),
    ({"type": "Point", "coordinates": [180.0001, 0]}, "longitude"),
    ({"type": "Point", "coordinates": [-181, 0]}, "longitude"),
    ({"type": "Point", "coordinates": [0, 90.5]}, "latitude"),
    ({"type": "Point", "coordinates": [0, -91]}, "latitude"),
    ({"type": "Point", "coordinates": [[0, 0]]}, "must be a number"),
    ({"type": "LineString", "coordinates": [[0, 0]]}, "at least 2"),
    ({"type": "LineString", "coordinates": [0, 0]}, "array of positions"),
    ({"type": "LineString", "coordinates": [[[0, 0], [1, 1]]]}, "must be a number"),
    ({"type": "Polygon", "coordinates": []}, "at least 1"),
    ({"type": "Polygon", "coordinates": box(0, 0, 1, 1)}, "array of positions"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "not closed"),
    (
        {"type": "Polygon", "coordinates": [box(0, 0, 1, 1), [[0, 0], [1, 0], [1, 1], [0, 1]]]},
        "not closed",
    ),
    ({"type": "Polygon", "coordinates": [[[0, 0, 5], [1, 0], [1, 1], [0, 0]]]}, "not closed"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 200], [0, 0]]]}, "latitude"),
    ({"type": "MultiPoint", "coordinates": []}, "at least 1"),
    ({"type": "MultiPoint", "coordinates": [0, 0]}, "array of positions"),
    ({"type": "MultiLineString", "coordinates": [[[0, 0]]]}, "at least 2"),
    ({"type": "MultiLineString", "coordinates": [[0, 0], [1, 1]]}, "array of positions"),
    ({"type": "MultiPolygon", "coordinates": [box(0, 0, 1, 1)]}, "array of positions"),
    ({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1]]]]}, "not closed"),
    ({"type": "GeometryCollection", "geometries": []}, "at least 1"),
    ({"type": "GeometryCollection"}, "array of geometries"),
    ({"type": "GeometryCollection", "geometries": [{"type": "Point"}]}, "in geometries[0]"),
    (
        {
            "type": "GeometryCollection",
            "geometries": [{"type": "GeometryCollection", "geometries": [pt(0, 0)]}],
        },
        "nested",
    ),
]


@pytest.mark.parametrize(("geometry", "fragment"), INVALID)
def test_invalid_geometries(geometry: Any, fragment: str) -> None:
    with pytest.raises(BadRequestData) as info:
        validate_geometry(geometry)
    assert fragment in info.value.detail


def test_geometry_bbox() -> None:
    assert geometry_bbox(pt(1, 2)) == (1, 2, 1, 2)
    assert geometry_bbox({"type": "Point", "coordinates": [1, 2, 3]}) == (1, 2, 1, 2)
    assert geometry_bbox(ENTITIES["poly_hole"]) == (-1, -1, 2, 2)
    assert geometry_bbox(ENTITIES["line_cross"]) == (0.5, 0.5, 2, 0.5)
    assert geometry_bbox(ENTITIES["mpt_some"]) == (0.1, 0.1, 5, 5)
    assert geometry_bbox(ENTITIES["mline_cross"]) == (0.1, 0.1, 3, 0.5)
    assert geometry_bbox(ENTITIES["mpoly_overlap"]) == (0.1, 0.1, 3, 3)
    gc = {"type": "GeometryCollection", "geometries": [pt(-5, 1), SQUARE]}
    assert geometry_bbox(gc) == (-5, 0, 1, 1)
    assert all(isinstance(v, float) for v in geometry_bbox(SQUARE))


# --- properties --------------------------------------------------------------------------

lons = st.floats(-180, 180, allow_nan=False)
lats = st.floats(-89.9, 89.9, allow_nan=False)


def in_box(lon: float, lat: float, bbox: tuple[float, float, float, float]) -> bool:
    return bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]


@PROPS
@given(
    lon=lons,
    lat=lats,
    dist=st.floats(0, 3_000_000),
    offsets=st.lists(
        st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)), min_size=1, max_size=20
    ),
)
def test_near_matches_lie_in_prefilter_bbox(
    lon: float, lat: float, dist: float, offsets: list[tuple[float, float]]
) -> None:
    """Points are drawn around the reference at up to 1.5x the distance (in degrees at the
    reference's latitude, so longitude offsets grow near the poles)."""
    gq = q(f"near;maxDistance=={dist:.3f}", pt(lon, lat))
    bbox = gq.prefilter_bbox()
    assert bbox is not None
    span = dist / M_PER_DEG
    for fx, fy in offsets:
        plat = min(90.0, max(-90.0, lat + fy * span))
        plon = lon + fx * span / max(math.cos(math.radians(lat)), 1e-6)
        plon = (plon + 180.0) % 360.0 - 180.0
        if gq.matches(pt(plon, plat)):
            assert in_box(plon, plat, bbox), (plon, plat, bbox)


@PROPS
@given(
    lon=st.floats(-170, 170),
    lat=st.floats(-75, 75),
    size=st.floats(0.0001, 0.5),
    dist=st.floats(0, 50_000),
    offsets=st.lists(
        st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)), min_size=1, max_size=10
    ),
)
def test_near_polygon_reference_matches_lie_in_prefilter_bbox(
    lon: float,
    lat: float,
    size: float,
    dist: float,
    offsets: list[tuple[float, float]],
) -> None:
    """Points (and short lines starting there) around a square reference, out to ~1.5x reach."""
    gq = q(f"near;maxDistance=={dist:.3f}", poly(lon, lat, lon + size, lat + size))
    bbox = gq.prefilter_bbox()
    assert bbox is not None
    cx, cy = lon + size / 2, lat + size / 2
    reach_y = size / 2 + dist / M_PER_DEG
    reach_x = size / 2 + dist / M_PER_DEG / math.cos(math.radians(abs(lat) + size))
    for fx, fy in offsets:
        x = (cx + fx * reach_x + 180.0) % 360.0 - 180.0
        y = max(-90.0, min(90.0, cy + fy * reach_y))
        if gq.matches(pt(x, y)):
            assert in_box(x, y, bbox)
        line = {"type": "LineString", "coordinates": [[x, y], [x + 0.1 * fy * size, y]]}
        if gq.matches(line):
            x0, y0, x1, y1 = geometry_bbox(line)
            assert x0 <= bbox[2] and x1 >= bbox[0] and y0 <= bbox[3] and y1 >= bbox[1]


@st.composite
def polygons(draw: st.DrawFn) -> Geo:
    """Random simple polygons: the convex hull, or a star-shaped ring around a centre."""
    cx = draw(st.floats(-170, 170))
    cy = draw(st.floats(-80, 80))
    n = draw(st.integers(3, 12))
    radii = draw(st.lists(st.floats(0.01, 5), min_size=n, max_size=n))
    ring = [
        [cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n)]
        for i, r in enumerate(radii)
    ]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


@PROPS
@given(
    polygon=polygons(),
    points=st.lists(st.tuples(st.floats(-6, 6), st.floats(-6, 6)), min_size=1, max_size=30),
)
def test_within_polygon_agrees_with_shapely(
    polygon: Geo, points: list[tuple[float, float]]
) -> None:
    ref = shapely.Polygon(polygon["coordinates"][0])
    gq = q("within", polygon)
    cx, cy = polygon["coordinates"][0][0]
    for dx, dy in points:
        p = pt(cx + dx, max(-90.0, min(90.0, cy + dy)))
        assert gq.matches(p) is shapely.Point(p["coordinates"]).within(ref)
    vertices = polygon["coordinates"][0]
    assert not gq.matches(pt(*vertices[0]))  # a vertex is on the boundary
    segment = {"type": "LineString", "coordinates": [vertices[0], vertices[2]]}
    assert gq.matches(segment) is to_shape(segment).within(ref)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["type", "coordinates", "geometries", "x"]), children, max_size=3
        )
    ),
    max_leaves=30,
)

GEORELISH = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(["near", "within", "near;", "near;maxDistance", "near;minDistance", ""]),
        st.sampled_from(["==", "=", ";", ":", "", "== "]),
        st.text(alphabet="0123456789.-e;=maxDistance ", max_size=15),
    ),
)


@PROPS
@given(
    georel=st.none() | GEORELISH,
    geometry=st.none()
    | st.text(max_size=20)
    | st.sampled_from(
        sorted(["Point", "Polygon", "LineString", "MultiPoint", "MultiLineString", "MultiPolygon"])
    ),
    coordinates=st.none()
    | st.text(max_size=60)
    | JSONISH.map(json.dumps)
    | st.lists(JSONISH, max_size=4),
    geoproperty=st.none() | st.text(max_size=10),
)
def test_parse_geoquery_raises_only_bad_request_data(
    georel: str | None, geometry: str | None, coordinates: Any, geoproperty: str | None
) -> None:
    try:
        gq = parse_geoquery(georel, geometry, coordinates, geoproperty)
    except BadRequestData:
        return
    if gq is not None:
        # Whatever parses must be evaluable.
        gq.matches(pt(0, 0))
        gq.distance(SQUARE)
        gq.prefilter_bbox()


@PROPS
@given(JSONISH)
def test_validate_geometry_raises_only_bad_request_data(value: Any) -> None:
    try:
        validate_geometry(value)
    except BadRequestData:
        return
    to_shape(value)
    geometry_bbox(value)

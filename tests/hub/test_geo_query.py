"""Geo-queries end to end (ETSI GS CIM 009 V1.8.1 clause 4.10; GeoQuery 5.2.13; 6.4.3.2).

The entity's GeoProperty is the subject of the relation: `within` means the
entity geometry lies within the reference geometry given by `geometry` and
`coordinates`; `contains` means the entity geometry contains the reference.
`near;maxDistance==d` / `near;minDistance==d` compare distances in metres.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import assert_problem, ids_of, post_query, query, seed

BUSAN = [128.9, 35.1]


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def located(eid: str, etype: str, geometry: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    return {
        "id": eid,
        "type": etype,
        "location": {"type": "GeoProperty", "value": geometry},
        **attrs,
    }


# Points around Busan (lon 128.9, lat 35.1), with their rough distance from it.
P0 = "urn:ngsi-ld:Buoy:p0"  # 0 m
P1 = "urn:ngsi-ld:Buoy:p1"  # ~455 m east
P2 = "urn:ngsi-ld:Buoy:p2"  # ~1.1 km north
P3 = "urn:ngsi-ld:Buoy:p3"  # ~2.7 km east
P4 = "urn:ngsi-ld:Buoy:p4"  # ~14 km north-east
SEOUL = "urn:ngsi-ld:Buoy:seoul"  # ~325 km
NOWHERE = "urn:ngsi-ld:Buoy:nowhere"  # no location at all
BUOYS = [
    located(P3, "Buoy", point(128.93, 35.1), depth={"type": "Property", "value": 30}),
    located(P0, "Buoy", point(128.9, 35.1), depth={"type": "Property", "value": 10}),
    located(SEOUL, "Buoy", point(126.97, 37.56), depth={"type": "Property", "value": 5}),
    located(P2, "Buoy", point(128.9, 35.11), depth={"type": "Property", "value": 20}),
    located(P4, "Buoy", point(129.0, 35.2), depth={"type": "Property", "value": 50}),
    located(P1, "Buoy", point(128.905, 35.1), depth={"type": "Property", "value": 40}),
    {"id": NOWHERE, "type": "Buoy", "depth": {"type": "Property", "value": 1}},
]


@pytest.fixture
async def buoys(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await seed(client, BUOYS)
    return client


def near(
    georel: str, coordinates: Any = BUSAN, geometry: str = "Point", **extra: str
) -> dict[str, str]:
    return {
        "type": "Buoy",
        "georel": georel,
        "geometry": geometry,
        "coordinates": json.dumps(coordinates),
        **extra,
    }


def ordered_ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return [e["id"] for e in resp.json()]


# --- near ------------------------------------------------------------------------------


async def test_near_max_distance(buoys: httpx.AsyncClient) -> None:
    assert ids_of(await query(buoys, near("near;maxDistance==2000"))) == sorted([P0, P1, P2])


async def test_near_max_distance_sorted_by_distance(buoys: httpx.AsyncClient) -> None:
    assert ordered_ids(await query(buoys, near("near;maxDistance==20000"))) == [P0, P1, P2, P3, P4]


async def test_near_min_distance(buoys: httpx.AsyncClient) -> None:
    resp = await query(buoys, near("near;minDistance==2000"))
    assert ids_of(resp) == sorted([P3, P4, SEOUL])


async def test_near_min_distance_sorted_by_distance(buoys: httpx.AsyncClient) -> None:
    resp = await query(buoys, near("near;minDistance==2000"))
    assert ordered_ids(resp) == [P3, P4, SEOUL]


async def test_near_min_and_max_distance(buoys: httpx.AsyncClient) -> None:
    resp = await query(buoys, near("near;minDistance==1000;maxDistance==5000"))
    assert ordered_ids(resp) == [P2, P3]


async def test_near_boundary_is_inclusive_enough(buoys: httpx.AsyncClient) -> None:
    # P1 is ~455 m away: 400 m excludes it, 500 m includes it.
    assert P1 not in ids_of(await query(buoys, near("near;maxDistance==400")))
    assert P1 in ids_of(await query(buoys, near("near;maxDistance==500")))


async def test_near_zero_distance_finds_the_point_itself(buoys: httpx.AsyncClient) -> None:
    assert ids_of(await query(buoys, near("near;maxDistance==0"))) == [P0]


async def test_near_multipoint_reference(buoys: httpx.AsyncClient) -> None:
    coords = [[128.93, 35.1], [126.97, 37.56]]
    resp = await query(buoys, near("near;maxDistance==100", coords, "MultiPoint"))
    assert ids_of(resp) == sorted([P3, SEOUL])


async def test_near_linestring_reference(buoys: httpx.AsyncClient) -> None:
    # A line due north from P3's position: P3 lies on it; P0 is ~2.7 km west of it.
    coords = [[128.93, 35.05], [128.93, 35.15]]
    resp = await query(buoys, near("near;maxDistance==100", coords, "LineString"))
    assert ids_of(resp) == [P3]


async def test_near_with_paging_keeps_distance_order(buoys: httpx.AsyncClient) -> None:
    first = ordered_ids(await query(buoys, near("near;maxDistance==20000", limit="2")))
    second = ordered_ids(await query(buoys, near("near;maxDistance==20000", limit="2", offset="2")))
    assert first + second == [P0, P1, P2, P3]


async def test_near_with_q(buoys: httpx.AsyncClient) -> None:
    resp = await query(buoys, near("near;maxDistance==20000", q="depth>=30"))
    assert ordered_ids(resp) == [P1, P3, P4]


async def test_near_count(buoys: httpx.AsyncClient) -> None:
    resp = await query(buoys, near("near;maxDistance==2000", count="true", limit="1"))
    assert resp.headers["NGSILD-Results-Count"] == "3"
    assert ordered_ids(resp) == [P0]


async def test_entities_without_location_never_match(buoys: httpx.AsyncClient) -> None:
    resp = await query(buoys, near("near;minDistance==0"))
    assert NOWHERE not in ids_of(resp)
    assert len(ids_of(resp)) == 6


async def test_post_query_near_sorted(buoys: httpx.AsyncClient) -> None:
    body = {
        "entities": [{"type": "Buoy"}],
        "geoQ": {"georel": "near;maxDistance==5000", "geometry": "Point", "coordinates": BUSAN},
    }
    assert ordered_ids(await post_query(buoys, body)) == [P0, P1, P2, P3]


async def test_post_query_geo_q_coordinates_as_string(buoys: httpx.AsyncClient) -> None:
    body = {
        "entities": [{"type": "Buoy"}],
        "geoQ": {
            "georel": "near;maxDistance==1000",
            "geometry": "Point",
            "coordinates": "[128.9, 35.1]",
        },
    }
    assert ids_of(await post_query(buoys, body)) == sorted([P0, P1])


async def test_post_query_geo_q_alone(buoys: httpx.AsyncClient) -> None:
    body = {"geoQ": {"georel": "near;maxDistance==100", "geometry": "Point", "coordinates": BUSAN}}
    assert ids_of(await post_query(buoys, body)) == [P0]


# --- topological relations over every geometry type --------------------------------------

REF_SQUARE = [[[128.8, 35.0], [129.1, 35.0], [129.1, 35.3], [128.8, 35.3], [128.8, 35.0]]]
SEOUL_SQUARE = [[[126.9, 37.4], [127.1, 37.4], [127.1, 37.6], [126.9, 37.6], [126.9, 37.4]]]

Z_POINT_IN = "urn:ngsi-ld:Zone:point-in"
Z_POINT_OUT = "urn:ngsi-ld:Zone:point-out"
Z_LINE_IN = "urn:ngsi-ld:Zone:line-in"
Z_LINE_CROSS = "urn:ngsi-ld:Zone:line-cross"
Z_POLY_IN = "urn:ngsi-ld:Zone:poly-in"
Z_POLY_OVERLAP = "urn:ngsi-ld:Zone:poly-overlap"
Z_POLY_BIG = "urn:ngsi-ld:Zone:poly-big"
Z_POLY_EQUAL = "urn:ngsi-ld:Zone:poly-equal"
Z_MULTIPOINT = "urn:ngsi-ld:Zone:multipoint"
Z_MULTILINE = "urn:ngsi-ld:Zone:multiline"
Z_MULTIPOLY = "urn:ngsi-ld:Zone:multipoly"
Z_NONE = "urn:ngsi-ld:Zone:none"

ZONES = [
    located(Z_POINT_IN, "Zone", point(128.95, 35.15)),
    located(Z_POINT_OUT, "Zone", point(127.0, 37.5)),
    located(
        Z_LINE_IN, "Zone", {"type": "LineString", "coordinates": [[128.85, 35.05], [128.95, 35.15]]}
    ),
    located(
        Z_LINE_CROSS, "Zone", {"type": "LineString", "coordinates": [[128.7, 35.1], [128.95, 35.1]]}
    ),
    located(
        Z_POLY_IN,
        "Zone",
        {
            "type": "Polygon",
            "coordinates": [
                [[128.9, 35.1], [128.95, 35.1], [128.95, 35.15], [128.9, 35.15], [128.9, 35.1]]
            ],
        },
    ),
    located(
        Z_POLY_OVERLAP,
        "Zone",
        {
            "type": "Polygon",
            "coordinates": [
                [[129.0, 35.2], [129.2, 35.2], [129.2, 35.4], [129.0, 35.4], [129.0, 35.2]]
            ],
        },
    ),
    located(
        Z_POLY_BIG,
        "Zone",
        {
            "type": "Polygon",
            "coordinates": [
                [[128.0, 34.0], [130.0, 34.0], [130.0, 36.0], [128.0, 36.0], [128.0, 34.0]]
            ],
        },
    ),
    located(Z_POLY_EQUAL, "Zone", {"type": "Polygon", "coordinates": REF_SQUARE}),
    located(
        Z_MULTIPOINT,
        "Zone",
        {"type": "MultiPoint", "coordinates": [[128.85, 35.05], [128.95, 35.25]]},
    ),
    located(
        Z_MULTILINE,
        "Zone",
        {
            "type": "MultiLineString",
            "coordinates": [[[128.85, 35.05], [128.9, 35.1]], [[127.0, 37.0], [127.1, 37.1]]],
        },
    ),
    located(Z_MULTIPOLY, "Zone", {"type": "MultiPolygon", "coordinates": [SEOUL_SQUARE]}),
    {"id": Z_NONE, "type": "Zone", "name": {"type": "Property", "value": "no geometry"}},
]
ALL_LOCATED = sorted(z["id"] for z in ZONES if "location" in z)


@pytest.fixture
async def zones(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await seed(client, ZONES)
    return client


def geo(georel: str, geometry: str, coordinates: Any, **extra: str) -> dict[str, str]:
    return {
        "type": "Zone",
        "georel": georel,
        "geometry": geometry,
        "coordinates": json.dumps(coordinates),
        **extra,
    }


async def test_within_polygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("within", "Polygon", REF_SQUARE))
    assert ids_of(resp) == sorted([Z_POINT_IN, Z_LINE_IN, Z_POLY_IN, Z_MULTIPOINT, Z_POLY_EQUAL])


async def test_intersects_polygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("intersects", "Polygon", REF_SQUARE))
    expected = [
        Z_POINT_IN,
        Z_LINE_IN,
        Z_LINE_CROSS,
        Z_POLY_IN,
        Z_POLY_OVERLAP,
        Z_POLY_BIG,
        Z_POLY_EQUAL,
        Z_MULTIPOINT,
        Z_MULTILINE,
    ]
    assert ids_of(resp) == sorted(expected)


async def test_disjoint_polygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("disjoint", "Polygon", REF_SQUARE))
    assert ids_of(resp) == sorted([Z_POINT_OUT, Z_MULTIPOLY])


async def test_disjoint_skips_entities_without_the_geoproperty(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("disjoint", "Polygon", REF_SQUARE))
    assert Z_NONE not in ids_of(resp)


async def test_contains_polygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("contains", "Polygon", REF_SQUARE))
    assert ids_of(resp) == sorted([Z_POLY_BIG, Z_POLY_EQUAL])


async def test_overlaps_polygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("overlaps", "Polygon", REF_SQUARE))
    assert ids_of(resp) == [Z_POLY_OVERLAP]


async def test_equals_polygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("equals", "Polygon", REF_SQUARE))
    assert ids_of(resp) == [Z_POLY_EQUAL]


async def test_equals_point(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("equals", "Point", [128.95, 35.15]))
    assert ids_of(resp) == [Z_POINT_IN]


async def test_contains_point(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("contains", "Point", [128.93, 35.12]))
    assert ids_of(resp) == sorted([Z_POLY_IN, Z_POLY_BIG, Z_POLY_EQUAL])


async def test_intersects_linestring(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("intersects", "LineString", [[128.7, 35.12], [129.2, 35.12]]))
    assert ids_of(resp) == sorted([Z_LINE_IN, Z_POLY_IN, Z_POLY_BIG, Z_POLY_EQUAL])


async def test_within_multipolygon(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("within", "MultiPolygon", [REF_SQUARE, SEOUL_SQUARE]))
    expected = [
        Z_POINT_IN,
        Z_LINE_IN,
        Z_POLY_IN,
        Z_MULTIPOINT,
        Z_POLY_EQUAL,
        Z_POINT_OUT,
        Z_MULTIPOLY,
    ]
    assert ids_of(resp) == sorted(expected)


async def test_intersects_multipoint(zones: httpx.AsyncClient) -> None:
    resp = await query(zones, geo("intersects", "MultiPoint", [[127.0, 37.5], [125.0, 33.0]]))
    assert ids_of(resp) == sorted([Z_POINT_OUT, Z_MULTIPOLY])


async def test_intersects_multilinestring(zones: httpx.AsyncClient) -> None:
    lines = [[[126.95, 37.3], [126.95, 37.7]], [[128.0, 34.5], [128.1, 34.5]]]
    resp = await query(zones, geo("intersects", "MultiLineString", lines))
    # The first line crosses the Seoul square; the second lies inside the big polygon only.
    assert ids_of(resp) == sorted([Z_MULTIPOLY, Z_POLY_BIG])


async def test_within_with_q_and_type(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [
            located(
                "urn:ngsi-ld:Shop:a",
                "Shop",
                point(128.95, 35.15),
                open={"type": "Property", "value": True},
            ),
            located(
                "urn:ngsi-ld:Shop:b",
                "Shop",
                point(128.96, 35.16),
                open={"type": "Property", "value": False},
            ),
            located(
                "urn:ngsi-ld:Cafe:c",
                "Cafe",
                point(128.95, 35.15),
                open={"type": "Property", "value": True},
            ),
            located(
                "urn:ngsi-ld:Shop:d",
                "Shop",
                point(127.0, 37.5),
                open={"type": "Property", "value": True},
            ),
        ],
    )
    params = {
        "type": "Shop",
        "q": "open==true",
        "georel": "within",
        "geometry": "Polygon",
        "coordinates": json.dumps(REF_SQUARE),
    }
    assert ids_of(await query(client, params)) == ["urn:ngsi-ld:Shop:a"]


async def test_post_query_within(zones: httpx.AsyncClient) -> None:
    body = {
        "entities": [{"type": "Zone"}],
        "geoQ": {"georel": "equals", "geometry": "Polygon", "coordinates": REF_SQUARE},
    }
    assert ids_of(await post_query(zones, body)) == [Z_POLY_EQUAL]


# --- geoproperty other than location -----------------------------------------------------


@pytest.fixture
async def depots(client: httpx.AsyncClient) -> httpx.AsyncClient:
    area_busan = {"type": "Polygon", "coordinates": REF_SQUARE}
    area_seoul = {"type": "Polygon", "coordinates": SEOUL_SQUARE}
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Depot:1",
                "type": "Depot",
                "location": {"type": "GeoProperty", "value": point(127.0, 37.5)},
                "deliveryArea": {"type": "GeoProperty", "value": area_busan},
            },
            {
                "id": "urn:ngsi-ld:Depot:2",
                "type": "Depot",
                "location": {"type": "GeoProperty", "value": point(128.95, 35.15)},
                "deliveryArea": {"type": "GeoProperty", "value": area_seoul},
            },
            {
                "id": "urn:ngsi-ld:Depot:3",
                "type": "Depot",
                "location": {"type": "GeoProperty", "value": point(128.95, 35.15)},
            },
            {
                "id": "urn:ngsi-ld:Depot:4",
                "type": "Depot",
                "observationSpace": {"type": "GeoProperty", "value": area_busan},
            },
        ],
    )
    return client


async def test_geoproperty_selects_the_geoproperty(depots: httpx.AsyncClient) -> None:
    params = {
        "type": "Depot",
        "georel": "intersects",
        "geometry": "Point",
        "coordinates": "[128.95,35.15]",
        "geoproperty": "deliveryArea",
    }
    assert ids_of(await query(depots, params)) == ["urn:ngsi-ld:Depot:1"]


async def test_default_geoproperty_is_location(depots: httpx.AsyncClient) -> None:
    params = {
        "type": "Depot",
        "georel": "intersects",
        "geometry": "Point",
        "coordinates": "[128.95,35.15]",
    }
    assert ids_of(await query(depots, params)) == ["urn:ngsi-ld:Depot:2", "urn:ngsi-ld:Depot:3"]


async def test_geoproperty_core_observation_space(depots: httpx.AsyncClient) -> None:
    params = {
        "type": "Depot",
        "georel": "contains",
        "geometry": "Point",
        "coordinates": "[128.95,35.15]",
        "geoproperty": "observationSpace",
    }
    assert ids_of(await query(depots, params)) == ["urn:ngsi-ld:Depot:4"]


async def test_geoproperty_disjoint_needs_the_property(depots: httpx.AsyncClient) -> None:
    params = {
        "type": "Depot",
        "georel": "disjoint",
        "geometry": "Point",
        "coordinates": "[0,0]",
        "geoproperty": "deliveryArea",
    }
    assert ids_of(await query(depots, params)) == ["urn:ngsi-ld:Depot:1", "urn:ngsi-ld:Depot:2"]


async def test_post_query_geoproperty(depots: httpx.AsyncClient) -> None:
    body = {
        "entities": [{"type": "Depot"}],
        "geoQ": {
            "georel": "within",
            "geometry": "Polygon",
            "coordinates": SEOUL_SQUARE,
            "geoproperty": "deliveryArea",
        },
    }
    assert ids_of(await post_query(depots, body)) == ["urn:ngsi-ld:Depot:2"]


# --- invalid geo-queries -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates"),
    [
        ("near", "Point", "[128.9,35.1]"),  # near without a distance
        ("near;maxDistance==abc", "Point", "[128.9,35.1]"),
        ("near;maxDistance==-5", "Point", "[128.9,35.1]"),
        ("near;distance==5", "Point", "[128.9,35.1]"),
        ("within;maxDistance==5", "Polygon", json.dumps(REF_SQUARE)),
        ("touches", "Point", "[128.9,35.1]"),
        ("within", "Circle", "[128.9,35.1]"),
        ("within", "Polygon", "[128.9,35.1"),  # not JSON
        ("within", "Polygon", "[128.9,35.1]"),  # not a polygon's coordinates
        ("near;maxDistance==10", "Point", "[[128.9,35.1]]"),  # not a position
        ("near;maxDistance==10", "Point", "[128.9]"),  # one number only
        ("near;maxDistance==10", "Point", "[128.9,95.0]"),  # latitude out of range
        ("near;maxDistance==10", "Point", "[200.0,35.1]"),  # longitude out of range
        ("within", "Polygon", "[[[128.8,35.0],[129.1,35.0],[129.1,35.3]]]"),  # not closed
        ("within", "LineString", "[[128.8,35.0]]"),  # a line needs two positions
        ("within", "Point", '["a","b"]'),
    ],
)
async def test_invalid_geo_query_is_bad_request(
    zones: httpx.AsyncClient, georel: str, geometry: str, coordinates: str
) -> None:
    params = {"type": "Zone", "georel": georel, "geometry": geometry, "coordinates": coordinates}
    assert_problem(await query(zones, params), 400, "BadRequestData")


@pytest.mark.parametrize("missing", ["georel", "geometry", "coordinates"])
async def test_incomplete_geo_query_is_bad_request(zones: httpx.AsyncClient, missing: str) -> None:
    params = {
        "type": "Zone",
        "georel": "within",
        "geometry": "Polygon",
        "coordinates": json.dumps(REF_SQUARE),
    }
    del params[missing]
    assert_problem(await query(zones, params), 400, "BadRequestData")


async def test_post_query_invalid_geo_q_is_bad_request(zones: httpx.AsyncClient) -> None:
    body = {
        "entities": [{"type": "Zone"}],
        "geoQ": {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": [500, 35]},
    }
    assert_problem(await post_query(zones, body), 400, "BadRequestData")


async def test_post_query_geo_q_without_georel_is_bad_request(zones: httpx.AsyncClient) -> None:
    body = {"entities": [{"type": "Zone"}], "geoQ": {"geometry": "Point", "coordinates": BUSAN}}
    assert_problem(await post_query(zones, body), 400, "BadRequestData")


async def test_geo_query_alone_is_a_valid_filter(buoys: httpx.AsyncClient) -> None:
    params = {
        "georel": "near;maxDistance==100",
        "geometry": "Point",
        "coordinates": json.dumps(BUSAN),
    }
    assert ids_of(await query(buoys, params)) == [P0]

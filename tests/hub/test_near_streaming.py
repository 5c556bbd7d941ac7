"""`near` queries stream candidates nearest first and stop early: same answer as brute force."""

from __future__ import annotations

import random

import httpx

from dosi.ngsi.geo import haversine

BASE = "/ngsi-ld/v1"
CENTRE = (128.93, 35.15)


async def test_near_pages_match_brute_force(client: httpx.AsyncClient) -> None:
    rng = random.Random(4)
    points = {}
    entities = []
    for i in range(300):
        lon = CENTRE[0] + rng.uniform(-0.01, 0.01)
        lat = CENTRE[1] + rng.uniform(-0.01, 0.01)
        eid = f"urn:ngsi-ld:Sensor:{i}"
        points[eid] = (lon, lat, i % 3)
        entities.append(
            {
                "id": eid,
                "type": "Sensor",
                "level": {"type": "Property", "value": i % 3},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [lon, lat]},
                },
            }
        )
    # A line as well: non-point geometries are ordered by their true distance too.
    entities.append(
        {
            "id": "urn:ngsi-ld:Road:1",
            "type": "Sensor",
            "level": {"type": "Property", "value": 1},
            "location": {
                "type": "GeoProperty",
                "value": {
                    "type": "LineString",
                    "coordinates": [
                        [CENTRE[0] - 0.02, CENTRE[1] + 0.0004],
                        [CENTRE[0] + 0.02, CENTRE[1] + 0.0004],
                    ],
                },
            },
        }
    )
    response = await client.post(f"{BASE}/entityOperations/upsert", json=entities)
    assert response.status_code == 201

    expected = sorted(
        (haversine(lon, lat, *CENTRE), eid)
        for eid, (lon, lat, level) in points.items()
        if level == 1 and haversine(lon, lat, *CENTRE) <= 800
    )
    road = haversine(CENTRE[0], CENTRE[1] + 0.0004, *CENTRE)
    expected = sorted([*expected, (road, "urn:ngsi-ld:Road:1")])
    assert len(expected) > 35  # the pages below cover a prefix, not everything
    got: list[str] = []
    for offset in range(0, 35, 7):
        page = await client.get(
            f"{BASE}/entities",
            params={
                "type": "Sensor",
                "q": "level==1",
                "georel": "near;maxDistance==800",
                "geometry": "Point",
                "coordinates": f"[{CENTRE[0]},{CENTRE[1]}]",
                "limit": "7",
                "offset": str(offset),
            },
        )
        assert page.status_code == 200
        got += [e["id"] for e in page.json()]
    assert got == [eid for _, eid in expected][:35]

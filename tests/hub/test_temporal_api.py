"""Temporal API reads (clauses 5.7.3, 5.7.4): history of normal writes, windows, representations.

Every change made through /entities must show up in /temporal/entities; the
window, lastN, filters and representations behave as documented in
hub/temporal/params.py and hub/temporal/query.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers import (
    CORE_CONTEXT,
    ENTITIES,
    assert_problem,
    attr_url,
    attrs_url,
    create,
    entity_url,
    geo,
    prop,
)

from conftest import BASE
from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings

TEMPORAL = f"{BASE}/temporal/entities"
SENSOR = "urn:ngsi-ld:Sensor:1"


def t_url(entity_id: str) -> str:
    return f"{TEMPORAL}/{quote(entity_id, safe=':')}"


def at(hour: int, minute: int = 0) -> str:
    return f"2026-03-01T{hour:02d}:{minute:02d}:00Z"


async def sensor_with_readings(client: httpx.AsyncClient, values: list[float]) -> None:
    """Create the sensor, then one PATCH per further value, observed one hour apart."""
    await create(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "temperature": prop(values[0], observedAt=at(0)),
            "scope": "/Busan/EcoDelta",
        },
    )
    for hour, value in enumerate(values[1:], start=1):
        response = await client.patch(
            attrs_url(SENSOR), json={"temperature": prop(value, observedAt=at(hour))}
        )
        assert response.status_code == 204, response.text


async def temporal(client: httpx.AsyncClient, entity_id: str = SENSOR, **params: str) -> Any:
    response = await client.get(t_url(entity_id), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def values_of(body: dict[str, Any], attr: str = "temperature") -> list[Any]:
    return [inst.get("value") for inst in body[attr]]


# --- normal API changes show up in history ---------------------------------------------------


async def test_create_and_updates_are_recorded_with_instance_ids(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [20, 21, 22])
    body = await temporal(client)
    assert body["id"] == SENSOR and body["type"] == "Sensor"
    assert body["scope"] == "/Busan/EcoDelta"
    assert values_of(body) == [20, 21, 22]
    assert [i["observedAt"] for i in body["temperature"]] == [at(0), at(1), at(2)]
    ids = [i["instanceId"] for i in body["temperature"]]
    assert len(set(ids)) == 3
    assert all(i.startswith("urn:ngsi-ld:attribute:instance:") for i in ids)


async def test_multi_attribute_records_only_the_changed_dataset(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "speed": [
                prop(10, observedAt=at(0)),
                prop(100, observedAt=at(0), datasetId="urn:ngsi-ld:Dataset:gps"),
            ],
        },
    )
    response = await client.patch(
        attrs_url(SENSOR),
        json={"speed": prop(110, observedAt=at(1), datasetId="urn:ngsi-ld:Dataset:gps")},
    )
    assert response.status_code == 204, response.text
    body = await temporal(client)
    assert sorted((i.get("datasetId", ""), i["value"]) for i in body["speed"]) == [
        ("", 10),
        ("urn:ngsi-ld:Dataset:gps", 100),
        ("urn:ngsi-ld:Dataset:gps", 110),
    ]
    simplified = await temporal(client, options="temporalValues")
    groups = {g.get("datasetId"): g["values"] for g in simplified["speed"]}
    assert groups == {
        None: [[10, at(0)]],
        "urn:ngsi-ld:Dataset:gps": [[100, at(0)], [110, at(1)]],
    }


async def test_attribute_delete_shows_deleted_at(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [20])
    response = await client.delete(attr_url(SENSOR, "temperature"))
    assert response.status_code == 204
    body = await temporal(client)
    first, deletion = body["temperature"]
    assert first["value"] == 20
    assert deletion["value"] == "urn:ngsi-ld:null"
    assert "deletedAt" in deletion and "instanceId" in deletion
    deleted = await temporal(client, timeproperty="deletedAt")
    assert [i.get("deletedAt") is not None for i in deleted["temperature"]] == [True]


async def test_entity_delete_keeps_history_with_deleted_at(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [20, 21])
    assert (await client.delete(entity_url(SENSOR))).status_code == 204
    assert (await client.get(entity_url(SENSOR))).status_code == 404
    body = await temporal(client, options="sysAttrs")
    assert values_of(body) == [20, 21]
    assert {"createdAt", "modifiedAt", "deletedAt"} <= set(body)
    assert "createdAt" in body["temperature"][0]


# --- representations ---------------------------------------------------------------------------


async def test_concise_and_temporal_values(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [20, 21])
    concise = await temporal(client, format="concise")
    assert [set(i) for i in concise["temperature"]] == [{"value", "observedAt", "instanceId"}] * 2
    simple = await temporal(client, options="temporalValues")
    assert simple["temperature"] == {"type": "Property", "values": [[20, at(0)], [21, at(1)]]}


async def test_relationship_and_geo_temporal_values(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "controlledBy": {"type": "Relationship", "object": "urn:ngsi-ld:Hub:1"},
            "location": geo(128.9, 35.1),
        },
    )
    body = await temporal(client, options="temporalValues")
    assert body["controlledBy"]["objects"][0][0] == "urn:ngsi-ld:Hub:1"
    assert body["location"]["values"][0][0] == {"type": "Point", "coordinates": [128.9, 35.1]}


async def test_json_ld_answer_carries_the_context(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [20])
    response = await client.get(t_url(SENSOR), headers={"Accept": "application/ld+json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.json()["@context"] == CORE_CONTEXT
    plain = await client.get(t_url(SENSOR))
    assert "json-ld#context" in plain.headers["link"]


# --- windows and lastN -------------------------------------------------------------------------


async def test_timerel_windows(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [0, 1, 2, 3, 4])
    before = await temporal(client, timerel="before", timeAt=at(2))
    assert values_of(before) == [0, 1]
    after = await temporal(client, timerel="after", timeAt=at(2))
    assert values_of(after) == [3, 4]
    between = await temporal(client, timerel="between", timeAt=at(1), endTimeAt=at(3))
    assert values_of(between) == [1, 2]
    empty = await temporal(client, timerel="after", timeAt=at(9))
    assert "temperature" not in empty and empty["id"] == SENSOR


async def test_recording_time_windows(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [1, 2])
    body = await temporal(
        client, timeproperty="modifiedAt", timerel="after", timeAt="2000-01-01T00:00:00Z"
    )
    assert values_of(body) == [1, 2]
    none = await temporal(
        client, timeproperty="createdAt", timerel="before", timeAt="2000-01-01T00:00:00Z"
    )
    assert "temperature" not in none


async def test_last_n_is_206_with_content_range(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [0, 1, 2, 3, 4])
    response = await client.get(
        t_url(SENSOR), params={"lastN": "2", "timerel": "before", "timeAt": at(9)}
    )
    assert response.status_code == 206, response.text
    assert values_of(response.json()) == [3, 4]
    assert response.headers["content-range"] == (
        "date-time 2026-03-01T09:00:00.000Z-2026-03-01T03:00:00.000Z/2"
    )
    whole = await client.get(t_url(SENSOR), params={"lastN": "5"})
    assert whole.status_code == 200 and "content-range" not in whole.headers
    assert values_of(whole.json()) == [0, 1, 2, 3, 4]


@pytest.fixture
async def capped(settings: HubSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A hub (on the backend under test) answering at most 3 instances per attribute."""
    app = create_app(replace(settings, temporal_max_instances=3))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def test_server_cap_cuts_every_attribute_at_one_time(capped: httpx.AsyncClient) -> None:
    """206, and all attributes cut at the same time, so one follow-up query continues them."""
    client = capped
    instances = [prop(v, observedAt=at(v)) for v in range(6)]
    humidity = [prop(50 + v, observedAt=at(v, 30)) for v in range(2)]
    response = await client.post(
        TEMPORAL,
        json={"id": SENSOR, "type": "Sensor", "temperature": instances, "humidity": humidity},
    )
    assert response.status_code == 201, response.text
    first = await client.get(t_url(SENSOR))
    assert first.status_code == 206
    body = first.json()
    assert values_of(body) == [0, 1, 2]
    assert values_of(body, "humidity") == [50, 51]
    assert first.headers["content-range"] == (
        "date-time 2026-03-01T00:00:00.000Z-2026-03-01T02:00:00.000Z/*"
    )
    rest = await client.get(t_url(SENSOR), params={"timerel": "after", "timeAt": at(2)})
    assert rest.status_code == 200
    assert values_of(rest.json()) == [3, 4, 5]


# --- queries -------------------------------------------------------------------------------------


async def seed_fleet(client: httpx.AsyncClient) -> None:
    for n, (lon, temp) in enumerate([(128.90, 10), (128.95, 30), (129.50, 35)]):
        await create(
            client,
            {
                "id": f"urn:ngsi-ld:Sensor:{n}",
                "type": "Sensor",
                "temperature": prop(temp, observedAt=at(1)),
                "location": geo(lon, 35.1),
                "scope": f"/Busan/zone{n}",
            },
        )
    await create(client, {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": prop(3)})


async def query_ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get(TEMPORAL, params=params)
    assert response.status_code == 200, response.text
    return sorted(e["id"] for e in response.json())


async def test_query_filters(client: httpx.AsyncClient) -> None:
    await seed_fleet(client)
    sensors = ["urn:ngsi-ld:Sensor:0", "urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    assert await query_ids(client, type="Sensor") == sensors
    assert await query_ids(client, type="Sensor|Car") == ["urn:ngsi-ld:Car:1", *sensors]
    assert await query_ids(client, attrs="speed") == ["urn:ngsi-ld:Car:1"]
    assert await query_ids(client, id="urn:ngsi-ld:Sensor:1,urn:ngsi-ld:Car:1") == [
        "urn:ngsi-ld:Car:1",
        "urn:ngsi-ld:Sensor:1",
    ]
    assert await query_ids(client, idPattern="Sensor:[12]$") == sensors[1:]
    assert await query_ids(client, type="Sensor", scopeQ="/Busan/zone2") == sensors[2:]
    assert await query_ids(client, type="Sensor", q="temperature>20") == sensors[1:]
    near = await query_ids(
        client,
        type="Sensor",
        georel="near;maxDistance==10000",
        geometry="Point",
        coordinates="[128.92,35.1]",
    )
    assert near == sensors[:2]
    windowed = await query_ids(
        client, type="Sensor", timerel="after", timeAt="2099-01-01T00:00:00Z"
    )
    assert windowed == []


async def test_query_attrs_projection_and_paging(client: httpx.AsyncClient) -> None:
    await seed_fleet(client)
    response = await client.get(
        TEMPORAL, params={"type": "Sensor", "attrs": "temperature", "limit": "2", "count": "true"}
    )
    assert response.status_code == 200
    assert response.headers["ngsild-results-count"] == "3"
    assert 'rel="next"' in response.headers["link"]
    page = response.json()
    assert len(page) == 2
    assert all(set(e) == {"id", "type", "scope", "temperature"} for e in page)
    rest = await client.get(
        TEMPORAL, params={"type": "Sensor", "attrs": "temperature", "limit": "2", "offset": "2"}
    )
    seen = {e["id"] for e in page} | {e["id"] for e in rest.json()}
    assert len(seen) == 3


async def test_post_query_with_temporal_q(client: httpx.AsyncClient) -> None:
    await seed_fleet(client)
    body = {
        "type": "Query",
        "entities": [{"type": "Sensor"}],
        "q": "temperature>=30",
        "temporalQ": {"timerel": "before", "timeAt": at(3), "lastN": 1},
    }
    response = await client.post(f"{BASE}/temporal/entityOperations/query", json=body)
    assert response.status_code == 200, response.text
    assert sorted(e["id"] for e in response.json()) == [
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
    ]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"timerel": "during", "timeAt": at(1)}, "BadRequestData"),
        ({"timerel": "before"}, "BadRequestData"),
        ({"timerel": "before", "timeAt": "yesterday"}, "BadRequestData"),
        ({"timeAt": at(1)}, "BadRequestData"),
        ({"timerel": "between", "timeAt": at(1)}, "BadRequestData"),
        ({"timerel": "between", "timeAt": at(2), "endTimeAt": at(1)}, "BadRequestData"),
        ({"timeproperty": "expiresAt"}, "BadRequestData"),
        ({"lastN": "0"}, "BadRequestData"),
        ({"lastN": "many"}, "BadRequestData"),
        ({"options": "temporalValues,aggregatedValues"}, "BadRequestData"),
        ({"options": "aggregatedValues"}, "BadRequestData"),
        ({"options": "aggregatedValues", "aggrMethods": "median"}, "BadRequestData"),
        (
            {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "1 hour"},
            "BadRequestData",
        ),
        (
            {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P1.5M"},
            "BadRequestData",
        ),
        ({"options": "bogus"}, "BadRequestData"),
    ],
)
async def test_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, str], error: str
) -> None:
    await sensor_with_readings(client, [1])
    assert_problem(await client.get(t_url(SENSOR), params=params), 400, error)
    query = {"type": "Sensor", **params}
    assert_problem(await client.get(TEMPORAL, params=query), 400, error)


async def test_query_needs_a_filter_and_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(TEMPORAL), 400, "BadRequestData")
    assert_problem(await client.get(t_url("urn:ngsi-ld:Sensor:none")), 404, "ResourceNotFound")
    assert_problem(await client.get(t_url("not a uri")), 400, "BadRequestData")
    response = await client.get(TEMPORAL, headers={"NGSILD-Tenant": "nobody"}, params={"type": "X"})
    assert_problem(response, 404, "NonexistentTenant")


async def test_current_state_is_untouched_by_reads(client: httpx.AsyncClient) -> None:
    await sensor_with_readings(client, [1, 2])
    current = await client.get(entity_url(SENSOR))
    assert current.json()["temperature"]["value"] == 2
    listed = await client.get(ENTITIES, params={"type": "Sensor"})
    assert len(listed.json()) == 1


async def test_server_cap_applies_to_aggregation_periods(capped: httpx.AsyncClient) -> None:
    instances = [prop(v, observedAt=at(v)) for v in range(6)]
    body = {"id": SENSOR, "type": "Sensor", "temperature": instances}
    assert (await capped.post(TEMPORAL, json=body)).status_code == 201
    params = {
        "options": "aggregatedValues",
        "aggrMethods": "max",
        "aggrPeriodDuration": "PT1H",
        "timerel": "after",
        "timeAt": "2026-02-28T00:00:00Z",
    }
    response = await capped.get(t_url(SENSOR), params=params)
    assert response.status_code == 206, response.text
    assert [p[0] for p in response.json()["temperature"]["max"]] == [0, 1, 2]
    assert response.headers["content-range"] == (
        "date-time 2026-02-28T00:00:00.000Z-2026-03-01T02:00:00.000Z/*"
    )

"""Temporal API writes (clauses 5.6.11-5.6.16): create/append instances, correct and delete them.

Temporal writes change history only; the current entity (/entities) is untouched.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from helpers import assert_problem, create, entity_url, prop

from conftest import BASE

TEMPORAL = f"{BASE}/temporal/entities"
CAR = "urn:ngsi-ld:Car:1"


def t_url(entity_id: str, *rest: str) -> str:
    return "/".join(
        [f"{TEMPORAL}/{quote(entity_id, safe=':')}", *(quote(r, safe=":") for r in rest)]
    )


def at(hour: int) -> str:
    return f"2026-03-01T{hour:02d}:00:00Z"


async def history(client: httpx.AsyncClient, entity_id: str = CAR, **params: str) -> Any:
    response = await client.get(t_url(entity_id), params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def new_car(client: httpx.AsyncClient, speeds: list[int], **extra: Any) -> None:
    body = {
        "id": CAR,
        "type": "Car",
        "speed": [prop(v, observedAt=at(h)) for h, v in enumerate(speeds)],
        **extra,
    }
    response = await client.post(TEMPORAL, json=body)
    assert response.status_code == 201, response.text


async def test_create_then_upsert_adds_instances(client: httpx.AsyncClient) -> None:
    response = await client.post(
        TEMPORAL,
        json={
            "id": CAR,
            "type": "Car",
            "speed": [prop(10, observedAt=at(0)), prop(20, observedAt=at(1))],
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{TEMPORAL}/{CAR}"
    again = await client.post(TEMPORAL, json={"id": CAR, "speed": prop(30, observedAt=at(2))})
    assert again.status_code == 204, again.text
    body = await history(client)
    assert [i["value"] for i in body["speed"]] == [10, 20, 30]
    # History only: no current entity was created.
    assert (await client.get(entity_url(CAR))).status_code == 404


async def test_simplified_input_is_accepted(client: httpx.AsyncClient) -> None:
    body = {
        "id": CAR,
        "type": "Car",
        "speed": {"type": "Property", "values": [[5, at(0)], [6, at(1)]]},
    }
    assert (await client.post(TEMPORAL, json=body)).status_code == 201
    out = await history(client, options="temporalValues")
    assert out["speed"]["values"] == [[5, at(0)], [6, at(1)]]


async def test_create_errors(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(TEMPORAL, json={"id": CAR, "speed": prop(1)}), 400)
    assert_problem(await client.post(TEMPORAL, json=[{"id": CAR}]), 400)
    assert_problem(await client.post(TEMPORAL, json={"id": "nope", "type": "Car"}), 400)
    bad_time = {"id": CAR, "type": "Car", "speed": prop(1, observedAt="noon")}
    assert_problem(await client.post(TEMPORAL, json=bad_time), 400, "BadRequestData")
    assert_problem(await client.post(TEMPORAL, json={"id": CAR, "type": "Car", "speed": []}), 400)
    unsupported = await client.post(TEMPORAL, content=b"{}", headers={"Content-Type": "text/plain"})
    assert_problem(unsupported, 415)
    # Nothing half-written.
    assert_problem(await client.get(t_url(CAR)), 404, "ResourceNotFound")


async def test_append_attrs(client: httpx.AsyncClient) -> None:
    await new_car(client, [10])
    response = await client.post(
        t_url(CAR, "attrs"),
        json={"fuel": [prop(0.5, observedAt=at(0)), prop(0.4, observedAt=at(1))]},
    )
    assert response.status_code == 204, response.text
    body = await history(client)
    assert [i["value"] for i in body["fuel"]] == [0.5, 0.4]
    missing = await client.post(t_url("urn:ngsi-ld:Car:none", "attrs"), json={"fuel": prop(1)})
    assert_problem(missing, 404, "ResourceNotFound")


async def test_delete_attribute_default_dataset_and_all(client: httpx.AsyncClient) -> None:
    gps = "urn:ngsi-ld:Dataset:gps"
    await new_car(client, [10, 11])
    await client.post(
        t_url(CAR, "attrs"), json={"speed": prop(99, observedAt=at(3), datasetId=gps)}
    )
    assert (await client.delete(t_url(CAR, "attrs", "speed"))).status_code == 204
    assert [i["value"] for i in (await history(client))["speed"]] == [99]
    response = await client.delete(t_url(CAR, "attrs", "speed"), params={"datasetId": gps})
    assert response.status_code == 204
    assert "speed" not in await history(client)
    assert_problem(await client.delete(t_url(CAR, "attrs", "speed")), 404, "ResourceNotFound")
    await client.post(t_url(CAR, "attrs"), json={"speed": [prop(1, datasetId=gps), prop(2)]})
    response = await client.delete(t_url(CAR, "attrs", "speed"), params={"deleteAll": "true"})
    assert response.status_code == 204
    assert "speed" not in await history(client)
    bad = await client.delete(t_url(CAR, "attrs", "speed"), params={"deleteAll": "yes"})
    assert_problem(bad, 400, "BadRequestData")


async def test_patch_instance(client: httpx.AsyncClient) -> None:
    await new_car(client, [10, 20])
    first, second = (await history(client))["speed"]
    response = await client.patch(
        t_url(CAR, "attrs", "speed", first["instanceId"]),
        json={"speed": [{"type": "Property", "value": 15, "observedAt": at(5)}]},
    )
    assert response.status_code == 204, response.text
    body = await history(client)
    # The corrected instance keeps its id and moves to its new observation time.
    assert [(i["instanceId"], i["value"]) for i in body["speed"]] == [
        (second["instanceId"], 20),
        (first["instanceId"], 15),
    ]
    bare = await client.patch(
        t_url(CAR, "attrs", "speed", second["instanceId"]), json={"value": 21}
    )
    assert bare.status_code == 204, bare.text
    assert [i["value"] for i in (await history(client))["speed"]] == [21, 15]


async def test_patch_instance_errors(client: httpx.AsyncClient) -> None:
    await new_car(client, [10])
    (inst,) = (await history(client))["speed"]
    url = t_url(CAR, "attrs", "speed", inst["instanceId"])
    unknown = t_url(CAR, "attrs", "speed", "urn:ngsi-ld:attribute:instance:999999")
    assert_problem(await client.patch(unknown, json={"value": 1}), 404, "ResourceNotFound")
    other_attr = t_url(CAR, "attrs", "fuel", inst["instanceId"])
    assert_problem(await client.patch(other_attr, json={"value": 1}), 404, "ResourceNotFound")
    foreign = t_url(CAR, "attrs", "speed", "urn:ngsi-ld:other:1")
    assert_problem(await client.patch(foreign, json={"value": 1}), 404, "ResourceNotFound")
    assert_problem(await client.patch(url, json={"speed": [prop(1), prop(2)]}), 400)
    assert_problem(await client.patch(url, json={"value": None}), 400)
    assert_problem(await client.patch(url, json=[1]), 400)
    assert [i["value"] for i in (await history(client))["speed"]] == [10]


async def test_delete_instance(client: httpx.AsyncClient) -> None:
    await new_car(client, [10, 20])
    first, _ = (await history(client))["speed"]
    url = t_url(CAR, "attrs", "speed", first["instanceId"])
    assert (await client.delete(url)).status_code == 204
    assert [i["value"] for i in (await history(client))["speed"]] == [20]
    assert_problem(await client.delete(url), 404, "ResourceNotFound")


async def test_delete_temporal_entity(client: httpx.AsyncClient) -> None:
    await create(client, {"id": CAR, "type": "Car", "speed": prop(1)})
    assert (await client.delete(t_url(CAR))).status_code == 204
    assert_problem(await client.get(t_url(CAR)), 404, "ResourceNotFound")
    assert_problem(await client.delete(t_url(CAR)), 404, "ResourceNotFound")
    # The current entity stays; its next change starts a new history.
    assert (await client.get(entity_url(CAR))).status_code == 200
    await client.patch(entity_url(CAR) + "/attrs", json={"speed": prop(2)})
    assert [i["value"] for i in (await history(client))["speed"]] == [2]


async def test_ids_and_names_with_slashes(client: httpx.AsyncClient) -> None:
    odd = "urn:ngsi-ld:Car:a/b"
    body = {"id": odd, "type": "Car", "https://example.org/x/speed": [prop(1), prop(2)]}
    assert (await client.post(TEMPORAL, json=body)).status_code == 201
    out = await history(client, odd)
    assert [i["value"] for i in out["https://example.org/x/speed"]] == [1, 2]
    iid = out["https://example.org/x/speed"][0]["instanceId"]
    url = t_url(odd, "attrs", "https://example.org/x/speed", iid)
    assert "%2F" in url
    assert (await client.delete(url)).status_code == 204


async def test_tenants_are_separate(client: httpx.AsyncClient) -> None:
    tenant = {"NGSILD-Tenant": "city2"}
    body = {"id": CAR, "type": "Car", "speed": prop(7)}
    assert (await client.post(TEMPORAL, json=body, headers=tenant)).status_code == 201
    assert_problem(await client.get(t_url(CAR)), 404, "ResourceNotFound")
    response = await client.get(t_url(CAR), headers=tenant)
    assert response.status_code == 200
    assert response.headers["ngsild-tenant"] == "city2"


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    assert_problem(await client.put(t_url(CAR), json={}), 405)

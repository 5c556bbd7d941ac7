"""Provisioning API of the IoT agent (/iot/services, /iot/devices), after the FIWARE IoT Agent.

Creating a device creates its entity (static attributes, location, command
attributes with status); bad bodies are 400, unknown records 404, duplicates
409, all as NGSI-LD ProblemDetails; records survive a restart (store kv).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from iot_helpers import (
    APIKEY,
    TYPE,
    device,
    entity,
    entity_id,
    group,
    hub_client,
    iot,
    provision,
)

from dosi.hub.settings import HubSettings

__all__ = ["iot"]

PROBLEM = "application/problem+json"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def assert_problem(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == ERRORS + error
    assert body["status"] == status
    assert body["detail"]


async def test_service_group_crud(iot: httpx.AsyncClient) -> None:
    assert (await iot.post("/iot/services", json={"services": [group()]})).status_code == 201
    listed = (await iot.get("/iot/services")).json()
    assert listed["count"] == 1
    stored = listed["services"][0]
    assert stored["apikey"] == APIKEY
    assert stored["entity_type"] == TYPE
    assert stored["attributes"][0] == {
        "object_id": "t",
        "name": "temperature",
        "type": "Number",
        "unitCode": "CEL",
    }
    # FIWARE's metadata form of unitCode is read too.
    assert stored["attributes"][1]["unitCode"] == "P1"

    response = await iot.put(
        "/iot/services", params={"apikey": APIKEY}, json={"entity_type": "Thing"}
    )
    assert response.status_code == 204
    assert (await iot.get("/iot/services")).json()["services"][0]["entity_type"] == "Thing"

    response = await iot.delete("/iot/services", params={"apikey": APIKEY})
    assert response.status_code == 204
    assert (await iot.get("/iot/services")).json() == {"count": 0, "services": []}


async def test_service_group_errors(iot: httpx.AsyncClient) -> None:
    await provision(iot)
    assert_problem(
        await iot.post("/iot/services", json={"services": [group()]}), 409, "AlreadyExists"
    )
    for body in (
        {"services": []},
        {"service": [group()]},
        {"services": [{"entity_type": TYPE}]},  # no apikey
        {"services": [group(apikey="a/b")]},  # not a topic level
        {"services": [group(apikey="ul")]},  # a topic prefix
        {"services": [{**group(), "entity_type": "bad type"}]},
        {"services": [{**group(), "attributes": [{"object_id": "t"}]}]},  # no name
        {"services": [{**group(), "attributes": "t"}]},
        {"services": [{**group(), "static_attributes": [{"name": "x", "type": "Number"}]}]},
        {
            "services": [
                {**group(), "static_attributes": [{"name": "x", "type": "Number", "value": "a"}]}
            ]
        },
        {
            "services": [
                {
                    **group(),
                    "commands": [{"name": "temperature_status"}],
                    "attributes": [{"object_id": "s", "name": "temperature_status"}],
                }
            ]
        },
    ):
        assert_problem(await iot.post("/iot/services", json=body), 400, "BadRequestData")
    assert_problem(
        await iot.put("/iot/services", params={"apikey": "nope"}, json={"entity_type": "X"}),
        404,
        "ResourceNotFound",
    )
    assert_problem(
        await iot.delete("/iot/services", params={"apikey": "nope"}), 404, "ResourceNotFound"
    )
    assert_problem(await iot.delete("/iot/services"), 400, "BadRequestData")
    # Nothing changed on the way.
    assert (await iot.get("/iot/services")).json()["services"][0]["entity_type"] == TYPE


async def test_apikey_belongs_to_one_tenant(iot: httpx.AsyncClient) -> None:
    await provision(iot)
    response = await iot.post(
        "/iot/services", json={"services": [group()]}, headers={"NGSILD-Tenant": "other"}
    )
    assert_problem(response, 409, "AlreadyExists")


async def test_device_crud_creates_the_entity(iot: httpx.AsyncClient) -> None:
    await provision(
        iot,
        device(
            "dev1",
            location={"type": "Point", "coordinates": [128.9, 35.1]},
            static_attributes=[{"name": "floor", "type": "Integer", "value": "3"}],
            commands=[{"name": "switch", "type": "command"}],
        ),
    )
    listed = (await iot.get("/iot/devices")).json()
    assert listed["count"] == 1
    assert listed["devices"][0]["device_id"] == "dev1"
    one = (await iot.get("/iot/devices/dev1")).json()
    assert one["entity_name"] == entity_id("dev1")
    assert one["commands"] == [{"name": "switch", "type": "command"}]

    stored = await entity(iot, entity_id("dev1"))
    assert stored["type"] == TYPE
    assert stored["district"] == {"type": "Property", "value": "EcoDelta"}  # the group's
    assert stored["floor"] == {"type": "Property", "value": 3}  # converted to Integer
    assert stored["location"]["type"] == "GeoProperty"
    assert stored["location"]["value"] == {"type": "Point", "coordinates": [128.9, 35.1]}
    assert stored["switch"]["value"] == ""
    assert stored["switch_status"]["value"] == "UNKNOWN"
    assert "switch_info" in stored

    response = await iot.put(
        "/iot/devices/dev1",
        json={"static_attributes": [{"name": "floor", "type": "Integer", "value": 4}]},
    )
    assert response.status_code == 204
    assert (await entity(iot, entity_id("dev1")))["floor"]["value"] == 4
    assert (await iot.get("/iot/devices/dev1")).json()["static_attributes"][0]["value"] == 4

    assert (await iot.delete("/iot/devices/dev1")).status_code == 204
    assert_problem(await iot.get("/iot/devices/dev1"), 404, "ResourceNotFound")
    # The entity (the city's data) stays.
    assert (await entity(iot, entity_id("dev1")))["floor"]["value"] == 4


async def test_device_default_entity_id_and_paging(iot: httpx.AsyncClient) -> None:
    devices = [{"device_id": f"d{i:02d}", "apikey": APIKEY} for i in range(25)]
    await provision(iot, *devices)
    page = (await iot.get("/iot/devices")).json()
    assert page["count"] == 25
    assert len(page["devices"]) == 20  # FIWARE's default limit
    rest = (await iot.get("/iot/devices", params={"limit": "10", "offset": "20"})).json()
    assert [d["device_id"] for d in rest["devices"]] == [f"d{i:02d}" for i in range(20, 25)]
    stored = await entity(iot, f"urn:ngsi-ld:{TYPE}:d07")
    assert stored["district"]["value"] == "EcoDelta"
    assert (await iot.get("/iot/devices", params={"limit": "0"})).status_code == 400


async def test_device_errors(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    assert_problem(
        await iot.post("/iot/devices", json={"devices": [device("dev1")]}), 409, "AlreadyExists"
    )
    assert_problem(
        await iot.post("/iot/devices", json={"devices": [device("x"), device("x")]}),
        409,
        "AlreadyExists",
    )
    for body in (
        {"devices": [{"entity_name": "urn:a:b"}]},  # no device_id
        {"devices": [device("a b")]},
        {"devices": [device("a", entity_name="not a uri")]},
        {"devices": [device("a", location={"type": "Point", "coordinates": [500, 1]})]},
        {"devices": [device("a", attributes=[{"object_id": "t", "name": "id"}])]},
        {"devices": [device("a", explicitAttrs="yes")]},
        [device("a")],
    ):
        assert_problem(await iot.post("/iot/devices", json=body), 400, "BadRequestData")
    # A device without entity_type needs a group to take it from.
    response = await iot.post(
        "/iot/devices",
        json={"devices": [{"device_id": "lonely", "apikey": "other"}]},
    )
    assert_problem(response, 400, "BadRequestData")
    response = await iot.post(
        "/iot/devices", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "InvalidRequest")
    assert_problem(
        await iot.put("/iot/devices/dev1", json={"device_id": "dev2"}), 400, "BadRequestData"
    )
    assert_problem(await iot.put("/iot/devices/nope", json={}), 404, "ResourceNotFound")
    assert_problem(await iot.delete("/iot/devices/nope"), 404, "ResourceNotFound")
    # None of the refused bodies left a device behind.
    assert [d["device_id"] for d in (await iot.get("/iot/devices")).json()["devices"]] == ["dev1"]


async def test_tenants_are_separate(iot: httpx.AsyncClient) -> None:
    headers = {"NGSILD-Tenant": "busan"}
    response = await iot.post(
        "/iot/services", json={"services": [group(apikey="kb")]}, headers=headers
    )
    assert response.status_code == 201
    response = await iot.post(
        "/iot/devices", json={"devices": [device("dev1", apikey="kb")]}, headers=headers
    )
    assert response.status_code == 201
    assert (await iot.get("/iot/devices")).json()["count"] == 0
    assert (await iot.get("/iot/devices", headers=headers)).json()["count"] == 1
    response = await iot.get(f"/ngsi-ld/v1/entities/{entity_id('dev1')}", headers=headers)
    assert response.status_code == 200


async def test_provisioning_survives_a_restart(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path / "data")
    async for http, _ in hub_client(settings):
        await provision(http, device("dev1"))
    async for http, _ in hub_client(settings):
        assert (await http.get("/iot/devices/dev1")).status_code == 200
        assert (await http.get("/iot/services")).json()["count"] == 1
        # ...and the restored records are usable at once.
        response = await http.post("/iot/d", params={"k": APIKEY, "i": "dev1"}, content=b"t|21")
        assert response.status_code == 200
        assert (await entity(http, entity_id("dev1")))["temperature"]["value"] == 21


@pytest.mark.parametrize(
    "static",
    [
        {"name": "position", "type": "geo:point", "value": "35.1, 128.9"},
        {"name": "owner", "type": "Relationship", "value": "urn:ngsi-ld:Organization:busan"},
        {"name": "installed", "type": "DateTime", "value": "2026-01-01T00:00:00Z"},
        {"name": "active", "type": "Boolean", "value": "true"},
    ],
)
async def test_static_attribute_types(iot: httpx.AsyncClient, static: dict[str, Any]) -> None:
    await provision(iot, device("dev1", static_attributes=[static]))
    stored = (await entity(iot, entity_id("dev1")))[static["name"]]
    expected = {
        "geo:point": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [128.9, 35.1]},
        },
        "Relationship": {"type": "Relationship", "object": "urn:ngsi-ld:Organization:busan"},
        "DateTime": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2026-01-01T00:00:00Z"},
        },
        "Boolean": {"type": "Property", "value": True},
    }[static["type"]]
    assert stored == expected


async def test_provisioning_reaches_another_worker(tmp_path: Path) -> None:
    """Two agents on one data dir (two `--workers`): a device provisioned through one is
    known to the other at once when it speaks, through the registry's refresh on a miss."""
    settings = HubSettings(data_dir=tmp_path / "data")
    async for first, _ in hub_client(settings):
        async for second, _ in hub_client(settings):
            await provision(first, device("dev1"))
            response = await second.post(
                "/iot/d", params={"k": APIKEY, "i": "dev1"}, content=b"t|7"
            )
            assert response.status_code == 200, response.text
            assert (await entity(second, entity_id("dev1")))["temperature"]["value"] == 7
            # Changes travel too: the group's mapping renamed through the first worker.
            mapping = [{"object_id": "t", "name": "airTemperature", "type": "Number"}]
            response = await first.put(
                "/iot/services", params={"apikey": APIKEY}, json={"attributes": mapping}
            )
            assert response.status_code == 204
            for _ in range(100):
                if (await second.get("/iot/services")).json()["services"][0]["attributes"][0][
                    "name"
                ] == "airTemperature":
                    break
                await asyncio.sleep(0.05)
            response = await second.post(
                "/iot/d", params={"k": APIKEY, "i": "dev1"}, content=b"t|8"
            )
            assert response.status_code == 200
            assert (await entity(first, entity_id("dev1")))["airTemperature"]["value"] == 8

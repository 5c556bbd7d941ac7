"""Discovery of entity types and attributes (ETSI GS CIM 009 V1.8.1 clauses 5.7.5-5.7.10).

Data types: EntityTypeList (5.2.24), EntityType (5.2.25), EntityTypeInfo (5.2.26),
AttributeList (5.2.27), Attribute (5.2.28). HTTP binding 6.25-6.28.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers import (
    BASE,
    DEFAULT_VOCAB,
    assert_problem,
    attr_url,
    attrs_url,
    entity_url,
    host_context,
    link_to,
    seed,
)

TYPES = f"{BASE}/types"
ATTRIBUTES = f"{BASE}/attributes"

CITY: list[dict[str, Any]] = [
    {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": "Sensor",
        "temperature": {"type": "Property", "value": 20},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [128.9, 35.1]},
        },
        "controlledBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
    },
    {
        "id": "urn:ngsi-ld:Sensor:2",
        "type": "Sensor",
        "temperature": {"type": "Property", "value": 22},
        "name": {"type": "LanguageProperty", "languageMap": {"en": "two"}},
    },
    {
        "id": "urn:ngsi-ld:Sensor:3",
        "type": ["Sensor", "Camera"],
        "temperature": {"type": "Property", "value": 25},
        "resolution": {"type": "Property", "value": 1080},
    },
    {
        "id": "urn:ngsi-ld:Vehicle:1",
        "type": "Vehicle",
        "speed": {"type": "Property", "value": 50},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [129.0, 35.2]},
        },
        "category": {"type": "VocabProperty", "vocab": "bus"},
    },
]


@pytest.fixture
async def city(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await seed(client, CITY)
    return client


async def get_json(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Any:
    resp = await client.get(url, **kwargs)
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return resp.json()


# --- /types --------------------------------------------------------------------------------


async def test_types_list(city: httpx.AsyncClient) -> None:
    data = await get_json(city, TYPES)
    assert data["type"] == "EntityTypeList"
    assert isinstance(data["id"], str) and ":" in data["id"]
    assert sorted(data["typeList"]) == ["Camera", "Sensor", "Vehicle"]


async def test_types_list_empty_hub(client: httpx.AsyncClient) -> None:
    data = await get_json(client, TYPES)
    assert data["type"] == "EntityTypeList"
    assert data["typeList"] == []


async def test_types_details(city: httpx.AsyncClient) -> None:
    data = await get_json(city, TYPES, params={"details": "true"})
    assert isinstance(data, list)
    by_name = {t["typeName"]: t for t in data}
    assert set(by_name) == {"Camera", "Sensor", "Vehicle"}
    sensor = by_name["Sensor"]
    assert sensor["type"] == "EntityType"
    assert sensor["id"] == DEFAULT_VOCAB + "Sensor"
    assert sorted(sensor["attributeNames"]) == sorted(
        ["temperature", "location", "controlledBy", "name", "resolution"]
    )
    assert sorted(by_name["Camera"]["attributeNames"]) == ["resolution", "temperature"]
    assert sorted(by_name["Vehicle"]["attributeNames"]) == ["category", "location", "speed"]


async def test_type_info(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{TYPES}/Sensor")
    assert data["type"] == "EntityTypeInfo"
    assert data["id"] == DEFAULT_VOCAB + "Sensor"
    assert data["typeName"] == "Sensor"
    assert data["entityCount"] == 3
    details = {d["attributeName"]: d for d in data["attributeDetails"]}
    assert set(details) == {"temperature", "location", "controlledBy", "name", "resolution"}
    assert details["temperature"]["type"] == "Attribute"
    assert details["temperature"]["id"] == DEFAULT_VOCAB + "temperature"
    assert details["temperature"]["attributeTypes"] == ["Property"]
    assert details["location"]["attributeTypes"] == ["GeoProperty"]
    assert details["controlledBy"]["attributeTypes"] == ["Relationship"]
    assert details["name"]["attributeTypes"] == ["LanguageProperty"]


async def test_type_info_counts_multi_typed_entities(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{TYPES}/Camera")
    assert data["entityCount"] == 1


async def test_type_info_by_full_iri(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{TYPES}/{quote(DEFAULT_VOCAB + 'Vehicle', safe='')}")
    assert data["entityCount"] == 1
    assert data["typeName"] == "Vehicle"


async def test_type_info_vocab_property_type(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{TYPES}/Vehicle")
    details = {d["attributeName"]: d for d in data["attributeDetails"]}
    assert details["category"]["attributeTypes"] == ["VocabProperty"]


async def test_type_info_unknown_is_not_found(city: httpx.AsyncClient) -> None:
    assert_problem(await city.get(f"{TYPES}/Submarine"), 404, "ResourceNotFound")


# --- /attributes ---------------------------------------------------------------------------


async def test_attributes_list(city: httpx.AsyncClient) -> None:
    data = await get_json(city, ATTRIBUTES)
    assert data["type"] == "AttributeList"
    assert isinstance(data["id"], str) and ":" in data["id"]
    assert sorted(data["attributeList"]) == sorted(
        ["temperature", "location", "controlledBy", "name", "resolution", "speed", "category"]
    )


async def test_attributes_list_empty_hub(client: httpx.AsyncClient) -> None:
    data = await get_json(client, ATTRIBUTES)
    assert data["attributeList"] == []


async def test_attributes_details(city: httpx.AsyncClient) -> None:
    data = await get_json(city, ATTRIBUTES, params={"details": "true"})
    assert isinstance(data, list)
    by_name = {a["attributeName"]: a for a in data}
    temperature = by_name["temperature"]
    assert temperature["type"] == "Attribute"
    assert temperature["id"] == DEFAULT_VOCAB + "temperature"
    assert temperature["attributeCount"] == 3
    assert temperature["attributeTypes"] == ["Property"]
    assert sorted(temperature["typeNames"]) == ["Camera", "Sensor"]


async def test_attribute_info(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{ATTRIBUTES}/location")
    assert data["type"] == "Attribute"
    assert data["id"] == "https://uri.etsi.org/ngsi-ld/location"
    assert data["attributeName"] == "location"
    assert data["attributeCount"] == 2
    assert data["attributeTypes"] == ["GeoProperty"]
    assert sorted(data["typeNames"]) == ["Sensor", "Vehicle"]


async def test_attribute_info_relationship(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{ATTRIBUTES}/controlledBy")
    assert data["attributeTypes"] == ["Relationship"]
    assert data["typeNames"] == ["Sensor"]
    assert data["attributeCount"] == 1


async def test_attribute_info_by_full_iri(city: httpx.AsyncClient) -> None:
    data = await get_json(city, f"{ATTRIBUTES}/{quote(DEFAULT_VOCAB + 'speed', safe='')}")
    assert data["attributeName"] == "speed"
    assert data["attributeCount"] == 1


async def test_attribute_info_unknown_is_not_found(city: httpx.AsyncClient) -> None:
    assert_problem(await city.get(f"{ATTRIBUTES}/humidity"), 404, "ResourceNotFound")


async def test_attribute_with_several_attribute_types(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Thing:a",
                "type": "Thing",
                "owner": {"type": "Property", "value": "Kim"},
            },
            {
                "id": "urn:ngsi-ld:Thing:b",
                "type": "Thing",
                "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:lee"},
            },
        ],
    )
    data = await get_json(client, f"{ATTRIBUTES}/owner")
    assert sorted(data["attributeTypes"]) == ["Property", "Relationship"]
    info = await get_json(client, f"{TYPES}/Thing")
    (owner,) = info["attributeDetails"]
    assert sorted(owner["attributeTypes"]) == ["Property", "Relationship"]


# --- counts follow the data ----------------------------------------------------------------


async def test_counts_grow_when_entities_are_created(city: httpx.AsyncClient) -> None:
    await seed(
        city,
        [
            {
                "id": "urn:ngsi-ld:Sensor:4",
                "type": "Sensor",
                "temperature": {"type": "Property", "value": 1},
            }
        ],
    )
    assert (await get_json(city, f"{TYPES}/Sensor"))["entityCount"] == 4
    assert (await get_json(city, f"{ATTRIBUTES}/temperature"))["attributeCount"] == 4


async def test_new_type_appears(city: httpx.AsyncClient) -> None:
    await seed(city, [{"id": "urn:ngsi-ld:Drone:1", "type": "Drone"}])
    assert "Drone" in (await get_json(city, TYPES))["typeList"]
    assert (await get_json(city, f"{TYPES}/Drone"))["entityCount"] == 1


async def test_counts_shrink_when_entities_are_deleted(city: httpx.AsyncClient) -> None:
    resp = await city.delete(entity_url("urn:ngsi-ld:Sensor:1"))
    assert resp.status_code == 204
    assert (await get_json(city, f"{TYPES}/Sensor"))["entityCount"] == 2
    assert (await get_json(city, f"{ATTRIBUTES}/temperature"))["attributeCount"] == 2
    assert (await get_json(city, f"{ATTRIBUTES}/location"))["typeNames"] == ["Vehicle"]


async def test_last_entity_deleted_removes_type_and_attributes(city: httpx.AsyncClient) -> None:
    resp = await city.delete(entity_url("urn:ngsi-ld:Vehicle:1"))
    assert resp.status_code == 204
    assert "Vehicle" not in (await get_json(city, TYPES))["typeList"]
    assert_problem(await city.get(f"{TYPES}/Vehicle"), 404, "ResourceNotFound")
    assert_problem(await city.get(f"{ATTRIBUTES}/speed"), 404, "ResourceNotFound")
    assert "speed" not in (await get_json(city, ATTRIBUTES))["attributeList"]


async def test_appended_attribute_appears(city: httpx.AsyncClient) -> None:
    resp = await city.post(
        attrs_url("urn:ngsi-ld:Vehicle:1"), json={"fuel": {"type": "Property", "value": 0.5}}
    )
    assert resp.status_code == 204, resp.text
    assert "fuel" in (await get_json(city, ATTRIBUTES))["attributeList"]
    info = await get_json(city, f"{TYPES}/Vehicle")
    assert "fuel" in {d["attributeName"] for d in info["attributeDetails"]}


async def test_deleted_attribute_disappears(city: httpx.AsyncClient) -> None:
    resp = await city.delete(attr_url("urn:ngsi-ld:Sensor:3", "resolution"))
    assert resp.status_code == 204, resp.text
    assert "resolution" not in (await get_json(city, ATTRIBUTES))["attributeList"]
    details = await get_json(city, TYPES, params={"details": "true"})
    camera = next(t for t in details if t["typeName"] == "Camera")
    assert camera["attributeNames"] == ["temperature"]


async def test_attribute_type_change_is_reflected(city: httpx.AsyncClient) -> None:
    await seed(
        city,
        [
            {
                "id": "urn:ngsi-ld:Vehicle:1",
                "type": "Vehicle",
                "speed": {"type": "Relationship", "object": "urn:ngsi-ld:Limit:1"},
            }
        ],
    )
    data = await get_json(city, f"{ATTRIBUTES}/speed")
    assert data["attributeTypes"] == ["Relationship"]
    # The replace dropped location and category from the vehicle.
    assert "category" not in (await get_json(city, ATTRIBUTES))["attributeList"]


# --- tenants and @context ------------------------------------------------------------------


async def test_discovery_is_per_tenant(city: httpx.AsyncClient) -> None:
    await seed(
        city,
        [{"id": "urn:ngsi-ld:Pump:1", "type": "Pump", "flow": {"type": "Property", "value": 3}}],
        tenant="water",
    )
    water = {"NGSILD-Tenant": "water"}
    assert (await get_json(city, TYPES, headers=water))["typeList"] == ["Pump"]
    assert (await get_json(city, ATTRIBUTES, headers=water))["attributeList"] == ["flow"]
    assert "Pump" not in (await get_json(city, TYPES))["typeList"]
    assert_problem(await city.get(f"{TYPES}/Sensor", headers=water), 404, "ResourceNotFound")


async def test_discovery_unknown_tenant(city: httpx.AsyncClient) -> None:
    resp = await city.get(TYPES, headers={"NGSILD-Tenant": "atlantis"})
    assert_problem(resp, 404, "NonexistentTenant")


USER_CONTEXT = {
    "Bridge": "https://example.org/ns/Bridge",
    "span": "https://example.org/ns/span",
}


@pytest.fixture
async def bridges(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    url = await host_context(client, USER_CONTEXT)
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Bridge:1",
                "type": "Bridge",
                "span": {"type": "Property", "value": 900},
            },
            {
                "id": "urn:ngsi-ld:Bridge:2",
                "type": "Bridge",
                "span": {"type": "Property", "value": 7420},
            },
        ],
        link=url,
    )
    return client, url


async def test_types_compacted_with_the_request_context(
    bridges: tuple[httpx.AsyncClient, str],
) -> None:
    client, url = bridges
    data = await get_json(client, TYPES, headers={"Link": link_to(url)})
    assert data["typeList"] == ["Bridge"]


async def test_types_full_iris_without_the_user_context(
    bridges: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = bridges
    data = await get_json(client, TYPES)
    assert data["typeList"] == ["https://example.org/ns/Bridge"]


async def test_type_info_with_user_context(bridges: tuple[httpx.AsyncClient, str]) -> None:
    client, url = bridges
    data = await get_json(client, f"{TYPES}/Bridge", headers={"Link": link_to(url)})
    assert data["id"] == "https://example.org/ns/Bridge"
    assert data["typeName"] == "Bridge"
    assert data["entityCount"] == 2
    (span,) = data["attributeDetails"]
    assert span["attributeName"] == "span"
    assert span["id"] == "https://example.org/ns/span"


async def test_type_short_name_needs_the_context(bridges: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = bridges
    # Without the user @context, "Bridge" is the default-context IRI: no such type.
    assert_problem(await client.get(f"{TYPES}/Bridge"), 404, "ResourceNotFound")


async def test_attributes_compacted_with_the_request_context(
    bridges: tuple[httpx.AsyncClient, str],
) -> None:
    client, url = bridges
    data = await get_json(client, ATTRIBUTES, headers={"Link": link_to(url)})
    assert data["attributeList"] == ["span"]
    detail = await get_json(client, f"{ATTRIBUTES}/span", headers={"Link": link_to(url)})
    assert detail["attributeCount"] == 2
    assert detail["typeNames"] == ["Bridge"]
    plain = await get_json(client, ATTRIBUTES)
    assert plain["attributeList"] == ["https://example.org/ns/span"]


async def test_types_details_with_user_context(bridges: tuple[httpx.AsyncClient, str]) -> None:
    client, url = bridges
    data = await get_json(client, TYPES, params={"details": "true"}, headers={"Link": link_to(url)})
    assert data == [
        {
            "id": "https://example.org/ns/Bridge",
            "type": "EntityType",
            "typeName": "Bridge",
            "attributeNames": ["span"],
        }
    ]


async def test_discovery_json_ld_response(city: httpx.AsyncClient) -> None:
    resp = await city.get(TYPES, headers={"Accept": "application/ld+json"})
    assert resp.headers["Content-Type"].startswith("application/ld+json")
    assert "@context" in resp.json()

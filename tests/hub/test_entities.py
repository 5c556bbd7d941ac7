"""Entities over HTTP: create (5.6.1), retrieve (5.7.1), delete (5.6.6), replace (5.6.18), merge (5.6.17).

Payloads follow ETSI GS CIM 009 V1.8.1: normalized and concise input (4.5.1, 4.5.2),
every attribute kind of clause 4.5 (Property, Relationship, GeoProperty,
LanguageProperty, VocabProperty, ListProperty, ListRelationship, JsonProperty),
multi-attributes (4.5.5), and the representations of clause 4.5 / 6.3.6 on the way out.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import (
    CORE_CONTEXT,
    CORE_LINK,
    ENTITIES,
    LD,
    assert_problem,
    building,
    create,
    entity_url,
    fetch,
    geo,
    prop,
    rel,
)

B1 = "urn:ngsi-ld:Building:1"
ALICE = "urn:ngsi-ld:Person:alice"
BOB = "urn:ngsi-ld:Person:bob"
DS_A = "urn:ngsi-ld:Dataset:a"
DS_B = "urn:ngsi-ld:Dataset:b"
STREET = {"en": "Main Street", "fr": "Rue principale"}


def rich_building() -> dict[str, Any]:
    """One entity holding one attribute of every kind."""
    return building(
        1,
        temperature=prop(21.5, unitCode="CEL", observedAt="2026-01-05T10:00:00Z"),
        owner=rel(ALICE),
        location=geo(13.4, 52.5),
        street={"type": "LanguageProperty", "languageMap": STREET},
        category={"type": "VocabProperty", "vocab": "commercial"},
        floors={"type": "ListProperty", "valueList": [0, 1, 2]},
        tenants={"type": "ListRelationship", "objectList": [{"object": ALICE}, {"object": BOB}]},
        config={"type": "JsonProperty", "json": {"mode": "eco", "limits": [1, None, 3]}},
    )


# --- create (5.6.1) ------------------------------------------------------------------


async def test_create_answers_201_with_location_of_the_new_entity(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(ENTITIES, json=building(1, height=prop(12)))
    assert response.status_code == 201
    assert response.headers["location"] == f"{ENTITIES}/{B1}"
    assert response.content == b""


async def test_create_then_retrieve_round_trips_the_entity(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    body = await fetch(client, B1)
    assert body == {
        "id": B1,
        "type": "Building",
        "height": {"type": "Property", "value": 12},
        "owner": {"type": "Relationship", "object": ALICE},
    }


async def test_create_existing_id_is_409_already_exists(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.post(ENTITIES, json=building(1, height=prop(99)))
    assert_problem(response, 409, "AlreadyExists")
    assert (await fetch(client, B1))["height"]["value"] == 12


@pytest.mark.parametrize("bad_id", ["not a uri", "Building1", "", 42, ["urn:ngsi-ld:X:1"]])
async def test_create_with_an_id_that_is_not_a_uri_is_400(
    client: httpx.AsyncClient, bad_id: Any
) -> None:
    response = await client.post(ENTITIES, json={"id": bad_id, "type": "Building"})
    assert_problem(response, 400, "BadRequestData")


async def test_create_without_id_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(ENTITIES, json={"type": "Building", "height": prop(1)})
    assert_problem(response, 400, "BadRequestData")


async def test_create_without_type_is_400_and_stores_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(ENTITIES, json={"id": B1, "height": prop(12)})
    assert_problem(response, 400, "BadRequestData")
    assert_problem(await client.get(entity_url(B1)), 404, "ResourceNotFound")


async def test_create_with_an_array_body_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(ENTITIES, json=[building(1)])
    assert response.status_code == 400
    assert_problem(response, 400)


async def test_create_with_several_types_keeps_them_all(client: httpx.AsyncClient) -> None:
    await create(client, {"id": B1, "type": ["Building", "Landmark"]})
    body = await fetch(client, B1)
    assert sorted(body["type"]) == ["Building", "Landmark"]


async def test_create_with_scope_keeps_it(client: httpx.AsyncClient) -> None:
    await create(client, building(1, scope="/Busan/EcoDelta"))
    assert (await fetch(client, B1))["scope"] == "/Busan/EcoDelta"


ATTRIBUTE_KINDS = {
    "Property": prop({"storeys": 3, "roof": "flat"}),
    "Relationship": rel(ALICE),
    "RelationshipMany": rel([ALICE, BOB]),
    "GeoProperty": geo(129.0, 35.1),
    "GeoPolygon": {
        "type": "GeoProperty",
        "value": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
    },
    "LanguageProperty": {"type": "LanguageProperty", "languageMap": STREET},
    "VocabProperty": {"type": "VocabProperty", "vocab": "commercial"},
    "VocabPropertyMany": {"type": "VocabProperty", "vocab": ["commercial", "office"]},
    "ListProperty": {"type": "ListProperty", "valueList": [3, "a", {"k": 1}]},
    "ListRelationship": {
        "type": "ListRelationship",
        "objectList": [{"object": BOB}, {"object": ALICE}],
    },
    "JsonProperty": {"type": "JsonProperty", "json": {"nested": {"a": [1, None, True]}}},
}


@pytest.mark.parametrize("kind", sorted(ATTRIBUTE_KINDS))
async def test_every_attribute_kind_round_trips_in_normalized_form(
    client: httpx.AsyncClient, kind: str
) -> None:
    attribute = ATTRIBUTE_KINDS[kind]
    await create(client, building(1, thing=attribute))
    assert (await fetch(client, B1))["thing"] == attribute


async def test_relationship_object_type_round_trips(client: httpx.AsyncClient) -> None:
    await create(client, building(1, owner=rel(ALICE, objectType="Person")))
    assert (await fetch(client, B1))["owner"] == {
        "type": "Relationship",
        "object": ALICE,
        "objectType": "Person",
    }


async def test_concise_input_is_stored_as_normalized(client: httpx.AsyncClient) -> None:
    await create(
        client,
        building(
            1,
            height=12,
            owner={"object": ALICE},
            location={"type": "Point", "coordinates": [13.4, 52.5]},
            street={"languageMap": STREET},
            category={"vocab": "commercial"},
            floors={"valueList": [0, 1]},
            tenants={"objectList": [{"object": BOB}]},
            config={"json": {"mode": "eco"}},
            temperature={"value": 20, "unitCode": "CEL"},
        ),
    )
    body = await fetch(client, B1)
    assert body["height"] == prop(12)
    assert body["owner"] == rel(ALICE)
    assert body["location"] == geo(13.4, 52.5)
    assert body["street"] == {"type": "LanguageProperty", "languageMap": STREET}
    assert body["category"] == {"type": "VocabProperty", "vocab": "commercial"}
    assert body["floors"] == {"type": "ListProperty", "valueList": [0, 1]}
    assert body["tenants"] == {"type": "ListRelationship", "objectList": [{"object": BOB}]}
    assert body["config"] == {"type": "JsonProperty", "json": {"mode": "eco"}}
    assert body["temperature"] == prop(20, unitCode="CEL")


async def test_concise_sub_attributes_become_properties(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature={"value": 20, "accuracy": 0.5}))
    assert (await fetch(client, B1))["temperature"] == prop(20, accuracy=prop(0.5))


async def test_multi_attribute_instances_keep_their_dataset_ids(client: httpx.AsyncClient) -> None:
    instances = [prop(20), prop(21, datasetId=DS_A), prop(22, datasetId=DS_B)]
    await create(client, building(1, temperature=instances))
    got = (await fetch(client, B1))["temperature"]
    assert isinstance(got, list)
    assert sorted(got, key=lambda i: i["value"]) == instances


@pytest.mark.parametrize(
    "instances",
    [
        [prop(1, datasetId=DS_A), prop(2, datasetId=DS_A)],
        [prop(1), prop(2)],
    ],
    ids=["same-datasetId", "two-default-instances"],
)
async def test_duplicate_dataset_id_is_400(
    client: httpx.AsyncClient, instances: list[dict[str, Any]]
) -> None:
    response = await client.post(ENTITIES, json=building(1, temperature=instances))
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_observed_at_and_unit_code_are_kept(client: httpx.AsyncClient) -> None:
    attribute = prop(21.5, observedAt="2026-01-05T10:00:00Z", unitCode="CEL")
    await create(client, building(1, temperature=attribute))
    assert (await fetch(client, B1))["temperature"] == attribute


@pytest.mark.parametrize("observed", ["yesterday", "2026-13-45T99:00:00Z", 12345])
async def test_invalid_observed_at_is_400(client: httpx.AsyncClient, observed: Any) -> None:
    response = await client.post(
        ENTITIES, json=building(1, temperature=prop(1, observedAt=observed))
    )
    assert_problem(response, 400, "BadRequestData")


async def test_nested_sub_attributes_round_trip(client: httpx.AsyncClient) -> None:
    attribute = prop(
        21.5,
        accuracy=prop(0.1, method=prop("calibrated")),
        measuredBy=rel("urn:ngsi-ld:Device:thermo1"),
    )
    await create(client, building(1, temperature=attribute))
    assert (await fetch(client, B1))["temperature"] == attribute


@pytest.mark.parametrize(
    "value",
    [
        {"type": "Point", "coordinates": [13.4]},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
        {"type": "Circle", "coordinates": [0, 0]},
        {"type": "Point"},
        "POINT(13.4 52.5)",
    ],
    ids=["point-1d", "polygon-open", "unknown-geometry", "no-coordinates", "wkt-string"],
)
async def test_invalid_geojson_in_a_geoproperty_is_400(
    client: httpx.AsyncClient, value: Any
) -> None:
    response = await client.post(
        ENTITIES, json=building(1, location={"type": "GeoProperty", "value": value})
    )
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


@pytest.mark.parametrize(
    "attribute",
    [
        {"type": "Relationship", "object": "not a uri"},
        {"type": "Relationship"},
        {"type": "Property"},
        {"type": "Property", "value": None},
        {"type": "LanguageProperty", "languageMap": "Main Street"},
        {"type": "ListProperty", "valueList": "not-a-list"},
        {"type": "ListRelationship", "objectList": [{"object": "nope nope"}]},
        {"type": "Teleporter", "value": 1},
    ],
    ids=[
        "rel-object-not-uri",
        "rel-without-object",
        "prop-without-value",
        "prop-null-value",
        "langmap-not-object",
        "valuelist-not-array",
        "objectlist-bad-uri",
        "unknown-type",
    ],
)
async def test_malformed_attribute_is_400(client: httpx.AsyncClient, attribute: Any) -> None:
    response = await client.post(ENTITIES, json=building(1, ok=prop(1), bad=attribute))
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


@pytest.mark.parametrize(
    "attribute",
    [
        "urn:ngsi-ld:null",
        {"type": "Property", "value": "urn:ngsi-ld:null"},
        {"type": "Relationship", "object": "urn:ngsi-ld:null"},
    ],
    ids=["bare", "property", "relationship"],
)
async def test_create_with_an_ngsi_ld_null_is_400(
    client: httpx.AsyncClient, attribute: Any
) -> None:
    # Clause 5.2.1: outside partial update and merge, an NGSI-LD Null is BadRequestData.
    response = await client.post(ENTITIES, json=building(1, height=prop(1), gone=attribute))
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_attribute_name_with_forbidden_characters_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(ENTITIES, json=building(1, **{"bad name<>": prop(1)}))
    assert_problem(response, 400, "BadRequestData")


async def test_entity_id_holding_a_slash_is_addressable(client: httpx.AsyncClient) -> None:
    entity_id = "urn:ngsi-ld:Building:block/7"
    response = await client.post(ENTITIES, json={"id": entity_id, "type": "Building"})
    assert response.status_code == 201
    got = await client.get(entity_url(entity_id))
    assert got.status_code == 200
    assert got.json()["id"] == entity_id


async def test_json_ld_create_expands_terms_with_the_inline_context(
    client: httpx.AsyncClient,
) -> None:
    payload = {
        "id": B1,
        "type": "Building",
        "height": prop(12),
        "@context": [
            {"Building": "https://example.org/Building", "height": "https://example.org/height"},
            CORE_CONTEXT,
        ],
    }
    response = await client.post(ENTITIES, json=payload, headers=LD)
    assert response.status_code == 201, response.text
    # Read back with the core context only: the terms are not known, so full IRIs come back.
    body = await fetch(client, B1)
    assert body["type"] == "https://example.org/Building"
    assert body["https://example.org/height"] == prop(12)
    assert "height" not in body


# --- retrieve (5.7.1) ----------------------------------------------------------------


async def test_retrieve_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(entity_url(B1)), 404, "ResourceNotFound")


async def test_retrieve_with_an_id_that_is_not_a_uri_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{ENTITIES}/not-a-uri"), 400, "BadRequestData")


async def test_retrieve_defaults_to_normalized_for_every_kind(client: httpx.AsyncClient) -> None:
    entity = rich_building()
    await create(client, entity)
    assert await fetch(client, B1) == entity


async def test_retrieve_with_core_link_header_compacts_terms(client: httpx.AsyncClient) -> None:
    await create(client, building(1, location=geo(1, 2)))
    body = await fetch(client, B1, headers={"Link": CORE_LINK})
    assert body == building(1, location=geo(1, 2))


@pytest.mark.parametrize("params", [{"options": "keyValues"}, {"format": "simplified"}])
async def test_retrieve_simplified(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    await create(
        client,
        building(
            1,
            temperature=prop(21.5, unitCode="CEL", accuracy=prop(0.1)),
            owner=rel(ALICE),
            location=geo(13.4, 52.5),
        ),
    )
    body = await fetch(client, B1, **params)
    assert body == {
        "id": B1,
        "type": "Building",
        "temperature": 21.5,
        "owner": ALICE,
        "location": {"type": "Point", "coordinates": [13.4, 52.5]},
    }


async def test_retrieve_simplified_language_property_is_a_language_map_object(
    client: httpx.AsyncClient,
) -> None:
    # Clause 4.5.4: a LanguageProperty is simplified to {"languageMap": {...}}.
    await create(client, building(1, street={"type": "LanguageProperty", "languageMap": STREET}))
    body = await fetch(client, B1, options="keyValues")
    assert body["street"] == {"languageMap": STREET}


async def test_retrieve_simplified_vocab_property_is_a_vocab_object(
    client: httpx.AsyncClient,
) -> None:
    # Clause 4.5.4: a VocabProperty is simplified to {"vocab": ...}.
    await create(client, building(1, category={"type": "VocabProperty", "vocab": "commercial"}))
    body = await fetch(client, B1, options="keyValues")
    assert body["category"] == {"vocab": "commercial"}


async def test_retrieve_simplified_multi_attribute_uses_the_dataset_member(
    client: httpx.AsyncClient,
) -> None:
    # Clause 4.5.4, multi-attribute case: {"dataset": {"@none": v0, "<datasetId>": v1}}.
    await create(client, building(1, temperature=[prop(20), prop(21, datasetId=DS_A)]))
    body = await fetch(client, B1, options="keyValues")
    assert body["temperature"] == {"dataset": {"@none": 20, DS_A: 21}}


@pytest.mark.parametrize("params", [{"options": "concise"}, {"format": "concise"}])
async def test_retrieve_concise(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    await create(
        client,
        building(
            1,
            height=prop(12),
            temperature=prop(21.5, unitCode="CEL"),
            owner=rel(ALICE),
            location=geo(13.4, 52.5),
            street={"type": "LanguageProperty", "languageMap": STREET},
        ),
    )
    body = await fetch(client, B1, **params)
    assert body["id"] == B1
    assert body["type"] == "Building"
    assert body["height"] == 12
    assert body["temperature"] == {"value": 21.5, "unitCode": "CEL"}
    assert body["owner"] == {"object": ALICE}
    assert body["location"] == {"type": "Point", "coordinates": [13.4, 52.5]}
    assert body["street"] == {"languageMap": STREET}


async def test_concise_output_can_be_posted_back_losslessly(client: httpx.AsyncClient) -> None:
    entity = rich_building()
    await create(client, entity)
    concise = await fetch(client, B1, options="concise")
    concise["id"] = "urn:ngsi-ld:Building:2"
    await create(client, concise)
    again = await fetch(client, "urn:ngsi-ld:Building:2")
    assert again == {**entity, "id": "urn:ngsi-ld:Building:2"}


async def test_retrieve_without_sys_attrs_hides_timestamps(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    body = await fetch(client, B1)
    assert "createdAt" not in body and "modifiedAt" not in body
    assert "createdAt" not in body["height"]


async def test_retrieve_with_sys_attrs_shows_created_and_modified(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12, accuracy=prop(0.5))))
    body = await fetch(client, B1, options="sysAttrs")
    for holder in (body, body["height"]):
        assert holder["createdAt"].endswith("Z")
        assert holder["modifiedAt"].endswith("Z")
        assert holder["createdAt"] <= holder["modifiedAt"]
    assert body["createdAt"] == body["modifiedAt"]


async def test_retrieve_attrs_projects_onto_the_listed_attributes(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE), color=prop("red")))
    body = await fetch(client, B1, attrs="height,color")
    assert body == building(1, height=prop(12), color=prop("red"))


async def test_retrieve_attrs_with_some_unknown_names_returns_the_known_ones(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    body = await fetch(client, B1, attrs="height,nonexistent")
    assert body == building(1, height=prop(12))


async def test_retrieve_attrs_matching_nothing_is_404(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.get(entity_url(B1), params={"attrs": "nonexistent"})
    assert_problem(response, 404, "ResourceNotFound")


async def test_retrieve_pick_keeps_only_the_named_members(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    body = await fetch(client, B1, pick="id,height")
    assert body == {"id": B1, "height": prop(12)}


async def test_retrieve_omit_drops_the_named_members(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    body = await fetch(client, B1, omit="type,height")
    assert body == {"id": B1, "owner": rel(ALICE)}


async def test_retrieve_pick_and_omit_together_is_400(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.get(entity_url(B1), params={"pick": "id", "omit": "height"})
    assert_problem(response, 400, "BadRequestData")


async def test_retrieve_dataset_id_filter_keeps_matching_instances(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=[prop(20), prop(21, datasetId=DS_A)]))
    assert (await fetch(client, B1, datasetId=DS_A))["temperature"] == prop(21, datasetId=DS_A)
    assert (await fetch(client, B1, datasetId="@none"))["temperature"] == prop(20)


async def test_retrieve_lang_turns_a_language_property_into_a_property(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, street={"type": "LanguageProperty", "languageMap": STREET}))
    body = await fetch(client, B1, lang="fr")
    assert body["street"] == {"type": "Property", "value": "Rue principale", "lang": "fr"}
    simplified = await fetch(client, B1, lang="en", options="keyValues")
    assert simplified["street"] == "Main Street"


async def test_retrieve_as_json_ld_puts_the_context_in_the_body(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.get(entity_url(B1), headers={"Accept": "application/ld+json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    body = response.json()
    context = body["@context"]
    assert CORE_CONTEXT in (context if isinstance(context, list) else [context])
    assert body["height"] == prop(12)


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
async def test_retrieve_as_json_gives_a_link_header_and_no_context(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    await create(client, building(1, height=prop(12)))
    headers = {"Accept": accept} if accept else {}
    response = await client.get(entity_url(B1), headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in response.headers["link"]
    assert "@context" not in response.json()


async def test_retrieve_as_geojson_gives_a_feature(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), location=geo(13.4, 52.5)))
    response = await client.get(entity_url(B1), headers={"Accept": "application/geo+json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    feature = response.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == B1
    assert feature["geometry"] == {"type": "Point", "coordinates": [13.4, 52.5]}
    assert feature["properties"]["type"] == "Building"
    assert feature["properties"]["height"] == prop(12)


async def test_retrieve_as_html_is_406(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.get(entity_url(B1), headers={"Accept": "text/html"})
    assert response.status_code == 406


async def test_retrieve_with_unknown_option_is_400(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.get(entity_url(B1), params={"options": "sparkles"})
    assert_problem(response, 400, "BadRequestData")


# --- delete (5.6.6) ------------------------------------------------------------------


async def test_delete_answers_204_and_the_entity_is_gone(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.delete(entity_url(B1))
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(entity_url(B1)), 404, "ResourceNotFound")


async def test_delete_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete(entity_url(B1)), 404, "ResourceNotFound")


async def test_delete_with_an_id_that_is_not_a_uri_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete(f"{ENTITIES}/not-a-uri"), 400, "BadRequestData")


async def test_deleted_id_can_be_created_again(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    assert (await client.delete(entity_url(B1))).status_code == 204
    await create(client, building(1, color=prop("red")))
    assert await fetch(client, B1) == building(1, color=prop("red"))


async def test_delete_leaves_other_entities_alone(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    await create(client, building(2, height=prop(5)))
    assert (await client.delete(entity_url(B1))).status_code == 204
    assert await fetch(client, "urn:ngsi-ld:Building:2") == building(2, height=prop(5))


# --- replace (5.6.18) ----------------------------------------------------------------


async def test_replace_swaps_every_attribute(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    response = await client.put(entity_url(B1), json=building(1, color=prop("red")))
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, color=prop("red"))


async def test_replace_without_id_in_body_uses_the_path(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.put(entity_url(B1), json={"type": "Building", "color": prop("red")})
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, color=prop("red"))


async def test_replace_can_change_the_type(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.put(entity_url(B1), json={"id": B1, "type": "Shop"})
    assert response.status_code == 204
    assert (await fetch(client, B1))["type"] == "Shop"


async def test_replace_with_mismatched_id_is_400(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.put(entity_url(B1), json=building(2, color=prop("red")))
    assert_problem(response, 400, "BadRequestData")
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_replace_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(entity_url(B1), json=building(1, color=prop("red")))
    assert_problem(response, 404, "ResourceNotFound")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_replace_keeps_created_at_and_advances_modified_at(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    before = await fetch(client, B1, options="sysAttrs")
    assert (
        await client.put(entity_url(B1), json=building(1, color=prop("red")))
    ).status_code == 204
    after = await fetch(client, B1, options="sysAttrs")
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]


async def test_replace_with_an_invalid_attribute_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    bad = building(1, location={"type": "GeoProperty", "value": {"type": "Point"}})
    assert_problem(await client.put(entity_url(B1), json=bad), 400, "BadRequestData")
    assert await fetch(client, B1) == building(1, height=prop(12))


# --- merge (5.6.17) ------------------------------------------------------------------


async def test_merge_adds_and_overwrites_and_keeps_the_rest(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), color=prop("red")))
    response = await client.patch(entity_url(B1), json={"height": prop(15), "owner": rel(ALICE)})
    assert response.status_code == 204
    assert await fetch(client, B1) == building(
        1, height=prop(15), color=prop("red"), owner=rel(ALICE)
    )


@pytest.mark.parametrize(
    "deletion",
    [
        "urn:ngsi-ld:null",
        {"type": "Property", "value": "urn:ngsi-ld:null"},
        {"value": "urn:ngsi-ld:null"},
        None,
    ],
    ids=["ngsi-ld-null", "property-with-null-value", "concise-null-value", "json-null"],
)
async def test_merge_with_null_deletes_the_attribute(
    client: httpx.AsyncClient, deletion: Any
) -> None:
    await create(client, building(1, height=prop(12), color=prop("red")))
    response = await client.patch(entity_url(B1), json={"color": deletion})
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_merge_with_ngsi_ld_null_object_deletes_a_relationship(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    response = await client.patch(
        entity_url(B1), json={"owner": {"type": "Relationship", "object": "urn:ngsi-ld:null"}}
    )
    assert response.status_code == 204
    assert "owner" not in await fetch(client, B1)


async def test_merge_null_language_map_deletes_the_language_property(
    client: httpx.AsyncClient,
) -> None:
    # Clause 5.2.1: a LanguageProperty is nulled with {"@none": "urn:ngsi-ld:null"}.
    await create(
        client,
        building(1, height=prop(12), street={"type": "LanguageProperty", "languageMap": STREET}),
    )
    response = await client.patch(
        entity_url(B1),
        json={"street": {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}}},
    )
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_merge_null_with_dataset_id_deletes_only_that_instance(
    client: httpx.AsyncClient,
) -> None:
    await create(
        client, building(1, temperature=[prop(20, datasetId=DS_A), prop(21, datasetId=DS_B)])
    )
    response = await client.patch(
        entity_url(B1),
        json={"temperature": {"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": DS_A}},
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(21, datasetId=DS_B)


async def test_merge_merges_sub_attributes(client: httpx.AsyncClient) -> None:
    await create(
        client,
        building(
            1,
            temperature=prop(20, unitCode="CEL", accuracy=prop(0.5), source=prop("sensor-a")),
        ),
    )
    response = await client.patch(
        entity_url(B1),
        json={"temperature": {"type": "Property", "value": 25, "accuracy": prop(0.1)}},
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(
        25, unitCode="CEL", accuracy=prop(0.1), source=prop("sensor-a")
    )


async def test_merge_null_sub_attribute_removes_only_it(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20, accuracy=prop(0.5), source=prop("a"))))
    response = await client.patch(
        entity_url(B1), json={"temperature": {"value": 21, "accuracy": "urn:ngsi-ld:null"}}
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(21, source=prop("a"))


async def test_merge_with_a_new_dataset_id_adds_an_instance(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20)))
    response = await client.patch(entity_url(B1), json={"temperature": prop(30, datasetId=DS_A)})
    assert response.status_code == 204
    got = (await fetch(client, B1))["temperature"]
    assert sorted(got, key=lambda i: i["value"]) == [prop(20), prop(30, datasetId=DS_A)]


async def test_merge_accepts_merge_patch_media_type(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(
        entity_url(B1),
        content=b'{"height": {"type": "Property", "value": 13}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["height"] == prop(13)


async def test_merge_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(entity_url(B1), json={"height": prop(1)})
    assert_problem(response, 404, "ResourceNotFound")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_merge_with_mismatched_id_is_400(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(
        entity_url(B1), json={"id": "urn:ngsi-ld:Building:2", "height": prop(1)}
    )
    assert_problem(response, 400, "BadRequestData")
    assert (await fetch(client, B1))["height"] == prop(12)


async def test_merge_keeps_created_at_and_advances_modified_at(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    before = await fetch(client, B1, options="sysAttrs")
    assert (await client.patch(entity_url(B1), json={"height": prop(13)})).status_code == 204
    after = await fetch(client, B1, options="sysAttrs")
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]
    assert after["height"]["createdAt"] == before["height"]["createdAt"]
    assert after["height"]["modifiedAt"] > before["height"]["modifiedAt"]


async def test_merge_with_an_invalid_attribute_changes_nothing(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(
        entity_url(B1), json={"height": prop(99), "owner": rel("not a uri")}
    )
    assert_problem(response, 400, "BadRequestData")
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_retrieve_as_geojson_uses_geometry_property(client: httpx.AsyncClient) -> None:
    await create(
        client,
        building(
            1,
            location=geo(13.4, 52.5),
            observationSpace=geo(11.1, 11.1),
        ),
    )
    response = await client.get(
        entity_url(B1),
        params={"geometryProperty": "observationSpace"},
        headers={"Accept": "application/geo+json"},
    )
    assert response.status_code == 200
    assert response.json()["geometry"] == {"type": "Point", "coordinates": [11.1, 11.1]}


async def test_retrieve_as_geojson_without_the_geometry_property_has_null_geometry(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.get(entity_url(B1), headers={"Accept": "application/geo+json"})
    assert response.status_code == 200
    feature = response.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] is None


async def test_retrieve_as_simplified_geojson(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), location=geo(13.4, 52.5)))
    response = await client.get(
        entity_url(B1),
        params={"options": "keyValues"},
        headers={"Accept": "application/geo+json"},
    )
    assert response.status_code == 200
    properties = response.json()["properties"]
    assert properties["height"] == 12
    assert properties["location"] == {"type": "Point", "coordinates": [13.4, 52.5]}

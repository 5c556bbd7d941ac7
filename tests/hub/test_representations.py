"""Entity representations (ETSI GS CIM 009 V1.8.1 clause 4.5 and 6.3.6/6.3.7).

Normalized (4.5.1), concise (4.5.1 / 4.5.2), simplified = keyValues (4.5.4),
multi-attributes and datasetId (4.5.5), GeoJSON (4.5.16), LanguageProperty and
the `lang` parameter (4.5.18, 4.15), VocabProperty (4.5.20), List- and
JsonProperty (4.5.21-4.5.24), pick/omit (4.21), JSON vs JSON-LD responses (6.3.6).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import (
    CORE_CONTEXT,
    ENTITIES,
    assert_problem,
    entity_url,
    host_context,
    link_to,
    query,
    seed,
)

EID = "urn:ngsi-ld:Bridge:gwangan"
D_B = "urn:ngsi-ld:Dataset:b"
D_C = "urn:ngsi-ld:Dataset:c"
GEOMETRY = {"type": "Point", "coordinates": [129.1186, 35.1473]}
AREA = {
    "type": "Polygon",
    "coordinates": [[[129.1, 35.1], [129.2, 35.1], [129.2, 35.2], [129.1, 35.2], [129.1, 35.1]]],
}

BRIDGE: dict[str, Any] = {
    "id": EID,
    "type": "Bridge",
    "temperature": {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2026-01-10T10:00:00Z",
        "accuracy": {"type": "Property", "value": 0.9},
    },
    "status": {"type": "Property", "value": "open"},
    "address": {"type": "Property", "value": {"city": "Busan", "district": "Suyeong"}},
    "reading": [
        {"type": "Property", "value": 1},
        {"type": "Property", "value": 2, "datasetId": D_B},
        {"type": "Property", "value": 3, "datasetId": D_C},
    ],
    "operator": {"type": "Relationship", "object": "urn:ngsi-ld:Company:bexco"},
    "location": {"type": "GeoProperty", "value": GEOMETRY},
    "deliveryArea": {"type": "GeoProperty", "value": AREA},
    "label": {
        "type": "LanguageProperty",
        "languageMap": {"en": "Gwangan Bridge", "fr": "Pont Gwangan", "ko": "광안대교"},
    },
    "lanes": {"type": "ListProperty", "valueList": [4, 4]},
    "route": {
        "type": "ListRelationship",
        "objectList": [{"object": "urn:ngsi-ld:Road:a"}, {"object": "urn:ngsi-ld:Road:b"}],
    },
    "config": {"type": "JsonProperty", "json": {"mode": "auto", "limits": [1, {"x": None}]}},
}


@pytest.fixture
async def bridge(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await seed(client, [BRIDGE])
    return client


async def get(
    client: httpx.AsyncClient, *, headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    return await client.get(entity_url(EID), params=params, headers=headers or {})


async def body(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    resp = await get(client, **params)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


# --- normalized --------------------------------------------------------------------------


async def test_normalized_property(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge)
    assert entity["id"] == EID
    assert entity["type"] == "Bridge"
    assert entity["temperature"] == {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2026-01-10T10:00:00Z",
        "accuracy": {"type": "Property", "value": 0.9},
    }


async def test_normalized_relationship_and_geoproperty(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge)
    assert entity["operator"] == {"type": "Relationship", "object": "urn:ngsi-ld:Company:bexco"}
    assert entity["location"] == {"type": "GeoProperty", "value": GEOMETRY}


async def test_normalized_language_vocab_list_json(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge)
    assert entity["label"]["type"] == "LanguageProperty"
    assert entity["label"]["languageMap"]["ko"] == "광안대교"
    assert entity["lanes"] == {"type": "ListProperty", "valueList": [4, 4]}
    assert entity["route"]["type"] == "ListRelationship"
    assert entity["route"]["objectList"] == [
        {"object": "urn:ngsi-ld:Road:a"},
        {"object": "urn:ngsi-ld:Road:b"},
    ]
    assert entity["config"] == {
        "type": "JsonProperty",
        "json": {"mode": "auto", "limits": [1, {"x": None}]},
    }


async def test_normalized_multi_attribute_is_an_array_of_instances(
    bridge: httpx.AsyncClient,
) -> None:
    reading = (await body(bridge))["reading"]
    assert isinstance(reading, list)
    assert len(reading) == 3
    by_dataset = {inst.get("datasetId"): inst for inst in reading}
    assert by_dataset[None] == {"type": "Property", "value": 1}
    assert by_dataset[D_B] == {"type": "Property", "value": 2, "datasetId": D_B}
    assert by_dataset[D_C]["value"] == 3


async def test_options_normalized_is_explicit_default(bridge: httpx.AsyncClient) -> None:
    assert await body(bridge, options="normalized") == await body(bridge)


# --- concise -----------------------------------------------------------------------------


async def test_concise_bare_property_is_its_value(bridge: httpx.AsyncClient) -> None:
    assert (await body(bridge, format="concise"))["status"] == "open"


async def test_concise_property_with_metadata_drops_type(bridge: httpx.AsyncClient) -> None:
    temperature = (await body(bridge, format="concise"))["temperature"]
    assert temperature == {
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2026-01-10T10:00:00Z",
        "accuracy": 0.9,
    }


async def test_concise_relationship(bridge: httpx.AsyncClient) -> None:
    operator = (await body(bridge, format="concise"))["operator"]
    assert operator == {"object": "urn:ngsi-ld:Company:bexco"}


async def test_concise_geoproperty_is_the_geometry(bridge: httpx.AsyncClient) -> None:
    assert (await body(bridge, format="concise"))["location"] == GEOMETRY


async def test_concise_language_vocab_list_json(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, format="concise")
    assert entity["label"] == {"languageMap": BRIDGE["label"]["languageMap"]}
    assert entity["lanes"] == {"valueList": [4, 4]}
    assert entity["route"] == {"objectList": BRIDGE["route"]["objectList"]}
    assert entity["config"] == {"json": BRIDGE["config"]["json"]}


async def test_concise_multi_attribute(bridge: httpx.AsyncClient) -> None:
    reading = (await body(bridge, format="concise"))["reading"]
    assert isinstance(reading, list) and len(reading) == 3
    with_dataset = [r for r in reading if isinstance(r, dict) and r.get("datasetId") == D_B]
    assert with_dataset == [{"value": 2, "datasetId": D_B}]


async def test_concise_is_lossless(bridge: httpx.AsyncClient) -> None:
    concise = await body(bridge, format="concise")
    copy_id = "urn:ngsi-ld:Bridge:copy"
    concise["id"] = copy_id
    resp = await bridge.post(ENTITIES, json=concise)
    assert resp.status_code == 201, resp.text
    original = await body(bridge)
    copied = (await bridge.get(entity_url(copy_id))).json()
    original.pop("id")
    copied.pop("id")
    for entity in (original, copied):
        if isinstance(entity["reading"], list):
            entity["reading"] = sorted(
                entity["reading"],
                key=lambda i: str(i.get("datasetId", "")) if isinstance(i, dict) else "",
            )
    assert copied == original


async def test_concise_multi_attribute_instances_stay_objects(bridge: httpx.AsyncClient) -> None:
    # A bare value inside the array would read back as one Property whose value is an array.
    reading = (await body(bridge, format="concise"))["reading"]
    assert all(isinstance(inst, dict) and "value" in inst for inst in reading), reading


# --- simplified (keyValues) --------------------------------------------------------------


async def test_key_values_scalars(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, options="keyValues")
    assert entity["id"] == EID
    assert entity["type"] == "Bridge"
    assert entity["temperature"] == 21.5
    assert entity["status"] == "open"
    assert entity["address"] == {"city": "Busan", "district": "Suyeong"}


async def test_key_values_relationship_is_the_object(bridge: httpx.AsyncClient) -> None:
    assert (await body(bridge, options="keyValues"))["operator"] == "urn:ngsi-ld:Company:bexco"


async def test_key_values_geoproperty_is_the_geometry(bridge: httpx.AsyncClient) -> None:
    assert (await body(bridge, options="keyValues"))["location"] == GEOMETRY


async def test_key_values_language_property_keeps_language_map_key(
    bridge: httpx.AsyncClient,
) -> None:
    # Clause 4.5.4 / 4.5.18: simplified LanguageProperty is {"languageMap": {...}}.
    label = (await body(bridge, options="keyValues"))["label"]
    assert label == {"languageMap": BRIDGE["label"]["languageMap"]}


async def test_key_values_json_property_keeps_json_key(bridge: httpx.AsyncClient) -> None:
    config = (await body(bridge, options="keyValues"))["config"]
    assert config == {"json": BRIDGE["config"]["json"]}


async def test_key_values_multi_attribute_is_keyed_by_dataset(bridge: httpx.AsyncClient) -> None:
    # Clause 4.5.4: a multi-attribute in the simplified representation is
    # {"dataset": {datasetId: simplified value, ...}}, the default instance under "@none".
    reading = (await body(bridge, options="keyValues"))["reading"]
    assert reading == {"dataset": {"@none": 1, D_B: 2, D_C: 3}}


async def test_key_values_single_instance_with_dataset_id_selected(
    bridge: httpx.AsyncClient,
) -> None:
    # Once datasetId narrows the attribute to one instance, it is no longer a multi-attribute.
    entity = await body(bridge, options="keyValues", datasetId=D_B)
    assert entity["reading"] in (2, {"dataset": {D_B: 2}})


async def test_key_values_has_no_attribute_metadata(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, options="keyValues")
    assert "unitCode" not in str(entity)
    assert "observedAt" not in str(entity)


async def test_format_takes_precedence_over_options(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, format="normalized", options="keyValues")
    assert entity["status"] == {"type": "Property", "value": "open"}


# --- datasetId parameter -----------------------------------------------------------------


async def test_dataset_id_selects_one_instance(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, datasetId=D_B)
    assert entity["reading"] == {"type": "Property", "value": 2, "datasetId": D_B}


async def test_dataset_id_list(bridge: httpx.AsyncClient) -> None:
    reading = (await body(bridge, datasetId=f"{D_B},{D_C}"))["reading"]
    assert sorted(r["value"] for r in reading) == [2, 3]


async def test_dataset_id_none_is_the_default_instance(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, datasetId="@none")
    assert entity["reading"] == {"type": "Property", "value": 1}
    assert entity["status"] == {"type": "Property", "value": "open"}


async def test_dataset_id_hides_attributes_without_that_instance(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, datasetId=D_B)
    assert "status" not in entity
    assert "temperature" not in entity


async def test_dataset_id_on_query(bridge: httpx.AsyncClient) -> None:
    resp = await query(bridge, {"type": "Bridge", "datasetId": D_C, "attrs": "reading"})
    (entity,) = resp.json()
    assert entity["reading"]["value"] == 3


# --- LanguageProperty and lang (clause 4.15) ---------------------------------------------


async def test_lang_en(bridge: httpx.AsyncClient) -> None:
    label = (await body(bridge, lang="en"))["label"]
    assert label == {"type": "Property", "value": "Gwangan Bridge", "lang": "en"}


async def test_lang_preference_list(bridge: httpx.AsyncClient) -> None:
    label = (await body(bridge, lang="fr,en;q=0.5"))["label"]
    assert label == {"type": "Property", "value": "Pont Gwangan", "lang": "fr"}


async def test_lang_falls_back_to_next_preference(bridge: httpx.AsyncClient) -> None:
    label = (await body(bridge, lang="de,en;q=0.5"))["label"]
    assert label["value"] == "Gwangan Bridge"
    assert label["lang"] == "en"


async def test_lang_weights_order_preferences(bridge: httpx.AsyncClient) -> None:
    label = (await body(bridge, lang="en;q=0.2,ko;q=0.9"))["label"]
    assert label["value"] == "광안대교"
    assert label["lang"] == "ko"


async def test_lang_star_gives_one_language(bridge: httpx.AsyncClient) -> None:
    label = (await body(bridge, lang="*"))["label"]
    assert label["type"] == "Property"
    languages = BRIDGE["label"]["languageMap"]
    assert label["lang"] in languages
    assert label["value"] == languages[label["lang"]]


async def test_lang_leaves_other_attributes_alone(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, lang="en")
    assert entity["status"] == {"type": "Property", "value": "open"}


async def test_lang_with_key_values_gives_the_string(bridge: httpx.AsyncClient) -> None:
    assert (await body(bridge, lang="fr", options="keyValues"))["label"] == "Pont Gwangan"


async def test_lang_with_concise(bridge: httpx.AsyncClient) -> None:
    label = (await body(bridge, lang="ko", format="concise"))["label"]
    assert label == {"value": "광안대교", "lang": "ko"}


async def test_lang_none_entry_used_when_no_language_matches(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Sign:1",
                "type": "Sign",
                "text": {
                    "type": "LanguageProperty",
                    "languageMap": {"@none": "STOP", "ko": "정지"},
                },
            }
        ],
    )
    resp = await client.get(entity_url("urn:ngsi-ld:Sign:1"), params={"lang": "de"})
    assert resp.json()["text"]["value"] == "STOP"


# --- pick / omit / attrs / sysAttrs on retrieval -----------------------------------------


async def test_pick_on_retrieve(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, pick="id,type,status")
    assert entity == {"id": EID, "type": "Bridge", "status": {"type": "Property", "value": "open"}}


async def test_omit_on_retrieve(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, omit="label,reading,config")
    assert {"label", "reading", "config"}.isdisjoint(entity)
    assert "temperature" in entity and entity["id"] == EID


async def test_attrs_on_retrieve(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, attrs="status,operator")
    assert set(entity) == {"id", "type", "status", "operator"}


async def test_sys_attrs_on_retrieve(bridge: httpx.AsyncClient) -> None:
    entity = await body(bridge, options="sysAttrs")
    for key in ("createdAt", "modifiedAt"):
        assert key in entity
        assert key in entity["status"]
        assert entity[key].endswith("Z")


# --- JSON vs JSON-LD (clause 6.3.6) -----------------------------------------------------


async def test_accept_json_gives_link_header_and_no_body_context(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers={"Accept": "application/json"})
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "@context" not in resp.json()
    link = resp.headers["Link"]
    assert CORE_CONTEXT in link
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in link


async def test_accept_json_ld_puts_context_in_body(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers={"Accept": "application/ld+json"})
    assert resp.headers["Content-Type"].startswith("application/ld+json")
    entity = resp.json()
    context = entity["@context"]
    contexts = context if isinstance(context, list) else [context]
    assert any(isinstance(c, str) and "ngsi-ld-core-context" in c for c in contexts)
    links = ",".join(resp.headers.get_list("Link"))
    assert "json-ld#context" not in links


async def test_accept_json_ld_on_query_puts_context_in_each_entity(
    bridge: httpx.AsyncClient,
) -> None:
    resp = await query(bridge, {"type": "Bridge"}, headers={"Accept": "application/ld+json"})
    assert resp.headers["Content-Type"].startswith("application/ld+json")
    (entity,) = resp.json()
    assert "@context" in entity


async def test_accept_json_ld_echoes_user_context(client: httpx.AsyncClient) -> None:
    url = await host_context(client, {"speed": "https://example.org/speed"})
    await seed(
        client,
        [{"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": {"type": "Property", "value": 3}}],
        link=url,
    )
    resp = await client.get(
        entity_url("urn:ngsi-ld:Car:1"),
        headers={"Accept": "application/ld+json", "Link": link_to(url)},
    )
    entity = resp.json()
    context = entity["@context"]
    contexts = context if isinstance(context, list) else [context]
    assert url in contexts
    assert entity["speed"]["value"] == 3


async def test_accept_any_gives_json(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers={"Accept": "*/*"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")


async def test_accept_unsupported_is_not_acceptable(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers={"Accept": "text/html"})
    assert resp.status_code == 406


async def test_accept_quality_values_are_honoured(bridge: httpx.AsyncClient) -> None:
    resp = await get(
        bridge, headers={"Accept": "application/json;q=0.5, application/ld+json;q=0.9"}
    )
    assert resp.headers["Content-Type"].startswith("application/ld+json")


# --- GeoJSON (clause 4.5.16) -------------------------------------------------------------

GEO_JSON = {"Accept": "application/geo+json"}


async def test_geojson_feature(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers=GEO_JSON)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/geo+json")
    feature = resp.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == EID
    assert feature["geometry"] == GEOMETRY
    properties = feature["properties"]
    assert properties["type"] == "Bridge"
    assert properties["status"] == {"type": "Property", "value": "open"}


async def test_geojson_feature_collection(bridge: httpx.AsyncClient) -> None:
    resp = await query(bridge, {"type": "Bridge"}, headers=GEO_JSON)
    assert resp.headers["Content-Type"].startswith("application/geo+json")
    collection = resp.json()
    assert collection["type"] == "FeatureCollection"
    (feature,) = collection["features"]
    assert feature["type"] == "Feature"
    assert feature["id"] == EID
    assert feature["geometry"] == GEOMETRY


async def test_geojson_geometry_property(bridge: httpx.AsyncClient) -> None:
    resp = await query(
        bridge, {"type": "Bridge", "geometryProperty": "deliveryArea"}, headers=GEO_JSON
    )
    (feature,) = resp.json()["features"]
    assert feature["geometry"] == AREA


async def test_geojson_geometry_property_on_retrieve(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers=GEO_JSON, geometryProperty="deliveryArea")
    assert resp.json()["geometry"] == AREA


async def test_geojson_without_geometry_is_null(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [{"id": "urn:ngsi-ld:Memo:1", "type": "Memo", "text": {"type": "Property", "value": "x"}}],
    )
    resp = await query(client, {"type": "Memo"}, headers=GEO_JSON)
    (feature,) = resp.json()["features"]
    assert feature["geometry"] is None
    assert feature["properties"]["text"] == {"type": "Property", "value": "x"}


async def test_geojson_key_values_properties(bridge: httpx.AsyncClient) -> None:
    resp = await get(bridge, headers=GEO_JSON, options="keyValues")
    feature = resp.json()
    assert feature["properties"]["status"] == "open"
    assert feature["geometry"] == GEOMETRY


async def test_geojson_empty_collection(bridge: httpx.AsyncClient) -> None:
    resp = await query(bridge, {"type": "Nothing"}, headers=GEO_JSON)
    collection = resp.json()
    assert collection["type"] == "FeatureCollection"
    assert collection["features"] == []


# --- VocabProperty compaction with a user @context (clause 4.5.20) -------------------------

USER_CONTEXT = {
    "category": "https://example.org/ns/category",
    "Bridge": "https://example.org/ns/Bridge",
    "suspension": "https://example.org/vocab/suspension",
    "cableStayed": "https://example.org/vocab/cableStayed",
}


@pytest.fixture
async def vocab(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    url = await host_context(client, USER_CONTEXT)
    await seed(
        client,
        [
            {
                "id": EID,
                "type": "Bridge",
                "category": {"type": "VocabProperty", "vocab": "suspension"},
                "kinds": {"type": "VocabProperty", "vocab": ["suspension", "cableStayed"]},
            }
        ],
        link=url,
    )
    return client, url


async def test_vocab_compacts_with_the_user_context(vocab: tuple[httpx.AsyncClient, str]) -> None:
    client, url = vocab
    entity = (await client.get(entity_url(EID), headers={"Link": link_to(url)})).json()
    assert entity["type"] == "Bridge"
    assert entity["category"] == {"type": "VocabProperty", "vocab": "suspension"}
    assert entity["kinds"]["vocab"] == ["suspension", "cableStayed"]


async def test_vocab_shows_full_iris_with_the_core_context(
    vocab: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = vocab
    entity = (await client.get(entity_url(EID))).json()
    assert entity["type"] == "https://example.org/ns/Bridge"
    category = entity["https://example.org/ns/category"]
    assert category == {"type": "VocabProperty", "vocab": "https://example.org/vocab/suspension"}


async def test_vocab_concise_with_user_context(vocab: tuple[httpx.AsyncClient, str]) -> None:
    client, url = vocab
    resp = await client.get(
        entity_url(EID), params={"format": "concise"}, headers={"Link": link_to(url)}
    )
    assert resp.json()["category"] == {"vocab": "suspension"}


async def test_vocab_key_values_keeps_vocab_key(vocab: tuple[httpx.AsyncClient, str]) -> None:
    # Clause 4.5.4: a VocabProperty in the simplified representation is {"vocab": ...}.
    client, url = vocab
    resp = await client.get(
        entity_url(EID), params={"options": "keyValues"}, headers={"Link": link_to(url)}
    )
    assert resp.json()["category"] == {"vocab": "suspension"}


async def test_vocab_q_matches_the_short_name(vocab: tuple[httpx.AsyncClient, str]) -> None:
    client, url = vocab
    resp = await query(
        client, {"type": "Bridge", "q": 'category=="suspension"'}, headers={"Link": link_to(url)}
    )
    assert [e["id"] for e in resp.json()] == [EID]


# --- errors ------------------------------------------------------------------------------


async def test_retrieve_unknown_entity_is_not_found(client: httpx.AsyncClient) -> None:
    resp = await client.get(entity_url("urn:ngsi-ld:Bridge:none"))
    assert_problem(resp, 404, "ResourceNotFound")


async def test_unknown_option_is_bad_request(bridge: httpx.AsyncClient) -> None:
    assert_problem(await get(bridge, options="fancy"), 400, "BadRequestData")

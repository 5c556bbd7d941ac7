"""Attributes of one entity over HTTP (ETSI GS CIM 009 V1.8.1).

Append (5.6.3, POST /attrs), update (5.6.2, PATCH /attrs), partial attribute
update (5.6.4, PATCH /attrs/{attrId}), attribute replace (5.6.19, PUT
/attrs/{attrId}) and attribute delete (5.6.5, DELETE /attrs/{attrId}),
including multi-attribute instances addressed by datasetId (4.5.5).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import (
    CORE_CONTEXT,
    ENTITIES,
    LD,
    assert_problem,
    attr_url,
    attrs_url,
    building,
    create,
    fetch,
    host_context,
    link_to,
    prop,
    rel,
)

B1 = "urn:ngsi-ld:Building:1"
MISSING = "urn:ngsi-ld:Building:missing"
ALICE = "urn:ngsi-ld:Person:alice"
BOB = "urn:ngsi-ld:Person:bob"
DS_A = "urn:ngsi-ld:Dataset:a"
DS_B = "urn:ngsi-ld:Dataset:b"


def by_value(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(instances, key=lambda i: str(i.get("value")))


# --- append (5.6.3) ------------------------------------------------------------------


async def test_append_new_attribute_is_204(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.post(attrs_url(B1), json={"color": prop("red")})
    assert response.status_code == 204
    assert response.content == b""
    assert await fetch(client, B1) == building(1, height=prop(12), color=prop("red"))


async def test_append_overwrites_an_existing_attribute_by_default(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12, unitCode="MTR")))
    response = await client.post(attrs_url(B1), json={"height": prop(15)})
    assert response.status_code == 204
    assert (await fetch(client, B1))["height"] == prop(15)


async def test_append_no_overwrite_reports_the_existing_attribute_as_not_updated(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.post(
        attrs_url(B1),
        params={"options": "noOverwrite"},
        json={"height": prop(99), "color": prop("red")},
    )
    assert response.status_code == 207
    result = response.json()
    assert result["updated"] == ["color"]
    assert [item["attributeName"] for item in result["notUpdated"]] == ["height"]
    assert all(isinstance(item.get("reason"), str) for item in result["notUpdated"])
    assert await fetch(client, B1) == building(1, height=prop(12), color=prop("red"))


async def test_append_no_overwrite_with_only_new_attributes_is_204(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.post(
        attrs_url(B1), params={"options": "noOverwrite"}, json={"color": prop("red")}
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["color"] == prop("red")


async def test_append_new_dataset_instance_keeps_the_default_one(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=prop(20)))
    response = await client.post(attrs_url(B1), json={"temperature": prop(25, datasetId=DS_A)})
    assert response.status_code == 204
    got = (await fetch(client, B1))["temperature"]
    assert by_value(got) == [prop(20), prop(25, datasetId=DS_A)]


async def test_append_to_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(attrs_url(MISSING), json={"color": prop("red")})
    assert_problem(response, 404, "ResourceNotFound")


async def test_append_invalid_attribute_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.post(
        attrs_url(B1), json={"color": prop("red"), "owner": rel("not a uri")}
    )
    assert_problem(response, 400, "BadRequestData")
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_append_with_json_ld_body(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    payload = {
        "width": prop(7),
        "@context": [{"width": "https://example.org/width"}, CORE_CONTEXT],
    }
    response = await client.post(attrs_url(B1), json=payload, headers=LD)
    assert response.status_code == 204, response.text
    assert (await fetch(client, B1))["https://example.org/width"] == prop(7)


async def test_append_every_attribute_kind(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    fragment = {
        "owner": rel(ALICE),
        "street": {"type": "LanguageProperty", "languageMap": {"en": "High St"}},
        "category": {"type": "VocabProperty", "vocab": "office"},
        "floors": {"type": "ListProperty", "valueList": [1, 2]},
        "tenants": {"type": "ListRelationship", "objectList": [{"object": BOB}]},
        "config": {"type": "JsonProperty", "json": {"on": True}},
    }
    assert (await client.post(attrs_url(B1), json=fragment)).status_code == 204
    assert await fetch(client, B1) == building(1, **fragment)


# --- update (5.6.2) ------------------------------------------------------------------


async def test_update_existing_attribute_is_204_and_keeps_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12), color=prop("red")))
    response = await client.patch(attrs_url(B1), json={"height": prop(15)})
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(15), color=prop("red"))


async def test_update_unknown_attribute_is_207_with_not_updated(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(attrs_url(B1), json={"height": prop(15), "nonexistent": prop(1)})
    assert response.status_code == 207
    result = response.json()
    assert result["updated"] == ["height"]
    assert [item["attributeName"] for item in result["notUpdated"]] == ["nonexistent"]
    body = await fetch(client, B1)
    assert body["height"] == prop(15)
    assert "nonexistent" not in body


async def test_update_with_only_unknown_attributes_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(12)))
    before = await fetch(client, B1, options="sysAttrs")
    response = await client.patch(attrs_url(B1), json={"nonexistent": prop(1)})
    assert response.status_code == 207
    assert response.json()["updated"] == []
    assert await fetch(client, B1, options="sysAttrs") == before


async def test_update_unknown_dataset_instance_is_not_updated(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20)))
    response = await client.patch(attrs_url(B1), json={"temperature": prop(5, datasetId=DS_A)})
    assert response.status_code == 207
    assert [i["attributeName"] for i in response.json()["notUpdated"]] == ["temperature"]
    assert (await fetch(client, B1))["temperature"] == prop(20)


NGSI_LD_NULLS = {
    "bare": "urn:ngsi-ld:null",
    "property": {"type": "Property", "value": "urn:ngsi-ld:null"},
    "concise": {"value": "urn:ngsi-ld:null"},
}


@pytest.mark.parametrize("null", sorted(NGSI_LD_NULLS))
async def test_update_with_ngsi_ld_null_deletes_the_attribute(
    client: httpx.AsyncClient, null: str
) -> None:
    # Clauses 5.6.2 and 5.5.8: an NGSI-LD Null in an update removes the target attribute.
    await create(client, building(1, height=prop(12), color=prop("red")))
    response = await client.patch(attrs_url(B1), json={"color": NGSI_LD_NULLS[null]})
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_update_with_ngsi_ld_null_deletes_a_relationship(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), owner=rel(ALICE)))
    response = await client.patch(
        attrs_url(B1), json={"owner": {"type": "Relationship", "object": "urn:ngsi-ld:null"}}
    )
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_update_with_ngsi_ld_null_deletes_a_language_property(
    client: httpx.AsyncClient,
) -> None:
    street = {"type": "LanguageProperty", "languageMap": {"en": "High St"}}
    await create(client, building(1, height=prop(12), street=street))
    response = await client.patch(
        attrs_url(B1),
        json={"street": {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}}},
    )
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_update_with_ngsi_ld_null_and_dataset_id_deletes_that_instance(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=[prop(20), prop(21, datasetId=DS_A)]))
    response = await client.patch(
        attrs_url(B1),
        json={"temperature": {"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": DS_A}},
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(20)


async def test_update_on_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(attrs_url(MISSING), json={"height": prop(1)})
    assert_problem(response, 404, "ResourceNotFound")


async def test_update_keeps_attribute_created_at(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    before = await fetch(client, B1, options="sysAttrs")
    assert (await client.patch(attrs_url(B1), json={"height": prop(13)})).status_code == 204
    after = await fetch(client, B1, options="sysAttrs")
    assert after["height"]["createdAt"] == before["height"]["createdAt"]
    assert after["height"]["modifiedAt"] > before["height"]["modifiedAt"]


async def test_update_with_invalid_attribute_is_400(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(attrs_url(B1), json={"height": {"type": "Property"}})
    assert_problem(response, 400, "BadRequestData")
    assert (await fetch(client, B1))["height"] == prop(12)


# --- partial attribute update (5.6.4) ------------------------------------------------


async def test_partial_update_value_only_keeps_metadata(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20, unitCode="CEL", accuracy=prop(0.5))))
    response = await client.patch(attr_url(B1, "temperature"), json={"value": 30})
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(30, unitCode="CEL", accuracy=prop(0.5))


async def test_partial_update_with_type_and_value(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20, unitCode="CEL")))
    response = await client.patch(
        attr_url(B1, "temperature"),
        json={"type": "Property", "value": 31, "observedAt": "2026-02-01T00:00:00Z"},
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(
        31, unitCode="CEL", observedAt="2026-02-01T00:00:00Z"
    )


async def test_partial_update_metadata_only_keeps_the_value(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20)))
    response = await client.patch(
        attr_url(B1, "temperature"), json={"observedAt": "2026-02-01T00:00:00Z"}
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(20, observedAt="2026-02-01T00:00:00Z")


async def test_partial_update_adds_a_sub_attribute(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20, accuracy=prop(0.5))))
    response = await client.patch(attr_url(B1, "temperature"), json={"source": prop("sensor-b")})
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(
        20, accuracy=prop(0.5), source=prop("sensor-b")
    )


async def test_partial_update_of_a_relationship_object(client: httpx.AsyncClient) -> None:
    await create(client, building(1, owner=rel(ALICE)))
    response = await client.patch(attr_url(B1, "owner"), json={"object": BOB})
    assert response.status_code == 204
    assert (await fetch(client, B1))["owner"] == rel(BOB)


async def test_partial_update_of_a_language_map(client: httpx.AsyncClient) -> None:
    await create(
        client,
        building(1, street={"type": "LanguageProperty", "languageMap": {"en": "High St"}}),
    )
    response = await client.patch(
        attr_url(B1, "street"), json={"languageMap": {"en": "Low St", "de": "Tiefe Str"}}
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["street"] == {
        "type": "LanguageProperty",
        "languageMap": {"en": "Low St", "de": "Tiefe Str"},
    }


async def test_partial_update_targets_the_dataset_instance(client: httpx.AsyncClient) -> None:
    await create(
        client,
        building(1, temperature=[prop(20), prop(21, datasetId=DS_A), prop(22, datasetId=DS_B)]),
    )
    response = await client.patch(
        attr_url(B1, "temperature"), json={"value": 99, "datasetId": DS_A}
    )
    assert response.status_code == 204
    got = (await fetch(client, B1))["temperature"]
    assert by_value(got) == by_value([prop(20), prop(99, datasetId=DS_A), prop(22, datasetId=DS_B)])


async def test_partial_update_of_unknown_dataset_instance_is_404(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=prop(20)))
    response = await client.patch(
        attr_url(B1, "temperature"), json={"value": 99, "datasetId": DS_A}
    )
    assert_problem(response, 404, "ResourceNotFound")
    assert (await fetch(client, B1))["temperature"] == prop(20)


@pytest.mark.parametrize(
    ("attr", "fragment"),
    [
        ("color", {"type": "Property", "value": "urn:ngsi-ld:null"}),
        ("color", {"value": "urn:ngsi-ld:null"}),
        ("owner", {"type": "Relationship", "object": "urn:ngsi-ld:null"}),
    ],
    ids=["property", "concise-property", "relationship"],
)
async def test_partial_update_with_ngsi_ld_null_deletes_the_attribute(
    client: httpx.AsyncClient, attr: str, fragment: dict[str, Any]
) -> None:
    # Clauses 5.6.4 and 5.5.8: an NGSI-LD Null value removes the target attribute.
    await create(client, building(1, height=prop(12), color=prop("red"), owner=rel(ALICE)))
    response = await client.patch(attr_url(B1, attr), json=fragment)
    assert response.status_code == 204
    body = await fetch(client, B1)
    assert attr not in body
    assert body["height"] == prop(12)


async def test_partial_update_with_ngsi_ld_null_removes_a_sub_attribute(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=prop(20, accuracy=prop(0.5), source=prop("a"))))
    response = await client.patch(
        attr_url(B1, "temperature"), json={"accuracy": "urn:ngsi-ld:null"}
    )
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(20, source=prop("a"))


async def test_partial_update_of_unknown_attribute_is_404(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(attr_url(B1, "nonexistent"), json={"value": 1})
    assert_problem(response, 404, "ResourceNotFound")
    assert "nonexistent" not in await fetch(client, B1)


async def test_partial_update_on_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(attr_url(MISSING, "height"), json={"value": 1})
    assert_problem(response, 404, "ResourceNotFound")


@pytest.mark.parametrize("body", [[{"value": 1}], 42, "text", {}])
async def test_partial_update_with_a_non_fragment_body_is_400(
    client: httpx.AsyncClient, body: Any
) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.patch(attr_url(B1, "height"), json=body)
    assert response.status_code == 400
    assert_problem(response, 400)
    assert (await fetch(client, B1))["height"] == prop(12)


# --- attribute replace (5.6.19) ------------------------------------------------------


async def test_replace_attribute_drops_what_the_new_one_lacks(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20, unitCode="CEL", accuracy=prop(0.5))))
    response = await client.put(attr_url(B1, "temperature"), json=prop(30))
    assert response.status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(30)


async def test_replace_attribute_can_change_its_kind(client: httpx.AsyncClient) -> None:
    await create(client, building(1, owner=prop("alice")))
    response = await client.put(attr_url(B1, "owner"), json=rel(ALICE))
    assert response.status_code == 204
    assert (await fetch(client, B1))["owner"] == rel(ALICE)


async def test_replace_attribute_keeps_other_attributes(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), color=prop("red")))
    assert (await client.put(attr_url(B1, "color"), json=prop("blue"))).status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12), color=prop("blue"))


async def test_replace_unknown_attribute_is_404(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    response = await client.put(attr_url(B1, "nonexistent"), json=prop(1))
    assert_problem(response, 404, "ResourceNotFound")
    assert "nonexistent" not in await fetch(client, B1)


async def test_replace_attribute_on_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(attr_url(MISSING, "height"), json=prop(1))
    assert_problem(response, 404, "ResourceNotFound")


async def test_replace_attribute_with_invalid_value_is_400(client: httpx.AsyncClient) -> None:
    await create(client, building(1, owner=rel(ALICE)))
    response = await client.put(attr_url(B1, "owner"), json=rel("not a uri"))
    assert_problem(response, 400, "BadRequestData")
    assert (await fetch(client, B1))["owner"] == rel(ALICE)


async def test_replace_attribute_keeps_its_created_at(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    before = await fetch(client, B1, options="sysAttrs")
    assert (await client.put(attr_url(B1, "height"), json=prop(13))).status_code == 204
    after = await fetch(client, B1, options="sysAttrs")
    assert after["height"]["createdAt"] == before["height"]["createdAt"]
    assert after["height"]["modifiedAt"] > before["height"]["modifiedAt"]


# --- attribute delete (5.6.5) --------------------------------------------------------


async def test_delete_attribute_is_204_and_it_is_gone(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12), color=prop("red")))
    response = await client.delete(attr_url(B1, "color"))
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(12))


async def test_delete_attribute_removes_only_the_default_instance(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=[prop(20), prop(21, datasetId=DS_A)]))
    assert (await client.delete(attr_url(B1, "temperature"))).status_code == 204
    assert (await fetch(client, B1))["temperature"] == prop(21, datasetId=DS_A)


async def test_delete_attribute_with_dataset_id_removes_that_instance(
    client: httpx.AsyncClient,
) -> None:
    await create(
        client,
        building(1, temperature=[prop(20), prop(21, datasetId=DS_A), prop(22, datasetId=DS_B)]),
    )
    response = await client.delete(attr_url(B1, "temperature"), params={"datasetId": DS_A})
    assert response.status_code == 204
    got = (await fetch(client, B1))["temperature"]
    assert by_value(got) == [prop(20), prop(22, datasetId=DS_B)]


async def test_delete_attribute_with_delete_all_removes_every_instance(
    client: httpx.AsyncClient,
) -> None:
    await create(
        client,
        building(1, height=prop(1), temperature=[prop(20), prop(21, datasetId=DS_A)]),
    )
    response = await client.delete(attr_url(B1, "temperature"), params={"deleteAll": "true"})
    assert response.status_code == 204
    assert await fetch(client, B1) == building(1, height=prop(1))


async def test_delete_unknown_attribute_is_404(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    assert_problem(await client.delete(attr_url(B1, "nonexistent")), 404, "ResourceNotFound")


async def test_delete_attribute_of_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete(attr_url(MISSING, "height")), 404, "ResourceNotFound")


async def test_delete_attribute_with_unknown_dataset_id_is_404(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20)))
    response = await client.delete(attr_url(B1, "temperature"), params={"datasetId": DS_A})
    assert_problem(response, 404, "ResourceNotFound")
    assert (await fetch(client, B1))["temperature"] == prop(20)


async def test_delete_default_instance_when_only_datasets_exist_is_404(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, temperature=prop(21, datasetId=DS_A)))
    assert_problem(await client.delete(attr_url(B1, "temperature")), 404, "ResourceNotFound")
    assert (await fetch(client, B1))["temperature"] == prop(21, datasetId=DS_A)


async def test_delete_attribute_by_full_iri(client: httpx.AsyncClient) -> None:
    payload = {
        "id": B1,
        "type": "Building",
        "width": prop(7),
        "@context": [{"width": "https://example.org/width"}, CORE_CONTEXT],
    }
    assert (await client.post(ENTITIES, json=payload, headers=LD)).status_code == 201
    response = await client.delete(attr_url(B1, "https://example.org/width"))
    assert response.status_code == 204
    assert "https://example.org/width" not in await fetch(client, B1)


# --- system attributes across changes ------------------------------------------------


async def test_modified_at_advances_with_every_change(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    first = await fetch(client, B1, options="sysAttrs")
    created, stamps = first["createdAt"], [first["modifiedAt"]]
    changes = [
        client.post(attrs_url(B1), json={"color": prop("red")}),
        client.patch(attrs_url(B1), json={"color": prop("blue")}),
        client.patch(attr_url(B1, "height"), json={"value": 13}),
        client.put(attr_url(B1, "height"), json=prop(14)),
        client.delete(attr_url(B1, "color")),
    ]
    for change in changes:
        assert (await change).status_code == 204
        body = await fetch(client, B1, options="sysAttrs")
        assert body["createdAt"] == created
        stamps.append(body["modifiedAt"])
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


async def test_failed_change_does_not_touch_modified_at(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(12)))
    before = await fetch(client, B1, options="sysAttrs")
    assert (await client.patch(attr_url(B1, "nope"), json={"value": 1})).status_code == 404
    assert (await client.delete(attr_url(B1, "nope"))).status_code == 404
    assert await fetch(client, B1, options="sysAttrs") == before


# --- attribute names are expanded with the request's @context (6.3.5) -----------------


async def test_attribute_path_term_is_expanded_with_the_link_context(
    client: httpx.AsyncClient,
) -> None:
    url = await host_context(client, {"width": "https://example.org/width"})
    link = {"Link": link_to(url)}
    await create(client, building(1, width=prop(7)), headers=link)
    # Without the context "width" means the default-vocabulary IRI: no such attribute.
    assert_problem(
        await client.patch(attr_url(B1, "width"), json={"value": 8}), 404, "ResourceNotFound"
    )
    response = await client.patch(attr_url(B1, "width"), json={"value": 8}, headers=link)
    assert response.status_code == 204
    assert (await fetch(client, B1, headers=link))["width"] == prop(8)
    assert (await fetch(client, B1))["https://example.org/width"] == prop(8)

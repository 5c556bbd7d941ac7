"""Batch entity operations over HTTP (ETSI GS CIM 009 V1.8.1).

Create (5.6.7), upsert (5.6.8), update (5.6.9), delete (5.6.10) and merge
(5.6.20) under /entityOperations. Partial failure answers 207 with a
BatchOperationResult (5.2.16): `success` holds entity ids, `errors` holds
BatchEntityError items (5.2.17) of `entityId` and a ProblemDetails `error`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    CORE_CONTEXT,
    ERROR_BASE,
    LD,
    OPS,
    assert_problem,
    building,
    create,
    entity_url,
    fetch,
    prop,
    rel,
)

from dosi.hub.settings import HubSettings

ALICE = "urn:ngsi-ld:Person:alice"
ALL_OPS = ["create", "upsert", "update", "delete", "merge"]


def eid(n: int | str) -> str:
    return f"urn:ngsi-ld:Building:{n}"


def error_of(result: dict[str, Any], entity_id: str) -> dict[str, Any]:
    """The ProblemDetails a 207 result reports for one entity."""
    matches = [e for e in result["errors"] if e["entityId"] == entity_id]
    assert len(matches) == 1, result
    problem: dict[str, Any] = matches[0]["error"]
    assert problem["type"].startswith(ERROR_BASE), problem
    assert isinstance(problem.get("title"), str), problem
    return problem


async def gone(client: httpx.AsyncClient, entity_id: str) -> bool:
    return (await client.get(entity_url(entity_id))).status_code == 404


# --- create (5.6.7) ------------------------------------------------------------------


async def test_batch_create_answers_201_with_the_ids(client: httpx.AsyncClient) -> None:
    entities = [building(1, height=prop(1)), building(2, height=prop(2)), building(3)]
    response = await client.post(f"{OPS}/create", json=entities)
    assert response.status_code == 201
    assert sorted(response.json()) == [eid(1), eid(2), eid(3)]
    for entity in entities:
        assert await fetch(client, entity["id"]) == entity


async def test_batch_create_with_an_existing_id_is_207_and_stores_the_rest(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(2, height=prop(20)))
    response = await client.post(
        f"{OPS}/create",
        json=[building(1, height=prop(1)), building(2, height=prop(99)), building(3)],
    )
    assert response.status_code == 207
    result = response.json()
    assert sorted(result["success"]) == [eid(1), eid(3)]
    assert error_of(result, eid(2))["type"] == ERROR_BASE + "AlreadyExists"
    assert await fetch(client, eid(1)) == building(1, height=prop(1))
    assert await fetch(client, eid(3)) == building(3)
    assert await fetch(client, eid(2)) == building(2, height=prop(20))


async def test_batch_create_with_the_same_id_twice_creates_it_once(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{OPS}/create", json=[building(1, height=prop(1)), building(1, height=prop(2))]
    )
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert error_of(result, eid(1))["type"] == ERROR_BASE + "AlreadyExists"
    assert (await fetch(client, eid(1)))["height"] == prop(1)


async def test_batch_create_with_an_invalid_entity_is_207_and_stores_the_rest(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{OPS}/create",
        json=[building(1), {"id": eid(2), "height": prop(2)}, building(3)],
    )
    assert response.status_code == 207
    result = response.json()
    assert sorted(result["success"]) == [eid(1), eid(3)]
    assert error_of(result, eid(2))["type"] == ERROR_BASE + "BadRequestData"
    assert await gone(client, eid(2))
    assert not await gone(client, eid(1))
    assert not await gone(client, eid(3))


async def test_batch_create_never_half_stores_an_invalid_entity(client: httpx.AsyncClient) -> None:
    half_bad = building(
        2,
        height=prop(2),
        location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1]}},
    )
    response = await client.post(f"{OPS}/create", json=[building(1), half_bad])
    assert response.status_code == 207
    assert error_of(response.json(), eid(2))["type"] == ERROR_BASE + "BadRequestData"
    assert await gone(client, eid(2))


async def test_batch_create_reports_an_invalid_id(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{OPS}/create", json=[building(1), {"id": "not a uri", "type": "Building"}]
    )
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert len(result["errors"]) == 1
    assert result["errors"][0]["error"]["type"] == ERROR_BASE + "BadRequestData"


async def test_batch_create_where_everything_fails_is_207_with_no_success(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1))
    response = await client.post(f"{OPS}/create", json=[building(1)])
    assert response.status_code == 207
    assert response.json()["success"] == []


async def test_batch_create_with_json_ld_items(client: httpx.AsyncClient) -> None:
    context = [{"width": "https://example.org/width"}, CORE_CONTEXT]
    items = [
        {**building(1, width=prop(1)), "@context": context},
        {**building(2, width=prop(2)), "@context": context},
    ]
    response = await client.post(f"{OPS}/create", json=items, headers=LD)
    assert response.status_code == 201, response.text
    assert (await fetch(client, eid(2)))["https://example.org/width"] == prop(2)


# --- upsert (5.6.8) ------------------------------------------------------------------


async def test_batch_upsert_of_new_entities_is_201_with_their_ids(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{OPS}/upsert", json=[building(1), building(2)])
    assert response.status_code == 201
    assert sorted(response.json()) == [eid(1), eid(2)]


async def test_batch_upsert_lists_only_the_created_ids(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)))
    response = await client.post(
        f"{OPS}/upsert", json=[building(1, height=prop(10)), building(2, height=prop(2))]
    )
    assert response.status_code == 201
    assert response.json() == [eid(2)]
    assert (await fetch(client, eid(1)))["height"] == prop(10)
    assert (await fetch(client, eid(2)))["height"] == prop(2)


async def test_batch_upsert_of_existing_entities_is_204(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)))
    await create(client, building(2, height=prop(2)))
    response = await client.post(
        f"{OPS}/upsert", json=[building(1, height=prop(10)), building(2, height=prop(20))]
    )
    assert response.status_code == 204
    assert response.content == b""
    assert (await fetch(client, eid(2)))["height"] == prop(20)


async def test_batch_upsert_replace_drops_untouched_attributes(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1), color=prop("red")))
    response = await client.post(
        f"{OPS}/upsert", params={"options": "replace"}, json=[building(1, height=prop(10))]
    )
    assert response.status_code == 204
    assert await fetch(client, eid(1)) == building(1, height=prop(10))


async def test_batch_upsert_defaults_to_replace(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1), color=prop("red")))
    response = await client.post(f"{OPS}/upsert", json=[building(1, owner=rel(ALICE))])
    assert response.status_code == 204
    assert await fetch(client, eid(1)) == building(1, owner=rel(ALICE))


async def test_batch_upsert_update_keeps_untouched_attributes(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1), color=prop("red")))
    response = await client.post(
        f"{OPS}/upsert", params={"options": "update"}, json=[building(1, height=prop(10))]
    )
    assert response.status_code == 204
    assert await fetch(client, eid(1)) == building(1, height=prop(10), color=prop("red"))


async def test_batch_upsert_keeps_created_at_of_existing_entities(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(1)))
    before = await fetch(client, eid(1), options="sysAttrs")
    assert (await client.post(f"{OPS}/upsert", json=[building(1)])).status_code == 204
    after = await fetch(client, eid(1), options="sysAttrs")
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]


async def test_batch_upsert_with_unknown_option_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{OPS}/upsert", params={"options": "merge"}, json=[building(1)])
    assert_problem(response, 400, "BadRequestData")
    assert await gone(client, eid(1))


async def test_batch_upsert_with_an_invalid_entity_is_207(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{OPS}/upsert", json=[building(1), {"id": eid(2), "height": prop(2)}]
    )
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert error_of(result, eid(2))["type"] == ERROR_BASE + "BadRequestData"
    assert await gone(client, eid(2))


# --- update (5.6.9) ------------------------------------------------------------------


async def test_batch_update_is_204_and_keeps_other_attributes(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1), color=prop("red")))
    await create(client, building(2, height=prop(2)))
    response = await client.post(
        f"{OPS}/update",
        json=[{"id": eid(1), "height": prop(10)}, {"id": eid(2), "owner": rel(ALICE)}],
    )
    assert response.status_code == 204
    assert await fetch(client, eid(1)) == building(1, height=prop(10), color=prop("red"))
    assert await fetch(client, eid(2)) == building(2, height=prop(2), owner=rel(ALICE))


async def test_batch_update_no_overwrite_keeps_existing_values(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)))
    response = await client.post(
        f"{OPS}/update",
        params={"options": "noOverwrite"},
        json=[{"id": eid(1), "height": prop(10), "color": prop("red")}],
    )
    assert response.status_code in (204, 207)
    assert await fetch(client, eid(1)) == building(1, height=prop(1), color=prop("red"))


async def test_batch_update_of_a_missing_entity_is_an_error_entry(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(1)))
    response = await client.post(
        f"{OPS}/update",
        json=[{"id": eid(1), "height": prop(10)}, {"id": eid(2), "height": prop(20)}],
    )
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert error_of(result, eid(2))["type"] == ERROR_BASE + "ResourceNotFound"
    assert (await fetch(client, eid(1)))["height"] == prop(10)
    assert await gone(client, eid(2))


async def test_batch_update_with_an_invalid_attribute_leaves_that_entity_alone(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1, height=prop(1)))
    response = await client.post(
        f"{OPS}/update", json=[{"id": eid(1), "height": prop(10), "owner": rel("bad uri")}]
    )
    assert response.status_code == 207
    assert error_of(response.json(), eid(1))["type"] == ERROR_BASE + "BadRequestData"
    assert await fetch(client, eid(1)) == building(1, height=prop(1))


# --- delete (5.6.10) -----------------------------------------------------------------


async def test_batch_delete_is_204_and_the_entities_are_gone(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    await create(client, building(2))
    await create(client, building(3))
    response = await client.post(f"{OPS}/delete", json=[eid(1), eid(2)])
    assert response.status_code == 204
    assert await gone(client, eid(1))
    assert await gone(client, eid(2))
    assert not await gone(client, eid(3))


async def test_batch_delete_of_an_unknown_id_is_207(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    response = await client.post(f"{OPS}/delete", json=[eid(1), eid(2)])
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert error_of(result, eid(2))["type"] == ERROR_BASE + "ResourceNotFound"
    assert await gone(client, eid(1))


async def test_batch_delete_of_an_invalid_id_is_reported(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    response = await client.post(f"{OPS}/delete", json=[eid(1), "not a uri"])
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert len(result["errors"]) == 1
    assert result["errors"][0]["error"]["type"] == ERROR_BASE + "BadRequestData"


# --- merge (5.6.20) ------------------------------------------------------------------


async def test_batch_merge_is_204_with_merge_semantics(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1), color=prop("red"), owner=rel(ALICE)))
    await create(client, building(2, height=prop(2)))
    response = await client.post(
        f"{OPS}/merge",
        json=[
            {"id": eid(1), "type": "Building", "height": prop(10), "color": "urn:ngsi-ld:null"},
            {"id": eid(2), "type": "Building", "width": prop(5)},
        ],
    )
    assert response.status_code == 204
    assert await fetch(client, eid(1)) == building(1, height=prop(10), owner=rel(ALICE))
    assert await fetch(client, eid(2)) == building(2, height=prop(2), width=prop(5))


async def test_batch_merge_merges_sub_attributes(client: httpx.AsyncClient) -> None:
    await create(client, building(1, temperature=prop(20, unitCode="CEL", accuracy=prop(0.5))))
    response = await client.post(
        f"{OPS}/merge", json=[{"id": eid(1), "temperature": {"value": 21}}]
    )
    assert response.status_code == 204
    assert (await fetch(client, eid(1)))["temperature"] == prop(
        21, unitCode="CEL", accuracy=prop(0.5)
    )


async def test_batch_merge_of_a_missing_entity_is_207(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)))
    response = await client.post(
        f"{OPS}/merge",
        json=[{"id": eid(1), "height": prop(10)}, {"id": eid(2), "height": prop(20)}],
    )
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == [eid(1)]
    assert error_of(result, eid(2))["type"] == ERROR_BASE + "ResourceNotFound"
    assert (await fetch(client, eid(1)))["height"] == prop(10)
    assert await gone(client, eid(2))


# --- shared rules ------------------------------------------------------------------


@pytest.mark.parametrize("op", ALL_OPS)
async def test_empty_batch_is_400(client: httpx.AsyncClient, op: str) -> None:
    assert_problem(await client.post(f"{OPS}/{op}", json=[]), 400, "BadRequestData")


@pytest.mark.parametrize("op", ALL_OPS)
async def test_non_array_batch_is_400(client: httpx.AsyncClient, op: str) -> None:
    response = await client.post(f"{OPS}/{op}", json=building(1))
    assert_problem(response, 400)
    assert await gone(client, eid(1))


@pytest.mark.parametrize("op", ALL_OPS)
async def test_batch_with_wrong_content_type_is_415(client: httpx.AsyncClient, op: str) -> None:
    response = await client.post(
        f"{OPS}/{op}", content=b"[]", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415


async def test_batch_207_result_is_json_with_both_arrays(client: httpx.AsyncClient) -> None:
    await create(client, building(1))
    response = await client.post(f"{OPS}/create", json=[building(1), building(2)])
    assert response.status_code == 207
    assert response.headers["content-type"].startswith("application/json")
    result = response.json()
    assert set(result) >= {"success", "errors"}
    assert isinstance(result["success"], list) and isinstance(result["errors"], list)
    assert set(result["errors"][0]) >= {"entityId", "error"}


class TestBatchLimit:
    """A hub that takes at most three entities per batch."""

    @pytest.fixture
    def settings(self, tmp_path: Path) -> HubSettings:
        return HubSettings(data_dir=tmp_path / "data", max_batch_entities=3)

    async def test_batch_over_the_limit_is_rejected_whole(self, client: httpx.AsyncClient) -> None:
        response = await client.post(f"{OPS}/create", json=[building(n) for n in range(4)])
        assert response.status_code in (400, 413)
        assert_problem(response, response.status_code)
        for n in range(4):
            assert await gone(client, eid(n))

    async def test_batch_at_the_limit_is_accepted(self, client: httpx.AsyncClient) -> None:
        response = await client.post(f"{OPS}/create", json=[building(n) for n in range(3)])
        assert response.status_code == 201
        assert len(response.json()) == 3

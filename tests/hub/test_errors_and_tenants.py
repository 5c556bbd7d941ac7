"""Error reporting, request hygiene and tenants over HTTP (ETSI GS CIM 009 V1.8.1).

ProblemDetails (5.5.2, 6.3.2), content types (6.3.4), @context handling
(6.3.5), Accept negotiation (6.3.6), multi-tenancy with the NGSILD-Tenant
header (4.14, 6.3.14), plus the hub's operational endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    CORE_CONTEXT,
    CORE_LINK,
    ENTITIES,
    ERROR_BASE,
    LD,
    OPS,
    assert_problem,
    attr_url,
    attrs_url,
    building,
    create,
    entity_url,
    fetch,
    prop,
    rel,
)

from dosi.hub.settings import HubSettings

B1 = "urn:ngsi-ld:Building:1"
ALICE = "urn:ngsi-ld:Person:alice"

# (method, path) of every operation that takes a JSON body.
BODY_OPERATIONS = [
    ("POST", ENTITIES),
    ("PUT", entity_url(B1)),
    ("PATCH", entity_url(B1)),
    ("POST", attrs_url(B1)),
    ("PATCH", attrs_url(B1)),
    ("PATCH", attr_url(B1, "height")),
    ("PUT", attr_url(B1, "height")),
    ("POST", f"{OPS}/create"),
    ("POST", f"{OPS}/upsert"),
    ("POST", f"{OPS}/update"),
    ("POST", f"{OPS}/merge"),
    ("POST", f"{OPS}/delete"),
]
BODY_IDS = [f"{m} {p.removeprefix('/ngsi-ld/v1')}" for m, p in BODY_OPERATIONS]


async def seeded(client: httpx.AsyncClient) -> dict[str, Any]:
    """Store B1 and return how it reads back (with system attributes)."""
    await create(client, building(1, height=prop(12, accuracy=prop(0.5)), owner=rel(ALICE)))
    return await fetch(client, B1, options="sysAttrs")


# --- malformed requests --------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS, ids=BODY_IDS)
async def test_malformed_json_is_400_invalid_request(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    before = await seeded(client)
    response = await client.request(
        method,
        path,
        content=b'{"id": "urn:x:1", "type": ',
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "InvalidRequest")
    assert isinstance(problem.get("detail"), str) and problem["detail"]
    assert await fetch(client, B1, options="sysAttrs") == before


async def test_problem_details_carry_type_title_status_detail(client: httpx.AsyncClient) -> None:
    response = await client.get(entity_url(B1))
    problem = assert_problem(response, 404, "ResourceNotFound")
    assert problem.get("status", 404) == 404
    assert B1 in problem["detail"]


async def test_empty_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES, content=b"", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded", None]
)
async def test_unsupported_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(
        ENTITIES, content=b'{"id": "urn:ngsi-ld:Building:1", "type": "Building"}', headers=headers
    )
    assert response.status_code == 415
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_merge_patch_media_type_is_refused_by_create(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES,
        content=b'{"id": "urn:ngsi-ld:Building:1", "type": "Building"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 415


async def test_json_content_type_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES,
        content=b'{"id": "urn:ngsi-ld:Building:1", "type": "Building"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


class TestBodyLimit:
    """A hub that takes request bodies of at most 1000 bytes."""

    @pytest.fixture
    def settings(self, tmp_path: Path) -> HubSettings:
        return HubSettings(data_dir=tmp_path / "data", max_body_bytes=1000)

    async def test_body_over_the_limit_is_413(self, client: httpx.AsyncClient) -> None:
        big = building(1, notes=prop("x" * 2000))
        response = await client.post(ENTITIES, json=big)
        assert_problem(response, 413)
        assert (await client.get(entity_url(B1))).status_code == 404

    async def test_body_within_the_limit_is_accepted(self, client: httpx.AsyncClient) -> None:
        response = await client.post(ENTITIES, json=building(1, notes=prop("x" * 500)))
        assert response.status_code == 201

    async def test_oversized_update_leaves_the_entity_alone(
        self, client: httpx.AsyncClient
    ) -> None:
        await create(client, building(1, height=prop(12)))
        response = await client.patch(attrs_url(B1), json={"height": prop("x" * 2000)})
        assert_problem(response, 413)
        assert (await fetch(client, B1))["height"] == prop(12)

    async def test_oversized_batch_is_413(self, client: httpx.AsyncClient) -> None:
        batch = [building(n, notes=prop("y" * 100)) for n in range(20)]
        assert_problem(await client.post(f"{OPS}/create", json=batch), 413)
        assert (await client.get(entity_url("urn:ngsi-ld:Building:0"))).status_code == 404


# --- @context rules (6.3.5) ------------------------------------------------------------


async def test_json_ld_body_without_context_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(ENTITIES, json=building(1, height=prop(1)), headers=LD)
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_json_ld_batch_item_without_context_is_400(client: httpx.AsyncClient) -> None:
    items = [{**building(1), "@context": CORE_CONTEXT}, building(2)]
    response = await client.post(f"{OPS}/create", json=items, headers=LD)
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_context_in_a_plain_json_body_is_400(client: httpx.AsyncClient) -> None:
    payload = {**building(1, height=prop(1)), "@context": CORE_CONTEXT}
    response = await client.post(ENTITIES, json=payload)
    assert_problem(response, 400, "BadRequestData")
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_context_in_a_plain_json_append_is_400(client: httpx.AsyncClient) -> None:
    before = await seeded(client)
    response = await client.post(
        attrs_url(B1), json={"color": prop("red"), "@context": CORE_CONTEXT}
    )
    assert_problem(response, 400, "BadRequestData")
    assert await fetch(client, B1, options="sysAttrs") == before


async def test_json_ld_body_with_the_core_context_is_accepted(client: httpx.AsyncClient) -> None:
    payload = {**building(1, height=prop(1)), "@context": CORE_CONTEXT}
    response = await client.post(ENTITIES, json=payload, headers=LD)
    assert response.status_code == 201
    assert await fetch(client, B1) == building(1, height=prop(1))


async def test_plain_json_with_core_link_header_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES, json=building(1, height=prop(1)), headers={"Link": CORE_LINK}
    )
    assert response.status_code == 201
    assert await fetch(client, B1) == building(1, height=prop(1))


async def test_malformed_link_header_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES, json=building(1), headers={"Link": "this is not a link header"}
    )
    assert_problem(response, 400)
    assert (await client.get(entity_url(B1))).status_code == 404


async def test_unreachable_remote_context_is_503(client: httpx.AsyncClient) -> None:
    payload = {**building(1), "@context": "http://127.0.0.1:9/no-such-context.jsonld"}
    response = await client.post(ENTITIES, json=payload, headers=LD)
    assert_problem(response, 503, "LdContextNotAvailable")
    assert (await client.get(entity_url(B1))).status_code == 404


# --- nothing stored is lost after an error --------------------------------------------


async def test_rejected_requests_leave_the_stored_entity_intact(
    client: httpx.AsyncClient,
) -> None:
    before = await seeded(client)
    bad_geo = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": "x"}}
    rejected = [
        client.post(ENTITIES, json=building(1, height=prop(99))),
        client.post(attrs_url(B1), json={"height": prop(99), "bad": bad_geo}),
        client.patch(attrs_url(B1), json={"height": {"type": "Relationship", "object": "x y"}}),
        client.patch(entity_url(B1), json={"height": prop(99), "owner": rel("not a uri")}),
        client.put(entity_url(B1), json=building(2)),
        client.put(attr_url(B1, "height"), json={"type": "Property"}),
        client.patch(attr_url(B1, "height"), json={"value": 99, "datasetId": "not a uri"}),
        client.delete(attr_url(B1, "nonexistent")),
        client.post(f"{OPS}/update", json=[{"id": B1, "height": prop(99), "x": bad_geo}]),
        client.post(f"{OPS}/upsert", json=[{"id": B1, "height": prop(99)}]),
        client.post(ENTITIES, content=b"{not json", headers={"Content-Type": "application/json"}),
    ]
    for request in rejected:
        response = await request
        assert response.status_code >= 207, response.text
        assert response.status_code != 204
    assert await fetch(client, B1, options="sysAttrs") == before


# --- routing ---------------------------------------------------------------------------


async def test_unknown_route_is_404_problem_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/ngsi-ld/v1/nonsense")
    assert_problem(response, 404)


async def test_unknown_sub_resource_of_an_entity_is_404(client: httpx.AsyncClient) -> None:
    await seeded(client)
    response = await client.get(f"{entity_url(B1)}/nonsense/deeper")
    assert_problem(response, 404)


async def test_unsupported_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.put(ENTITIES, json=building(1))
    assert response.status_code == 405
    assert_problem(response, 405)


async def test_not_acceptable_answer_is_a_problem(client: httpx.AsyncClient) -> None:
    await seeded(client)
    response = await client.get(entity_url(B1), headers={"Accept": "image/png"})
    assert response.status_code == 406


# --- tenants (4.14, 6.3.14) ------------------------------------------------------------


def tenant(name: str) -> dict[str, str]:
    return {"NGSILD-Tenant": name}


async def test_entity_in_a_tenant_is_invisible_elsewhere(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)), headers=tenant("city-a"))
    await create(client, building(2), headers=tenant("city-b"))
    assert_problem(await client.get(entity_url(B1)), 404, "ResourceNotFound")
    response = await client.get(entity_url(B1), headers=tenant("city-b"))
    assert_problem(response, 404, "ResourceNotFound")
    got = await fetch(client, B1, headers=tenant("city-a"))
    assert got == building(1, height=prop(1))


async def test_default_tenant_entities_are_invisible_in_a_tenant(
    client: httpx.AsyncClient,
) -> None:
    await create(client, building(1))
    await create(client, building(2), headers=tenant("city-a"))
    response = await client.get(entity_url(B1), headers=tenant("city-a"))
    assert_problem(response, 404, "ResourceNotFound")


async def test_reading_an_unknown_tenant_is_404_nonexistent_tenant(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(entity_url(B1), headers=tenant("nowhere"))
    assert_problem(response, 404, "NonexistentTenant")
    query = await client.get(ENTITIES, params={"type": "Building"}, headers=tenant("nowhere"))
    assert_problem(query, 404, "NonexistentTenant")


async def test_a_tenant_appears_on_its_first_write(client: httpx.AsyncClient) -> None:
    before = await client.get(entity_url(B1), headers=tenant("fresh"))
    assert_problem(before, 404, "NonexistentTenant")
    response = await client.post(ENTITIES, json=building(1), headers=tenant("fresh"))
    assert response.status_code == 201
    assert (await fetch(client, B1, headers=tenant("fresh")))["id"] == B1


async def test_create_in_a_tenant_echoes_the_tenant_header(client: httpx.AsyncClient) -> None:
    response = await client.post(ENTITIES, json=building(1), headers=tenant("city-a"))
    assert response.status_code == 201
    assert response.headers.get("ngsild-tenant") == "city-a"


async def test_same_id_lives_independently_in_two_tenants(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)), headers=tenant("city-a"))
    await create(client, building(1, height=prop(2)), headers=tenant("city-b"))
    await create(client, building(1, height=prop(3)))
    assert (await fetch(client, B1, headers=tenant("city-a")))["height"] == prop(1)
    assert (await fetch(client, B1, headers=tenant("city-b")))["height"] == prop(2)
    assert (await fetch(client, B1))["height"] == prop(3)


async def test_changes_in_one_tenant_do_not_leak(client: httpx.AsyncClient) -> None:
    await create(client, building(1, height=prop(1)), headers=tenant("city-a"))
    await create(client, building(1, height=prop(3)))
    patch = await client.patch(attrs_url(B1), json={"height": prop(100)}, headers=tenant("city-a"))
    assert patch.status_code == 204
    deleted = await client.delete(entity_url(B1), headers=tenant("city-a"))
    assert deleted.status_code == 204
    assert (await fetch(client, B1))["height"] == prop(3)


async def test_batch_operations_are_tenant_scoped(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{OPS}/create", json=[building(1), building(2)], headers=tenant("city-a")
    )
    assert response.status_code == 201
    assert (await client.get(entity_url(B1))).status_code == 404
    assert (await fetch(client, B1, headers=tenant("city-a")))["id"] == B1
    delete = await client.post(f"{OPS}/delete", json=[B1], headers=tenant("city-a"))
    assert delete.status_code == 204
    assert (await client.get(entity_url(B1), headers=tenant("city-a"))).status_code == 404


async def test_query_is_tenant_scoped(client: httpx.AsyncClient) -> None:
    await create(client, building(1), headers=tenant("city-a"))
    await create(client, building(2))
    default = await client.get(ENTITIES, params={"type": "Building"})
    assert [e["id"] for e in default.json()] == ["urn:ngsi-ld:Building:2"]
    scoped = await client.get(ENTITIES, params={"type": "Building"}, headers=tenant("city-a"))
    assert [e["id"] for e in scoped.json()] == [B1]


async def test_error_in_a_tenant_is_still_a_problem(client: httpx.AsyncClient) -> None:
    await create(client, building(1), headers=tenant("city-a"))
    response = await client.post(ENTITIES, json=building(1), headers=tenant("city-a"))
    problem = assert_problem(response, 409, "AlreadyExists")
    assert problem["type"] == ERROR_BASE + "AlreadyExists"


# --- operations endpoints ------------------------------------------------------------


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    await client.post(ENTITIES, json=building(1))
    await client.get(entity_url(B1))
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "dosi_http_requests_total" in text
    lines = [line for line in text.splitlines() if line.startswith("dosi_http_requests_total{")]
    assert any('method="POST"' in line and 'status="201"' in line for line in lines), lines
    assert any('method="GET"' in line and 'status="200"' in line for line in lines), lines

"""Helpers shared by the hub's HTTP behaviour tests (tests/hub/test_*.py).

Only small conveniences live here: URLs, payload builders and the one
ProblemDetails assertion (ETSI GS CIM 009, clause 5.5.2 / 6.3.2).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from conftest import BASE, CORE_LINK

__all__ = [
    "BASE",
    "CORE_CONTEXT",
    "CORE_LINK",
    "DEFAULT_VOCAB",
    "ENTITIES",
    "ERROR_BASE",
    "JSON_LD_REL",
    "LD",
    "OPS",
    "assert_problem",
    "attr_url",
    "attrs_url",
    "building",
    "create",
    "entity_url",
    "fetch",
    "geo",
    "host_context",
    "ids_of",
    "link_to",
    "post_query",
    "prop",
    "query",
    "rel",
    "seed",
]

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ENTITIES = f"{BASE}/entities"
OPS = f"{BASE}/entityOperations"
LD = {"Content-Type": "application/ld+json"}


def assert_problem(
    response: httpx.Response, status: int, error: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 7807 ProblemDetails with the given status (and ETSI error type).

    Returns the problem body so callers can look further.
    """
    assert response.status_code == status, (response.status_code, response.text)
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media == "application/problem+json", media
    problem = response.json()
    assert isinstance(problem, dict), problem
    assert isinstance(problem.get("type"), str) and problem["type"], problem
    assert isinstance(problem.get("title"), str) and problem["title"], problem
    if error is not None:
        assert problem["type"] == ERROR_BASE + error, problem
    return problem


def entity_url(entity_id: str) -> str:
    return f"{ENTITIES}/{quote(entity_id, safe=':')}"


def attrs_url(entity_id: str) -> str:
    return f"{entity_url(entity_id)}/attrs"


def attr_url(entity_id: str, attr: str) -> str:
    return f"{attrs_url(entity_id)}/{quote(attr, safe=':')}"


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def rel(target: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Relationship", "object": target, **extra}


def geo(lon: float, lat: float, **extra: Any) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}, **extra}


def building(n: int | str, **attrs: Any) -> dict[str, Any]:
    """A Building entity `urn:ngsi-ld:Building:<n>` with the given attributes."""
    return {"id": f"urn:ngsi-ld:Building:{n}", "type": "Building", **attrs}


async def create(
    client: httpx.AsyncClient, entity: Any, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST /entities and insist on 201: for setting up state, not for testing create."""
    response = await client.post(ENTITIES, json=entity, headers=headers)
    assert response.status_code == 201, response.text
    return response


async def fetch(
    client: httpx.AsyncClient,
    entity_id: str,
    *,
    headers: dict[str, str] | None = None,
    **params: str,
) -> dict[str, Any]:
    """GET /entities/{id} and insist on 200; returns the body."""
    response = await client.get(entity_url(entity_id), params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- query, discovery and @context helpers (test_query/geo_query/representations/...) ---

DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
JSON_LD_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def link_to(url: str) -> str:
    """A Link header value naming `url` as the request's JSON-LD @context."""
    return f"<{url}>; {JSON_LD_REL}"


async def seed(
    client: httpx.AsyncClient,
    entities: list[dict[str, Any]],
    *,
    link: str | None = None,
    tenant: str | None = None,
) -> None:
    """Batch-upsert entities (JSON, no inline @context; `link` = context URL); insist on success."""
    headers = {"Content-Type": "application/json"}
    if link is not None:
        headers["Link"] = link_to(link)
    if tenant is not None:
        headers["NGSILD-Tenant"] = tenant
    response = await client.post(f"{OPS}/upsert", json=entities, headers=headers)
    assert response.status_code in (201, 204), (response.status_code, response.text)


async def host_context(client: httpx.AsyncClient, context: Any) -> str:
    """POST {"@context": context} to /jsonldContexts; return the Location URL (insist on 201)."""
    response = await client.post(f"{BASE}/jsonldContexts", json={"@context": context})
    assert response.status_code == 201, (response.status_code, response.text)
    location: str = response.headers["Location"]
    assert location
    return location


async def query(
    client: httpx.AsyncClient,
    params: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """GET /entities with the given parameters."""
    return await client.get(ENTITIES, params=params or {}, headers=headers or {})


async def post_query(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /entityOperations/query with a Query body ("type": "Query" added)."""
    payload = {"type": "Query", **body}
    return await client.post(
        f"{OPS}/query", json=payload, params=params or {}, headers=headers or {}
    )


def ids_of(response: httpx.Response) -> list[str]:
    """Sorted entity ids of a 200 query response (fails with the body otherwise)."""
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, list), body
    return sorted(item["id"] for item in body)

"""@context handling and the /jsonldContexts API (ETSI GS CIM 009 V1.8.1).

Clauses 5.13.2-5.13.5 (add, list, serve, delete @context), 6.3.5 (the request's
@context: Link header for JSON, body member for JSON-LD), 6.3.6 (the response's
@context), 5.5.2 LdContextNotAvailable. User contexts are hosted by the hub
itself (POST /jsonldContexts, then the Location URL in a Link header) so no
test needs the network.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from helpers import (
    BASE,
    CORE_CONTEXT,
    DEFAULT_VOCAB,
    ENTITIES,
    assert_problem,
    entity_url,
    host_context,
    link_to,
    query,
    seed,
)

CONTEXTS = f"{BASE}/jsonldContexts"
UNREACHABLE = "http://127.0.0.1:9/nothing.jsonld"
EX = "https://example.org/ns/"
USER_CONTEXT = {
    "Car": EX + "Car",
    "speed": EX + "speed",
    "owner": EX + "owner",
    "color": EX + "color",
}
CAR = "urn:ngsi-ld:Car:1"


def path_of(url: str) -> str:
    """The hub-local path of an absolute URL the hub handed out."""
    return urlsplit(url).path


def local_id(url: str) -> str:
    return path_of(url).rsplit("/", 1)[1]


# --- add / serve / list / delete (clause 5.13) ---------------------------------------------


async def test_add_context_gives_201_and_location(client: httpx.AsyncClient) -> None:
    resp = await client.post(CONTEXTS, json={"@context": USER_CONTEXT})
    assert resp.status_code == 201, resp.text
    location = resp.headers["Location"]
    assert path_of(location).startswith(f"{CONTEXTS}/")
    assert local_id(location)


async def test_add_context_accepts_json_ld_content_type(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        CONTEXTS,
        content=b'{"@context": {"speed": "https://example.org/ns/speed"}}',
        headers={"Content-Type": "application/ld+json"},
    )
    assert resp.status_code == 201, resp.text


async def test_each_added_context_gets_its_own_id(client: httpx.AsyncClient) -> None:
    first = await host_context(client, USER_CONTEXT)
    second = await host_context(client, {"other": EX + "other"})
    assert first != second


async def test_serve_hosted_context(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.get(path_of(url))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].split(";")[0] in ("application/ld+json", "application/json")
    assert resp.json() == {"@context": USER_CONTEXT}


async def test_serve_hosted_context_details(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.get(path_of(url), params={"details": "true"})
    assert resp.status_code == 200
    info = resp.json()
    assert info["URL"] == url
    assert info["localId"] == local_id(url)
    assert info["kind"] == "Hosted"
    assert "createdAt" in info


async def test_serve_unknown_context_is_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{CONTEXTS}/no-such-context"), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "payload",
    [
        {"speed": EX + "speed"},  # no @context member
        [{"@context": USER_CONTEXT}],  # not an object
        "just a string",
        {"@context": {"bad": 42}},  # a term definition must be a string, null or object
    ],
)
async def test_add_invalid_context_is_bad_request(client: httpx.AsyncClient, payload: Any) -> None:
    resp = await client.post(CONTEXTS, json=payload)
    assert_problem(resp, 400, "BadRequestData")


async def test_add_context_not_json_is_rejected(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        CONTEXTS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400


async def test_list_contexts_gives_urls(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.get(CONTEXTS)
    assert resp.status_code == 200
    urls = resp.json()
    assert isinstance(urls, list)
    assert all(isinstance(u, str) for u in urls)
    assert url in urls


async def test_list_contexts_includes_the_core_context(client: httpx.AsyncClient) -> None:
    resp = await client.get(CONTEXTS)
    assert resp.status_code == 200
    assert CORE_CONTEXT in resp.json()


async def test_list_contexts_details(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.get(CONTEXTS, params={"details": "true"})
    assert resp.status_code == 200
    infos = resp.json()
    mine = [i for i in infos if i["URL"] == url]
    assert len(mine) == 1
    assert mine[0]["kind"] == "Hosted"
    assert mine[0]["localId"] == local_id(url)
    core = [i for i in infos if i["URL"] == CORE_CONTEXT]
    assert len(core) == 1
    assert core[0]["kind"] == "Cached"


async def test_list_contexts_kind_hosted(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.get(CONTEXTS, params={"kind": "Hosted", "details": "true"})
    assert resp.status_code == 200
    infos = resp.json()
    assert [i["URL"] for i in infos] == [url]
    assert all(i["kind"] == "Hosted" for i in infos)


async def test_list_contexts_kind_cached_has_no_hosted(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.get(CONTEXTS, params={"kind": "Cached", "details": "true"})
    assert resp.status_code == 200
    assert url not in [i["URL"] for i in resp.json()]


async def test_list_contexts_unknown_kind_is_bad_request(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(CONTEXTS, params={"kind": "Borrowed"}), 400, "BadRequestData")


async def test_delete_hosted_context(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    resp = await client.delete(path_of(url))
    assert resp.status_code == 204
    assert_problem(await client.get(path_of(url)), 404, "ResourceNotFound")


async def test_delete_twice_is_not_found(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    assert (await client.delete(path_of(url))).status_code == 204
    assert_problem(await client.delete(path_of(url)), 404, "ResourceNotFound")


async def test_deleted_context_leaves_the_list(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    await client.delete(path_of(url))
    resp = await client.get(CONTEXTS, params={"details": "true"})
    assert url not in [i["URL"] for i in resp.json()]


async def test_delete_unknown_context_is_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete(f"{CONTEXTS}/no-such-context"), 404, "ResourceNotFound")


async def test_core_context_served_by_local_id(client: httpx.AsyncClient) -> None:
    infos = (await client.get(CONTEXTS, params={"details": "true"})).json()
    (core,) = [i for i in infos if i["URL"] == CORE_CONTEXT]
    resp = await client.get(f"{CONTEXTS}/{core['localId']}")
    assert resp.status_code == 200
    document = resp.json()
    terms = document["@context"]
    assert isinstance(terms, dict)
    assert "Property" in terms and "GeoProperty" in terms and "location" in terms


async def test_core_context_served_by_url(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{CONTEXTS}/{quote(CORE_CONTEXT, safe='')}")
    assert resp.status_code == 200
    assert "Relationship" in resp.json()["@context"]


async def test_core_context_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    resp = await client.delete(f"{CONTEXTS}/{quote(CORE_CONTEXT, safe='')}")
    assert resp.status_code == 400
    assert (await client.get(f"{CONTEXTS}/{quote(CORE_CONTEXT, safe='')}")).status_code == 200


# --- a user @context by Link header (clause 6.3.5) -----------------------------------------


@pytest.fixture
async def user(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    url = await host_context(client, USER_CONTEXT)
    await seed(
        client,
        [
            {
                "id": CAR,
                "type": "Car",
                "speed": {"type": "Property", "value": 80},
                "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:kim"},
                "mileage": {"type": "Property", "value": 12000},
            }
        ],
        link=url,
    )
    return client, url


async def test_user_context_round_trips_short_names(user: tuple[httpx.AsyncClient, str]) -> None:
    client, url = user
    resp = await client.get(entity_url(CAR), headers={"Link": link_to(url)})
    assert resp.status_code == 200
    entity = resp.json()
    assert entity["type"] == "Car"
    assert entity["speed"] == {"type": "Property", "value": 80}
    assert entity["owner"]["object"] == "urn:ngsi-ld:Person:kim"
    assert entity["mileage"]["value"] == 12000


async def test_core_context_only_shows_full_iris(user: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = user
    entity = (await client.get(entity_url(CAR))).json()
    assert entity["type"] == EX + "Car"
    assert entity[EX + "speed"]["value"] == 80
    assert entity[EX + "owner"]["object"] == "urn:ngsi-ld:Person:kim"
    assert "speed" not in entity
    # A term the user context does not define falls to the core @vocab: same with either context.
    assert entity["mileage"]["value"] == 12000


async def test_response_link_echoes_the_user_context(user: tuple[httpx.AsyncClient, str]) -> None:
    client, url = user
    resp = await client.get(entity_url(CAR), headers={"Link": link_to(url)})
    assert url in resp.headers["Link"]
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in resp.headers["Link"]


async def test_query_type_with_user_context(user: tuple[httpx.AsyncClient, str]) -> None:
    client, url = user
    resp = await query(client, {"type": "Car"}, headers={"Link": link_to(url)})
    assert [e["id"] for e in resp.json()] == [CAR]
    resp = await query(client, {"type": "Car"})
    assert resp.json() == []
    resp = await query(client, {"type": EX + "Car"})
    assert [e["id"] for e in resp.json()] == [CAR]


async def test_query_q_and_attrs_expand_with_user_context(
    user: tuple[httpx.AsyncClient, str],
) -> None:
    client, url = user
    await seed(
        client,
        [{"id": "urn:ngsi-ld:Car:core", "type": "Car", "speed": {"type": "Property", "value": 90}}],
    )
    with_user = await query(client, {"q": "speed>50"}, headers={"Link": link_to(url)})
    assert [e["id"] for e in with_user.json()] == [CAR]
    with_core = await query(client, {"q": "speed>50"})
    assert [e["id"] for e in with_core.json()] == ["urn:ngsi-ld:Car:core"]
    attrs = await query(client, {"attrs": "speed"}, headers={"Link": link_to(url)})
    assert [e["id"] for e in attrs.json()] == [CAR]


async def test_core_context_entity_keeps_default_vocab_iri(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [{"id": "urn:ngsi-ld:Car:2", "type": "Car", "speed": {"type": "Property", "value": 1}}],
    )
    resp = await query(client, {"type": DEFAULT_VOCAB + "Car"})
    (entity,) = resp.json()
    assert entity["type"] == "Car"
    assert entity["speed"]["value"] == 1


async def test_user_context_with_vocab(client: httpx.AsyncClient) -> None:
    url = await host_context(client, {"@vocab": "https://example.org/terms/"})
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Lamp:1",
                "type": "Lamp",
                "brightness": {"type": "Property", "value": 7},
            }
        ],
        link=url,
    )
    plain = (await client.get(entity_url("urn:ngsi-ld:Lamp:1"))).json()
    assert plain["type"] == "https://example.org/terms/Lamp"
    assert plain["https://example.org/terms/brightness"]["value"] == 7
    short = (
        await client.get(entity_url("urn:ngsi-ld:Lamp:1"), headers={"Link": link_to(url)})
    ).json()
    assert short["type"] == "Lamp"
    assert short["brightness"]["value"] == 7


async def test_user_context_with_prefix(client: httpx.AsyncClient) -> None:
    url = await host_context(client, {"ex": EX})
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Car:3",
                "type": "ex:Car",
                "ex:speed": {"type": "Property", "value": 5},
            }
        ],
        link=url,
    )
    resp = await query(client, {"type": EX + "Car"})
    (entity,) = resp.json()
    assert entity[EX + "speed"]["value"] == 5


async def test_json_ld_body_with_hosted_context(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    entity = {
        "id": "urn:ngsi-ld:Car:ld",
        "type": "Car",
        "color": {"type": "Property", "value": "red"},
        "@context": url,
    }
    resp = await client.post(ENTITIES, json=entity, headers={"Content-Type": "application/ld+json"})
    assert resp.status_code == 201, resp.text
    plain = (await client.get(entity_url("urn:ngsi-ld:Car:ld"))).json()
    assert plain[EX + "color"]["value"] == "red"


async def test_json_ld_body_with_inline_context(client: httpx.AsyncClient) -> None:
    entity = {
        "id": "urn:ngsi-ld:Car:inline",
        "type": "Car",
        "color": {"type": "Property", "value": "blue"},
        "@context": [USER_CONTEXT, CORE_CONTEXT],
    }
    resp = await client.post(ENTITIES, json=entity, headers={"Content-Type": "application/ld+json"})
    assert resp.status_code == 201, resp.text
    plain = (await client.get(entity_url("urn:ngsi-ld:Car:inline"))).json()
    assert plain["type"] == EX + "Car"
    assert plain[EX + "color"]["value"] == "blue"


async def test_json_ld_body_plus_link_header_is_bad_request(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    entity = {"id": "urn:ngsi-ld:Car:x", "type": "Car", "@context": url}
    resp = await client.post(
        ENTITIES,
        json=entity,
        headers={"Content-Type": "application/ld+json", "Link": link_to(url)},
    )
    assert_problem(resp, 400, "BadRequestData")


async def test_json_body_with_context_member_is_bad_request(client: httpx.AsyncClient) -> None:
    entity = {"id": "urn:ngsi-ld:Car:y", "type": "Car", "@context": CORE_CONTEXT}
    resp = await client.post(ENTITIES, json=entity, headers={"Content-Type": "application/json"})
    assert_problem(resp, 400, "BadRequestData")


async def test_inline_context_gets_an_implicit_url_the_hub_serves(
    client: httpx.AsyncClient,
) -> None:
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Car:q",
                "type": EX + "Car",
                EX + "speed": {"type": "Property", "value": 3},
            }
        ],
    )
    resp = await client.post(
        f"{BASE}/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": "Car"}],
            "@context": [USER_CONTEXT, CORE_CONTEXT],
        },
        headers={"Content-Type": "application/ld+json", "Accept": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    (entity,) = resp.json()
    assert entity["speed"]["value"] == 3
    link = resp.headers["Link"]
    target = link.split(">")[0].lstrip("<")
    served = await client.get(path_of(target))
    assert served.status_code == 200
    served_context = served.json()["@context"]
    flat = served_context if isinstance(served_context, list) else [served_context]
    assert USER_CONTEXT in flat
    implicit = await client.get(CONTEXTS, params={"kind": "ImplicitlyCreated", "details": "true"})
    assert target in [i["URL"] for i in implicit.json()]


# --- unreachable and invalid contexts ------------------------------------------------------


async def test_unreachable_context_on_query(client: httpx.AsyncClient) -> None:
    resp = await query(client, {"type": "Car"}, headers={"Link": link_to(UNREACHABLE)})
    assert_problem(resp, 503, "LdContextNotAvailable")


async def test_unreachable_context_on_retrieve(user: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = user
    resp = await client.get(entity_url(CAR), headers={"Link": link_to(UNREACHABLE)})
    assert_problem(resp, 503, "LdContextNotAvailable")


async def test_unreachable_context_on_create(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        ENTITIES,
        json={"id": "urn:ngsi-ld:Car:z", "type": "Car"},
        headers={"Link": link_to(UNREACHABLE)},
    )
    assert_problem(resp, 503, "LdContextNotAvailable")
    assert (await client.get(entity_url("urn:ngsi-ld:Car:z"))).status_code == 404


async def test_unreachable_context_in_json_ld_body(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        ENTITIES,
        json={"id": "urn:ngsi-ld:Car:w", "type": "Car", "@context": UNREACHABLE},
        headers={"Content-Type": "application/ld+json"},
    )
    assert_problem(resp, 503, "LdContextNotAvailable")


async def test_unreachable_context_on_discovery(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{BASE}/types", headers={"Link": link_to(UNREACHABLE)})
    assert_problem(resp, 503, "LdContextNotAvailable")


async def test_deleted_hosted_context_is_no_longer_usable(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    assert (await client.delete(path_of(url))).status_code == 204
    resp = await query(client, {"type": "Car"}, headers={"Link": link_to(url)})
    assert_problem(resp, 503, "LdContextNotAvailable")


async def test_relative_link_context_is_bad_request(client: httpx.AsyncClient) -> None:
    resp = await query(client, {"type": "Car"}, headers={"Link": link_to("contexts/mine.jsonld")})
    assert_problem(resp, 400, "BadRequestData")


async def test_two_context_links_are_bad_request(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    header = f"{link_to(url)}, {link_to(CORE_CONTEXT)}"
    resp = await query(client, {"type": "Car"}, headers={"Link": header})
    assert_problem(resp, 400, "BadRequestData")


async def test_core_context_link_is_accepted(client: httpx.AsyncClient) -> None:
    await seed(client, [{"id": "urn:ngsi-ld:Car:4", "type": "Car"}])
    resp = await query(client, {"type": "Car"}, headers={"Link": link_to(CORE_CONTEXT)})
    assert [e["id"] for e in resp.json()] == ["urn:ngsi-ld:Car:4"]


async def test_hosted_context_usage_is_counted(client: httpx.AsyncClient) -> None:
    url = await host_context(client, USER_CONTEXT)
    for _ in range(2):
        await query(client, {"type": "Car"}, headers={"Link": link_to(url)})
    info = (await client.get(path_of(url), params={"details": "true"})).json()
    assert info["numberOfHits"] >= 2
    assert "lastUsage" in info

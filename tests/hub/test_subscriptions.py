"""Subscriptions API (clauses 5.8.1-5.8.5): create, query, retrieve, update, delete, validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import BASE, JSON_LD_REL, assert_problem, host_context
from test_notifications_receiver import SUBSCRIPTIONS

ENDPOINT = {"uri": "http://127.0.0.1:9/notify"}  # discard port: nothing is delivered here


def sub(**members: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "Room"}],
        "notification": {"endpoint": ENDPOINT},
    }
    body.update(members)
    return body


async def create(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> str:
    response = await client.post(SUBSCRIPTIONS, json=body, **kw)
    assert response.status_code == 201, response.text
    location: str = response.headers["Location"]
    assert location.startswith(f"{SUBSCRIPTIONS}/")
    return location


async def test_create_then_retrieve(client: httpx.AsyncClient) -> None:
    location = await create(
        client,
        sub(
            id="urn:ngsi-ld:Subscription:one",
            subscriptionName="rooms",
            watchedAttributes=["temperature"],
            q="temperature>20",
        ),
    )
    assert location == f"{SUBSCRIPTIONS}/urn:ngsi-ld:Subscription:one"
    response = await client.get(location)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "urn:ngsi-ld:Subscription:one"
    assert body["type"] == "Subscription"
    assert body["subscriptionName"] == "rooms"
    assert body["entities"] == [{"type": "Room"}]
    assert body["watchedAttributes"] == ["temperature"]
    assert body["q"] == "temperature>20"
    assert body["status"] == "active"
    assert body["isActive"] is True
    assert body["notification"]["endpoint"] == ENDPOINT
    assert body["notification"]["timesSent"] == 0
    assert "createdAt" not in body
    with_sys = (await client.get(location, params={"options": "sysAttrs"})).json()
    assert with_sys["createdAt"] and with_sys["modifiedAt"]


async def test_generated_ids_are_uris_and_distinct(client: httpx.AsyncClient) -> None:
    one = await create(client, sub())
    two = await create(client, sub())
    assert one != two
    assert one.rsplit("/", 1)[1].startswith("urn:ngsi-ld:Subscription:")


async def test_duplicate_id_is_409(client: httpx.AsyncClient) -> None:
    await create(client, sub(id="urn:ngsi-ld:Subscription:dup"))
    response = await client.post(SUBSCRIPTIONS, json=sub(id="urn:ngsi-ld:Subscription:dup"))
    assert_problem(response, 409, "AlreadyExists")


async def test_query_pages_with_count_and_links(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await create(client, sub(id=f"urn:ngsi-ld:Subscription:{n}"))
    response = await client.get(SUBSCRIPTIONS, params={"limit": 2, "offset": 1, "count": "true"})
    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == [
        "urn:ngsi-ld:Subscription:1",
        "urn:ngsi-ld:Subscription:2",
    ]
    assert response.headers["NGSILD-Results-Count"] == "5"
    link = response.headers["Link"]
    assert 'rel="next"' in link and "offset=3" in link
    assert 'rel="prev"' in link
    assert_problem(await client.get(SUBSCRIPTIONS, params={"limit": 5000}), 403, "TooManyResults")


async def test_patch_merges_and_revalidates(client: httpx.AsyncClient) -> None:
    location = await create(client, sub(q="temperature>20"))
    response = await client.patch(
        location,
        json={"q": "temperature>30", "isActive": False, "notification": {"format": "keyValues"}},
    )
    assert response.status_code == 204, response.text
    body = (await client.get(location)).json()
    assert body["q"] == "temperature>30"
    assert body["status"] == "paused"
    assert body["notification"]["format"] == "keyValues"
    assert body["notification"]["endpoint"] == ENDPOINT  # kept: notification merges per member
    # The merged subscription must still be valid: showChanges with keyValues is not.
    bad = await client.patch(location, json={"notification": {"showChanges": True}})
    assert_problem(bad, 400, "BadRequestData")
    assert (await client.get(location)).json()["notification"].get("showChanges") is None
    # null removes a member
    assert (await client.patch(location, json={"q": None})).status_code == 204
    assert "q" not in (await client.get(location)).json()


async def test_patch_and_delete_unknown_are_404(client: httpx.AsyncClient) -> None:
    url = f"{SUBSCRIPTIONS}/urn:ngsi-ld:Subscription:nope"
    assert_problem(await client.patch(url, json={"q": "a==1"}), 404, "ResourceNotFound")
    assert_problem(await client.delete(url), 404, "ResourceNotFound")
    assert_problem(await client.get(url), 404, "ResourceNotFound")


async def test_delete(client: httpx.AsyncClient) -> None:
    location = await create(client, sub())
    assert (await client.delete(location)).status_code == 204
    assert_problem(await client.get(location), 404, "ResourceNotFound")
    assert (await client.get(SUBSCRIPTIONS)).json() == []


async def test_tenants_are_separate(client: httpx.AsyncClient) -> None:
    tenant = {"NGSILD-Tenant": "city-a"}
    location = await create(client, sub(), headers=tenant)
    assert (await client.get(location, headers=tenant)).status_code == 200
    assert_problem(await client.get(location), 404, "ResourceNotFound")
    listed = await client.get(SUBSCRIPTIONS, headers={"NGSILD-Tenant": "nobody"})
    assert_problem(listed, 404, "NonexistentTenant")


async def test_terms_are_compacted_with_the_callers_context(client: httpx.AsyncClient) -> None:
    ctx = await host_context(
        client, {"Room": "https://example.org/Room", "temp": "https://example.org/temperature"}
    )
    link = {"Link": f"<{ctx}>; {JSON_LD_REL}"}
    location = await create(
        client,
        sub(
            watchedAttributes=["temp"], notification={"endpoint": ENDPOINT, "attributes": ["temp"]}
        ),
        headers=link,
    )
    mine = (await client.get(location, headers=link)).json()
    assert mine["entities"] == [{"type": "Room"}]
    assert mine["watchedAttributes"] == ["temp"]
    assert mine["jsonldContext"] == ctx
    plain = (await client.get(location)).json()  # the core context knows none of these terms
    assert plain["entities"] == [{"type": "https://example.org/Room"}]
    assert plain["watchedAttributes"] == ["https://example.org/temperature"]
    assert plain["notification"]["attributes"] == ["https://example.org/temperature"]


async def test_json_ld_body_and_response(client: httpx.AsyncClient) -> None:
    body = {**sub(), "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"}
    location = await create(client, body, headers={"Content-Type": "application/ld+json"})
    response = await client.get(location, headers={"Accept": "application/ld+json"})
    assert response.headers["content-type"].startswith("application/ld+json")
    assert "@context" in response.json()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"type": "Entity"}, "type"),
        ({"entities": []}, "entities"),
        ({"entities": [{"id": "urn:x:1"}]}, "type"),
        ({"entities": [{"type": "Room", "idPattern": "(unclosed"}]}, "idPattern"),
        ({"entities": [{"type": "Room", "id": "not a uri"}]}, "URI"),
        ({"entities": None, "watchedAttributes": None}, "entities"),
        ({"watchedAttributes": []}, "watchedAttributes"),
        ({"q": "temperature>>1"}, "q"),
        ({"q": 5}, "q"),
        ({"geoQ": {"georel": "near", "geometry": "Point", "coordinates": [1, 2]}}, "near"),
        ({"geoQ": {"georel": "within", "geometry": "Point"}}, "coordinates"),
        ({"scopeQ": "/a/("}, "scopeQ"),
        ({"notificationTrigger": ["entityExploded"]}, "notificationTrigger"),
        ({"notificationTrigger": []}, "notificationTrigger"),
        ({"throttling": 0}, "throttling"),
        ({"throttling": "1"}, "throttling"),
        ({"timeInterval": 0.2}, "timeInterval"),
        ({"timeInterval": 5, "watchedAttributes": ["a"]}, "timeInterval"),
        ({"expiresAt": "2001-01-01T00:00:00Z"}, "future"),
        ({"expiresAt": "tomorrow"}, "expiresAt"),
        ({"isActive": "yes"}, "isActive"),
        ({"notification": None}, "notification"),
        ({"notification": {}}, "endpoint"),
        ({"notification": {"endpoint": {"uri": "ftp://x.example/n"}}}, "uri"),
        ({"notification": {"endpoint": {"uri": "http:///nohost"}}}, "host"),
        ({"notification": {"endpoint": {"uri": "mqtt://broker:1883"}}}, "topic"),
        ({"notification": {"endpoint": {"uri": "mqtt://broker/a/#"}}}, "wildcards"),
        ({"notification": {"endpoint": {**ENDPOINT, "accept": "text/plain"}}}, "accept"),
        (
            {"notification": {"endpoint": ENDPOINT, "format": "keyValues", "showChanges": True}},
            "showChanges",
        ),
        ({"notification": {"endpoint": ENDPOINT, "format": "xml"}}, "format"),
        (
            {"notification": {"endpoint": {**ENDPOINT, "receiverInfo": [{"key": "a b"}]}}},
            "receiverInfo",
        ),
        (
            {
                "notification": {
                    "endpoint": {**ENDPOINT, "receiverInfo": [{"key": "X", "value": "a\r\nb"}]}
                }
            },
            "one line",
        ),
        (
            {
                "notification": {
                    "endpoint": {
                        "uri": "mqtt://broker/t",
                        "notifierInfo": [{"key": "MQTT-QoS", "value": "7"}],
                    }
                }
            },
            "MQTT-QoS",
        ),
        ({"subscriptionName": "x" * 5000}, "subscriptionName"),
        ({"favouriteColour": "blue"}, "unknown"),
        ({"description": "x" * 4000, "q": "a==" + "1" * 70_000}, ""),
    ],
)
async def test_invalid_subscriptions_are_400(
    client: httpx.AsyncClient, change: dict[str, Any], why: str
) -> None:
    body = sub()
    for key, value in change.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    problem = assert_problem(await client.post(SUBSCRIPTIONS, json=body), 400)
    assert why in problem["detail"], problem
    assert (await client.get(SUBSCRIPTIONS)).json() == []


async def test_body_must_be_an_object(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(SUBSCRIPTIONS, json=[sub()]), 400, "BadRequestData")
    response = await client.post(
        SUBSCRIPTIONS, content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "InvalidRequest")


async def test_cap_per_tenant(settings: Any) -> None:
    import dataclasses

    from dosi.hub.app import create_app

    app = create_app(dataclasses.replace(settings, max_subscriptions_per_tenant=2))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        await create(http, sub())
        await create(http, sub())
        problem = assert_problem(await http.post(SUBSCRIPTIONS, json=sub()), 400)
        assert "maximum" in problem["detail"]
        # Another tenant has its own allowance.
        await create(http, sub(), headers={"NGSILD-Tenant": "other"})


async def test_watched_attributes_alone_are_enough(client: httpx.AsyncClient) -> None:
    body = sub(watchedAttributes=["temperature"])
    del body["entities"]
    await create(client, body)


async def test_id_with_a_slash_round_trips(client: httpx.AsyncClient) -> None:
    location = await create(client, sub(id="urn:ngsi-ld:Subscription:a/b"))
    assert location.endswith("urn:ngsi-ld:Subscription:a%2Fb")
    assert (
        await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:a/b")
    ).status_code == 200

"""Notifications over HTTP to a real receiver: triggers, filters, payloads and counters."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import JSON_LD_REL, attr_url, attrs_url, create, entity_url, host_context, prop
from test_notifications_receiver import SUBSCRIPTIONS, Receiver, running, subscribe

from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings
from dosi.hub.subscriptions import notifier as notifier_module

ROOM = "urn:ngsi-ld:Room:1"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running() as found:
        yield found


def room(n: int | str = 1, **attrs: Any) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Room:{n}", "type": "Room", **attrs}


async def patch_attrs(client: httpx.AsyncClient, entity_id: str, **attrs: Any) -> None:
    response = await client.patch(attrs_url(entity_id), json=attrs)
    assert response.status_code == 204, response.text


async def append_attrs(client: httpx.AsyncClient, entity_id: str, **attrs: Any) -> None:
    response = await client.post(attrs_url(entity_id), json=attrs)
    assert response.status_code == 204, response.text


async def test_payload_and_headers(client: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(client, receiver.url, entities=[{"type": "Room"}])
    await create(client, room(temperature=prop(20)))
    (item,) = await receiver.wait_for(1)
    assert item == {"id": ROOM, "type": "Room", "temperature": {"type": "Property", "value": 20}}
    (notification,) = receiver.notifications
    assert notification["type"] == "Notification"
    assert notification["subscriptionId"] == sub_id
    assert notification["id"].startswith("urn:ngsi-ld:Notification:")
    assert notification["notifiedAt"].endswith("Z")
    headers = receiver.headers[0]
    assert headers["Content-Type"] == "application/json"
    assert JSON_LD_REL in headers["Link"]
    assert "NGSILD-Tenant" not in headers


async def test_default_triggers_notify_creation_and_update_not_deletion(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(client, receiver.url, entities=[{"type": "Room"}])
    await create(client, room(temperature=prop(20)))
    await patch_attrs(client, ROOM, temperature=prop(21))
    await append_attrs(client, ROOM, humidity=prop(40))
    await client.delete(attr_url(ROOM, "humidity"))
    await client.delete(entity_url(ROOM))
    await receiver.wait_for(3)
    await receiver.quiet()
    assert [i["temperature"]["value"] for i in receiver.entities] == [20, 21, 21]
    assert "humidity" in receiver.entities[2]


@pytest.mark.parametrize(
    ("triggers", "expected"),
    [
        (["entityCreated"], ["create"]),
        (["entityDeleted"], ["delete"]),
        # Creating an entity creates its attributes: attributeCreated fires for it too.
        (["attributeCreated"], ["create", "append"]),
        (["attributeUpdated"], ["update", "marker"]),
        (["attributeDeleted"], ["remove"]),
        (["entityUpdated"], ["create", "update", "append", "remove", "marker"]),
        (["entityCreated", "entityDeleted"], ["create", "delete"]),
    ],
)
async def test_each_trigger(
    client: httpx.AsyncClient, receiver: Receiver, triggers: list[str], expected: list[str]
) -> None:
    await subscribe(client, receiver.url, entities=[{"type": "Room"}], notificationTrigger=triggers)
    await create(client, room(temperature=prop(20), step=prop("create")))
    await patch_attrs(client, ROOM, step=prop("update"))
    await append_attrs(client, ROOM, extra=prop("append"))
    assert (await client.delete(attr_url(ROOM, "extra"))).status_code == 204
    await patch_attrs(client, ROOM, step=prop("marker"))
    assert (await client.delete(entity_url(ROOM))).status_code == 204
    await receiver.wait_for(len(expected))
    seen = []
    for item in await receiver.quiet():
        if "deletedAt" in item and "step" not in item:
            seen.append("delete")
        elif isinstance(item.get("extra"), dict) and item["extra"]["value"] == "urn:ngsi-ld:null":
            seen.append("remove")
        elif "extra" in item:
            seen.append("append")
        else:
            seen.append(item["step"]["value"])
    assert seen == expected


async def test_entity_deletion_payload(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client, receiver.url, entities=[{"type": "Room"}], notificationTrigger=["entityDeleted"]
    )
    await create(client, room(temperature=prop(20)))
    await client.delete(entity_url(ROOM))
    (item,) = await receiver.wait_for(1)
    assert item["id"] == ROOM and item["type"] == "Room"
    assert item["deletedAt"].endswith("Z")
    assert "temperature" not in item


async def test_watched_attributes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client, receiver.url, entities=[{"type": "Room"}], watchedAttributes=["temperature"]
    )
    await create(client, room(humidity=prop(40)))  # no watched attribute: nothing
    await patch_attrs(client, ROOM, humidity=prop(41))
    await append_attrs(client, ROOM, temperature=prop(20))
    await patch_attrs(client, ROOM, humidity=prop(42))
    await patch_attrs(client, ROOM, temperature=prop(21))
    await receiver.wait_for(2)
    items = await receiver.quiet()
    assert [i["temperature"]["value"] for i in items] == [20, 21]


async def test_watched_attributes_without_entities(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(client, receiver.url, watchedAttributes=["speed"])
    await create(client, {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": prop(50)})
    await create(client, room(temperature=prop(20)))
    (item,) = await receiver.wait_for(1)
    assert item["id"] == "urn:ngsi-ld:Car:1"
    assert await receiver.quiet() == [item]


async def test_q_is_tested_after_the_change(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, receiver.url, entities=[{"type": "Room"}], q="temperature>25")
    await create(client, room(temperature=prop(20)))
    await patch_attrs(client, ROOM, temperature=prop(30))
    await patch_attrs(client, ROOM, temperature=prop(22))
    await patch_attrs(client, ROOM, temperature=prop(26))
    await receiver.wait_for(2)
    assert [i["temperature"]["value"] for i in await receiver.quiet()] == [30, 26]


async def test_geo_q(client: httpx.AsyncClient, receiver: Receiver) -> None:
    square = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]
    await subscribe(
        client,
        receiver.url,
        entities=[{"type": "Room"}],
        geoQ={"georel": "within", "geometry": "Polygon", "coordinates": square},
    )
    point = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5, 5]}}
    far = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [50, 5]}}
    await create(client, room(1, location=point))
    await create(client, room(2, location=far))
    await patch_attrs(client, "urn:ngsi-ld:Room:2", location=point)
    await receiver.wait_for(2)
    assert [i["id"] for i in await receiver.quiet()] == [ROOM, "urn:ngsi-ld:Room:2"]


async def test_geo_q_near(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client,
        receiver.url,
        entities=[{"type": "Room"}],
        geoQ={"georel": "near;maxDistance==1000", "geometry": "Point", "coordinates": "[5, 5]"},
    )
    near = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5.001, 5]}}
    far = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5.1, 5]}}
    await create(client, room(1, location=far))
    await create(client, room(2, location=near))
    (item,) = await receiver.wait_for(1)
    assert item["id"] == "urn:ngsi-ld:Room:2"
    assert len(await receiver.quiet()) == 1


async def test_id_pattern_id_and_type_expressions(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(
        client,
        receiver.url,
        entities=[
            {"type": "Room", "idPattern": r"^urn:ngsi-ld:Room:A\d+$"},
            {"type": "Car", "id": "urn:ngsi-ld:Car:7"},
            {"type": "Bus|Tram"},
        ],
    )
    for entity in (
        {"id": "urn:ngsi-ld:Room:A1", "type": "Room"},
        {"id": "urn:ngsi-ld:Room:B1", "type": "Room"},
        {"id": "urn:ngsi-ld:Car:7", "type": "Car"},
        {"id": "urn:ngsi-ld:Car:8", "type": "Car"},
        {"id": "urn:ngsi-ld:Tram:1", "type": "Tram"},
        {"id": "urn:ngsi-ld:Bike:1", "type": "Bike"},
    ):
        await create(client, {**entity, "n": prop(1)})
    await receiver.wait_for(3)
    ids = [i["id"] for i in await receiver.quiet()]
    assert ids == ["urn:ngsi-ld:Room:A1", "urn:ngsi-ld:Car:7", "urn:ngsi-ld:Tram:1"]


async def test_scope_q(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, receiver.url, entities=[{"type": "Room"}], scopeQ="/Busan/#")
    await create(client, {**room(1), "scope": "/Seoul/A", "n": prop(1)})
    await create(client, {**room(2), "scope": "/Busan/EcoDelta", "n": prop(1)})
    (item,) = await receiver.wait_for(1)
    assert item["id"] == "urn:ngsi-ld:Room:2"


async def test_throttling_drops_changes_inside_the_window(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(client, receiver.url, entities=[{"type": "Room"}], throttling=60)
    await create(client, room(temperature=prop(1)))
    for value in (2, 3, 4):
        await patch_attrs(client, ROOM, temperature=prop(value))
    await receiver.wait_for(1)
    assert [i["temperature"]["value"] for i in await receiver.quiet()] == [1]


async def test_time_interval_notifies_current_state_periodically(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await create(client, room(1, temperature=prop(20)))
    await create(client, room(2, temperature=prop(30)))
    await subscribe(client, receiver.url, entities=[{"type": "Room"}], timeInterval=1)
    await receiver.wait_for(2, within=5)
    await patch_attrs(client, ROOM, temperature=prop(21))
    items = await receiver.wait_for(4, within=5)
    assert sorted(i["id"] for i in items[:2]) == [ROOM, "urn:ngsi-ld:Room:2"]
    later = {i["id"]: i["temperature"]["value"] for i in items[2:4]}
    assert later == {ROOM: 21, "urn:ngsi-ld:Room:2": 30}
    # Changes themselves do not notify a periodic subscription.
    assert len(receiver.notifications) == len(receiver.entities) // 2


async def test_paused_subscription_is_silent_until_resumed(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub_id = await subscribe(client, receiver.url, entities=[{"type": "Room"}], isActive=False)
    await create(client, room(temperature=prop(1)))
    assert await receiver.quiet() == []
    response = await client.patch(f"{SUBSCRIPTIONS}/{sub_id}", json={"isActive": True})
    assert response.status_code == 204
    await patch_attrs(client, ROOM, temperature=prop(2))
    items = await receiver.wait_for(1)
    assert [i["temperature"]["value"] for i in items] == [2]


async def test_expired_subscription_is_silent(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=0.6)).isoformat().replace("+00:00", "Z")
    sub_id = await subscribe(client, receiver.url, entities=[{"type": "Room"}], expiresAt=soon)
    await create(client, room(temperature=prop(1)))
    await receiver.wait_for(1)
    await asyncio.sleep(0.7)
    await patch_attrs(client, ROOM, temperature=prop(2))
    assert len(await receiver.quiet()) == 1
    assert (await client.get(f"{SUBSCRIPTIONS}/{sub_id}")).json()["status"] == "expired"


async def test_deleted_subscription_stops_notifying(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub_id = await subscribe(client, receiver.url, entities=[{"type": "Room"}])
    await create(client, room(temperature=prop(1)))
    await receiver.wait_for(1)
    assert (await client.delete(f"{SUBSCRIPTIONS}/{sub_id}")).status_code == 204
    await patch_attrs(client, ROOM, temperature=prop(2))
    assert len(await receiver.quiet()) == 1


async def test_formats_attributes_and_sys_attrs(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    types = [{"type": "Room"}]
    await subscribe(client, receiver.url, entities=types, notification={"format": "keyValues"})
    await subscribe(
        client,
        receiver.url,
        entities=types,
        notification={"format": "concise", "attributes": ["temperature"]},
    )
    await subscribe(client, receiver.url, entities=types, notification={"sysAttrs": True})
    await create(client, room(temperature=prop(20, unitCode="CEL"), humidity=prop(40)))
    items = await receiver.wait_for(3)
    by_shape = {
        "keyValues": next(i for i in items if i.get("humidity") == 40),
        "concise": next(i for i in items if "humidity" not in i),
        "sysAttrs": next(i for i in items if "createdAt" in i),
    }
    assert by_shape["keyValues"] == {"id": ROOM, "type": "Room", "temperature": 20, "humidity": 40}
    assert by_shape["concise"] == {
        "id": ROOM,
        "type": "Room",
        "temperature": {"value": 20, "unitCode": "CEL"},
    }
    assert by_shape["sysAttrs"]["temperature"]["modifiedAt"]


async def test_show_changes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client,
        receiver.url,
        entities=[{"type": "Room"}],
        notificationTrigger=["entityCreated", "entityUpdated"],
        notification={"showChanges": True},
    )
    await create(
        client, room(temperature=prop(20), owner={"type": "Relationship", "object": "urn:a"})
    )
    await patch_attrs(
        client, ROOM, temperature=prop(21), owner={"type": "Relationship", "object": "urn:b"}
    )
    assert (await client.delete(attr_url(ROOM, "owner"))).status_code == 204
    created, updated, removed = await receiver.wait_for(3)
    assert "previousValue" not in created["temperature"]
    assert updated["temperature"] == {"type": "Property", "value": 21, "previousValue": 20}
    assert updated["owner"] == {
        "type": "Relationship",
        "object": "urn:b",
        "previousObject": "urn:a",
    }
    assert removed["owner"]["object"] == "urn:ngsi-ld:null"
    assert removed["owner"]["previousObject"] == "urn:b"


async def test_json_ld_accept_receiver_info_and_tenant(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    tenant = {"NGSILD-Tenant": "city-b"}
    await subscribe(
        client,
        receiver.url,
        headers=tenant,
        entities=[{"type": "Room"}],
        notification={
            "endpoint": {
                "uri": receiver.url,
                "accept": "application/ld+json",
                "receiverInfo": [{"key": "X-Api-Key", "value": "secret"}],
            }
        },
    )
    await create(client, room(temperature=prop(20)), headers=tenant)
    await create(client, room(2, temperature=prop(20)))  # default tenant: not notified
    (item,) = await receiver.wait_for(1)
    assert item["id"] == ROOM
    notification = receiver.notifications[0]
    assert (
        notification["@context"]
        == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    )
    headers = receiver.headers[0]
    assert headers["Content-Type"] == "application/ld+json"
    assert "Link" not in headers
    assert headers["X-Api-Key"] == "secret"
    assert headers["NGSILD-Tenant"] == "city-b"
    assert len(await receiver.quiet()) == 1


async def test_geojson_accept(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client,
        receiver.url,
        entities=[{"type": "Room"}],
        notification={"endpoint": {"uri": receiver.url, "accept": "application/geo+json"}},
    )
    point = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5, 5]}}
    await create(client, room(location=point, temperature=prop(1)))
    for _ in range(200):
        if receiver.notifications:
            break
        await asyncio.sleep(0.02)
    data = receiver.notifications[0]["data"]
    assert data["type"] == "FeatureCollection"
    (feature,) = data["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [5, 5]}
    assert feature["properties"]["temperature"]["value"] == 1


async def test_terms_compacted_with_the_subscriptions_context(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    ctx = await host_context(
        client, {"Room": "https://example.org/Room", "temp": "https://example.org/temperature"}
    )
    link = {"Link": f"<{ctx}>; {JSON_LD_REL}"}
    await subscribe(client, receiver.url, headers=link, entities=[{"type": "Room"}])
    await create(client, room(temp=prop(20)), headers=link)
    (item,) = await receiver.wait_for(1)
    assert item == {"id": ROOM, "type": "Room", "temp": {"type": "Property", "value": 20}}
    assert f"<{ctx}>" in receiver.headers[0]["Link"]


async def test_status_counters(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.fail = lambda n: 500 if n == 1 else None
    sub_id = await subscribe(client, receiver.url, entities=[{"type": "Room"}])
    await create(client, room(temperature=prop(1)))
    await receiver.wait_for(1)
    await asyncio.sleep(0.05)
    notification = (await client.get(f"{SUBSCRIPTIONS}/{sub_id}")).json()["notification"]
    assert notification["timesSent"] == 2
    assert notification["timesFailed"] == 1
    assert notification["status"] == "ok"
    assert notification["lastSuccess"] > notification["lastFailure"]
    assert notification["lastNotification"] == notification["lastSuccess"]


async def test_failing_receiver_gets_everything_once_it_recovers(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail = lambda n: 500 if n <= 4 else None
    await subscribe(client, receiver.url, entities=[{"type": "Room"}])
    for n in range(20):
        await create(client, room(n, seq=prop(n)))
    items = await receiver.wait_for(20, within=15)
    assert sorted({i["seq"]["value"] for i in items}) == list(range(20))
    assert receiver.calls > len(receiver.notifications)


async def test_a_dead_receiver_does_not_hold_up_others(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    dead = Receiver()
    await dead.start()
    dead_url = dead.url
    await dead.stop()  # its port now refuses connections
    hanging = Receiver(fail=lambda n: 500)
    await hanging.start()
    try:
        await subscribe(client, dead_url, entities=[{"type": "Room"}])
        await subscribe(client, hanging.url, entities=[{"type": "Room"}])
        await subscribe(client, receiver.url, entities=[{"type": "Room"}])
        for n in range(5):
            await create(client, room(n, seq=prop(n)))
        items = await receiver.wait_for(5, within=3)
        assert sorted(i["seq"]["value"] for i in items) == list(range(5))
    finally:
        await hanging.stop()


@contextlib.asynccontextmanager
async def hub(settings: HubSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A hub over ASGI (like the `client` fixture) that a test can stop and start again."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http, app


async def test_counters_survive_a_restart(settings: HubSettings, receiver: Receiver) -> None:
    async with hub(settings) as (http, _):
        sub_id = await subscribe(http, receiver.url, entities=[{"type": "Room"}])
        await create(http, room(temperature=prop(1)))
        await receiver.wait_for(1)
    async with hub(settings) as (http, _):
        notification = (await http.get(f"{SUBSCRIPTIONS}/{sub_id}")).json()["notification"]
        assert notification["timesSent"] == 1
        assert notification["status"] == "ok"


async def test_stopping_finishes_deliveries_in_flight(
    settings: HubSettings, receiver: Receiver
) -> None:
    receiver.delay = 0.3
    async with hub(settings) as (http, _):
        await subscribe(http, receiver.url, entities=[{"type": "Room"}])
        await create(http, room(temperature=prop(1)))
        for _ in range(200):
            if receiver.calls:
                break
            await asyncio.sleep(0.01)
        assert receiver.calls == 1 and not receiver.notifications  # in flight now
    assert len(receiver.notifications) == 1  # the stop waited for the answer


async def test_journal_is_pruned_once_queued(
    settings: HubSettings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifier_module, "JOURNAL_KEEP_MS", 0)
    monkeypatch.setattr(notifier_module, "PRUNE_EVERY_S", 0.05)
    async with hub(settings) as (http, app):
        await subscribe(http, receiver.url, entities=[{"type": "Room"}])
        for n in range(5):
            await create(http, room(n, temperature=prop(n)))
        await receiver.wait_for(5)
        store = app.state.hub.store
        for _ in range(100):
            if not await store.journal_read("", 0, 10):
                break
            await asyncio.sleep(0.05)
        assert await store.journal_read("", 0, 10) == []
        assert await store.journal_last("") >= 5


async def test_metrics_count_notifications(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, receiver.url, entities=[{"type": "Room"}])
    await create(client, room(temperature=prop(1)))
    await receiver.wait_for(1)
    text = (await client.get("/metrics")).text
    assert 'dosi_notifications_total{outcome="ok"} 1' in text
    assert "dosi_notified_entities_total 1" in text


async def test_changes_undelivered_past_the_max_age_are_dropped_and_counted(
    settings: HubSettings, receiver: Receiver
) -> None:
    down = True
    receiver.fail = lambda n: 500 if down else None
    aged = dataclasses.replace(settings, notify_max_age_s=0.3, notify_retry_max_s=0.05)
    async with hub(aged) as (http, _):
        await subscribe(http, receiver.url, entities=[{"type": "Room"}])
        await create(http, room(1, seq=prop(1)))
        await asyncio.sleep(0.8)  # retried all along, expired after 0.3 s
        down = False
        await create(http, room(2, seq=prop(2)))
        await receiver.wait_for(1, within=5)
        await asyncio.sleep(0.2)
        assert [i["seq"]["value"] for i in receiver.entities] == [2]
        assert receiver.calls > 2  # it was retried before it expired
        metrics = (await http.get("/metrics")).text
        assert "dosi_notifications_expired_total 1" in metrics

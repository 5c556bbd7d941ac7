"""Notifications over MQTT through a real mosquitto, read back with paho."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from helpers import attrs_url, create, prop
from paho.mqtt.enums import CallbackAPIVersion
from test_notifications_receiver import subscribe

import servers
from dosi.hub.settings import HubSettings


class Listener:
    """A paho client subscribed to a topic filter; messages land in `messages`."""

    def __init__(self, broker: str, topic: str, *, v5: bool = False) -> None:
        parts = urlsplit(broker)
        self.messages: list[tuple[str, dict[str, Any], Any]] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5 if v5 else paho.MQTTv311
        )
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, m, r, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "", parts.port or 1883)
        self.client.loop_start()
        assert self._subscribed.wait(5), "could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        props = getattr(message.properties, "UserProperty", None)
        self.messages.append((message.topic, orjson.loads(message.payload), props))

    async def wait_for(self, count: int, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            assert time.monotonic() < deadline, self.messages
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> HubSettings:
    # Retries capped at 0.5 s, so a broker that comes back is found quickly.
    url = request.getfixturevalue("postgres_db") if backend == "postgres" else None
    return HubSettings(data_dir=tmp_path / "data", notify_retry_max_s=0.5, db_url=url)


@pytest.fixture
def listener(mqtt_broker: str) -> Iterator[Listener]:
    found = Listener(mqtt_broker, "dosi/#")
    yield found
    found.close()


@pytest.mark.parametrize("qos", ["0", "1"])
async def test_mqtt_notification(
    client: httpx.AsyncClient, mqtt_broker: str, listener: Listener, qos: str
) -> None:
    sub_id = await subscribe(
        client,
        f"{mqtt_broker}/dosi/rooms",
        entities=[{"type": "Room"}],
        notification={
            "endpoint": {
                "uri": f"{mqtt_broker}/dosi/rooms",
                "notifierInfo": [{"key": "MQTT-QoS", "value": qos}],
                "receiverInfo": [{"key": "X-Site", "value": "eco-delta"}],
            }
        },
    )
    await create(client, {"id": "urn:ngsi-ld:Room:1", "type": "Room", "t": prop(1)})
    response = await client.patch(attrs_url("urn:ngsi-ld:Room:1"), json={"t": prop(2)})
    assert response.status_code == 204
    await listener.wait_for(1)
    deadline = time.monotonic() + 5
    seen: list[int] = []
    while len(seen) < 2 and time.monotonic() < deadline:
        seen = [d["t"]["value"] for _, m, _ in listener.messages for d in m["body"]["data"]]
        await asyncio.sleep(0.02)
    assert seen == [1, 2]
    topic, message, _ = listener.messages[0]
    assert topic == "dosi/rooms"
    assert message["body"]["subscriptionId"] == sub_id
    assert message["body"]["type"] == "Notification"
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["metadata"]["X-Site"] == "eco-delta"
    counters = (await client.get(f"/ngsi-ld/v1/subscriptions/{sub_id}")).json()["notification"]
    assert counters["timesSent"] >= 1 and counters["timesFailed"] == 0


async def test_mqtt5_user_properties(client: httpx.AsyncClient, mqtt_broker: str) -> None:
    listener = Listener(mqtt_broker, "v5/#", v5=True)
    try:
        await subscribe(
            client,
            f"{mqtt_broker}/v5/rooms",
            entities=[{"type": "Room"}],
            notification={
                "endpoint": {
                    "uri": f"{mqtt_broker}/v5/rooms",
                    "notifierInfo": [
                        {"key": "MQTT-Version", "value": "mqtt5.0"},
                        {"key": "MQTT-QoS", "value": "1"},
                    ],
                }
            },
        )
        await create(client, {"id": "urn:ngsi-ld:Room:1", "type": "Room", "t": prop(1)})
        await listener.wait_for(1)
        _, message, props = listener.messages[0]
        assert message["body"]["data"][0]["id"] == "urn:ngsi-ld:Room:1"
        assert ("Content-Type", "application/json") in props
    finally:
        listener.close()


async def test_mqtt_broker_down_then_up_delivers_everything(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = servers.free_port()
    broker = f"mqtt://127.0.0.1:{port}"
    await subscribe(
        client,
        f"{broker}/late/rooms",
        entities=[{"type": "Room"}],
        notification={
            "endpoint": {
                "uri": f"{broker}/late/rooms",
                "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
                "timeout": 300,
            }
        },
    )
    for n in range(3):
        await create(client, {"id": f"urn:ngsi-ld:Room:{n}", "type": "Room", "n": prop(n)})
    await asyncio.sleep(0.5)  # a few failed attempts while nothing listens
    monkeypatch.setattr(servers, "free_port", lambda: port)
    with servers.mosquitto(tmp_path / "late-broker") as url:
        listener = Listener(url, "late/#")
        try:
            deadline = time.monotonic() + 15
            seen: set[int] = set()
            while seen != {0, 1, 2} and time.monotonic() < deadline:
                seen = {d["n"]["value"] for _, m, _ in listener.messages for d in m["body"]["data"]}
                await asyncio.sleep(0.05)
            assert seen == {0, 1, 2}
        finally:
            listener.close()

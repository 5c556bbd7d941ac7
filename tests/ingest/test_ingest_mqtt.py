"""MQTT southbound and commands through a real mosquitto (the `mqtt_broker` fixture).

Devices are paho clients in the test: they publish measurements on
/<apikey>/<device>/attrs (JSON) or /ul/<apikey>/<device>/attrs (UltraLight),
receive commands on /<apikey>/<device>/cmd and answer on .../cmdexe.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from iot_helpers import (
    APIKEY,
    ENTITIES,
    device,
    entity,
    entity_id,
    group,
    hub_client,
    iot_mqtt,
    metric,
    metrics,
    provision,
    wait_for,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dosi.hub.settings import HubSettings
from dosi.hub.store.history import attr_series_key
from dosi.ingest.url import parse_broker_url
from dosi.ngsi.model import DEFAULT_VOCAB
from servers import free_port, mosquitto_binary

__all__ = ["iot_mqtt"]

EID = entity_id("dev1")
Agent = tuple[httpx.AsyncClient, Any, str]


@contextmanager
def device_client(
    url: str, *subscribe: str, protocol: paho.MQTTProtocolVersion = paho.MQTTv5
) -> Iterator[tuple[paho.Client, queue.Queue[Any]]]:
    """A connected paho client (a simulated device) and the queue of what it receives."""
    broker = parse_broker_url(url)
    inbox: queue.Queue[Any] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    client.on_message = lambda c, u, m: inbox.put((m.topic, m.payload))
    subscribed = queue.Queue[int]()
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(mid)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic in subscribe:
            client.subscribe(topic, qos=1)
            subscribed.get(timeout=5)
        yield client, inbox
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: paho.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)


async def wait_connected(agent: Any) -> None:
    for _ in range(1000):
        if agent.link is not None and agent.link.connected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the agent did not connect to mosquitto")


async def wait_metric(http: httpx.AsyncClient, name: str, value: float) -> None:
    for _ in range(500):
        if metric(await metrics(http), name) == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never reached {value}")


async def test_json_and_ultralight_over_mqtt(iot_mqtt: Agent) -> None:
    http, _, url = iot_mqtt
    await provision(http, device("dev1"), device("dev2", protocol="PDI-IoTA-UltraLight"))
    with device_client(url) as (client, _):
        publish(client, f"/{APIKEY}/dev1/attrs", b'{"t": 20.5, "h": 55}')
        stored = await wait_for(http, EID, lambda e: "temperature" in e)
        assert stored["temperature"]["value"] == 20.5
        assert stored["temperature"]["unitCode"] == "CEL"
        assert "observedAt" in stored["temperature"]
        assert stored["relativeHumidity"]["value"] == 55

        publish(client, f"/ul/{APIKEY}/dev1/attrs", b"t|21#t|22")
        await wait_for(http, EID, lambda e: e["temperature"]["value"] == 22)
        # A device whose protocol is UltraLight may use the topic without prefix.
        publish(client, f"/{APIKEY}/dev2/attrs", b"t|5|TimeInstant|2026-11-25T07:00:00Z")
        stored = await wait_for(http, entity_id("dev2"), lambda e: "temperature" in e)
        assert stored["temperature"]["observedAt"] == "2026-11-25T07:00:00Z"
        # One bare value on /attrs/<object_id>.
        publish(client, f"/{APIKEY}/dev1/attrs/h", b"61")
        await wait_for(http, EID, lambda e: e["relativeHumidity"]["value"] == 61)


@pytest.mark.parametrize("hub_qos", [0, 1])
async def test_any_publish_shape_arrives(tmp_path: Path, mqtt_broker: str, hub_qos: int) -> None:
    """QoS 0 and 1, with and without MQTT v5 properties, from v5 and 3.1.1 devices (the
    agent decodes the common PUBLISH itself and leaves the rest to paho)."""
    settings = HubSettings(data_dir=tmp_path / "data", mqtt_url=mqtt_broker, mqtt_qos=hub_qos)
    async for http, agent in hub_client(settings):
        await wait_connected(agent)
        await provision(http, device("dev1"))
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = ("origin", "test")
        with device_client(mqtt_broker) as (client, _):
            for n, (qos, props) in enumerate(
                [(0, None), (1, None), (1, properties), (0, properties)]
            ):
                info = client.publish(
                    f"/{APIKEY}/dev1/attrs", b'{"n": %d}' % n, qos, properties=props
                )
                info.wait_for_publish(timeout=5)
                await wait_for(http, EID, lambda e, n=n: e.get("n", {}).get("value") == n)
        with device_client(mqtt_broker, protocol=paho.MQTTv311) as (client, _):
            publish(client, f"/{APIKEY}/dev1/attrs", b'{"n": 9}')
            await wait_for(http, EID, lambda e: e["n"]["value"] == 9)


async def test_mqtt_rejections_counted_and_entity_untouched(iot_mqtt: Agent) -> None:
    http, _, url = iot_mqtt
    await provision(http, device("dev1"))
    with device_client(url) as (client, _):
        publish(client, f"/{APIKEY}/dev1/attrs", b'{"t": 1}')
        before = await wait_for(http, EID, lambda e: "temperature" in e)
        publish(client, f"/{APIKEY}/dev1/attrs", b'{"t": "hot", "h": 3}')  # malformed
        publish(client, f"/{APIKEY}/ghost/attrs", b'{"t": 2}')  # unknown device
        publish(client, "/nokey/dev1/attrs", b'{"t": 3}')  # unknown apikey
        publish(client, f"/{APIKEY}/dev1/attrs", b"\x00\xff")  # not even UTF-8
        publish(client, f"/{APIKEY}/dev1/attrs", b'{"t": 4}')  # a good one after them
        await wait_for(http, EID, lambda e: e["temperature"]["value"] == 4)
    # Messages of unknown devices wait for one registry refresh before they are refused.
    await wait_metric(http, 'dosi_ingest_rejected_total{reason="unknown_device"}', 1)
    await wait_metric(http, 'dosi_ingest_rejected_total{reason="unknown_apikey"}', 1)
    text = await metrics(http)
    assert metric(text, 'dosi_ingest_rejected_total{reason="malformed"}') == 2
    assert metric(text, 'dosi_ingest_measurements_total{transport="mqtt"}') == 6
    after = await entity(http, EID)
    assert "relativeHumidity" not in after  # the malformed message wrote nothing
    assert after["district"] == before["district"]


async def test_many_devices_none_lost(iot_mqtt: Agent) -> None:
    """Concurrent measurements are batched into few transactions, and every one is kept."""
    http, _, url = iot_mqtt
    devices = [{"device_id": f"s{i}", "apikey": APIKEY} for i in range(50)]
    await provision(http, *devices)
    with device_client(url) as (client, _):
        infos = [
            client.publish(f"/{APIKEY}/s{i}/attrs", b'{"seq": %d}' % n, qos=1)
            for n in range(1, 21)
            for i in range(50)
        ]
        for info in infos:
            info.wait_for_publish(timeout=10)
    for i in range(50):
        await wait_for(
            http, f"urn:ngsi-ld:WeatherObserved:s{i}", lambda e: e.get("seq", {}).get("value") == 20
        )
    text = await metrics(http)
    assert metric(text, "dosi_ingest_stored_total") == 1000


async def test_command_round_trip_json(iot_mqtt: Agent) -> None:
    http, _, url = iot_mqtt
    await provision(http, device("dev1", commands=[{"name": "switch", "type": "command"}]))
    await wait_for(http, EID, lambda e: e["switch_status"]["value"] == "UNKNOWN")
    with device_client(url, f"/{APIKEY}/dev1/cmd") as (client, inbox):
        response = await http.patch(f"{ENTITIES}/{EID}/attrs/switch", json={"value": "on"})
        assert response.status_code == 204, response.text
        topic, payload = await asyncio.to_thread(inbox.get, True, 10)
        assert topic == f"/{APIKEY}/dev1/cmd"
        assert payload == b'{"switch":"on"}'
        await wait_for(http, EID, lambda e: e["switch_status"]["value"] == "PENDING")
        publish(client, f"/{APIKEY}/dev1/cmdexe", b'{"switch": "switched on"}')
        stored = await wait_for(http, EID, lambda e: e["switch_status"]["value"] == "OK")
        assert stored["switch_info"]["value"] == "switched on"
        assert stored["switch"]["value"] == "on"
    text = await metrics(http)
    assert metric(text, 'dosi_ingest_commands_total{outcome="sent"}') == 1
    assert metric(text, 'dosi_ingest_commands_total{outcome="ok"}') == 1


async def test_command_round_trip_ultralight(iot_mqtt: Agent) -> None:
    http, _, url = iot_mqtt
    await provision(
        http,
        device("dev1", protocol="IoTA-UL", commands=[{"name": "ping"}]),
        groups=[group()],
    )
    with device_client(url, f"/{APIKEY}/dev1/cmd") as (client, inbox):
        response = await http.patch(f"{ENTITIES}/{EID}/attrs/ping", json={"value": 42})
        assert response.status_code == 204
        _, payload = await asyncio.to_thread(inbox.get, True, 10)
        assert payload == b"dev1@ping|42"
        publish(client, f"/ul/{APIKEY}/dev1/cmdexe", b"dev1@ping|pong")
        stored = await wait_for(http, EID, lambda e: e["ping_status"]["value"] == "OK")
        assert stored["ping_info"]["value"] == "pong"
        # A reply for a command the device does not have is rejected and counted.
        publish(client, f"/ul/{APIKEY}/dev1/cmdexe", b"dev1@reboot|ok")
        await wait_metric(http, 'dosi_ingest_rejected_total{reason="unknown_command"}', 1)


async def test_commands_without_broker_report_error(tmp_path: Path) -> None:
    async for http, _ in hub_client(HubSettings(data_dir=tmp_path / "data")):
        await provision(http, device("dev1", commands=[{"name": "switch"}]))
        response = await http.patch(f"{ENTITIES}/{EID}/attrs/switch", json={"value": "on"})
        assert response.status_code == 204
        stored = await wait_for(http, EID, lambda e: e["switch_status"]["value"] == "ERROR")
        assert "MQTT" in stored["switch_info"]["value"]


def test_dosi_up_with_mqtt(tmp_path: Path, mqtt_broker: str) -> None:
    """`dosi up --mqtt URL` as an operator runs it: provision over HTTP, publish, read back."""
    port = free_port()
    exe = Path(sys.executable).with_name("dosi")
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [str(exe), "up", "--port", str(port), "--data", str(tmp_path / "d"), "--mqtt", mqtt_broker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "dosi hub:" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.post("/iot/services", json={"services": [group()]}).status_code == 201
            assert http.post("/iot/devices", json={"devices": [device("dev1")]}).status_code == 201
            with device_client(mqtt_broker) as (client, _):
                publish(client, f"/ul/{APIKEY}/dev1/attrs", b"t|30")
                for _ in range(250):
                    response = http.get(f"{ENTITIES}/{EID}")
                    if response.status_code == 200 and "temperature" in response.json():
                        break
                    asyncio.run(asyncio.sleep(0.02))
                assert response.json()["temperature"]["value"] == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert '"MQTT connected"' in err


def test_bad_mqtt_url_is_a_usage_error(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("dosi")
    result = subprocess.run(
        [str(exe), "up", "--data", str(tmp_path), "--mqtt", "http://x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "mqtt://" in result.stderr


def test_two_workers_split_messages_without_duplicates(tmp_path: Path, mqtt_broker: str) -> None:
    """`dosi up --workers 2 --mqtt`: both workers subscribe ($share), every measurement is
    stored exactly once (a plain subscription would store each twice)."""
    port = free_port()
    data = tmp_path / "d"
    exe = Path(sys.executable).with_name("dosi")
    args = ["up", "--port", str(port), "--data", str(data), "--workers", "2"]
    proc = subprocess.Popen(
        [str(exe), *args, "--mqtt", mqtt_broker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    count = 300
    try:
        assert proc.stdout is not None
        assert "dosi hub:" in proc.stdout.readline()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.post("/iot/services", json={"services": [group()]}).status_code == 201
            devices = [{"device_id": f"w{i}", "apikey": APIKEY} for i in range(10)]
            assert http.post("/iot/devices", json={"devices": devices}).status_code == 201
        # No wait: the worker that did not take the provisioning request meets unknown
        # devices, refreshes its registry once, and then accepts their messages.
        with device_client(mqtt_broker) as (client, _):
            infos = [
                client.publish(f"/{APIKEY}/w{n % 10}/attrs", b'{"n": %d}' % n, qos=1)
                for n in range(count)
            ]
            for info in infos:
                info.wait_for_publish(timeout=10)
        key = attr_series_key(DEFAULT_VOCAB + "n")
        stored = 0
        for _ in range(200):
            with sqlite3.connect(f"file:{data / 'dosi.sqlite'}?mode=ro", uri=True) as conn:
                stored = conn.execute(
                    "SELECT count(*) FROM history WHERE attr=?", (key,)
                ).fetchone()[0]
            if stored >= count:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        with sqlite3.connect(f"file:{data / 'dosi.sqlite'}?mode=ro", uri=True) as conn:
            stored = conn.execute("SELECT count(*) FROM history WHERE attr=?", (key,)).fetchone()[0]
        assert stored == count
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.count('"MQTT connected"') == 2  # one per worker


async def test_another_worker_takes_over_commands(tmp_path: Path, mqtt_broker: str) -> None:
    """Only one worker sends commands (the store's `iot-commands` role); when it stops,
    another takes the role within a second or two and commands keep flowing."""
    settings = HubSettings(data_dir=tmp_path / "data", mqtt_url=mqtt_broker)
    first_hub = hub_client(settings)
    first, first_agent = await first_hub.__anext__()
    second_hub = hub_client(settings)
    second, second_agent = await second_hub.__anext__()
    try:
        await wait_connected(first_agent)
        await wait_connected(second_agent)
        await provision(first, device("dev1", commands=[{"name": "switch"}]))
        with device_client(mqtt_broker, f"/{APIKEY}/dev1/cmd") as (_, inbox):
            response = await second.patch(f"{ENTITIES}/{EID}/attrs/switch", json={"value": 1})
            assert response.status_code == 204
            assert (await asyncio.to_thread(inbox.get, True, 10))[1] == b'{"switch":1}'
            assert first_agent.commands.leading and not second_agent.commands.leading
            await first_hub.aclose()  # the leader stops (its store releases the role)
            response = await second.patch(f"{ENTITIES}/{EID}/attrs/switch", json={"value": 2})
            assert response.status_code == 204
            assert (await asyncio.to_thread(inbox.get, True, 10))[1] == b'{"switch":2}'
            assert second_agent.commands.leading
    finally:
        await second_hub.aclose()
        await first_hub.aclose()


@contextmanager
def broker_on(port: int, workdir: Path) -> Iterator[str]:
    """A mosquitto on a given port (to stop it and start another in its place)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.mark.slow  # ~5 s: paho waits 1 s, then 2 s, before its first reconnects
async def test_reconnects_when_the_broker_comes_back(tmp_path: Path) -> None:
    """The hub starts without its broker (HTTP works meanwhile), connects when the broker
    appears, and reconnects (and subscribes again) after the broker went away."""
    port = free_port()
    settings = HubSettings(data_dir=tmp_path / "data", mqtt_url=f"mqtt://127.0.0.1:{port}")
    async for http, agent in hub_client(settings):
        await provision(http, device("dev1"))
        assert not agent.link.connected
        for n in (1, 2):
            with broker_on(port, tmp_path / f"b{n}") as url:
                await wait_connected(agent)  # paho's backoff starts at one second
                with device_client(url) as (client, _):
                    publish(client, f"/{APIKEY}/dev1/attrs", b'{"t": %d}' % n)
                    await wait_for(
                        http, EID, lambda e, n=n: e.get("temperature", {}).get("value") == n
                    )
            for _ in range(100):
                if not agent.link.connected:
                    break
                await asyncio.sleep(0.01)
            assert not agent.link.connected

"""Fixtures and helpers of the IoT agent tests: a hub with the agent, provisioning bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings
from dosi.ingest.agent import IotAgent

ENTITIES = "/ngsi-ld/v1/entities"
APIKEY = "k1"
TYPE = "WeatherObserved"


def group(apikey: str = APIKEY, **extra: Any) -> dict[str, Any]:
    return {
        "apikey": apikey,
        "entity_type": TYPE,
        "resource": "/iot/d",
        "attributes": [
            {"object_id": "t", "name": "temperature", "type": "Number", "unitCode": "CEL"},
            {
                "object_id": "h",
                "name": "relativeHumidity",
                "type": "Number",
                "metadata": {"unitCode": {"type": "Text", "value": "P1"}},
            },
        ],
        "static_attributes": [{"name": "district", "type": "Text", "value": "EcoDelta"}],
        **extra,
    }


def device(device_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "entity_name": f"urn:ngsi-ld:{TYPE}:{device_id}",
        "apikey": APIKEY,
        **extra,
    }


def entity_id(device_id: str) -> str:
    return f"urn:ngsi-ld:{TYPE}:{device_id}"


async def provision(
    http: httpx.AsyncClient, *devices: dict[str, Any], groups: list[dict[str, Any]] | None = None
) -> None:
    response = await http.post("/iot/services", json={"services": groups or [group()]})
    assert response.status_code == 201, response.text
    if devices:
        response = await http.post("/iot/devices", json={"devices": list(devices)})
        assert response.status_code == 201, response.text


async def entity(http: httpx.AsyncClient, eid: str, **params: str) -> dict[str, Any]:
    response = await http.get(f"{ENTITIES}/{eid}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for(
    http: httpx.AsyncClient, eid: str, check: Callable[[dict[str, Any]], bool], within: float = 10
) -> dict[str, Any]:
    """Poll the entity until `check` holds (MQTT is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + within
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        response = await http.get(f"{ENTITIES}/{eid}")
        if response.status_code == 200:
            last = response.json()
            if check(last):
                return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"entity {eid} never matched; last seen: {last}")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def metrics(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def hub_client(settings: HubSettings) -> AsyncIterator[tuple[httpx.AsyncClient, IotAgent]]:
    agent = IotAgent()
    app = create_app(settings, extensions=[agent])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield http, agent


@pytest.fixture
async def iot(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A hub with the IoT agent (HTTP southbound only), over ASGI."""
    async for http, _ in hub_client(HubSettings(data_dir=tmp_path / "data")):
        yield http


@pytest.fixture
async def iot_mqtt(
    tmp_path: Path, mqtt_broker: str
) -> AsyncIterator[tuple[httpx.AsyncClient, IotAgent, str]]:
    """A hub with the IoT agent connected to a private mosquitto; (client, agent, broker URL)."""
    settings = HubSettings(data_dir=tmp_path / "data", mqtt_url=mqtt_broker)
    async for http, agent in hub_client(settings):
        assert agent.link is not None
        for _ in range(500):
            if agent.link.connected:
                break
            await asyncio.sleep(0.01)
        assert agent.link.connected, "the agent did not connect to mosquitto"
        yield http, agent, mqtt_broker

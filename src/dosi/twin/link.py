"""The twin's side of the hub: provisioning, publishing readings, and hearing commands.

Everything goes through the hub's public interfaces, as a field deployment would:
the IoT agent's provisioning API and southbound (HTTP `POST /iot/json` or MQTT
`/<apikey>/<device>/attrs`), the NGSI-LD API for Device, asset and actuator
entities (and for the direct `batch` mode), and the live stream
(`GET /ngsi-ld/v1/stream`) for commands that services write.

The simulation loop must never wait on the network, so all I/O runs on one
background thread with its own event loop; `publish` only hands work over and
blocks when too much is in flight (backpressure instead of unbounded memory).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from dosi.client import AsyncNgsiClient
from dosi.twin import entities as ent
from dosi.twin.commands import CommandStream
from dosi.twin.model import Actuator, Asset, Reading, Sensor, Value
from dosi.twin.mqtt_out import MqttPublisher

log = logging.getLogger("dosi.twin.link")
Transport = Literal["http", "mqtt", "batch"]
BATCH = 500  # entities per NGSI-LD batch request
MAX_IN_FLIGHT = 64  # publish() calls not yet finished before publish() blocks


class LinkError(RuntimeError):
    """The hub refused the twin's set-up (one line why)."""


@dataclass
class LinkStats:
    readings: int = 0
    requests: int = 0
    failed: int = 0
    first_error: str = ""
    states: int = 0
    commands: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


@dataclass(frozen=True)
class LinkOptions:
    base_url: str
    scenario: str
    transport: Transport = "http"
    apikey: str = "twin"
    mqtt_url: str | None = None
    concurrency: int = 16


class HubLink:
    def __init__(self, options: LinkOptions, clock: ent.Clock) -> None:
        if options.transport == "mqtt" and not options.mqtt_url:
            raise LinkError("the mqtt transport needs the broker's URL (--mqtt)")
        self.options = options
        self.clock = clock
        self.stats = LinkStats()
        self._sensors: dict[str, Sensor] = {}
        self._actuators: dict[str, Actuator] = {}
        self._in_flight: deque[Future[None]] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="twin-link", daemon=True
        )
        self._http: httpx.AsyncClient | None = None
        self._ngsi: AsyncNgsiClient | None = None
        self._mqtt: MqttPublisher | None = None
        self._stream: CommandStream | None = None
        self._gate: asyncio.Semaphore | None = None

    # -- life cycle (called from the simulation thread) -----------------------------
    def start(
        self,
        sensors: Sequence[Sensor],
        actuators: Sequence[Actuator],
        assets: Sequence[Asset],
        states: Mapping[str, Mapping[str, Value]],
    ) -> None:
        """Provision everything, then listen for commands; returns once both are done."""
        self._sensors = {s.device_id: s for s in sensors}
        self._actuators = {a.actuator_id: a for a in actuators}
        self._thread.start()
        self._call(self._open())
        self._call(self._provision(sensors, actuators, assets, states))
        if self._actuators:
            self._stream = CommandStream(self._http_client(), self.options.scenario, actuators)
            self._call(self._stream.start())

    def close(self) -> None:
        """Finish everything handed over, then stop the thread."""
        self.flush()
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if self._stream is not None:
            self.stats.commands = self._stream.received

    def flush(self) -> None:
        while self._in_flight:
            self._in_flight.popleft().result()
        if self._mqtt is not None:
            self._mqtt.flush()

    # -- the hot path -----------------------------------------------------------------
    def publish(self, readings: Sequence[Reading]) -> None:
        if readings:
            self.stats.readings += len(readings)
            self._submit(self._publish(list(readings)))

    def report(self, states: Mapping[str, Mapping[str, Value]], t: float) -> None:
        """Write actuators' applied states back (one batch request)."""
        if states:
            self.stats.states += len(states)
            self._submit(self._report(dict(states), self.clock.at(t)))

    def commands(self) -> list[tuple[str, str, Any]]:
        """Commands heard since the last call: (actuator id, command, value), oldest first."""
        return self._stream.drain() if self._stream is not None else []

    # -- internals -------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _submit(self, coro: Coroutine[Any, Any, None]) -> None:
        while self._in_flight and self._in_flight[0].done():
            self._in_flight.popleft().result()
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self._in_flight.popleft().result()
        self._in_flight.append(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def _http_client(self) -> httpx.AsyncClient:
        assert self._http is not None
        return self._http

    async def _open(self) -> None:
        limits = httpx.Limits(max_connections=self.options.concurrency * 2)
        self._http = httpx.AsyncClient(base_url=self.options.base_url, timeout=30.0, limits=limits)
        self._ngsi = AsyncNgsiClient(self.options.base_url, http=self._http)
        self._gate = asyncio.Semaphore(self.options.concurrency)
        if self.options.transport == "mqtt":
            assert self.options.mqtt_url is not None
            self._mqtt = MqttPublisher(
                self.options.mqtt_url, client_id=f"dosi-twin-{self.options.scenario}"
            )
            await asyncio.to_thread(self._mqtt.connect)

    async def _close(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
        if self._mqtt is not None:
            await asyncio.to_thread(self._mqtt.close)
        if self._http is not None:
            await self._http.aclose()

    async def _provision(
        self,
        sensors: Sequence[Sensor],
        actuators: Sequence[Actuator],
        assets: Sequence[Asset],
        states: Mapping[str, Mapping[str, Value]],
    ) -> None:
        scenario = self.options.scenario
        await self._upsert(ent.device_entity(scenario, s) for s in sensors)
        await self._upsert(ent.asset_entity(scenario, a) for a in assets)
        now = self.clock.at(0)
        await self._upsert(
            ent.actuator_entity(scenario, a, states[a.actuator_id], now) for a in actuators
        )
        if self.options.transport == "batch":
            await self._upsert(ent.observation_entity(scenario, s) for s in sensors)
        else:
            await self._provision_devices(sensors)

    async def _provision_devices(self, sensors: Sequence[Sensor]) -> None:
        http = self._http_client()
        apikey = self.options.apikey
        group = {"apikey": apikey, "entity_type": "DeviceMeasurement", "resource": "/iot/json"}
        group["protocol"] = "IoTA-JSON"
        response = await http.get("/iot/services", params={"apikey": apikey})
        _check(response, "listing IoT service groups")
        if not response.json().get("services"):
            _check(await http.post("/iot/services", json={"services": [group]}), "provisioning")
        response = await http.get("/iot/devices", params={"limit": 1000, "offset": 0})
        _check(response, "listing IoT devices")
        existing = await self._existing_devices()
        records = [ent.provisioning(self.options.scenario, s) for s in sensors]
        for record in records:
            record["apikey"] = apikey
        fresh = [r for r in records if r["device_id"] not in existing]
        for chunk in ent.chunks(fresh, BATCH):
            _check(await http.post("/iot/devices", json={"devices": chunk}), "provisioning")
        for record in (r for r in records if r["device_id"] in existing):
            path = f"/iot/devices/{record['device_id']}"
            _check(await http.put(path, json=record), "re-provisioning")

    async def _existing_devices(self) -> set[str]:
        http = self._http_client()
        found: set[str] = set()
        offset = 0
        while True:
            response = await http.get("/iot/devices", params={"limit": 1000, "offset": offset})
            _check(response, "listing IoT devices")
            devices = response.json().get("devices", [])
            found.update(d["device_id"] for d in devices)
            if len(devices) < 1000:
                return found
            offset += len(devices)

    async def _upsert(self, items: Iterable[ent.JsonObject]) -> None:
        assert self._ngsi is not None
        for chunk in ent.chunks(items, BATCH):
            result = await self._ngsi.batch_upsert(chunk)
            if not result.ok:
                raise LinkError(
                    f"the hub refused {len(result.errors)} entities: {result.errors[0]}"
                )

    async def _publish(self, readings: list[Reading]) -> None:
        transport = self.options.transport
        started = time.perf_counter()
        if transport == "batch":
            fragments = [
                ent.observation_update(
                    self.options.scenario, self._sensors[r.device_id], r, self.clock
                )
                for r in readings
            ]
            await asyncio.gather(*(self._send_batch(c) for c in ent.chunks(fragments, BATCH)))
        elif transport == "mqtt":
            assert self._mqtt is not None
            for reading in readings:
                body = ent.measurement(
                    reading, self._sensors[reading.device_id].interval, self.clock
                )
                self._mqtt.publish(
                    f"/{self.options.apikey}/{reading.device_id}/attrs", orjson.dumps(body)
                )
            self.stats.requests += len(readings)
        else:
            await asyncio.gather(*(self._send_measurement(r) for r in readings))
        self.stats.latencies.append(time.perf_counter() - started)

    async def _send_measurement(self, reading: Reading) -> None:
        body = ent.measurement(reading, self._sensors[reading.device_id].interval, self.clock)
        params = {"k": self.options.apikey, "i": reading.device_id}
        assert self._gate is not None
        async with self._gate:
            await self._send(
                lambda: self._http_client().post(
                    "/iot/json",
                    params=params,
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json"},
                )
            )

    async def _send_batch(self, fragments: list[ent.JsonObject]) -> None:
        content = orjson.dumps(fragments)
        assert self._gate is not None
        async with self._gate:
            await self._send(
                lambda: self._http_client().post(
                    "/ngsi-ld/v1/entityOperations/upsert",
                    params={"options": "update"},
                    content=content,
                    headers={"content-type": "application/json"},
                )
            )

    async def _send(self, request: Any) -> None:
        self.stats.requests += 1
        try:
            response: httpx.Response = await request()
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code >= 300 and response.status_code != 207:
            self._failed(f"{response.status_code} {response.text[:200]}")
        elif response.status_code == 207:
            self._failed(f"207 {response.text[:200]}")

    def _failed(self, why: str) -> None:
        self.stats.failed += 1
        if not self.stats.first_error:
            self.stats.first_error = why
            log.warning("hub refused a twin update: %s", why)

    async def _report(self, states: dict[str, Mapping[str, Value]], observed_at: str) -> None:
        scenario = self.options.scenario
        fragments = []
        for local_id, state in states.items():
            actuator = self._actuators[local_id]
            fragment = {"id": ent.actuator_id(scenario, actuator), "type": actuator.entity_type}
            fragment.update(ent.state_attrs(state, observed_at))
            fragments.append(fragment)
        await self._send_batch(fragments)


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        detail = response.text[:300]
        raise LinkError(f"{what} failed: HTTP {response.status_code} {detail}")

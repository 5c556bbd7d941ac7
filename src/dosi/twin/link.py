"""The twin's side of the hub: a link process that provisions, publishes and hears commands.

Everything goes through the hub's public interfaces, as a field deployment would:
the IoT agent's provisioning API and southbound (HTTP `POST /iot/json` or MQTT
`/<apikey>/<device>/attrs`), the NGSI-LD API for Device, asset and actuator
entities (and for the direct `batch` mode), and the live stream
(`GET /ngsi-ld/v1/stream`) for commands that services write.

The network work runs in a process of its own (`dosi.twin.publisher`), not a
thread: a thread doing HTTP beside the simulators fought them for the GIL and
cost the run 40-60% of its speed. The simulation hands readings over as orjson
arrays on a pipe; a full pipe blocks it (backpressure, nothing unbounded);
commands and status come back on a queue it polls once per tick.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from dosi.twin import entities as ent
from dosi.twin.model import Actuator, Asset, Reading, Sensor, Value
from dosi.twin.publisher import LinkSetup, serve

Transport = Literal["http", "mqtt", "batch"]
START_TIMEOUT_S = 120.0
CLOSE_TIMEOUT_S = 60.0


class LinkError(RuntimeError):
    """The hub refused the twin's set-up, or the link process died (one line why)."""


@dataclass
class LinkStats:
    readings: int = 0
    requests: int = 0
    failed: int = 0
    first_error: str = ""
    states: int = 0
    commands: int = 0
    kpis: int = 0  # KPI updates handed over (one batch each)


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
        self._context = multiprocessing.get_context("spawn")
        self._events: Any = self._context.Queue()
        self._pipe: Any = None
        self._process: Any = None
        self._commands: list[tuple[str, str, Any]] = []

    def start(
        self,
        sensors: Sequence[Sensor],
        actuators: Sequence[Actuator],
        assets: Sequence[Asset],
        states: Mapping[str, Mapping[str, Value]],
    ) -> None:
        """Start the link process; returns once the hub is provisioned and listening."""
        reader, self._pipe = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=serve,
            args=(
                reader,
                self._events,
                LinkSetup(
                    self.options, self.clock.epoch, list(sensors), list(actuators), list(assets),
                    {k: dict(v) for k, v in states.items()},
                ),
            ),
            name="dosi-twin-link",
            daemon=True,
        )  # fmt: skip
        self._process.start()
        reader.close()
        kind, *rest = self._next_event(START_TIMEOUT_S, "setting up the twin in the hub")
        if kind == "error":
            self._process.join(10)
            raise LinkError(rest[0])

    def publish(self, readings: Sequence[Reading]) -> None:
        if readings:
            self.stats.readings += len(readings)
            self._send(["readings", [[r.device_id, r.time, r.values] for r in readings]])

    def report(self, states: Mapping[str, Mapping[str, Value]], t: float) -> None:
        """Write actuators' applied states back (one batch request)."""
        if states:
            self.stats.states += len(states)
            self._send(["states", t, states])

    def report_kpis(self, values: Mapping[str, float], t: float) -> None:
        """Write the run's KPIs so far (one KeyPerformanceIndicator entity per key)."""
        if values:
            self.stats.kpis += 1
            self._send(["kpis", t, dict(values)])

    def commands(self) -> list[tuple[str, str, Any]]:
        """Commands heard since the last call: (actuator id, command, value), oldest first."""
        self._poll()
        out, self._commands = self._commands, []
        return out

    def flush(self) -> None:
        """Wait until the hub has answered everything handed over so far."""
        if self._process is None or not self._process.is_alive():
            return
        self._send(["flush"])
        while True:
            kind, *rest = self._next_event(CLOSE_TIMEOUT_S, "flushing to the hub")
            if kind == "flushed":
                requests, failed, first_error, heard = rest
                self.stats.requests, self.stats.failed = requests, failed
                self.stats.first_error, self.stats.commands = first_error, heard
                return

    def close(self) -> None:
        if self._process is None:
            return
        try:
            self.flush()
            if self._process.is_alive():
                self._send(["quit"])
        finally:
            self._process.join(CLOSE_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._pipe.close()
            self._process = None

    # -- internals -------------------------------------------------------------------------
    def _send(self, message: list[Any]) -> None:
        try:
            self._pipe.send_bytes(orjson.dumps(message))
        except (BrokenPipeError, OSError):
            raise LinkError("the twin's link process stopped") from None

    def _poll(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._take(event)

    def _take(self, event: tuple[Any, ...]) -> bool:
        """Keep a command; say whether the event was something else."""
        if event[0] == "command":
            self._commands.append((event[1], event[2], event[3]))
            return False
        return True

    def _next_event(self, timeout: float, doing: str) -> tuple[Any, ...]:
        """The next non-command event from the link process (commands are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(f"no answer from the link process while {doing}")
            try:
                event = self._events.get(timeout=min(left, 1.0))
            except queue.Empty:
                if not self._process.is_alive():
                    raise LinkError(f"the twin's link process died while {doing}") from None
                continue
            if self._take(event):
                return tuple(event)

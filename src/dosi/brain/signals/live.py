"""`dosi brain run signals --hub URL`: signal control in closed loop through a hub.

The service reads the hub's TrafficSignal and TrafficFlowObserved entities (their phases
and lanes, no other configuration), follows the live stream (`GET /ngsi-ld/v1/stream`)
for loop readings and signal states, decides with `LoopBrain` on simulated time (the
readings' and states' `observedAt`) and PATCHes `commandedPhase` (greens only: the field
controller plays yellow and all-red). It talks only HTTP to the hub, with aiohttp as the
twin does (dosi.client's httpx costs far more CPU per request), and imports no hub module.

Time. Live, the service estimates simulated time from the stamps it hears: the newest
stamp, moved on by the wall time since at the rate stamps have been advancing (1 for a real
city, 10 for a twin at 10x), never more than one loop interval ahead. A decision is then
late by the hub's round trip times that rate. For a reproducible evaluation a `Pacer`
replaces the estimate: the twin stops at every decision time until the service has heard
the data of that instant, decided, and the hub has taken its commands (lockstep, no lag).

On stop the service hands the signals it controls back to their fixed-time program
(`commandedProgram`), as a field controller falls back when its central system goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from dosi.brain.signals import hubdata as hd
from dosi.brain.signals.hubphases import SignalEntityError, phase_set_from_entity
from dosi.brain.signals.loopbrain import Command, LoopBrain
from dosi.brain.signals.phases import PhaseSet
from dosi.brain.signals.timing import Pacer, SimClock, Tick

log = logging.getLogger("dosi.brain.live")
BASE = "/ngsi-ld/v1"
PAGE = 1000
MAX_ENTITIES = 20_000  # per type: a hub with more is not one district's signals
BACKOFF_S = (0.5, 30.0)
WAIT_FOR_DATA_S = 10.0  # lockstep: how long a decision waits for the data of its instant


@dataclass(frozen=True)
class LiveOptions:
    hub: str
    tenant: str | None = None
    controller: str = "maxpressure"
    decision_every: float = 5.0  # simulated seconds
    min_green: float = 10.0
    max_green: float = 60.0
    release_on_stop: bool = True


@dataclass
class LiveStats:
    signals: int = 0
    loops: int = 0
    readings: int = 0
    states: int = 0
    decisions: int = 0
    commands: int = 0
    failed: int = 0
    reconnects: int = 0
    late: int = 0  # lockstep decisions that went ahead without all their data
    simulated: float = 0.0  # the simulated time of the last decision (POSIX seconds)
    last_error: str = ""


class LiveService:
    def __init__(
        self, options: LiveOptions, *, on_status: Callable[[LiveStats], None] | None = None
    ) -> None:
        self.options = options
        self.stats = LiveStats()
        self.on_status = on_status
        self.brain: LoopBrain | None = None
        self.ready = asyncio.Event()
        self._loops: dict[str, tuple[str, str]] = {}  # loop entity -> (lane, signal)
        self._phase_sets: dict[str, PhaseSet] = {}
        self._programs: dict[str, str] = {}
        self._last_loop: dict[str, float] = {}
        self._last_state: dict[str, tuple[float, int, bool]] = {}
        self._heard_readings: Counter[float] = Counter()
        self._heard_states: Counter[float] = Counter()
        self._clock = SimClock()
        self._data = asyncio.Condition()
        self._warned: dict[str, float] = {}
        self._http: aiohttp.ClientSession | None = None
        self.sent: dict[tuple[str, int], float] = {}  # (signal, phase) -> last decided at

    # -- the service ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, pacer: Pacer | None = None) -> LiveStats:
        headers = {"accept": "application/json"}
        if self.options.tenant:
            headers["NGSILD-Tenant"] = self.options.tenant
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(
            self.options.hub.rstrip("/"), headers=headers, timeout=timeout
        ) as http:
            self._http = http
            if not await self._until_loaded(stop):
                return self.stats
            opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            listener = asyncio.create_task(self._listen(opened, stop))
            stopper = asyncio.create_task(stop.wait())
            first: list[asyncio.Future[Any]] = [opened, stopper]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            try:
                if not stop.is_set():
                    self.ready.set()
                    if pacer is not None:
                        pacer.bind()
                        await self._paced(pacer, stop)
                    else:
                        await self._clocked(stop)
            finally:
                listener.cancel()
                stopper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                if self.options.release_on_stop:
                    await self._release()
        return self.stats

    async def _until_loaded(self, stop: asyncio.Event) -> bool:
        delay = BACKOFF_S[0]
        while not stop.is_set():
            try:
                await self._load()
                return True
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self._warn(f"cannot read the hub's signals ({exc}); retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, BACKOFF_S[1])
        return False

    async def _load(self) -> None:
        signals = await self._entities(hd.SIGNAL_TYPE, None)
        phase_sets: dict[str, PhaseSet] = {}
        for entity in signals:
            try:
                ps = phase_set_from_entity(entity)
            except SignalEntityError as exc:
                self._warn(f"skipping a signal: {exc}")
                continue
            if ps.greens:
                phase_sets[ps.tls_id] = ps
                self._programs[ps.tls_id] = ps.program_id
        if not phase_sets:
            raise ValueError("the hub has no TrafficSignal with phases, linkLanes, linkTargets")
        loops = await self._entities(hd.LOOP_TYPE, ",".join(hd.LOOP_ATTRS))
        for entity in loops:
            found = hd.loop_lane(entity)
            if found and found[1] in phase_sets and found[0] in phase_sets[found[1]].in_lanes:
                self._loops[str(entity["id"])] = found
        self._phase_sets = phase_sets
        stamps = [s.at for e in signals if (s := hd.signal_state(e)) is not None]
        start = max(stamps, default=time.time())
        self.brain = LoopBrain(
            phase_sets,
            start,
            controller=self.options.controller,
            min_green=self.options.min_green,
            max_green=self.options.max_green,
        )
        self.stats.signals, self.stats.loops = len(phase_sets), len(self._loops)
        for entity in (*signals, *loops):
            self._handle(entity)
        log.info("controlling %d signals from %d loops", len(phase_sets), len(self._loops))

    async def _entities(self, entity_type: str, attrs: str | None) -> list[dict[str, Any]]:
        assert self._http is not None
        params = {"type": entity_type, "limit": str(PAGE)}
        if attrs:
            params["attrs"] = attrs
        out: list[dict[str, Any]] = []
        while len(out) < MAX_ENTITIES:
            async with self._http.get(
                f"{BASE}/entities", params=dict(params, offset=str(len(out)))
            ) as response:
                if response.status != 200:
                    body = (await response.read())[:200].decode(errors="replace")
                    raise ValueError(f"GET entities {entity_type}: {response.status} {body}")
                batch = orjson.loads(await response.read())
            if not isinstance(batch, list):
                raise ValueError(f"GET entities {entity_type}: not a list")
            out.extend(e for e in batch if isinstance(e, dict) and isinstance(e.get("id"), str))
            if len(batch) < PAGE:
                break
        return out

    # -- the stream ---------------------------------------------------------------------------
    async def _listen(self, opened: asyncio.Future[None], stop: asyncio.Event) -> None:
        assert self._http is not None
        params = {
            "type": f"{hd.LOOP_TYPE},{hd.SIGNAL_TYPE}",
            "attrs": ",".join(("intensity", "occupancy", "dateObservedFrom", *hd.SIGNAL_ATTRS)),
        }
        forever = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        delay = BACKOFF_S[0]
        while not stop.is_set():
            try:
                async with self._http.get(
                    f"{BASE}/stream",
                    params=params,
                    headers={"accept": "text/event-stream"},
                    timeout=forever,
                ) as response:
                    if response.status != 200:
                        body = (await response.read())[:200].decode(errors="replace")
                        raise ValueError(f"stream refused: {response.status} {body}")
                    if opened.done():  # a reconnect: what changed meanwhile
                        self.stats.reconnects += 1
                        await self._catch_up()
                    else:
                        opened.set_result(None)
                    delay = BACKOFF_S[0]
                    await self._read(response)
                    raise ValueError("the hub ended the stream")
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self._warn(f"live stream lost ({exc}); reconnecting in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, BACKOFF_S[1])

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        data: list[bytes] = []
        size = 0
        async for raw in response.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                size += len(line)
                if size > 1_000_000:  # one event this large is not a sensor's
                    raise ValueError("an event over 1 MB")
                data.append(line[5:].strip())
            elif line.startswith(b"event: overflow"):
                raise ValueError("the hub dropped events (this service fell behind)")
            elif not line and data:
                try:
                    entity = orjson.loads(b"\n".join(data))
                except orjson.JSONDecodeError:
                    entity = None
                if isinstance(entity, dict):
                    self._handle(entity)
                data, size = [], 0
                async with self._data:
                    self._data.notify_all()

    async def _catch_up(self) -> None:
        for entity in await self._entities(hd.SIGNAL_TYPE, ",".join(hd.SIGNAL_ATTRS)):
            self._handle(entity)
        for entity in await self._entities(hd.LOOP_TYPE, ",".join(hd.LOOP_ATTRS)):
            self._handle(entity)

    def _handle(self, entity: dict[str, Any]) -> None:
        brain = self.brain
        entity_id = entity.get("id")
        if brain is None or not isinstance(entity_id, str):
            return
        wall = time.monotonic()
        loop = self._loops.get(entity_id)
        if loop is not None:
            reading = hd.loop_reading(entity, *loop)
            last = self._last_loop.get(entity_id)
            if reading is None or (last is not None and reading.at <= last):
                return
            interval = reading.interval or (
                reading.at - last if last is not None else hd.DEFAULT_INTERVAL
            )
            brain.reading(reading.lane, interval, reading.intensity, reading.occupancy)
            self._last_loop[entity_id] = reading.at
            self._heard_readings[reading.at] += 1
            self.stats.readings += 1
            self._clock.heard(reading.at, wall)
            return
        if entity_id in self._phase_sets:
            state = hd.signal_state(entity)
            if state is None:
                return
            key = (state.at, state.phase, state.held)
            last_state = self._last_state.get(entity_id)
            if last_state is not None and (state.at < last_state[0] or key == last_state):
                return
            self._last_state[entity_id] = key
            brain.reported(entity_id, state.phase, state.at, held=state.held)
            self._heard_states[state.at] += 1
            self.stats.states += 1
            self._clock.heard(state.at, wall)

    # -- deciding -----------------------------------------------------------------------------
    async def _clocked(self, stop: asyncio.Event) -> None:
        every = self.options.decision_every
        next_decision: float | None = None
        next_status = time.monotonic() + 60.0
        while not stop.is_set():
            now = self._clock.now(time.monotonic())
            if now is not None:
                if next_decision is None:
                    next_decision = now
                if now >= next_decision:
                    await self._decide(now)
                    next_decision = max(next_decision + every, now - every)
            if self.on_status is not None and time.monotonic() >= next_status:
                self.on_status(self.stats)
                next_status += 60.0
            pause = min(max(every / max(self._clock.rate, 1e-3) / 5, 0.005), 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def _paced(self, pacer: Pacer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            tick = await pacer.next_tick()
            if tick is None:
                return
            if not await self._wait_for(tick):
                self.stats.late += 1
                self._warn(f"decision at {tick.at:.0f} went ahead without all its data")
            await self._decide(tick.at)
            pacer.done(tick.at, self.stats.commands)

    async def _wait_for(self, tick: Tick) -> bool:
        def complete() -> bool:
            return all(self._heard_readings[t] >= n for t, n in tick.readings.items()) and all(
                self._heard_states[t] >= n for t, n in tick.states.items()
            )

        async with self._data:
            try:
                await asyncio.wait_for(self._data.wait_for(complete), WAIT_FOR_DATA_S)
            except TimeoutError:
                return False
        return True

    def _forget_before(self, at: float) -> None:
        """Counts of heard stamps are only needed for the next ticks (bounded memory)."""
        for heard in (self._heard_readings, self._heard_states):
            for stamp in [s for s in heard if s < at - 600]:
                del heard[stamp]

    async def _decide(self, now: float) -> None:
        assert self.brain is not None
        commands = self.brain.step(now)
        self.stats.decisions += 1
        self.stats.simulated = now
        self._forget_before(now)
        if commands:
            results = await asyncio.gather(*(self._send(c) for c in commands))
            self.stats.commands += sum(results)
            self.stats.failed += len(results) - sum(results)

    async def _send(self, command: Command) -> bool:
        self.sent[(command.signal, command.phase)] = command.at  # before: the echo may win
        return await self._patch(command.signal, "commandedPhase", command.phase)

    async def _patch(self, entity_id: str, attr: str, value: Any) -> bool:
        assert self._http is not None
        body = orjson.dumps({attr: {"type": "Property", "value": value}})
        try:
            async with self._http.patch(
                f"{BASE}/entities/{quote(entity_id, safe=':')}/attrs",
                data=body,
                headers={"content-type": "application/json"},
            ) as response:
                if response.status in (200, 204):
                    return True
                text = (await response.read())[:200].decode(errors="replace")
                self._warn(f"PATCH {attr} of {entity_id} refused: {response.status} {text}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._warn(f"PATCH {attr} of {entity_id} failed: {exc}")
        return False

    async def _release(self) -> None:
        """Hand the signals we hold back to their fixed-time program (best effort, bounded)."""
        if self.brain is None or self._http is None or self._http.closed:
            return
        held = [t for t, light in self.brain.driver.lights.items() if light.controlled]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(
                    *(self._patch(t, "commandedProgram", self._programs[t]) for t in held)
                ),
                5.0,
            )

    def _warn(self, message: str) -> None:
        """Log a problem, the same one at most once a minute (a hub down for an hour)."""
        self.stats.last_error = message
        now = time.monotonic()
        key = message[:60]
        if now - self._warned.get(key, -1e9) >= 60.0:
            if len(self._warned) > 100:
                self._warned.clear()
            self._warned[key] = now
            log.warning("%s", message)

"""`dosi brain eval signals`: the closed loop's KPI gain over fixed time, from one command.

Two runs of the same scenario and seed, each a twin driving its own embedded hub (a
`dosi up` child process) through the IoT agent as `dosi twin run` does: the baseline
leaves the signals on their fixed-time plans; the closed loop also runs the live
service (`LiveService`, the code behind `dosi brain run signals`) against that hub, in a
thread of the run's process, talking to the hub over HTTP only.

The twin runs as fast as it can, far faster than any network round trip, so by default
the two are in lockstep: every `decision_every` simulated seconds the twin stops (the
`PacedLink` in front of its hub link) until the service has heard that instant's readings
and states from the hub, decided, had its PATCHes accepted, and the twin's link has heard
them back on its own stream. Decisions then take effect at the instant they are made
(zero simulated lag) and the run is reproducible. With `speed` the twin instead runs
free at that factor and the service estimates simulated time as it does live; the lag of
each applied command (twin time heard minus decision time) is measured.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dosi.brain.signals.live import LiveOptions, LiveService
from dosi.brain.signals.timing import Pacer, Tick
from dosi.twin.whatif import ProgressFn, side_by_side

HEARD_TIMEOUT_S = 10.0
TICK_TIMEOUT_S = 30.0


@dataclass
class LoopReport:
    """What the closed loop did, and how long its round trips took."""

    decisions: int = 0
    commands_sent: int = 0
    commands_applied: int = 0
    commands_refused: int = 0
    failed: int = 0
    late: int = 0
    round_trip_ms: list[float] = field(default_factory=list)  # lockstep: tick to commands heard
    lag_s: list[float] = field(default_factory=list)  # free-running: simulated lag per command


@dataclass
class VariantResult:
    label: str
    kpis: dict[str, float]
    wall_s: float
    simulated_s: float
    loop: LoopReport | None = None


class PacedLink:
    """The twin's hub link with a lockstep barrier every `every` simulated seconds."""

    def __init__(
        self,
        link: Any,
        pacer: Pacer,
        *,
        step: float,
        every: float,
        epoch: float,
        loops: set[str],
        signals: set[str],
        report: LoopReport,
    ) -> None:
        self._link, self._pacer = link, pacer
        self._step, self._ticks_per_decision = step, max(1, round(every / step))
        self._epoch, self._loops, self._signals = epoch, loops, signals
        self._report = report
        self._k = 0
        self._readings: Counter[float] = Counter()
        self._states: Counter[float] = Counter()
        self._heard = 0

    def publish(self, readings: Sequence[Any]) -> None:
        self._link.publish(readings)
        self._k += 1
        for r in readings:
            if r.device_id in self._loops:
                self._readings[round(self._epoch + r.time, 3)] += 1

    def report(self, states: dict[str, Any], t: float) -> None:
        self._link.report(states, t)
        n = sum(1 for a in states if a in self._signals)
        if n:
            self._states[round(self._epoch + t, 3)] += n

    def commands(self) -> list[tuple[str, str, Any]]:
        if self._k % self._ticks_per_decision:
            return list(self._link.commands())
        t = round(self._epoch + self._k * self._step, 3)
        tick = Tick(t, dict(self._readings), dict(self._states))
        self._readings.clear()
        self._states.clear()
        started = time.perf_counter()
        sent = self._pacer.tick(tick, TICK_TIMEOUT_S)
        out: list[tuple[str, str, Any]] = list(self._link.commands())
        if sent is None:
            raise RuntimeError(f"the signal service did not decide within {TICK_TIMEOUT_S:g} s")
        deadline = time.monotonic() + HEARD_TIMEOUT_S
        while self._heard + len(out) < sent and time.monotonic() < deadline:
            time.sleep(0.0005)
            out.extend(self._link.commands())
        if self._heard + len(out) < sent:
            self._report.late += 1
        self._heard += len(out)
        self._report.round_trip_ms.append((time.perf_counter() - started) * 1000)
        return out

    def __getattr__(self, name: str) -> Any:  # report_kpis and whatever else the link offers
        return getattr(self._link, name)


class _ServiceThread:
    """The live service on an event loop of its own, in a thread of this process."""

    def __init__(self, options: LiveOptions, pacer: Pacer | None) -> None:
        self.service = LiveService(options)
        self._pacer = pacer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="dosi-brain", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"the signal service did not start: {self.error}")

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            runner = asyncio.create_task(self.service.run(self._stop, self._pacer))
            ready = asyncio.create_task(self.service.ready.wait())
            await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            await runner

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the run, which fails with it
            self.error = exc
        finally:
            self._ready.set()

    def stop(self) -> None:
        if self._pacer is not None:
            self._pacer.finish()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class _LagMeter:
    """Free-running: the simulated lag of each applied command (twin time minus decision)."""

    def __init__(self, link: Any, service: LiveService, *, step: float, epoch: float,
                 scenario: str) -> None:  # fmt: skip
        self._link, self._service, self._step, self._epoch = link, service, step, epoch
        self._prefix = f"urn:ngsi-ld:TrafficSignal:{scenario}:"
        self._k = 0
        self.lags: list[float] = []

    def publish(self, readings: Sequence[Any]) -> None:
        self._link.publish(readings)
        self._k += 1

    def commands(self) -> list[tuple[str, str, Any]]:
        out = list(self._link.commands())
        now = self._epoch + self._k * self._step
        for actuator, command, value in out:
            decided = self._service.sent.get((self._prefix + actuator, value))
            if command == "commandedPhase" and decided is not None:
                self.lags.append(max(now - decided, 0.0))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)


def run_variant(
    label: str,
    source: str,
    *,
    hours: float | None,
    seed: int | None,
    controller: str | None,
    speed: float | None,
    every: float,
    traffic_only: bool,
    updates: Any = None,
) -> VariantResult:
    """One run (in its own process: libsumo holds one simulation per process)."""
    from dosi.twin.engine import Twin, start_of_run
    from dosi.twin.entities import Clock
    from dosi.twin.hubproc import EmbeddedHub
    from dosi.twin.link import HubLink, LinkOptions
    from dosi.twin.scenario import load_scenario

    loaded = load_scenario(source)
    scenario = loaded.scenario
    if traffic_only:
        scenario = scenario.model_copy(update={"water": None, "power": None})
        loaded = dataclasses.replace(loaded, scenario=scenario)
    twin = Twin(loaded, hours=hours, seed=seed)
    epoch = start_of_run(loaded)

    def progress(t: float, total: float) -> None:
        if updates is not None:
            updates.put((label, t, total))

    with (
        tempfile.TemporaryDirectory(prefix="dosi-brain-eval-") as data,
        EmbeddedHub(Path(data)) as hub,
    ):
        options = LinkOptions(hub.url, scenario.name, scenario.hub.transport, scenario.hub.apikey)
        link = HubLink(options, Clock(epoch))
        sensors, actuators = twin.sensors(), twin.actuators()
        link.start(sensors, actuators, twin.assets(), twin.states())
        report = LoopReport() if controller else None
        service: _ServiceThread | None = None
        side: Any = link
        try:
            if controller and report is not None:
                pacer = None if speed else Pacer()
                live = LiveOptions(hub.url, controller=controller, decision_every=every)
                service = _ServiceThread(live, pacer)
                service.start()
                if pacer is not None:
                    side = PacedLink(
                        link, pacer, step=twin.step, every=every, epoch=epoch.timestamp(),
                        loops={s.device_id for s in sensors
                               if s.entity_type == "TrafficFlowObserved"},
                        signals={a.actuator_id for a in actuators
                                 if a.entity_type == "TrafficSignal"},
                        report=report,
                    )  # fmt: skip
                else:
                    side = _LagMeter(
                        link,
                        service.service,
                        step=twin.step,
                        epoch=epoch.timestamp(),
                        scenario=scenario.name,
                    )
            result = twin.run(side, speed=speed, progress=progress)
        finally:
            if service is not None:
                service.stop()
            link.close()
    if report is not None and service is not None:
        stats = service.service.stats
        report.decisions, report.commands_sent = stats.decisions, stats.commands
        report.failed, report.late = stats.failed, report.late + stats.late
        phase = [c for c in result.commands if c.command == "commandedPhase"]
        report.commands_applied = sum(1 for c in phase if not c.error)
        report.commands_refused = sum(1 for c in phase if c.error)
        if isinstance(side, _LagMeter):
            report.lag_s = side.lags
    return VariantResult(label, result.kpis, result.wall_s, result.simulated_s, report)


def evaluate(
    source: str,
    *,
    hours: float | None = None,
    seed: int | None = None,
    controller: str = "maxpressure",
    speed: float | None = None,
    every: float = 5.0,
    traffic_only: bool = True,
    progress: ProgressFn | None = None,
) -> tuple[VariantResult, VariantResult]:
    """Fixed time and the closed loop, in two processes at once; raises the first failure."""
    common: dict[str, Any] = {
        "source": source,
        "hours": hours,
        "seed": seed,
        "every": every,
        "traffic_only": traffic_only,
    }
    runs = side_by_side(
        {
            "fixed time": (run_variant, {**common, "controller": None, "speed": None}),
            "closed loop": (run_variant, {**common, "controller": controller, "speed": speed}),
        },
        progress,
    )
    return runs["fixed time"], runs["closed loop"]


def summary(values: Sequence[float]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"mean {statistics.fmean(ordered):.1f}, p95 {p95:.1f}, max {ordered[-1]:.1f}"

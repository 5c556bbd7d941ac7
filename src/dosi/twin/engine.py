"""The common clock: every simulator steps together; readings out, commands in.

One loop drives the run. At each tick every simulator advances to the same
simulated time and returns the readings whose interval ended; they go to the
hub link (never waited on); commands heard since the last tick are applied
before the next one, so a command takes effect within one step of arriving.
Actuator states that changed are written back every `state_every` simulated
seconds, and at once for an actuator that was just commanded (asking every
actuator every step cost 9% of a run). `speed` paces the loop against the wall
clock (None: as fast as possible).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from dosi.twin.config import clock_seconds
from dosi.twin.model import (
    Actuator,
    Asset,
    CommandRejected,
    Event,
    Reading,
    Sensor,
    SimContext,
    Simulator,
    Value,
)
from dosi.twin.scenario import LoadedScenario

log = logging.getLogger("dosi.twin")
Progress = Callable[[float, float], None]  # (simulated seconds done, total)


class HubSide(Protocol):
    """What the engine needs of a hub link (dosi.twin.link.HubLink has it)."""

    def publish(self, readings: Sequence[Reading]) -> None: ...

    def commands(self) -> list[tuple[str, str, Any]]: ...

    def report(self, states: dict[str, dict[str, Value]], t: float) -> None: ...

    def report_kpis(self, values: dict[str, float], t: float) -> None: ...


@dataclass(frozen=True)
class AppliedCommand:
    actuator_id: str
    command: str
    value: Any
    heard_at: float  # simulated time of the tick that heard it
    applied_from: float  # simulated time from which it is in effect
    error: str = ""


@dataclass
class RunResult:
    kpis: dict[str, float]
    simulated_s: float
    wall_s: float
    readings: int
    commands: list[AppliedCommand] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")


def start_of_run(loaded: LoadedScenario, day: date | None = None) -> datetime:
    """The run's t = 0: the scenario's start time on `day` (default today) in the site's zone."""
    zone = ZoneInfo(loaded.scenario.site.timezone)
    day = day or datetime.now(zone).date()
    midnight = datetime.combine(day, dt_time(0), tzinfo=zone)
    return midnight + timedelta(seconds=clock_seconds(loaded.scenario.clock.start))


def open_simulator(domain: str, config: Any, ctx: SimContext) -> Simulator:
    """The adapter of a domain (imported here so a scenario without SUMO never loads it)."""
    if domain == "traffic":
        from dosi.twin.traffic import open_traffic

        return open_traffic(config, ctx)
    if domain == "water":
        from dosi.twin.water import open_water

        return open_water(config, ctx)
    from dosi.twin.power import open_power

    return open_power(config, ctx)


class Twin:
    """A scenario's simulators, opened and ready to run once."""

    def __init__(
        self,
        loaded: LoadedScenario,
        *,
        seed: int | None = None,
        hours: float | None = None,
        events: Sequence[Event] = (),
        workdir: Path | None = None,
    ) -> None:
        scenario = loaded.scenario
        self.loaded = loaded
        self.name = scenario.name
        self.step = scenario.clock.step
        self.duration = round((hours or scenario.clock.hours) * 3600 / self.step) * self.step
        self.seed = scenario.scenario.seed if seed is None else seed
        self._scratch = (
            tempfile.TemporaryDirectory(prefix="dosi-twin-") if workdir is None else None
        )
        self.workdir: Path = workdir if workdir is not None else Path(self._scratch.name)  # type: ignore[union-attr]
        self.simulators: list[Simulator] = []
        try:
            for domain in scenario.domains():
                config = getattr(scenario, domain)
                folder = self.workdir / domain
                folder.mkdir(parents=True, exist_ok=True)
                ctx = SimContext(
                    scenario=self.name,
                    base_dir=loaded.base_dir,
                    workdir=folder,
                    placement=config.placement.on(scenario.site.origin),
                    seed=self.seed,
                    start_of_day=clock_seconds(scenario.clock.start),
                    step=self.step,
                    duration=self.duration,
                    events=tuple(events),
                )
                self.simulators.append(open_simulator(domain, config, ctx))
        except BaseException:
            self.close()
            raise
        self._owner = {a.actuator_id: sim for sim in self.simulators for a in sim.actuators()}
        self._closed = False

    def sensors(self) -> list[Sensor]:
        return [s for sim in self.simulators for s in sim.sensors()]

    def actuators(self) -> list[Actuator]:
        return [a for sim in self.simulators for a in sim.actuators()]

    def assets(self) -> list[Asset]:
        return [a for sim in self.simulators for a in sim.assets()]

    def states(self) -> dict[str, dict[str, Value]]:
        return {aid: sim.state(aid) for aid, sim in self._owner.items()}

    def apply(self, actuator_id: str, command: str, value: Any) -> str:
        """Apply one command; returns '' or why it was refused (never raises for bad input)."""
        sim = self._owner.get(actuator_id)
        if sim is None:
            return f"no actuator {actuator_id!r}"
        try:
            sim.apply(actuator_id, command, value)
        except CommandRejected as exc:
            return str(exc)
        except KeyError as exc:
            return f"unknown command {exc}"
        return ""

    def run(
        self,
        hub: HubSide | None = None,
        *,
        speed: float | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        progress_every: float = 60.0,
        state_every: float = 5.0,
        kpi_every: float = 60.0,
    ) -> RunResult:
        """Run to the end (or until `stop` is set); closes the simulators and returns KPIs.

        With a hub, the KPIs so far go to it every `kpi_every` simulated seconds, and the
        final ones (SUMO's complete trip statistics) once the run is over."""
        steps = round(self.duration / self.step)
        readings = 0
        applied: list[AppliedCommand] = []
        last_states = self.states() if hub is not None else {}
        started = time.perf_counter()
        t = 0.0
        next_progress = progress_every
        state_ticks = max(1, round(state_every / self.step))
        kpi_ticks = max(1, round(kpi_every / self.step))
        try:
            for k in range(1, steps + 1):
                t = k * self.step
                batch: list[Reading] = []
                for sim in self.simulators:
                    batch.extend(sim.advance(t))
                readings += len(batch)
                if hub is not None:
                    hub.publish(batch)
                    commanded: set[str] = set()
                    for actuator_id, command, value in hub.commands():
                        error = self.apply(actuator_id, command, value)
                        if error:
                            log.warning("command %s=%r for %s refused: %s",
                                        command, value, actuator_id, error)  # fmt: skip
                        applied.append(AppliedCommand(actuator_id, command, value, t, t, error))
                        commanded.add(actuator_id)
                    due = None if k % state_ticks == 0 else commanded
                    changed = self._changed_states(last_states, due)
                    if changed:
                        hub.report(changed, t)
                    if k % kpi_ticks == 0:
                        hub.report_kpis(self.kpis(), t)
                if speed is not None:
                    ahead = t / speed - (time.perf_counter() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                if progress is not None and t >= next_progress:
                    progress(t, self.duration)
                    next_progress += progress_every
                if stop is not None and stop.is_set():
                    break
        finally:
            wall = time.perf_counter() - started
            self.close()
        if progress is not None:
            progress(t, self.duration)
        result = RunResult(self.kpis(), t, wall, readings, applied)
        if hub is not None:
            hub.report_kpis(result.kpis, t)
        if self._scratch is not None:
            self._scratch.cleanup()
        return result

    def _changed_states(
        self, last: dict[str, dict[str, Value]], only: set[str] | None
    ) -> dict[str, dict[str, Value]]:
        """States that differ from the last ones written (of `only` these actuators, or all)."""
        changed: dict[str, dict[str, Value]] = {}
        for actuator_id in self._owner if only is None else only:
            sim = self._owner.get(actuator_id)
            if sim is None:
                continue
            state = sim.state(actuator_id)
            if state != last.get(actuator_id):
                last[actuator_id] = state
                changed[actuator_id] = state
        return changed

    def kpis(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for sim in self.simulators:
            out.update(sim.kpis())
        return out

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for sim in self.simulators:
            sim.close()

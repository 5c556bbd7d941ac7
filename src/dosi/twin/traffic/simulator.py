"""The traffic simulator of the twin: SUMO through libsumo on the common clock.

`open_traffic` lays out everything from the network file first (loops, cells,
demand), then starts SUMO in-process. Each `advance` runs SUMO's steps up to the
requested time and folds every step into the loop and emission tallies with a few
batched calls; readings come out when an interval ends. libsumo holds one
simulation per process, so only one TrafficSimulator may be open at a time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libsumo

from dosi.twin.model import Actuator, Asset, Reading, Sensor, SimContext, Value
from dosi.twin.traffic.air import AirGrid
from dosi.twin.traffic.closures import Closures, closable_edges, load_net
from dosi.twin.traffic.config import TrafficConfig
from dosi.twin.traffic.demand import generate_trips
from dosi.twin.traffic.detectors import LoopCounter, layout_loops, loop_sensors, write_loops
from dosi.twin.traffic.results import road_segments, trip_kpis
from dosi.twin.traffic.signals import Signals

EPS = 1e-6


def _on_grid(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < EPS


class TrafficSimulator:
    domain = "traffic"

    def __init__(self, config: TrafficConfig, ctx: SimContext) -> None:
        for name, interval in (
            ("detectors.interval", config.detectors.interval),
            ("air.interval", config.air.interval),
            ("air.sample_every", config.air.sample_every),
        ):
            if not _on_grid(interval, ctx.step):
                raise ValueError(f"traffic.{name} ({interval:g} s) must be a multiple of the step")
        if not _on_grid(config.air.interval, config.air.sample_every):
            raise ValueError("traffic.air.interval must be a multiple of traffic.air.sample_every")
        if libsumo.simulation.isLoaded():
            raise RuntimeError("a SUMO simulation is already open in this process; close it first")
        self.config, self.ctx = config, ctx
        net_path, self.net = load_net(config, ctx.base_dir)
        self.closures = Closures(self.net, ctx.events)
        work = ctx.workdir
        work.mkdir(parents=True, exist_ok=True)
        self.trips = generate_trips(
            config.demand,
            self.net,
            seed=ctx.seed,
            duration=ctx.duration,
            start_of_day=ctx.start_of_day,
            events=ctx.events,
            path=work / "trips.rou.xml",
        )
        self.loops = layout_loops(self.net, config.detectors)
        self.detector_output = work / "detectors.xml"  # SUMO's own E1 output
        self.tripinfo_output = work / "tripinfo.xml"
        self.statistics_output = work / "statistics.xml"
        write_loops(
            self.loops, config.detectors.interval, self.detector_output, work / "loops.add.xml"
        )
        self._start(net_path, work)
        self._open = True
        self._final: dict[str, float] | None = None
        self.now = 0.0
        try:
            self.counter = LoopCounter(self.loops, config.detectors)
            self.air = AirGrid(self.net, config.air, list(libsumo.edge.getIDList()))
            self.signals = Signals(self.net)
            self._sensors = loop_sensors(
                self.loops, self.net, config.detectors, ctx.placement, ctx.scenario
            ) + self.air.sensors(ctx.placement)
            self._actuators = self.signals.actuators(ctx.placement, libsumo)
            self._assets = road_segments(self.net, ctx.placement)
        except BaseException:
            self._open = False
            libsumo.close()
            raise

    def _start(self, net_path: Path, work: Path) -> None:
        ctx, config = self.ctx, self.config
        args = ["sumo", "--net-file", str(net_path), "--route-files", str(self.trips.path)]
        args += ["--additional-files", str(work / "loops.add.xml")]
        args += ["--step-length", f"{ctx.step:g}", "--seed", str(ctx.seed)]
        args += ["--no-step-log", "--no-warnings", "--duration-log.disable"]
        args += ["--time-to-teleport", f"{config.time_to_teleport:g}"]
        args += ["--ignore-route-errors", "--error-log", str(work / "sumo-errors.log")]
        args += ["--tripinfo-output", str(self.tripinfo_output)]
        args += ["--statistic-output", str(self.statistics_output)]
        if config.rerouting_period > 0:  # drivers follow live travel times (navigation apps)
            args += ["--device.rerouting.probability", "1"]
            args += ["--device.rerouting.period", f"{config.rerouting_period:g}"]
        try:
            libsumo.start(args)
        except (libsumo.TraCIException, libsumo.FatalTraCIError) as exc:
            log_file = work / "sumo-errors.log"
            log = log_file.read_text(errors="replace")[-500:] if log_file.is_file() else ""
            raise RuntimeError(f"SUMO did not start ({exc}): {log.strip()}") from None

    # -- the Simulator protocol ------------------------------------------------------

    def sensors(self) -> list[Sensor]:
        return list(self._sensors)

    def actuators(self) -> list[Actuator]:
        return list(self._actuators)

    def assets(self) -> list[Asset]:
        return list(self._assets)

    def advance(self, until: float) -> list[Reading]:
        self._check_open()
        step = self.ctx.step
        detector_interval = self.config.detectors.interval
        air_interval = self.config.air.interval
        air_sample = self.config.air.sample_every
        readings: list[Reading] = []
        while self.now + EPS < until:
            self.closures.before_step(libsumo, self.now)
            libsumo.simulationStep()
            self.now = round(self.now + step, 6)
            self.signals.step(libsumo)
            self.closures.after_step(libsumo)
            self.counter.step(libsumo, self.now, step)
            if _on_grid(self.now, air_sample):
                self.air.step(libsumo, air_sample)
            if _on_grid(self.now, detector_interval):
                readings += self.counter.readings(self.now)
            if _on_grid(self.now, air_interval):
                readings += self.air.readings(self.now)
        return readings

    def apply(self, actuator_id: str, command: str, value: Any) -> None:
        self._check_open()
        self.signals.apply(libsumo, actuator_id, command, value)

    def state(self, actuator_id: str) -> dict[str, Value]:
        self._check_open()
        return self.signals.state(libsumo, actuator_id)

    def kpis(self) -> dict[str, float]:
        if self._final is not None:
            return dict(self._final)
        live = libsumo.simulation.getParameter
        return {  # SUMO's running tripinfo statistics (stops only come with the final file)
            "traffic.mean_travel_time": float(live("", "device.tripinfo.duration")),
            "traffic.mean_delay": float(live("", "device.tripinfo.timeLoss")),
            "traffic.mean_speed": round(float(live("", "device.tripinfo.speed")) * 3.6, 2),
            "traffic.co2": round(self.air.co2_kg(), 3),
            "traffic.arrived": float(live("", "device.tripinfo.count")),
            "traffic.teleports": float(live("", "stats.teleports.total")),
        }

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        libsumo.close()  # flushes SUMO's output files
        final = trip_kpis(self.tripinfo_output, self.statistics_output)
        final["traffic.co2"] = round(self.air.co2_kg(), 3)
        self._final = final

    # -- helpers ---------------------------------------------------------------------

    def closable_edges(self) -> list[str]:
        return closable_edges(self.net)

    def detector_of(self, device_id: str) -> str:
        """The SUMO detector id behind a loop sensor (the same string; KeyError if none)."""
        if not any(loop.loop_id == device_id for loop in self.loops):
            raise KeyError(f"no induction loop sensor {device_id!r}")
        return device_id

    def busiest_edge(self, sample: int = 400) -> str:
        """The closable street most trips would take on free-flow fastest routes.

        Routes the first `sample` trips of the demand with SUMO's router (no
        simulation needed), so a what-if can pick a closure that matters.
        """
        self._check_open()
        closable = set(self.closable_edges())
        counts: dict[str, int] = dict.fromkeys(sorted(closable), 0)
        for trip in ET.parse(self.trips.path).getroot().iter("trip"):
            if sample <= 0:
                break
            sample -= 1
            route = libsumo.simulation.findRoute(trip.attrib["from"], trip.attrib["to"])
            for edge in route.edges:
                if edge in closable:
                    counts[edge] += 1
        return max(counts, key=lambda edge: counts[edge])

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("the traffic simulation is closed")

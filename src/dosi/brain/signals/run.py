"""Run one controller on one SUMO config with a seed, through libsumo, and measure it.

libsumo holds one simulation per process: `run` refuses to start while one is loaded,
and `run_isolated` runs in a fresh spawned process for callers that need several.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libsumo

from dosi.brain.signals.controller import Controller, SignalDriver
from dosi.brain.signals.controllers import CONTROLLERS
from dosi.brain.signals.metrics import QueueSampler, RunMetrics, trip_means
from dosi.brain.signals.observe import Observer
from dosi.brain.signals.phases import derive_phases


@dataclass(frozen=True)
class SumoConfig:
    path: Path
    begin: float
    end: float


def read_config(path: Path) -> SumoConfig:
    """Begin and end times of a .sumocfg (SUMO reads the rest itself)."""
    root = ET.parse(path).getroot()

    def value(tag: str, default: float) -> float:
        el = root.find(f"time/{tag}")
        return float(el.get("value", default)) if el is not None else default

    return SumoConfig(Path(path), value("begin", 0.0), value("end", 3600.0))


@dataclass
class RunOptions:
    seed: int = 0
    duration: float | None = None  # simulated seconds from begin (default: the config's end)
    decision_every: float = 5.0
    min_green: float = 5.0
    max_green: float = 60.0
    near_distance: float = 50.0
    time_to_teleport: float = 300.0
    workdir: Path | None = None
    on_step: Callable[[float, SignalDriver | None], None] | None = None  # after each step


def run(config: Path, controller: Controller, options: RunOptions | None = None) -> RunMetrics:
    opts = options or RunOptions()
    cfg = read_config(config)
    end = cfg.end if opts.duration is None else cfg.begin + opts.duration
    if libsumo.simulation.isLoaded():
        raise RuntimeError("a SUMO simulation is already open in this process")
    with tempfile.TemporaryDirectory(prefix="dosi-brain-") as tmp:
        work = opts.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tripinfo = work / "tripinfo.xml"
        libsumo.start(
            [
                *("sumo", "-c", str(cfg.path), "--begin", f"{cfg.begin:g}", "--end", f"{end:g}"),
                *("--seed", str(opts.seed), "--tripinfo-output", str(tripinfo)),
                *("--time-to-teleport", f"{opts.time_to_teleport:g}"),
                *("--no-step-log", "--no-warnings", "--duration-log.disable"),
            ]
        )
        started = time.perf_counter()
        try:
            phases = derive_phases(libsumo)
            controller.setup(libsumo, phases)
            observer = Observer(libsumo, phases, near_distance=opts.near_distance)
            driver = None
            if not controller.native:
                driver = SignalDriver(
                    libsumo, phases, min_green=opts.min_green, max_green=opts.max_green
                )
            queues = QueueSampler(len(observer.in_lanes), len(phases))
            now = float(libsumo.simulation.getTime())
            next_decision = now
            teleports = 0
            while now < end - 1e-6:
                if driver is not None:
                    if now + 1e-6 >= next_decision:
                        driver.request(controller.decide(now, observer.observe(driver)), now)
                        next_decision += opts.decision_every
                    driver.tick(now)
                libsumo.simulationStep()
                now = float(libsumo.simulation.getTime())
                teleports += libsumo.simulation.getStartingTeleportNumber()
                queues.add(observer.halting_total()[0])
                if opts.on_step is not None:
                    opts.on_step(now, driver)
            simulated = now - cfg.begin
        finally:
            libsumo.close()
        wall = time.perf_counter() - started
        delay, trip, wait, arrived = trip_means(tripinfo)
    return RunMetrics(
        delay=delay,
        trip_time=trip,
        waiting_time=wait,
        queue_per_lane=queues.per_lane(),
        queue_per_intersection=queues.per_intersection(),
        arrived=arrived,
        teleports=teleports,
        simulated_s=simulated,
        wall_s=wall,
    )


def _run_named(config: str, name: str, options: RunOptions) -> RunMetrics:
    return run(Path(config), CONTROLLERS[name](), options)


def run_isolated(config: Path, name: str, options: RunOptions | None = None) -> RunMetrics:
    """`run` with a controller by name, in a fresh process (one libsumo per process)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_run_named, (str(config), name, options or RunOptions()))

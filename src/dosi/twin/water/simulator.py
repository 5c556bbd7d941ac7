"""The water adapter: EPANET's own hydraulic solver, stepped on the twin's clock.

One hydraulic solution holds from its time until the next one (EPANET's extended-period
model). Solutions are computed on a grid of `hydraulic_step` seconds, plus whenever
EPANET needs one (pattern change, tank full or empty, a control firing), plus the second
a what-if event or a command happens. Readings are stamped at their interval boundary
and take the solution in force at that moment; AMR volumes and the KPIs integrate the
piecewise-constant flows exactly.

Each solution reads the pressure of every demand junction (~0.3 ms on L-Town, as long
as the solve itself): that is what the minimum-pressure and unserved-demand KPIs need.
EPANET is deterministic; the seed is not used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dosi.twin.model import (
    Actuator,
    Asset,
    DemandSurge,
    PipeBurst,
    Reading,
    Sensor,
    SimContext,
    Value,
)
from dosi.twin.water import toolkit as en
from dosi.twin.water.config import WaterConfig
from dosi.twin.water.controls import Controls
from dosi.twin.water.network import Network, assets, demand_junctions, load_network
from dosi.twin.water.sensors import SensorGroup, plan_sensors
from dosi.twin.water.toolkit import Toolkit

log = logging.getLogger(__name__)

LPS = 0.001  # m3/s per L/s: EPANET runs a copy of the network in LPS units
SPARE_HORIZON = 86_400  # EPANET's duration beyond the run's, so an overrun never stops it


@dataclass(frozen=True)
class _Event:
    time: int  # whole seconds: EPANET's clock
    node: str = ""  # a burst's junction, "" for a demand surge
    value: float = 0.0  # emitter coefficient (L/s per sqrt(m)) or demand factor


def _events(ctx: SimContext, net: Network, config: WaterConfig) -> list[_Event]:
    """This domain's what-if events, checked now so a typo fails before the run starts."""
    out = []
    for event in ctx.events:
        at = max(0, math.ceil(event.at - 1e-9)) if math.isfinite(event.at) else -1
        if isinstance(event, PipeBurst):
            if not net.is_junction(event.node):
                raise ValueError(
                    f"PipeBurst.node: {event.node!r} is not a junction of {net.source.name}"
                )
            size = event.emitter_coefficient
            if not math.isfinite(size) or size < 0:
                raise ValueError(f"PipeBurst.emitter_coefficient must be >= 0, got {size}")
            out.append(_Event(at, event.node, size or config.burst_coefficient))
        elif isinstance(event, DemandSurge):
            if not math.isfinite(event.factor) or not 0 < event.factor <= 10:
                raise ValueError(f"DemandSurge.factor must be > 0 and <= 10, got {event.factor}")
            out.append(_Event(at, "", event.factor))
        else:
            continue
        if at < 0:
            raise ValueError(f"{type(event).__name__}.at must be a finite time, got {event.at}")
    return sorted(out, key=lambda e: e.time)


def _prepare(net: Network, config: WaterConfig, ctx: SimContext) -> Any:
    """Write the network as EPANET should run it into the scratch folder."""
    import wntr

    options = net.wn.options
    step = config.hydraulic_step
    start = round(ctx.start_of_day) % 86_400
    options.time.duration = math.ceil(max(ctx.duration, 0.0)) + SPARE_HORIZON
    options.time.hydraulic_timestep = step
    options.time.quality_timestep = step
    options.time.rule_timestep = step
    options.time.pattern_start = start  # demand patterns line up with the time of day
    options.time.start_clocktime = start
    options.time.report_start = 0
    demand = config.demand
    options.hydraulic.demand_model = demand.model
    options.hydraulic.minimum_pressure = demand.minimum_pressure
    options.hydraulic.required_pressure = demand.required_pressure
    options.hydraulic.pressure_exponent = demand.pressure_exponent
    options.hydraulic.demand_multiplier = demand.multiplier
    options.quality.parameter = "NONE"
    options.report.status = "NO"  # no per-step status lines in the report file
    options.report.summary = "NO"
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    path = ctx.workdir / "water.inp"
    wntr.network.write_inpfile(net.wn, str(path), units="LPS")
    return path


class WaterSimulator:
    """L-Town (or any EPANET network) on the common clock; see the module docstring."""

    domain = "water"

    def __init__(self, config: WaterConfig, ctx: SimContext) -> None:
        net = load_network(ctx.base_dir / config.network)
        self._groups: list[SensorGroup] = plan_sensors(net, config.sensors, ctx.placement)
        self._controls = Controls(net, ctx.placement)
        self._assets = list(assets(net, ctx.placement))
        self._events = _events(ctx, net, config)
        self._next_event = 0
        self._step = config.hydraulic_step
        self._pda = config.demand.model == "PDA"
        self._required = config.demand.required_pressure
        self._multiplier = config.demand.multiplier
        self._emitter_exp = float(net.wn.options.hydraulic.emitter_exponent or 0.5)
        inp = _prepare(net, config, ctx)
        tk = Toolkit(inp, ctx.workdir / "water.rpt")
        self._tk: Toolkit | None = tk
        self._warnings_at_close = 0
        try:
            self._bind(net, tk)
            self._t = 0  # EPANET time of the solution in force
            self._now = 0.0  # time the engine has advanced to
            self._acc = 0.0  # integrals are complete up to here
            self._hstep = self._step
            self._ended = False
            self._resolve = False  # a command arrived since the last solution
            self._next_reading = {g.kind: g.interval for g in self._groups}
            self._apply_events()
            self._solve()
        except BaseException:
            tk.close()
            raise

    # -- setup ------------------------------------------------------------------------

    def _bind(self, net: Network, tk: Toolkit) -> None:
        """Resolve element ids to EPANET indices; arrange the per-solution reads."""
        junctions = list(demand_junctions(net)) or list(net.wn.junction_name_list)
        watched: dict[int, int] = {}  # node index -> position in the pressure array

        def pos(node: str) -> int:
            return watched.setdefault(tk.node_index(node), len(watched))

        self._demand_pos = np.array([pos(n) for n in junctions], dtype=np.intp)
        groups = {g.kind: g for g in self._groups}
        self._sensor_pos = {
            kind: np.array([pos(e) for e in groups[kind].elements], dtype=np.intp)
            for kind in ("pressure", "level")
            if kind in groups
        }
        all_junctions = [tk.node_index(n) for n in net.wn.junction_name_list]
        emitters = dict(zip(all_junctions, tk.nodes(all_junctions, en.EMITTER), strict=True))
        self._emitters = {i: k for i, k in emitters.items() if k > 0}  # node index -> Ke
        for event in self._events:
            if event.node:
                pos(event.node)
        for index in self._emitters:
            watched.setdefault(index, len(watched))
        self._watched = list(watched)
        self._watch_pos = watched
        self._demand_nodes = [self._watched[p] for p in self._demand_pos]
        amr = groups.get("amr")
        self._amr_nodes = [tk.node_index(n) for n in amr.elements] if amr else []
        self._amr_volume = np.zeros(len(self._amr_nodes))
        flow = groups.get("flow")
        self._flow_links = [tk.link_index(link) for link in flow.elements] if flow else []
        self._controls.bind(tk)
        # KPI accumulators
        self._min_pressure = math.inf
        self._unserved = 0.0  # m3
        self._leak = 0.0  # m3
        self._pressure_time = 0.0  # integral of the mean sensor pressure (m * s)

    # -- stepping -----------------------------------------------------------------------

    def _apply_events(self) -> None:
        tk = self._live()
        while self._next_event < len(self._events):
            event = self._events[self._next_event]
            if event.time > self._t:
                break
            self._next_event += 1
            if event.node:
                index = tk.node_index(event.node)
                self._emitters[index] = self._emitters.get(index, 0.0) + event.value
                tk.set_node(index, en.EMITTER, self._emitters[index])
                log.info(
                    "burst at %s from t=%d s (Ke %.2f L/s/m^0.5)", event.node, self._t, event.value
                )
            else:
                self._multiplier *= event.value
                tk.set_option(en.DEMANDMULT, self._multiplier)

    def _solve(self) -> None:
        """Solve at the current EPANET time and cache what readings and KPIs need."""
        tk = self._live()
        solved = tk.run()
        if solved != self._t:  # never expected: EPANET and this clock disagree
            raise RuntimeError(f"EPANET solved at {solved} s, expected {self._t} s")
        self._resolve = False
        p = np.array(tk.nodes(self._watched, en.PRESSURE))
        self._pressure = p
        demand_p = p[self._demand_pos]
        self._min_pressure = min(self._min_pressure, float(demand_p.min()))
        deficit = 0.0
        if self._pda:
            low = np.flatnonzero(demand_p < self._required)
            if low.size:
                nodes = [self._demand_nodes[i] for i in low]
                deficit = sum(max(d, 0.0) for d in tk.nodes(nodes, en.DEMANDDEFICIT))
        self._deficit_rate = deficit * LPS
        self._emitter_flow = {
            i: k * max(float(p[self._watch_pos[i]]), 0.0) ** self._emitter_exp
            for i, k in self._emitters.items()
        }
        self._leak_rate = sum(self._emitter_flow.values()) * LPS
        sensors = self._sensor_pos.get("pressure")
        self._mean_pressure = (
            float(p[sensors].mean()) if sensors is not None else float(demand_p.mean())
        )
        amr = tk.nodes(self._amr_nodes, en.DEMAND)
        self._amr_rate = (
            np.array(
                [
                    q - self._emitter_flow.get(i, 0.0)
                    for i, q in zip(self._amr_nodes, amr, strict=True)
                ]
            )
            * LPS
        )
        self._flows = [abs(q) * LPS for q in tk.links(self._flow_links, en.FLOW)]

    def _integrate(self, to: float) -> None:
        dt = to - self._acc
        if dt <= 0:
            return
        self._unserved += self._deficit_rate * dt
        self._leak += self._leak_rate * dt
        self._pressure_time += self._mean_pressure * dt
        if self._amr_nodes:
            self._amr_volume += self._amr_rate * dt
        self._acc = to

    def _emit(self, limit: float, inclusive: bool, out: list[Reading]) -> None:
        """Readings of every boundary before `limit` (or at it), in time order."""
        while self._groups:
            group = min(self._groups, key=lambda g: self._next_reading[g.kind])
            boundary = self._next_reading[group.kind]
            if boundary > limit or (boundary == limit and not inclusive):
                return
            self._integrate(boundary)
            out.extend(self._read(group, float(boundary)))
            self._next_reading[group.kind] = boundary + group.interval

    def _read(self, group: SensorGroup, time: float) -> list[Reading]:
        if group.kind == "amr":
            volumes = self._amr_volume
            self._amr_volume = np.zeros(len(volumes))
            values = [{"numValue": round(float(v), 4)} for v in volumes]
        elif group.kind == "flow":
            values = [{"flow": round(q, 6)} for q in self._flows]
        else:
            heads = self._pressure[self._sensor_pos[group.kind]]
            name, digits = ("numValue", 2) if group.kind == "pressure" else ("height", 3)
            values = [{name: round(float(h), digits)} for h in heads]
        return [
            Reading(sensor.device_id, time, value)
            for sensor, value in zip(group.sensors, values, strict=True)
        ]

    def _goto(self, target: int, out: list[Reading]) -> None:
        """Step EPANET to `target` (solving wherever it stops on the way), then solve there."""
        tk = self._live()
        while self._t < target:
            if target - self._t != self._hstep:
                self._hstep = target - self._t
                tk.set_time_param(en.HYDSTEP, self._hstep)
            step = tk.next()
            if step <= 0:
                self._ended = True
                log.warning("EPANET reached the end of its horizon at t=%d s", self._t)
                return
            self._emit(self._t + step, False, out)
            self._integrate(self._t + step)
            self._t += step
            self._apply_events()
            self._solve()
        if self._resolve:  # a command at the very second of the last solution
            self._solve()

    def advance(self, until: float) -> list[Reading]:
        self._live()
        out: list[Reading] = []
        limit = math.floor(until + 1e-9)
        if self._resolve and not self._ended:
            self._goto(math.floor(self._now + 1e-9), out)
        while not self._ended:
            due = (self._t // self._step + 1) * self._step
            if self._next_event < len(self._events):
                due = min(due, self._events[self._next_event].time)
            if due > limit:
                break
            self._goto(due, out)
        self._emit(until, True, out)
        self._integrate(until)
        self._now = until
        return out

    # -- the Simulator protocol ---------------------------------------------------------

    def _live(self) -> Toolkit:
        if self._tk is None:
            raise RuntimeError("the water simulator is closed")
        return self._tk

    def sensors(self) -> Sequence[Sensor]:
        return [s for g in self._groups for s in g.sensors]

    def actuators(self) -> Sequence[Actuator]:
        return self._controls.actuators

    def assets(self) -> Sequence[Asset]:
        return self._assets

    def apply(self, actuator_id: str, command: str, value: Any) -> None:
        self._controls.apply(self._live(), actuator_id, command, value)
        self._resolve = True

    def state(self, actuator_id: str) -> dict[str, Value]:
        return self._controls.state(self._tk, actuator_id)

    def kpis(self) -> dict[str, float]:
        elapsed = self._acc
        mean = self._pressure_time / elapsed if elapsed > 0 else self._mean_pressure
        return {
            "water.min_pressure": round(self._min_pressure, 3),
            "water.mean_pressure": round(mean, 3),
            "water.unserved_demand": round(self._unserved, 4),
            "water.leak_volume": round(self._leak, 4),
        }

    @property
    def solver_warnings(self) -> int:
        return self._tk.warnings if self._tk else self._warnings_at_close

    def close(self) -> None:
        if self._tk is not None:
            for actuator in self._controls.actuators:
                self._controls.state(self._tk, actuator.actuator_id)  # kept for state()
            self._warnings_at_close = self._tk.warnings
            self._tk.close()
            self._tk = None

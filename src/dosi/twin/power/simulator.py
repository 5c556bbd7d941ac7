"""The power adapter: pandapower power flows on the common clock.

The grid is quasi-static: every `power_flow_interval` seconds the loads, PV, EV
chargers and batteries are set from their profiles at that time of day and one AC
power flow runs; the result holds until the next one. A reading at time T is the
power flow at T (the state the meter sees at the end of its interval), energies
(PV, losses, battery charge) integrate the piecewise-constant states in between.

Commands and what-if events take effect without waiting for the next scheduled
power flow: a command makes the next `advance()` run one at once (at the time the
command arrived), an event starting between boundaries runs one at its `at`. Those
extra power flows change energies and the extreme KPIs but are not readings (a
reading's time is a multiple of its interval) and are not counted as steps for
`power.voltage_violations`. Random draws (clouds, chargers) happen only at scheduled
power flows, so commands and events never shift the random stream of a seed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dosi.twin.model import (
    Actuator,
    Asset,
    CommandRejected,
    DemandSurge,
    PvDrop,
    Reading,
    Sensor,
    SimContext,
    Value,
)
from dosi.twin.power import readings as rd
from dosi.twin.power.config import PowerConfig
from dosi.twin.power.devices import (
    build_actuators,
    build_assets,
    build_sensors,
    storage_id,
    switch_id,
)
from dosi.twin.power.grid import Grid, build_grid
from dosi.twin.power.profiles import Chargers, Clouds, pv_factor

_EPS = 1e-9
SWITCH_STATES = ("open", "closed")


def open_power(config: PowerConfig, ctx: SimContext) -> PowerSimulator:
    return PowerSimulator(config, ctx)


class PowerSimulator:
    """CIGRE MV on pandapower; see the module docstring for the timing rules."""

    domain = "power"

    def __init__(self, config: PowerConfig, ctx: SimContext) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pandapower as pp
            from pandapower.powerflow import LoadflowNotConverged

        self._pp, self._not_converged = pp, LoadflowNotConverged
        self.config, self.ctx = config, ctx
        self.grid: Grid = build_grid(config)
        self._interval = config.power_flow_interval
        every = config.intervals
        self._every = {
            kind: max(1, round(getattr(every, kind) / self._interval))
            for kind in ("bus", "line", "pv", "ev")
        }
        self._sensors = build_sensors(self.grid, config, ctx.placement)
        self._actuators = {a.actuator_id: a for a in build_actuators(self.grid, ctx.placement)}
        self._assets = build_assets(self.grid, ctx.placement)
        self._storage_row = {storage_id(int(r)): i for i, r in enumerate(self.grid.storage)}
        self._switch_row = {switch_id(int(r)): int(r) for r in self.grid.switches}

        net = self.grid.net
        self._vn_kv = net.bus["vn_kv"].to_numpy(dtype=float)
        self._ev_kw = np.array([s.max_power_kw for s in config.ev.stations], dtype=float)
        if len(self.grid.wind):
            rows = net.sgen.index[self.grid.wind]
            net.sgen.loc[rows, "p_mw"] = net.sgen.loc[rows, "sn_mva"] * config.wind_output
        self._rating = self.grid.storage_rating
        self._setpoint = np.zeros(len(self.grid.storage))  # MW, + discharges into the grid
        self._actual = np.zeros(len(self.grid.storage))
        self._soc = self.grid.storage_capacity * config.storage.initial_soc / 100

        self._pv_drops = sorted((e for e in ctx.events if isinstance(e, PvDrop)), key=_at)
        self._surges = sorted((e for e in ctx.events if isinstance(e, DemandSurge)), key=_at)
        starts = {e.at for e in self._pv_drops} | {e.at for e in self._surges}
        # an event starting between power-flow boundaries gets a power flow of its own
        self._event_times = sorted(t for t in starts if t > 0 and not _on_grid(t, self._interval))

        self._clouds = Clouds(ctx.seed, config.pv.cloud_flicker)
        self._chargers = Chargers(
            ctx.seed,
            [s.count for s in config.ev.stations],
            config.ev.dwell_minutes * 60,
            config.ev.profile.at(ctx.start_of_day),
        )
        self._cloud = self._clouds.draw()
        self._pv_p = np.zeros(len(self.grid.pv))  # MW as set
        self._ev_p = np.zeros(len(self.grid.ev))
        self._pv_kwh = np.zeros(len(self.grid.pv))  # cumulative per unit
        self._result = rd.Snapshot.flat(len(net.bus), len(net.line))
        self._warm = False  # last power flow converged: start the next from its result
        self._k = 0  # scheduled power flows done after t = 0
        self._now = 0.0
        self._last_t = 0.0
        self._dirty = False
        self._closed = False
        self._kpi = {"max_loading": 0.0, "violations": 0, "min_vm": math.inf}
        self._kpi.update(pv_mwh=0.0, loss_mwh=0.0, nonconverged=0)
        self._power_flow(0.0, scheduled=False)

    # -- the Simulator protocol -------------------------------------------------------------

    def sensors(self) -> Sequence[Sensor]:
        return self._sensors

    def actuators(self) -> Sequence[Actuator]:
        return list(self._actuators.values())

    def assets(self) -> Sequence[Asset]:
        return self._assets

    def advance(self, until: float) -> list[Reading]:
        if self._closed:
            raise RuntimeError("the power simulator is closed")
        out: list[Reading] = []
        if self._dirty:
            self._dirty = False
            self._power_flow(self._now, scheduled=False)
        while True:
            boundary = (self._k + 1) * self._interval
            event = self._event_times[0] if self._event_times else math.inf
            if min(boundary, event) > until + _EPS:
                break
            if event < boundary:
                self._event_times.pop(0)
                self._power_flow(event, scheduled=False)
                continue
            self._k += 1
            self._power_flow(boundary, scheduled=True)
            out += self._readings(self._k, boundary)
        self._integrate(until)
        self._now = until
        return out

    def apply(self, actuator_id: str, command: str, value: Any) -> None:
        actuator = self._actuators[actuator_id]
        if command not in actuator.commands:
            raise KeyError(f"{actuator_id} has no command {command!r}")
        if actuator.entity_type == "Switch":
            if not isinstance(value, str) or value not in SWITCH_STATES:
                raise CommandRejected(f"commandedState is 'open' or 'closed', not {_show(value)}")
            row = self._switch_row[actuator_id]
            self.grid.net.switch.iat[row, self.grid.net.switch.columns.get_loc("closed")] = (
                value == "closed"
            )
        else:
            unit = self._storage_row[actuator_id]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CommandRejected(f"commandedActivePower is a number of kW, not {_show(value)}")
            limit = self._rating[unit] * 1000
            if not math.isfinite(value) or abs(value) > limit + _EPS:
                raise CommandRejected(
                    f"commandedActivePower must lie within ±{limit:g} kW (+ discharges), "
                    f"not {_show(value)}"
                )
            self._setpoint[unit] = float(value) / 1000
        self._dirty = True

    def state(self, actuator_id: str) -> dict[str, Value]:
        # Never a command's own name: the write-back would race a service's next command.
        actuator = self._actuators[actuator_id]
        if actuator.entity_type == "Switch":
            closed = bool(self.grid.net.switch["closed"].iat[self._switch_row[actuator_id]])
            return {"state": "closed" if closed else "open"}
        unit = self._storage_row[actuator_id]
        capacity = self.grid.storage_capacity[unit]
        return {
            "setpoint": round(float(self._setpoint[unit]) * 1000, 3),
            "activePower": round(float(self._actual[unit]) * 1000, 3),
            "stateOfCharge": round(float(self._soc[unit] / capacity * 100), 2),
        }

    def kpis(self) -> dict[str, float]:
        kpi = self._kpi
        return {
            "power.max_line_loading": round(float(kpi["max_loading"]), 3),
            "power.voltage_violations": float(kpi["violations"]),
            "power.min_voltage": round(float(kpi["min_vm"]), 5)
            if math.isfinite(kpi["min_vm"])
            else 0.0,
            "power.pv_energy": round(float(kpi["pv_mwh"]), 6),
            "power.losses": round(float(kpi["loss_mwh"]), 6),
            "power.nonconverged": float(kpi["nonconverged"]),
        }

    def close(self) -> None:
        self._closed = True

    # -- one power flow ---------------------------------------------------------------------

    def _power_flow(self, t: float, *, scheduled: bool) -> None:
        self._integrate(t)
        grid, net, config = self.grid, self.grid.net, self.config
        clock = self.ctx.start_of_day + t
        if scheduled:
            self._cloud = self._clouds.draw()
            self._chargers.step(config.ev.profile.at(clock), self._interval)
        surge = math.prod(max(0.0, e.factor) for e in self._surges if e.at <= t + _EPS)
        drop = math.prod(
            1 - min(1.0, max(0.0, e.fraction)) for e in self._pv_drops if e.at <= t + _EPS
        )

        factor = np.ones(len(net.load))
        factor[grid.residential] = config.residential_load.at(clock)
        factor[grid.commercial] = config.commercial_load.at(clock)
        p = grid.load_p * factor * surge
        q = grid.load_q * factor * surge
        self._ev_p = self._chargers.busy() * self._ev_kw / 1000 * surge
        p[grid.ev] = self._ev_p
        q[grid.ev] = 0.0  # chargers run at unity power factor
        net.load["p_mw"] = p
        net.load["q_mvar"] = q

        self._pv_p = grid.pv_peak * (pv_factor(clock, config.pv) * self._cloud * drop)
        if len(grid.pv):
            net.sgen.loc[net.sgen.index[grid.pv], "p_mw"] = self._pv_p

        if len(grid.storage):
            hours = self._interval / 3600
            capacity = grid.storage_capacity
            self._actual = np.clip(
                self._setpoint, -(capacity - self._soc) / hours, self._soc / hours
            )
            net.storage["p_mw"] = -self._actual  # pandapower counts storage as load

        if self._solve() and scheduled:
            low, high = config.voltage_band
            vm = self._result.vm
            outside = ~((vm >= low) & (vm <= high))  # a dead bus (NaN) is outside too
            self._kpi["violations"] += int(outside.sum())
        self._last_t = t

    def _solve(self) -> bool:
        """One AC power flow; on failure keep the last converged result and count it."""
        net = self.grid.net
        for init in ("results", "auto") if self._warm else ("auto",):
            try:
                self._pp.runpp(net, numba=False, init=init)
            except self._not_converged:
                continue
            self._result = rd.Snapshot.of(net)
            self._warm = True
            self._track_extremes()
            return True
        self._warm = False
        self._kpi["nonconverged"] += 1
        return False

    def _track_extremes(self) -> None:
        result = self._result
        if result.loading.size:
            loading = np.nan_to_num(result.loading, nan=0.0)
            self._kpi["max_loading"] = max(self._kpi["max_loading"], float(loading.max()))
        live = result.vm[~np.isnan(result.vm)]
        if live.size:
            self._kpi["min_vm"] = min(self._kpi["min_vm"], float(live.min()))

    def _integrate(self, t: float) -> None:
        """Energies of the state that held since the last power flow (or integration)."""
        dt = t - self._last_t
        if dt <= 0:
            return
        hours = dt / 3600
        energy = self._pv_p * hours
        self._pv_kwh += energy * 1000
        self._kpi["pv_mwh"] += float(energy.sum())
        self._kpi["loss_mwh"] += self._result.losses * hours
        if self._soc.size:
            self._soc = np.clip(self._soc - self._actual * hours, 0.0, self.grid.storage_capacity)
        self._last_t = t

    def _readings(self, k: int, t: float) -> list[Reading]:
        out: list[Reading] = []
        every, result = self._every, self._result
        if k % every["bus"] == 0:
            out += rd.bus_readings(result, self._vn_kv, t)
        if k % every["line"] == 0:
            out += rd.line_readings(result, t)
        if k % every["pv"] == 0:
            out += rd.pv_readings(self.grid.pv, self._pv_p, self._pv_kwh, t)
        if k % every["ev"] == 0:
            names = [s.name for s in self.config.ev.stations]
            out += rd.ev_readings(names, self._ev_p, t)
        return out


def _at(event: PvDrop | DemandSurge) -> float:
    return event.at


def _on_grid(t: float, interval: float) -> bool:
    return abs(t / interval - round(t / interval)) < 1e-9


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

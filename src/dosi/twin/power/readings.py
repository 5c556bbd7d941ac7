"""Power-flow results turned into Smart Data Models readings.

A `Snapshot` copies the result tables to numpy once per power flow, so a failed
power flow can never leave half-written results behind (readings repeat the last
converged state) and readings are built from arrays, rounded in one vector pass.
Units follow the schemas: `ThreePhaseAcMeasurement` in V, A, W and VAr per phase
(balanced: a third of the three-phase power each), `SolarEnergy` in kW and kWh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dosi.twin.model import Reading, Value
from dosi.twin.power.devices import (
    FREQUENCY,
    bus_sensor_id,
    ev_sensor_id,
    line_sensor_id,
    pv_sensor_id,
)

_SQRT3 = math.sqrt(3)


@dataclass(frozen=True)
class Snapshot:
    vm: np.ndarray  # pu per bus; NaN for a de-energised bus
    p_bus: np.ndarray  # MW drawn at each bus (load convention)
    q_bus: np.ndarray  # Mvar
    i_ka: np.ndarray  # per line, the larger end
    loading: np.ndarray  # percent per line
    p_line: np.ndarray  # MW entering each line at its from-bus
    q_line: np.ndarray
    losses: float  # MW in lines and transformers

    @classmethod
    def of(cls, net: Any) -> Snapshot:
        bus, line = net.res_bus, net.res_line
        losses = float(np.nansum(line["pl_mw"].to_numpy()))
        losses += float(np.nansum(net.res_trafo["pl_mw"].to_numpy()))
        return cls(
            vm=bus["vm_pu"].to_numpy(dtype=float, copy=True),
            p_bus=bus["p_mw"].to_numpy(dtype=float, copy=True),
            q_bus=bus["q_mvar"].to_numpy(dtype=float, copy=True),
            i_ka=line["i_ka"].to_numpy(dtype=float, copy=True),
            loading=line["loading_percent"].to_numpy(dtype=float, copy=True),
            p_line=line["p_from_mw"].to_numpy(dtype=float, copy=True),
            q_line=line["q_from_mvar"].to_numpy(dtype=float, copy=True),
            losses=losses,
        )

    @classmethod
    def flat(cls, buses: int, lines: int) -> Snapshot:
        """Before any converged power flow: nominal voltage, nothing flowing."""
        zeros = np.zeros(lines)
        return cls(np.ones(buses), np.zeros(buses), np.zeros(buses), zeros, zeros, zeros, zeros, 0)


def _phases(values: list[float]) -> list[dict[str, float]]:
    return [{"L1": v, "L2": v, "L3": v} for v in values]


def _clean(values: np.ndarray, digits: int) -> list[float]:
    cleaned: list[float] = np.round(np.nan_to_num(values, nan=0.0), digits).tolist()
    return cleaned


def bus_readings(result: Snapshot, vn_kv: np.ndarray, t: float) -> list[Reading]:
    volts = _clean(result.vm * vn_kv * 1000 / _SQRT3, 1)
    pu = _clean(result.vm, 4)
    p = _clean(result.p_bus * 1e6, 0)
    q = _clean(result.q_bus * 1e6, 0)
    p3 = _clean(result.p_bus * 1e6 / 3, 0)
    q3 = _clean(result.q_bus * 1e6 / 3, 0)
    out = []
    for bus, (v, a, b, c, d, e) in enumerate(
        zip(_phases(volts), pu, _phases(p3), _phases(q3), p, q, strict=True)
    ):
        values: dict[str, Value] = {
            "phaseVoltage": v,
            "voltagePu": a,
            "activePower": b,
            "reactivePower": c,
            "totalActivePower": d,
            "totalReactivePower": e,
            "frequency": FREQUENCY,
        }
        out.append(Reading(bus_sensor_id(bus), t, values))
    return out


def line_readings(result: Snapshot, t: float) -> list[Reading]:
    current = _phases(_clean(result.i_ka * 1000, 2))
    loading = _clean(result.loading, 2)
    p = _clean(result.p_line * 1e6, 0)
    q = _clean(result.q_line * 1e6, 0)
    return [
        Reading(
            line_sensor_id(row),
            t,
            {
                "current": i,
                "loadingPercentage": pct,
                "totalActivePower": a,
                "totalReactivePower": b,
            },
        )
        for row, (i, pct, a, b) in enumerate(zip(current, loading, p, q, strict=True))
    ]


def pv_readings(rows: np.ndarray, p_mw: np.ndarray, kwh: np.ndarray, t: float) -> list[Reading]:
    kw = _clean(p_mw * 1000, 2)
    total = _clean(kwh, 3)
    return [
        Reading(pv_sensor_id(int(row)), t, {"totalActivePower": a, "totalEnergyGenerated": e})
        for row, a, e in zip(rows, kw, total, strict=True)
    ]


def ev_readings(names: list[str], p_mw: np.ndarray, t: float) -> list[Reading]:
    total = _clean(p_mw * 1e6, 0)
    phase = _phases(_clean(p_mw * 1e6 / 3, 0))
    return [
        Reading(ev_sensor_id(name), t, {"activePower": ph, "totalActivePower": w})
        for name, ph, w in zip(names, phase, total, strict=True)
    ]

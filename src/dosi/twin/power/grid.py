"""The pandapower network of a scenario: CIGRE MV plus EV chargers, indexed by role.

Everything the simulator changes per power flow is kept as numpy index arrays into
pandapower's tables (`net.load.p_mw` rows for residential, commercial and EV load,
`net.sgen` rows for PV and wind), so a step is a few vector assignments, not a
loop over elements.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from dosi.twin.power.config import PowerConfig


@dataclass
class Grid:
    net: Any  # pandapowerNet (untyped)
    xy: dict[int, tuple[float, float]]  # bus -> CIGRE schematic coordinates
    residential: np.ndarray  # load rows
    commercial: np.ndarray
    load_p: np.ndarray  # peak P and Q of every load row (MW, Mvar)
    load_q: np.ndarray
    pv: np.ndarray  # sgen rows
    pv_peak: np.ndarray  # MW, after the scenario's peak scaling
    wind: np.ndarray
    ev: np.ndarray  # load rows of the EV stations, in config order
    storage: np.ndarray  # storage rows
    storage_rating: np.ndarray  # MW, either way
    storage_capacity: np.ndarray  # MWh
    switches: np.ndarray  # switch rows (line switches)
    lines: np.ndarray  # line rows
    buses: np.ndarray  # bus rows


def build_grid(config: PowerConfig) -> Grid:
    """The CIGRE MV benchmark with the scenario's DER set, PV scaling and EV stations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower as pp
        import pandapower.networks as pn

        net = pn.create_cigre_network_mv(with_der=config.der)
    xy = {int(i): _coords(geo) for i, geo in net.bus["geo"].items()}
    names = net.load["name"].astype(str)
    residential = np.flatnonzero(names.str.startswith("Load R").to_numpy())
    commercial = np.flatnonzero(names.str.startswith("Load CI").to_numpy())

    kinds = net.sgen["type"].astype(str).to_numpy()
    pv = np.flatnonzero(kinds == "PV")
    wind = np.flatnonzero(kinds == "WP")
    pv_peak = net.sgen["p_mw"].to_numpy(dtype=float)[pv] * config.pv.peak_scale
    net.sgen.loc[net.sgen.index[pv], "sn_mva"] = pv_peak

    ev_rows = []
    for station in config.ev.stations:
        row = pp.create_load(
            net,
            bus=station.bus,
            p_mw=0.0,
            q_mvar=0.0,
            name=f"EV {station.name}",
            sn_mva=station.count * station.max_power_kw / 1000,
        )
        ev_rows.append(net.load.index.get_loc(row))

    load_p = net.load["p_mw"].to_numpy(dtype=float).copy()  # EV rows: 0, set per step
    load_q = net.load["q_mvar"].to_numpy(dtype=float).copy()

    storage = np.arange(len(net.storage))
    rating = net.storage["max_p_mw"].to_numpy(dtype=float) if len(storage) else np.zeros(0)
    capacity = rating * config.storage.hours
    if len(storage):
        net.storage["p_mw"] = 0.0
        net.storage["max_e_mwh"] = capacity
        net.storage["soc_percent"] = config.storage.initial_soc

    switches = np.flatnonzero((net.switch["et"] == "l").to_numpy())
    return Grid(
        net=net,
        xy=xy,
        residential=residential,
        commercial=commercial,
        load_p=load_p,
        load_q=load_q,
        pv=pv,
        pv_peak=pv_peak,
        wind=wind,
        ev=np.array(ev_rows, dtype=int),
        storage=storage,
        storage_rating=rating,
        storage_capacity=capacity,
        switches=switches,
        lines=np.arange(len(net.line)),
        buses=np.arange(len(net.bus)),
    )


def _coords(geo: Any) -> tuple[float, float]:
    point = json.loads(geo) if isinstance(geo, str) else geo
    x, y = point["coordinates"]
    return float(x), float(y)


def near(xy: tuple[float, float], slot: int) -> tuple[float, float]:
    """A spot ~60 m from a bus (0.4 schematic units), one compass slot per device kind/index."""
    angle = math.radians(45 + 72 * slot)
    return xy[0] + 0.4 * math.cos(angle), xy[1] + 0.4 * math.sin(angle)


def along(a: tuple[float, float], b: tuple[float, float], share: float) -> tuple[float, float]:
    return a[0] + (b[0] - a[0]) * share, a[1] + (b[1] - a[1]) * share

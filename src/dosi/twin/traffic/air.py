"""Air quality per square cell, from the emissions SUMO computes for every vehicle.

Each step the adapter reads the CO2, CO, NOx and PMx emission rates of every edge
(internal junction edges included) and integrates them; an edge's mass is spread
over the cells its lanes cross, in proportion to its length in each. At the end of
an interval each cell reports the masses emitted in it and concentrations from a
street-box model: the cell is a box `cell_size` wide and `mixing_height` high,
flushed by a wind of `wind_speed`, so at steady state the traffic adds

    c = Q / (wind_speed x mixing_height x cell_size)       (Q: mean emission, g/s)

on top of a background level. NO2 is taken as 25 % of the NOx increment (primary
NO2 plus fast NO titration), PM10 as the exhaust PMx alone (no road dust), CO2 in
ppm at 25 °C. It is a screening model — a reading moves with the traffic in its
cell, not a dispersion study.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dosi.twin.geo import Placement
from dosi.twin.model import Measure, Reading, Sensor, Value
from dosi.twin.traffic.config import AirConfig
from dosi.twin.traffic.roadnet import Point, RoadNet

POLLUTANTS = ("co2", "co", "nox", "pmx")  # rows of the accumulators (SUMO reports mg/s)
NO2_SHARE = 0.25
CO2_PPM_PER_MG_M3 = 24.45 / 44.01  # molar volume at 25 °C / molar mass of CO2
AIR_MEASURES = (
    Measure("co2", "59"),  # ppm
    Measure("no2", "GQ"),  # µg/m3
    Measure("pm10", "GQ"),
    Measure("co", "GQ"),
    Measure("co2Emitted", "KGM"),
    Measure("noxEmitted", "GRM"),
    Measure("pmxEmitted", "GRM"),
    Measure("coEmitted", "GRM"),
)


@dataclass(frozen=True)
class Cell:
    device_id: str
    column: int
    row: int
    x0: float  # south-west corner, local metres
    y0: float


def _samples(shape: tuple[Point, ...], spacing: float = 10.0) -> list[Point]:
    """Points every `spacing` metres along a polyline (segment midpoints)."""
    points: list[Point] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(shape):
        n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / spacing))
        points += [
            (x0 + (x1 - x0) * (i + 0.5) / n, y0 + (y1 - y0) * (i + 0.5) / n) for i in range(n)
        ]
    return points or list(shape[:1])  # a one-point shape, or none


class AirGrid:
    """The cells, the edge -> cell share matrix and the emission accumulators."""

    def __init__(self, net: RoadNet, config: AirConfig, sumo_edges: list[str]) -> None:
        self.config = config
        internal: dict[str, tuple[Point, ...]] = {}
        for lane_id, shape in sorted(net.internal_lanes.items()):
            internal.setdefault(lane_id.rpartition("_")[0], shape)
        shapes = {
            e: _samples(net.edges[e].lanes[0].shape if e in net.edges else internal.get(e, ()))
            for e in sumo_edges
        }
        every = [p for points in shapes.values() for p in points]
        if not every:
            raise ValueError("the network has no road geometry to lay air-quality cells on")
        size = config.cell_size
        self.x0 = math.floor(min(p[0] for p in every) / size) * size
        self.y0 = math.floor(min(p[1] for p in every) / size) * size
        keys: set[tuple[int, int]] = set()
        weights: list[tuple[int, tuple[int, int], float]] = []
        for e, edge_id in enumerate(sumo_edges):
            points = shapes[edge_id]
            for x, y in points:
                key = (int((x - self.x0) // size), int((y - self.y0) // size))
                keys.add(key)
                weights.append((e, key, 1.0 / len(points)))
        ordered = sorted(keys)
        index = {key: i for i, key in enumerate(ordered)}
        self.cells = [
            Cell(f"aqo-c{c}r{r}", c, r, self.x0 + c * size, self.y0 + r * size) for c, r in ordered
        ]
        self.share = np.zeros((len(sumo_edges), len(ordered)))  # edge x cell, rows sum to 1
        for e, key, w in weights:
            self.share[e, index[key]] += w
        self.edges = sumo_edges
        self.totals = np.zeros((len(POLLUTANTS), len(sumo_edges)))  # mg over the interval
        self.run_co2_mg = 0.0

    def step(self, sumo: Any, step_length: float) -> None:
        """Integrate the last step's emission rates (mg/s) of every edge."""
        edge = sumo.edge
        rates = np.array(
            [
                [edge.getCO2Emission(e) for e in self.edges],
                [edge.getCOEmission(e) for e in self.edges],
                [edge.getNOxEmission(e) for e in self.edges],
                [edge.getPMxEmission(e) for e in self.edges],
            ]
        )
        self.totals += rates * step_length

    def sensors(self, placement: Placement) -> list[Sensor]:
        size = self.config.cell_size
        return [
            Sensor(
                device_id=cell.device_id,
                entity_type="AirQualityObserved",
                location=placement.polygon(
                    [
                        (cell.x0, cell.y0),
                        (cell.x0 + size, cell.y0),
                        (cell.x0 + size, cell.y0 + size),
                        (cell.x0, cell.y0 + size),
                    ]
                ),
                interval=self.config.interval,
                measures=AIR_MEASURES,
                controlled_property=("airPollution",),
                static={
                    "name": f"Traffic air quality cell {cell.column},{cell.row} "
                    f"({size:g} m square)",
                    "typeofLocation": "outdoor",
                },
            )
            for cell in self.cells
        ]

    def readings(self, now: float) -> list[Reading]:
        """Masses and street-box concentrations per cell for the interval ending at `now`."""
        cfg = self.config
        per_cell = self.totals @ self.share  # mg per pollutant and cell
        self.run_co2_mg += float(self.totals[0].sum())
        self.totals[:] = 0.0
        ventilation = cfg.wind_speed * cfg.mixing_height * cfg.cell_size  # m3/s
        readings = []
        for i, cell in enumerate(self.cells):
            co2, co, nox, pmx = (float(v) for v in per_cell[:, i])
            # mg over the interval -> mean mg/s -> mg/m3 (= 1000 µg/m3) in the box
            mg_m3 = [m / cfg.interval / ventilation for m in (co2, co, nox, pmx)]
            values: dict[str, Value] = {
                "co2": round(cfg.background_co2 + mg_m3[0] * CO2_PPM_PER_MG_M3, 2),
                "co": round(cfg.background_co + mg_m3[1] * 1000, 1),
                "no2": round(cfg.background_no2 + NO2_SHARE * mg_m3[2] * 1000, 2),
                "pm10": round(cfg.background_pm10 + mg_m3[3] * 1000, 3),
                "co2Emitted": round(co2 / 1e6, 3),
                "coEmitted": round(co / 1e3, 2),
                "noxEmitted": round(nox / 1e3, 2),
                "pmxEmitted": round(pmx / 1e3, 3),
            }
            readings.append(Reading(device_id=cell.device_id, time=now, values=values))
        return readings

    def co2_kg(self) -> float:
        """CO2 emitted so far in the whole run (intervals done plus the open one)."""
        return (self.run_co2_mg + float(self.totals[0].sum())) / 1e6

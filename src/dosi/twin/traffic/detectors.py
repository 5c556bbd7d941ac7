"""Induction loops (SUMO E1 detectors) as TrafficFlowObserved sensors.

One loop per incoming lane of every signalised junction, `distance` metres before
the stop line. SUMO writes its own XML output for them (the reference the tests
compare with); the readings are computed from the per-step vehicle data the loops
expose, with SUMO's own definitions so they match that file exactly:

- intensity: vehicles that fully passed the loop in the interval (`nVehContrib`);
  a vehicle that leaves the loop sideways (lane change, arrival) is not counted.
- occupancy: share of the interval during which a vehicle was over the loop (0..1).
- averageVehicleSpeed: mean passing speed (km/h) of the counted vehicles, each
  (vehicle length / time over the loop). Omitted when no vehicle passed: a loop
  measures no speed then, and 0 would read as a standstill.
- congested: occupancy at or above `congested_occupancy` (0.5 by default), i.e. a
  queue stood over the loop for most of the interval — the queue no longer clears
  within one green 30 m upstream of the stop line.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dosi.twin.geo import Placement
from dosi.twin.model import Measure, Reading, Sensor, Value
from dosi.twin.traffic.config import DetectorConfig
from dosi.twin.traffic.roadnet import Point, RoadNet

LOOP_MEASURES = (
    Measure("intensity"),
    Measure("occupancy", "C62"),  # a fraction (unit "one")
    Measure("averageVehicleSpeed", "KMH"),
    Measure("congested"),
)


@dataclass(frozen=True)
class Loop:
    loop_id: str  # also the sensor's device id
    junction: str
    lane: str
    edge: str
    position: float  # metres from the lane's start
    point: Point


def point_along(shape: tuple[Point, ...], distance: float) -> Point:
    """The point `distance` metres along a polyline (clamped to its ends)."""
    remaining = max(distance, 0.0)
    for (x0, y0), (x1, y1) in itertools.pairwise(shape):
        step = math.hypot(x1 - x0, y1 - y0)
        if step > 0 and remaining <= step:
            f = remaining / step
            return (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)
        remaining -= step
    return shape[-1]


def layout_loops(net: RoadNet, config: DetectorConfig) -> list[Loop]:
    loops = []
    for junction in sorted(net.signalised(), key=lambda j: j.junction_id):
        for lane_id in junction.incoming_lanes:
            lane = net.lane(lane_id)
            position = max(lane.length - config.distance, 0.1)
            loops.append(
                Loop(
                    loop_id=f"tfo-{junction.junction_id}-{lane_id}",
                    junction=junction.junction_id,
                    lane=lane_id,
                    edge=lane_id.rpartition("_")[0],
                    position=position,
                    point=point_along(lane.shape, position),
                )
            )
    return loops


def write_loops(loops: list[Loop], period: float, output: Path, path: Path) -> None:
    """The additional file declaring the loops, with SUMO's own aggregated output."""
    root = ET.Element("additional")
    for loop in loops:
        ET.SubElement(
            root,
            "inductionLoop",
            id=loop.loop_id,
            lane=loop.lane,
            pos=f"{loop.position:.2f}",
            period=f"{period:g}",
            file=str(output),
        )
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")


def loop_sensors(
    loops: list[Loop], net: RoadNet, config: DetectorConfig, placement: Placement, scenario: str
) -> list[Sensor]:
    sensors = []
    for loop in loops:
        edge = net.edges[loop.edge]
        lane = net.lane(loop.lane)
        static: dict[str, Value] = {
            "name": f"{edge.name} {edge.source}->{edge.target} lane {lane.index + 1} "
            f"at {loop.junction}",
            "laneId": lane.index + 1,  # 1 = rightmost lane, counting leftwards
            "laneDirection": "forward",  # every SUMO edge is one-way along its geometry
            "refRoadSegment": f"urn:ngsi-ld:RoadSegment:{scenario}:road-{loop.edge}",
            "sumoLane": loop.lane,  # matches the signal's linkLanes: which phases it feeds
            "refTrafficSignal": f"urn:ngsi-ld:TrafficSignal:{scenario}:tls-{loop.junction}",
        }
        sensors.append(
            Sensor(
                device_id=loop.loop_id,
                entity_type="TrafficFlowObserved",
                location=placement.point(*loop.point),
                interval=config.interval,
                measures=LOOP_MEASURES,
                controlled_property=("trafficFlow",),
                static=static,
            )
        )
    return sensors


@dataclass
class _Tally:
    passed: int = 0
    speed_sum: float = 0.0  # m/s
    occupied: float = 0.0  # seconds with a vehicle over the loop
    left_last_step: frozenset[str] = frozenset()


@dataclass
class LoopCounter:
    """Folds each step's loop data into per-interval figures, the way SUMO's E1 output does."""

    loops: list[Loop]
    config: DetectorConfig
    _tallies: dict[str, _Tally] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tallies = {loop.loop_id: _Tally() for loop in self.loops}

    def step(self, sumo: Any, now: float, step_length: float) -> None:
        """Call after every SUMO step that ended at `now`."""
        begin = now - step_length
        get_data = sumo.inductionloop.getVehicleData
        for loop_id, tally in self._tallies.items():
            data = get_data(loop_id)
            if not data and not tally.left_last_step:
                continue
            left = set()
            for vehicle, length, entry, leave, _type in data:
                start = max(entry, begin)
                if leave < 0:  # still over the loop
                    tally.occupied += max(now - start, 0.0)
                    continue
                left.add(vehicle)
                if vehicle in tally.left_last_step:  # SUMO reports a leave for two steps
                    continue
                tally.occupied += max(min(leave, now) - start, 0.0)
                if leave >= now - 1e-9:  # left sideways at the step's end: not a pass
                    continue
                tally.passed += 1
                tally.speed_sum += length / max(leave - entry, 1e-9)
            tally.left_last_step = frozenset(left)

    def readings(self, now: float) -> list[Reading]:
        """The interval that ends at `now`; resets the tallies."""
        readings = []
        for loop_id, tally in self._tallies.items():
            occupancy = min(tally.occupied / self.config.interval, 1.0)
            values: dict[str, Value] = {
                "intensity": tally.passed,
                "occupancy": round(occupancy, 3),
                "congested": occupancy >= self.config.congested_occupancy,
            }
            if tally.passed:
                values["averageVehicleSpeed"] = round(tally.speed_sum / tally.passed * 3.6, 1)
            readings.append(Reading(device_id=loop_id, time=now, values=values))
            tally.passed, tally.speed_sum, tally.occupied = 0, 0.0, 0.0
        return readings

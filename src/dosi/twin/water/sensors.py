"""Virtual SCADA and metering devices on the network: what they are and what they report.

Four kinds, each reporting at its own interval (one reading per device per interval,
stamped at the interval's end):

- pressure sensors (junction tags "PRESSURE SENSOR") -> `DeviceMeasurement`,
  controlledProperty "pressure", `numValue` = pressure head in metres (MTR), as L-Town's
  own SCADA data and most utilities' telemetry give it (1 m ≈ 9.81 kPa);
- AMR meters (tags "AMR") -> `DeviceMeasurement`, controlledProperty "waterConsumption",
  `numValue` = m3 (MTQ) delivered to the node's consumers over the interval, what a smart
  meter's index advances by (the volume a burst at that node loses is not metered);
- flow meters (link tags "FLOW SENSOR") -> `WaterObserved.flow` in m3/s (MQS), the
  magnitude (the schema's flow is >= 0);
- tank level sensors (tank tags "LEVEL SENSOR") -> `WaterObserved.height`, the water
  depth above the tank bottom in metres (MTR).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dosi.twin.geo import Placement
from dosi.twin.model import Measure, Sensor, Value
from dosi.twin.water.config import SensorConfig
from dosi.twin.water.network import Network

Kind = Literal["pressure", "flow", "level", "amr"]
KINDS: tuple[Kind, ...] = ("pressure", "flow", "level", "amr")


@dataclass(frozen=True)
class SensorGroup:
    """The sensors of one kind: they share an interval and are read together."""

    kind: Kind
    interval: int
    elements: tuple[str, ...]  # node or link ids, aligned with `sensors`
    sensors: tuple[Sensor, ...]


def _check_extra(net: Network, field: str, ids: tuple[str, ...], ok: Callable[[str], bool]) -> None:
    for element in ids:
        if not ok(element):
            raise ValueError(
                f"water.sensors.{field}: {element!r} is not a suitable element of {net.source.name}"
            )


def _elements(net: Network, config: SensorConfig) -> dict[Kind, tuple[str, ...]]:
    wn = net.wn
    tanks = set(wn.tank_name_list)
    _check_extra(net, "extra_pressure", config.extra_pressure, net.has_node)
    _check_extra(net, "extra_flow", config.extra_flow, net.has_link)
    _check_extra(net, "extra_level", config.extra_level, tanks.__contains__)
    _check_extra(net, "extra_amr", config.extra_amr, net.is_junction)
    tags = net.tags if config.from_tags else None

    def merged(
        tagged: tuple[str, ...], extra: tuple[str, ...], ok: Callable[[str], bool]
    ) -> tuple[str, ...]:
        # a tag naming an element the model lacks (a stale comment) is skipped, not fatal
        return tuple(dict.fromkeys([*(e for e in tagged if ok(e)), *extra]))

    return {
        "pressure": merged(tags.pressure if tags else (), config.extra_pressure, net.has_node),
        "flow": merged(tags.flow if tags else (), config.extra_flow, net.has_link),
        "level": merged(tags.level if tags else (), config.extra_level, tanks.__contains__),
        "amr": merged(tags.amr if tags else (), config.extra_amr, net.is_junction),
    }


def _device(net: Network, placement: Placement, kind: Kind, element: str, interval: int) -> Sensor:
    static: dict[str, Value]
    if kind == "flow":
        location = placement.point(*net.link_midpoint(element))
    else:
        location = placement.point(*net.node_xy(element))
    if kind == "pressure":
        entity, measures, prop = "DeviceMeasurement", (Measure("numValue", "MTR"),), "pressure"
        static = {"name": f"{element} pressure", "measurementType": "pressure", "unit": "MTR"}
    elif kind == "amr":
        entity, measures, prop = (
            "DeviceMeasurement",
            (Measure("numValue", "MTQ"),),
            "waterConsumption",
        )
        static = {
            "name": f"{element} water meter",
            "measurementType": "consumptionOverInterval",
            "unit": "MTQ",
        }
    elif kind == "flow":
        entity, measures, prop = "WaterObserved", (Measure("flow", "MQS"),), "flow"
        static = {"name": f"{element} flow meter"}
    else:
        entity, measures, prop = "WaterObserved", (Measure("height", "MTR"),), "fillingLevel"
        static = {"name": f"{element} level"}
    if entity == "DeviceMeasurement":
        static["controlledProperty"] = prop
    return Sensor(
        device_id=net.ids(f"water-{kind}", element),
        entity_type=entity,
        location=location,
        interval=float(interval),
        measures=measures,
        controlled_property=(prop,),
        static=static,
    )


def plan_sensors(net: Network, config: SensorConfig, placement: Placement) -> list[SensorGroup]:
    """The sensor groups of this network: tagged elements plus the configured extras."""
    intervals: dict[Kind, int] = {
        "pressure": config.pressure_interval,
        "flow": config.flow_interval,
        "level": config.level_interval,
        "amr": config.amr_interval,
    }
    groups = []
    for kind, elements in _elements(net, config).items():
        if not elements:
            continue
        sensors = tuple(_device(net, placement, kind, e, intervals[kind]) for e in elements)
        groups.append(SensorGroup(kind, intervals[kind], elements, sensors))
    return groups

"""What every simulator adapter hands the engine: sensors, readings, actuators, assets, events.

Adapters speak only these types, so the engine, the hub publisher and the what-if
runner never learn a simulator's own API. Geometries are GeoJSON in WGS84
(already placed on the map by `dosi.twin.geo.Placement`); times are simulated
seconds since the scenario's start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dosi.twin.geo import Placement

Geometry = dict[str, Any]  # GeoJSON geometry, WGS84 lon/lat
Value = float | int | str | bool | dict[str, Any] | list[str]


@dataclass(frozen=True)
class Measure:
    """One quantity a sensor reports: a Smart Data Models attribute name and its UN/CEFACT unit."""

    name: str
    unit_code: str | None = None


@dataclass(frozen=True)
class Sensor:
    """A virtual field device. Its observation entity is `urn:ngsi-ld:<entity_type>:<scenario>:<device_id>`."""

    device_id: str  # unique in the scenario; letters, digits and _.:~- (an MQTT topic level)
    entity_type: str  # Smart Data Models type of the observation entity
    location: Geometry
    interval: float  # simulated seconds between readings
    measures: tuple[Measure, ...]
    controlled_property: tuple[str, ...]  # for the Device entity (Smart Data Models vocabulary)
    static: Mapping[str, Value] = field(default_factory=dict)  # fixed attributes (name, laneId…)


@dataclass(frozen=True)
class Reading:
    """What one sensor measured over the interval that ended at `time`."""

    device_id: str
    time: float
    values: Mapping[str, Value]


@dataclass(frozen=True)
class Actuator:
    """Something services may command through the hub (a signal, a valve, a storage unit).

    Its entity is `urn:ngsi-ld:<entity_type>:<scenario>:<actuator_id>`; services write one
    of `commands` (attribute names); the twin applies it and writes `state()` back.
    """

    actuator_id: str
    entity_type: str
    location: Geometry
    commands: tuple[str, ...]
    static: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Asset:
    """A static network element drawn on the map (road, pipe, line, bus…), published once."""

    asset_id: str
    entity_type: str
    location: Geometry
    static: Mapping[str, Value] = field(default_factory=dict)


class CommandRejected(ValueError):
    """A command the actuator cannot apply (unknown phase, setpoint out of range…): one line why."""


# -- what-if events (applied by the adapter of their domain; others ignore them) -------------


@dataclass(frozen=True)
class RoadClosure:
    edge: str  # SUMO edge id
    at: float = 0.0


@dataclass(frozen=True)
class PipeBurst:
    node: str  # EPANET junction id
    at: float = 0.0
    emitter_coefficient: float = 0.0  # 0: the adapter's default burst size


@dataclass(frozen=True)
class PvDrop:
    fraction: float = 0.7  # share of PV output lost (cloud front, inverter trips)
    at: float = 0.0


@dataclass(frozen=True)
class DemandSurge:
    factor: float = 1.3  # multiplies traffic demand, water demand and electric load
    at: float = 0.0


Event = RoadClosure | PipeBurst | PvDrop | DemandSurge


class Simulator(Protocol):
    """One simulator on the common clock. Built with its scenario section, placement, seed, events."""

    domain: str  # "traffic" | "water" | "power"

    def sensors(self) -> Sequence[Sensor]: ...

    def actuators(self) -> Sequence[Actuator]: ...

    def assets(self) -> Sequence[Asset]: ...

    def advance(self, until: float) -> list[Reading]:
        """Run up to simulated time `until`; return the readings whose interval ended on the way."""
        ...

    def apply(self, actuator_id: str, command: str, value: Any) -> None:
        """Apply a command before the next step; raises CommandRejected (or KeyError if unknown)."""
        ...

    def state(self, actuator_id: str) -> dict[str, Value]:
        """The state actually applied (attribute name -> value), written back to the hub."""
        ...

    def kpis(self) -> dict[str, float]:
        """Key figures so far (names in `dosi.twin.kpi.KPI_LABELS`)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SimContext:
    """What every adapter is built with besides its own scenario section."""

    scenario: str  # scenario name, part of every entity id
    base_dir: Path  # the scenario file's folder: relative paths in it resolve here
    workdir: Path  # a private scratch folder for generated files and simulator outputs
    placement: Placement
    seed: int
    start_of_day: float  # simulated seconds after local midnight at t = 0
    step: float  # the common clock's step, seconds
    duration: float  # seconds the run will last (adapters may pre-generate demand for it)
    events: tuple[Event, ...] = ()

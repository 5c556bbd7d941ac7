"""The `[water]` scenario section: network file, hydraulic step, sensors, demand model.

Defaults are the eco-delta settings (L-Town, BattLeDIM 2020), so `WaterConfig()` alone
runs the built-in district. Bounds are checked here so that a typo in a scenario fails
before EPANET starts, with a message naming the field.

Units: pressures and heads in metres of water, times in seconds, emitter coefficients
in L/s per sqrt(m) (the adapter hands EPANET a copy of the network in LPS units, whatever
the source file used).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from dosi.twin.config import PlacementConfig, Section

Interval = Annotated[int, Field(ge=1, le=86_400)]  # whole seconds: EPANET's clock is integral
Ids = tuple[str, ...]

# L-Town's coordinates span x 135..2835 m, y 77..1618 m: centred on the scenario origin at
# true scale (pipe lengths stay consistent with the drawn map), the network covers the
# ~2 km road grid of eco-delta and spills past it east and west as a town's mains do.
LTOWN_CENTRE = (-1485.0, -848.0)


class SensorConfig(Section):
    """Which nodes and links carry sensors, and how often each kind reports.

    With `from_tags` the network file's own comments decide (L-Town marks junctions
    ";AMR", ";PRESSURE SENSOR" or ";AMR & PRESSURE SENSOR", tank T1 ";LEVEL SENSOR" and
    p227, p235 and PUMP_1 ";FLOW SENSOR"); the `extra_*` lists add sensors by element id.
    Pressure, flow and tank level are SCADA-like (every minute); AMR meters report the
    volume consumed over their interval, every 15 minutes as smart meters commonly do.
    """

    from_tags: bool = True
    pressure_interval: Interval = 60
    flow_interval: Interval = 60
    level_interval: Interval = 60
    amr_interval: Interval = 900
    extra_pressure: Ids = ()  # node ids (junction, tank or reservoir)
    extra_flow: Ids = ()  # link ids (pipe, pump or valve)
    extra_level: Ids = ()  # tank ids
    extra_amr: Ids = ()  # junction ids

    @field_validator("extra_pressure", "extra_flow", "extra_level", "extra_amr")
    @classmethod
    def _ids(cls, ids: Ids) -> Ids:
        if len(ids) > 10_000:
            raise ValueError("at most 10000 ids")
        for element in ids:
            if not element or len(element) > 31 or any(c in element for c in ' \t;"'):
                raise ValueError(f"not an EPANET id (1-31 characters, no blanks or ;): {element!r}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must not repeat")
        return ids


class DemandConfig(Section):
    """How consumers draw water: pressure-driven (PDA) by default, so that a burst or a
    closed valve shows up as demand that could not be served, not as negative pressure."""

    model: Literal["PDA", "DDA"] = "PDA"
    minimum_pressure: Annotated[float, Field(ge=0, le=100)] = 0.0  # m: no outflow below
    required_pressure: Annotated[float, Field(gt=0, le=200)] = 20.0  # m: full demand above
    pressure_exponent: Annotated[float, Field(gt=0, le=3)] = 0.5
    multiplier: Annotated[float, Field(gt=0, le=10)] = 1.0  # scales every demand pattern

    @model_validator(mode="after")
    def _pressures(self) -> DemandConfig:
        if self.required_pressure <= self.minimum_pressure:
            raise ValueError(
                "demand.required_pressure must be greater than demand.minimum_pressure"
            )
        return self


class WaterConfig(Section):
    """The water network's scenario section (EPANET through WNTR)."""

    network: str = "water/L-TOWN.inp"  # relative to the scenario's folder
    # Seconds between hydraulic solutions. EPANET solves L-Town in ~0.2 ms, so one minute
    # costs nothing and follows tank filling and pump switching closely; commands and
    # events are applied the moment they happen anyway (an extra solution at that second).
    # EPANET caps the step at the network's pattern step (L-Town: 300 s).
    hydraulic_step: Annotated[int, Field(ge=1, le=3600)] = 60
    sensors: SensorConfig = SensorConfig()
    demand: DemandConfig = DemandConfig()
    # Emitter coefficient of a PipeBurst that gives none, L/s per sqrt(m): 2.0 loses
    # about 11 L/s (40 m3/h) at L-Town's usual 30 m, a main burst rather than a weep.
    burst_coefficient: Annotated[float, Field(gt=0, le=100)] = 2.0
    placement: PlacementConfig = PlacementConfig(offset=LTOWN_CENTRE)

    @field_validator("network")
    @classmethod
    def _inp_file(cls, network: str) -> str:
        if not network.lower().endswith(".inp"):
            raise ValueError(f"an EPANET input file ending in .inp, got {network!r}")
        return network

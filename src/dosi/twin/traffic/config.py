"""The `[traffic]` scenario section: network, demand, detectors and air-quality cells.

Defaults are the eco-delta settings, so `TrafficConfig()` alone runs the built-in
district. Every bound is checked here so a scenario typo fails before SUMO starts,
with a message naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from dosi.twin.config import PlacementConfig, Profile, Section

# Weekday traffic on a Korean urban district: a sharp morning peak 07:30-08:30, a
# softer evening one, quiet nights (factors of the peak hourly rate).
WEEKDAY = Profile(
    points=(
        ("00:00", 0.08),
        ("05:00", 0.1),
        ("06:30", 0.45),
        ("07:30", 1.0),
        ("08:30", 1.0),
        ("09:30", 0.6),
        ("12:00", 0.55),
        ("17:00", 0.75),
        ("18:30", 0.85),
        ("20:00", 0.45),
        ("23:00", 0.15),
    )
)


class DemandConfig(Section):
    """Trips as a time-varying Poisson process: peak rate times the profile's factor."""

    peak_vehicles_per_hour: Annotated[float, Field(gt=0, le=20_000)] = 3000.0
    profile: Profile = WEEKDAY
    fringe_share: Annotated[float, Field(ge=0, le=1)] = 0.6  # through trips fringe -> fringe
    truck_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    delivery_share: Annotated[float, Field(ge=0, le=1)] = 0.08
    diesel_share: Annotated[float, Field(ge=0, le=1)] = 0.2  # among passenger cars

    @field_validator("delivery_share")
    @classmethod
    def _shares(cls, delivery: float, info: ValidationInfo) -> float:
        if delivery + info.data.get("truck_share", 0.0) > 1:
            raise ValueError("truck_share + delivery_share must not exceed 1")
        return delivery


class DetectorConfig(Section):
    """Induction loops on every incoming lane of every signalised junction."""

    interval: Annotated[float, Field(gt=0, le=3600)] = 60.0  # seconds per reading
    distance: Annotated[float, Field(gt=0, le=200)] = 30.0  # metres before the stop line
    congested_occupancy: Annotated[float, Field(gt=0, le=1)] = 0.5  # see detectors.py


class AirConfig(Section):
    """Square air-quality cells over the network, fed by SUMO's emissions (see air.py)."""

    cell_size: Annotated[float, Field(ge=100, le=5000)] = 500.0  # metres
    interval: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # Emission rates are read every `sample_every` s and held in between: a read of every
    # edge costs ~0.4 ms, half a SUMO step here; 5 s keeps interval totals within ~1%.
    sample_every: Annotated[float, Field(gt=0, le=300)] = 5.0
    mixing_height: Annotated[float, Field(gt=0, le=500)] = 15.0  # metres of the street box
    wind_speed: Annotated[float, Field(gt=0, le=30)] = 1.5  # m/s ventilating the cell
    background_co2: Annotated[float, Field(ge=0, le=2000)] = 420.0  # ppm
    background_no2: Annotated[float, Field(ge=0, le=500)] = 20.0  # µg/m3
    background_pm10: Annotated[float, Field(ge=0, le=500)] = 25.0  # µg/m3
    background_co: Annotated[float, Field(ge=0, le=20_000)] = 300.0  # µg/m3


class TrafficConfig(Section):
    network: str = "traffic/eco-delta.net.xml"  # relative to the scenario's folder
    demand: DemandConfig = DemandConfig()
    detectors: DetectorConfig = DetectorConfig()
    air: AirConfig = AirConfig()
    time_to_teleport: Annotated[float, Field(ge=0, le=3600)] = 300.0  # 0: never teleport
    rerouting_period: Annotated[float, Field(ge=0, le=3600)] = 300.0  # 0: routes fixed at entry
    placement: PlacementConfig = PlacementConfig(offset=(-750.0, -675.0))

    @field_validator("network")
    @classmethod
    def _net_file(cls, network: str) -> str:
        if not network.endswith(".net.xml"):
            raise ValueError(f"a SUMO network file ending in .net.xml, got {network!r}")
        return network

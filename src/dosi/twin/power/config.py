"""The `[power]` scenario section: grid, profiles, EV charging, PV, storage, sensors.

Defaults are the eco-delta settings, so `PowerConfig()` alone runs the built-in
district: the CIGRE MV benchmark feeder (20 kV, two feeders with tie switches)
with all its distributed resources. Every bound is checked here, so a scenario
typo fails before pandapower starts, with a message naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from dosi.twin.config import PlacementConfig, Profile, Section

MV_BUSES = range(1, 15)  # CIGRE MV: bus 0 is the 110 kV grid supply, 1..14 the 20 kV nodes
_ID = re.compile(r"^[A-Za-z0-9_~-]{1,40}$")

# Factors of each CIGRE load's peak (the benchmark gives peak demand). Residential load
# ramps up at breakfast and peaks in the evening; commercial (C/I) load ramps up as
# offices and shops open, 08:00-10:00, and stays high through the afternoon.
RESIDENTIAL = Profile(
    points=(
        ("00:00", 0.45),
        ("05:00", 0.38),
        ("06:30", 0.5),
        ("07:30", 0.68),
        ("09:00", 0.62),
        ("12:00", 0.55),
        ("17:00", 0.7),
        ("20:00", 0.95),
        ("23:00", 0.6),
    )
)
COMMERCIAL = Profile(
    points=(
        ("00:00", 0.3),
        ("06:00", 0.32),
        ("07:30", 0.5),
        ("09:00", 0.85),
        ("11:00", 0.95),
        ("15:00", 1.0),
        ("18:00", 0.75),
        ("21:00", 0.4),
    )
)
# Share of workplace chargers drawing power: commuters plug in 07:30-09:30, batteries
# fill by early afternoon, a few top-ups before leaving.
WORKPLACE_EV = Profile(
    points=(
        ("00:00", 0.02),
        ("06:30", 0.03),
        ("07:30", 0.25),
        ("08:30", 0.7),
        ("10:00", 0.75),
        ("12:00", 0.45),
        ("14:00", 0.35),
        ("17:00", 0.25),
        ("19:00", 0.08),
        ("22:00", 0.02),
    )
)


class EvStationConfig(Section):
    """A group of chargers on one MV bus (the MV/LV substation feeding the car park)."""

    name: str
    bus: Annotated[int, Field(ge=MV_BUSES.start, le=MV_BUSES.stop - 1)]
    max_power_kw: Annotated[float, Field(gt=0, le=1000)] = 50.0  # per charger
    count: Annotated[int, Field(ge=1, le=1000)] = 10

    @field_validator("name")
    @classmethod
    def _token(cls, name: str) -> str:
        if not _ID.match(name):
            raise ValueError("1-40 letters, digits and _~- (it is part of the device id)")
        return name


DEFAULT_STATIONS = (
    EvStationConfig(name="office-park-3", bus=3, max_power_kw=50.0, count=12),
    EvStationConfig(name="campus-7", bus=7, max_power_kw=22.0, count=24),
    EvStationConfig(name="hub-9", bus=9, max_power_kw=150.0, count=6),
    EvStationConfig(name="plaza-13", bus=13, max_power_kw=50.0, count=10),
    EvStationConfig(name="depot-14", bus=14, max_power_kw=22.0, count=20),
)


class EvConfig(Section):
    """EV charging: stations, the share of chargers in use over the day, how fast it changes."""

    stations: tuple[EvStationConfig, ...] = DEFAULT_STATIONS
    profile: Profile = WORKPLACE_EV
    dwell_minutes: Annotated[float, Field(gt=0, le=1440)] = (
        30.0  # mean time a charger keeps its state
    )

    @field_validator("stations")
    @classmethod
    def _unique(cls, stations: tuple[EvStationConfig, ...]) -> tuple[EvStationConfig, ...]:
        names = [s.name for s in stations]
        if len(set(names)) != len(names):
            raise ValueError("station names must be unique")
        return stations


class PvConfig(Section):
    """PV from a clear-sky sun at the site, scaled from CIGRE's (small) rooftop units."""

    peak_scale: Annotated[float, Field(gt=0, le=1000)] = 25.0  # x CIGRE's kWp per unit
    latitude: Annotated[float, Field(ge=-66, le=66)] = 35.1  # degrees north
    longitude: Annotated[float, Field(ge=-180, le=180)] = 128.905  # degrees east
    utc_offset_hours: Annotated[float, Field(ge=-12, le=14)] = 9.0  # KST: clock vs solar time
    day_of_year: Annotated[int, Field(ge=1, le=366)] = 172  # June 21; fixed, so runs repeat
    cloud_flicker: Annotated[float, Field(ge=0, le=1)] = 0.04  # std of the output dips


class StorageConfig(Section):
    """CIGRE's two batteries: capacity in hours of their power rating, initial charge."""

    hours: Annotated[float, Field(gt=0, le=24)] = 2.0
    initial_soc: Annotated[float, Field(ge=0, le=100)] = 50.0  # percent


class SensorIntervals(Section):
    """Seconds between readings; each a multiple of the power-flow interval."""

    bus: Annotated[float, Field(gt=0, le=3600)] = 60.0
    line: Annotated[float, Field(gt=0, le=3600)] = 60.0
    pv: Annotated[float, Field(gt=0, le=3600)] = 60.0
    ev: Annotated[float, Field(gt=0, le=3600)] = 60.0


class PowerConfig(Section):
    # "all": PV and wind plus fuel cells, CHP and the two batteries: the batteries are the
    # grid's only controllable units besides switches, so they are the storage actuators.
    grid: Literal["cigre-mv"] = "cigre-mv"
    der: Literal["pv_wind", "all"] = "all"
    power_flow_interval: Annotated[float, Field(gt=0, le=3600)] = 60.0  # seconds
    intervals: SensorIntervals = SensorIntervals()
    residential_load: Profile = RESIDENTIAL
    commercial_load: Profile = COMMERCIAL
    wind_output: Annotated[float, Field(ge=0, le=1)] = 0.3  # share of the turbine's rating
    ev: EvConfig = EvConfig()
    pv: PvConfig = PvConfig()
    storage: StorageConfig = StorageConfig()
    voltage_band: tuple[float, float] = (0.95, 1.05)  # pu, statutory band
    # CIGRE's schematic coordinates (x 1..10, y 3..16 units): 150 m a unit, turned a quarter
    # clockwise and centred on the origin, the feeder spans ~1.95 x 1.35 km of the district.
    placement: PlacementConfig = PlacementConfig(
        offset=(-1425.0, 825.0), scale=150.0, rotation=-90.0
    )

    @field_validator("voltage_band")
    @classmethod
    def _band(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if not 0.5 <= low < 1.0 < high <= 1.5:
            raise ValueError("voltage_band is [low, high] in pu with 0.5 <= low < 1 < high <= 1.5")
        return band

    @field_validator("intervals")
    @classmethod
    def _multiples(cls, intervals: SensorIntervals, info: ValidationInfo) -> SensorIntervals:
        step = info.data.get("power_flow_interval")
        if step is None:
            return intervals
        for name in ("bus", "line", "pv", "ev"):
            value = getattr(intervals, name)
            ratio = value / step
            if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(
                    f"intervals.{name} ({value:g} s) must be a multiple of "
                    f"power_flow_interval ({step:g} s)"
                )
        return intervals

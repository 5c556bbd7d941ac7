"""Scenario files: one TOML file describes a district (site, clock, hub link, simulators).

`load_scenario("eco-delta")` finds a built-in scenario; any other argument is a path.
Every problem is reported as one `ScenarioError` line naming the file and the field
(`traffic.demand.peak_vehicles_per_hour: Input should be greater than 0`), before any
simulator starts.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator

from dosi.twin.config import Section, clock_seconds
from dosi.twin.power.config import PowerConfig
from dosi.twin.traffic.config import TrafficConfig
from dosi.twin.water.config import WaterConfig

BUILTIN = {"eco-delta": "eco_delta"}
_NAME = re.compile(r"^[A-Za-z0-9_.~-]{1,64}$")
_SPEED = re.compile(r"^(\d+(\.\d+)?)x$")
MAX_HOURS = 24 * 7


class ScenarioError(ValueError):
    """A scenario that cannot be loaded: one line naming the file and the field."""


class ScenarioSection(Section):
    name: str
    title: str = ""
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 42

    @field_validator("name")
    @classmethod
    def _token(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("letters, digits and _.~- only (it is part of entity ids)")
        return name


class SiteConfig(Section):
    origin: tuple[float, float]  # lon, lat of the district's reference point
    timezone: str = "UTC"

    @field_validator("origin")
    @classmethod
    def _lonlat(cls, origin: tuple[float, float]) -> tuple[float, float]:
        lon, lat = origin
        if not (-180 <= lon <= 180 and -85 <= lat <= 85):
            raise ValueError("origin is [longitude, latitude] in degrees")
        return origin

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (an IANA name like Asia/Seoul)") from None
        return zone


class ClockConfig(Section):
    start: str = "07:00"  # simulated local time of day at t = 0
    step: Annotated[float, Field(gt=0, le=60)] = 1.0  # seconds of the common clock
    hours: Annotated[float, Field(gt=0, le=MAX_HOURS)] = 2.0
    speed: str = "max"  # "max", "realtime" or "<N>x"

    @field_validator("start")
    @classmethod
    def _time_of_day(cls, start: str) -> str:
        clock_seconds(start)
        return start

    @field_validator("speed")
    @classmethod
    def _speed(cls, speed: str) -> str:
        parse_speed(speed)
        return speed


class HubConfig(Section):
    transport: Literal["http", "mqtt", "batch"] = "http"
    apikey: str = "twin"  # the IoT agent service group of the scenario's sensors

    @field_validator("apikey")
    @classmethod
    def _apikey(cls, apikey: str) -> str:
        if not _NAME.match(apikey) or apikey in ("ul", "json"):
            raise ValueError("letters, digits and _.~- only, not 'ul' or 'json'")
        return apikey


class Scenario(Section):
    scenario: ScenarioSection
    site: SiteConfig
    clock: ClockConfig = ClockConfig()
    hub: HubConfig = HubConfig()
    traffic: TrafficConfig | None = None
    water: WaterConfig | None = None
    power: PowerConfig | None = None

    @property
    def name(self) -> str:
        return self.scenario.name

    def domains(self) -> list[str]:
        return [d for d in ("traffic", "water", "power") if getattr(self, d) is not None]


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    base_dir: Path  # relative paths in the scenario resolve here
    source: Path


def parse_speed(text: str) -> float | None:
    """'max' -> None (as fast as possible), 'realtime' -> 1.0, '50x' -> 50.0."""
    if text == "max":
        return None
    if text == "realtime":
        return 1.0
    match = _SPEED.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"speed is 'max', 'realtime' or a factor like '50x', got {text!r}")
    return float(match.group(1))


def builtin_path(name: str) -> Path:
    folder = resources.files("dosi.twin") / "scenarios" / BUILTIN[name]
    return Path(str(folder)) / "scenario.toml"


def load_scenario(ref: str | Path) -> LoadedScenario:
    """A built-in scenario by name, or a scenario file (a folder means its scenario.toml)."""
    if isinstance(ref, str) and ref in BUILTIN:
        path = builtin_path(ref)
    else:
        path = Path(ref)
        if path.is_dir():
            path = path / "scenario.toml"
        if not path.is_file():
            known = ", ".join(sorted(BUILTIN))
            raise ScenarioError(f"{ref}: no such scenario file (built-in scenarios: {known})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path.name}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{path.name}: {describe(exc)}") from None
    if not scenario.domains():
        raise ScenarioError(f"{path.name}: a scenario needs [traffic], [water] or [power]")
    return LoadedScenario(scenario=scenario, base_dir=path.parent, source=path)


def describe(exc: ValidationError) -> str:
    """The first problem as `dotted.field: message` (and how many more there are)."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field (check its spelling and the scenario documentation)"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"

"""Pieces every scenario section shares: strict sections, placement, time-of-day profiles.

Scenario files are TOML validated with pydantic: a section rejects unknown keys,
so a typo is an error naming the field instead of a silently ignored setting.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dosi.twin.geo import Placement


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlacementConfig(Section):
    """Where a domain's local coordinates sit relative to the scenario origin."""

    offset: tuple[float, float] = (0.0, 0.0)  # metres east, north of the origin
    scale: Annotated[float, Field(gt=0)] = 1.0
    rotation: float = 0.0  # degrees, counter-clockwise

    def on(self, origin: tuple[float, float]) -> Placement:
        return Placement(
            origin_lon=origin[0],
            origin_lat=origin[1],
            offset_x=self.offset[0],
            offset_y=self.offset[1],
            scale=self.scale,
            rotation_deg=self.rotation,
        )


def clock_seconds(text: str) -> float:
    """'07:30' or '07:30:15' -> seconds after midnight."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"a time of day is HH:MM or HH:MM:SS, got {text!r}")
    hours, minutes = int(parts[0]), int(parts[1])
    seconds = int(parts[2]) if len(parts) == 3 else 0
    if hours > 24 or minutes > 59 or seconds > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return float(hours * 3600 + minutes * 60 + seconds)


class Profile(Section):
    """A daily curve: factors at times of day, linearly interpolated, flat outside the points."""

    points: tuple[tuple[str, Annotated[float, Field(ge=0)]], ...] = (("00:00", 1.0),)

    @field_validator("points")
    @classmethod
    def _ordered(cls, points: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        if not points:
            raise ValueError("a profile needs at least one [time, factor] point")
        times = [clock_seconds(t) for t, _ in points]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("profile times must be strictly increasing")
        return points

    def at(self, time_of_day: float) -> float:
        """The factor at seconds after midnight (wraps past 24 h)."""
        t = time_of_day % 86_400
        times = [clock_seconds(p) for p, _ in self.points]
        values = [v for _, v in self.points]
        i = bisect_right(times, t)
        if i == 0:
            return values[0]
        if i == len(times):
            return values[-1]
        t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

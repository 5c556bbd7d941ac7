"""What drives the grid over the day: the sun, passing clouds and EV chargers in use.

The sun is computed, not tabulated: the NOAA solar-position formulas give the
elevation at the site for the configured day, and the Haurwitz clear-sky model
turns it into irradiance, so PV follows the real morning ramp at 35 N.
Randomness (cloud dips, chargers plugging in) comes from numpy generators seeded
from the scenario seed and drawn once per scheduled power flow, so a what-if run
with the same seed sees the same clouds and the same cars.
"""

from __future__ import annotations

import math

import numpy as np

from dosi.twin.power.config import PvConfig

PERFORMANCE_RATIO = 0.85  # inverter, temperature and soiling losses of a rooftop system
CLOUD_STREAM, EV_STREAM = 1, 2  # independent random streams per seed


def solar_elevation(clock_seconds: float, pv: PvConfig) -> float:
    """Sun elevation (radians) at local clock time on the configured day (NOAA formulas)."""
    hour_utc = clock_seconds / 3600 - pv.utc_offset_hours
    gamma = 2 * math.pi / 365 * (pv.day_of_year - 1 + (hour_utc - 12) / 24)
    eot = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    solar_minutes = clock_seconds / 60 + eot + 4 * pv.longitude - 60 * pv.utc_offset_hours
    hour_angle = math.radians(solar_minutes / 4 - 180)
    lat = math.radians(pv.latitude)
    sin_elev = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(
        hour_angle
    )
    return math.asin(max(-1.0, min(1.0, sin_elev)))


def clear_sky_ghi(elevation: float) -> float:
    """Global horizontal irradiance (W/m2) under a clear sky (Haurwitz 1945)."""
    sin_elev = math.sin(elevation)
    if sin_elev <= 0.01:
        return 0.0
    return 1098.0 * sin_elev * math.exp(-0.057 / sin_elev)


def pv_factor(clock_seconds: float, pv: PvConfig) -> float:
    """Share of a PV unit's peak power produced under a clear sky at this time of day."""
    ghi = clear_sky_ghi(solar_elevation(clock_seconds, pv))
    return min(1.0, ghi / 1000.0 * PERFORMANCE_RATIO)


class Clouds:
    """Multiplicative dips in PV output: one district-wide draw per power flow."""

    def __init__(self, seed: int, flicker: float) -> None:
        self._rng = np.random.default_rng([seed, CLOUD_STREAM])
        self._flicker = flicker

    def draw(self) -> float:
        if self._flicker == 0:
            return 1.0
        return max(0.0, 1.0 - abs(float(self._rng.normal(0.0, self._flicker))))


class Chargers:
    """Each charger is busy or idle; at every power flow some re-draw their state.

    A charger re-draws with probability 1 - exp(-dt / dwell) and is then busy with the
    profile's share: in steady state the busy share follows the profile, lagging by
    about one dwell time, as cars arrive and leave one by one.
    """

    def __init__(self, seed: int, counts: list[int], dwell_s: float, share: float) -> None:
        self._rng = np.random.default_rng([seed, EV_STREAM])
        self._station = np.repeat(np.arange(len(counts)), counts)
        self._stations = len(counts)
        self._dwell = dwell_s
        self._busy = self._rng.random(self._station.size) < share

    def step(self, share: float, dt: float) -> None:
        redraw = self._rng.random(self._busy.size) < 1.0 - math.exp(-dt / self._dwell)
        fresh = self._rng.random(self._busy.size) < share
        self._busy = np.where(redraw, fresh, self._busy)

    def busy(self) -> np.ndarray:
        """Busy chargers per station."""
        return np.bincount(self._station, weights=self._busy, minlength=self._stations)

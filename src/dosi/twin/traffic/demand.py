"""Trips for one run: a seeded, time-varying Poisson process written as a SUMO route file.

The rate at simulated second t is `peak_vehicles_per_hour / 3600 x profile(time of day)`,
times every DemandSurge factor whose `at` has passed; it is held constant within each
second, so per-second Poisson counts give exactly that non-homogeneous process. Origins
and destinations come from the same numpy generator (seeded with ctx.seed), so one seed
always gives the same file. SUMO routes the trips itself (fastest path at loading time).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosi.twin.config import clock_seconds
from dosi.twin.model import DemandSurge, Event, RoadClosure
from dosi.twin.traffic.config import DemandConfig
from dosi.twin.traffic.roadnet import RoadNet

# (type id, vClass, emission class, length m, share key); HBEFA 3 classes, Euro 6 fleet
VEHICLE_TYPES = (
    ("car", "passenger", "HBEFA3/PC_G_EU6", 4.5),
    ("car_diesel", "passenger", "HBEFA3/PC_D_EU6", 4.6),
    ("delivery", "delivery", "HBEFA3/LDV_D_EU6", 6.5),
    ("truck", "truck", "HBEFA3/HDV_D_EU6", 12.0),
)


@dataclass(frozen=True)
class Trips:
    path: Path
    count: int


def rate_per_second(config: DemandConfig, seconds: np.ndarray, start_of_day: float) -> np.ndarray:
    """Expected departures in each simulated second (before surges).

    The profile is sampled at each second's middle; np.interp is `Profile.at`
    (linear between points, flat outside them) for a whole day in one call.
    """
    times = [clock_seconds(t) for t, _ in config.profile.points]
    factors = [f for _, f in config.profile.points]
    time_of_day = (start_of_day + seconds + 0.5) % 86_400
    result: np.ndarray = np.interp(time_of_day, times, factors)
    return result * (config.peak_vehicles_per_hour / 3600.0)


def surge_factor(seconds: np.ndarray, events: Sequence[Event]) -> np.ndarray:
    factor = np.ones(len(seconds))
    for event in events:
        if isinstance(event, DemandSurge):
            factor[seconds >= event.at] *= event.factor
    return factor


def _type_shares(config: DemandConfig) -> np.ndarray:
    cars = 1.0 - config.truck_share - config.delivery_share
    return np.array(
        [
            cars * (1 - config.diesel_share),
            cars * config.diesel_share,
            config.delivery_share,
            config.truck_share,
        ]
    )


def _pick_ends(
    rng: np.random.Generator, net: RoadNet, count: int, fringe_share: float
) -> tuple[list[str], list[str]]:
    """Origin and destination edges: through trips between fringe roads, the rest inside.

    Inner trip ends are weighted by lane-metres (longer, wider streets hold more homes
    and jobs); fringe roads are equally likely.
    """
    entries, exits, inner = net.entry_edges(), net.exit_edges(), net.inner_edges()
    if not entries or not exits or not inner:
        raise ValueError("the network needs fringe roads and inner streets for trips")
    weights = np.array([net.edges[e].length * len(net.edges[e].lanes) for e in inner])
    weights /= weights.sum()
    through = rng.random(count) < fringe_share
    origins = np.where(
        through,
        np.array(entries)[rng.integers(0, len(entries), count)],
        np.array(inner)[rng.choice(len(inner), count, p=weights)],
    )
    destinations = np.where(
        through,
        np.array(exits)[rng.integers(0, len(exits), count)],
        np.array(inner)[rng.choice(len(inner), count, p=weights)],
    )
    return origins.tolist(), destinations.tolist()


def _valid(net: RoadNet, origin: str, destination: str, closed: set[str]) -> bool:
    if origin == destination or origin in closed or destination in closed:
        return False
    # a through trip must not leave where it came in (no U-turns at the fringe)
    return net.edges[origin].source != net.edges[destination].target


def generate_trips(
    config: DemandConfig,
    net: RoadNet,
    *,
    seed: int,
    duration: float,
    start_of_day: float,
    events: Sequence[Event],
    path: Path,
) -> Trips:
    """Write `path` (a SUMO route file of trips) for [0, duration) and say how many."""
    rng = np.random.default_rng(seed)
    seconds = np.arange(math.ceil(duration), dtype=float)
    rate = rate_per_second(config, seconds, start_of_day) * surge_factor(seconds, events)
    counts = rng.poisson(rate)
    total = int(counts.sum())
    departs = np.sort(np.repeat(seconds, counts) + rng.random(total))
    kinds = rng.choice(len(VEHICLE_TYPES), total, p=_type_shares(config))
    origins, destinations = _pick_ends(rng, net, total, config.fringe_share)
    closures = [e for e in events if isinstance(e, RoadClosure)]
    entries, exits, inner = set(net.entry_edges()), set(net.exit_edges()), net.inner_edges()

    root = ET.Element("routes")
    for type_id, vclass, emission, length in VEHICLE_TYPES:
        ET.SubElement(
            root,
            "vType",
            id=type_id,
            vClass=vclass,
            emissionClass=emission,
            length=f"{length}",
        )
    for i in range(total):
        depart = float(departs[i])
        closed = {c.edge for c in closures if c.at <= depart}
        origin, destination = origins[i], destinations[i]
        for _ in range(50):  # redraw ends that coincide or lie on a closed road
            if _valid(net, origin, destination, closed):
                break
            pool = sorted(entries) if origin in entries else inner
            origin = pool[int(rng.integers(0, len(pool)))]
            pool = sorted(exits) if destination in exits else inner
            destination = pool[int(rng.integers(0, len(pool)))]
        ET.SubElement(
            root,
            "trip",
            id=f"t{i}",
            type=VEHICLE_TYPES[int(kinds[i])][0],
            depart=f"{depart:.2f}",
            attrib={"from": origin, "to": destination},
            departLane="best",
            departSpeed="max",
        )
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return Trips(path=path, count=total)

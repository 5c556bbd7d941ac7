"""The water network as the twin sees it: elements, sensor tags, geometry, assets.

WNTR reads the EPANET file but drops its comments, and the comments are where L-Town
says which junctions carry AMR meters or pressure sensors; `parse_tags` reads them
from the raw text. Any other .inp file works too: no tags simply means no such sensors.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dosi.twin.geo import Placement
from dosi.twin.model import Asset

Coords = tuple[float, float]
MAX_INP_BYTES = 64 * 1024 * 1024  # a city-sized network is a few MB; refuse anything absurd

NODE_SECTIONS = {"JUNCTIONS", "RESERVOIRS", "TANKS"}
LINK_SECTIONS = {"PIPES", "PUMPS", "VALVES"}
_AMR = re.compile(r"\bAMR\b")
_SAFE = re.compile(r"[^A-Za-z0-9_.:~-]")


@dataclass(frozen=True)
class Tags:
    """Element ids marked in the file's comments, in file order."""

    pressure: tuple[str, ...] = ()  # nodes: ";PRESSURE SENSOR"
    amr: tuple[str, ...] = ()  # junctions: ";AMR" (also "AMR & PRESSURE SENSOR")
    flow: tuple[str, ...] = ()  # pipes, pumps, valves: ";FLOW SENSOR"
    level: tuple[str, ...] = ()  # tanks: ";LEVEL SENSOR"


def parse_tags(text: str) -> Tags:
    """Sensor tags from the comments of [JUNCTIONS], [TANKS], [PIPES], [PUMPS] and the like."""
    found: dict[str, dict[str, None]] = {k: {} for k in ("pressure", "amr", "flow", "level")}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[] \t").upper()
            continue
        if not line or line.startswith(";") or ";" not in line:
            continue
        data, comment = line.split(";", 1)
        words = data.split()
        if not words:
            continue
        element, note = words[0], comment.upper()
        if section in NODE_SECTIONS and "PRESSURE SENSOR" in note:
            found["pressure"][element] = None
        if section == "JUNCTIONS" and _AMR.search(note):
            found["amr"][element] = None
        if section == "TANKS" and "LEVEL SENSOR" in note:
            found["level"][element] = None
        if section in LINK_SECTIONS and "FLOW SENSOR" in note:
            found["flow"][element] = None
    return Tags(**{kind: tuple(ids) for kind, ids in found.items()})


def read_inp_text(path: Path) -> str:
    """The file's text (EPANET files are 8-bit; latin-1 never fails to decode)."""
    size = path.stat().st_size
    if size > MAX_INP_BYTES:
        raise ValueError(f"{path.name}: {size} bytes is too large for a network file")
    return path.read_bytes().decode("latin-1")


class IdMaker:
    """Ids safe as MQTT topic levels and entity-id parts, unique within the scenario."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._given: dict[tuple[str, str], str] = {}

    def __call__(self, prefix: str, element: str) -> str:
        if (prefix, element) in self._given:
            return self._given[prefix, element]
        base = f"{prefix}-{_SAFE.sub('_', element)}"[:190]
        candidate, n = base, 1
        while candidate in self._used:
            n += 1
            candidate = f"{base}~{n}"
        self._used.add(candidate)
        self._given[prefix, element] = candidate
        return candidate


@dataclass
class Network:
    """A loaded WNTR model with the lookups the adapter needs."""

    wn: Any  # wntr.network.WaterNetworkModel (untyped library)
    tags: Tags
    source: Path
    ids: IdMaker = field(default_factory=IdMaker)

    def node_xy(self, node: str) -> Coords:
        x, y = self.wn.get_node(node).coordinates
        return float(x), float(y)

    def link_path(self, link: str) -> list[Coords]:
        """Start node, vertices, end node: the link as drawn."""
        obj = self.wn.get_link(link)
        inner = [(float(x), float(y)) for x, y in obj.vertices]
        return [self.node_xy(obj.start_node_name), *inner, self.node_xy(obj.end_node_name)]

    def link_midpoint(self, link: str) -> Coords:
        return midpoint(self.link_path(link))

    def is_junction(self, node: str) -> bool:
        return node in self.wn.junction_name_list

    def has_node(self, node: str) -> bool:
        return node in self.wn.node_name_list

    def has_link(self, link: str) -> bool:
        return link in self.wn.link_name_list


def load_network(path: Path) -> Network:
    """Read an EPANET file with WNTR, plus the sensor tags in its comments."""
    import wntr  # heavy import, only when a scenario has [water]

    if not path.is_file():
        raise FileNotFoundError(f"water network file not found: {path}")
    tags = parse_tags(read_inp_text(path))
    try:
        wn = wntr.network.WaterNetworkModel(str(path))
    except Exception as exc:  # WNTR raises assorted errors for a malformed file
        raise ValueError(f"{path.name}: not a readable EPANET network ({exc})") from exc
    return Network(wn=wn, tags=tags, source=path)


def midpoint(path: list[Coords]) -> Coords:
    """The point halfway along a polyline (by length)."""
    lengths = [math.dist(a, b) for a, b in itertools.pairwise(path)]
    half = sum(lengths) / 2
    for (a, b), length in zip(itertools.pairwise(path), lengths, strict=True):
        if half <= length and length > 0:
            f = half / length
            return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
        half -= length
    return path[0]


def _asset(kind: str, asset_id: str, location: dict[str, Any], **static: Any) -> Asset:
    return Asset(asset_id=asset_id, entity_type=kind, location=location, static=static)


def assets(net: Network, placement: Placement) -> Iterator[Asset]:
    """Pipes (LineString with vertices), tanks and reservoirs (Point), SI units."""
    wn = net.wn
    for name in wn.pipe_name_list:
        pipe = wn.get_link(name)
        yield _asset(
            "Pipe",
            net.ids("water-pipe", name),
            placement.line(net.link_path(name)),
            name=name,
            diameter=round(float(pipe.diameter), 4),  # m
            length=round(float(pipe.length), 2),  # m
            roughness=round(float(pipe.roughness), 4),  # Hazen-Williams C (L-Town) or mm
            startNode=pipe.start_node_name,
            endNode=pipe.end_node_name,
        )
    for name in wn.tank_name_list:
        tank = wn.get_node(name)
        yield _asset(
            "Tank",
            net.ids("water-tank", name),
            placement.point(*net.node_xy(name)),
            name=name,
            elevation=round(float(tank.elevation), 3),
            diameter=round(float(tank.diameter), 3),
            minLevel=round(float(tank.min_level), 3),
            maxLevel=round(float(tank.max_level), 3),
        )
    for name in wn.reservoir_name_list:
        yield _asset(
            "Reservoir",
            net.ids("water-reservoir", name),
            placement.point(*net.node_xy(name)),
            name=name,
            head=round(float(wn.get_node(name).base_head), 3),
        )


def demand_junctions(net: Network) -> Iterable[str]:
    """Junctions where someone draws water (any demand category with a positive base)."""
    for name in net.wn.junction_name_list:
        series = net.wn.get_node(name).demand_timeseries_list
        if any(float(d.base_value) > 0 for d in series):
            yield name

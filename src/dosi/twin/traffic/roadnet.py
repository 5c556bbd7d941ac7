"""What the adapter needs to know about a SUMO `.net.xml`, read once with ElementTree.

Edges, lanes (with shapes for map geometry), junctions and signal programs are read
straight from the file so sensors, assets and demand can be laid out before SUMO
starts, and without sumolib's much larger object model.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

Point = tuple[float, float]


@dataclass(frozen=True)
class Lane:
    lane_id: str
    index: int  # 0 = rightmost
    length: float  # metres
    speed: float  # m/s
    shape: tuple[Point, ...]


@dataclass(frozen=True)
class Edge:
    edge_id: str
    source: str
    target: str
    name: str
    lanes: tuple[Lane, ...]

    @property
    def length(self) -> float:
        return self.lanes[0].length

    @property
    def speed(self) -> float:
        return max(lane.speed for lane in self.lanes)


@dataclass(frozen=True)
class Junction:
    junction_id: str
    kind: str  # SUMO junction type: traffic_light, priority, dead_end…
    x: float
    y: float
    incoming_lanes: tuple[str, ...]


@dataclass
class RoadNet:
    edges: dict[str, Edge] = field(default_factory=dict)  # normal edges only
    junctions: dict[str, Junction] = field(default_factory=dict)  # without internal ones
    internal_lanes: dict[str, tuple[Point, ...]] = field(default_factory=dict)  # id -> shape
    programs: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)  # tls -> states
    fringe: frozenset[str] = frozenset()  # junctions at the network's edge (see read_net)

    def signalised(self) -> list[Junction]:
        return [j for j in self.junctions.values() if j.junction_id in self.programs]

    def is_fringe(self, junction_id: str) -> bool:
        return junction_id in self.fringe

    def entry_edges(self) -> list[str]:
        """Edges leaving a fringe node: where through traffic enters."""
        return sorted(e.edge_id for e in self.edges.values() if self.is_fringe(e.source))

    def exit_edges(self) -> list[str]:
        return sorted(e.edge_id for e in self.edges.values() if self.is_fringe(e.target))

    def inner_edges(self) -> list[str]:
        """Edges between two non-fringe junctions (trip ends inside the district)."""
        return sorted(
            e.edge_id
            for e in self.edges.values()
            if not self.is_fringe(e.source) and not self.is_fringe(e.target)
        )

    def lane(self, lane_id: str) -> Lane:
        edge_id, _, index = lane_id.rpartition("_")
        return self.edges[edge_id].lanes[int(index)]


def _shape(text: str) -> tuple[Point, ...]:
    points = []
    for pair in text.split():
        x, y = pair.split(",")[:2]
        points.append((float(x), float(y)))
    return tuple(points)


def read_net(path: Path) -> RoadNet:
    """Parse a `.net.xml`; raises ValueError for a file that is not a SUMO network."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{path}: not a readable SUMO network ({exc})") from None
    if root.tag != "net":
        raise ValueError(f"{path}: not a SUMO network (root element <{root.tag}>)")
    net = RoadNet()
    for element in root.iter("edge"):
        lanes = tuple(
            Lane(
                lane_id=lane.attrib["id"],
                index=int(lane.attrib["index"]),
                length=float(lane.attrib["length"]),
                speed=float(lane.attrib["speed"]),
                shape=_shape(lane.attrib["shape"]),
            )
            for lane in element.iter("lane")
        )
        if element.get("function") == "internal":
            for lane in lanes:
                net.internal_lanes[lane.lane_id] = lane.shape
            continue
        if element.get("function"):  # walking areas, crossings, connectors
            continue
        edge_id = element.attrib["id"]
        net.edges[edge_id] = Edge(
            edge_id=edge_id,
            source=element.attrib["from"],
            target=element.attrib["to"],
            name=element.get("name", edge_id),
            lanes=tuple(sorted(lanes, key=lambda lane: lane.index)),
        )
    for element in root.iter("junction"):
        if element.get("type") == "internal":
            continue
        junction_id = element.attrib["id"]
        net.junctions[junction_id] = Junction(
            junction_id=junction_id,
            kind=element.attrib["type"],
            x=float(element.attrib["x"]),
            y=float(element.attrib["y"]),
            incoming_lanes=tuple(
                lane for lane in element.get("incLanes", "").split() if not lane.startswith(":")
            ),
        )
    for element in root.iter("tlLogic"):
        states = tuple(phase.attrib["state"] for phase in element.iter("phase"))
        net.programs.setdefault(element.attrib["id"], {})[element.attrib["programID"]] = states
    neighbours: dict[str, set[str]] = {j: set() for j in net.junctions}
    for edge in net.edges.values():
        neighbours.setdefault(edge.source, set()).add(edge.target)
        neighbours.setdefault(edge.target, set()).add(edge.source)
    # a fringe node's roads all lead to one single neighbour: trips enter and leave there
    net.fringe = frozenset(j for j, near in neighbours.items() if len(near) <= 1)
    return net

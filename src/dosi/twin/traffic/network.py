"""The eco-delta road network: a signalised grid with two arterials, built with netconvert.

The plain node/edge XML is generated here so the layout is reviewable as code, and
netconvert (from the eclipse-sumo wheel) turns it into the `.net.xml` SUMO runs, with
fixed-time signal programs (green, yellow, red; permissive left turns) at every grid
junction. Regenerate the committed files with `python -m dosi.twin.traffic.network`.

Layout (local metres, x east, y north): junctions A1..D4 (column letter west -> east,
row number south -> north) on a 500 m x 450 m grid, so the grid spans 1.5 km x 1.35 km;
row 2 ("Ecodelta-daero") and column C ("Nakdong-ro") are arterials with two lanes each
way at 60 km/h, the other streets one lane at 40 km/h. Every boundary junction has a
300 m approach road to a fringe node (W1..W4, E1..E4, SA..SD, NA..ND) where trips enter
and leave the district.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

COLUMNS = "ABCD"
ROWS = (1, 2, 3, 4)
BLOCK_X = 500.0  # metres between columns
BLOCK_Y = 450.0  # metres between rows
APPROACH = 300.0  # length of the fringe roads
ARTERIAL_ROW = 2
ARTERIAL_COLUMN = "C"
ARTERIAL = (2, 60 / 3.6, 3)  # lanes, speed m/s, priority
LOCAL = (1, 40 / 3.6, 1)
ROW_NAMES = {1: "Eco 1-gil", 2: "Ecodelta-daero", 3: "Eco 3-gil", 4: "Eco 4-gil"}
COLUMN_NAMES = {"A": "Delta A-ro", "B": "Delta B-ro", "C": "Nakdong-ro", "D": "Delta D-ro"}
NET_NAME = "eco-delta"
SCENARIO_FOLDER = Path(__file__).resolve().parent.parent / "scenarios" / "eco_delta" / "traffic"


@dataclass(frozen=True)
class Node:
    node_id: str
    x: float
    y: float
    signalised: bool


@dataclass(frozen=True)
class Road:
    """One direction of a street between two nodes."""

    edge_id: str
    source: str
    target: str
    lanes: int
    speed: float  # m/s
    priority: int
    name: str


def grid_nodes() -> list[Node]:
    """Signalised grid junctions and the fringe nodes of the approach roads."""
    nodes = [
        Node(f"{c}{r}", i * BLOCK_X, (r - 1) * BLOCK_Y, True)
        for i, c in enumerate(COLUMNS)
        for r in ROWS
    ]
    east, north = (len(COLUMNS) - 1) * BLOCK_X, (len(ROWS) - 1) * BLOCK_Y
    for r in ROWS:
        y = (r - 1) * BLOCK_Y
        nodes.append(Node(f"W{r}", -APPROACH, y, False))
        nodes.append(Node(f"E{r}", east + APPROACH, y, False))
    for i, c in enumerate(COLUMNS):
        x = i * BLOCK_X
        nodes.append(Node(f"S{c}", x, -APPROACH, False))
        nodes.append(Node(f"N{c}", x, north + APPROACH, False))
    return nodes


def _both_ways(a: str, b: str, kind: tuple[int, float, int], name: str) -> list[Road]:
    lanes, speed, priority = kind
    return [
        Road(f"{a}-{b}", a, b, lanes, speed, priority, name),
        Road(f"{b}-{a}", b, a, lanes, speed, priority, name),
    ]


def grid_roads() -> list[Road]:
    """Every street as two one-way edges named `<from>-<to>`."""
    roads: list[Road] = []
    for r in ROWS:  # east-west streets, with their west and east approaches
        kind = ARTERIAL if r == ARTERIAL_ROW else LOCAL
        chain = [f"W{r}", *(f"{c}{r}" for c in COLUMNS), f"E{r}"]
        for a, b in itertools.pairwise(chain):
            roads += _both_ways(a, b, kind, ROW_NAMES[r])
    for c in COLUMNS:  # north-south streets, with their south and north approaches
        kind = ARTERIAL if c == ARTERIAL_COLUMN else LOCAL
        chain = [f"S{c}", *(f"{c}{r}" for r in ROWS), f"N{c}"]
        for a, b in itertools.pairwise(chain):
            roads += _both_ways(a, b, kind, COLUMN_NAMES[c])
    return roads


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")


def write_plain(folder: Path, name: str = NET_NAME) -> tuple[Path, Path]:
    """The plain node and edge files netconvert reads."""
    nodes = ET.Element("nodes")
    for node in grid_nodes():
        ET.SubElement(
            nodes,
            "node",
            id=node.node_id,
            x=f"{node.x:.2f}",
            y=f"{node.y:.2f}",
            type="traffic_light" if node.signalised else "priority",
        )
    edges = ET.Element("edges")
    for road in grid_roads():
        ET.SubElement(
            edges,
            "edge",
            id=road.edge_id,
            attrib={"from": road.source, "to": road.target},
            numLanes=str(road.lanes),
            speed=f"{road.speed:.2f}",
            priority=str(road.priority),
            name=road.name,
        )
    node_file, edge_file = folder / f"{name}.nod.xml", folder / f"{name}.edg.xml"
    _write_xml(nodes, node_file)
    _write_xml(edges, edge_file)
    return node_file, edge_file


def netconvert_binary() -> Path:
    import sumo  # the eclipse-sumo wheel ships the binaries

    return Path(sumo.SUMO_HOME) / "bin" / "netconvert"


def build(folder: Path = SCENARIO_FOLDER, name: str = NET_NAME) -> Path:
    """Write the plain XML and run netconvert; returns the `.net.xml` path."""
    folder.mkdir(parents=True, exist_ok=True)
    node_file, edge_file = write_plain(folder, name)
    net_file = folder / f"{name}.net.xml"
    subprocess.run(  # relative names keep the folder's path out of the file's header
        [
            str(netconvert_binary()),
            "--node-files",
            node_file.name,
            "--edge-files",
            edge_file.name,
            "--output-file",
            net_file.name,
            "--offset.disable-normalization",  # net coordinates = the local metres above
            "--no-turnarounds",
            "--tls.default-type",
            "static",
            "--tls.allred.time",  # a short all-red clearance after every yellow
            "2",
            "--output.street-names",
            "--no-warnings",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return net_file


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the eco-delta road network.")
    parser.add_argument("--out", type=Path, default=SCENARIO_FOLDER, help="output folder")
    args = parser.parse_args()
    print(build(args.out))


if __name__ == "__main__":
    main()

"""What the dashboard needs to know of its scenario: where it is and what a what-if may name.

Read from the scenario's own files (the SUMO network and the EPANET input) without
starting any simulator, so `/api/config` is cheap and a what-if naming a road or
junction that does not exist is refused at once instead of failing minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dosi.twin.model import Event, PipeBurst, PvDrop, RoadClosure
from dosi.twin.scenario import load_scenario
from dosi.twin.traffic.closures import closable_edges, load_net
from dosi.twin.water.network import parse_tags, read_inp_text
from dosi.twin.whatif import KINDS

BURST_CHOICES = 6  # junctions offered for a pipe burst: those with a pressure sensor


@dataclass(frozen=True)
class District:
    name: str
    source: Path  # the scenario file, for what-if runs
    origin: tuple[float, float]  # lon, lat
    timezone: str
    hours: float  # the scenario's run length
    kinds: tuple[str, ...]  # what-if kinds that apply to its simulators
    roads: tuple[str, ...]  # closable SUMO edges
    edges: frozenset[str]  # every SUMO edge
    junctions: frozenset[str]  # every EPANET junction
    burst_nodes: tuple[str, ...]  # a few junctions worth bursting (pressure sensors nearby)

    def check(self, event: Event, hours: float) -> None:
        """ValueError (one line) if the event names nothing in this district or never happens."""
        if event.at >= hours * 3600:
            raise ValueError(
                f"the event starts at minute {event.at / 60:g}, after the run's {hours * 60:g} min"
            )
        if isinstance(event, RoadClosure) and event.edge not in self.edges:
            raise ValueError(f"no road {event.edge!r} in {self.name} (closable: see /api/config)")
        if isinstance(event, PipeBurst) and event.node not in self.junctions:
            raise ValueError(f"no water junction {event.node!r} in {self.name}")
        if isinstance(event, PvDrop) and "pv-drop" not in self.kinds:
            raise ValueError(f"{self.name} simulates no power grid")


def load_district(ref: str) -> District:
    """ScenarioError/ValueError/OSError for a scenario that cannot be read."""
    loaded = load_scenario(ref)
    scenario = loaded.scenario
    roads: list[str] = []
    edges: frozenset[str] = frozenset()
    if scenario.traffic is not None:
        _, net = load_net(scenario.traffic, loaded.base_dir)
        roads, edges = closable_edges(net), frozenset(net.edges)
    junctions: frozenset[str] = frozenset()
    bursts: tuple[str, ...] = ()
    if scenario.water is not None:
        text = read_inp_text((loaded.base_dir / scenario.water.network).resolve())
        junctions = frozenset(section_ids(text, "JUNCTIONS"))
        pressure = [n for n in parse_tags(text).pressure if n in junctions]
        bursts = tuple(pressure[:: max(1, len(pressure) // BURST_CHOICES)][:BURST_CHOICES])
    domains = set(scenario.domains())
    needs = {"road-closure": "traffic", "pipe-burst": "water", "pv-drop": "power"}
    kinds = tuple(k for k in KINDS if k not in needs or needs[k] in domains)
    lon, lat = scenario.site.origin
    return District(
        name=scenario.scenario.name,
        source=loaded.source,
        origin=(lon, lat),
        timezone=scenario.site.timezone,
        hours=scenario.clock.hours,
        kinds=kinds,
        roads=tuple(roads),
        edges=edges,
        junctions=junctions,
        burst_nodes=bursts,
    )


def section_ids(text: str, section: str) -> list[str]:
    """The element ids (first word of each data line) of one [SECTION] of an EPANET file."""
    ids: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            inside = line.strip("[] \t").upper() == section
        elif inside and line:
            ids.append(line.split()[0])
    return ids

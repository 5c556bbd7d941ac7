"""Road closures (what-if events): no vehicle may use the edge from `at` on.

At `at` every lane of the edge disallows all vehicle classes, so SUMO's routers
avoid it, and every vehicle whose remaining route uses it is re-routed. SUMO
routes trips when it loads them, ahead of their departure, so from then on each
departing vehicle is checked too. A vehicle whose destination is the closed edge
is sent to a neighbouring street instead (it cannot reach its own any more).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dosi.twin.model import Event, RoadClosure
from dosi.twin.traffic.config import TrafficConfig
from dosi.twin.traffic.roadnet import RoadNet, read_net


def load_net(config: TrafficConfig, base_dir: Path) -> tuple[Path, RoadNet]:
    """The scenario's network file (resolved against the scenario folder) and its contents."""
    path = (base_dir / config.network).resolve()
    if not path.is_file():
        raise ValueError(f"traffic.network: no such file {path}")
    return path, read_net(path)


def list_closable_edges(config: TrafficConfig, base_dir: Path) -> list[str]:
    """Edges a RoadClosure may name sensibly (for the CLI's messages); no SUMO needed."""
    return closable_edges(load_net(config, base_dir)[1])


def closable_edges(net: RoadNet) -> list[str]:
    """Streets between two inner junctions: closing one leaves every trip a detour."""
    return net.inner_edges()


def check_closures(net: RoadNet, events: Sequence[Event]) -> list[RoadClosure]:
    """The road closures among `events`, sorted by time; ValueError for an unknown edge."""
    closures = [e for e in events if isinstance(e, RoadClosure)]
    for closure in closures:
        if closure.edge not in net.edges:
            candidates = closable_edges(net)
            near = difflib.get_close_matches(closure.edge, list(net.edges), n=3)
            hint = f"did you mean {', '.join(near)}? " if near else ""
            raise ValueError(
                f"road closure: no edge {closure.edge!r} in the traffic network; {hint}"
                f"closable edges: {', '.join(candidates)}"
            )
        if closure.at < 0:
            raise ValueError(f"road closure of {closure.edge!r}: `at` must be >= 0")
    return sorted(closures, key=lambda c: c.at)


class Closures:
    """Applies the closures on the simulation clock."""

    def __init__(self, net: RoadNet, events: Sequence[Event]) -> None:
        self.net = net
        self.pending = check_closures(net, events)
        self.closed: set[str] = set()

    def before_step(self, sumo: Any, now: float) -> None:
        """Close what is due at `now` (before SUMO moves on from it)."""
        while self.pending and self.pending[0].at <= now + 1e-9:
            edge_id = self.pending.pop(0).edge
            if edge_id in self.closed:
                continue
            for lane in self.net.edges[edge_id].lanes:
                sumo.lane.setDisallowed(lane.lane_id, ["all"])
            self.closed.add(edge_id)
            for vehicle in sumo.vehicle.getIDList():
                self._detour(sumo, vehicle)

    def after_step(self, sumo: Any) -> None:
        """Re-route the vehicles that just departed on a route planned before a closure."""
        if self.closed:
            for vehicle in sumo.simulation.getDepartedIDList():
                self._detour(sumo, vehicle)

    def _detour(self, sumo: Any, vehicle: str) -> None:
        route = sumo.vehicle.getRoute(vehicle)
        ahead = route[max(sumo.vehicle.getRouteIndex(vehicle), 0) :]
        current = ahead[0] if ahead else ""
        if not self.closed.intersection(ahead[1:]):
            return
        target = ahead[-1]
        if target in self.closed and target != current:
            edge = self.net.edges[target]
            others = sorted(
                e.edge_id
                for e in self.net.edges.values()
                if e.source == edge.source and e.edge_id not in self.closed
            )
            if others:
                try:
                    sumo.vehicle.changeTarget(vehicle, others[0])
                except sumo.TraCIException:
                    return
        try:
            sumo.vehicle.rerouteTraveltime(vehicle)
        except sumo.TraCIException:  # no way around from here: SUMO's teleport resolves it
            return

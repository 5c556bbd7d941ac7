"""Lane readings for controllers and metrics, through libsumo lane subscriptions.

One subscription per lane (vehicle count, halting count, vehicle ids) makes a step's
readings one batched call; vehicle positions, for the near-stop-line count, are only
asked at decision steps. Counts are of the approach, not only of the controlled lane:
where that lane is a stub shorter than the near zone (most Ingolstadt approaches), the
lanes feeding it by a priority link count too, for every controller alike (`Reach`).
Every controller also gets the junction box (`Observation.box`): vehicles halting on
the signal's own internal lanes, past the stop line, per in-lane they came from; a box
that stays occupied is how two signals on a 12-15 m link lock (ingolstadt21).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dosi.brain.signals.controller import Observation, SignalDriver
from dosi.brain.signals.phases import PhaseSet

VEHICLES = 0x10  # libsumo.constants.LAST_STEP_VEHICLE_NUMBER
VEHICLE_IDS = 0x12  # LAST_STEP_VEHICLE_ID_LIST
HALTING = 0x14  # LAST_STEP_VEHICLE_HALTING_NUMBER


def box_lanes(sumo: Any, tls_id: str, ps: PhaseSet) -> list[list[str]]:
    """Per in-lane, the internal lanes of its movements through the signal's junction."""
    idx = {lane: i for i, lane in enumerate(ps.in_lanes)}
    out: list[list[str]] = [[] for _ in ps.in_lanes]
    try:
        links = sumo.trafficlight.getControlledLinks(tls_id)
        for group in links:
            for a, _b, via in group:
                i = idx.get(a)
                while i is not None and via and via.startswith(":") and via not in out[i]:
                    out[i].append(via)  # an internal junction splits a turn: follow it
                    nxt = [str(k[0]) for k in sumo.lane.getLinks(via)]
                    via = nxt[0] if len(nxt) == 1 else ""
    except AttributeError:  # no simulation behind (closed loop on a hub)
        return [[] for _ in ps.in_lanes]
    return out


@dataclass(frozen=True)
class LaneTopology:
    """The network's lane links, read once: lane -> (to, via, priority), and priority feeders."""

    links: dict[str, list[tuple[str, str, bool]]]
    feeds: dict[str, list[tuple[str, str]]]  # lane -> (feeding lane, internal lane between)

    @classmethod
    def read(cls, sumo: Any) -> LaneTopology | None:
        """None without a simulation behind (the closed loop's stand-in has no topology)."""
        lane = sumo.lane
        try:
            ids = [x for x in lane.getIDList() if not x.startswith(":")]
            links = {x: [(str(k[0]), str(k[4]), bool(k[1])) for k in lane.getLinks(x)] for x in ids}
        except AttributeError:
            return None
        feeds: dict[str, list[tuple[str, str]]] = {}
        for x, out in links.items():
            for to, via, prio in out:
                if prio:  # a yielding feeder's queue waits for its junction, not our light
                    feeds.setdefault(to, []).append((x, via))
        return cls(links, feeds)


def reaches(sumo: Any, phases: Mapping[str, PhaseSet], near: float) -> dict[str, Reach]:
    """Every signal's Reach, reading the network's topology once."""
    topology = LaneTopology.read(sumo)
    controlled = {lane for ps in phases.values() for lane in ps.in_lanes}
    return {t: Reach(sumo, ps, controlled, near, topology) for t, ps in phases.items()}


class Reach:
    """Lanes a controlled lane's counts should reach beyond its own length, from the topology.

    Many Ingolstadt approaches end in a stub a few metres long behind an unsignalised
    junction: the queue of the signal stands on the lane before it (or inside the junction),
    invisible in the stub's counts, and the stub's one-vehicle room would block every
    movement into it. Upstream of each short in-lane, the lanes that feed it within `near`
    metres of the stop line (through unsignalised junctions only, shared among the lanes
    they feed); downstream of each short out-lane, its single-successor continuation up to
    `near` metres (stopping at another signal's stop line). Empty without a simulation.
    """

    def __init__(
        self,
        sumo: Any,
        ps: PhaseSet,
        controlled: set[str],
        near: float,
        topology: LaneTopology | None,
    ) -> None:
        self.sumo = sumo
        # per in-lane index: (lane, metres before its end that count, share)
        self.up: list[list[tuple[str, float, float]]] = [[] for _ in ps.in_lanes]
        # per out-lane index: continuation lanes (whole)
        self.down: list[list[str]] = [[] for _ in ps.out_lanes]
        self.down_cap = np.zeros(len(ps.out_lanes))
        if topology is None:  # no simulation behind (closed loop on a hub)
            return
        links, feeds = topology.links, topology.feeds
        lane = sumo.lane
        length = lane.getLength

        def walk(
            target: str, left: float, share: float, acc: list[tuple[str, float, float]]
        ) -> None:
            for src, via in feeds.get(target, []):
                if src in controlled or left <= 0:
                    continue
                part = share / max(len({t for t, _, _ in links[src]}), 1)
                rest = left
                if via:
                    acc.append((via, float("inf"), part))
                    rest -= float(length(via))
                if rest <= 0:
                    continue
                acc.append((src, rest, part))
                if rest > float(length(src)):
                    walk(src, rest - float(length(src)), part, acc)

        for i, a in enumerate(ps.in_lanes):
            walk(a, near - float(length(a)), 1.0, self.up[i])
        for i, b in enumerate(ps.out_lanes):
            total, cur = float(length(b)), b
            while total < near:
                nxt = {t for t, _, _ in links.get(cur, [])}
                if len(nxt) != 1 or cur in controlled:
                    break
                cur = nxt.pop()
                self.down[i].append(cur)
                total += float(length(cur))
            self.down_cap[i] = total - float(length(b))

    def counts(self, near: Any, halting: Any, out: Any) -> tuple[Any, Any, Any]:
        """Observed near/halting/out counts with the reached lanes added."""
        if not any(self.up) and not any(self.down):
            return near, halting, out
        lane, veh = self.sumo.lane, self.sumo.vehicle
        near, halting, out = near.copy(), halting.copy(), out.copy()
        for i, parts in enumerate(self.up):
            for x, within, share in parts:
                end = float(lane.getLength(x)) - within
                for v in lane.getLastStepVehicleIDs(x):
                    if veh.getLanePosition(v) >= end:
                        near[i] += share
                        if veh.getSpeed(v) < 0.1:
                            halting[i] += share
        for i, xs in enumerate(self.down):
            for x in xs:
                out[i] += float(lane.getLastStepVehicleNumber(x))
        return near, halting, out


class Observer:
    def __init__(
        self, sumo: Any, phases: Mapping[str, PhaseSet], *, near_distance: float = 50.0
    ) -> None:
        self.sumo, self.phases, self.near_distance = sumo, dict(phases), near_distance
        self.in_lanes = sorted({lane for ps in phases.values() for lane in ps.in_lanes})
        lanes = sorted(set(self.in_lanes) | {ln for ps in phases.values() for ln in ps.out_lanes})
        for lane in lanes:
            sumo.lane.subscribe(lane, (VEHICLES, VEHICLE_IDS, HALTING))
        self.length = {lane: float(sumo.lane.getLength(lane)) for lane in self.in_lanes}
        self.reach = reaches(sumo, phases, near_distance)
        self.box = {t: box_lanes(sumo, t, ps) for t, ps in phases.items()}
        for lane in sorted({x for b in self.box.values() for xs in b for x in xs}):
            sumo.lane.subscribe(lane, (VEHICLES, VEHICLE_IDS, HALTING))
        self._seen: dict[str, frozenset[str]] = {}

    def _results(self) -> dict[str, dict[int, Any]]:
        return dict(self.sumo.lane.getAllSubscriptionResults())

    def halting_total(self) -> tuple[float, int]:
        """(halting vehicles on all controlled incoming lanes, number of such lanes)."""
        res = self._results()
        return float(sum(res.get(lane, {}).get(HALTING, 0) for lane in self.in_lanes)), len(
            self.in_lanes
        )

    def observe(self, driver: SignalDriver | None) -> dict[str, Observation]:
        res = self._results()
        pos = self.sumo.vehicle.getLanePosition
        near: dict[str, int] = {}
        entered: dict[str, int] = {}
        for lane in self.in_lanes:
            ids = frozenset(res.get(lane, {}).get(VEHICLE_IDS, ()))
            limit = self.length[lane] - self.near_distance
            near[lane] = sum(1 for v in ids if pos(v) >= limit)
            entered[lane] = len(ids - self._seen.get(lane, frozenset()))
            self._seen[lane] = ids
        out: dict[str, Observation] = {}
        for tls_id, ps in self.phases.items():
            if driver is not None:
                green, in_green, moving = driver.current(tls_id)
            else:
                green, in_green, moving = 0, 0.0, False

            def arr(lanes: tuple[str, ...], var: int) -> Any:
                return np.array([res.get(ln, {}).get(var, 0) for ln in lanes], dtype=float)

            lane_near = np.array([near[ln] for ln in ps.in_lanes], dtype=float)
            reached = self.reach[tls_id].counts(
                lane_near, arr(ps.in_lanes, HALTING), arr(ps.out_lanes, VEHICLES)
            )
            box = [sum(res.get(x, {}).get(HALTING, 0) for x in xs) for xs in self.box[tls_id]]
            out[tls_id] = Observation(
                tls_id=tls_id,
                phases=ps,
                green=green,
                time_in_green=in_green,
                in_transition=moving,
                # an approach's queue may stand before a stub lane: counted where it waits
                vehicles=arr(ps.in_lanes, VEHICLES) + (reached[0] - lane_near),
                halting=reached[1],
                near=reached[0],
                entered=np.array([entered[ln] for ln in ps.in_lanes], dtype=float),
                out_vehicles=reached[2],
                box=np.array(box, dtype=float),
            )
        return out

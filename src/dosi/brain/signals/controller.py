"""The one controller interface, and the driver that makes every controller safe.

A controller sees an `Observation` per signal every decision step and returns the green
phase it wants per signal. The `SignalDriver` alone writes SUMO states: it holds a green
for at least `min_green`, ends it after `max_green`, and plays the yellow/all-red
transition from `PhaseSet.transitions` before any new green, so no policy can show
conflicting greens or skip a yellow. Native controllers (the network's own program,
SUMO's actuated logic) leave SUMO in charge and get no driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dosi.brain.signals.phases import PhaseSet, Segment

EPS = 1e-6
Counts = npt.NDArray[np.float64]


@dataclass
class Observation:
    """What a controller sees at one signal; lane arrays follow PhaseSet.in_lanes/out_lanes."""

    tls_id: str
    phases: PhaseSet
    green: int  # current green (the target one while a transition plays)
    time_in_green: float  # seconds the current green has been shown (0 in a transition)
    in_transition: bool
    vehicles: Counts  # vehicles on each incoming lane
    halting: Counts  # of which halting (< 0.1 m/s)
    near: Counts  # of which within `near_distance` of the stop line
    entered: Counts  # vehicles new on the lane since the last observation
    out_vehicles: Counts  # vehicles on each outgoing lane
    # vehicles halting inside the junction (its internal lanes) per in-lane they came from;
    # empty where nothing measures it (loop detectors on a hub)
    box: Counts = field(default_factory=lambda: np.zeros(0))

    def lane_index(self) -> dict[str, int]:
        return {lane: i for i, lane in enumerate(self.phases.in_lanes)}


class Controller:
    """Base policy: keeps whatever green is shown. Subclasses override `decide`."""

    name = "base"
    native = False  # True: SUMO runs the lights (no driver, no observations)

    def setup(self, sumo: Any, phases: Mapping[str, PhaseSet]) -> None:
        """Called once after SUMO started, before the first step."""
        self.phases = dict(phases)

    def decide(self, now: float, obs: Mapping[str, Observation]) -> dict[str, int]:
        return {tls: o.green for tls, o in obs.items()}


@dataclass
class _Light:
    phases: PhaseSet
    green: int
    green_since: float
    queue: list[Segment]
    segment_end: float
    target: int | None = None  # set while a transition plays


class SignalDriver:
    """Applies green requests to SUMO with min/max green and full transitions."""

    def __init__(
        self,
        sumo: Any,
        phases: Mapping[str, PhaseSet],
        *,
        min_green: float = 5.0,
        max_green: float = 60.0,
    ) -> None:
        if not 0 <= min_green <= max_green:
            raise ValueError("need 0 <= min_green <= max_green")
        self.sumo, self.min_green, self.max_green = sumo, min_green, max_green
        self.lights: dict[str, _Light] = {}
        now = float(sumo.simulation.getTime())
        tl = sumo.trafficlight
        for tls_id, ps in phases.items():
            k = int(tl.getPhase(tls_id))
            by_program = {g.program_index: g.index for g in ps.greens}
            if k in by_program:
                light = _Light(ps, by_program[k], now, [], now)
                tl.setRedYellowGreenState(tls_id, ps.greens[light.green].state)
            else:  # mid-transition: finish the program's own yellow/all-red first
                logic = next(
                    lg for lg in tl.getAllProgramLogics(tls_id) if lg.programID == ps.program_id
                )
                rest: list[Segment] = []
                n = len(logic.phases)
                for step in range(n):
                    j = (k + step) % n
                    if j in by_program:
                        break
                    rest.append((logic.phases[j].state, float(logic.phases[j].duration)))
                light = _Light(ps, by_program.get(j, 0), now, rest, now)
                light.target = light.green
                self._next_segment(tls_id, light, now)
            self.lights[tls_id] = light

    def current(self, tls_id: str) -> tuple[int, float, bool]:
        """(green index, seconds in it, in transition) at the last tick."""
        light = self.lights[tls_id]
        now = float(self.sumo.simulation.getTime())
        if light.target is not None:
            return light.target, 0.0, True
        return light.green, now - light.green_since, False

    def request(self, decisions: Mapping[str, int], now: float) -> None:
        """Start the transitions the decisions ask for, where min green allows."""
        for tls_id, want in decisions.items():
            light = self.lights.get(tls_id)
            if light is None or light.target is not None or want == light.green:
                continue
            if not 0 <= want < len(light.phases.greens):
                raise ValueError(f"{tls_id} has greens 0..{len(light.phases.greens) - 1}")
            if now - light.green_since + EPS >= self.min_green:
                self._start(tls_id, light, want, now)

    def tick(self, now: float) -> None:
        """Before each SUMO step: advance transitions, end greens that reached max green."""
        for tls_id, light in self.lights.items():
            if light.target is not None:
                if now + EPS >= light.segment_end:
                    self._next_segment(tls_id, light, now)
            elif now - light.green_since + EPS >= self.max_green and len(light.phases.greens) > 1:
                self._start(tls_id, light, (light.green + 1) % len(light.phases.greens), now)

    def _start(self, tls_id: str, light: _Light, want: int, now: float) -> None:
        light.queue = list(light.phases.transition(light.green, want))
        light.target = want
        self._next_segment(tls_id, light, now)

    def _next_segment(self, tls_id: str, light: _Light, now: float) -> None:
        while light.queue:
            state, duration = light.queue.pop(0)
            if duration > EPS:
                self.sumo.trafficlight.setRedYellowGreenState(tls_id, state)
                light.segment_end = now + duration
                return
        assert light.target is not None
        light.green, light.target = light.target, None
        light.green_since = now
        self.sumo.trafficlight.setRedYellowGreenState(
            tls_id, light.phases.greens[light.green].state
        )

"""The signal control policies, all behind `Controller` (see controller.py).

Fixed time and SUMO actuated leave SUMO in charge (native); the others only name the
green they want and the SignalDriver keeps them safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dosi.brain.signals.controller import Controller, Counts, Observation
from dosi.brain.signals.ours import Dosi
from dosi.brain.signals.phases import PhaseSet

SATURATION_FLOW = 0.5  # vehicles per second of green per lane (1800 veh/h)


class FixedTime(Controller):
    """The network's own program, untouched."""

    name = "fixed"
    native = True


class SumoActuated(Controller):
    """The network's own phases as SUMO gap-based actuated logic (SUMO extends greens)."""

    name = "actuated"
    native = True

    def __init__(self, min_green: float = 5.0, max_green: float = 60.0) -> None:
        self.min_green, self.max_green = min_green, max_green

    def setup(self, sumo: Any, phases: Mapping[str, PhaseSet]) -> None:
        super().setup(sumo, phases)
        tl = sumo.trafficlight
        for tls_id, ps in phases.items():
            logic = next(
                lg for lg in tl.getAllProgramLogics(tls_id) if lg.programID == ps.program_id
            )
            new_phases = []
            for p in logic.phases:
                green = any(c in "Gg" for c in p.state) and not any(c in "yu" for c in p.state)
                lo, hi = (self.min_green, self.max_green) if green else (p.duration, p.duration)
                new_phases.append(
                    sumo.trafficlight.Phase(
                        max(p.duration, lo) if green else p.duration, p.state, lo, hi
                    )
                )
            actuated = sumo.trafficlight.Logic(
                "brain-actuated", sumo.constants.TRAFFICLIGHT_TYPE_ACTUATED, 0, new_phases
            )
            tl.setProgramLogic(tls_id, actuated)
            tl.setProgram(tls_id, "brain-actuated")


class Webster(Controller):
    """Fixed-time cycle re-optimised by Webster's formula from the measured lane flows.

    The first `warmup` seconds run the program's own splits while flows are counted;
    then every `period` seconds the cycle becomes C = (1.5 L + 5) / (1 - Y), with L the
    lost time of the transitions and Y the sum of each phase's critical flow ratio.
    """

    name = "webster"

    def __init__(
        self,
        warmup: float = 300.0,
        period: float = 600.0,
        min_cycle: float = 30.0,
        max_cycle: float = 180.0,
        min_green: float = 5.0,
    ) -> None:
        self.warmup, self.period = warmup, period
        self.min_cycle, self.max_cycle, self.min_green = min_cycle, max_cycle, min_green

    def setup(self, sumo: Any, phases: Mapping[str, PhaseSet]) -> None:
        super().setup(sumo, phases)
        self.splits = {t: [g.duration for g in ps.greens] for t, ps in phases.items()}
        self.counts = {t: np.zeros(len(ps.in_lanes)) for t, ps in phases.items()}
        self.window_start: float | None = None
        self.next_update = 0.0

    def plan(self, ps: PhaseSet, flows: Counts) -> list[float]:
        """Green splits for lane flows (veh/s, aligned with ps.in_lanes)."""
        n = len(ps.greens)
        lost = sum(d for i in range(n) for _, d in ps.transition(i, (i + 1) % n))
        index = {lane: i for i, lane in enumerate(ps.in_lanes)}
        ratios = np.array(
            [
                max((flows[index[ln]] / SATURATION_FLOW for ln in g.in_lanes), default=0.0)
                for g in ps.greens
            ]
        )
        total = min(float(ratios.sum()), 0.9)
        cycle = (1.5 * lost + 5.0) / (1.0 - total)
        cycle = min(max(cycle, self.min_cycle, lost + n * self.min_green), self.max_cycle)
        effective = max(cycle - lost, n * self.min_green)
        share = ratios / ratios.sum() if ratios.sum() > 0 else np.full(n, 1.0 / n)
        return [max(self.min_green, float(effective * s)) for s in share]

    def decide(self, now: float, obs: Mapping[str, Observation]) -> dict[str, int]:
        if self.window_start is None:
            self.window_start, self.next_update = now, now + self.warmup
        for tls_id, o in obs.items():
            self.counts[tls_id] += o.entered
        if now >= self.next_update and now > self.window_start:
            span = now - self.window_start
            for tls_id, ps in self.phases.items():
                self.splits[tls_id] = self.plan(ps, self.counts[tls_id] / span)
                self.counts[tls_id][:] = 0
            self.window_start, self.next_update = now, now + self.period
        out = {}
        for tls_id, o in obs.items():
            n = len(o.phases.greens)
            done = not o.in_transition and o.time_in_green >= self.splits[tls_id][o.green]
            out[tls_id] = (o.green + 1) % n if done else o.green
        return out


class Sotl(Controller):
    """Self-organising traffic lights (Gershenson): switch when red demand piles up.

    Vehicle-seconds waiting near red stop lines accumulate in kappa; at kappa >= theta
    the light moves to the next phase, unless a short platoon (1..mu vehicles) is about
    to cross on green.
    """

    name = "sotl"

    def __init__(self, theta: float = 50.0, mu: int = 3) -> None:
        self.theta, self.mu = theta, mu

    def setup(self, sumo: Any, phases: Mapping[str, PhaseSet]) -> None:
        super().setup(sumo, phases)
        self.kappa = dict.fromkeys(phases, 0.0)
        self.last: float | None = None

    def decide(self, now: float, obs: Mapping[str, Observation]) -> dict[str, int]:
        dt = 0.0 if self.last is None else now - self.last
        self.last = now
        out = {}
        for tls_id, o in obs.items():
            served = served_mask(o, o.green)
            if o.in_transition:
                self.kappa[tls_id] = 0.0
                out[tls_id] = o.green
                continue
            self.kappa[tls_id] += float(o.near[~served].sum()) * dt
            platoon = float(o.near[served].sum())
            switch = self.kappa[tls_id] >= self.theta and not 0 < platoon <= self.mu
            out[tls_id] = (o.green + 1) % len(o.phases.greens) if switch else o.green
        return out


class Greedy(Controller):
    """The phase with the most vehicles within the near distance of its stop lines."""

    name = "greedy"

    def decide(self, now: float, obs: Mapping[str, Observation]) -> dict[str, int]:
        return {
            t: best(
                o, np.array([o.near[served_mask(o, i)].sum() for i in range(len(o.phases.greens))])
            )
            for t, o in obs.items()
        }


class MaxPressure(Controller):
    """Varaiya's max-pressure: the phase whose movements have the most upstream minus
    downstream vehicles (queues in the point-queue model)."""

    name = "maxpressure"

    def decide(self, now: float, obs: Mapping[str, Observation]) -> dict[str, int]:
        return {t: best(o, pressures(o)) for t, o in obs.items()}


def served_mask(o: Observation, green: int) -> Any:
    lanes = set(o.phases.greens[green].in_lanes)
    return np.array([lane in lanes for lane in o.phases.in_lanes], dtype=bool)


def pressures(o: Observation) -> Counts:
    """Per green phase: sum over its movements of incoming minus outgoing vehicles."""
    inc = {lane: o.vehicles[i] for i, lane in enumerate(o.phases.in_lanes)}
    out = {lane: o.out_vehicles[i] for i, lane in enumerate(o.phases.out_lanes)}
    return np.array(
        [sum(inc[a] - out[b] for a, b in g.movements) for g in o.phases.greens], dtype=float
    )


def best(o: Observation, scores: Counts) -> int:
    """The best-scoring green; the current one wins ties (no needless switching)."""
    top = float(scores.max())
    return o.green if scores[o.green] >= top else int(np.argmax(scores))


CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c for c in (FixedTime, SumoActuated, Webster, Sotl, Greedy, MaxPressure, Dosi)
}

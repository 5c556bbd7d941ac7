"""dosi's own signal policy: safe under the driver, and better than fixed time and max-pressure."""

from __future__ import annotations

from itertools import groupby

import numpy as np
from test_signals import constructed, needs_resco, phase_sets, record, unsafe_steps

from dosi.brain.signals.controllers import CONTROLLERS
from dosi.brain.signals.ours import Dosi
from dosi.brain.signals.resco import resco_config
from dosi.brain.signals.run import RunOptions, run

DURATION = 1000.0


class Lanes:  # the lane geometry _Plan asks SUMO for
    def getLength(self, lane: str) -> float:
        return 200.0

    def getMaxSpeed(self, lane: str) -> float:
        return 13.9


class Sumo:  # no simulation needed: only the static lane geometry
    lane = Lanes()


def test_lost_time_and_spillback_shape_the_choice() -> None:
    obs = constructed()  # green 0 serves n, s; green 1 serves e, w; 3 s yellow between
    dosi = Dosi()
    obs.near = np.array([2.0, 0.0, 3.0, 0.0])
    obs.halting = obs.near.copy()
    obs.out_vehicles = np.zeros(4)

    dosi.setup(Sumo(), {"x": obs.phases})
    # 3 waiting on red against 2 on green: switching pays even after the 3 s yellow
    assert dosi.decide(0, {"x": obs}) == {"x": 1}
    # one vehicle more on red does not pay for the lost time (greedy would switch)
    obs.near = np.array([2.0, 0.0, 2.2, 0.0])
    obs.halting = obs.near.copy()
    assert dosi.decide(5, {"x": obs}) == {"x": 0}
    # the red queue's exit lanes (n_out, w_out) are full: no point giving it green
    obs.near = np.array([2.0, 0.0, 6.0, 0.0])
    obs.out_vehicles = np.array([0.0, 200.0 / 7.5, 200.0 / 7.5, 0.0])
    assert dosi.decide(10, {"x": obs}) == {"x": 0}


def test_a_served_queue_that_does_not_move_stops_holding_the_green() -> None:
    """A green whose queue stands still (blocked downstream, a stalled turn) is not extended."""

    def decisions(halting_on_green: list[float]) -> list[int]:
        obs = constructed()  # green 0 serves n, s; green 1 serves e, w
        dosi = Dosi()
        dosi.setup(Sumo(), {"x": obs.phases})
        out = []
        for step, queue in enumerate(halting_on_green):
            obs.near = np.array([queue, 0.0, 1.0, 0.0])
            obs.halting = obs.near.copy()
            obs.out_vehicles = np.zeros(4)
            obs.time_in_green = 10.0 + 5 * step
            out.append(dosi.decide(5.0 * step, {"x": obs})["x"])
        return out

    # 4 standing on green against 1 on red: worth holding, until it has not moved for 15 s
    assert decisions([4.0, 4.0, 4.0, 4.0]) == [0, 0, 0, 1]
    # the same queue discharging keeps its green
    assert decisions([4.0, 3.5, 3.0, 2.5]) == [0, 0, 0, 0]


def test_a_locked_junction_box_ends_the_green() -> None:
    """Vehicles standing inside the junction for 15 s end the green that holds them there."""

    def decisions(box_n: list[float]) -> list[int]:
        obs = constructed()  # green 0 serves n, s; green 1 serves e, w
        dosi = Dosi()
        dosi.setup(Sumo(), {"x": obs.phases})
        out = []
        for step, n in enumerate(box_n):
            # the green's queue discharges (so `stall` does not fire); a left turner from e
            # waits in the box for a gap in the flow the green keeps sending
            obs.near = np.array([6.0 - 0.5 * step, 0.0, 1.0, 0.0])
            obs.halting = obs.near.copy()
            obs.out_vehicles = np.zeros(4)
            obs.time_in_green = 10.0 + 5 * step
            obs.box = np.array([0.0, 0.0, n, 0.0])
            out.append(dosi.decide(5.0 * step, {"x": obs})["x"])
        return out

    assert decisions([0.0, 0.0, 0.0, 0.0]) == [0, 0, 0, 0]
    assert decisions([1.0, 1.0, 1.0, 1.0]) == [0, 0, 0, 1]
    assert decisions([1.0, 0.0, 1.0, 1.0]) == [0, 0, 0, 0]  # the box cleared in between


@needs_resco
def test_dosi_is_safe_and_beats_fixed_and_max_pressure() -> None:
    config = resco_config("grid4x4")
    phases = phase_sets(config)
    states: dict[str, list[str]] = {t: [] for t in phases}
    opts = RunOptions(duration=DURATION, min_green=5, max_green=60, on_step=record(states))
    ours = run(config, CONTROLLERS["dosi"](), opts)
    switches = 0
    for tls_id, seen in states.items():
        ps = phases[tls_id]
        assert not unsafe_steps(ps, seen)[:3]
        greens = {g.state for g in ps.greens}
        runs = [len(list(grp)) for state, grp in groupby(seen) if state in greens]
        assert all(5 <= n <= 60 for n in runs[1:-1]), (tls_id, runs)
        switches += len(runs) - 1
    assert switches > 0
    for name in ("fixed", "maxpressure"):
        base = run(config, CONTROLLERS[name](), RunOptions(duration=DURATION))
        assert ours.delay < base.delay, (name, ours.delay, base.delay)
        assert ours.arrived >= base.arrived and ours.teleports <= base.teleports, name

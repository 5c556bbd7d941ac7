"""The closed loop through the hub: phases from hub entities, loop-fed decisions, the service.

Real pieces only: SUMO (libsumo) inside the twin, a `dosi up` hub process, the twin's link
process, and the live service talking HTTP to the hub (in a thread for lockstep runs, as
`dosi brain eval` does, or as the `dosi brain run signals` child process).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import libsumo
import pytest

from dosi.brain.signals.hubphases import SignalEntityError, phase_set_from_entity
from dosi.brain.signals.live import LiveOptions
from dosi.brain.signals.loopbrain import LOOP_CONTROLLERS, CommandDriver, LoopBrain, LoopModel
from dosi.brain.signals.phases import derive_phase_set, derive_phases
from dosi.brain.signals.timing import Pacer, SimClock
from dosi.cli.braineval import LoopReport, PacedLink, _ServiceThread
from dosi.twin.engine import Twin, start_of_run
from dosi.twin.entities import Clock
from dosi.twin.hubproc import EmbeddedHub
from dosi.twin.link import HubLink, LinkOptions
from dosi.twin.scenario import LoadedScenario, load_scenario

ECO_DELTA = Path(__file__).parents[2] / "src/dosi/twin/scenarios/eco_delta/traffic"
SIGNAL = "urn:ngsi-ld:TrafficSignal:eco-delta:tls-"
MIN_GREEN = 10.0
SHORTEST_INTERGREEN = 5.0  # eco-delta: 3 s yellow (4 on the arterials) + 2 s all-red


def traffic_only() -> LoadedScenario:
    loaded = load_scenario("eco-delta")
    scenario = loaded.scenario.model_copy(update={"water": None, "power": None})
    return dataclasses.replace(loaded, scenario=scenario)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[EmbeddedHub]:
    with EmbeddedHub(tmp_path / "hub") as running:
        yield running


# -- phases from the hub's entities -------------------------------------------------------------


def test_phases_from_hub_entities_equal_the_networks_own() -> None:
    twin = Twin(traffic_only(), hours=0.01)
    try:
        entities = {a.actuator_id.removeprefix("tls-"): dict(a.static) for a in twin.actuators()}
    finally:
        twin.close()
    libsumo.start(["sumo", "-n", str(ECO_DELTA / "eco-delta.net.xml"), "--no-step-log"])
    try:
        from_net = derive_phases(libsumo)
        durations = {
            t: [float(p.duration) for p in libsumo.trafficlight.getAllProgramLogics(t)[0].phases]
            for t in from_net
        }
    finally:
        libsumo.close()
    assert set(entities) == set(from_net) and len(from_net) == 16
    for tls, net in from_net.items():
        entity = {"id": tls, **entities[tls]}
        hub = phase_set_from_entity(entity)  # no durations on the entity: defaults
        assert [g.state for g in hub.greens] == [g.state for g in net.greens]
        assert [(g.links, g.in_lanes, g.movements) for g in hub.greens] == [
            (g.links, g.in_lanes, g.movements) for g in net.greens
        ]
        assert (hub.links, hub.compatible) == (net.links, net.compatible)
        assert (hub.in_lanes, hub.out_lanes) == (net.in_lanes, net.out_lanes)
        assert {k: [s for s, _ in v] for k, v in hub.transitions.items()} == {
            k: [s for s, _ in v] for k, v in net.transitions.items()
        }
        # the default intergreen never undercounts the real one (min green stays safe)
        for key, segments in net.transitions.items():
            assert sum(d for _, d in hub.transitions[key]) >= sum(d for _, d in segments)
        # with the durations on the entity, the derivation is the network's exactly
        exact = phase_set_from_entity({**entity, "phaseDurations": durations[tls]})
        assert dataclasses.replace(exact, program_id=net.program_id) == net


@pytest.mark.parametrize(
    "entity",
    [
        {"id": "s", "phases": "GGrr", "linkLanes": [], "linkTargets": []},
        {"id": "s", "phases": [], "linkLanes": [], "linkTargets": []},
        {"id": "s", "phases": ["G" * 300], "linkLanes": [], "linkTargets": []},
        {"phases": ["Gr"], "linkLanes": ["a"], "linkTargets": ["b"]},
    ],
)
def test_unusable_signal_entities_are_refused(entity: dict[str, Any]) -> None:
    with pytest.raises(SignalEntityError):
        phase_set_from_entity(entity)


# -- the decision core on simulated time ----------------------------------------------------------

TWO_PHASE = derive_phase_set(
    "x",
    "0",
    [("GGrr", 30.0), ("yyrr", 3.0), ("rrrr", 2.0), ("rrGG", 30.0), ("rryy", 3.0), ("rrrr", 2.0)],
    [("n_0", "s_0"), ("n_0", "e_0"), ("w_0", "e_0"), ("w_0", "s_0")],
)


def test_driver_takes_over_at_a_green_and_keeps_min_green() -> None:
    driver = CommandDriver({"x": TWO_PHASE}, 0.0, min_green=10.0, max_green=60.0)
    driver.reported("x", 1, 0.0, held=False)  # the fixed plan's yellow: wait
    assert driver.request({"x": 1}, 1.0) == []
    driver.reported("x", 3, 5.0, held=False)  # its next green: take it over, hold it
    (hold,) = driver.request({"x": 0}, 5.0)
    assert (hold.phase, hold.green) == (3, 1)
    assert driver.request({"x": 0}, 14.0) == []  # min green not yet over
    (switch,) = driver.request({"x": 0}, 15.0)
    assert (switch.phase, switch.green) == (0, 0)
    assert driver.current("x", 17.0) == (0, 0.0, True)  # 3 s yellow + 2 s all-red
    driver.reported("x", 3, 12.0)  # a report from before the switch: ignored
    assert driver.current("x", 20.0) == (0, 0.0, False)
    assert driver.request({"x": 1}, 29.9) == []
    assert [c.green for c in driver.request({"x": 0}, 80.0)] == [1]  # max green ends it


def test_loop_model_estimates_queues_from_counts_and_occupancy() -> None:
    model = LoopModel({"x": TWO_PHASE})
    model.reading("n_0", 60.0, 12.0, 0.1)  # 0.2 veh/s
    model.reading("w_0", 60.0, 6.0, 0.9)  # a queue stood over the loop most of the minute
    model.reading("unknown", 60.0, 50.0, 1.0)  # not a controlled lane: ignored
    model.advance(10.0, ["n_0"])  # n_0 discharges at 0.5 veh/s while it arrives at 0.2
    queues = model.queues(["n_0", "w_0"])
    assert queues[0] == 0.0
    assert queues[1] >= 30.0 / 7.5 + 1.0  # the occupancy floor plus 10 s of arrivals
    brain = LoopBrain({"x": TWO_PHASE}, 0.0, controller="maxpressure", min_green=5.0)
    brain.reported("x", 0, 0.0, held=False)
    brain.reading("w_0", 60.0, 30.0, 0.9)
    assert [c.phase for c in brain.step(1.0)] == [0]  # take-over at the green shown
    assert [c.phase for c in brain.step(6.0)] == [3]  # then serve the queue on w_0
    with pytest.raises(ValueError):
        LoopBrain({"x": TWO_PHASE}, 0.0, controller="fixed")


@pytest.mark.parametrize("name", LOOP_CONTROLLERS)
def test_every_loop_policy_decides_on_estimates(name: str) -> None:
    brain = LoopBrain({"x": TWO_PHASE}, 0.0, controller=name, min_green=5.0)
    brain.reported("x", 0, 0.0, held=False)
    brain.reading("w_0", 60.0, 30.0, 0.9)
    commands = [c.green for t in range(1, 200, 5) for c in brain.step(float(t))]
    assert commands[0] == 0 and 1 in commands  # took over, then served w_0 at some point


def test_sim_clock_follows_the_stamps_at_their_rate() -> None:
    clock = SimClock()
    assert clock.now(0.0) is None
    clock.heard(1000.0, wall=0.0)
    clock.heard(1060.0, wall=6.0)  # a twin at 10x
    clock.heard(1120.0, wall=12.0)
    assert clock.rate > 5.0
    assert 1120.0 < float(clock.now(13.0) or 0) <= 1120.0 + 60.0
    assert clock.now(1e6) == 1120.0 + 60.0  # never more than one interval ahead


# -- the closed loop through a real hub -----------------------------------------------------------


class RecordingLink(PacedLink):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[tuple[float, str, int]] = []

    def report(self, states: dict[str, Any], t: float) -> None:
        super().report(states, t)
        self.reports += [(t, a, int(s["phase"])) for a, s in states.items() if "phase" in s]


def test_closed_loop_commands_reach_the_twin_through_the_hub(hub: EmbeddedHub) -> None:
    loaded = traffic_only()
    twin = Twin(loaded, hours=0.1)
    epoch = start_of_run(loaded)
    link = HubLink(LinkOptions(hub.url, "eco-delta", "http", "eco-delta"), Clock(epoch))
    sensors, actuators = twin.sensors(), twin.actuators()
    link.start(sensors, actuators, twin.assets(), twin.states())
    pacer = Pacer()
    service = _ServiceThread(LiveOptions(hub.url, min_green=MIN_GREEN), pacer)
    report = LoopReport()
    try:
        service.start()
        side = RecordingLink(
            link, pacer, step=twin.step, every=5.0, epoch=epoch.timestamp(),
            loops={s.device_id for s in sensors if s.entity_type == "TrafficFlowObserved"},
            signals={a.actuator_id for a in actuators}, report=report,
        )  # fmt: skip
        result = twin.run(side)
    finally:
        service.stop()
        link.close()
    stats = service.service.stats
    assert stats.signals == 16 and stats.loops == 80 and stats.readings == 80 * 6
    assert stats.failed == 0 and stats.late == 0 and report.late == 0
    applied = [c for c in result.commands if c.command == "commandedPhase"]
    assert len(applied) == stats.commands > 16  # take-overs, then switches
    assert not [c for c in applied if c.error]
    greens = {3, 0}  # eco-delta's two greens are program phases 0 and 3
    assert {c.value for c in applied} <= greens
    for signal_id in {c.actuator_id for c in applied}:
        mine = [c for c in applied if c.actuator_id == signal_id]
        switches = [b for a, b in itertools.pairwise(mine) if a.value != b.value]
        for a, b in itertools.pairwise(switches):  # yellow + all-red + min green
            assert b.applied_from - a.applied_from >= SHORTEST_INTERGREEN + MIN_GREEN - 1e-6
        # the twin's reported phase follows: within 10 s of each command it shows that green
        phases = [(t, p) for t, a, p in side.reports if a == signal_id]
        for command, following in zip(mine, [*mine[1:], None], strict=False):
            end = following.applied_from if following else result.simulated_s + 1
            shown = [p for t, p in phases if command.applied_from + 10 <= t < end]
            assert all(p == command.value for p in shown), (signal_id, command, shown)
    # the hub holds the commands written and the states the twin reported back
    with httpx.Client(base_url=hub.url) as http:
        entity = http.get(
            f"/ngsi-ld/v1/entities/{SIGNAL}B2", params={"options": "keyValues"}
        ).json()
    last = [c for c in applied if c.actuator_id == "tls-B2"][-1]
    assert entity["commandedPhase"] == last.value
    assert entity["held"] is True


def test_the_service_command_line_follows_a_running_twin_and_stops_cleanly(
    hub: EmbeddedHub,
) -> None:
    """`dosi brain run signals --hub URL` as `dosi demo` starts it: live clock, SIGTERM."""
    loaded = traffic_only()
    twin = Twin(loaded, hours=0.05)
    clock = Clock(start_of_run(loaded))
    link = HubLink(LinkOptions(hub.url, "eco-delta", "http", "eco-delta"), clock)
    link.start(twin.sensors(), twin.actuators(), twin.assets(), twin.states())
    service = subprocess.Popen(
        [sys.executable, "-m", "dosi.cli.main", "brain", "run", "signals", "--hub", hub.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert service.stdout is not None
        for raw in service.stdout:
            lines.append(raw.decode(errors="replace"))
            if "controlling 16 signals from 80 loops" in lines[-1]:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "".join(lines)
        result = twin.run(link, speed=30.0)  # 180 simulated seconds in 6 s
        link.close()
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        reader.join(5)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    text = "".join(lines)
    assert service.returncode == 0, text
    assert "commands sent, 0 failed" in text
    applied = [c for c in result.commands if c.command == "commandedPhase" and not c.error]
    assert len({c.actuator_id for c in applied}) == 16, text  # every signal taken over, live
    with httpx.Client(base_url=hub.url) as http:  # released to fixed time on SIGTERM
        entity = http.get(
            f"/ngsi-ld/v1/entities/{SIGNAL}A1", params={"options": "keyValues"}
        ).json()
    assert entity["commandedProgram"] == "0"

"""The traffic adapter on real SUMO (libsumo): eco-delta grid, loops, air cells, signals, closures."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import libsumo
import numpy as np
import pytest
from pydantic import ValidationError

from dosi.twin.config import Profile, clock_seconds
from dosi.twin.model import CommandRejected, DemandSurge, Event, Reading, RoadClosure, SimContext
from dosi.twin.scenario import builtin_path
from dosi.twin.traffic import TrafficConfig, list_closable_edges, open_traffic
from dosi.twin.traffic.config import AirConfig, DemandConfig
from dosi.twin.traffic.demand import generate_trips
from dosi.twin.traffic.network import build
from dosi.twin.traffic.roadnet import read_net
from dosi.twin.traffic.simulator import TrafficSimulator

ORIGIN = (128.905, 35.135)
ECO_DELTA = builtin_path("eco-delta").parent
NET = ECO_DELTA / "traffic" / "eco-delta.net.xml"
ID = re.compile(r"^[A-Za-z0-9_.:~-]{1,200}$")
ARTERIAL_EDGE = "B2-C2"  # Ecodelta-daero eastbound into the arterial crossing


@contextmanager
def simulation(
    tmp_path: Path,
    *,
    seed: int = 42,
    start: str = "07:30",
    duration: float = 600.0,
    events: tuple[Event, ...] = (),
    config: TrafficConfig | None = None,
) -> Iterator[TrafficSimulator]:
    config = config or TrafficConfig()
    ctx = SimContext(
        scenario="eco-delta",
        base_dir=ECO_DELTA,
        workdir=tmp_path,
        placement=config.placement.on(ORIGIN),
        seed=seed,
        start_of_day=clock_seconds(start),
        step=1.0,
        duration=duration,
        events=events,
    )
    sim = open_traffic(config, ctx)
    try:
        yield sim
    finally:
        sim.close()


def run(sim: TrafficSimulator, until: float) -> list[Reading]:
    readings: list[Reading] = []
    t = sim.now
    while t < until:
        t += 1.0
        readings += sim.advance(t)
    return readings


def coordinates(geometry: dict[str, Any]) -> list[list[float]]:
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        return [coords]
    return coords if kind == "LineString" else coords[0]


def test_network_and_locations(tmp_path: Path) -> None:
    with simulation(tmp_path, duration=60) as sim:
        actuators, sensors, assets = sim.actuators(), sim.sensors(), sim.assets()
        assert len(actuators) >= 16
        assert len({s.device_id for s in sensors}) == len(sensors)
        loops = [s for s in sensors if s.entity_type == "TrafficFlowObserved"]
        cells = [s for s in sensors if s.entity_type == "AirQualityObserved"]
        # one loop per incoming lane of the 16 junctions: 12 boundary x 3-4 approaches...
        assert len(loops) == sum(len(j.incoming_lanes) for j in sim.net.signalised()) == 80
        assert len(cells) >= 12
        assert {s.controlled_property for s in loops} == {("trafficFlow",)}
        assert {s.controlled_property for s in cells} == {("airPollution",)}
        for thing in [*sensors, *actuators, *assets]:
            ident = getattr(thing, "device_id", None) or getattr(thing, "actuator_id", None)
            ident = ident or getattr(thing, "asset_id", "")
            assert ID.match(ident), ident
            for lon, lat in coordinates(thing.location):
                # the district is about 2 km across around the scenario origin
                assert abs(lon - ORIGIN[0]) < 0.015 and abs(lat - ORIGIN[1]) < 0.012, ident
        for actuator in actuators:
            assert actuator.entity_type == "TrafficSignal"
            assert actuator.location["type"] == "Point"
            phases = actuator.static["phases"]
            assert isinstance(phases, list) and len(phases) >= 4
            joined = "".join(phases)
            # green, yellow and red phases; permissive ('g') left turns
            assert {"G", "g", "y", "r"} <= set(joined)
        roads = {a.asset_id: a.static for a in assets}
        assert roads[f"road-{ARTERIAL_EDGE}"]["totalLaneNumber"] == 2
        assert roads[f"road-{ARTERIAL_EDGE}"]["maximumAllowedSpeed"] == 60.0
        assert roads["road-A1-B1"]["totalLaneNumber"] == 1
        assert roads["road-A1-B1"]["length"] == pytest.approx(0.486, abs=0.01)  # km
        assert ARTERIAL_EDGE in sim.closable_edges()


def test_builder_reproduces_committed_network(tmp_path: Path) -> None:
    net_file = build(tmp_path)
    for suffix in (".nod.xml", ".edg.xml"):
        committed = (NET.parent / f"eco-delta{suffix}").read_text()
        assert (tmp_path / f"eco-delta{suffix}").read_text() == committed
    # the same roads and signals (netconvert's byte output may vary between SUMO releases)
    built, shipped = read_net(net_file), read_net(NET)
    assert built.edges.keys() == shipped.edges.keys()
    for edge_id, edge in built.edges.items():
        assert len(edge.lanes) == len(shipped.edges[edge_id].lanes)
        assert edge.length == pytest.approx(shipped.edges[edge_id].length, abs=1.0)
    assert built.programs.keys() == shipped.programs.keys()
    assert len(shipped.programs) == 16 and shipped.fringe == built.fringe


def intervals_from_sumo(path: Path) -> dict[tuple[str, float], ET.Element]:
    root = ET.parse(path).getroot()
    return {(i.attrib["id"], float(i.attrib["end"])): i for i in root.iter("interval")}


def test_loop_readings_match_sumo_detector_output(tmp_path: Path) -> None:
    with simulation(tmp_path, duration=900) as sim:
        readings = run(sim, 900)
        output = sim.detector_output
    sumo = intervals_from_sumo(output)
    loops = [r for r in readings if r.device_id.startswith("tfo-")]
    assert {r.time for r in loops} == {60.0 * k for k in range(1, 16)}
    assert len(loops) == 80 * 15
    total = 0
    for reading in loops:
        interval = sumo[(reading.device_id, reading.time)]
        values = reading.values
        assert values["intensity"] == int(interval.attrib["nVehContrib"]), reading
        assert values["occupancy"] == pytest.approx(
            float(interval.attrib["occupancy"]) / 100, abs=0.001
        )
        speed = float(interval.attrib["speed"])
        if speed < 0:
            assert "averageVehicleSpeed" not in values
        else:
            assert values["averageVehicleSpeed"] == pytest.approx(speed * 3.6, abs=0.08)
        assert values["congested"] == (values["occupancy"] >= 0.5)
        total += int(values["intensity"])
    assert total > 1500  # a busy morning peak, not an empty network


def test_air_cells_follow_emissions(tmp_path: Path) -> None:
    with simulation(tmp_path, duration=600) as sim:
        readings = run(sim, 600)
        live_co2 = sim.kpis()["traffic.co2"]
    cells = [r for r in readings if r.device_id.startswith("aqo-")]
    assert {r.time for r in cells} == {300.0, 600.0}
    emitted = sum(float(r.values["co2Emitted"]) for r in cells)
    assert emitted == pytest.approx(live_co2, rel=0.01)
    busiest = max(cells, key=lambda r: float(r.values["co2Emitted"]))
    quiet = min(cells, key=lambda r: float(r.values["co2Emitted"]))
    assert float(busiest.values["co2Emitted"]) > 0
    for key, background in (("co2", 420.0), ("no2", 20.0), ("pm10", 25.0), ("co", 300.0)):
        assert float(quiet.values[key]) >= background
        assert float(busiest.values[key]) > float(quiet.values[key])


def test_sampled_emissions_match_reading_every_step(tmp_path: Path) -> None:
    """Emission rates read every 5 s (the default) against every second: same totals."""
    totals = []
    for sample in (1.0, 5.0):
        config = TrafficConfig(air=AirConfig(sample_every=sample))
        (tmp_path / f"s{sample:g}").mkdir()
        with simulation(tmp_path / f"s{sample:g}", duration=600, config=config) as sim:
            run(sim, 600)
            totals.append(sim.kpis()["traffic.co2"])
    assert totals[0] > 0
    assert totals[1] == pytest.approx(totals[0], rel=0.03)


def test_left_turns_flow_at_every_junction(tmp_path: Path) -> None:
    """Permissive lefts ('g') must not lock up: vehicles turn left at all 16 signals."""
    root = ET.parse(NET).getroot()
    lefts = [
        c.attrib["via"] for c in root.iter("connection") if c.get("dir") == "l" and c.get("tl")
    ]
    turned: dict[str, set[str]] = {}
    with simulation(tmp_path, duration=900) as sim:
        for _ in range(450):
            run(sim, sim.now + 2)
            for lane in lefts:
                junction = lane[1:].split("_")[0]
                turned.setdefault(junction, set()).update(libsumo.lane.getLastStepVehicleIDs(lane))
        assert libsumo.simulation.getStartingTeleportNumber() == 0
    assert len([j for j, vehicles in turned.items() if len(vehicles) >= 5]) == 16
    assert sim.kpis()["traffic.teleports"] == 0


def test_commanded_phase_switches_within_a_step_and_holds(tmp_path: Path) -> None:
    with simulation(tmp_path, duration=400) as sim:
        run(sim, 5)
        tls = "tls-C2"
        phases = next(a for a in sim.actuators() if a.actuator_id == tls).static["phases"]
        assert isinstance(phases, list)
        before = sim.state(tls)
        assert before["program"] == "0" and before["held"] is False
        target = 3 if before["phase"] != 3 else 0
        sim.apply(tls, "commandedPhase", target)
        run(sim, sim.now + 1)
        assert sim.state(tls)["phase"] != before["phase"]  # moving within one step
        run(sim, sim.now + 10)  # past the intergreen (yellow, all-red) from a green
        state = sim.state(tls)
        assert state["phase"] == target and state["held"] is True
        assert state["signalState"] == phases[target]
        assert state["signalState"] == libsumo.trafficlight.getRedYellowGreenState("C2")
        run(sim, sim.now + 200)  # over two fixed-time cycles: still held
        assert sim.state(tls)["phase"] == target
        sim.apply(tls, "commandedPhase", 1.0)  # JSON numbers arrive as floats
        run(sim, sim.now + 1)
        assert sim.state(tls)["phase"] == 1
        sim.apply(tls, "commandedProgram", "0")  # back to the fixed-time plan
        assert sim.state(tls)["held"] is False
        seen = set()
        for _ in range(100):
            run(sim, sim.now + 1)
            seen.add(sim.state(tls)["phase"])
        assert len(seen) >= 4  # cycling again


def test_green_to_green_plays_the_intergreen_first(tmp_path: Path) -> None:
    """A field controller keeps intergreens whatever the hub asks: yellow, all-red, then green."""
    with simulation(tmp_path, duration=300) as sim:
        tls = "tls-C2"
        phases = next(a for a in sim.actuators() if a.actuator_id == tls).static["phases"]
        assert isinstance(phases, list)
        greens = [i for i, p in enumerate(phases) if ("G" in p or "g" in p) and "y" not in p]
        run(sim, 2)
        sim.apply(tls, "commandedPhase", greens[0])  # from wherever it is: hold the first green
        run(sim, sim.now + 10)
        assert sim.state(tls)["phase"] == greens[0]
        sim.apply(tls, "commandedPhase", greens[1])
        shown = []
        for _ in range(12):
            run(sim, sim.now + 1)
            shown.append(libsumo.trafficlight.getRedYellowGreenState("C2"))
        assert shown[0] == phases[greens[0] + 1] and "y" in shown[0]  # yellow within one step
        assert shown[-1] == phases[greens[1]]  # then the commanded green, held
        for before, after in pairwise([phases[greens[0]], *shown]):
            for link, (a, b) in enumerate(zip(before, after, strict=True)):
                assert not (a in "Gg" and b == "r"), (
                    f"link {link} went green -> red: {before}->{after}"
                )
        assert all(state in phases for state in shown)


def test_a_command_during_the_plans_own_yellow_waits_for_its_end(tmp_path: Path) -> None:
    """Regression: a green commanded while the fixed plan showed yellow cut the yellow short."""
    with simulation(tmp_path, duration=300) as sim:
        tls = "tls-C2"
        phases = next(a for a in sim.actuators() if a.actuator_id == tls).static["phases"]
        assert isinstance(phases, list)
        greens = [i for i, p in enumerate(phases) if ("G" in p or "g" in p) and "y" not in p]
        while "y" not in libsumo.trafficlight.getRedYellowGreenState("C2"):
            run(sim, sim.now + 1)
        yellow = libsumo.trafficlight.getPhase("C2")
        previous_green = max(g for g in greens if g < yellow)
        target = next(g for g in greens if g != previous_green)
        left = libsumo.trafficlight.getNextSwitch("C2") - libsumo.simulation.getTime()
        logic = libsumo.trafficlight.getAllProgramLogics("C2")[0]
        all_red = logic.phases[yellow + 1].duration  # the plan's all-red after this yellow
        assert not any(c in logic.phases[yellow + 1].state for c in "GgyY")
        sim.apply(tls, "commandedPhase", target)
        shown = []
        for _ in range(int(left + all_red) + 3):
            run(sim, sim.now + 1)
            shown.append(libsumo.trafficlight.getRedYellowGreenState("C2"))
        # shown[i] is the state i+1 s after the command: the yellow until its switch time
        # (inclusive), then the full all-red, then the commanded green.
        yellow_steps, red_steps = int(left), int(all_red)
        assert shown[:yellow_steps] == [phases[yellow]] * yellow_steps
        assert shown[yellow_steps : yellow_steps + red_steps] == [phases[yellow + 1]] * red_steps
        assert shown[yellow_steps + red_steps] == phases[target]
        assert sim.state(tls)["held"] is True


def test_bad_commands_are_rejected(tmp_path: Path) -> None:
    with simulation(tmp_path, duration=60) as sim:
        run(sim, 2)
        for bad in (99, -1, "two", True, 1.5, None):
            with pytest.raises(CommandRejected):
                sim.apply("tls-A1", "commandedPhase", bad)
        with pytest.raises(CommandRejected, match="programs"):
            sim.apply("tls-A1", "commandedProgram", "rush-hour")
        with pytest.raises(KeyError):
            sim.apply("tls-Z9", "commandedPhase", 0)
        with pytest.raises(KeyError):
            sim.apply("tls-A1", "commandedColour", "green")
        assert sim.state("tls-A1")["held"] is False


def test_road_closure_raises_travel_time(tmp_path: Path) -> None:
    closure = (RoadClosure(edge=ARTERIAL_EDGE, at=0.0),)
    results = {}
    for name, events in (("open", ()), ("closed", closure)):
        with simulation(tmp_path / name, duration=1800, events=events) as sim:
            readings = run(sim, 1800)
        results[name] = sim.kpis()
        if name == "closed":  # nobody passes the loops at the end of the closed road
            on_closed = [r for r in readings if r.device_id.startswith(f"tfo-C2-{ARTERIAL_EDGE}_")]
            assert on_closed and all(r.values["intensity"] == 0 for r in on_closed)
    opened, closed = results["open"], results["closed"]
    assert closed["traffic.mean_travel_time"] > opened["traffic.mean_travel_time"] + 5
    assert closed["traffic.teleports"] == 0


def test_unknown_closure_edge_is_refused_before_sumo_starts(tmp_path: Path) -> None:
    closure = (RoadClosure(edge="B2-C9"),)
    with (
        pytest.raises(ValueError, match=r"no edge 'B2-C9'.*did you mean B2-C2"),
        simulation(tmp_path, events=closure),
    ):
        pass
    assert not libsumo.simulation.isLoaded()
    assert ARTERIAL_EDGE in list_closable_edges(TrafficConfig(), ECO_DELTA)


def all_readings(tmp_path: Path, seed: int) -> tuple[list[Reading], dict[str, float]]:
    with simulation(tmp_path, seed=seed, duration=600) as sim:
        readings = run(sim, 600)
    return readings, sim.kpis()


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    first, kpis = all_readings(tmp_path / "a", seed=7)
    again, kpis_again = all_readings(tmp_path / "b", seed=7)
    other, kpis_other = all_readings(tmp_path / "c", seed=8)
    assert first == again and kpis == kpis_again
    assert first != other and kpis != kpis_other
    assert set(kpis) == {
        "traffic.mean_travel_time",
        "traffic.mean_delay",
        "traffic.mean_speed",
        "traffic.stops",
        "traffic.co2",
        "traffic.arrived",
        "traffic.teleports",
    }
    assert kpis["traffic.arrived"] > 100
    assert 60 < kpis["traffic.mean_travel_time"] < 600
    assert 0 < kpis["traffic.mean_delay"] < kpis["traffic.mean_travel_time"]
    assert kpis["traffic.co2"] > 0 and kpis["traffic.stops"] > 0


def departures(path: Path) -> np.ndarray:
    root = ET.parse(path).getroot()
    return np.array([float(t.attrib["depart"]) for t in root.iter("trip")])


def test_demand_is_seeded_poisson_with_surges(tmp_path: Path) -> None:
    net = read_net(NET)
    flat = DemandConfig(peak_vehicles_per_hour=3600, profile=Profile(points=(("00:00", 1.0),)))
    surge = (DemandSurge(factor=2.0, at=1800.0),)
    common: dict[str, Any] = {"duration": 3600.0, "start_of_day": 0.0}
    one = generate_trips(flat, net, seed=3, events=surge, path=tmp_path / "a.xml", **common)
    two = generate_trips(flat, net, seed=3, events=surge, path=tmp_path / "b.xml", **common)
    assert one.path.read_text() == two.path.read_text()
    times = departures(one.path)
    before, after = int((times < 1800).sum()), int((times >= 1800).sum())
    # 1 vehicle/s, doubled after the surge: Poisson counts within 4 standard deviations
    assert abs(before - 1800) < 4 * math.sqrt(1800)
    assert abs(after - 3600) < 4 * math.sqrt(3600)
    # the weekday profile: the 07:30 peak carries about twice the 06:30 rate
    peak = DemandConfig()
    early = generate_trips(peak, net, seed=3, events=(), path=tmp_path / "c.xml", **common)
    morning = {"duration": 600.0, "events": ()}
    at_0630 = generate_trips(
        peak, net, seed=4, start_of_day=clock_seconds("06:30"), path=tmp_path / "d.xml", **morning
    )
    at_0730 = generate_trips(
        peak, net, seed=4, start_of_day=clock_seconds("07:30"), path=tmp_path / "e.xml", **morning
    )
    assert early.count < one.count  # night-time demand is low
    assert 1.6 < at_0730.count / at_0630.count < 2.8


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValidationError, match="peak_vehicles_per_hour"):
        TrafficConfig.model_validate({"demand": {"peak_vehicles_per_hour": 0}})
    with pytest.raises(ValidationError, match="delivery_share"):
        TrafficConfig.model_validate({"demand": {"truck_share": 0.6, "delivery_share": 0.6}})
    with pytest.raises(ValidationError, match="network"):
        TrafficConfig.model_validate({"network": "roads.xml"})
    with pytest.raises(ValidationError, match="cell_size"):
        TrafficConfig.model_validate({"air": {"cell_size": 10}})
    with pytest.raises(ValidationError, match="colour"):
        TrafficConfig.model_validate({"detectors": {"colour": "red"}})


def test_interval_must_fit_the_step(tmp_path: Path) -> None:
    config = TrafficConfig.model_validate({"detectors": {"interval": 45}})
    ctx = SimContext(
        scenario="eco-delta",
        base_dir=ECO_DELTA,
        workdir=tmp_path,
        placement=config.placement.on(ORIGIN),
        seed=1,
        start_of_day=0.0,
        step=10.0,
        duration=60.0,
    )
    with pytest.raises(ValueError, match=r"detectors\.interval"):
        open_traffic(config, ctx)
    assert not libsumo.simulation.isLoaded()

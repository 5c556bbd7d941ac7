"""The water adapter on the real EPANET solver: L-Town's tagged sensors, bursts, commands, KPIs."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from dosi.twin.config import PlacementConfig
from dosi.twin.model import CommandRejected, DemandSurge, Event, PipeBurst, Reading, SimContext
from dosi.twin.scenario import builtin_path
from dosi.twin.water import WaterConfig, open_water
from dosi.twin.water.network import load_network, parse_tags, read_inp_text
from dosi.twin.water.simulator import WaterSimulator

ECO_DELTA = builtin_path("eco-delta").parent
L_TOWN = ECO_DELTA / "water" / "L-TOWN.inp"
ORIGIN = (128.905, 35.135)
ID = re.compile(r"^[A-Za-z0-9_.:~-]{1,200}$")
PUMP, PRV1 = "water-pump-PUMP_1", "water-valve-PRV-1"

TINY = """[TITLE]
two houses on a hill ; no sensor tags at all
[JUNCTIONS]
 J1  10  1.0  ;a comment that is not a tag
 J2  12  0.5
[RESERVOIRS]
 R1  60
[PIPES]
 P1  R1  J1  400  150  120  0  Open
 P2  J1  J2  300  100  120  0  Open
[OPTIONS]
 Units LPS
 Headloss H-W
[TIMES]
 Duration 24:00
 Hydraulic Timestep 0:05
[COORDINATES]
 R1  0    0
 J1  400  0
 J2  400  300
[END]
"""


def context(
    tmp_path: Path, events: tuple[Event, ...] = (), *, base: Path = ECO_DELTA
) -> SimContext:
    placement = WaterConfig().placement.on(ORIGIN)
    return SimContext("t", base, tmp_path, placement, 7, 7 * 3600.0, 1.0, 7200.0, events)


def run(sim: WaterSimulator, start: int, end: int) -> list[Reading]:
    """Advance second by second, as the engine does."""
    return [r for t in range(start, end + 1) for r in sim.advance(float(t))]


def series(readings: list[Reading]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in readings:
        out[r.device_id].append((r.time, float(next(iter(r.values.values())))))  # type: ignore[arg-type]
    return out


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[WaterSimulator]:
    simulator = open_water(WaterConfig(), context(tmp_path))
    yield simulator
    simulator.close()


def test_tags_come_from_the_network_file() -> None:
    tags = parse_tags(read_inp_text(L_TOWN))
    assert len(tags.pressure) == 33
    assert len(tags.amr) == 82
    assert {"n1", "n4", "n31"} <= set(tags.pressure) & set(tags.amr)  # "AMR & PRESSURE SENSOR"
    assert "n54" in tags.pressure and "n54" not in tags.amr
    assert tags.flow == ("p227", "p235", "PUMP_1")
    assert tags.level == ("T1",)
    assert parse_tags(TINY) == type(tags)()  # no tags: no sensors, no error


def test_sensors_actuators_and_assets_are_placed_and_named(sim: WaterSimulator) -> None:
    sensors = sim.sensors()
    kinds = Counter((s.entity_type, s.controlled_property[0]) for s in sensors)
    assert kinds == {
        ("DeviceMeasurement", "pressure"): 33,
        ("DeviceMeasurement", "waterConsumption"): 82,
        ("WaterObserved", "flow"): 3,
        ("WaterObserved", "fillingLevel"): 1,
    }
    assets = sim.assets()
    assert Counter(a.entity_type for a in assets) == {"Pipe": 905, "Tank": 1, "Reservoir": 2}
    assert {a.actuator_id for a in sim.actuators()} == {
        PUMP,
        PRV1,
        "water-valve-PRV-2",
        "water-valve-PRV-3",
    }
    ids = [s.device_id for s in sensors] + [a.actuator_id for a in sim.actuators()]
    ids += [a.asset_id for a in assets]
    assert len(set(ids)) == len(ids) and all(ID.match(i) for i in ids)
    points = [s.location for s in sensors] + [a.location for a in sim.actuators()]
    lines = [a.location for a in assets if a.entity_type == "Pipe"]
    assert {g["type"] for g in points} == {"Point"} and {g["type"] for g in lines} == {"LineString"}
    coords = [g["coordinates"] for g in points] + [c for g in lines for c in g["coordinates"]]
    lons, lats = [c[0] for c in coords], [c[1] for c in coords]
    # L-Town (2.7 x 1.5 km) centred on the origin: within ~1.5 km east-west, ~0.8 km north-south
    assert ORIGIN[0] - 0.016 < min(lons) < max(lons) < ORIGIN[0] + 0.016
    assert ORIGIN[1] - 0.0085 < min(lats) < max(lats) < ORIGIN[1] + 0.0085
    pipe = next(a for a in assets if a.asset_id == "water-pipe-p227")
    assert pipe.static["diameter"] == 0.2 and pipe.static["length"] == pytest.approx(
        26.91, abs=0.01
    )
    amr = next(s for s in sensors if s.device_id == "water-amr-n2")
    assert [m.unit_code for m in amr.measures] == ["MTQ"]


def test_readings_arrive_at_their_intervals_with_sensible_values(sim: WaterSimulator) -> None:
    readings = run(sim, 1, 1800)
    assert [r.time for r in readings] == sorted(r.time for r in readings)
    by_id = series(readings)
    assert len(by_id) == 33 + 3 + 1 + 82
    for device, values in by_id.items():
        times = [t for t, _ in values]
        step = 900 if device.startswith("water-amr") else 60
        assert times == [float(step * k) for k in range(1, 1800 // step + 1)], device
        for _, v in values:
            if device.startswith("water-pressure"):
                assert 15 < v < 90, (device, v)  # metres of head at a 07:00 peak
            elif device.startswith("water-flow"):
                assert 0.005 < v < 0.1, (device, v)  # m3/s from a reservoir or the pump
            elif device.startswith("water-level"):
                assert 0 < v <= 4, (device, v)
            else:
                assert 0 <= v < 5, (device, v)  # m3 over 15 minutes at one node
    inflow = sum(v for d in ("water-flow-p227", "water-flow-p235") for _, v in by_id[d][-15:]) * 60
    metered = sum(v for d, vs in by_id.items() if d.startswith("water-amr") for _, v in vs[-1:])
    assert 0.05 * inflow < metered < inflow  # 82 of 782 junctions are metered
    level = [v for _, v in by_id["water-level-T1"]]
    assert level[-1] > level[0]  # the pump fills T1 during the morning


def test_advancing_in_big_steps_gives_the_same_readings(
    tmp_path: Path, sim: WaterSimulator
) -> None:
    fine = run(sim, 1, 1200)
    other = open_water(WaterConfig(), context(tmp_path / "b"))
    coarse = other.advance(500.0) + other.advance(1200.0)
    other.close()
    assert coarse == fine


def near(node: str, count: int) -> list[str]:
    """The pressure sensors closest to a node."""
    net = load_network(L_TOWN)
    x, y = net.node_xy(node)
    ranked = sorted(net.tags.pressure, key=lambda n: math.dist((x, y), net.node_xy(n)))
    return [f"water-pressure-{n}" for n in ranked[:count]]


def test_a_burst_lowers_pressure_nearby_and_loses_water(tmp_path: Path) -> None:
    at, node = 600, "n420"
    results = {}
    for name, events in (("base", ()), ("burst", (PipeBurst(node, at=at),))):
        sim = open_water(WaterConfig(), context(tmp_path / name, events))
        results[name] = (series(run(sim, 1, 1800)), sim)
        sim.close()
    base, base_sim = results["base"]
    burst, burst_sim = results["burst"]
    for device in near(node, 3):
        before = [v for t, v in burst[device] if t < at]
        assert before == [v for t, v in base[device] if t < at]  # nothing before `at`
        drop = base[device][-1][1] - burst[device][-1][1]
        assert drop > 0.3, (device, drop)
    assert burst["water-flow-p227"][-1][1] > base["water-flow-p227"][-1][1]  # sources feed it
    assert base_sim.kpis()["water.leak_volume"] == 0
    leak = burst_sim.kpis()["water.leak_volume"]
    assert 5 < leak < 30  # ~11 L/s for 20 minutes with the default coefficient (2 L/s/m^0.5)
    assert burst_sim.kpis()["water.mean_pressure"] < base_sim.kpis()["water.mean_pressure"]


def test_a_huge_burst_leaves_demand_unserved(tmp_path: Path) -> None:
    sim = open_water(WaterConfig(), context(tmp_path, (PipeBurst("n420", 0, 40.0),)))
    run(sim, 1, 600)
    sim.close()
    kpis = sim.kpis()
    assert kpis["water.min_pressure"] < 20  # below the PDA required pressure
    assert kpis["water.unserved_demand"] > 0


def test_a_demand_surge_raises_metered_consumption(tmp_path: Path) -> None:
    sim = open_water(WaterConfig(), context(tmp_path, (DemandSurge(1.3, at=900),)))
    base = open_water(WaterConfig(), context(tmp_path / "b"))
    surged, plain = series(run(sim, 1, 1800)), series(run(base, 1, 1800))
    sim.close()
    base.close()
    total = {
        name: [sum(vs[k][1] for d, vs in s.items() if d.startswith("water-amr")) for k in (0, 1)]
        for name, s in (("surge", surged), ("plain", plain))
    }
    assert total["surge"][0] == pytest.approx(total["plain"][0], rel=1e-9)
    assert total["surge"][1] / total["plain"][1] == pytest.approx(1.3, rel=0.01)  # PDA: all served


def test_unknown_burst_node_and_bad_sensor_ids_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"PipeBurst\.node: 'n9999' is not a junction"):
        open_water(WaterConfig(), context(tmp_path, (PipeBurst("n9999"),)))
    with pytest.raises(ValueError, match=r"PipeBurst\.node: 'T1' is not a junction"):
        open_water(WaterConfig(), context(tmp_path, (PipeBurst("T1"),)))
    config = WaterConfig.model_validate({"sensors": {"extra_flow": ["nope"]}})
    with pytest.raises(ValueError, match=r"water.sensors.extra_flow: 'nope'"):
        open_water(config, context(tmp_path))


def test_valve_commands_act_within_one_hydraulic_step(sim: WaterSimulator) -> None:
    run(sim, 1, 100)
    assert sim.state(PRV1) == {"status": "active", "setting": 40.0}
    sim.apply(PRV1, "commandedStatus", "closed")
    assert sim.state(PRV1) == {"status": "closed", "setting": 40.0}  # read back from EPANET
    flows = series(run(sim, 101, 120))["water-flow-p227"]
    assert flows == [(120.0, 0.0)]  # R1 feeds the network only through PRV-1
    sim.apply(PRV1, "commandedSetting", 35)  # kept while closed
    assert sim.state(PRV1) == {"status": "closed", "setting": 35.0}
    sim.apply(PRV1, "commandedStatus", "active")
    assert sim.state(PRV1) == {"status": "active", "setting": 35.0}
    low = series(run(sim, 121, 180))["water-flow-p227"][0][1]
    sim.apply(PRV1, "commandedSetting", 45.5)
    high = series(run(sim, 181, 240))["water-flow-p227"][0][1]
    assert 0 < low < high  # a higher downstream pressure draws more from R1
    assert sim.state(PRV1) == {"status": "active", "setting": 45.5}


def test_pump_commands_act_and_state_reflects_them(sim: WaterSimulator) -> None:
    before = series(run(sim, 1, 60))["water-flow-PUMP_1"][0][1]
    sim.apply(PUMP, "commandedStatus", "off")
    assert sim.state(PUMP) == {"status": "off", "speed": 1.0}
    assert series(run(sim, 61, 120))["water-flow-PUMP_1"] == [(120.0, 0.0)]
    sim.apply(PUMP, "commandedSpeed", 1.3)  # kept while off
    assert sim.state(PUMP) == {"status": "off", "speed": 1.3}
    sim.apply(PUMP, "commandedStatus", "On")
    assert sim.state(PUMP) == {"status": "on", "speed": 1.3}
    faster = series(run(sim, 121, 180))["water-flow-PUMP_1"][0][1]
    assert faster > before > 0


@pytest.mark.parametrize(
    ("actuator", "command", "value", "error"),
    [
        (PUMP, "commandedSpeed", 0, CommandRejected),
        (PUMP, "commandedSpeed", 2.5, CommandRejected),
        (PUMP, "commandedSpeed", "fast", CommandRejected),
        (PUMP, "commandedStatus", "maybe", CommandRejected),
        (PUMP, "commandedStatus", 1, CommandRejected),
        (PRV1, "commandedSetting", -5, CommandRejected),
        (PRV1, "commandedSetting", math.inf, CommandRejected),
        (PRV1, "commandedSetting", True, CommandRejected),
        (PRV1, "commandedStatus", "ajar", CommandRejected),
        (PUMP, "commandedSetting", 40, KeyError),
        ("water-valve-nope", "commandedStatus", "open", KeyError),
    ],
)
def test_bad_commands_are_rejected_and_change_nothing(
    sim: WaterSimulator, actuator: str, command: str, value: object, error: type[Exception]
) -> None:
    states = {a.actuator_id: sim.state(a.actuator_id) for a in sim.actuators()}
    with pytest.raises(error):
        sim.apply(actuator, command, value)
    assert {a.actuator_id: sim.state(a.actuator_id) for a in sim.actuators()} == states


def test_same_inputs_give_identical_readings_and_kpis(tmp_path: Path) -> None:
    events = (PipeBurst("n300", at=300, emitter_coefficient=3.0), DemandSurge(1.2, at=900))
    outcomes = []
    for name in ("one", "two"):
        sim = open_water(WaterConfig(), context(tmp_path / name, events))
        readings = run(sim, 1, 600)
        sim.apply(PUMP, "commandedStatus", "off")
        readings += run(sim, 601, 1200)
        sim.close()
        outcomes.append((readings, sim.kpis(), sim.state(PUMP)))
    assert outcomes[0] == outcomes[1]
    kpis = outcomes[0][1]
    assert set(kpis) == {
        "water.min_pressure",
        "water.mean_pressure",
        "water.unserved_demand",
        "water.leak_volume",
    }
    assert (
        kpis["water.leak_volume"] > 0
        and 0 < kpis["water.min_pressure"] < kpis["water.mean_pressure"]
    )
    assert outcomes[0][2] == {"status": "off", "speed": 1.0}  # state() still answers after close()


def test_closed_simulator_refuses_to_advance(sim: WaterSimulator) -> None:
    sim.close()
    sim.close()
    with pytest.raises(RuntimeError, match="closed"):
        sim.advance(1.0)


def test_any_network_file_works_with_explicit_sensors(tmp_path: Path) -> None:
    (tmp_path / "tiny.inp").write_text(TINY, encoding="latin-1")
    config = WaterConfig.model_validate(
        {
            "network": "tiny.inp",
            "sensors": {"extra_pressure": ["J2"], "extra_flow": ["P1"], "extra_amr": ["J1"]},
            "placement": PlacementConfig(),
        }
    )
    sim = open_water(config, context(tmp_path / "work", base=tmp_path))
    by_id = series(run(sim, 1, 900))
    sim.close()
    assert set(by_id) == {"water-pressure-J2", "water-flow-P1", "water-amr-J1"}
    assert by_id["water-flow-P1"][-1][1] == pytest.approx(0.0015, rel=0.01)  # 1.5 L/s demand
    assert by_id["water-amr-J1"] == [(900.0, pytest.approx(0.9, rel=0.01))]  # 1 L/s for 900 s
    assert 30 < by_id["water-pressure-J2"][-1][1] < 48  # 60 m head, 12 m elevation, friction


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        ({"network": "net.txt"}, "network", "ending in .inp"),
        ({"hydraulic_step": 0}, "hydraulic_step", "greater than or equal to 1"),
        ({"sensors": {"pressure_interval": 30.5}}, "sensors.pressure_interval", "integer"),
        ({"sensors": {"extra_amr": ["a b"]}}, "sensors.extra_amr", "not an EPANET id"),
        ({"demand": {"model": "magic"}}, "demand.model", "'PDA' or 'DDA'"),
        (
            {"demand": {"minimum_pressure": 25, "required_pressure": 20}},
            "demand",
            "required_pressure must be greater than demand.minimum_pressure",
        ),
        ({"burst_coefficient": -1}, "burst_coefficient", "greater than 0"),
        ({"no_such": 1}, "no_such", "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, object], where: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WaterConfig.model_validate(data)
    error = caught.value.errors()[0]
    assert ".".join(str(p) for p in error["loc"]) == where
    assert message in error["msg"]


def test_defaults_are_eco_delta() -> None:
    config = WaterConfig()
    assert config.network == "water/L-TOWN.inp" and (ECO_DELTA / config.network).is_file()
    assert config.demand.model == "PDA" and config.placement.offset == (-1485.0, -848.0)
    assert (ECO_DELTA / "water" / "ATTRIBUTION.md").read_text().count("CC BY 4.0") >= 1

"""Runs without a hub: determinism, and what-if comparisons (two processes, a chart)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from twinhelpers import scenario_with

from dosi.twin import entities
from dosi.twin.chart import kpi_chart
from dosi.twin.engine import Twin
from dosi.twin.entities import Clock
from dosi.twin.model import PipeBurst, RoadClosure
from dosi.twin.whatif import compare


def test_one_seed_gives_identical_kpis_and_another_seed_does_not(tmp_path: Path) -> None:
    loaded = scenario_with(tmp_path, "traffic", "water", "power", name="seeded")
    first = Twin(loaded, hours=0.2).run()
    again = Twin(loaded, hours=0.2).run()
    other = Twin(loaded, seed=7, hours=0.2).run()
    assert first.kpis == again.kpis
    assert first.readings == again.readings
    assert {k.split(".")[0] for k in first.kpis} == {"traffic", "water", "power"}
    assert first.kpis["traffic.arrived"] > 0
    assert other.kpis != first.kpis


def test_a_pipe_burst_lowers_pressure_and_loses_water(tmp_path: Path) -> None:
    loaded = scenario_with(tmp_path, "water", name="burst")
    result = compare(str(loaded.source), PipeBurst("n4", at=600), hours=1.0)
    base, burst = result.baseline.kpis, result.variant.kpis
    assert base["water.leak_volume"] == 0
    assert burst["water.leak_volume"] > 1.0
    assert burst["water.min_pressure"] < base["water.min_pressure"]
    chart = kpi_chart(base, burst, "burst at n4", tmp_path / "burst.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_road_closure_raises_mean_travel_time(tmp_path: Path) -> None:
    loaded = scenario_with(tmp_path, "traffic", name="closure")
    twin = Twin(loaded, hours=0.01)
    edge = twin.simulators[0].busiest_edge()  # type: ignore[attr-defined]
    twin.close()
    result = compare(str(loaded.source), RoadClosure(edge), hours=0.75)
    base, closed = result.baseline.kpis, result.variant.kpis
    assert closed["traffic.mean_travel_time"] > base["traffic.mean_travel_time"]


def test_everything_the_twin_sends_is_plain_json(tmp_path: Path) -> None:
    """Regression: a numpy float in a static attribute broke the batch transport (orjson)."""
    loaded = scenario_with(tmp_path, "traffic", "water", "power", name="plain")
    twin = Twin(loaded, hours=0.1)
    clock = Clock(datetime(2026, 11, 25, 7, 30, tzinfo=UTC))
    sensors = {s.device_id: s for s in twin.sensors()}
    documents: list[object] = [
        *(entities.provisioning("plain", s) for s in sensors.values()),
        *(entities.observation_entity("plain", s) for s in sensors.values()),
        *(entities.device_entity("plain", s) for s in sensors.values()),
        *(entities.asset_entity("plain", a) for a in twin.assets()),
        *(
            entities.actuator_entity("plain", a, twin.states()[a.actuator_id], clock.at(0))
            for a in twin.actuators()
        ),
    ]
    readings = []
    for k in range(1, 361):
        readings.extend(r for sim in twin.simulators for r in sim.advance(float(k)))
    twin.close()
    assert {sensors[r.device_id].entity_type for r in readings} >= {
        "TrafficFlowObserved", "DeviceMeasurement", "WaterObserved",
        "ThreePhaseAcMeasurement", "SolarEnergy",
    }  # fmt: skip
    for reading in readings:
        sensor = sensors[reading.device_id]
        documents.append(entities.measurement(reading, sensor.interval, clock))
        documents.append(entities.observation_update("plain", sensor, reading, clock))
    for document in documents:
        orjson.dumps(document)  # raises on numpy scalars and other non-JSON values


def test_no_state_written_back_is_a_command_attribute(tmp_path: Path) -> None:
    """Regression: a battery wrote `commandedActivePower` back as its state, which could
    overwrite a service's newer command in the hub. Each command starts at its state."""
    loaded = scenario_with(tmp_path, "traffic", "water", "power", name="cmds")
    twin = Twin(loaded, hours=0.01)
    try:
        states = twin.states()
        for actuator in twin.actuators():
            state = states[actuator.actuator_id]
            assert not set(state) & set(actuator.commands), actuator.actuator_id
            for command in actuator.commands:
                assert entities.initial_command(command, state) != "", (actuator, command)
    finally:
        twin.close()

"""The twin against a real hub: sensors in through the IoT agent, commands out through the stream."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from twinhelpers import scenario_with

from dosi.cli.main import main
from dosi.twin.engine import RunResult, Twin
from dosi.twin.entities import Clock, actuator_id, observation_id
from dosi.twin.hubproc import EmbeddedHub
from dosi.twin.link import HubLink, LinkOptions

EPOCH = datetime(2026, 11, 25, 7, 30, tzinfo=ZoneInfo("Asia/Seoul"))
API = "/ngsi-ld/v1"


def connect(
    twin: Twin, url: str, scenario: str, transport: str = "http", mqtt: str | None = None
) -> HubLink:
    link = HubLink(LinkOptions(url, scenario, transport, scenario, mqtt), Clock(EPOCH))  # type: ignore[arg-type]
    link.start(twin.sensors(), twin.actuators(), twin.assets(), twin.states())
    return link


def seconds(stamp: str) -> float:
    return (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - EPOCH).total_seconds()


def history(url: str, entity_id: str, attr: str) -> list[tuple[Any, float]]:
    """(value, simulated second) of every stored instance of one attribute, oldest first."""
    response = httpx.get(
        f"{url}{API}/temporal/entities/{entity_id}",
        params={
            "attrs": attr,
            "options": "temporalValues",
            "timerel": "after",
            "timeAt": (EPOCH - timedelta(hours=1)).isoformat(),
            "lastN": "1000",
        },
        timeout=10,
    )
    assert response.status_code in (200, 206), response.text
    values = response.json().get(attr, {}).get("values", [])
    return sorted(((v, seconds(t)) for v, t in values), key=lambda p: p[1])


def test_detector_counts_in_the_hub_equal_sumo_own_output(hub: EmbeddedHub, tmp_path: Path) -> None:
    loaded = scenario_with(tmp_path, "traffic", name="detect")
    twin = Twin(loaded, hours=0.25, workdir=tmp_path / "run")
    traffic = twin.simulators[0]
    link = connect(twin, hub.url, "detect")
    result = twin.run(link)
    link.close()
    assert link.stats.failed == 0, link.stats.first_error
    assert result.readings > 0
    sumo: dict[tuple[str, float], int] = {}
    for interval in ET.parse(traffic.detector_output).getroot().iter("interval"):  # type: ignore[attr-defined]
        sumo[(interval.get("id", ""), float(interval.get("end", "0")))] = int(
            float(interval.get("nVehContrib", "0"))
        )
    loops = [s for s in twin.sensors() if s.entity_type == "TrafficFlowObserved"]
    assert len(loops) >= 32
    compared = 0
    busy = 0
    for sensor in loops[:: max(1, len(loops) // 12)]:
        stored = history(hub.url, observation_id("detect", sensor), "intensity")
        assert len(stored) == 15  # one per minute for a quarter hour
        for value, end in stored:
            assert sumo[(traffic.detector_of(sensor.device_id), end)] == value
            compared += 1
            busy += value > 0
    assert compared >= 12 * 15 and busy > 0


def run_in_background(
    twin: Twin, link: HubLink, speed: float
) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(twin.run(link, speed=speed)))
    thread.start()
    return thread, results


def test_a_signal_command_through_the_hub_changes_sumo_within_one_step(
    hub: EmbeddedHub, tmp_path: Path
) -> None:
    loaded = scenario_with(tmp_path, "traffic", name="signals")
    twin = Twin(loaded, hours=0.1)
    link = connect(twin, hub.url, "signals")
    signal = twin.actuators()[0]
    entity = actuator_id("signals", signal)
    phases = list(signal.static["phases"])  # type: ignore[arg-type]
    start = twin.states()[signal.actuator_id]
    target = next(
        i
        for i, p in enumerate(phases)
        if "G" in p and i != start["phase"] and p != phases[int(start["phase"])]  # type: ignore[call-overload]
    )
    thread, results = run_in_background(twin, link, speed=30.0)
    try:
        time.sleep(1.0)
        response = httpx.patch(
            f"{hub.url}{API}/entities/{entity}/attrs",
            json={"commandedPhase": {"type": "Property", "value": target}},
            timeout=10,
        )
        assert response.status_code == 204, response.text
    finally:
        thread.join(60)
        link.close()
    (result,) = results
    applied = [c for c in result.commands if c.actuator_id == signal.actuator_id]
    assert [(c.command, c.value, c.error) for c in applied] == [("commandedPhase", target, "")]
    heard = applied[0].heard_at
    phase_history = history(hub.url, entity, "phase")
    # The change shows at once (written back at the tick that heard it); from another green
    # the signal first plays its yellow and all-red, then the commanded green.
    at_command = next(value for value, t in phase_history if t >= heard)
    assert at_command == target or "y" in phases[at_command]
    first = next(t for value, t in phase_history if value == target and t >= heard)
    assert first - heard <= twin.step + 10  # the intergreen, reported on the 5 s grid
    # Held until the end: a controller's phase stays until its next command.
    assert phase_history[-1][0] == target
    final = httpx.get(f"{hub.url}{API}/entities/{entity}", params={"options": "keyValues"}).json()
    assert final["phase"] == target
    assert final["signalState"] == phases[target]
    assert final["commandedPhase"] == target


def test_a_bad_command_is_refused_and_the_twin_goes_on(hub: EmbeddedHub, tmp_path: Path) -> None:
    loaded = scenario_with(tmp_path, "traffic", name="badcmd")
    twin = Twin(loaded, hours=0.05)
    link = connect(twin, hub.url, "badcmd")
    signal = twin.actuators()[0]
    thread, results = run_in_background(twin, link, speed=30.0)
    try:
        time.sleep(1.0)
        httpx.patch(
            f"{hub.url}{API}/entities/{actuator_id('badcmd', signal)}/attrs",
            json={"commandedPhase": {"type": "Property", "value": 999}},
            timeout=10,
        ).raise_for_status()
    finally:
        thread.join(60)
        link.close()
    (result,) = results
    (refused,) = [c for c in result.commands if c.actuator_id == signal.actuator_id]
    assert refused.error and "999" in refused.error
    assert result.simulated_s == pytest.approx(180.0)


def test_water_readings_arrive_over_mqtt(mqtt_broker: str, tmp_path: Path) -> None:
    loaded = scenario_with(tmp_path, "water", name="mqttwater")
    twin = Twin(loaded, hours=0.5)
    with EmbeddedHub(tmp_path / "hub", mqtt_url=mqtt_broker) as hub:
        link = connect(twin, hub.url, "mqttwater", transport="mqtt", mqtt=mqtt_broker)
        result = twin.run(link)
        link.close()
        pressure = next(s for s in twin.sensors() if "pressure" in s.controlled_property)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stored = history(hub.url, observation_id("mqttwater", pressure), "numValue")
            if len(stored) >= 1800 / pressure.interval:
                break
            time.sleep(0.2)
    assert result.readings > 0
    assert len(stored) == 1800 / pressure.interval
    assert all(10 < value < 150 for value, _ in stored)


def test_cli_runs_a_scenario_into_an_embedded_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario_with(tmp_path, "power", name="clipower")
    code = main(
        [
            "twin",
            "run",
            str(tmp_path / "scenario.toml"),
            "--hours",
            "0.25",
            "--data",
            str(tmp_path / "data"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0.25 h simulated" in out and "0 failed" in out

"""Scenario files: the built-in one loads; a broken one fails with one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dosi.cli.main import main
from dosi.twin.model import DemandSurge, PipeBurst, PvDrop, RoadClosure
from dosi.twin.scenario import ScenarioError, builtin_path, load_scenario, parse_speed
from dosi.twin.whatif import parse_what_if

MINIMAL = """
[scenario]
name = "tiny"
[site]
origin = [128.9, 35.1]
[water]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_eco_delta_has_all_three_simulators() -> None:
    loaded = load_scenario("eco-delta")
    scenario = loaded.scenario
    assert scenario.name == "eco-delta"
    assert scenario.domains() == ["traffic", "water", "power"]
    assert scenario.site.timezone == "Asia/Seoul"
    assert loaded.base_dir == builtin_path("eco-delta").parent
    assert scenario.site.origin == (128.905, 35.135)


def test_a_folder_means_its_scenario_toml(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    assert load_scenario(tmp_path).scenario.domains() == ["water"]


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        (("[site]", "[clock]\nstep = -1\n[site]"), "clock.step", "greater than 0"),
        (("[site]", "[clock]\nspeed = 'fast'\n[site]"), "clock.speed", "'max', 'realtime'"),
        (("[site]", "[clock]\nstart = '25:00'\n[site]"), "clock.start", "not a time of day"),
        (("origin = [128.9, 35.1]", "origin = [500, 35.1]"), "site.origin", "longitude"),
        (("[site]", "[hub]\ntransport = 'carrier-pigeon'\n[site]"), "hub.transport", "http"),
        (("[water]", "[water]\nno_such_setting = 1"), "water.no_such_setting", "unknown field"),
        (('name = "tiny"', 'name = "a b"'), "scenario.name", "letters, digits"),
        (("[site]\norigin = [128.9, 35.1]", "[site]"), "site.origin", "Field required"),
    ],
)
def test_a_broken_scenario_names_the_field(
    tmp_path: Path, patch: tuple[str, str], field: str, message: str
) -> None:
    path = write(tmp_path, MINIMAL.replace(*patch))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert text.startswith(f"scenario.toml: {field}: "), text
    assert message in text
    assert "\n" not in text


def test_not_toml_and_no_simulator_and_no_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(write(tmp_path, "[scenario\nname = 1"))
    with pytest.raises(ScenarioError, match=r"needs \[traffic\], \[water\] or \[power\]"):
        load_scenario(write(tmp_path, MINIMAL.replace("[water]", "")))
    with pytest.raises(ScenarioError, match="built-in scenarios: eco-delta"):
        load_scenario(tmp_path / "missing.toml")


def test_speed_forms() -> None:
    assert parse_speed("max") is None
    assert parse_speed("realtime") == 1.0
    assert parse_speed("50x") == 50.0
    assert parse_speed("2.5x") == 2.5
    for bad in ("0x", "x", "fast", "-3x"):
        with pytest.raises(ValueError):
            parse_speed(bad)


def test_what_if_forms() -> None:
    assert parse_what_if("road-closure:E1") == RoadClosure("E1")
    assert parse_what_if("pipe-burst:n215") == PipeBurst("n215")
    assert parse_what_if("pipe-burst:n215:3@30m") == PipeBurst("n215", 1800.0, 3.0)
    assert parse_what_if("pv-drop") == PvDrop(0.7)
    assert parse_what_if("pv-drop:0.5") == PvDrop(0.5)
    assert parse_what_if("demand-surge:1.5@10m") == DemandSurge(1.5, 600.0)
    for bad in ("road-closure", "pv-drop:2", "demand-surge:-1", "flood:n1", "pipe-burst:n1:x"):
        with pytest.raises(ValueError, match="not a what-if"):
            parse_what_if(bad)


def test_cli_validate_ok_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twin", "validate", "eco-delta"]) == 0
    assert "eco-delta" in capsys.readouterr().out
    path = write(tmp_path, MINIMAL.replace("[site]", "[clock]\nhours = 0\n[site]"))
    assert main(["twin", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dosi: error: scenario.toml: clock.hours: ")
    assert len(err.splitlines()) == 1


def test_cli_rejects_a_bad_what_if_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twin", "run", "eco-delta", "--what-if", "flood:everywhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dosi: error: not a what-if: 'flood:everywhere'")

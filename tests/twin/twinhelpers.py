"""Short scenarios built from eco-delta's own files, for the twin tests."""

from __future__ import annotations

from pathlib import Path

from dosi.twin.scenario import LoadedScenario, builtin_path, load_scenario

ECO_DELTA = builtin_path("eco-delta").parent


def scenario_with(
    tmp_path: Path, *domains: str, name: str = "t", extra: str = ""
) -> LoadedScenario:
    """eco-delta reduced to some simulators (its files referred to by absolute path)."""
    sections = {
        "traffic": f'[traffic]\nnetwork = "{ECO_DELTA}/traffic/eco-delta.net.xml"\n',
        "water": f'[water]\nnetwork = "{ECO_DELTA}/water/L-TOWN.inp"\n',
        "power": "[power]\n",
    }
    text = (
        f'[scenario]\nname = "{name}"\n[site]\norigin = [128.905, 35.135]\n'
        'timezone = "Asia/Seoul"\n[clock]\nstart = "07:30"\n'
        + extra
        + "".join(sections[d] for d in domains)
    )
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)

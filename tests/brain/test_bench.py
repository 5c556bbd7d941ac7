"""A smoke run of `dosi bench signals` (the full benchmark runs outside `make test`)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from dosi.brain.signals.bench import PUBLISHED_DELAY, jobs_for, markdown, run_jobs, summarise
from dosi.brain.signals.resco import resco_root
from dosi.cli.main import main

needs_resco = pytest.mark.skipif(
    resco_root() is None and os.environ.get("CI") != "true",
    reason='RESCO maps need sumo-rl: pip install "sumo-rl==1.4.5"',
)


@needs_resco
def test_cli_smoke_run_writes_table_csv_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["bench", "signals", "--maps", "cologne1,grid4x4", "--controllers", "fixed,maxpressure",
         "--seeds", "2", "--duration", "300", "--workers", "2", "--out", str(tmp_path)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cologne1" in out and "grid4x4" in out and "33.0" in out  # published grid4x4 figure
    with (tmp_path / "signals.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 2
    assert {(r["map"], r["controller"], r["seed"]) for r in rows} == {
        (m, c, s) for m in ("cologne1", "grid4x4") for c in ("fixed", "maxpressure") for s in "01"
    }
    for row in rows:
        assert 0 <= float(row["delay"]) < float(row["trip_time"])
        assert int(float(row["arrived"])) > 0
    # Seeds change the demand's randomness, so two seeds of one run differ somewhere.
    fixed = [r for r in rows if r["map"] == "grid4x4" and r["controller"] == "fixed"]
    assert fixed[0]["delay"] != fixed[1]["delay"] or fixed[0]["arrived"] != fixed[1]["arrived"]
    assert (tmp_path / "signals-delay.png").read_bytes()[:4] == b"\x89PNG"
    assert "| grid4x4 |" in (tmp_path / "signals.md").read_text(encoding="utf-8")


def test_unknown_maps_and_controllers_are_named() -> None:
    with pytest.raises(ValueError, match="unknown: atlantis, psychic"):
        jobs_for(["atlantis"], ["psychic"], range(1), None)


def test_cli_refuses_unknown_names_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "signals", "--maps", "atlantis"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dosi: error: unknown: atlantis") and len(err.splitlines()) == 1


@needs_resco
def test_summary_marks_the_lowest_delay() -> None:
    jobs = jobs_for(["cologne1"], ["fixed", "greedy"], range(1), 240)
    results = run_jobs(jobs, 2)
    summary = summarise(results)
    cells = summary["cologne1"]
    best = min(cells, key=lambda c: cells[c].mean["delay"])
    table = markdown(summary, ["fixed", "greedy"])
    assert f"**{cells[best].mean['delay']:.1f}**" in table
    assert set(PUBLISHED_DELAY) == {"cologne8", "ingolstadt21", "grid4x4"}

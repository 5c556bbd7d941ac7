"""The signal-control benchmark: every controller on the RESCO maps, several seeds, in parallel.

Each run is one (map, controller, seed) in a worker process (libsumo holds one
simulation per process), over the map's own begin/end times from its .sumocfg.
Results are kept per run (CSV) and summarised per map and controller (mean over
seeds) in a table, a Markdown table for bench/RESULTS.md and a bar chart of
average delay. The published RESCO figures are printed beside ours, but absolute
numbers move between SUMO versions: only the baselines measured in the same run
are a fair comparison.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from dosi.brain.signals.controllers import CONTROLLERS
from dosi.brain.signals.resco import MAPS, resco_config
from dosi.brain.signals.run import RunOptions, run

# Best published average delay (s) per map, from the RESCO paper's data (Ault & Sharon,
# NeurIPS 2021 Datasets and Benchmarks), as the issue quotes them.
PUBLISHED_DELAY = {"cologne8": 21.6, "ingolstadt21": 59.6, "grid4x4": 33.0}
METRICS = ("delay", "trip_time", "waiting_time", "queue_per_lane", "arrived", "teleports")
FIELDS = ("map", "controller", "seed", *METRICS, "simulated_s", "wall_s")

Progress = Callable[["Job", dict[str, float]], None]


@dataclass(frozen=True)
class Job:
    map: str
    controller: str
    seed: int
    duration: float | None = None  # simulated seconds from the map's begin (None: to its end)


def run_job(job: Job) -> dict[str, float]:
    """One run in this (worker) process."""
    config = resco_config(job.map)
    metrics = run(config, CONTROLLERS[job.controller](), RunOptions(job.seed, job.duration))
    return metrics.as_dict()


def jobs_for(
    maps: Sequence[str], controllers: Sequence[str], seeds: Iterable[int], duration: float | None
) -> list[Job]:
    unknown = [m for m in maps if m not in MAPS] + [c for c in controllers if c not in CONTROLLERS]
    if unknown:
        raise ValueError(
            f"unknown: {', '.join(unknown)} (maps: {', '.join(MAPS)}; "
            f"controllers: {', '.join(CONTROLLERS)})"
        )
    for map_name in maps:
        resco_config(map_name)  # LookupError in one line now (sumo-rl missing), not per worker
    return [Job(m, c, s, duration) for m in maps for s in seeds for c in controllers]


def run_jobs(
    jobs: Sequence[Job], workers: int, progress: Progress | None = None
) -> list[tuple[Job, dict[str, float]]]:
    """All jobs (from `jobs_for`, which checked the maps), `workers` at a time; in job order."""
    context = multiprocessing.get_context("spawn")
    results: dict[Job, dict[str, float]] = {}
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            results[job] = future.result()
            if progress is not None:
                progress(job, results[job])
    return [(job, results[job]) for job in jobs]


@dataclass(frozen=True)
class Cell:
    """One controller on one map, over its seeds."""

    mean: dict[str, float]
    std_delay: float
    runs: int


def summarise(results: Sequence[tuple[Job, dict[str, float]]]) -> dict[str, dict[str, Cell]]:
    """map -> controller -> mean of each metric over seeds (and the delay's spread)."""
    grouped: dict[tuple[str, str], list[dict[str, float]]] = {}
    for job, metrics in results:
        grouped.setdefault((job.map, job.controller), []).append(metrics)
    out: dict[str, dict[str, Cell]] = {}
    for (map_name, controller), runs in grouped.items():
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in METRICS}
        spread = math.sqrt(sum((r["delay"] - mean["delay"]) ** 2 for r in runs) / len(runs))
        out.setdefault(map_name, {})[controller] = Cell(mean, spread, len(runs))
    return out


def best_controller(cells: dict[str, Cell]) -> str:
    return min(cells, key=lambda c: cells[c].mean["delay"])


def write_csv(results: Sequence[tuple[Job, dict[str, float]]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for job, metrics in results:
            writer.writerow({"map": job.map, "controller": job.controller, "seed": job.seed,
                             **{k: round(v, 3) for k, v in metrics.items()}})  # fmt: skip
    return path


def markdown(summary: dict[str, dict[str, Cell]], controllers: Sequence[str]) -> str:
    """Average delay (s) per map and controller, best in bold, published best beside it."""
    head = ["map", *controllers, "best published"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for map_name in (m for m in MAPS if m in summary):
        cells = summary[map_name]
        best = best_controller(cells)
        row = [map_name]
        for controller in controllers:
            cell = cells.get(controller)
            text = "—" if cell is None else f"{cell.mean['delay']:.1f}"
            row.append(f"**{text}**" if controller == best else text)
        published = PUBLISHED_DELAY.get(map_name)
        row.append("—" if published is None else f"{published:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def delay_chart(
    summary: dict[str, dict[str, Cell]], controllers: Sequence[str], path: Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = [m for m in MAPS if m in summary]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(maps) + 2), 4.2))
    width = 0.8 / max(1, len(controllers))
    for i, controller in enumerate(controllers):
        values = [
            summary[m][controller].mean["delay"] if controller in summary[m] else 0 for m in maps
        ]
        errors = [summary[m][controller].std_delay if controller in summary[m] else 0 for m in maps]
        xs = [x + (i - (len(controllers) - 1) / 2) * width for x in range(len(maps))]
        ax.bar(xs, values, width, yerr=errors, label=controller, capsize=2)
    for x, m in enumerate(maps):
        if m in PUBLISHED_DELAY:
            ax.hlines(PUBLISHED_DELAY[m], x - 0.45, x + 0.45, colors="black", linestyles="dashed")
    ax.set_xticks(range(len(maps)), maps, fontsize=8)
    ax.set_ylabel("average delay (s)")
    ax.set_title("RESCO maps: average delay per controller (dashed: best published)", fontsize=10)
    ax.legend(fontsize=7, ncols=min(4, len(controllers)))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

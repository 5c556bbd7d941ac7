"""`dosi bench signals`: every signal controller on the RESCO maps, with a table, CSV and chart."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dosi.cli.errors import CliError

console = Console(highlight=False, soft_wrap=True)


def add_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="benchmarks of the city brain's services")
    suites = bench.add_subparsers(dest="suite", required=True, metavar="SUITE")
    signals = suites.add_parser(
        "signals", help="signal controllers on the RESCO maps (needs the 'bench' extra: sumo-rl)"
    )
    signals.add_argument("--maps", default="all", help="comma-separated RESCO maps (default all)")
    signals.add_argument(
        "--controllers", default="all", help="comma-separated controllers (default all)"
    )
    signals.add_argument("--seeds", type=_count, default=3, help="seeds per run (default 3)")
    signals.add_argument(
        "--duration", type=float, default=None, metavar="S",
        help="simulated seconds from each map's begin (default: to its end)",
    )  # fmt: skip
    signals.add_argument(
        "--workers", type=_count, default=os.cpu_count() or 1, help="parallel processes"
    )
    signals.add_argument(
        "--out", type=Path, default=Path("bench-signals"), help="folder for CSV, PNG, Markdown"
    )
    signals.set_defaults(handler=signals_command)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"a whole number 1..1000, got {text!r}")
    return int(text)


def signals_command(args: argparse.Namespace) -> int:
    from dosi.brain.signals import bench
    from dosi.brain.signals.controllers import CONTROLLERS
    from dosi.brain.signals.resco import MAPS

    maps = list(MAPS) if args.maps == "all" else [m.strip() for m in args.maps.split(",")]
    controllers = (
        list(CONTROLLERS)
        if args.controllers == "all"
        else [c.strip() for c in args.controllers.split(",")]
    )
    try:
        jobs = bench.jobs_for(maps, controllers, range(args.seeds), args.duration)
    except (ValueError, LookupError) as exc:
        raise CliError(str(exc).strip("'\"")) from None
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("signal benchmark", total=len(jobs), last="")

        def done(job: bench.Job, metrics: dict[str, float]) -> None:
            last = f"{job.map}/{job.controller}/seed {job.seed}: delay {metrics['delay']:.1f} s"
            progress.update(task, advance=1, last=last)

        results = bench.run_jobs(jobs, min(args.workers, len(jobs)), done)
    summary = bench.summarise(results)
    _table(summary, controllers, args.seeds)
    out: Path = args.out
    csv_path = bench.write_csv(results, out / "signals.csv")
    chart = bench.delay_chart(summary, controllers, out / "signals-delay.png")
    (out / "signals.md").write_text(bench.markdown(summary, controllers), encoding="utf-8")
    console.print(f"runs: {csv_path}   chart: {chart}   table: {out / 'signals.md'}")
    return 0


def _table(summary: dict[str, Any], controllers: list[str], seeds: int) -> None:
    from dosi.brain.signals.bench import PUBLISHED_DELAY, best_controller

    table = Table(title=f"average delay (s), mean of {seeds} seeds (arrived vehicles in brackets)")
    for column in ("map", *controllers, "best published"):
        table.add_column(column, justify="left" if column == "map" else "right")
    for map_name, cells in summary.items():
        best = best_controller(cells)
        row = [map_name]
        for controller in controllers:
            cell = cells.get(controller)
            if cell is None:
                row.append("—")
                continue
            text = f"{cell.mean['delay']:.1f} ({cell.mean['arrived']:.0f})"
            row.append(f"[bold green]{text}[/]" if controller == best else text)
        published = PUBLISHED_DELAY.get(map_name)
        row.append("—" if published is None else f"{published:.1f}")
        table.add_row(*row)
    console.print(table)

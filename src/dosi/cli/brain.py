"""`dosi brain run signals | eval signals`: the city brain's signal control on a hub.

`run` is the service: it controls the TrafficSignals of the hub at `--hub` from its loop
detectors until Ctrl-C or SIGTERM (`dosi demo` starts it as a child process with
`python -m dosi.cli.main brain run signals --hub URL`: keep that command line working).
`eval` measures what it is worth: fixed time against the closed loop on a twin scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dosi.cli import argtypes
from dosi.cli.errors import CliError

console = Console(highlight=False, soft_wrap=True)
SERVICES = ("signals",)


def add_parser(commands: Any) -> None:
    from dosi.brain.signals.loopbrain import LOOP_CONTROLLERS

    brain = commands.add_parser("brain", help="city brain services (adaptive signal control)")
    verbs = brain.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="run a brain service against a hub until Ctrl-C")
    run.add_argument("service", choices=SERVICES)
    run.add_argument(
        "--hub", required=True, metavar="URL", help="the hub, e.g. http://127.0.0.1:8700"
    )
    run.add_argument("--tenant", default=None, help="NGSI-LD tenant (default: the default one)")
    run.add_argument("--controller", choices=LOOP_CONTROLLERS, default="maxpressure",
                     help="policy fed with the loop-estimated queues (default maxpressure)")  # fmt: skip
    run.add_argument("--min-green", type=argtypes.seconds, default=10.0, metavar="S")
    run.add_argument("--max-green", type=argtypes.seconds, default=60.0, metavar="S")
    run.add_argument("--keep", action="store_true",
                     help="leave the signals on their last green at exit (default: fixed time)")  # fmt: skip
    run.set_defaults(handler=run_command)

    ev = verbs.add_parser("eval", help="KPI gain of a service over fixed time on a twin scenario")
    ev.add_argument("service", choices=SERVICES)
    ev.add_argument("scenario", help="built-in scenario name (eco-delta) or a scenario.toml")
    ev.add_argument(
        "--hours",
        type=argtypes.hours,
        default=None,
        help="simulated hours (default: the scenario's)",
    )
    ev.add_argument(
        "--seed", type=argtypes.seed, default=None, help="random seed (default: the scenario's)"
    )
    ev.add_argument("--controller", choices=LOOP_CONTROLLERS, default="maxpressure")
    ev.add_argument("--speed", default="lockstep",
                    help="'lockstep' (default: the twin waits for each decision) or a factor like "
                    "20x (the twin runs free; the lag is measured)")  # fmt: skip
    ev.add_argument("--all-domains", action="store_true",
                    help="also simulate water and power (publishing into the hubs; slower)")  # fmt: skip
    ev.set_defaults(handler=eval_command)


def run_command(args: argparse.Namespace) -> int:
    from dosi.brain.signals.live import LiveOptions, LiveService, LiveStats

    if args.min_green > args.max_green:
        raise CliError("--min-green must not exceed --max-green")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = LiveOptions(
        args.hub, args.tenant, args.controller,
        min_green=args.min_green, max_green=args.max_green, release_on_stop=not args.keep,
    )  # fmt: skip

    def status(stats: LiveStats) -> None:
        console.print(
            f"signals {stats.signals}, loops {stats.loops}: {stats.readings:,} readings, "
            f"{stats.decisions:,} decisions, {stats.commands:,} commands sent, "
            f"{stats.failed} failed, {stats.reconnects} reconnects"
        )

    service = LiveService(options, on_status=status)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        console.print(f"signal control ({args.controller}) on {args.hub}; Ctrl-C stops")
        await service.run(stop)

    asyncio.run(main())
    status(service.stats)
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from dosi.cli.braineval import evaluate, summary
    from dosi.twin.scenario import ScenarioError, load_scenario, parse_speed

    speed: float | None = None
    if args.speed != "lockstep":
        try:
            speed = parse_speed(args.speed)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if speed is None:
            raise CliError("--speed max cannot be followed through a hub: use lockstep or Nx")
    try:
        loaded = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    if loaded.scenario.traffic is None:
        raise CliError(f"{args.scenario}: no traffic simulation, no signals to control")
    with Progress(
        TextColumn("{task.description:12s}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {
            label: progress.add_task(label, total=1.0, clock="")
            for label in ("fixed time", "closed loop")
        }

        def update(label: str, t: float, total: float) -> None:
            clock = f"{int(t // 3600)}:{int(t % 3600 // 60):02d} simulated"
            progress.update(tasks[label], completed=t / total, clock=clock)

        try:
            fixed, closed = evaluate(
                str(loaded.source), hours=args.hours, seed=args.seed, controller=args.controller,
                speed=speed, traffic_only=not args.all_domains, progress=update,
            )  # fmt: skip
        except (RuntimeError, OSError, ValueError) as exc:
            raise CliError(f"evaluation failed: {exc}") from None
    _table(f"{loaded.scenario.name}: fixed time vs closed loop ({args.controller})", fixed, closed)
    loop = closed.loop
    if loop is not None:
        console.print(
            f"closed loop: {loop.decisions:,} decisions, {loop.commands_sent:,} commands sent, "
            f"{loop.commands_applied:,} applied, {loop.commands_refused} refused, "
            f"{loop.failed} failed, {loop.late} late; "
            f"{closed.simulated_s / max(closed.wall_s, 1e-9):,.0f}x real time"
        )
        if speed is None:
            console.print(f"lockstep round trip (ms): {summary(loop.round_trip_ms)}")
        else:
            console.print(f"command lag at {args.speed} (simulated s): {summary(loop.lag_s)}")
    return 1 if loop is None or loop.failed or loop.commands_applied == 0 else 0


def _table(title: str, fixed: Any, closed: Any) -> None:
    from dosi.twin.kpi import KPI_LABELS, change, formatted

    table = Table(title=title)
    for column in ("KPI", "fixed time", "closed loop", "change"):
        table.add_column(column, justify="left" if column == "KPI" else "right")
    for key, kpi in KPI_LABELS.items():
        if not key.startswith("traffic.") or key not in fixed.kpis or key not in closed.kpis:
            continue
        name = f"{kpi.en} / {kpi.ko}" + (f" ({kpi.unit})" if kpi.unit else "")
        ratio, better = change(key, fixed.kpis[key], closed.kpis[key])
        shown = "—" if ratio is None else ("±0" if ratio == 0 else f"{ratio:+.1%}")
        colour = "" if better is None else ("green" if better else "red")
        table.add_row(
            name,
            formatted(key, fixed.kpis[key]),
            formatted(key, closed.kpis[key]),
            f"[{colour}]{shown}[/]" if colour else shown,
        )
    console.print(table)

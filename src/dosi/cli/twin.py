"""`dosi twin run | validate | info`: run a district's digital twin, alone or against a hub.

`run` without `--what-if` drives a hub (the one at `--hub`, or an embedded one it
starts) with the twin's sensors and obeys the commands services write there;
with `--what-if` it runs baseline and variant offline and compares their KPIs in
a table and a PNG chart.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dosi.cli import argtypes
from dosi.cli.errors import CliError

console = Console(highlight=False, soft_wrap=True)


def add_parser(commands: Any) -> None:
    twin = commands.add_parser(
        "twin", help="run a district's digital twin (SUMO, EPANET, pandapower)"
    )
    verbs = twin.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="run a scenario, publishing into a hub, or a what-if")
    run.add_argument("scenario", help="built-in scenario name (eco-delta) or a scenario.toml")
    run.add_argument("--hub", metavar="URL", help="a running hub (default: start an embedded one)")
    run.add_argument("--data", type=Path, default=Path(".dosi"), metavar="DIR",
                     help="the embedded hub's data directory (default ./.dosi)")  # fmt: skip
    run.add_argument(
        "--hours",
        type=argtypes.hours,
        default=None,
        help="simulated hours (default: the scenario's)",
    )
    run.add_argument(
        "--seed", type=argtypes.seed, default=None, help="random seed (default: the scenario's)"
    )
    run.add_argument("--speed", type=argtypes.speed, default=None,
                     help="'max', 'realtime' or a factor like 50x (default: the scenario's)")  # fmt: skip
    run.add_argument("--transport", choices=("http", "mqtt", "batch"), default=None,
                     help="how readings reach the hub: IoT agent over HTTP or MQTT, or NGSI-LD batches")  # fmt: skip
    run.add_argument("--mqtt", metavar="URL", default=None, help="MQTT broker for --transport mqtt")
    run.add_argument("--start", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                     help="simulated date (default today in the scenario's time zone)")  # fmt: skip
    run.add_argument("--what-if", dest="what_if", metavar="EVENT", default=None,
                     help="road-closure:EDGE, pipe-burst:NODE, pv-drop[:F], demand-surge[:F]")  # fmt: skip
    run.add_argument("--chart", type=Path, default=None, metavar="PNG",
                     help="where the what-if chart goes (default ./whatif-<event>.png)")  # fmt: skip
    run.set_defaults(handler=run_command)
    for name, handler, summary in (
        ("validate", validate_command, "check a scenario file and say what it describes"),
        ("info", info_command, "list a scenario's sensors, actuators and what-if targets"),
    ):
        verb = verbs.add_parser(name, help=summary)
        verb.add_argument("scenario")
        verb.set_defaults(handler=handler)


def _load(ref: str) -> Any:
    from dosi.twin.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(ref)
    except ScenarioError as exc:
        raise CliError(str(exc)) from None


def validate_command(args: argparse.Namespace) -> int:
    loaded = _load(args.scenario)
    scenario = loaded.scenario
    console.print(
        f"[green]ok[/] {loaded.source}: scenario {scenario.name!r} "
        f"({', '.join(scenario.domains())}), {scenario.clock.hours:g} h from {scenario.clock.start}"
    )
    return 0


def info_command(args: argparse.Namespace) -> int:
    from collections import Counter

    loaded = _load(args.scenario)
    twin = _open(loaded, hours=0.01)
    try:
        table = Table(title=f"{loaded.scenario.name}: what the twin puts in the hub")
        for column in ("entity type", "kind", "count"):
            table.add_column(column, justify="right" if column == "count" else "left")
        kinds = Counter(("sensor", s.entity_type) for s in twin.sensors())
        kinds.update(("actuator", a.entity_type) for a in twin.actuators())
        kinds.update(("asset", a.entity_type) for a in twin.assets())
        for (kind, entity_type), count in sorted(kinds.items()):
            table.add_row(entity_type, kind, str(count))
        console.print(table)
        console.print("what-if targets (a sample):")
        for sim in twin.simulators:
            if sim.domain == "traffic":
                edges = sim.closable_edges()  # type: ignore[attr-defined]
                console.print(f"  road-closure:EDGE  {', '.join(edges[:10])} … ({len(edges)})")
        pressure = [
            s.device_id.removeprefix("water-pressure-")
            for s in twin.sensors()
            if "pressure" in s.controlled_property
        ]
        if pressure:
            console.print(
                f"  pipe-burst:NODE    e.g. at a pressure sensor: {', '.join(pressure[:10])} …"
            )
    finally:
        twin.close()
    return 0


def _open(loaded: Any, **options: Any) -> Any:
    from dosi.twin.engine import Twin

    try:
        return Twin(loaded, **options)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(f"{loaded.source.name}: {exc}") from None


def run_command(args: argparse.Namespace) -> int:
    loaded = _load(args.scenario)
    if args.what_if:
        return _what_if(args, loaded)
    return _live(args, loaded)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _clock(t: float) -> str:
    return f"{int(t // 3600):d}:{int(t % 3600 // 60):02d} simulated"


def _what_if(args: argparse.Namespace, loaded: Any) -> int:
    from dosi.twin.chart import kpi_chart
    from dosi.twin.whatif import compare, describe, parse_what_if

    try:
        event = parse_what_if(args.what_if)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    # Open once here so a wrong edge or node is one line now, not a traceback from a child.
    _open(loaded, hours=0.01, events=(event,)).close()
    source = str(loaded.source)
    with _progress() as progress:
        tasks = {
            label: progress.add_task(label, total=1.0, clock=_clock(0))
            for label in ("baseline", "variant")
        }

        def update(label: str, t: float, total: float) -> None:
            progress.update(tasks[label], completed=t / total, clock=_clock(t))

        try:
            result = compare(source, event, hours=args.hours, seed=args.seed, progress=update)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from None
    title = f"{loaded.scenario.name}: {describe(event)}"
    _kpi_table(title, result.baseline.kpis, result.variant.kpis)
    slug = args.what_if.split("@")[0].replace(":", "-").replace("/", "-")
    chart = kpi_chart(
        result.baseline.kpis, result.variant.kpis, title, args.chart or Path(f"whatif-{slug}.png")
    )
    console.print(f"chart: {chart}")
    return 0


def _kpi_table(
    title: str, baseline: dict[str, float], variant: dict[str, float] | None = None
) -> None:
    """One run's KPIs, or a baseline and a variant side by side with the change."""
    from dosi.twin.kpi import KPI_LABELS, change, formatted

    table = Table(title=title)
    columns = ("KPI", "value") if variant is None else ("KPI", "baseline", "what-if", "change")
    for column in columns:
        table.add_column(column, justify="left" if column == "KPI" else "right")
    for key, kpi in KPI_LABELS.items():
        if key not in baseline or (variant is not None and key not in variant):
            continue
        name = f"{kpi.en} / {kpi.ko}" + (f" ({kpi.unit})" if kpi.unit else "")
        if variant is None:
            table.add_row(name, formatted(key, baseline[key]))
            continue
        ratio, better = change(key, baseline[key], variant[key])
        colour = "" if better is None else ("green" if better else "red")
        shown = "—" if ratio is None else ("±0" if ratio == 0 else f"{ratio:+.1%}")
        table.add_row(
            name,
            formatted(key, baseline[key]),
            formatted(key, variant[key]),
            f"[{colour}]{shown}[/]" if colour else shown,
        )
    console.print(table)


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C ends the run at the next step, so the hub gets everything measured so far."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _live(args: argparse.Namespace, loaded: Any) -> int:
    from dosi.twin.engine import start_of_run
    from dosi.twin.entities import Clock
    from dosi.twin.hubproc import EmbeddedHub
    from dosi.twin.link import HubLink, LinkError, LinkOptions
    from dosi.twin.scenario import parse_speed

    scenario = loaded.scenario
    transport = args.transport or scenario.hub.transport
    if transport == "mqtt" and not args.mqtt:
        raise CliError("--transport mqtt needs --mqtt URL (the broker the hub listens to)")
    speed = parse_speed(args.speed or scenario.clock.speed)
    twin = _open(loaded, hours=args.hours, seed=args.seed)
    with contextlib.ExitStack() as stack:
        stack.callback(twin.close)
        if args.hub:
            url = args.hub.rstrip("/")
        else:
            console.print(f"starting an embedded hub (data in {args.data}) …")
            try:
                url = stack.enter_context(EmbeddedHub(args.data, mqtt_url=args.mqtt)).url
            except RuntimeError as exc:
                raise CliError(str(exc)) from None
        options = LinkOptions(url, scenario.name, transport, scenario.hub.apikey, args.mqtt)
        link = HubLink(options, Clock(start_of_run(loaded, args.start)))
        sensors, actuators, assets = twin.sensors(), twin.actuators(), twin.assets()
        console.print(
            f"{scenario.name}: {len(sensors)} sensors, {len(actuators)} actuators, "
            f"{len(assets)} assets -> {url} ({transport})"
        )
        try:
            link.start(sensors, actuators, assets, twin.states())
        except (LinkError, OSError) as exc:
            raise CliError(f"cannot set up the twin in the hub at {url}: {exc}") from None
        stack.callback(link.close)
        with _progress() as progress, _stop_on_interrupt() as stop:
            task = progress.add_task(scenario.name, total=twin.duration, clock=_clock(0))

            def update(t: float, total: float) -> None:
                progress.update(task, completed=t, clock=_clock(t))

            result = twin.run(link, speed=speed, progress=update, stop=stop)
        link.close()
        stats = link.stats
    console.print(
        f"{result.simulated_s / 3600:.2f} h simulated in {result.wall_s:.1f} s "
        f"({result.speedup:,.0f}x real time); {result.readings:,} readings, "
        f"{stats.requests:,} requests, {stats.failed} failed; "
        f"{len(result.commands)} commands applied"
    )
    if stats.first_error:
        console.print(f"[red]first refusal:[/] {stats.first_error}")
    _kpi_table(f"{scenario.name} KPIs", result.kpis)
    return 1 if stats.failed else 0

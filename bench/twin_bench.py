"""Digital twin speed (issue "Digital twin"): eco-delta co-simulation, alone and publishing.

Runs the built-in `eco-delta` scenario (SUMO + EPANET + pandapower on one clock)
as fast as possible, first with the simulators alone (the reference), then
publishing every reading into a real hub (`dosi up` in its own process, fresh
SQLite data dir) through each transport: the IoT agent over HTTP (the default),
over MQTT (private mosquitto), and direct NGSI-LD batches. Each mode runs in a
fresh process (libsumo allows one simulation per process). Printed per mode:
real-time factor, the publishing overhead against the simulators-alone run of
the same invocation, readings and requests, and whether the hub refused any.
Targets: >= 50x real time with publishing on; publishing costs <= 20%.

    .venv/bin/python bench/twin_bench.py               # 1 simulated hour per mode
    .venv/bin/python bench/twin_bench.py --quick       # 10 simulated minutes, http only
    .venv/bin/python bench/twin_bench.py --modes alone,http --hours 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MODES = ("alone", "http", "mqtt", "batch")
TARGET_SPEEDUP = 50.0
TARGET_OVERHEAD = 0.20
console = Console(width=150)


def run_mode(mode: str, hours: float, seed: int) -> dict[str, Any]:
    """One eco-delta run in this (fresh) process; returns its figures."""
    from dosi.twin.engine import Twin, start_of_run
    from dosi.twin.entities import Clock
    from dosi.twin.hubproc import EmbeddedHub
    from dosi.twin.link import HubLink, LinkOptions
    from dosi.twin.scenario import load_scenario

    loaded = load_scenario("eco-delta")
    opened = time.perf_counter()
    twin = Twin(loaded, hours=hours, seed=seed)
    open_s = time.perf_counter() - opened
    if mode == "alone":
        before = os.times()
        result = twin.run()
        return _figures(
            mode, result, open_s, requests=0, failed=0, stored=None,
            sim_cpu=_own_cpu(before), link_cpu=0.0, hub_cpu=0.0,
        )  # fmt: skip
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dosi-twin-bench-")))
        mqtt_url = None
        if mode == "mqtt":
            from servers import mosquitto

            mqtt_url = stack.enter_context(mosquitto(scratch / "mqtt"))
        hub = stack.enter_context(EmbeddedHub(scratch / "hub", mqtt_url=mqtt_url))
        transport = "http" if mode == "http" else mode
        options = LinkOptions(hub.url, loaded.scenario.name, transport, "bench", mqtt_url)  # type: ignore[arg-type]
        link = HubLink(options, Clock(start_of_run(loaded, date(2026, 11, 25))))
        link.start(twin.sensors(), twin.actuators(), twin.assets(), twin.states())
        hub_before, before = _process_cpu(hub.pid), os.times()
        result = twin.run(link)
        flushed = time.perf_counter()
        link.close()  # joins the link process: its CPU counts as our children's
        flush_s = time.perf_counter() - flushed
        after = os.times()
        link_cpu = after.children_user + after.children_system
        link_cpu -= before.children_user + before.children_system
        hub_cpu = _process_cpu(hub.pid) - hub_before
        stored = _stored_observations(hub.url, mode, result.readings)
        figures = _figures(
            mode, result, open_s, requests=link.stats.requests, failed=link.stats.failed,
            stored=stored, sim_cpu=_own_cpu(before), link_cpu=link_cpu, hub_cpu=hub_cpu,
        )  # fmt: skip
        figures["flush_s"] = flush_s
        return figures


def _stored_observations(url: str, mode: str, readings: int) -> int | None:
    """Measurements the hub says it stored (IoT agent modes), to check nothing was lost."""
    if mode == "batch":
        return None
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(url + "/metrics", timeout=10).text
        count = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("dosi_ingest_stored_total")
        )
        if count >= readings:
            return int(count)
        time.sleep(0.5)
    return int(count)


def _own_cpu(before: os.times_result) -> float:
    now = os.times()
    return now.user + now.system - before.user - before.system


def _process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _figures(mode: str, result: Any, open_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "simulated_s": result.simulated_s,
        "wall_s": result.wall_s,
        "speedup": result.speedup,
        "readings": result.readings,
        "open_s": open_s,
        "kpis": result.kpis,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--quick", action="store_true", help="10 simulated minutes, alone + http")
    args = parser.parse_args()
    modes = ["alone", "http"] if args.quick else [m.strip() for m in args.modes.split(",")]
    hours = 1 / 6 if args.quick else args.hours
    if "alone" not in modes:
        modes.insert(0, "alone")
    context = multiprocessing.get_context("spawn")
    rows: list[dict[str, Any]] = []
    for mode in modes:
        console.print(f"[bold]{mode}[/]: eco-delta, {hours:g} simulated h …")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            rows.append(pool.submit(run_mode, mode, hours, args.seed).result())
    reference = rows[0]
    table = Table(title=f"eco-delta co-simulation, {hours:g} simulated h, seed {args.seed}")
    for column in ("mode", "wall s", "x real time", "overhead vs alone", "readings",
                   "requests", "failed", "hub stored", "CPU s: sim / link / hub"):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in rows:
        overhead = row["wall_s"] / reference["wall_s"] - 1
        ok_speed = row["speedup"] >= TARGET_SPEEDUP
        ok_overhead = row is reference or overhead <= TARGET_OVERHEAD
        table.add_row(
            row["mode"],
            f"{row['wall_s']:.1f}",
            f"[{'green' if ok_speed else 'red'}]{row['speedup']:.0f}x[/]",
            "—" if row is reference else f"[{'green' if ok_overhead else 'red'}]{overhead:+.1%}[/]",
            f"{row['readings']:,}",
            f"{row.get('requests', 0):,}",
            str(row.get("failed", 0)),
            "—" if row.get("stored") is None else f"{row['stored']:,}",
            f"{row['sim_cpu']:.1f} / {row['link_cpu']:.1f} / {row['hub_cpu']:.1f}",
        )
    console.print(table)
    console.print(
        f"targets: >= {TARGET_SPEEDUP:.0f}x real time with publishing, <= "
        f"{TARGET_OVERHEAD:.0%} over the simulators alone (same run, same seed)"
    )
    same = all(row["kpis"] == reference["kpis"] for row in rows)
    console.print(f"KPIs identical across modes (same seed): {same}")


if __name__ == "__main__":
    main()

"""What-if runs: the same scenario and seed with and without one event, side by side.

Baseline and variant run in two processes at once (libsumo allows one
simulation per process, and this machine has two cores); both report progress
through a queue so the terminal shows two bars. What-if runs are a sandbox:
they publish nothing to the hub, whose data stays the city's own.
"""

from __future__ import annotations

import multiprocessing
import queue
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dosi.twin.engine import RunResult, Twin
from dosi.twin.model import DemandSurge, Event, PipeBurst, PvDrop, RoadClosure
from dosi.twin.scenario import load_scenario

KINDS = {
    "road-closure": "road-closure:EDGE (a SUMO edge id)",
    "pipe-burst": "pipe-burst:NODE[:COEFFICIENT] (an EPANET junction id)",
    "pv-drop": "pv-drop[:FRACTION] (share of PV output lost, default 0.7)",
    "demand-surge": "demand-surge[:FACTOR] (traffic, water and power demand x FACTOR, default 1.3)",
}
_AT = re.compile(r"^(.*)@(\d+(?:\.\d+)?)m$")

ProgressFn = Callable[[str, float, float], None]  # (which run, simulated s, total s)
T = TypeVar("T")


def parse_what_if(text: str) -> Event:
    """`road-closure:E5`, `pipe-burst:n215:3`, `pv-drop:0.5`, `demand-surge:1.5`,
    each optionally `@MINUTESm` after the start (`pipe-burst:n215@30m`)."""
    at = 0.0
    match = _AT.match(text)
    if match:
        text, at = match.group(1), float(match.group(2)) * 60
    kind, _, rest = text.partition(":")
    args = [a for a in rest.split(":") if a] if rest else []
    try:
        if kind == "road-closure" and len(args) == 1:
            return RoadClosure(edge=args[0], at=at)
        if kind == "pipe-burst" and len(args) in (1, 2):
            coefficient = float(args[1]) if len(args) == 2 else 0.0
            if coefficient < 0:
                raise ValueError
            return PipeBurst(node=args[0], at=at, emitter_coefficient=coefficient)
        if kind == "pv-drop" and len(args) <= 1:
            fraction = float(args[0]) if args else 0.7
            if not 0 < fraction <= 1:
                raise ValueError
            return PvDrop(fraction=fraction, at=at)
        if kind == "demand-surge" and len(args) <= 1:
            factor = float(args[0]) if args else 1.3
            if not 0 < factor <= 10:
                raise ValueError
            return DemandSurge(factor=factor, at=at)
    except ValueError:
        pass
    forms = "; ".join(KINDS.values())
    raise ValueError(f"not a what-if: {text!r} (use {forms}; optional @MINUTESm start)")


def describe(event: Event) -> str:
    at = f" from minute {event.at / 60:g}" if event.at else ""
    match event:
        case RoadClosure(edge=edge):
            return f"road {edge} closed{at}"
        case PipeBurst(node=node):
            return f"pipe burst at {node}{at}"
        case PvDrop(fraction=fraction):
            return f"PV output down {fraction:.0%}{at}"
        case DemandSurge(factor=factor):
            return f"demand x{factor:g}{at}"
    return str(event)


def simulate(
    source: str,
    *,
    hours: float | None,
    seed: int | None,
    events: tuple[Event, ...],
    label: str = "",
    updates: Any = None,
    workdir: Path | None = None,
) -> RunResult:
    """One offline run (top level, so a process pool can call it)."""
    twin = Twin(load_scenario(source), seed=seed, hours=hours, events=events, workdir=workdir)

    def progress(t: float, total: float) -> None:
        if updates is not None:
            updates.put((label, t, total))

    return twin.run(progress=progress if updates is not None else None)


@dataclass(frozen=True)
class Comparison:
    event: Event
    baseline: RunResult
    variant: RunResult


def compare(
    source: str,
    event: Event,
    *,
    hours: float | None = None,
    seed: int | None = None,
    progress: ProgressFn | None = None,
) -> Comparison:
    """Baseline and variant in two processes, same seed; raises the first failure."""
    runs = side_by_side(
        {
            label: (simulate, {"source": source, "hours": hours, "seed": seed, "events": events})
            for label, events in (("baseline", ()), ("variant", (event,)))
        },
        progress,
    )
    return Comparison(event, runs["baseline"], runs["variant"])


def side_by_side(
    jobs: Mapping[str, tuple[Callable[..., T], dict[str, Any]]], progress: ProgressFn | None
) -> dict[str, T]:
    """Each job `fn(**kwargs, label=, updates=)` in its own spawned process, all at once.

    A job reports `(label, simulated s, total s)` on `updates`; those reach `progress`.
    Raises the first failure. Spawned, not forked: libsumo holds one simulation per process.
    """
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
        updates = manager.Queue()
        runs: dict[str, Future[T]] = {
            label: pool.submit(fn, **kwargs, label=label, updates=updates)
            for label, (fn, kwargs) in jobs.items()
        }
        while not all(f.done() for f in runs.values()):
            try:
                label, t, total = updates.get(timeout=0.2)
            except queue.Empty:
                continue
            if progress is not None:
                progress(label, t, total)
        return {label: future.result() for label, future in runs.items()}

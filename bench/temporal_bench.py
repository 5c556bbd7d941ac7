"""Temporal API benchmark (issue "temporal"): hourly aggregates, lastN and temporalValues.

Builds a history of sensor readings (default 100 sensors x 10,000 instances,
one a minute: 1,000,000 instances, about a week) through the temporal store's
write path in large batches, starts a real `dosi up` on that data directory,
and times over HTTP:

- hourly `avg` over one day for 100 entities (target: p50 <= 100 ms), beside
  the same GROUP BY run directly on the database in the same run (sqlite3 on
  the file, or asyncpg on PostgreSQL);
- `lastN=10` for the same 100 entities over the whole history;
- `temporalValues` over one hour for the 100 entities.

On PostgreSQL (`--backend postgres`: a private cluster started like the tests'
one, with `synchronous_commit=off`; or `--db URL`: a fresh database on that
server) the hub runs as `dosi up --db`, and the history is VACUUM ANALYZEd
after the build, as autovacuum would do before long.

    .venv/bin/python bench/temporal_bench.py            # full run (~2-3 min)
    .venv/bin/python bench/temporal_bench.py --quick    # smoke run (~20 s)
    .venv/bin/python bench/temporal_bench.py --quick --backend postgres
    .venv/bin/python bench/temporal_bench.py --db postgresql://postgres@host/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dosi.hub.store.base import Store
from dosi.hub.store.history import attr_series_key, series_key
from dosi.hub.store.postgres import PostgresStore
from dosi.hub.store.sqlite import SqliteStore
from dosi.hub.temporal.params import iso
from dosi.ngsi.model import DEFAULT_VOCAB
from hub_bench import HOST, Hub
from pgserver import add_backend_arguments, backend_server, fresh_database

console = Console()
TYPE = "TemperatureSensor"
ATTR = "temperature"
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 60_000
BATCH = 20_000


def sensor_id(n: int) -> str:
    return f"urn:ngsi-ld:{TYPE}:bench-{n:04d}"


async def build(store: Store, sensors: int, per_sensor: int) -> float:
    """Write the history through the store's temporal upsert in batches; returns instances/s."""
    await store.open()
    attr = DEFAULT_VOCAB + ATTR
    total = sensors * per_sensor
    started = time.perf_counter()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("building history", total=total)
            for n in range(sensors):
                for first in range(0, per_sensor, BATCH):
                    batch = []
                    for i in range(first, min(first + BATCH, per_sensor)):
                        stamp = iso(START + i * STEP_MS)
                        value = round(15 + 10 * ((i * 7 + n * 13) % 100) / 100, 2)
                        batch.append(
                            (
                                attr,
                                {
                                    "type": "Property",
                                    "value": value,
                                    "observedAt": stamp,
                                    "createdAt": stamp,
                                    "modifiedAt": stamp,
                                },
                            )
                        )
                    await store.temporal.upsert(
                        "", sensor_id(n), [DEFAULT_VOCAB + TYPE], None, batch
                    )
                    progress.advance(task, len(batch))
    finally:
        await store.close()
    return total / (time.perf_counter() - started)


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str | None]:
    """None for SQLite; else the URL of a fresh PostgreSQL database (--db's server, or a
    private cluster)."""
    with backend_server(args) as server:
        yield None if server is None else asyncio.run(fresh_database(server))


async def vacuum(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE dosi.history")
    finally:
        await conn.close()


def timed(client: httpx.Client, path: str, params: dict[str, Any], runs: int) -> list[float]:
    """Milliseconds per request, after one checked warm-up request."""
    response = client.get(path, params=params)
    assert response.status_code in (200, 206), (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, list) and body, body
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path, params=params)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code in (200, 206), response.status_code
    return out


def reference_sql(db: Path, entities: list[str], start: int, end: int, runs: int) -> list[float]:
    """The hourly-avg GROUP BY straight on the file (same index, no HTTP, no JSON)."""
    conn = sqlite3.connect(str(db))
    keys = [series_key(e) for e in entities]
    marks = ",".join("?" * len(keys))
    sql = (
        f"SELECT entity, (ts - ?) / 3600000 AS b, avg(num) FROM history "
        f"WHERE entity IN ({marks}) AND attr = ? AND ts >= ? AND ts < ? GROUP BY entity, b"
    )
    args = (start, *keys, attr_series_key(DEFAULT_VOCAB + ATTR), start, end)
    rows = conn.execute(sql, args).fetchall()
    assert len(rows) == len(entities) * 24, len(rows)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        conn.execute(sql, args).fetchall()
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


async def reference_pg(
    url: str, entities: list[str], start: int, end: int, runs: int
) -> list[float]:
    """The same GROUP BY on PostgreSQL, straight through asyncpg (JIT off, as in the hub)."""
    conn = await asyncpg.connect(url, server_settings={"jit": "off"})
    sql = (
        "SELECT entity, (ts - $1) / 3600000 AS b, avg(num) FROM dosi.history "
        "WHERE entity = ANY($2::bigint[]) AND attr = $3 AND ts >= $1 AND ts < $4 "
        "GROUP BY entity, b"
    )
    args = ([series_key(e) for e in entities], attr_series_key(DEFAULT_VOCAB + ATTR))
    try:
        rows = await conn.fetch(sql, start, args[0], args[1], end)
        assert len(rows) == len(entities) * 24, len(rows)
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await conn.fetch(sql, start, args[0], args[1], end)
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        await conn.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--per-sensor", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    add_backend_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.sensors, args.per_sensor, args.runs = 20, 3_000, 10
    day_start = START + 24 * 3_600_000  # the second day: every sensor has data all day
    day_end = day_start + 24 * 3_600_000
    figures: dict[str, Any] = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp, database(args) as url:
        figures["backend"] = args.backend  # settled by database(): --db implies postgres
        data = Path(tmp) / "data"
        store: Store = SqliteStore(data) if url is None else PostgresStore(url)
        figures["build_rate"] = asyncio.run(build(store, args.sensors, args.per_sensor))
        if url is not None:
            asyncio.run(vacuum(url))
        entities = [sensor_id(n) for n in range(args.sensors)]
        hub = Hub(data) if url is None else Hub(data, extra_args=("--db", url))
        with hub, httpx.Client(base_url=f"http://{HOST}:{hub.port}") as client:
            path = "/ngsi-ld/v1/temporal/entities"
            common = {"type": TYPE, "attrs": ATTR, "limit": str(min(args.sensors, 100))}
            aggregated = timed(
                client,
                path,
                {
                    **common,
                    "options": "aggregatedValues",
                    "aggrMethods": "avg",
                    "aggrPeriodDuration": "PT1H",
                    "timerel": "between",
                    "timeAt": iso(day_start),
                    "endTimeAt": iso(day_end),
                },
                args.runs,
            )
            last_n = timed(client, path, {**common, "lastN": "10"}, args.runs)
            values = timed(
                client,
                path,
                {
                    **common,
                    "options": "temporalValues",
                    "timerel": "between",
                    "timeAt": iso(day_start),
                    "endTimeAt": iso(day_start + 3_600_000),
                },
                args.runs,
            )
        if url is None:
            reference = reference_sql(
                data / "dosi.sqlite", entities[:100], day_start, day_end, args.runs
            )
        else:
            reference = asyncio.run(
                reference_pg(url, entities[:100], day_start, day_end, args.runs)
            )
    for name, samples in (
        ("aggregated", aggregated),
        ("last_n", last_n),
        ("values", values),
        ("reference", reference),
    ):
        figures[f"{name}_p50_ms"] = statistics.median(samples)
        figures[f"{name}_p99_ms"] = pct(samples, 99)
    figures["aggregated_ratio"] = figures["aggregated_p50_ms"] / figures["reference_p50_ms"]
    print_table(args, figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def print_table(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    total = args.sensors * args.per_sensor
    table = Table(
        title=f"dosi temporal API on {figures['backend']} ({total:,} instances, {args.sensors} sensors, "
        f"{args.runs} runs, {os.cpu_count()} cores)"
    )
    table.add_column("figure")
    table.add_column("p50 (ms)", justify="right")
    table.add_column("p99 (ms)", justify="right")
    table.add_column("target", justify="right")
    n = min(args.sensors, 100)
    rows = (
        (f"hourly avg over one day, {n} entities (HTTP)", "aggregated", "p50 <= 100"),
        ("  same GROUP BY straight on the database", "reference", ""),
        (f"lastN=10, {n} entities, whole history", "last_n", ""),
        (f"temporalValues over one hour, {n} entities", "values", ""),
    )
    for label, key, target in rows:
        table.add_row(
            label,
            f"{figures[f'{key}_p50_ms']:.1f}",
            f"{figures[f'{key}_p99_ms']:.1f}",
            target,
        )
    console.print(table)
    console.print(
        f"aggregated query / reference GROUP BY (p50): {figures['aggregated_ratio']:.2f}x; "
        f"history built at {figures['build_rate']:,.0f} instances/s"
    )


if __name__ == "__main__":
    main()

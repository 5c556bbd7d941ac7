"""Hub core benchmarks (issue "Hub core"): ingest, single-entity create/retrieve, query.

Runs a real `dosi up` process on loopback with a fresh SQLite data dir and
drives it over HTTP from this process. Each figure is printed beside the
target from the issue and, for ingest, the ratio to a plain SQLite
`executemany` of the same rows measured in the same run.

    .venv/bin/python bench/hub_bench.py                  # full run (~5 min)
    .venv/bin/python bench/hub_bench.py --quick          # smoke run (~30 s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dosi.hub.store.rows import pack
from dosi.ngsi.context import ContextResolver
from dosi.ngsi.model import LOCATION
from dosi.ngsi.parse import parse_entity
from dosi.ngsi.values import now_iso
from loadgen import Result, build_request, run_load
from pgserver import add_backend_arguments, backend_server, fresh_database

console = Console()
HOST = "127.0.0.1"
# Busan Eco Delta City, roughly 20 km x 20 km.
LON0, LAT0, SPAN = 128.83, 35.05, 0.2
TYPE = "TrafficFlowObserved"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def traffic_entity(i: int, rng: random.Random) -> dict[str, Any]:
    """Six attributes, shaped like the Smart Data Models TrafficFlowObserved example."""
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:bench-{i}",
        "type": TYPE,
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Point",
                "coordinates": [
                    round(LON0 + rng.random() * SPAN, 6),
                    round(LAT0 + rng.random() * SPAN, 6),
                ],
            },
        },
        "intensity": {
            "type": "Property",
            "value": rng.randint(0, 1000),
            "observedAt": "2026-11-25T08:00:00Z",
        },
        "occupancy": {"type": "Property", "value": round(rng.random(), 3)},
        "averageVehicleSpeed": {
            "type": "Property",
            "value": round(rng.uniform(5, 80), 1),
            "unitCode": "KMH",
        },
        "congested": {"type": "Property", "value": rng.random() < 0.2},
        "laneId": {"type": "Property", "value": rng.randint(1, 4)},
    }


class Hub:
    """A `dosi up` subprocess on a free port with its own data dir."""

    def __init__(
        self,
        data_dir: Path,
        workers: int = 1,
        indexed_attributes: tuple[str, ...] = (),
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.extra_args = extra_args
        self.port = free_port()
        self.data_dir = data_dir
        self.workers = workers
        self.indexed_attributes = indexed_attributes
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Hub:
        exe = Path(sys.executable).with_name("dosi")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "up",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--data",
                str(self.data_dir),
                "--log-level",
                "warning",
                "--workers",
                str(self.workers),
                *(f"--index-attribute={name}" for name in self.indexed_attributes),
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        # `dosi up` prints its ready line once every worker listens.
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"dosi hub:" not in line:
            raise RuntimeError(f"the hub did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)


def batch_request(batch: list[dict[str, Any]]) -> bytes:
    body = orjson.dumps(batch)
    return build_request(
        "POST",
        "/ngsi-ld/v1/entityOperations/upsert",
        f"{HOST}",
        body,
        {"Content-Type": "application/json"},
    )


async def ingest(
    hub: Hub, count: int, *, seed: int, start: int = 0, label: str = "ingest"
) -> Result:
    rng = random.Random(seed)
    batches = []
    for b in range(0, count, 1000):
        batch = [traffic_entity(start + i, rng) for i in range(b, min(b + 1000, count))]
        batches.append(batch_request(batch))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(batches))

        def make(i: int) -> bytes:
            progress.advance(task)
            return batches[i]

        return await run_load(HOST, hub.port, make, total=len(batches), concurrency=8)


def reference_executemany(count: int, seed: int) -> tuple[float, float]:
    """Plain SQLite executemany of the same rows, 1,000 a transaction, no HTTP/JSON-LD/validation.

    Two references: (a) one table of (id, type, document) rows; (b) the rows the
    hub's schema holds for these entities: that table plus its type index and the
    R*Tree row of each location. Returns (a, b) in rows per second.
    """
    rng = random.Random(seed)
    ctx = asyncio.run(ContextResolver().resolve(None))
    now = now_iso()
    rows = []
    boxes = []
    for i in range(count):
        entity = parse_entity(traffic_entity(i, rng), ctx, now=now)
        rows.append((i + 1, entity["id"], entity["type"][0], pack(entity)))
        lon, lat = entity[LOCATION][0]["value"]["coordinates"]
        boxes.append(((i + 1) * 64, lon, lon, lat, lat))
    rates = []
    for with_indexes in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            conn = sqlite3.connect(f"{tmp}/ref.sqlite", isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE e(rid INTEGER PRIMARY KEY, id TEXT UNIQUE, type TEXT, doc BLOB)"
            )
            if with_indexes:
                conn.execute("CREATE INDEX e_type ON e(type)")
                conn.execute("CREATE VIRTUAL TABLE g USING rtree(gid, minx, maxx, miny, maxy)")
            start = time.perf_counter()
            for b in range(0, count, 1000):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO e VALUES(?,?,?,?)", rows[b : b + 1000])
                if with_indexes:
                    conn.executemany("INSERT INTO g VALUES(?,?,?,?,?)", boxes[b : b + 1000])
                conn.execute("COMMIT")
            rates.append(count / (time.perf_counter() - start))
            conn.close()
    return rates[0], rates[1]


async def single_entities(hub: Hub, count: int) -> tuple[Result, Result]:
    def create(i: int) -> bytes:
        body = orjson.dumps(
            {
                "id": f"urn:ngsi-ld:Sensor:single-{i}",
                "type": "Sensor",
                "temperature": {"type": "Property", "value": 20 + i % 10},
            }
        )
        return build_request(
            "POST", "/ngsi-ld/v1/entities", HOST, body, {"Content-Type": "application/json"}
        )

    created = await run_load(HOST, hub.port, create, total=count, concurrency=32)
    rng = random.Random(7)

    def retrieve(i: int) -> bytes:
        return build_request(
            "GET", f"/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:single-{rng.randrange(count)}", HOST
        )

    retrieved = await run_load(HOST, hub.port, retrieve, total=count, concurrency=32)
    return created, retrieved


async def queries(hub: Hub, count: int, *, radius: float, concurrency: int) -> tuple[Result, float]:
    rng = random.Random(11)
    sizes: list[int] = []

    def make(i: int) -> bytes:
        lon = LON0 + 0.01 + rng.random() * (SPAN - 0.02)
        lat = LAT0 + 0.01 + rng.random() * (SPAN - 0.02)
        path = (
            f"/ngsi-ld/v1/entities?type={TYPE}&q=intensity%3E500"
            f"&georel=near%3BmaxDistance%3D%3D{radius:g}&geometry=Point"
            f"&coordinates=%5B{lon:.6f},{lat:.6f}%5D&limit=20"
        )
        return build_request("GET", path, HOST)

    # One checked query first: the benchmark must measure real, non-empty answers.
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{hub.port}") as client:
        for _ in range(20):
            raw = make(0).split(b" ")[1].decode()
            response = await client.get(raw)
            response.raise_for_status()
            sizes.append(len(response.json()))
    result = await run_load(HOST, hub.port, make, total=count, concurrency=concurrency)
    return result, sum(sizes) / len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=20_000)
    parser.add_argument("--store", type=int, default=1_000_000, help="entities in the query store")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--radius", type=float, default=100.0, help="near maxDistance in metres")
    parser.add_argument("--concurrency", type=int, default=8, help="query clients")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    add_backend_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.ingest, args.single, args.store, args.queries = 10_000, 2_000, 50_000, 2_000
        args.radius = 400.0

    servers = backend_server(args)  # settles args.backend (--db implies postgres)
    figures: dict[str, Any] = {"cpu_count": os.cpu_count(), "backend": args.backend}
    worker_counts = (1, 2)
    with tempfile.TemporaryDirectory() as tmp, servers as server:

        def storage() -> tuple[str, ...]:
            """A fresh database per hub on PostgreSQL (each hub gets its own data dir too)."""
            return () if server is None else ("--db", asyncio.run(fresh_database(server)))

        console.print("[dim]reference: plain SQLite executemany of the same rows...[/]")
        bare, same_schema = reference_executemany(args.ingest, seed=1)
        figures["reference_table_rate"] = bare
        figures["reference_schema_rate"] = same_schema
        for workers in worker_counts:
            with Hub(Path(tmp) / f"ingest-{workers}", workers, extra_args=storage()) as hub:
                res = asyncio.run(ingest(hub, args.ingest, seed=1))
                assert res.errors == 0, res.statuses
                figures[f"ingest_rate_w{workers}"] = args.ingest / res.seconds

            with Hub(Path(tmp) / f"single-{workers}", workers, extra_args=storage()) as hub:
                created, retrieved = asyncio.run(single_entities(hub, args.single))
                assert created.errors == 0, created.statuses
                assert retrieved.errors == 0, retrieved.statuses
                figures[f"create_rate_w{workers}"] = created.rate
                figures[f"create_p99_ms_w{workers}"] = created.percentile(99) * 1000
                figures[f"retrieve_rate_w{workers}"] = retrieved.rate
                figures[f"retrieve_p99_ms_w{workers}"] = retrieved.percentile(99) * 1000

        store = Path(tmp) / "query"
        query_storage = storage()  # one query store, served by 1 then 2 workers
        with Hub(store, 1, extra_args=query_storage) as hub:
            load = asyncio.run(ingest(hub, args.store, seed=2, label="loading query store"))
            assert load.errors == 0, load.statuses
            figures["store_load_rate"] = args.store / load.seconds
        for workers in worker_counts:
            with Hub(store, workers, extra_args=query_storage) as hub:
                result, mean_size = asyncio.run(
                    queries(hub, args.queries, radius=args.radius, concurrency=args.concurrency)
                )
                assert result.errors == 0, result.statuses
                figures[f"query_rate_w{workers}"] = result.rate
                figures[f"query_p50_ms_w{workers}"] = result.percentile(50) * 1000
                figures[f"query_p99_ms_w{workers}"] = result.percentile(99) * 1000
                figures[f"query_mean_results_w{workers}"] = mean_size

    for workers in worker_counts:
        rate = figures[f"ingest_rate_w{workers}"]
        figures[f"ingest_ratio_table_w{workers}"] = rate / figures["reference_table_rate"]
        figures[f"ingest_ratio_schema_w{workers}"] = rate / figures["reference_schema_rate"]
    print_table(args, figures, worker_counts)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def print_table(
    args: argparse.Namespace, figures: dict[str, Any], workers: tuple[int, ...]
) -> None:
    table = Table(
        title=f"dosi hub core on {args.backend} ({args.ingest:,} ingest, {args.store:,} query "
        f"store, {os.cpu_count()} cores)"
    )
    table.add_column("figure")
    for w in workers:
        table.add_column(f"--workers {w}", justify="right")
    table.add_column("target", justify="right")

    def row(label: str, key: str, fmt: str, target: str = "") -> None:
        table.add_row(label, *(format(figures[f"{key}_w{w}"], fmt) for w in workers), target)

    row("ingest, upsert batches of 1,000 (entities/s)", "ingest_rate", ",.0f", ">= 20,000")
    row("  ratio to executemany, one table", "ingest_ratio_table", ".2f")
    row("  ratio to executemany, same schema rows", "ingest_ratio_schema", ".2f", ">= 0.40")
    row("single create, 32 clients (req/s)", "create_rate", ",.0f", ">= 2,000")
    row("  p99 (ms)", "create_p99_ms", ".1f")
    row("single retrieve, 32 clients (req/s)", "retrieve_rate", ",.0f", ">= 2,000")
    row("  p99 (ms)", "retrieve_p99_ms", ".1f")
    row(
        f"query type+q+near {args.radius:g} m, {args.concurrency} clients (q/s)",
        "query_rate",
        ",.0f",
        ">= 1,500",
    )
    row("  p50 (ms)", "query_p50_ms", ".1f")
    row("  p99 (ms)", "query_p99_ms", ".1f", "<= 20")
    row("  mean results per query", "query_mean_results", ".1f", "<= 20")
    console.print(table)
    console.print(
        f"reference executemany: one table {figures['reference_table_rate']:,.0f} rows/s, "
        f"same schema rows {figures['reference_schema_rate']:,.0f} rows/s; "
        f"query store loaded at {figures['store_load_rate']:,.0f} entities/s; "
        f"ingest --workers 2 / --workers 1: "
        f"{figures['ingest_rate_w2'] / figures['ingest_rate_w1']:.2f}x"
    )


if __name__ == "__main__":
    main()

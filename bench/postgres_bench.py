"""Store backends side by side: PostgreSQL + PostGIS against SQLite, same entities, same calls.

Store-level (no HTTP, no JSON-LD): what each backend costs for the hub's
writes and reads. TrafficFlowObserved entities (hub_bench's) are written
through `Store.apply` exactly as the routes do, then read back:

* batch ingest: 1,000-entity upserts, one after another (a bulk loader);
* single creates / updates: one entity per apply(), 32 at once (many devices);
* near (20 nearest within 500 m) and type queries with count.

PostgreSQL runs in a private cluster with `synchronous_commit=off` (like SQLite's
`synchronous=NORMAL`: a crash of the hub loses nothing acknowledged, a power
cut may lose the last commits), or on the server given with --db.

    .venv/bin/python bench/postgres_bench.py --quick     # smoke run (~30 s)
    .venv/bin/python bench/postgres_bench.py             # full run (100,000 entities)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dosi.hub.query import EntityFilter
from dosi.hub.store.base import Mutation, Prefilter, Selection, Store
from dosi.hub.store.postgres import PostgresStore
from dosi.hub.store.sqlite import SqliteStore
from dosi.ngsi.context import ContextResolver
from dosi.ngsi.geo import parse_geoquery
from dosi.ngsi.model import Entity
from dosi.ngsi.parse import parse_entity
from dosi.ngsi.values import now_iso
from hub_bench import LAT0, LON0, SPAN, traffic_entity
from pgserver import CLUSTER_SETTINGS, fresh_database
from servers import postgres_cluster

console = Console()
CONCURRENCY = 32
TYPE_IRI = "https://uri.etsi.org/ngsi-ld/default-context/TrafficFlowObserved"


def entities(count: int, start: int, seed: int) -> list[Entity]:
    rng = random.Random(seed)
    ctx = asyncio.run(ContextResolver().resolve(None))
    now = now_iso()
    return [parse_entity(traffic_entity(start + i, rng), ctx, now=now) for i in range(count)]


def upsert(entity: Entity) -> Mutation:
    return lambda current: entity


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def concurrently(calls: list[Callable[[], Awaitable[Any]]]) -> None:
    queue = iter(calls)

    async def worker() -> None:
        for call in queue:
            await call()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def near_selection(rng: random.Random) -> Selection:
    lon, lat = LON0 + rng.random() * SPAN, LAT0 + rng.random() * SPAN
    flt = EntityFilter(geo=parse_geoquery("near;maxDistance==500", "Point", f"[{lon},{lat}]"))
    return Selection(
        prefilter=flt.prefilter(),
        predicate=flt.predicate(),
        order_key=flt.order_key(),
        key_range=flt.key_range(),
        limit=20,
    )


async def run(
    store: Store, bulk: list[Entity], singles: list[Entity], queries: int
) -> dict[str, float]:
    await store.open()
    try:
        rates: dict[str, float] = {}

        async def ingest() -> None:
            for b in range(0, len(bulk), 1000):
                await store.apply("", [(e["id"], upsert(e)) for e in bulk[b : b + 1000]])

        rates["batch ingest (entities/s)"] = len(bulk) / await timed(ingest)
        creates = [(lambda e=e: store.apply("", [(e["id"], upsert(e))])) for e in singles]
        rates[f"single creates, {CONCURRENCY} at once (/s)"] = len(singles) / await timed(
            lambda: concurrently(creates)
        )
        updates = [
            (lambda e=e: store.apply("", [(e["id"], upsert(e))])) for e in bulk[: len(singles)]
        ]
        rates[f"single updates, {CONCURRENCY} at once (/s)"] = len(singles) / await timed(
            lambda: concurrently(updates)
        )
        rng = random.Random(5)
        selections = [near_selection(rng) for _ in range(queries)]
        near = [(lambda s=s: store.select("", s)) for s in selections]
        rates["near, 20 within 500 m (q/s)"] = queries / await timed(lambda: concurrently(near))
        by_type = Selection(Prefilter(types=frozenset({TYPE_IRI})), offset=100, count=True)
        typed = [(lambda: store.select("", by_type)) for _ in range(max(1, queries // 10))]
        rates["type page + count (q/s)"] = len(typed) / await timed(lambda: concurrently(typed))
        return rates
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 entities")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--db", help="a PostgreSQL superuser URL (default: a private cluster)")
    args = parser.parse_args()
    if args.quick:
        args.entities, args.singles, args.queries = 5_000, 2_000, 200
    bulk = entities(args.entities, 0, seed=3)
    singles = entities(args.singles, args.entities, seed=4)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = asyncio.run(
            run(SqliteStore(Path(tmp) / "data"), bulk, singles, args.queries)
        )
    if args.db:
        url = asyncio.run(fresh_database(args.db))
        results["PostgreSQL"] = asyncio.run(run(PostgresStore(url), bulk, singles, args.queries))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="dosi-pg-bench-"))
        try:
            with postgres_cluster(workdir, CLUSTER_SETTINGS) as server:
                url = asyncio.run(fresh_database(server))
                results["PostgreSQL"] = asyncio.run(
                    run(PostgresStore(url), bulk, singles, args.queries)
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title=f"Store backends, {args.entities:,} TrafficFlowObserved entities")
    for column in ("operation", "SQLite", "PostgreSQL", "PostgreSQL / SQLite"):
        table.add_column(column, justify="right")
    for name, sqlite_rate in results["SQLite"].items():
        pg_rate = results["PostgreSQL"][name]
        table.add_row(
            name, f"{sqlite_rate:,.0f}", f"{pg_rate:,.0f}", f"{pg_rate / sqlite_rate:.2f}x"
        )
    console.print(table)


if __name__ == "__main__":
    main()

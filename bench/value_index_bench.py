"""Attribute-value index: what `--index-attribute` costs at ingest and buys for q.

Two hubs with the same 200,000 TrafficFlowObserved entities, one started with
`--index-attribute intensity`; both are asked the same selective q queries.

    .venv/bin/python bench/value_index_bench.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_bench import HOST, TYPE, Hub, ingest
from loadgen import build_request, run_load

console = Console()


async def q_load(hub: Hub, count: int, seed: int) -> tuple[float, float, float]:
    rng = random.Random(seed)

    def make(i: int) -> bytes:
        # intensity is uniform in 0..1000: each query matches ~0.1% of the store.
        value = rng.randint(0, 1000)
        return build_request(
            "GET", f"/ngsi-ld/v1/entities?type={TYPE}&q=intensity%3D%3D{value}&limit=20", HOST
        )

    result = await run_load(HOST, hub.port, make, total=count, concurrency=8)
    assert result.errors == 0, result.statuses
    return result.rate, result.percentile(50) * 1000, result.percentile(99) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, indexed in (("no index", ()), ("--index-attribute intensity", ("intensity",))):
            with Hub(Path(tmp) / label.replace(" ", "_"), indexed_attributes=indexed) as hub:
                load = asyncio.run(ingest(hub, args.entities, seed=3, label=f"loading ({label})"))
                assert load.errors == 0, load.statuses
                rate, p50, p99 = asyncio.run(q_load(hub, args.queries, seed=4))
                rows.append((label, args.entities / load.seconds, rate, p50, p99))
    table = Table(title=f"q=intensity==N over {args.entities:,} entities, 8 clients")
    for column in ("hub", "ingest (entities/s)", "q/s", "p50 (ms)", "p99 (ms)"):
        table.add_column(column, justify="right")
    for label, ingest_rate, rate, p50, p99 in rows:
        table.add_row(label, f"{ingest_rate:,.0f}", f"{rate:,.1f}", f"{p50:.1f}", f"{p99:.1f}")
    console.print(table)
    console.print(
        f"index speeds q up {rows[1][2] / rows[0][2]:.0f}x; ingest costs "
        f"{(1 - rows[1][1] / rows[0][1]) * 100:.0f}% more time per entity"
    )


if __name__ == "__main__":
    main()

"""Where the CPU goes when `dosi up --workers N` ingests: hub processes vs the database.

Answers "why does a second worker not give 1.5x on this machine": it ingests the
same batches with --workers 1 and 2 on PostgreSQL (a private cluster) and reads
each process group's CPU time from /proc before and after. If hub + server
together use nearly all cores, more workers cannot help; what would is less
CPU per entity.

    .venv/bin/python bench/workers_cpu.py [--entities 60000] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_bench import Hub, ingest
from pgserver import fresh_database, postgres_server

console = Console()
GROUPS = ("dosi (workers + supervisor)", "postgres server", "load generator")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process group of interest."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    used = dict.fromkeys(GROUPS, 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if "dosi up" in args:
            used[GROUPS[0]] += seconds
        elif args.startswith("postgres:") or "bin/postgres" in args:
            used[GROUPS[1]] += seconds
        elif int(pid) == me:
            used[GROUPS[2]] += seconds
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=60_000)
    parser.add_argument("--db", help="PostgreSQL superuser URL (default: a private cluster)")
    args = parser.parse_args()
    table = Table(title=f"CPU while ingesting {args.entities:,} entities, {os.cpu_count()} cores")
    for column in ("workers", "entities/s", "dosi", "postgres", "loadgen", "all", "µs/entity"):
        table.add_column(column, justify="right")
    with postgres_server(args.db) as server:
        for workers in (1, 2):
            url = asyncio.run(fresh_database(server))
            with (
                tempfile.TemporaryDirectory() as tmp,
                Hub(Path(tmp) / "data", workers, extra_args=("--db", url)) as hub,
            ):
                before = cpu_seconds()
                started = time.perf_counter()
                result = asyncio.run(ingest(hub, args.entities, seed=1))
                wall = time.perf_counter() - started
                after = cpu_seconds()
            assert result.errors == 0, result.statuses
            spent = {g: after[g] - before[g] for g in GROUPS}
            total = sum(spent.values())
            table.add_row(
                str(workers),
                f"{args.entities / wall:,.0f}",
                *(f"{spent[g] / wall:.2f}" for g in GROUPS),
                f"{total / wall:.2f}",
                f"{total / args.entities * 1e6:.0f}",
            )
    console.print(table)
    console.print(
        "dosi/postgres/loadgen/all: cores busy on average; µs/entity: CPU of all three per entity"
    )


if __name__ == "__main__":
    main()

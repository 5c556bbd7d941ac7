"""`dosi export` / `dosi import` benchmark: throughput and memory on a hub-sized data dir.

Builds a SQLite data dir through the store's normal write paths (entities
with `Store.apply`, which records their history; then sensor readings with
the temporal upsert), timed: that build is the reference. Then runs the real
commands as subprocesses, each timed with its peak RSS:

- `dosi export` of everything (rows/s, MB/s) beside a bare read of the same
  rows in the same run (sqlite3: every entity and history document, parsed);
- `dosi import` into a fresh data dir, against the reference build;
- the same import again (idempotent: nothing is added).

Peak RSS should not grow with the data (export and import stream): compare
--quick with a full run.

    .venv/bin/python bench/transfer_bench.py            # full run (~1-2 min)
    .venv/bin/python bench/transfer_bench.py --quick    # smoke run (~10 s)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from dosi.hub.store.rows import unpack
from dosi.hub.store.sqlite import SqliteStore
from dosi.hub.temporal.params import iso
from dosi.ngsi.model import DEFAULT_VOCAB

console = Console()
TYPE = DEFAULT_VOCAB + "AirQualityObserved"
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def entity(n: int) -> dict[str, object]:
    stamp = iso(START)
    inst = {"createdAt": stamp, "modifiedAt": stamp, "observedAt": stamp}
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:{n:06d}",
        "type": [TYPE],
        "createdAt": stamp,
        "modifiedAt": stamp,
        DEFAULT_VOCAB + "no2": [{"type": "Property", "value": n % 97, **inst}],
        DEFAULT_VOCAB + "pm10": [{"type": "Property", "value": n % 53, "unitCode": "GQ", **inst}],
        DEFAULT_VOCAB + "location": [
            {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [129 + n % 100 / 1e3, 35.1]},
                **inst,
            }
        ],
    }


async def build(data: Path, entities: int, sensors: int, readings: int) -> float:
    """Seconds to write the data set through the normal write paths."""
    store = SqliteStore(data)
    await store.open()
    started = time.perf_counter()
    try:
        for first in range(0, entities, 1_000):
            ops = [
                (e["id"], lambda _, e=e: e)
                for e in (entity(n) for n in range(first, min(first + 1_000, entities)))
            ]
            await store.apply("", ops)  # type: ignore[arg-type]
        for s in range(sensors):
            batch = [
                (
                    DEFAULT_VOCAB + "no2",
                    {"type": "Property", "value": i % 89, "observedAt": iso(START + i * 60_000)},
                )
                for i in range(readings)
            ]
            await store.temporal.upsert("", entity(s)["id"], [TYPE], None, batch)  # type: ignore[arg-type]
    finally:
        await store.close()
    return time.perf_counter() - started


def bare_read(data: Path) -> tuple[float, int]:
    """Seconds to read and parse every entity and history document; how many rows."""
    started = time.perf_counter()
    rows = 0
    with sqlite3.connect(data / "dosi.sqlite") as conn:
        for (doc,) in conn.execute("SELECT doc FROM entities"):
            unpack(doc)
            rows += 1
        for (doc,) in conn.execute("SELECT doc FROM history"):
            orjson.loads(doc)
            rows += 1
    return time.perf_counter() - started, rows


def run(*args: str) -> tuple[float, int, str]:
    """Seconds, peak RSS (MiB) and stderr of one `dosi` command."""
    exe = Path(sys.executable).with_name("dosi")
    started = time.perf_counter()
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"dosi {' '.join(args)} failed: {err}")
    return time.perf_counter() - started, usage.ru_maxrss // 1024, err.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data set (smoke run)")
    args = parser.parse_args()
    entities, sensors, readings = (2_000, 20, 500) if args.quick else (50_000, 200, 5_000)
    work = Path(tempfile.mkdtemp(prefix="dosi-transfer-"))
    try:
        source, copy, dump = work / "source", work / "copy", work / "hub.ndjson"
        console.print(
            f"building {entities:,} entities and {sensors * readings:,} readings "
            "through the normal write paths"
        )
        built = asyncio.run(build(source, entities, sensors, readings))
        read_s, rows = bare_read(source)
        export_s, export_rss, _ = run("export", "--data", str(source), "-o", str(dump))
        size = dump.stat().st_size
        import_s, import_rss, _ = run("import", "--data", str(copy), str(dump))
        again_s, again_rss, again = run("import", "--data", str(copy), str(dump))
        assert "imported 0 entities" in again and "(0 instances" in again, again

        table = Table(title=f"dosi export / import: {rows:,} rows, {size / 2**20:,.1f} MiB NDJSON")
        for column in ("step", "seconds", "rows/s", "peak RSS", "reference", "ratio"):
            table.add_column(column, justify="right" if column != "step" else "left")
        table.add_row(
            "export", f"{export_s:.2f}", f"{rows / export_s:,.0f}", f"{export_rss} MiB",
            f"bare read {read_s:.2f} s", f"{export_s / read_s:.1f}x",
        )  # fmt: skip
        table.add_row(
            "import (fresh)", f"{import_s:.2f}", f"{rows / import_s:,.0f}", f"{import_rss} MiB",
            f"write paths {built:.2f} s", f"{import_s / built:.2f}x",
        )  # fmt: skip
        table.add_row(
            "import (again)", f"{again_s:.2f}", f"{rows / again_s:,.0f}", f"{again_rss} MiB",
            "", "",
        )  # fmt: skip
        console.print(table)
        console.print(
            f"export writes {size / export_s / 2**20:,.1f} MiB/s; commands are whole processes "
            "(start-up included); the bare read runs in this process without any writing."
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

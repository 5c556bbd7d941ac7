"""The dashboard's pass-through: what `dosi web` adds to a hub request and to a live event.

A real hub (`dosi up`, fresh SQLite) and `dosi web` in front of it, each its own
process. Measured in the same run, direct to the hub (the reference) and through
the web server:

1. Queries: `GET /ngsi-ld/v1/entities?type=...&limit=100` (100 entities, ~20 kB),
   one at a time; median and p95 latency, and the ratio.
2. Live events: a PATCH to the hub, then the time until its `change` event arrives
   on a stream opened directly and on one opened through the web server.

    .venv/bin/python bench/proxy_bench.py            # 300 queries, 100 events
    .venv/bin/python bench/proxy_bench.py --quick    # 50 queries, 20 events
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from dosi.twin.hubproc import EmbeddedHub

API = "/ngsi-ld/v1"
TYPE = "BenchSensor"
console = Console(highlight=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_web(hub: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "dosi.cli.main", "web", "--hub", hub, "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("dosi web did not start")


async def seed(hub: str) -> None:
    entities = [
        {"id": f"urn:ngsi-ld:{TYPE}:{i}", "type": TYPE,
         "temperature": {"type": "Property", "value": 20.0 + i / 10},
         "location": {"type": "GeoProperty",
                      "value": {"type": "Point", "coordinates": [128.9 + i / 1000, 35.1]}}}
        for i in range(100)
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=hub) as http:
        response = await http.post(f"{API}/entityOperations/upsert", json=entities)
        assert response.status_code in (201, 204), response.text


async def queries(base: str, n: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for _ in range(n + 5):
            started = time.perf_counter()
            response = await http.get(f"{API}/entities", params={"type": TYPE, "limit": "100"})
            times.append(time.perf_counter() - started)
            assert response.status_code == 200 and len(response.json()) == 100
    return times[5:]  # warm-up: connections, caches


async def events(hub: str, base: str, n: int) -> list[float]:
    """Seconds from a PATCH's response to its change event on a stream opened at `base`."""
    target = f"{API}/entities/urn:ngsi-ld:{TYPE}:0/attrs"
    params = {"type": TYPE, "attrs": "temperature", "options": "keyValues"}
    delays = []
    async with (
        httpx.AsyncClient(base_url=hub, timeout=10) as writer,
        httpx.AsyncClient(base_url=base, timeout=10) as reader,
        reader.stream(
            "GET", f"{API}/stream", params=params, headers={"Accept": "text/event-stream"}
        ) as stream,
    ):
        lines = stream.aiter_lines()
        for i in range(n):
            value = 1000.0 + i
            response = await writer.patch(
                target, json={"temperature": {"type": "Property", "value": value}}
            )
            sent = time.perf_counter()
            assert response.status_code == 204, response.text
            async for line in lines:
                if line.startswith("data:") and f"{value}" in line:
                    break
            delays.append(time.perf_counter() - sent)
    return delays


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(hub: str, web: str, n_queries: int, n_events: int) -> None:
    await seed(hub)
    table = Table(title="dosi web pass-through vs the hub directly (one request at a time)")
    for column in ("measure", "direct p50", "proxied p50", "direct p95", "proxied p95", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, direct, proxied in (
        ("GET 100 entities", await queries(hub, n_queries), await queries(web, n_queries)),
        ("change event after PATCH", await events(hub, hub, n_events),
         await events(hub, web, n_events)),
    ):  # fmt: skip
        d50, p50 = statistics.median(direct) * 1000, statistics.median(proxied) * 1000
        table.add_row(
            name, f"{d50:.2f} ms", f"{p50:.2f} ms", f"{ms(direct, 0.95):.2f} ms",
            f"{ms(proxied, 0.95):.2f} ms", f"{p50 / d50:.2f}x",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer samples)")
    args = parser.parse_args()
    n_queries, n_events = (50, 20) if args.quick else (300, 100)
    console.print(f"cores: {os.cpu_count()}; {n_queries} queries, {n_events} events each way")
    with tempfile.TemporaryDirectory() as data, EmbeddedHub(Path(data)) as hub:
        web, url = start_web(hub.url)
        try:
            asyncio.run(measure(hub.url, url, n_queries, n_events))
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(30)


if __name__ == "__main__":
    main()

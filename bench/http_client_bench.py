"""HTTP client CPU per request: httpx vs aiohttp posting IoT agent measurements.

Why the twin's link speaks aiohttp (docs/architecture.md): both clients post the
same JSON measurements to a real hub (`dosi up`, fresh SQLite) with 16 requests
in flight; printed are each client's requests/s and the CPU this process spent
per request, and the ratio.

    .venv/bin/python bench/http_client_bench.py            # 3,000 requests each
    .venv/bin/python bench/http_client_bench.py --quick    # 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import orjson
from rich.console import Console

from dosi.twin.hubproc import EmbeddedHub

DEVICES = 100
CONCURRENCY = 16
BODY = orjson.dumps({"numValue": 1.5})
HEADERS = {"content-type": "application/json"}


async def provision(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        group = {"apikey": "k", "entity_type": "DeviceMeasurement"}
        (await client.post("/iot/services", json={"services": [group]})).raise_for_status()
        devices = [
            {
                "device_id": f"d{i}",
                "entity_name": f"urn:ngsi-ld:DeviceMeasurement:d{i}",
                "attributes": [{"object_id": "numValue", "name": "numValue", "type": "Property"}],
            }
            for i in range(DEVICES)
        ]
        (await client.post("/iot/devices", json={"devices": devices})).raise_for_status()


async def with_httpx(url: str, n: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=2 * CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def one(i: int) -> None:
            async with gate:
                params = {"k": "k", "i": f"d{i % DEVICES}"}
                response = await client.post(
                    "/iot/json", params=params, content=BODY, headers=HEADERS
                )
                assert response.status_code == 200, response.text

        await asyncio.gather(*(one(i) for i in range(n)))


async def with_aiohttp(url: str, n: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=2 * CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def one(i: int) -> None:
            async with gate:
                params = {"k": "k", "i": f"d{i % DEVICES}"}
                async with session.post(
                    "/iot/json", params=params, data=BODY, headers=HEADERS
                ) as r:
                    assert r.status == 200, await r.text()
                    await r.read()

        await asyncio.gather(*(one(i) for i in range(n)))


def measure(client: str, url: str, n: int) -> tuple[float, float]:
    """(requests/s, CPU µs of this process per request)."""
    run = with_httpx if client == "httpx" else with_aiohttp
    before, started = os.times(), time.perf_counter()
    asyncio.run(run(url, n))
    wall, after = time.perf_counter() - started, os.times()
    cpu = after.user + after.system - before.user - before.system
    return n / wall, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 500 if args.quick else args.requests
    console = Console()
    with tempfile.TemporaryDirectory() as data, EmbeddedHub(Path(data)) as hub:
        asyncio.run(provision(hub.url))
        results = {client: measure(client, hub.url, n) for client in ("aiohttp", "httpx")}
    for client, (rate, cpu) in results.items():
        console.print(f"{client:8} {rate:8,.0f} req/s   {cpu:7,.0f} µs CPU per request")
    ratio = results["httpx"][1] / results["aiohttp"][1]
    console.print(
        f"httpx / aiohttp CPU per request: {ratio:.1f}x ({n:,} requests, {CONCURRENCY} in flight)"
    )


if __name__ == "__main__":
    main()

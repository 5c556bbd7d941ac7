"""A notification receiver for bench/notify_bench.py: its own process, aiohttp on loopback.

Every acknowledged notification's changes are appended to a log file
("<entity id> <seq>" per line, written before the 200 goes out), so a receiver
killed mid-run and started again loses nothing it acknowledged, and the bench
counts distinct changes across every incarnation. GET /stats answers the counts.

    python bench/notify_receiver.py --port 9000 --log /tmp/received.log [--fail-rate 0.1]
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import orjson
from aiohttp import web


class Counter:
    def __init__(self, log: Path, fail_rate: float, seed: int) -> None:
        self.seen: set[bytes] = set()
        if log.exists():
            self.seen.update(line for line in log.read_bytes().splitlines() if line)
        self.fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.requests = 0
        self.failed = 0
        self.entities = 0

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.failed += 1
            return web.Response(status=500)
        lines = []
        for item in orjson.loads(body)["data"]:
            seq = item["seq"]
            value = seq["value"] if isinstance(seq, dict) else seq
            lines.append(f"{item['id']} {value}".encode())
        os.write(self.fd, b"\n".join(lines) + b"\n")
        self.seen.update(lines)
        self.entities += len(lines)
        return web.Response(status=200)

    async def stats(self, request: web.Request) -> web.Response:
        figures = {
            "requests": self.requests,
            "failed": self.failed,
            "entities": self.entities,
            "distinct": len(self.seen),
        }
        return web.json_response(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counter = Counter(args.log, args.fail_rate, args.seed)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/notify", counter.notify)
    app.router.add_get("/stats", counter.stats)
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()

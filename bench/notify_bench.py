"""Notification benchmark (issue "Subscriptions"): delivered/s and lost, three receivers.

Starts a real `dosi up`, a receiver in its own process (bench/notify_receiver.py,
which logs every change it acknowledges), one subscription to it, and drives
batch upserts over HTTP; every change carries a unique `seq`, so the receiver's
log says exactly which changes arrived. Scenarios: a plain receiver, one that
answers 10% of requests with HTTP 500, and one killed (SIGKILL) halfway through
the writes and started again a second later. Reported per scenario: changes
delivered per second end to end (first write to last change received), the
notification requests per second that carried them, and lost = expected -
distinct received (must be 0). The reference, measured in the same run, is the
rate at which an aiohttp client (4 requests in flight; the hub keeps 1 per
subscription, to keep notifications in order) can POST to the same receiver:
requests/s with one change each, changes/s with 500 each: the receiver's ceiling.

    .venv/bin/python bench/notify_bench.py            # full run (~2 min)
    .venv/bin/python bench/notify_bench.py --quick    # smoke run (~30 s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_bench import HOST, Hub, free_port
from loadgen import build_request, run_load
from pgserver import add_backend_arguments, backend_server, fresh_database

console = Console(width=120)
RECEIVER = Path(__file__).resolve().parent / "notify_receiver.py"
TARGET = 5_000


class ReceiverProcess:
    """bench/notify_receiver.py on a fixed port; restartable, its log survives restarts."""

    def __init__(self, port: int, log: Path, fail_rate: float = 0.0) -> None:
        self.port = port
        self.log = log
        self.fail_rate = fail_rate
        self.proc: subprocess.Popen[bytes] | None = None
        self.past_requests = 0  # requests seen by earlier incarnations
        self.past_failed = 0

    def start(self) -> None:
        args = [sys.executable, str(RECEIVER), "--port", str(self.port), "--log", str(self.log)]
        args += ["--fail-rate", str(self.fail_rate)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"the receiver did not start: {line!r}")

    async def stats(self) -> dict[str, int]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://{HOST}:{self.port}/stats")
            figures: dict[str, int] = response.json()
        figures["requests"] += self.past_requests
        figures["failed"] += self.past_failed
        return figures

    async def kill(self) -> None:
        last = await self.stats()  # requests up to now, for the totals
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.past_requests, self.past_failed = last["requests"], last["failed"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def received(self) -> set[bytes]:
        return {line for line in self.log.read_bytes().splitlines() if line}


@dataclass
class Outcome:
    name: str
    changes: int
    write_s: float = 0.0
    done_s: float = 0.0
    requests: int = 0
    failed: int = 0
    lost: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.changes / self.done_s if self.done_s else 0.0

    @property
    def request_rate(self) -> float:
        return self.requests / self.done_s if self.done_s else 0.0


def change_batches(changes: int, entities: int, batch: int) -> tuple[list[bytes], set[bytes]]:
    bodies: list[bytes] = []
    expected: set[bytes] = set()
    for start in range(0, changes, batch):
        items = []
        for seq in range(start, min(start + batch, changes)):
            entity_id = f"urn:ngsi-ld:Meter:{seq % entities}"
            items.append(
                {"id": entity_id, "type": "Meter", "seq": {"type": "Property", "value": seq}}
            )
            expected.add(f"{entity_id} {seq}".encode())
        bodies.append(
            build_request(
                "POST",
                "/ngsi-ld/v1/entityOperations/upsert",
                HOST,
                orjson.dumps(items),
                {"Content-Type": "application/json"},
            )
        )
    return bodies, expected


async def scenario(
    tmp: Path, name: str, args: argparse.Namespace, *, fail_rate: float, restart: bool
) -> Outcome:
    outcome = Outcome(name, args.changes)
    port = free_port()
    receiver = ReceiverProcess(port, tmp / f"{name}.log", fail_rate)
    receiver.start()
    try:
        with Hub(tmp / f"hub-{name}", workers=args.workers, extra_args=args.hub_args) as hub:
            async with httpx.AsyncClient(base_url=f"http://{HOST}:{hub.port}") as http:
                sub = {
                    "type": "Subscription",
                    "entities": [{"type": "Meter"}],
                    "notification": {"endpoint": {"uri": f"http://{HOST}:{port}/notify"}},
                }
                response = await http.post("/ngsi-ld/v1/subscriptions", json=sub)
                response.raise_for_status()
            bodies, expected = change_batches(args.changes, args.entities, args.batch)
            started = time.perf_counter()
            killer = asyncio.create_task(_restart_midway(receiver, bodies, started, args))
            if not restart:
                killer.cancel()
            result = await run_load(
                HOST, hub.port, lambda i: bodies[i], total=len(bodies), concurrency=4
            )
            assert result.errors == 0, result.statuses
            outcome.write_s = time.perf_counter() - started
            if restart:
                await killer
            deadline = time.monotonic() + args.patience
            while time.monotonic() < deadline:
                if (await receiver.stats())["distinct"] >= len(expected):
                    break
                await asyncio.sleep(0.05)
            outcome.done_s = time.perf_counter() - started
            stats = await receiver.stats()
            outcome.requests, outcome.failed = stats["requests"], stats["failed"]
        outcome.lost = len(expected - receiver.received())
    finally:
        receiver.stop()
    return outcome


async def _restart_midway(
    receiver: ReceiverProcess, bodies: list[bytes], started: float, args: argparse.Namespace
) -> None:
    """Kill the receiver once about half the writes are in, start it again a second later."""
    # The writes take about changes / ingest rate; half of that is a fair guess of "midway".
    await asyncio.sleep(max(0.3, args.changes / 20_000 / 2))
    await receiver.kill()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(receiver.start)


async def reference(tmp: Path, seconds: float) -> dict[str, float]:
    """How fast an aiohttp client with 4 requests in flight can POST to the same receiver."""
    port = free_port()
    receiver = ReceiverProcess(port, tmp / "reference.log")
    receiver.start()
    figures: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=16)
        ) as session:
            for size in (1, 500):
                sent, elapsed = await _post_for(session, port, _notification(size), seconds)
                figures[f"requests_{size}"] = sent / elapsed
                figures[f"changes_{size}"] = sent * size / elapsed
    finally:
        receiver.stop()
    return figures


async def _post_for(
    session: aiohttp.ClientSession, port: int, body: bytes, seconds: float
) -> tuple[int, float]:
    """POST `body` from 4 concurrent workers for `seconds`; (requests, elapsed)."""
    sent = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal sent
        while time.perf_counter() < stop:
            async with session.post(
                f"http://{HOST}:{port}/notify",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as response:
                await response.read()
                assert response.status == 200
            sent += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    return sent, time.perf_counter() - began


def _notification(size: int) -> bytes:
    data = [
        {"id": f"urn:ngsi-ld:Meter:{n}", "type": "Meter", "seq": {"type": "Property", "value": n}}
        for n in range(size)
    ]
    return orjson.dumps(
        {
            "id": "urn:ngsi-ld:Notification:ref",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:ref",
            "notifiedAt": "2026-11-25T00:00:00Z",
            "data": data,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--changes", type=int, default=200_000, help="changes per scenario")
    parser.add_argument("--entities", type=int, default=10_000, help="distinct entities")
    parser.add_argument("--batch", type=int, default=1_000, help="entities per upsert")
    parser.add_argument("--workers", type=int, default=1, help="dosi up --workers")
    parser.add_argument("--patience", type=float, default=120.0, help="seconds to wait at the end")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    add_backend_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.changes, args.entities, args.patience = 20_000, 5_000, 60.0
    servers = backend_server(args)
    with servers as server:
        # A fresh database per hub on PostgreSQL; nothing extra on SQLite.
        args.storage = lambda: (
            () if server is None else ("--db", asyncio.run(fresh_database(server)))
        )
        run_scenarios(args)


def run_scenarios(args: argparse.Namespace) -> None:
    plans = [
        ("plain receiver", 0.0, False),
        ("10% of requests HTTP 500", 0.1, False),
        ("receiver killed + restarted", 0.0, True),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        console.print("[dim]reference: raw POSTs to the receiver...[/]")
        ref = asyncio.run(reference(Path(tmp), 1.0 if args.quick else 3.0))
        outcomes = []
        for index, (name, fail_rate, restart) in enumerate(plans):
            console.print(f"[dim]{name}: {args.changes:,} changes...[/]")
            slug = f"s{index}"
            args.hub_args = args.storage()  # made here: the scenario runs in an event loop
            outcomes.append(
                asyncio.run(scenario(Path(tmp), slug, args, fail_rate=fail_rate, restart=restart))
            )
            outcomes[-1].name = name
    print_table(args, outcomes, ref)
    if args.json:
        figures = {
            "cpu_count": os.cpu_count(),
            "reference": ref,
            "scenarios": [
                {
                    "name": o.name,
                    "changes": o.changes,
                    "write_s": o.write_s,
                    "done_s": o.done_s,
                    "changes_per_s": o.rate,
                    "requests_per_s": o.request_rate,
                    "requests": o.requests,
                    "failed_requests": o.failed,
                    "lost": o.lost,
                }
                for o in outcomes
            ],
        }
        args.json.write_text(json.dumps(figures, indent=2))
    if any(o.lost for o in outcomes):
        sys.exit(1)


def print_table(args: argparse.Namespace, outcomes: list[Outcome], ref: dict[str, float]) -> None:
    table = Table(
        title=f"dosi notifications on {args.backend} ({args.changes:,} changes per scenario, "
        "upserts of "
        f"{args.batch:,}, --workers {args.workers}, {os.cpu_count()} cores)"
    )
    for column in (
        "scenario",
        "writes/s",
        "delivered/s",
        "delivered / writes",
        "requests/s",
        "changes/request",
        "HTTP 500s",
        "lost",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for o in outcomes:
        ok = o.requests - o.failed
        writes = o.changes / o.write_s
        table.add_row(
            o.name,
            f"{writes:,.0f}",
            f"{o.rate:,.0f}",
            f"{o.rate / writes:.2f}",
            f"{o.request_rate:,.0f}",
            f"{o.changes / ok:,.1f}" if ok else "-",
            f"{o.failed:,}",
            f"{o.lost:,}",
        )
    console.print(table)
    console.print(
        f"target: >= {TARGET:,} changes delivered/s, 0 lost. Reference (same receiver, "
        f"aiohttp client, 4 in flight): {ref['requests_1']:,.0f} requests/s with 1 change each, "
        f"{ref['changes_500']:,.0f} changes/s with 500 each."
    )
    console.print(
        "delivered/s counts changes from the first write to the last change received (it "
        "cannot exceed writes/s); a backlog goes out in notifications of up to 500 changes."
    )


if __name__ == "__main__":
    main()

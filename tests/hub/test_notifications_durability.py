"""At-least-once across crashes: real `dosi up` processes, SIGKILL, restarts, worker takeover.

On either backend (`dosi up --db URL` for PostgreSQL, see the `backend` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_notifications_receiver import SUBSCRIPTIONS, Receiver, running

import dosi
from servers import free_port

SRC = str(Path(dosi.__file__).parents[1])
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    "PYTHONUNBUFFERED": "1",
}
UPSERT = "/ngsi-ld/v1/entityOperations/upsert"


class Hub:
    """`dosi up` on one data dir and port; each start is its own process group."""

    def __init__(self, tmp_path: Path, db_url: str | None = None) -> None:
        self.data = tmp_path / "data"
        self.db_url = db_url
        self.logs = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, workers: int = 1) -> None:
        self.starts += 1
        log = self.logs / f"hub-{self.starts}.log"
        args = ["up", "--port", str(self.port), "--data", str(self.data), "--log-level", "warning"]
        if self.db_url is not None:
            args += ["--db", self.db_url]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dosi.cli.main", *args, "--workers", str(workers)],
                env=ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while b"dosi hub:" not in log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"dosi up did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def workers(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        return [int(p) for p in out.stdout.split()]

    def leader(self) -> int:
        """The worker holding the notifier role (its flock on notifier.lead, from /proc/locks;
        on PostgreSQL the session that holds the role's advisory lock)."""
        if self.db_url is not None:
            return _pg_leader(self.db_url)
        inode = os.stat(self.data / "notifier.lead").st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields:  # a waiter, not the holder
                continue
            if fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                return int(fields[4])
        raise AssertionError("nobody holds the notifier role")


def _pg_leader(url: str) -> int:
    # Called from the tests' event loop: the query runs on a loop of its own.
    with ThreadPoolExecutor(1) as pool:
        port = pool.submit(asyncio.run, _pg_role_port(url)).result()
    if port is None:
        raise AssertionError("nobody holds the notifier role")
    # The worker whose socket has that local port.
    out = subprocess.run(
        ["ss", "-tnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"pid=(\d+)", out)
    if found is None:
        raise AssertionError(f"no process has the role's connection (port {port}): {out!r}")
    return int(found.group(1))


async def _pg_role_port(url: str) -> int | None:
    """The client port of the session holding the notifier role's advisory lock."""
    import asyncpg

    from dosi.hub.store.postgres_schema import lock_key

    # A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
    key = lock_key("dosi-role", "dosi", "notifier") & 0xFFFF_FFFF_FFFF_FFFF
    conn = await asyncpg.connect(url)
    try:
        port = await conn.fetchval(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = $1 AND l.objid = $2",
            key >> 32,
            key & 0xFFFF_FFFF,
        )
    finally:
        await conn.close()
    return None if port is None else int(port)


@pytest.fixture
def hub(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Any:
    url = request.getfixturevalue("postgres_db") if backend == "postgres" else None
    found = Hub(tmp_path, url)
    yield found
    found.kill()


def batch(start: int, count: int, version: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"urn:ngsi-ld:Meter:{n}",
            "type": "Meter",
            "seq": {"type": "Property", "value": version * 1_000_000 + n},
        }
        for n in range(start, start + count)
    ]


async def write(http: httpx.AsyncClient, entities: list[dict[str, Any]]) -> None:
    for attempt in range(50):  # after a worker dies, a connection may meet its closed socket
        try:
            response = await http.post(UPSERT, json=entities)
            break
        except httpx.TransportError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    assert response.status_code in (201, 204), response.text


async def subscribe_to(http: httpx.AsyncClient, url: str) -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Meter"}],
        "notification": {"endpoint": {"uri": url}, "format": "keyValues"},
    }
    response = await http.post(SUBSCRIPTIONS, json=body)
    assert response.status_code == 201, response.text


def received(receiver: Receiver) -> set[int]:
    return {item["seq"] for item in receiver.entities}


async def wait_received(receiver: Receiver, expected: set[int], within: float) -> None:
    deadline = time.monotonic() + within
    while not expected <= received(receiver):
        if time.monotonic() > deadline:
            missing = expected - received(receiver)
            raise AssertionError(
                f"{len(missing)} notifications never arrived, e.g. {sorted(missing)[:5]}"
            )
        await asyncio.sleep(0.05)


async def test_sigkill_with_the_receiver_down_loses_nothing(hub: Hub) -> None:
    port = free_port()  # the receiver will listen here, later
    hub.start()
    expected: set[int] = set()
    async with httpx.AsyncClient(base_url=hub.url, timeout=10) as http:
        await subscribe_to(http, f"http://127.0.0.1:{port}/notify")
        for version in range(3):
            entities = batch(0, 200, version)
            await write(http, entities)
            expected |= {e["seq"]["value"] for e in entities}
    hub.kill()  # right after the last acknowledged write: the journal may not be queued yet
    hub.start()
    receiver = Receiver()
    await receiver.start(port)
    try:
        await wait_received(receiver, expected, within=30)
        # Every change arrives (some perhaps twice: at-least-once), and nothing else.
        assert received(receiver) == expected
    finally:
        await receiver.stop()


async def test_a_second_worker_takes_over_when_the_leader_dies(hub: Hub) -> None:
    hub.start(workers=2)
    async with running() as receiver, httpx.AsyncClient(base_url=hub.url, timeout=10) as http:
        await subscribe_to(http, receiver.url)
        first = batch(0, 100, 1)
        await write(http, first)
        await wait_received(receiver, {e["seq"]["value"] for e in first}, within=10)
        leader = hub.leader()
        assert leader in hub.workers()
        os.kill(leader, signal.SIGKILL)
        second = batch(0, 100, 2)
        await write(http, second)
        await wait_received(receiver, {e["seq"]["value"] for e in second}, within=15)
        assert hub.leader() != leader


async def test_stream_sees_changes_written_by_every_worker(hub: Hub) -> None:
    hub.start(workers=2)
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=hub.url, timeout=10) as http:

        async def listen() -> None:
            async with http.stream(
                "GET",
                "/ngsi-ld/v1/stream",
                params={"type": "Meter"},
                headers={"Accept": "text/event-stream"},
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        seen.append(line)

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        # Fresh connections: the kernel spreads them over both workers.
        for n in range(20):
            async with httpx.AsyncClient(base_url=hub.url, timeout=10) as once:
                await write(once, batch(n, 1, 1))
        for _ in range(200):
            if len(seen) >= 20:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(seen) == 20

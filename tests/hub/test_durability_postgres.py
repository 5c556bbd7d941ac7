"""Crashes of `dosi up --db postgresql://...`: real processes, a real PostgreSQL, SIGKILL.

The same load and the same checks as test_durability.py (new entities in batches
and one by one), plus clients that keep replacing the same entities with newer
generations in another tenant, so that a change half-applied by a killed worker
would show: every entity must be wholly one generation, every batch wholly one
generation, and never older than its last acknowledged one. PostgreSQL itself
stays up (the test cluster runs without fsync: these tests are about dosi).

With two workers, killing one worker is not killing the hub: the other keeps
serving, and takes over the single-holder roles (notifier, device commands) the
dead one held, since its advisory locks went with its database sessions.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from test_durability import (
    API,
    BATCH,
    JSON,
    Hub,
    Maker,
    build_request,
    check_recovered,
    fetch_all,
    key_values,
    spot,
    write_until_gone,
)

from dosi.hub.store.postgres_schema import lock_key

TENANT = "rewrites"
REWRITERS = 3  # clients, each replacing its own slot of entities again and again
SLOT = 50  # entities per slot, one batch upsert (one transaction) each time
ROLES = ("notifier", "iot-commands")  # tried every second by every worker


@pytest.fixture
def pg_hub(tmp_path: Path, postgres_db: str) -> Iterator[Hub]:
    hub = Hub(tmp_path, db_url=postgres_db)
    yield hub
    hub.kill()


# --- entities replaced again and again ---------------------------------------------


def gauge(slot: int, index: int, gen: int) -> dict[str, Any]:
    """Entity `index` of `slot` as generation `gen` wrote it; the attribute set alternates,
    so a replace applied in part leaves a visible mix."""
    return {
        "id": f"urn:ngsi-ld:Gauge:{slot}-{index}",
        "type": "Gauge",
        "gen": {"type": "Property", "value": gen},
        f"side{gen % 2}": {"type": "Property", "value": f"{slot}/{index}/{gen}"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": spot(gen, slot * SLOT + index)},
        },
    }


@dataclass
class Rewrites:
    """Generations sent and acknowledged per slot (each slot's batches go one at a time)."""

    sent: dict[int, list[int]] = field(default_factory=dict)
    acked: dict[int, list[int]] = field(default_factory=dict)

    def makers(self, port: int) -> list[Maker]:
        return [self._maker(slot, f"127.0.0.1:{port}") for slot in range(REWRITERS)]

    def _maker(self, slot: int, host: str) -> Maker:
        gens = itertools.count(1)
        sent = self.sent.setdefault(slot, [])
        acked = self.acked.setdefault(slot, [])
        headers = {**JSON, "NGSILD-Tenant": TENANT}

        def make() -> tuple[bytes, Callable[[int], None]]:
            gen = next(gens)
            sent.append(gen)
            body = orjson.dumps([gauge(slot, i, gen) for i in range(SLOT)])
            raw = build_request("POST", f"{API}/entityOperations/upsert", host, body, headers)
            return raw, lambda status: acked.append(gen) if status in (201, 204) else None

        return make


def check_rewrites(url: str, book: Rewrites) -> None:
    """Each slot holds one generation, whole, no older than its last acknowledged one;
    the spatial index and the statistics follow the replacements."""
    with httpx.Client(base_url=url, timeout=30, headers={"NGSILD-Tenant": TENANT}) as http:
        stored = fetch_all(http, "Gauge")
        for slot in range(REWRITERS):
            acked = book.acked[slot]
            assert acked, f"slot {slot}: nothing acknowledged"
            mine = {eid: e for eid, e in stored.items() if eid.split(":")[3].startswith(f"{slot}-")}
            gens = Counter(e["gen"] for e in mine.values())
            assert len(mine) == SLOT and len(gens) == 1, f"slot {slot}: batch half-applied {gens}"
            (gen,) = gens
            # The last acknowledged generation, or a later one whose answer never came.
            unanswered = set(book.sent[slot]) - set(acked)
            assert gen == acked[-1] or (gen > acked[-1] and gen in unanswered), (
                f"slot {slot} holds generation {gen}; acknowledged up to {acked[-1]}"
            )
            for eid, entity in mine.items():
                index = int(eid.rsplit("-", 1)[1])
                assert entity == key_values(gauge(slot, index, gen)), f"{eid} half-applied"
                if index == 0:  # the geometry row was replaced with the entity
                    where = entity["location"]["coordinates"]
                    params = {
                        "type": "Gauge",
                        "georel": "near;maxDistance==1",
                        "geometry": "Point",
                        "coordinates": orjson.dumps(where).decode(),
                    }
                    found = http.get(f"{API}/entities", params=params).json()
                    assert [e["id"] for e in found] == [eid], f"near {where}: {found}"
        response = http.get(f"{API}/attributes", params={"details": "true"})
        assert response.status_code == 200, response.text
        counts = {a["attributeName"]: a["attributeCount"] for a in response.json()}
        present = Counter(name for e in stored.values() for name in e if name not in ("id", "type"))
        assert counts == present
        assert http.get(f"{API}/types/Gauge").json()["entityCount"] == REWRITERS * SLOT


async def check_tables(db_url: str, entities: int) -> None:
    """The default tenant's tables agree: one geometry row per entity, none orphaned."""
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM dosi.entities") == entities
        assert await conn.fetchval("SELECT count(*) FROM dosi.geo") == entities
        orphans = "SELECT count(*) FROM dosi.geo g WHERE NOT EXISTS (SELECT 1 FROM dosi.entities e WHERE e.rid = g.rid)"
        assert await conn.fetchval(orphans) == 0
    finally:
        await conn.close()


# --- which process holds a role ----------------------------------------------------


def workers_of(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    return [int(pid) for pid in children.split()]


def process_with_port(local_port: int, pids: list[int]) -> int | None:
    """Which of `pids` owns the local TCP socket bound to `local_port` (from /proc)."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                inodes.add(int(fields[9]))
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                return pid
    return None


async def role_holders(db_url: str, workers: list[int]) -> dict[str, int | None]:
    """role -> the worker whose session holds its advisory lock (None: nobody's)."""
    conn = await asyncpg.connect(db_url)
    try:
        holders: dict[str, int | None] = {}
        for role in ROLES:
            key = lock_key("dosi-role", "dosi", role) & 0xFFFFFFFFFFFFFFFF
            port = await conn.fetchval(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 "
                "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())",
                key >> 32,
                key & 0xFFFFFFFF,
            )
            holders[role] = None if port is None else process_with_port(port, workers)
        return holders
    finally:
        await conn.close()


def wait_for_roles(db_url: str, workers: list[int], timeout: float = 10) -> dict[str, int | None]:
    deadline = time.monotonic() + timeout
    while True:
        holders = asyncio.run(role_holders(db_url, workers))
        if all(holders.values()) or time.monotonic() > deadline:
            return holders
        time.sleep(0.2)


# --- the tests ------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_of_the_hub_loses_nothing_acknowledged(pg_hub: Hub, workers: int) -> None:
    hub = pg_hub
    proc = hub.start(workers)
    book = Rewrites()
    ledger = asyncio.run(
        write_until_gone(
            hub.port,
            lambda: os.killpg(proc.pid, signal.SIGKILL),
            after=1.5,
            more=book.makers(hub.port),
        )
    )
    hub.kill()
    assert proc.returncode == -signal.SIGKILL
    # The premise: real load, cut off mid-flight.
    assert ledger.in_flight_at_signal > 0
    assert ledger.acked_batches and ledger.acked_singles, ledger
    assert set(ledger.statuses) <= {201, 204}, (ledger.statuses, hub.output())

    hub.start(workers)
    stored = check_recovered(hub.url, ledger)
    assert stored >= BATCH * len(ledger.acked_batches) + len(ledger.acked_singles)
    check_rewrites(hub.url, book)
    assert hub.stop() == 0, hub.output()
    assert hub.db_url is not None
    asyncio.run(check_tables(hub.db_url, stored))


def test_sigkill_of_one_worker_leaves_the_other_serving(pg_hub: Hub) -> None:
    hub = pg_hub
    assert hub.db_url is not None
    proc = hub.start(2)
    workers = workers_of(proc.pid)
    assert len(workers) == 2
    holders = wait_for_roles(hub.db_url, workers)
    # Found by the client port of the holding session, so PostgreSQL must see the
    # workers' own ports (a server behind NAT, e.g. a published container port, does not).
    assert all(holders.values()), f"role holders not found among the workers: {holders}"
    victim = holders["notifier"]
    assert victim is not None
    (survivor,) = set(workers) - {victim}

    book = Rewrites()
    ledger = asyncio.run(
        write_until_gone(
            hub.port,
            lambda: os.kill(victim, signal.SIGKILL),
            after=1.0,
            survive_s=1.0,
            more=book.makers(hub.port),
        )
    )
    assert ledger.in_flight_at_signal > 0
    assert ledger.acked_batches and ledger.acked_singles, ledger
    # Answers to requests sent after the kill: the survivor went on serving.
    assert ledger.answered_after_signal > ledger.in_flight_at_signal, ledger
    assert set(ledger.statuses) <= {201, 204}, (ledger.statuses, hub.output())
    assert proc.poll() is None, hub.output()  # the supervisor waits for the survivor

    # Its database sessions closed with it, so its row and advisory locks are gone:
    # the survivor rewrote the same entities and holds every role now.
    assert wait_for_roles(hub.db_url, [survivor]) == dict.fromkeys(ROLES, survivor)
    stored = check_recovered(hub.url, ledger)
    assert stored >= BATCH * len(ledger.acked_batches) + len(ledger.acked_singles)
    check_rewrites(hub.url, book)
    asyncio.run(check_tables(hub.db_url, stored))

    # A dead worker is not replaced; the supervisor says so when the survivor stops.
    assert hub.stop() == 2, hub.output()
    assert "1 of 2 worker processes failed" in hub.output()

"""Crashes and restarts of `dosi up`: real processes, real signals, loopback only.

"Acknowledged" means a 2xx reached the client. After a SIGKILL every acknowledged
write must be back, exactly as acknowledged; a batch (one transaction) is all there
or not at all, whether or not its answer arrived; the R*Tree, the attribute
statistics and the entities table agree. After a SIGTERM the hub finishes what it
took on and exits 0; in-flight requests get a 2xx or lose their connection, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

import dosi

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from loadgen import Connection, build_request

SRC = str(Path(dosi.__file__).parents[1])
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    "PYTHONUNBUFFERED": "1",
}
API = "/ngsi-ld/v1"
BATCH = 200  # entities per upsert, one store transaction each
BATCH_CLIENTS = 4
SINGLE_CLIENTS = 2
JSON = {"Content-Type": "application/json"}
JSON_LD_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Hub:
    """`dosi up` on one data dir and one port, restartable; every start is its own process group.

    With `db_url` the hub keeps its data in that PostgreSQL database (`--db`).
    """

    def __init__(self, tmp_path: Path, db_url: str | None = None) -> None:
        self.data = tmp_path / "data"
        self.db_url = db_url
        self.logs = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, workers: int = 1) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = self.logs / f"hub-{self.starts}.log"
        args = ["up", "--port", str(self.port), "--data", str(self.data), "--log-level", "warning"]
        if self.db_url is not None:
            args += ["--db", self.db_url]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dosi.cli.main", *args, "--workers", str(workers)],
                env=ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc = proc
        deadline = time.monotonic() + 15
        while b"dosi hub:" not in log.read_bytes():  # printed once every worker listens
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no ready line from dosi up:\n{self.output()}")
            time.sleep(0.05)
        return proc

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers), then wait for the port."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        self._wait_port_free()

    def stop(self) -> int:
        """SIGTERM (graceful shutdown), wait, and return the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        self.proc = None
        return code

    def _wait_port_free(self) -> None:
        # A SIGKILLed worker's listening socket goes with it, but not necessarily at once.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.02)

    def output(self) -> str:
        logs = sorted(self.logs.glob("hub-*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in logs)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(tmp_path)
    yield hub
    hub.kill()


# --- what the clients write -------------------------------------------------------


def spot(series: float, n: int) -> list[float]:
    return [round(100.0 + series * 0.01, 6), round(10.0 + n * 0.0001, 6)]


def probe(batch: int, index: int) -> dict[str, Any]:
    """Entity `index` of upsert batch `batch`: says which batch and index it belongs to."""
    return _entity("Probe", f"{batch}-{index}", batch, index, spot(batch, index))


def beacon(n: int) -> dict[str, Any]:
    """The n-th entity created on its own (POST /entities)."""
    return _entity("Beacon", str(n), n, 0, spot(-1000 - n, 0))


def _entity(kind: str, key: str, batch: int, index: int, where: list[float]) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{kind}:{key}",
        "type": kind,
        "batch": {"type": "Property", "value": batch},
        "index": {"type": "Property", "value": index},
        "payload": {"type": "Property", "value": f"{kind}/{key}/" + "x" * 40},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": where}},
    }


def key_values(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v["value"] if isinstance(v, dict) else v for k, v in entity.items()}


def expected(entity_id: str) -> dict[str, Any]:
    """What the hub acknowledged for this id (keyValues), derived from the id alone."""
    kind, key = entity_id.split(":")[2:4]
    if kind == "Probe":
        batch, index = key.split("-")
        return key_values(probe(int(batch), int(index)))
    return key_values(beacon(int(key)))


# --- load, and a signal while it runs ----------------------------------------------


Maker = Callable[[], tuple[bytes, Callable[[int], None]]]
"""The next request of a client, and what to note once its status is known."""


@dataclass
class Ledger:
    """What the clients sent and which of it the hub acknowledged."""

    sent_batches: set[int] = field(default_factory=set)
    acked_batches: set[int] = field(default_factory=set)
    sent_singles: set[int] = field(default_factory=set)
    acked_singles: set[int] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    in_flight_at_signal: int = 0
    answered_after_signal: int = 0


async def write_until_gone(
    port: int,
    signal_hub: Callable[[], None],
    after: float,
    *,
    survive_s: float | None = None,
    more: Sequence[Maker] = (),
) -> Ledger:
    """Batch upserts and single creates from several connections; `signal_hub` after `after` s.

    Every client keeps writing until its connection fails (the hub is gone or closed it).
    With `survive_s` the hub is meant to outlive the signal (one of its workers killed):
    a client whose connection fails connects again, and all stop `survive_s` s after the
    signal. `more`: further clients, one per request maker, counted in the same ledger.
    """
    ledger = Ledger()
    host = f"127.0.0.1:{port}"
    batches = itertools.count()
    singles = itertools.count()
    in_flight = 0
    signalled = False
    stop_at = float("inf")

    async def client(make: Maker) -> None:
        nonlocal in_flight
        conn = await Connection.open("127.0.0.1", port)
        while True:
            try:
                while time.monotonic() < stop_at:
                    raw, record = make()
                    in_flight += 1
                    try:
                        status, _ = await conn.send(raw)
                    except (OSError, EOFError):
                        ledger.connection_errors += 1
                        break
                    finally:
                        in_flight -= 1
                    ledger.statuses[status] += 1
                    ledger.answered_after_signal += signalled
                    record(status)
                else:
                    return
            finally:
                conn.close()
            if survive_s is None:
                return
            try:
                conn = await Connection.open("127.0.0.1", port)
            except OSError:
                ledger.connection_errors += 1
                return

    def upsert() -> tuple[bytes, Callable[[int], None]]:
        n = next(batches)
        ledger.sent_batches.add(n)
        body = orjson.dumps([probe(n, i) for i in range(BATCH)])
        raw = build_request("POST", f"{API}/entityOperations/upsert", host, body, JSON)
        return raw, lambda status: ledger.acked_batches.add(n) if status == 201 else None

    def create() -> tuple[bytes, Callable[[int], None]]:
        n = next(singles)
        ledger.sent_singles.add(n)
        raw = build_request("POST", f"{API}/entities", host, orjson.dumps(beacon(n)), JSON)
        return raw, lambda status: ledger.acked_singles.add(n) if status == 201 else None

    async def signaller() -> None:
        nonlocal signalled, stop_at
        await asyncio.sleep(after)
        ledger.in_flight_at_signal = in_flight
        signalled = True
        if survive_s is not None:
            stop_at = time.monotonic() + survive_s
        signal_hub()

    clients = [client(upsert) for _ in range(BATCH_CLIENTS)]
    clients += [client(create) for _ in range(SINGLE_CLIENTS)]
    clients += [client(make) for make in more]
    await asyncio.wait_for(asyncio.gather(signaller(), *clients), timeout=30)
    return ledger


# --- what must hold after the restart ----------------------------------------------


def fetch_all(http: httpx.Client, entity_type: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    while True:
        params = {"type": entity_type, "options": "keyValues", "limit": 1000, "offset": len(found)}
        response = http.get(f"{API}/entities", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.update((e["id"], e) for e in page)
        if len(page) < 1000:
            return found


def results_count(http: httpx.Client, params: dict[str, Any]) -> int:
    response = http.get(f"{API}/entities", params={**params, "count": "true", "limit": 1})
    assert response.status_code == 200, response.text
    return int(response.headers["NGSILD-Results-Count"])


def check_recovered(url: str, ledger: Ledger) -> int:
    """Every assertion about the restarted hub's data; returns how many entities it holds."""
    with httpx.Client(base_url=url, timeout=30) as http:
        probes = fetch_all(http, "Probe")
        beacons = fetch_all(http, "Beacon")
        stored = {**probes, **beacons}

        # Nothing half-written: every entity has all its attributes, exactly as sent.
        wrong = {eid: e for eid, e in stored.items() if e != expected(eid)}
        assert not wrong, (
            f"{len(wrong)} entities differ from what was sent: {list(wrong.items())[:3]}"
        )

        # One transaction per batch: all of its entities or none.
        per_batch = Counter(e["batch"] for e in probes.values())
        partial = {b: n for b, n in per_batch.items() if n != BATCH}
        assert not partial, f"batches half-applied (batch: entities present): {partial}"
        assert set(per_batch) <= ledger.sent_batches
        lost = sorted(ledger.acked_batches - set(per_batch))
        assert not lost, f"acknowledged batches lost: {lost}"
        present_singles = {e["batch"] for e in beacons.values()}
        assert present_singles <= ledger.sent_singles
        lost = sorted(ledger.acked_singles - present_singles)
        assert not lost, f"acknowledged single creates lost: {lost}"

        # The R*Tree agrees with the entities table: near finds each of a sample...
        sample = sorted(probes)[:: max(1, len(probes) // 25)] + sorted(beacons)[:10]
        for eid in sample:
            where = stored[eid]["location"]["coordinates"]
            params = {
                "type": stored[eid]["type"],
                "georel": "near;maxDistance==1",
                "geometry": "Point",
                "coordinates": orjson.dumps(where).decode(),
            }
            response = http.get(f"{API}/entities", params={**params, "options": "keyValues"})
            assert response.status_code == 200, response.text
            assert eid in {e["id"] for e in response.json()}, f"near {where} misses {eid}"
        # ... and a box around everything finds every entity once.
        box = [[[-90.0, 0.0], [170.0, 0.0], [170.0, 40.0], [-90.0, 40.0], [-90.0, 0.0]]]
        for kind, entities in (("Probe", probes), ("Beacon", beacons)):
            within = {
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": orjson.dumps(box).decode(),
            }
            assert results_count(http, {"type": kind, **within}) == len(entities)

        # The attribute statistics stayed in step with the entities.
        response = http.get(f"{API}/types", params={"details": "true"})
        assert response.status_code == 200, response.text
        present = {kind for kind, entities in (("Probe", probes), ("Beacon", beacons)) if entities}
        types = {t["typeName"]: sorted(t["attributeNames"]) for t in response.json()}
        assert types == {key: ["batch", "index", "location", "payload"] for key in present}
        for kind in present:
            response = http.get(f"{API}/types/{kind}")
            assert response.status_code == 200, response.text
            assert response.json()["entityCount"] == results_count(http, {"type": kind})
            assert response.json()["entityCount"] == len(probes if kind == "Probe" else beacons)
        response = http.get(f"{API}/attributes", params={"details": "true"})
        assert response.status_code == 200, response.text
        counts = {a["attributeName"]: a["attributeCount"] for a in response.json()}
        assert counts == dict.fromkeys(["batch", "index", "location", "payload"], len(stored))
    return len(stored)


def check_files(data: Path, entities: int) -> None:
    """With the hub stopped: the database file is sound and its R*Tree has one row per entity."""
    conn = sqlite3.connect(f"file:{data / 'dosi.sqlite'}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT rtreecheck('geo_location')").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == entities
        assert conn.execute("SELECT count(*) FROM geo_location").fetchone()[0] == entities
    finally:
        conn.close()


# --- the tests ------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_ingest_loses_nothing_acknowledged(hub: Hub, workers: int) -> None:
    proc = hub.start(workers)
    ledger = asyncio.run(
        write_until_gone(hub.port, lambda: os.killpg(proc.pid, signal.SIGKILL), after=1.5)
    )
    hub.kill()
    assert proc.returncode == -signal.SIGKILL
    # The premise: real load, cut off mid-flight.
    assert ledger.in_flight_at_signal > 0
    assert ledger.acked_batches and ledger.acked_singles, ledger
    assert set(ledger.statuses) == {201}, (ledger.statuses, hub.output())

    hub.start(workers)
    stored = check_recovered(hub.url, ledger)
    assert stored >= BATCH * len(ledger.acked_batches) + len(ledger.acked_singles)
    assert hub.stop() == 0, hub.output()
    check_files(hub.data, stored)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_mid_ingest_finishes_acknowledged_work(hub: Hub, workers: int) -> None:
    proc = hub.start(workers)
    ledger = asyncio.run(
        write_until_gone(hub.port, lambda: proc.send_signal(signal.SIGTERM), after=1.0)
    )
    assert proc.wait(timeout=15) == 0, hub.output()
    hub.proc = None
    assert ledger.in_flight_at_signal > 0
    assert ledger.acked_batches and ledger.acked_singles, ledger
    assert ledger.answered_after_signal > 0, ledger  # the shutdown drained work in progress
    # In flight at the signal: answered 2xx or cut off, never a 5xx (nor anything else).
    assert set(ledger.statuses) == {201}, (ledger.statuses, hub.output())
    assert "Traceback" not in hub.output()

    hub.start(workers)
    stored = check_recovered(hub.url, ledger)
    assert hub.stop() == 0, hub.output()
    check_files(hub.data, stored)


@pytest.mark.parametrize("restart", ["SIGTERM", "SIGKILL"])
def test_restart_keeps_hosted_contexts_and_tenants(hub: Hub, restart: str) -> None:
    hub.start()
    context = {
        "@context": {
            "Sensor": "https://example.org/ns#Sensor",
            "reading": "https://example.org/ns#reading",
        }
    }
    sensor = {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": "Sensor",
        "reading": {"type": "Property", "value": 7},
    }
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        response = http.post(f"{API}/jsonldContexts", json=context)
        assert response.status_code == 201, response.text
        location = response.headers["Location"]
        headers = {"Link": f"<{location}>; {JSON_LD_REL}", "NGSILD-Tenant": "city-a"}
        response = http.post(f"{API}/entities", json=sensor, headers=headers)
        assert response.status_code == 201, response.text

    if restart == "SIGKILL":
        hub.kill()
    else:
        assert hub.stop() == 0, hub.output()
    hub.start()

    entity_url = f"{API}/entities/{quote(sensor['id'], safe=':')}"
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        response = http.get(location)
        assert response.status_code == 200, response.text
        assert response.json() == context
        response = http.get(entity_url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == sensor  # short names again: the hosted context is back
        response = http.get(entity_url, headers={"NGSILD-Tenant": "city-a"})
        assert response.status_code == 200, response.text
        assert "https://example.org/ns#reading" in response.json()  # stored expanded
        assert http.get("/health").json()["tenants"] == 1
        response = http.get(entity_url, headers={**headers, "NGSILD-Tenant": "city-b"})
        assert response.status_code == 404, response.text  # an unknown tenant stays unknown
        assert http.get(entity_url, headers={"Link": headers["Link"]}).status_code == 404


def test_hosted_context_acknowledged_under_load_survives_sigkill(hub: Hub) -> None:
    """A 201 from POST /jsonldContexts must mean the context is stored, as for entities.

    The hub answers before the context's record is committed (it is written by a
    background task), so while the writer is busy with a large batch the window
    between the 201 and the COMMIT is wide; a crash inside it loses the context.
    """
    proc = hub.start()
    big = orjson.dumps([probe(0, i) for i in range(5000)])

    def ingest() -> None:
        with contextlib.suppress(httpx.TransportError):  # cut off by the SIGKILL
            httpx.post(f"{hub.url}{API}/entityOperations/upsert", content=big, headers=JSON)

    loader = threading.Thread(target=ingest)
    loader.start()
    time.sleep(0.05)  # the batch is being parsed or written
    response = httpx.post(f"{hub.url}{API}/jsonldContexts", json={"@context": {"P": "urn:x:P"}})
    os.killpg(proc.pid, signal.SIGKILL)
    loader.join()
    assert response.status_code == 201, response.text
    hub.kill()

    hub.start()
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        assert results_count(http, {"type": "Probe"}) in (0, 5000)  # that batch: all or nothing
        location = response.headers["Location"]
        assert http.get(location).status_code == 200, f"acknowledged @context {location} lost"

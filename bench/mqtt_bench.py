"""IoT agent benchmark (issue "IoT agent"): MQTT ingestion from 1,000 simulated devices.

Starts a private mosquitto and a real `dosi up --mqtt`, provisions one service
group and the devices over the HTTP API, then publishes from separate
publisher processes (paho, QoS 1, every measurement carrying its device's
sequence number). It waits until the store holds them all, counting the
history rows of the sequence attribute in the hub's SQLite file (read-only),
and checks that every device's entity shows its last sequence number.

Reported: measurements/s end to end (first publish -> last one stored) and
lost = sent - stored. The reference, measured in the same run before the hub
starts: the rate at which a plain paho subscriber (MQTT v5, paho's own network
thread, QoS 0 like the hub's subscription) receives the same messages from the
same publishers through the same mosquitto. CPU time per measurement of the
hub, the publishers and mosquitto shows where a run's cores went (the
machine is shared by all three).

    .venv/bin/python bench/mqtt_bench.py                 # 1,000 devices x 100 (~1 min)
    .venv/bin/python bench/mqtt_bench.py --quick         # 1,000 devices x 5 (smoke run)
    .venv/bin/python bench/mqtt_bench.py --workers 2     # two hub workers, shared subscription
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dosi.hub.store.history import attr_series_key
from dosi.ingest.url import parse_broker_url
from dosi.ngsi.model import DEFAULT_VOCAB
from hub_bench import HOST, Hub
from pgserver import add_backend_arguments, backend_server, fresh_database
from servers import mosquitto

console = Console()
APIKEY = "bench"
TYPE = "AirQualityObserved"
SEQ_IRI = DEFAULT_VOCAB + "seq"
TARGET_RATE = 10_000
WINDOW = 2_000  # QoS 1 messages a publisher keeps unacknowledged


def publisher(url: str, devices: list[int], per_device: int, go: Any, done: Any) -> None:
    """One publisher process: every device of `devices` sends `per_device` measurements.

    paho without its network thread (`loop()` called here between publishes): a
    thread would cost a socket wake-up per message and fight this loop for the GIL.
    """
    broker = parse_broker_url(url)
    # MQTT 3.1.1, as most field devices speak it (and its PUBACKs cost paho less to read).
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(0)  # paho's in-flight cap scans a list per ack
    acked = 0

    def on_publish(c: paho.Client, u: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    for _ in range(20):
        client.loop(0.01)
    go.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    sent = 0
    topics = [f"/{APIKEY}/d{d}/attrs" for d in devices]
    for seq in range(1, per_device + 1):
        for topic in topics:
            client.publish(topic, b'{"s":%d,"t":%.1f}' % (seq, 15 + seq % 10), qos=1)
            sent += 1
            if sent % 200 == 0:
                client.loop(0)
                while sent - acked > WINDOW:
                    client.loop(0.005)
    while acked < sent:
        client.loop(0.01)
    client.disconnect()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    done.put((sent, cpu))


def run_publishers(url: str, devices: int, per_device: int, count: int) -> tuple[float, int, float]:
    """Start the publisher processes, release them together; (start time, messages sent,
    their CPU seconds)."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    done = ctx.Queue()
    procs = [
        ctx.Process(
            target=publisher,
            args=(url, list(range(i, devices, count)), per_device, go, done),
            daemon=True,
        )
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    time.sleep(1.5)  # connected and waiting
    start = time.perf_counter()
    go.set()
    results = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return start, sum(r[0] for r in results), sum(r[1] for r in results)


def reference(url: str, devices: int, per_device: int, publishers: int) -> float:
    """A plain paho subscriber (MQTT v5, loop_start, the hub's default subscription QoS 0)
    counting the same messages."""
    broker = parse_broker_url(url)
    total = devices * per_device
    received = 0
    finished = threading.Event()
    last = [0.0]

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == total:
            last[0] = time.perf_counter()
            finished.set()

    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(broker.host, broker.port)
    client.subscribe(f"/{APIKEY}/+/attrs", qos=0)
    client.loop_start()
    subscribed.wait(10)
    start, _, _ = run_publishers(url, devices, per_device, publishers)
    finished.wait(600)
    client.loop_stop()
    client.disconnect()
    if received < total:
        console.print(f"[red]reference subscriber got {received} of {total}[/red]")
        return 0.0
    return total / (last[0] - start)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children still running (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    if pid <= 0:
        return 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def mosquitto_pid(workdir: Path) -> int:
    """The pid of the mosquitto started with the config file in `workdir` (0 if not found)."""
    config = str(workdir / "mosquitto.conf")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if config.encode() in cmdline:
                return int(entry.name)
    return 0


def provision(base: str, devices: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        group = {
            "apikey": APIKEY,
            "entity_type": TYPE,
            "attributes": [
                {"object_id": "s", "name": "seq", "type": "Integer"},
                {"object_id": "t", "name": "temperature", "type": "Number", "unitCode": "CEL"},
            ],
            "static_attributes": [{"name": "district", "type": "Text", "value": "EcoDelta"}],
        }
        response = http.post("/iot/services", json={"services": [group]})
        response.raise_for_status()
        body = {"devices": [{"device_id": f"d{i}", "apikey": APIKEY} for i in range(devices)]}
        http.post("/iot/devices", json=body).raise_for_status()


def sqlite_counter(db: Path) -> Callable[[], int]:
    """Counts history rows of the sequence attribute (one per stored measurement), read-only."""

    def count() -> int:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT count(*) FROM history WHERE attr = ?", (attr_series_key(SEQ_IRI),)
            ).fetchone()
            return int(row[0])
        finally:
            conn.close()

    return count


def postgres_counter(url: str) -> Callable[[], int]:
    """The same count on PostgreSQL (default tenant: schema `dosi`), over one connection."""
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(url))
    key = attr_series_key(SEQ_IRI)

    def count() -> int:
        query = "SELECT count(*) FROM dosi.history WHERE attr = $1"
        return int(loop.run_until_complete(conn.fetchval(query, key)))

    return count


def last_sequences(base: str, devices: int) -> dict[str, int]:
    with httpx.Client(base_url=base, timeout=60) as http:
        found: dict[str, int] = {}
        for offset in range(0, devices, 1000):
            response = http.get(
                "/ngsi-ld/v1/entities",
                params={"type": TYPE, "attrs": "seq", "limit": "1000", "offset": str(offset)},
            )
            response.raise_for_status()
            for item in response.json():
                found[item["id"]] = item.get("seq", {}).get("value", 0)
        return found


def hub_run(url: str, broker_pid: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    total = args.devices * args.per_device
    storage = () if args.db_url is None else ("--db", args.db_url)
    with Hub(tmp / "data", args.workers, extra_args=("--mqtt", url, *storage)) as hub:
        base = f"http://{HOST}:{hub.port}"
        provision(base, args.devices)
        time.sleep(1.5)  # every worker has loaded the registry (it reloads each second)
        assert hub.proc is not None
        cpu_before = cpu_seconds(hub.proc.pid)
        broker_before = cpu_seconds(broker_pid)
        start, sent, publisher_cpu = run_publishers(
            url, args.devices, args.per_device, args.publishers
        )
        published = time.perf_counter()
        stored_count = (
            sqlite_counter(tmp / "data" / "dosi.sqlite")
            if args.db_url is None
            else postgres_counter(args.db_url)
        )
        deadline = time.monotonic() + args.timeout
        stored = stored_count()
        while stored < sent and time.monotonic() < deadline:
            time.sleep(0.05)
            stored = stored_count()
        end = time.perf_counter()
        cpu = cpu_seconds(hub.proc.pid) - cpu_before
        broker_cpu = cpu_seconds(broker_pid) - broker_before
        time.sleep(0.5)
        stored = stored_count()  # anything beyond `sent` would be a duplicate
        sequences = last_sequences(base, args.devices)
    behind = sum(1 for v in sequences.values() if v != args.per_device)
    return {
        "sent": sent,
        "expected": total,
        "stored": stored,
        "lost": sent - stored,
        "devices_behind": behind + (args.devices - len(sequences)),
        "seconds": end - start,
        "publish_seconds": published - start,
        "rate": min(stored, sent) / (end - start),
        "hub_cpu_us_per_measurement": cpu / max(stored, 1) * 1e6,
        "publisher_cpu_us_per_measurement": publisher_cpu / max(sent, 1) * 1e6,
        "broker_cpu_us_per_measurement": broker_cpu / max(sent, 1) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 per device")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--per-device", type=int, default=100)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--workers", type=int, default=1, help="hub worker processes")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for storage")
    parser.add_argument("--json", type=Path, help="write the figures here")
    add_backend_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.per_device = 5
    total = args.devices * args.per_device
    console.print(
        f"{args.devices:,} devices x {args.per_device} measurements = {total:,}, "
        f"{args.publishers} publisher processes, hub --workers {args.workers}"
    )
    servers = backend_server(args)
    with tempfile.TemporaryDirectory() as tmp_name, servers as server:
        args.db_url = None if server is None else asyncio.run(fresh_database(server))
        tmp = Path(tmp_name)
        with mosquitto(tmp / "mosquitto") as url:
            ref = reference(url, args.devices, args.per_device, args.publishers)
            result = hub_run(url, mosquitto_pid(tmp / "mosquitto"), args, tmp)
    result["reference_rate"] = ref
    result["ratio"] = result["rate"] / ref if ref else 0.0
    table = Table(title=f"MQTT ingestion through mosquitto, {args.backend}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("measurements/s end to end", f"{result['rate']:,.0f}", f">= {TARGET_RATE:,}")
    table.add_row("sent", f"{result['sent']:,}", "")
    table.add_row("stored (history rows)", f"{result['stored']:,}", "")
    table.add_row("lost = sent - stored", f"{result['lost']:,}", "0")
    table.add_row("devices whose last seq is wrong", f"{result['devices_behind']:,}", "0")
    table.add_row("publishing took (s)", f"{result['publish_seconds']:.2f}", "")
    for who in ("hub", "publisher", "broker"):
        table.add_row(
            f"{who} CPU per measurement (µs)", f"{result[who + '_cpu_us_per_measurement']:.0f}", ""
        )
    table.add_row("plain paho subscriber (msg/s, same run)", f"{ref:,.0f}", "")
    table.add_row("hub / plain subscriber", f"{result['ratio']:.2f}", "")
    console.print(table)
    met = result["rate"] >= TARGET_RATE and result["lost"] == 0 and not result["devices_behind"]
    console.print("target met" if met else "[yellow]target not met[/yellow]")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, **result}))


if __name__ == "__main__":
    main()

"""`dosi demo` as an operator meets it: four parts up, then all gone after one Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from webhelpers import free_port

import dosi

SRC = str(Path(dosi.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def descendants(root: int) -> dict[int, str]:
    """Every process below `root`: pid -> command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                found[pid] = (
                    (Path("/proc") / str(pid) / "cmdline")
                    .read_bytes()
                    .replace(b"\0", b" ")
                    .decode()
                )
            except OSError:
                continue
            todo.append(pid)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_demo_runs_hub_twin_brain_and_dashboard_and_one_sigint_stops_them_all(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "dosi.cli.main", "demo", "--port", str(port),
         "--data", str(tmp_path / "data"), "--hours", "1", "--speed", "10x"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    processes: dict[int, str] = {}
    try:
        with httpx.Client(base_url=url, timeout=5, trust_env=False) as web:
            deadline = time.monotonic() + 150
            while True:
                assert demo.poll() is None, demo.communicate()
                assert time.monotonic() < deadline, "the demo's dashboard never came up"
                try:
                    health = web.get("/health")
                    if health.status_code == 200 and health.json()["hub"] == "ok":
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            # Through the dashboard's pass-through: the twin's signals and its live KPIs.
            signals = web.get("/ngsi-ld/v1/entities", params={"type": "TrafficSignal"})
            assert signals.status_code == 200 and len(signals.json()) == 16
            deadline = time.monotonic() + 60
            while not web.get(
                "/ngsi-ld/v1/entities", params={"type": "KeyPerformanceIndicator"}
            ).json():
                assert time.monotonic() < deadline, "no KPI entity from the running twin"
                time.sleep(0.5)
            assert web.get("/api/config").json()["scenario"] == "eco-delta"
        processes = descendants(demo.pid)
        commands = " | ".join(processes.values())
        for part in (" up ", " twin run eco-delta ", " brain run signals "):
            assert part in commands, commands
    finally:
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=120)
    assert demo.returncode == 0, err
    assert f"{url}/" in out and "dosi demo stopped." in out
    assert "Traceback" not in err
    survivors = {pid: cmd for pid, cmd in processes.items() if alive(pid)}
    assert not survivors

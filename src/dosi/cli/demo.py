"""`dosi demo`: a running pilot district in the browser, from one command and with no network.

Four parts, each a client of the hub through its public interfaces:
  1. the hub (`dosi up` as a child process, SQLite in --data),
  2. the eco-delta twin driving it at a watchable speed (child: `dosi twin run`),
  3. the signal-control brain following the hub's stream (child: `dosi brain run signals`),
  4. the dashboard (`dosi.web`) served by this process.
Children run in sessions of their own, so a terminal's Ctrl-C reaches only this
process, which stops them in reverse order: the dashboard, the brain, the twin
(SIGINT: it finishes its step and flushes to the hub), then the hub. A child
that does not stop in time is killed with its whole process group. A child
that dies while the demo runs is reported with the end of its log; the rest go on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn
from rich.console import Console

from dosi.cli import argtypes
from dosi.cli.errors import CliError

console = Console(soft_wrap=True, highlight=False)
PROVISION_TIMEOUT_S = 180.0  # the twin opens its simulators and provisions ~1,300 entities
STOP_TIMEOUT_S = 30.0
CLI = (sys.executable, "-m", "dosi.cli.main")


def add_parser(commands: Any) -> None:
    summary = "run a pilot district: hub, eco-delta twin, signal brain and dashboard"
    demo = commands.add_parser("demo", help=summary, description=summary + " (Ctrl-C stops all)")
    demo.add_argument("--host", default="127.0.0.1", help="dashboard interface (default 127.0.0.1)")
    demo.add_argument(
        "--port", type=argtypes.port, default=8700, help="dashboard port (default 8700)"
    )
    demo.add_argument("--data", type=Path, default=Path(".dosi"),
                      help="the hub's data directory (default ./.dosi); logs in DATA/logs")  # fmt: skip
    demo.add_argument("--speed", type=argtypes.speed, default="10x",
                      help="twin speed: a factor like 10x (default), 'realtime' or 'max'")  # fmt: skip
    demo.add_argument("--hours", type=argtypes.hours, default=24.0,
                      help="simulated hours the twin runs (default 24)")  # fmt: skip
    demo.add_argument("--scenario", default="eco-delta", help="the twin's scenario")
    demo.add_argument("--log-level", choices=argtypes.LOG_LEVELS, default="warning")
    demo.set_defaults(handler=run_demo)


class Child:
    """A part of the demo in its own session, its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path, stop_signal: int) -> None:
        self.name, self.args, self.log, self.stop_signal = name, args, log, stop_signal
        self.process: subprocess.Popen[bytes] | None = None
        self.reported = False

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """The child's own graceful stop, then SIGKILL for its group after `timeout`."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, self.stop_signal, leader_only=True)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{self.name} did not stop in {timeout:g} s: killed[/]")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            code = process.returncode
            self.reported = True
            console.print(f"{self.name} stopped" + (f" (exit code {code})" if code else ""))
        _reap_group(process.pid)

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_bytes()[-4000:].decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text.strip().splitlines()[-lines:])


def run_demo(args: argparse.Namespace) -> int:
    from dosi.cli.serve import bind_socket, local_url, prepare_data_dir
    from dosi.cli.web import serve_web
    from dosi.twin.hubproc import EmbeddedHub

    data = prepare_data_dir(args.data)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    sock = bind_socket(args.host, args.port)  # a busy port fails now, before anything starts
    web_url = local_url(args.host, int(sock.getsockname()[1]))
    hub = EmbeddedHub(data, log_level=args.log_level)
    children: list[Child] = []
    try:
        with _interrupts_raise():
            console.print(f"[bold]dosi demo[/]: starting the hub (data in {data}) …")
            try:
                hub.__enter__()
            except RuntimeError as exc:  # it exited or never answered /health
                raise CliError(str(exc)) from None
            twin = Child(
                "twin",
                [*CLI, "twin", "run", args.scenario, "--hub", hub.url,
                 "--speed", args.speed, "--hours", f"{args.hours:g}"],
                logs / "twin.log",
                signal.SIGINT,  # the twin's own graceful stop: finish the step, flush
            )  # fmt: skip
            brain = Child(
                "brain",
                [*CLI, "brain", "run", "signals", "--hub", hub.url],
                logs / "brain.log",
                signal.SIGTERM,
            )
            console.print(f"starting the {args.scenario} twin at {args.speed} …")
            twin.start()
            children.append(twin)
            _wait_provisioned(hub.url, twin)
            console.print("starting the signal-control brain …")
            brain.start()
            children.append(brain)

            async def announce(_: str) -> None:
                console.print(f"\n[bold green]dosi demo[/] — {args.scenario}, running")
                console.print(f"  dashboard  [bold]{web_url}/[/]")
                console.print(f"  hub        {hub.url}/ngsi-ld/v1   (data in {data})")
                console.print(
                    f"  twin       {args.scenario} at {args.speed}, {args.hours:g} simulated h"
                    f"   (log {twin.log})"
                )
                console.print(f"  brain      signal control   (log {brain.log})")
                console.print("Ctrl-C stops everything.\n")

            async def watch(server: uvicorn.Server) -> None:
                while not server.should_exit:
                    _report_exits(children)
                    await asyncio.sleep(1.0)

            serve_web(
                hub.url,
                args.scenario,
                sock,
                log_level=args.log_level,
                on_ready=announce,
                beside=watch,
            )
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        with _interrupts_ignored():
            console.print("stopping …")
            for child in reversed(children):
                child.stop()
            hub.stop()
            _report_exits(children)
            console.print("dosi demo stopped.")
    return 0


def _wait_provisioned(hub_url: str, twin: Child) -> None:
    """Until the twin's signals are in the hub (the brain reads them when it starts)."""
    deadline = time.monotonic() + PROVISION_TIMEOUT_S
    with httpx.Client(base_url=hub_url, timeout=5.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if twin.exited() is not None:
                return  # reported by the watcher; the dashboard still shows the hub
            try:
                response = http.get(
                    "/ngsi-ld/v1/entities", params={"type": "TrafficSignal", "limit": "1"}
                )
                if response.status_code == 200 and response.json():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    console.print("[yellow]the twin is slow to provision the district; going on[/]")


def _report_exits(children: list[Child]) -> None:
    for child in children:
        code = child.exited()
        if code is None or child.reported:
            continue
        child.reported = True
        if code == 0:
            console.print(f"{child.name} finished (exit code 0)")
        else:
            console.print(f"[red]{child.name} exited with code {code}[/]; the end of {child.log}:")
            console.print(child.tail(), markup=False)


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """SIGTERM, like Ctrl-C, interrupts start-up (so `finally` stops what was started)."""
    previous = _set_handlers(_raise_interrupt)
    try:
        yield
    finally:
        _set_handlers(previous)


@contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """While stopping the children, a second Ctrl-C must not leave them running."""

    def patience(signum: int, frame: FrameType | None) -> None:
        console.print("still stopping the demo's processes …")

    previous = _set_handlers(patience)
    try:
        yield
    finally:
        _set_handlers(previous)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _set_handlers(handler: Any) -> Any:
    """Install `handler` for SIGINT and SIGTERM (or a dict of per-signal handlers)."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        chosen = handler[sig] if isinstance(handler, dict) else handler
        previous[sig] = signal.signal(sig, chosen)
    return previous


def _signal_group(group: int, sig: int, *, leader_only: bool = False) -> bool:
    try:
        if leader_only:
            os.kill(group, sig)
        else:
            os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _reap_group(group: int, grace: float = 5.0) -> None:
    """Wait briefly for what the child started (the twin's link process), then kill it."""
    deadline = time.monotonic() + grace
    while _signal_group(group, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(group, signal.SIGKILL)

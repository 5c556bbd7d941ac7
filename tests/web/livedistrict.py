"""A running district for browser tests: hub, twin and `dosi web`, each its own process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from dosi.twin.hubproc import EmbeddedHub, _free_port

CHROMIUM = "/usr/bin/chromium"
# As root in a closed network: no sandbox, and none of Chromium's own calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SENSOR_TYPES = (
    "TrafficFlowObserved",
    "DeviceMeasurement",
    "WaterObserved",
    "ThreePhaseAcMeasurement",
    "SolarEnergy",
)
READY_TIMEOUT_MS = 10_000


@dataclass
class District:
    hub_url: str
    web_url: str
    sensor_count: int


def _count(hub: str, entity_type: str) -> int:
    response = httpx.get(
        f"{hub}/ngsi-ld/v1/entities",
        params={"type": entity_type, "count": "true", "limit": "0"},
        timeout=10,
    )
    return int(response.headers.get("NGSILD-Results-Count", "0"))


def _wait(what: str, ready: object, seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if ready():  # type: ignore[operator]
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not ready within {seconds:g} s")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_district(tmp: Path, *, speed: str, hours: float = 2.0) -> Iterator[District]:
    dosi = [sys.executable, "-m", "dosi.cli.main"]
    with EmbeddedHub(tmp / "hub") as hub:
        with open(tmp / "twin.log", "wb") as log:
            twin = subprocess.Popen(
                [*dosi, "twin", "run", "eco-delta", "--hub", hub.url,
                 "--speed", speed, "--hours", str(hours)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        port = _free_port()
        web = subprocess.Popen([*dosi, "web", "--hub", hub.url, "--port", str(port)])
        try:
            # Provisioned and reporting: every pipe is in the hub and a loop has counted.
            _wait("twin", lambda: _count(hub.url, "Pipe") == 905
                  and _count(hub.url, "TrafficFlowObserved") == 80
                  and httpx.get(f"{hub.url}/ngsi-ld/v1/entities", params={
                      "type": "TrafficFlowObserved", "q": "intensity>=0", "limit": "1"}).json(),
                  120, twin)  # fmt: skip
            web_url = f"http://127.0.0.1:{port}"
            _wait("web", lambda: httpx.get(f"{web_url}/health").status_code == 200, 30, web)
            sensors = sum(_count(hub.url, t) for t in SENSOR_TYPES)
            yield District(hub.url, web_url + "/", sensors)
        finally:
            _stop(web)
            _stop(twin, signal.SIGINT)


@dataclass
class Chromium:
    browser: Browser
    errors: list[str] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def launch(cls) -> Iterator[Chromium]:
        if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
            message = f"Chromium is not installed ({CHROMIUM}): apt-get install chromium"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield cls(browser)
            finally:
                browser.close()

    @contextlib.contextmanager
    def page(self, url: str, *, language: str | None = None) -> Iterator[Page]:
        """A fresh context (no saved language) with the dashboard loaded and interactive."""
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        self.errors.clear()

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        page.on("console", console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        if language:
            page.add_init_script(f"localStorage.setItem('dosi.language', '{language}')")
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]", timeout=READY_TIMEOUT_MS)
        try:
            yield page
        finally:
            context.close()

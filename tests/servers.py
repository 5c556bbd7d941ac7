"""Real servers the tests need beyond Python: mosquitto (MQTT).

Each test that needs a broker gets its own mosquitto on a free port, so tests
never share retained messages or sessions. Without the binary the test skips
on a developer machine, and fails under CI=true, where `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None
    )
    if found is None:
        message = "mosquitto is not installed (apt-get install mosquitto; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextmanager
def mosquitto(workdir: Path) -> Iterator[str]:
    """A private mosquitto on 127.0.0.1; yields its URL (mqtt://127.0.0.1:PORT)."""
    binary = mosquitto_binary()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
    )
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mosquitto did not start: {(workdir / 'mosquitto.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[str]:
    """URL of a fresh mosquitto for this test."""
    with mosquitto(tmp_path / "mosquitto") as url:
        yield url

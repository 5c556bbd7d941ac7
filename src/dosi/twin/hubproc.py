"""An embedded hub for `dosi twin run` without `--hub`: `dosi up` in a child process.

A separate process, not a thread, so the hub's work runs on another core and the
twin talks to it through the same HTTP interfaces as to any hub.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


class EmbeddedHub:
    def __init__(
        self, data: Path, *, mqtt_url: str | None = None, port: int = 0, log_level: str = "warning"
    ) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._args = [
            sys.executable, "-m", "dosi.cli.main", "up",
            "--port", str(self.port), "--data", str(data), "--log-level", log_level,
        ]  # fmt: skip
        if mqtt_url:
            self._args += ["--mqtt", mqtt_url]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedHub:
        # Its own session: a terminal's Ctrl-C reaches only our process, which stops the hub
        # after the twin has flushed to it, not at the same moment.
        self._process = subprocess.Popen(self._args, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the embedded hub exited with code {self._process.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the embedded hub did not answer /health within 60 s")

    @property
    def pid(self) -> int:
        assert self._process is not None, "the hub is not running"
        return self._process.pid

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Graceful: SIGTERM lets the hub finish acknowledged work."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

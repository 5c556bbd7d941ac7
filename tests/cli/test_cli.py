"""The `dosi` command as an operator meets it: real subprocesses, real ports, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import dosi
from dosi.client import NgsiClient

SRC = str(Path(dosi.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def dosi_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dosi.cli.main", *args]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(dosi_cmd(*args), env=ENV, capture_output=True, text=True, timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        dosi_cmd(*args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_healthy(proc: subprocess.Popen[str], url: str) -> None:
    with NgsiClient(url) as client:
        try:
            client.wait_ready(within=10)
        except TimeoutError:
            proc.kill()
            pytest.fail(f"no /health within 10 s: {proc.communicate()}")


def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    return proc.returncode, out, err


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dosi: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"dosi {dosi.__version__}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_serves_health_and_exits_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc = start("up", "--port", str(port), "--data", str(tmp_path / "data"))
    wait_healthy(proc, f"http://127.0.0.1:{port}")
    assert (tmp_path / "data").is_dir()
    code, _, err = stop(proc, sig)
    assert code == 0, err
    assert "Traceback" not in err


def test_busy_port_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("up", "--port", str(port), "--data", str(tmp_path / "data"))
    assert_one_line_error(result, "already in use", str(port))


def test_unusable_data_dir_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")  # a file in the way fails even for root
    result = run("up", "--port", str(free_port()), "--data", str(blocker / "data"))
    assert_one_line_error(result, "data directory", "not writable")


@pytest.mark.parametrize(
    "args",
    [
        ("up", "--port", "http"),
        ("up", "--port", "70000"),
        ("up", "--log-level", "loud"),
        ("up", "--bogus"),
        ("fly",),
        (),
    ],
)
def test_bad_options_exit_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" in result.stderr

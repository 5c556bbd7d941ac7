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
import tempfile
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


# -- PostgreSQL + PostGIS ----------------------------------------------------

PG_BIN_DIRS = ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
PG_URL_ENV = "DOSI_TEST_PG"  # e.g. postgresql://postgres@127.0.0.1:5432/postgres


def _pg_bin() -> Path | None:
    for folder in PG_BIN_DIRS:
        if os.access(Path(folder) / "initdb", os.X_OK):
            return Path(folder)
    return None


def _need(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# Test clusters trade durability for speed; benchmarks pass settings of their own.
FAST_SETTINGS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@contextmanager
def postgres_cluster(workdir: Path, settings: str = FAST_SETTINGS) -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1 (run as the `postgres` user when we are
    root, since the server refuses root); yields a superuser URL to database `postgres`."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        _need("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    assert bin_dir is not None
    port = free_port()
    data = workdir / "pgdata"
    workdir.mkdir(parents=True, exist_ok=True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    log = workdir / "postgres.log"
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c max_connections=200 {settings}"
    )
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A superuser URL: $DOSI_TEST_PG when set (CI starts a cluster), else a private cluster."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield url
        return
    # Not under pytest's tmp dir: that is private to root, and the server runs as `postgres`.
    workdir = Path(tempfile.mkdtemp(prefix="dosi-pg-"))
    try:
        with postgres_cluster(workdir) as started:
            yield started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _pg_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """A database with PostGIS that per-test databases are copied from (CREATE EXTENSION
    postgis takes ~0.3 s; copying a template ~20 ms)."""
    import asyncio
    import uuid

    name = f"dosi_tmpl_{uuid.uuid4().hex[:12]}"
    base = postgres_server.rsplit("/", 1)[0]
    asyncio.run(_pg_execute(postgres_server, f"CREATE DATABASE {name}"))
    try:
        asyncio.run(_pg_execute(f"{base}/{name}", "CREATE EXTENSION IF NOT EXISTS postgis"))
        yield name
    finally:
        asyncio.run(_pg_execute(postgres_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def postgres_db(postgres_server: str, postgres_template: str) -> Iterator[str]:
    """URL of a fresh, empty database with PostGIS, dropped after the test."""
    import asyncio
    import uuid

    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    base = postgres_server.rsplit("/", 1)[0]
    create = f"CREATE DATABASE {name} TEMPLATE {postgres_template}"
    try:
        # FILE_COPY (PostgreSQL 15+) copies a small template faster than WAL_LOG.
        asyncio.run(_pg_execute(postgres_server, f"{create} STRATEGY FILE_COPY"))
    except asyncpg.PostgresSyntaxError:
        asyncio.run(_pg_execute(postgres_server, create))
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_execute(postgres_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

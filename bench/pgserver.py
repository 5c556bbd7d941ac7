"""A PostgreSQL server for benchmarks: the one given, or a private cluster for the run."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import postgres_cluster

# Durability off in the private cluster (as a benchmark box would tune it), so the
# figures measure dosi rather than this machine's fsync.
CLUSTER_SETTINGS = "-c synchronous_commit=off -c shared_buffers=512MB -c max_wal_size=4GB"


@contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """A PostgreSQL superuser URL: `url` if given, else a private cluster for this run."""
    if url:
        yield url
        return
    workdir = Path(tempfile.mkdtemp(prefix="dosi-pg-bench-"))
    try:
        with postgres_cluster(workdir, CLUSTER_SETTINGS) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def fresh_database(server: str) -> str:
    """A new empty database on `server`; its URL."""
    name = f"bench_{random.getrandbits(40):x}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return f"{server.rsplit('/', 1)[0]}/{name}"


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend sqlite|postgres and --db URL, the same in every benchmark."""
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--db",
        help="PostgreSQL superuser URL (implies --backend postgres; default: a private "
        "cluster for the run)",
    )


def backend_server(args: argparse.Namespace) -> AbstractContextManager[str | None]:
    """The PostgreSQL server the run uses (None on SQLite); --db implies postgres."""
    if args.db:
        args.backend = "postgres"
    return postgres_server(args.db) if args.backend == "postgres" else nullcontext(None)

"""Entry point of the `dosi` command (declared in pyproject as `dosi.cli.main:main`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dosi import __version__
from dosi.cli import argtypes
from dosi.cli.errors import CliError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dosi", description="dosi: an open smart city platform around an NGSI-LD hub."
    )
    parser.add_argument("--version", action="version", version=f"dosi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    summary = "run the hub (NGSI-LD API at /ngsi-ld/v1) until Ctrl-C"
    command = commands.add_parser("up", help=summary, description=summary)
    command.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    command.add_argument("--port", type=argtypes.port, default=8700, help="TCP port (default 8700)")
    command.add_argument(
        "--data", type=Path, default=Path(".dosi"), help="data directory (default ./.dosi)"
    )
    command.add_argument(
        "--db",
        type=_db_url,
        default=None,
        metavar="URL",
        help="keep entities in PostgreSQL with PostGIS (postgresql://user@host/db) "
        "instead of SQLite files in --data",
    )
    command.add_argument("--log-level", choices=argtypes.LOG_LEVELS, default="info")
    command.add_argument(
        "--index-attribute",
        action="append",
        default=[],
        metavar="NAME",
        help="index the numeric values of this attribute for fast q (repeatable)",
    )
    command.add_argument(
        "--history-days",
        type=_days,
        default=30,
        metavar="N",
        help="keep raw history N days, then hourly aggregates only (0: forever; default 30)",
    )
    command.add_argument(
        "--rollup-days",
        type=_days,
        default=400,
        metavar="M",
        help="keep hourly history aggregates M days (0: forever; default 400)",
    )
    command.add_argument(
        "--no-history",
        dest="history",
        action="store_false",
        help="record no history of changes (no temporal API data; faster ingest)",
    )
    command.add_argument(
        "--mqtt",
        type=_mqtt_url,
        default=None,
        metavar="URL",
        help="MQTT broker for device measurements and commands, e.g. mqtt://127.0.0.1:1883",
    )
    command.add_argument(
        "--public-url",
        type=_public_url,
        default=None,
        metavar="URL",
        help="the hub's address as clients see it (behind a load balancer), for the links "
        "it hands out; default http://HOST:PORT",
    )
    command.add_argument(
        "--workers", type=_workers, default=1, help="worker processes sharing the port (default 1)"
    )
    # The other commands (light modules: their heavy imports wait until they run).
    from dosi.cli import bench, brain, db, demo, transfer, twin, web

    db.add_parser(commands, _db_url)
    transfer.add_parsers(commands, _db_url)
    twin.add_parser(commands)
    brain.add_parser(commands)
    bench.add_parser(commands)
    web.add_parser(commands)  # the dashboard alone
    demo.add_parser(commands)  # hub, twin, brain and dashboard together
    return parser


def _public_url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text) > 2000:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def _mqtt_url(text: str) -> str:
    from dosi.ingest.url import parse_broker_url

    try:
        parse_broker_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 <= days <= 100_000:
        raise argparse.ArgumentTypeError(f"days must be 0-100000 (0: forever), got {days}")
    return days


def _db_url(text: str) -> str:
    if not text.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError(
            f"not a PostgreSQL URL (postgresql://user@host/db): {text!r}"
        )
    return text


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"workers must be 1-64, got {count}")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and map operator-fixable problems to one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "handler"):  # every command but `up`
        try:
            return int(args.handler(args))
        except CliError as exc:
            print(f"dosi: error: {exc}", file=sys.stderr)
            return 2
    # Imported here so `dosi --version` and usage errors stay instant.
    from dosi.cli.serve import ServeOptions, serve

    options = ServeOptions(
        host=args.host,
        port=args.port,
        data=args.data,
        log_level=args.log_level,
        workers=args.workers,
        indexed_attributes=tuple(args.index_attribute),
        db_url=args.db,
        history=args.history,
        history_days=args.history_days,
        rollup_days=args.rollup_days,
        mqtt_url=args.mqtt,
        public_url=args.public_url,
    )
    try:
        return serve(options)
    except CliError as exc:
        print(f"dosi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

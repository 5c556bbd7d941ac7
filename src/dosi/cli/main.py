"""Entry point of the `dosi` command (declared in pyproject as `dosi.cli.main:main`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dosi import __version__
from dosi.cli.errors import CliError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 picks a free one): {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dosi", description="dosi: an open smart city platform around an NGSI-LD hub."
    )
    parser.add_argument("--version", action="version", version=f"dosi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in (
        ("up", "run the hub (NGSI-LD API at /ngsi-ld/v1) until Ctrl-C"),
        ("demo", "run the hub, seed sample Busan entities, print URLs to try"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
        command.add_argument("--port", type=_port, default=8700, help="TCP port (default 8700)")
        command.add_argument(
            "--data", type=Path, default=Path(".dosi"), help="data directory (default ./.dosi)"
        )
        command.add_argument("--log-level", choices=LOG_LEVELS, default="info")
        command.add_argument(
            "--index-attribute",
            action="append",
            default=[],
            metavar="NAME",
            help="index the numeric values of this attribute for fast q (repeatable)",
        )
        if name == "up":
            command.add_argument(
                "--workers",
                type=_workers,
                default=1,
                help="worker processes sharing the port (default 1)",
            )
    return parser


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
    # Imported here so `dosi --version` and usage errors stay instant.
    from dosi.cli.serve import ServeOptions, serve

    options = ServeOptions(
        host=args.host,
        port=args.port,
        data=args.data,
        log_level=args.log_level,
        workers=getattr(args, "workers", 1),
        indexed_attributes=tuple(args.index_attribute),
    )
    try:
        if args.command == "demo":
            from dosi.cli.demo import seed_and_announce

            return serve(options, on_ready=seed_and_announce)
        return serve(options)
    except CliError as exc:
        print(f"dosi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`dosi db upgrade` and `dosi db version`: the schema of a hub's storage.

A hub migrates its storage itself when it starts (store/migrations.py); the
command does it ahead of time (before a rolling restart, or to check that a
backup still opens) and says which version a data dir or database is at.
Also the shared plumbing of the storage commands: the --data/--db choice and
the mapping of storage problems to one-line errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from dosi.cli.errors import CliError

T = TypeVar("T")
UrlType = Callable[[str], str]


def add_target_arguments(command: argparse.ArgumentParser, url_type: UrlType) -> None:
    """--data DIR or --db URL, as `dosi up` takes them."""
    where = command.add_mutually_exclusive_group()
    where.add_argument(
        "--data",
        type=Path,
        default=Path(".dosi"),
        metavar="DIR",
        help="data directory (default ./.dosi)",
    )
    where.add_argument(
        "--db", type=url_type, default=None, metavar="URL", help="PostgreSQL database URL"
    )


def target_of(args: argparse.Namespace) -> str | Path:
    return str(args.db) if args.db else Path(args.data)


def shown(target: str | Path) -> str:
    """The target for messages (a URL without its password)."""
    if isinstance(target, Path):
        return f"data dir {str(target)!r}"
    return "database " + target.split("@")[-1]


def run_async(work: Coroutine[Any, Any, T], target: str | Path) -> T:
    """Run a storage command, turning what an operator can fix into a CliError."""
    with storage_errors(target):
        return asyncio.run(work)


@contextlib.contextmanager
def storage_errors(target: str | Path) -> Iterator[None]:
    from dosi.hub.store.migrations import SchemaTooNew
    from dosi.ngsi.errors import NgsiError

    try:
        yield
    except SchemaTooNew as exc:
        raise CliError(str(exc)) from None
    except NgsiError as exc:
        raise CliError(exc.detail) from None
    except OSError as exc:  # refused connections, unreadable files, full disks
        where = f" ({exc.filename})" if exc.filename else ""
        raise CliError(f"{shown(target)}: {exc.strerror or exc}{where}") from None
    except Exception as exc:
        import sqlite3

        import asyncpg

        if isinstance(exc, sqlite3.Error | asyncpg.PostgresError | asyncpg.InterfaceError):
            raise CliError(f"{shown(target)}: {exc}") from None
        raise


async def require_existing(target: str | Path) -> dict[str, int]:
    """Schema versions of existing storage (CliError when there is none)."""
    from dosi.hub.store.maintenance import versions

    found = await versions(target)
    if not found:
        raise CliError(f"no dosi data in {shown(target)}")
    return found


def add_parser(commands: Any, url_type: UrlType) -> None:
    summary = "schema of the hub's storage: upgrade, version"
    db = commands.add_parser("db", help=summary, description=summary)
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser(
        "upgrade", help="run pending schema migrations now (the hub also does at start)"
    )
    add_target_arguments(upgrade, url_type)
    upgrade.set_defaults(handler=_upgrade)
    version = actions.add_parser("version", help="the schema version of storage and of this code")
    add_target_arguments(version, url_type)
    version.set_defaults(handler=_version)


def _upgrade(args: argparse.Namespace) -> int:
    from dosi.hub.store.maintenance import upgrade

    target = target_of(args)
    before, after = run_async(upgrade(target), target)
    if before == 0:
        print(f"created schema version {after} in {shown(target)}")
    elif before == after:
        print(f"{shown(target)} is at schema version {after}: nothing to do")
    else:
        print(f"upgraded {shown(target)} from schema version {before} to {after}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from dosi.hub.store.migrations import LATEST

    target = target_of(args)
    found = run_async(require_existing(target), target)
    print(f"this dosi: schema version {LATEST}")
    for tenant, version in sorted(found.items()):
        name = f"tenant {tenant}" if tenant else "default tenant"
        note = ""
        if version < LATEST:
            note = " (upgrade pending: dosi db upgrade)"
        elif version > LATEST:
            note = " (newer than this dosi)"
        print(f"{name}: schema version {version}{note}")
    return 0

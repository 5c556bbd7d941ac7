"""`dosi export` and `dosi import`: a hub's contents as NDJSON (format: hub/transfer/lines.py).

Export streams: nothing is held in memory beyond a page. Import reads its
input twice: first every line is checked (stdin is spooled to a temporary
file for that), and only a file without errors is imported, so a malformed
line (reported with its number) leaves the target untouched. Progress bars
go to stderr when it is a terminal; the summary line always does.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from dosi.cli.db import UrlType, add_target_arguments, require_existing, run_async, shown, target_of
from dosi.cli.errors import CliError

if TYPE_CHECKING:
    from rich.progress import Progress

    from dosi.hub.transfer.export import Tally

_GZIP_MAGIC = b"\x1f\x8b"


def add_parsers(commands: Any, url_type: UrlType) -> None:
    export = commands.add_parser(
        "export",
        help="write entities, history, subscriptions and @contexts as NDJSON",
        description="Write the hub's contents as NDJSON, one JSON object per line.",
    )
    add_target_arguments(export, url_type)
    export.add_argument(
        "--tenant",
        metavar="NAME",
        help='only this tenant ("" is the default one; default: all); hosted @contexts, '
        "which belong to the whole hub, are always included",
    )
    export.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="where to (default stdout; .gz: gzip)"
    )
    export.set_defaults(handler=_export)
    load = commands.add_parser(
        "import",
        help="read an export into the hub's storage (rerunning it changes nothing)",
        description="Read a `dosi export` file; every line is checked before anything is written.",
    )
    add_target_arguments(load, url_type)
    load.add_argument("--tenant", metavar="NAME", help="only this tenant's lines")
    load.add_argument(
        "input", nargs="?", default="-", metavar="FILE", help="the export (default stdin; gzip ok)"
    )
    load.set_defaults(handler=_import)


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _summary(tally: Tally) -> str:
    parts = [
        f"{tally.entities:,} entities",
        f"history of {tally.records:,} entities ({tally.instances:,} instances, "
        f"{tally.hourly:,} hourly rows)",
        f"{tally.subscriptions:,} subscriptions",
        f"{tally.contexts:,} @contexts",
    ]
    return ", ".join(parts)


# -- export ----------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    target = target_of(args)
    with _output(args.output) as out, _progress() as progress:
        tally, tenants = run_async(_export_to(target, args.tenant, out, progress), target)
    where = "stdout" if args.output == "-" else args.output
    _say(f"exported {_summary(tally)} of {tenants} tenant(s) to {where}")
    return 0


async def _export_to(
    target: str | Path, tenant: str | None, out: IO[bytes], progress: Progress
) -> tuple[Tally, int]:
    from dosi.hub.store.maintenance import open_tool_store, refuse_newer
    from dosi.hub.transfer.export import Exporter

    refuse_newer(await require_existing(target), target)
    store = await open_tool_store(target)
    try:
        if tenant is None:
            tenants = ["", *await store.tenants()]
        elif await store.tenant_exists(tenant):
            tenants = [tenant]
        else:
            raise CliError(f"tenant {tenant!r} does not exist in {shown(target)}")
        task = progress.add_task("exporting", total=None)
        exporter = Exporter(
            store, tenants, selected=tenant, advance=lambda n: progress.advance(task, n)
        )
        progress.update(task, total=await exporter.total())
        async for line in exporter.lines():
            out.write(line)
        return exporter.tally, len(tenants)
    finally:
        await store.close()


@contextlib.contextmanager
def _output(name: str) -> Iterator[IO[bytes]]:
    """stdout, or FILE written as FILE.partial and renamed once complete."""
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(name)
    partial = path.with_name(path.name + ".partial")
    try:
        raw = partial.open("wb")
    except OSError as exc:
        raise CliError(f"cannot write {name}: {exc.strerror or exc}") from None
    try:
        with raw:
            out = (
                cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb"))
                if name.endswith(".gz")
                else raw
            )
            with out:  # gzip writes its trailer on close
                yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# -- import ----------------------------------------------------------------------------------
def _import(args: argparse.Namespace) -> int:
    target = target_of(args)
    with _input(args.input) as source, _progress() as progress:
        lines = _check(source, progress)  # before the store is even opened
        source.seek(0)
        tally = run_async(_import_from(target, args.tenant, source, lines, progress), target)
    _say(f"imported {_summary(tally)}; {tally.unchanged:,} items were already there")
    return 0


@contextlib.contextmanager
def _input(name: str) -> Iterator[IO[bytes]]:
    """A seekable binary stream of the export: the file, or stdin spooled to a temp file."""
    with contextlib.ExitStack() as stack:
        try:
            if name == "-":
                raw: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())
                shutil.copyfileobj(sys.stdin.buffer, raw)
                raw.seek(0)
            else:
                raw = stack.enter_context(Path(name).open("rb"))
        except OSError as exc:
            raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                yield cast(IO[bytes], unpacked)
            return
        raw.seek(0)
        yield raw


def _lines(source: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    from dosi.hub.transfer.lines import MAX_LINE_BYTES, LineError

    number = 0
    while True:
        try:
            raw = source.readline(MAX_LINE_BYTES + 1)
        except (OSError, EOFError) as exc:  # e.g. a truncated gzip stream
            raise CliError(f"line {number + 1}: cannot read the input ({exc})") from None
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise CliError(str(LineError(number, f"longer than {MAX_LINE_BYTES:,} bytes")))
        if raw.strip():
            yield number, raw


def _check(source: IO[bytes], progress: Progress) -> int:
    """Check every line; how many there are. CliError names the first bad one."""
    from dosi.hub.transfer.lines import LineError, parse_header, parse_line

    task = progress.add_task("checking", total=None)
    count = 0
    try:
        for number, raw in _lines(source):
            if count == 0:
                parse_header(number, raw)
            else:
                parse_line(number, raw)
            count += 1
            progress.advance(task)
    except LineError as exc:
        raise CliError(str(exc)) from None
    if count == 0:
        raise CliError("the input is empty: not a dosi export")
    progress.remove_task(task)
    return count


async def _import_from(
    target: str | Path, tenant: str | None, source: IO[bytes], total: int, progress: Progress
) -> Tally:
    from dosi.hub.store.maintenance import open_tool_store
    from dosi.hub.transfer.lines import ContextItem, LineError, parse_line
    from dosi.hub.transfer.load import Importer

    task = progress.add_task("importing", total=total)
    # History off: the export's own history lines bring it, with the original times.
    store = await open_tool_store(target, history=False)
    try:
        importer = Importer(store)
        lines = _lines(source)
        next(lines)  # the header, checked already
        progress.advance(task)
        try:
            for number, raw in lines:
                progress.advance(task)
                item = parse_line(number, raw)
                # --tenant picks that tenant's lines (hosted @contexts belong to the hub).
                if tenant is None or isinstance(item, ContextItem) or item.tenant == tenant:
                    await importer.add(number, item)
            await importer.finish()
        except LineError as exc:
            raise CliError(str(exc)) from None
        return importer.tally
    finally:
        await store.close()

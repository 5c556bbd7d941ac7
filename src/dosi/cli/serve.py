"""Run the hub under uvicorn: check the data dir, claim the port, serve until a signal.

The port is bound here, before uvicorn starts, and the socket handed over, so a
busy port is a clear one-line error instead of a uvicorn traceback, and there
is no window for another process to take the port in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import select
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from rich.console import Console

from dosi.cli.errors import CliError

OnReady = Callable[[str], Awaitable[None]]
"""Called with the hub's local base URL once it accepts requests."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8700
    data: Path = Path(".dosi")
    log_level: str = "info"
    workers: int = 1
    indexed_attributes: tuple[str, ...] = ()
    db_url: str | None = None  # PostgreSQL with PostGIS; None: SQLite files in `data`
    history: bool = True  # record history of changes (the temporal API)
    history_days: int = 30  # raw history kept (0: forever), then hourly aggregates
    rollup_days: int = 400  # hourly aggregates kept (0: forever)
    mqtt_url: str | None = None  # the IoT agent's broker; None: HTTP southbound only
    public_url: str | None = None  # the address clients use; default http://host:port


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir and prove it writable; a real write, since root ignores modes."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CliError(
            f"data directory {str(path)!r} is not writable: {exc.strerror or exc}"
        ) from None
    return path


def bind_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """Bind (and listen) on host:port (SO_REUSEADDR, like uvicorn) or explain why not.

    Without `listen` the socket only reserves the port for worker processes,
    which bind their own SO_REUSEPORT sockets beside it.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not listen:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is already in use (another hub?); choose one with --port"
            ) from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def reuseport_socket(template: socket.socket) -> socket.socket:
    """A new listening socket on the same address as `template`, with SO_REUSEPORT."""
    own = socket.socket(template.family, template.type, template.proto)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own.bind(template.getsockname()[:2])
    own.listen(socket.SOMAXCONN)
    return own


def local_url(host: str, port: int) -> str:
    """A URL a local client can reach, even when listening on a wildcard address."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def announce(url: str) -> None:
    """`dosi up`'s ready line (uvicorn prints none when handed a socket)."""
    Console(soft_wrap=True).print(
        f"dosi hub: NGSI-LD API at {url}/ngsi-ld/v1, health at {url}/health (Ctrl-C stops it)",
        highlight=False,
    )


def tune_gc() -> None:
    """Fewer, cheaper collections: a batch of 1,000 entities allocates ~30,000 dicts,
    and the default gen-0 threshold (700) would scan the heap dozens of times per batch.
    Objects alive at start-up (modules, contexts) are frozen out of every scan."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(options: ServeOptions, on_ready: OnReady = announce) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a graceful shutdown."""
    data_dir = prepare_data_dir(options.data)
    _refuse_newer_schema(options.db_url or data_dir)
    sock = bind_socket(options.host, options.port, listen=options.workers == 1)
    try:
        port = int(sock.getsockname()[1])  # the real one when --port 0
        if options.workers > 1:
            return _serve_workers(options, data_dir, sock, port, on_ready)
        _serve_one(options, data_dir, sock, port, on_ready)
    finally:
        sock.close()
    return 0


def _refuse_newer_schema(target: str | Path) -> None:
    """Storage written by a newer dosi: one clear line, before anything is bound or opened."""
    from dosi.hub.store.maintenance import refuse_newer, versions
    from dosi.hub.store.migrations import SchemaTooNew

    try:
        refuse_newer(asyncio.run(versions(target)), target)
    except SchemaTooNew as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read the storage's schema version: {exc}") from None


def _serve_one(
    options: ServeOptions, data_dir: Path, sock: socket.socket, port: int, on_ready: OnReady
) -> None:
    from dosi.hub.app import configure_logging, create_app
    from dosi.hub.settings import HubSettings
    from dosi.ingest.agent import IotAgent

    configure_logging(options.log_level)
    tune_gc()
    settings = HubSettings(
        data_dir=data_dir,
        host=options.host,
        port=port,
        log_level=options.log_level,
        indexed_attributes=options.indexed_attributes,
        db_url=options.db_url,
        history=options.history,
        history_days=options.history_days,
        rollup_days=options.rollup_days,
        mqtt_url=options.mqtt_url,
        public_url=options.public_url,
    )
    app = create_app(settings, extensions=[IotAgent()])
    config = uvicorn.Config(
        app,
        host=options.host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",  # a hub whose storage fails to open must not serve
        log_level=options.log_level,
        access_log=False,  # the hub logs its own structured request lines
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    with _signals_stop(server), asyncio.Runner(loop_factory=_loop_factory()) as runner:
        url = local_url(options.host, port)
        runner.run(_serve(server, sock, url, on_ready, app.state.hub.draining))


def _serve_workers(
    options: ServeOptions, data_dir: Path, sock: socket.socket, port: int, on_ready: OnReady
) -> int:
    """N forked worker processes on one port; SQLite WAL keeps them consistent.

    Each worker has its own writer thread; SQLite's file lock serialises their
    transactions, so acknowledged writes stay acknowledged whichever worker took them.
    """
    # Once, not raced by N workers.
    _prepare_store(data_dir, options.indexed_attributes, options.db_url)
    children: list[int] = []
    ready_read, ready_write = os.pipe()
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            os.close(ready_read)

            async def signal_ready(url: str) -> None:
                os.write(ready_write, b".")  # the supervisor counts one per worker

            try:
                # Each worker listens on its own SO_REUSEPORT socket: the kernel then
                # spreads connections evenly (one shared socket lets one worker win them all).
                own = reuseport_socket(sock)
                _serve_one(options, data_dir, own, port, signal_ready)
            except BaseException as exc:
                print(f"dosi: worker {os.getpid()} failed: {exc}", file=sys.stderr)
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.close(ready_write)
    failed = 0
    started = False
    try:
        url = local_url(options.host, port)
        started = _wait_ready(ready_read, children)
        if started:

            async def ready() -> None:
                await on_ready(url)

            asyncio.run(ready())
        for child in children:
            try:
                _, status = os.waitpid(child, 0)
            except ChildProcessError:  # already reaped: it died before it was ready
                failed += 1
                continue
            if os.waitstatus_to_exitcode(status) != 0:
                failed += 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not started:
        raise CliError("a worker process failed to start; the others were stopped")
    if failed:
        raise CliError(f"{failed} of {options.workers} worker processes failed")
    return 0


def _prepare_store(
    data_dir: Path, indexed_attributes: tuple[str, ...], db_url: str | None = None
) -> None:
    """Create (or upgrade) the schema in the supervisor, before any worker opens it."""
    from dosi.hub.app import create_store, indexed_attributes_of
    from dosi.hub.settings import HubSettings

    settings = HubSettings(data_dir=data_dir, indexed_attributes=indexed_attributes, db_url=db_url)
    indexed = indexed_attributes_of(settings)

    async def open_and_close() -> None:
        store = create_store(settings, indexed)
        await store.open()
        await store.close()

    asyncio.run(open_and_close())


def _wait_ready(ready: int, children: list[int]) -> bool:
    """Announce only once every worker listens, so early clients spread over all of them.

    False (and the other workers told to stop) if a worker dies first.
    """
    seen = 0
    with os.fdopen(ready, "rb", buffering=0) as pipe:
        while seen < len(children):
            readable, _, _ = select.select([pipe], [], [], 0.2)
            if readable:
                chunk = pipe.read(len(children) - seen)
                if not chunk:
                    return False
                seen += len(chunk)
            elif any(os.waitpid(child, os.WNOHANG)[0] for child in children):
                for child in children:
                    with contextlib.suppress(ProcessLookupError, ChildProcessError):
                        os.kill(child, signal.SIGTERM)
                return False
    return True


async def _serve(
    server: uvicorn.Server,
    sock: socket.socket,
    url: str,
    on_ready: OnReady,
    draining: asyncio.Event,
) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    watcher = asyncio.create_task(_signal_draining(server, draining))
    failure: Exception | None = None
    # uvicorn exposes readiness only as a flag, so poll it briefly.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started:
        try:
            await on_ready(url)
        except Exception as exc:
            failure = exc
            server.should_exit = True
    await task
    watcher.cancel()
    if failure is not None:
        raise CliError(str(failure) or type(failure).__name__) from None


async def _signal_draining(server: uvicorn.Server, draining: asyncio.Event) -> None:
    """Tell the app the moment uvicorn starts shutting down (it only sets a flag)."""
    while not server.should_exit:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    draining.set()


@contextmanager
def _signals_stop(server: uvicorn.Server) -> Iterator[None]:
    """Make SIGINT/SIGTERM mean "shut down, exit 0" outside uvicorn's own handling too.

    uvicorn handles both while serving, then re-raises the signal it caught once
    it has restored the previous handlers; with the defaults that would end the
    process by SIGTERM or a KeyboardInterrupt traceback after a clean shutdown.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # e.g. Windows: plain asyncio
        return None
    return uvloop.new_event_loop

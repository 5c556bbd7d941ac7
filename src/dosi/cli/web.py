"""`dosi web --hub URL`: serve the operations dashboard for a running hub.

The port is claimed before anything starts (a busy port is one line, as for
`dosi up`); uvicorn then serves the app until SIGINT/SIGTERM. At shutdown the
relayed live streams end at once (they would otherwise hold uvicorn's graceful
shutdown open) and a running what-if job is stopped with its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvicorn
from rich.console import Console

from dosi.cli import argtypes
from dosi.cli.errors import CliError

Beside = Callable[[uvicorn.Server], Coroutine[Any, Any, None]]
"""Work that runs next to the server (dosi demo watches its children) until it stops."""


def add_parser(commands: Any) -> None:

    web = commands.add_parser(
        "web",
        help="serve the operations dashboard (map, KPIs, what-if) for a running hub",
        description="Serve the operations dashboard for the hub at --hub (a client of it "
        "like any other: the NGSI-LD API and the live stream, passed through under /ngsi-ld).",
    )
    web.add_argument("--hub", required=True, type=hub_url, metavar="URL",
                     help="the hub's base URL, e.g. http://127.0.0.1:8701")  # fmt: skip
    web.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    web.add_argument("--port", type=argtypes.port, default=8700, help="TCP port (default 8700)")
    web.add_argument("--scenario", default="eco-delta",
                     help="the twin scenario the hub holds (map origin, what-if targets)")  # fmt: skip
    web.add_argument("--log-level", choices=argtypes.LOG_LEVELS, default="info")
    web.set_defaults(handler=web_command)


def hub_url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text) > 2000:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def web_command(args: argparse.Namespace) -> int:
    from dosi.cli.serve import bind_socket, local_url

    sock = bind_socket(args.host, args.port)
    try:
        url = local_url(args.host, int(sock.getsockname()[1]))

        async def announce(_: str) -> None:
            Console(soft_wrap=True, highlight=False).print(
                f"dosi web: dashboard at {url}/ for the hub at {args.hub} (Ctrl-C stops it)"
            )

        serve_web(args.hub, args.scenario, sock, log_level=args.log_level, on_ready=announce)
    finally:
        sock.close()
    return 0


def serve_web(
    hub: str,
    scenario: str,
    sock: socket.socket,
    *,
    log_level: str,
    on_ready: Callable[[str], Awaitable[None]],
    beside: Beside | None = None,
) -> None:
    """Serve the dashboard on `sock` until a signal (or `beside` tells the server to stop)."""
    from dosi.cli.serve import _loop_factory, _serve, _signals_stop, local_url
    from dosi.twin.scenario import ScenarioError
    from dosi.web.app import create_web_app
    from dosi.web.settings import WebSettings

    _configure_logging(log_level)
    try:
        app = create_web_app(WebSettings(hub_url=hub, scenario=scenario))
    except (ScenarioError, ValueError, OSError) as exc:
        raise CliError(f"scenario {scenario!r}: {exc}") from None
    config = uvicorn.Config(
        app,
        http="httptools",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    url = local_url(str(host), int(port))

    async def run() -> None:
        extra = asyncio.create_task(beside(server)) if beside is not None else None
        try:
            await _serve(server, sock, url, on_ready, app.state.draining)
        finally:
            if extra is not None:
                extra.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await extra

    with _signals_stop(server), asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("dosi.web")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False

"""Routes matched on the raw path, so entity ids and attribute names may hold '/'.

Entity ids are URIs and arrive percent-encoded (`%2F`); Starlette matches on
the decoded path, where such an id would span several segments. Each
`{placeholder}` here matches exactly one raw segment, decoded afterwards.
The route keeps its template as `path`, so metrics and the OpenAPI check see
the documented template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

Handler = Callable[[Request], Awaitable[Response]]


class RawPathRoute(Route):
    def __init__(self, path: str, endpoint: Handler, *, methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)
        self._segments = path.split("/")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        raw = scope.get("raw_path") or scope["path"].encode()
        parts = raw.decode("latin-1").split("?", 1)[0].split("/")
        if len(parts) != len(self._segments):
            return Match.NONE, {}
        params: dict[str, str] = {}
        for want, got in zip(self._segments, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    return Match.NONE, {}
                params[want[1:-1]] = unquote(got)
            elif want != got:
                return Match.NONE, {}
        child: Scope = {"endpoint": self.endpoint, "path_params": params}
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child
        return Match.FULL, child

"""`/ngsi-ld/...` passed through to the hub: method, path, query and body as they came.

Responses stream back chunk by chunk as the hub sends them, so the live stream
(`/ngsi-ld/v1/stream`, server-sent events) reaches the browser event by event.
Hop-by-hop headers are dropped both ways; request bodies are capped; a hub that
cannot be reached is a 502 ProblemDetails, one that does not answer in time a 504.
The hub's own absolute URLs in `Location` and `Link` are made relative, so the
browser keeps talking to this server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dosi.ngsi.errors import PayloadTooLarge
from dosi.web.errors import HubTimeout, HubUnreachable, TooManyStreams
from dosi.web.metrics import WebMetrics

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
    }
)  # fmt: skip
DROPPED_REQUEST = HOP_BY_HOP | {"host", "content-length"}
DROPPED_RESPONSE = HOP_BY_HOP | {"date", "server"}  # uvicorn sends its own
REWRITTEN = (b"location", b"link")
EVENT_STREAM = "text/event-stream"


class HubProxy:
    def __init__(
        self,
        hub_url: str,
        *,
        max_body_bytes: int,
        timeout_s: float,
        max_streams: int,
        metrics: WebMetrics,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self.timeout = httpx.Timeout(timeout_s, connect=5.0)
        self.max_streams = max_streams
        self.metrics = metrics
        self.draining = asyncio.Event()  # set when the server stops: live streams end
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the hub proxy is not open (the app's lifespan did not run)")
        return self._client

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            limits=httpx.Limits(
                max_connections=self.max_streams + 64, max_keepalive_connections=32
            ),
            follow_redirects=False,
            trust_env=False,  # the hub is local: never through an HTTP(S)_PROXY of the env
        )

    async def close(self) -> None:
        self.draining.set()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def hub_ok(self) -> bool:
        try:
            response = await self.client.get(self.hub_url + "/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def forward(self, request: Request) -> Response:
        streaming = EVENT_STREAM in request.headers.get("accept", "").lower()
        if streaming and self.metrics.streams_open >= self.max_streams:
            raise TooManyStreams(f"this server relays at most {self.max_streams} live streams")
        body = await self._body(request)
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        target = self.hub_url + raw_path.decode("latin-1")
        if query := request.scope.get("query_string", b""):
            target += "?" + query.decode("latin-1")
        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.decode("latin-1").lower() not in DROPPED_REQUEST
        ]
        if b"accept-encoding" not in {name.lower() for name, _ in headers}:
            headers.append((b"accept-encoding", b"identity"))  # no gzip the caller can't read
        if request.client is not None:
            headers.append((b"x-forwarded-for", request.client.host.encode("latin-1")))
        timeout = httpx.Timeout(self.timeout.read, connect=5.0, read=None) if streaming else None
        outgoing = self.client.build_request(
            request.method, httpx.URL(target), headers=headers, content=body,
            timeout=timeout or self.timeout,
        )  # fmt: skip
        try:
            upstream = await self.client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            self.metrics.hub_failures += 1
            raise HubTimeout(f"the hub at {self.hub_url} did not answer in time ({exc})") from None
        except httpx.HTTPError as exc:
            self.metrics.hub_failures += 1
            raise HubUnreachable(
                f"cannot reach the hub at {self.hub_url}: {exc or type(exc).__name__}"
            ) from None
        is_stream = upstream.headers.get("content-type", "").startswith(EVENT_STREAM)
        response = StreamingResponse(
            self._events(upstream) if is_stream else self._relay(upstream),
            status_code=upstream.status_code,
        )
        response.raw_headers = self._response_headers(upstream)
        return response

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(f"request bodies are limited to {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"request bodies are limited to {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _response_headers(self, upstream: httpx.Response) -> list[tuple[bytes, bytes]]:
        connection = {
            token.strip().lower()
            for value in upstream.headers.get_list("connection")
            for token in value.split(",")
        }
        hub = self.hub_url.encode("latin-1")
        out = []
        for name, value in upstream.headers.raw:
            lower = name.lower()
            text = lower.decode("latin-1")
            if text in DROPPED_RESPONSE or text in connection:
                continue
            if lower in REWRITTEN and hub in value:
                value = value.replace(hub + b"/", b"/")
            out.append((lower, value))
        return out

    async def _relay(self, upstream: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            pass  # the hub broke off mid-body: the client sees a short body, as from the hub
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    async def _events(self, upstream: httpx.Response) -> AsyncIterator[bytes]:
        """A live stream, chunk by chunk, until either side closes or the server stops."""
        self.metrics.streams_open += 1
        chunks = upstream.aiter_raw().__aiter__()
        draining = asyncio.ensure_future(self.draining.wait())
        nxt: asyncio.Future[bytes] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(chunks.__anext__())
                done, _ = await asyncio.wait({nxt, draining}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    return
                try:
                    chunk = nxt.result()
                except (StopAsyncIteration, httpx.HTTPError):
                    return
                yield chunk
        finally:
            self.metrics.streams_open -= 1
            draining.cancel()
            with anyio.CancelScope(shield=True):
                if nxt is not None and not nxt.done():
                    nxt.cancel()
                    with contextlib.suppress(BaseException):
                        await nxt
                await upstream.aclose()

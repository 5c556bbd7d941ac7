"""`NgsiClient`: the blocking twin of `AsyncNgsiClient`, for scripts, notebooks and tests.

Over HTTP it uses `httpx.Client` directly. With `app=` (in-process) there is no
synchronous ASGI transport, so it starts a private event loop in a daemon
thread, drives an `AsyncNgsiClient` there and blocks on each result. By
default it also runs the app's lifespan in that loop, so the hub's storage
lives on the same loop as its requests; pass `lifespan=False` if the lifespan
already runs elsewhere. Call `close()` (or use `with`) to stop the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, Unpack, overload

import httpx
from starlette.types import ASGIApp

from dosi.client import calls
from dosi.client.async_client import DEFAULT_URL, AsyncNgsiClient
from dosi.client.calls import Call
from dosi.client.types import (
    BatchResult,
    EntityFilter,
    EntityPage,
    JsonObject,
    NgsiClientError,
    StrList,
)

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread; `run` blocks on one coroutine."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dosi-client-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class NgsiClient:
    """Blocking NGSI-LD client; same methods and arguments as `AsyncNgsiClient`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        app: ASGIApp | None = None,
        tenant: str | None = None,
        context: str | None = None,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
        lifespan: bool = True,
    ) -> None:
        if app is not None and http is not None:
            raise ValueError("pass either app= or http=, not both")
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.context = context
        self._owns_http = http is None
        self._http: httpx.Client | None = None
        self._loop: _LoopThread | None = None
        if app is None:
            self._http = http if http is not None else httpx.Client(timeout=timeout)
            return
        # In-process: an AsyncNgsiClient driven on the private loop supplies the ASGI
        # transport and lifespan; headers are still built here, per call.
        self._loop = _LoopThread()
        self._inner = AsyncNgsiClient(base_url, app=app, timeout=timeout, lifespan=lifespan)
        try:
            self._loop.run(self._inner.open())
        except BaseException:
            self._loop.stop()
            self._loop = None
            raise

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.run(self._inner.aclose())
            finally:
                self._loop.stop()
                self._loop = None
        elif self._http is not None and self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send one `Call` (see `dosi.client.calls`) and return what it reads."""
        request = call.request(self.base_url, self.tenant, self.context)
        if self._loop is not None:
            response = self._loop.run(self._inner.transmit(request))
        elif self._http is not None:
            response = self._http.request(**request)
        else:
            raise RuntimeError("client is closed")
        return call.result(response)

    # -- entities ----------------------------------------------------------------------

    def create_entity(self, entity: JsonObject) -> str:
        """Create one entity; returns its id (from the Location header)."""
        return self.send(calls.create_entity(entity))

    def get_entity(
        self,
        entity_id: str,
        *,
        attrs: StrList | None = None,
        pick: StrList | None = None,
        omit: StrList | None = None,
        options: StrList | None = None,
        format: str | None = None,
        lang: str | None = None,
        geometry_property: str | None = None,
        accept: str = calls.JSON,
    ) -> JsonObject:
        return self.send(
            calls.get_entity(
                entity_id,
                accept=accept,
                attrs=attrs,
                pick=pick,
                omit=omit,
                options=options,
                format=format,
                lang=lang,
                geometry_property=geometry_property,
            )
        )

    def query_entities(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
        **filters: Unpack[EntityFilter],
    ) -> EntityPage:
        """One page of matching entities; `.total` holds the match count when `count=True`."""
        return self.send(calls.query_entities(filters, limit=limit, offset=offset, count=count))

    def query_all(
        self, *, page_size: int = 100, **filters: Unpack[EntityFilter]
    ) -> Iterator[JsonObject]:
        """Every matching entity, fetched `page_size` at a time with limit/offset."""
        offset = 0
        while True:
            page = self.query_entities(limit=page_size, offset=offset, **filters)
            yield from page
            if len(page) < page_size:
                return
            offset += page_size

    def count_entities(self, **filters: Unpack[EntityFilter]) -> int:
        return self.send(calls.count_entities(filters))

    def replace_entity(self, entity_id: str, entity: JsonObject) -> None:
        self.send(calls.replace_entity(entity_id, entity))

    def merge_entity(self, entity_id: str, fragment: JsonObject) -> None:
        """PATCH the entity: JSON merge-patch semantics (clause 5.6.17)."""
        self.send(calls.merge_entity(entity_id, fragment))

    def delete_entity(self, entity_id: str) -> None:
        self.send(calls.delete_entity(entity_id))

    # -- attributes --------------------------------------------------------------------

    def append_attrs(
        self, entity_id: str, attrs: JsonObject, no_overwrite: bool = False
    ) -> JsonObject | None:
        """None when every attribute was applied, else the hub's UpdateResult (207)."""
        return self.send(calls.append_attrs(entity_id, attrs, no_overwrite))

    def update_attrs(self, entity_id: str, attrs: JsonObject) -> JsonObject | None:
        """None when every attribute was updated, else the hub's UpdateResult (207)."""
        return self.send(calls.update_attrs(entity_id, attrs))

    def update_attr(self, entity_id: str, name: str, fragment: JsonObject) -> None:
        self.send(calls.update_attr(entity_id, name, fragment))

    def replace_attr(self, entity_id: str, name: str, attr: JsonObject) -> None:
        self.send(calls.replace_attr(entity_id, name, attr))

    def delete_attr(
        self, entity_id: str, name: str, dataset_id: str | None = None, delete_all: bool = False
    ) -> None:
        self.send(calls.delete_attr(entity_id, name, dataset_id, delete_all))

    # -- batch -------------------------------------------------------------------------

    def batch_create(self, entities: Sequence[JsonObject]) -> BatchResult:
        return self.send(calls.batch_create(entities))

    def batch_upsert(
        self, entities: Sequence[JsonObject], options: Literal["replace", "update"] = "replace"
    ) -> BatchResult:
        return self.send(calls.batch_upsert(entities, options))

    def batch_update(
        self, entities: Sequence[JsonObject], no_overwrite: bool = False
    ) -> BatchResult:
        return self.send(calls.batch_update(entities, no_overwrite))

    def batch_merge(self, entities: Sequence[JsonObject]) -> BatchResult:
        return self.send(calls.batch_merge(entities))

    def batch_delete(self, ids: Sequence[str]) -> BatchResult:
        return self.send(calls.batch_delete(ids))

    def post_query(
        self,
        body: JsonObject,
        *,
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
    ) -> EntityPage:
        """POST /entityOperations/query; `"type": "Query"` is added when missing."""
        return self.send(calls.post_query(body, limit=limit, offset=offset, count=count))

    # -- discovery, @contexts, health --------------------------------------------------

    @overload
    def types(self, details: Literal[False] = False) -> JsonObject: ...
    @overload
    def types(self, details: Literal[True]) -> list[JsonObject]: ...
    def types(self, details: bool = False) -> Any:
        """The EntityTypeList, or a list of EntityType objects with `details=True`."""
        return self.send(calls.types(details))

    def type_info(self, type_name: str) -> JsonObject:
        return self.send(calls.type_info(type_name))

    @overload
    def attributes(self, details: Literal[False] = False) -> JsonObject: ...
    @overload
    def attributes(self, details: Literal[True]) -> list[JsonObject]: ...
    def attributes(self, details: bool = False) -> Any:
        """The AttributeList, or a list of Attribute objects with `details=True`."""
        return self.send(calls.attributes(details))

    def attribute_info(self, name: str) -> JsonObject:
        return self.send(calls.attribute_info(name))

    def add_context(self, document: JsonObject) -> str:
        """Store a `{"@context": ...}` document; returns its hub URL, usable as `context=`."""
        return self.send(calls.add_context(document))

    def list_contexts(self, details: bool = False, kind: str | None = None) -> list[Any]:
        return self.send(calls.list_contexts(details, kind))

    def get_context(self, ref: str, details: bool = False) -> JsonObject:
        """`ref` is a context id or the URL `add_context` returned."""
        return self.send(calls.get_context(ref, details))

    def delete_context(self, ref: str, reload: bool = False) -> None:
        self.send(calls.delete_context(ref, reload))

    def health(self) -> JsonObject:
        return self.send(calls.health())

    def wait_ready(self, within: float = 10.0, interval: float = 0.1) -> JsonObject:
        """Poll /health until the hub answers; for services started alongside it."""
        deadline = time.monotonic() + within
        while True:
            try:
                return self.health()
            except (httpx.TransportError, NgsiClientError):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no hub at {self.base_url} after {within}s") from None
            time.sleep(interval)

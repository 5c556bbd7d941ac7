"""`AsyncNgsiClient`: the NGSI-LD SDK for asyncio services, over HTTP or in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, Unpack, overload

import httpx
from starlette.types import ASGIApp

from dosi.client import calls
from dosi.client._lifespan import Lifespan
from dosi.client.calls import Call
from dosi.client.types import (
    BatchResult,
    EntityFilter,
    EntityPage,
    JsonObject,
    NgsiClientError,
    StrList,
)

DEFAULT_URL = "http://127.0.0.1:8700"
T = TypeVar("T")


class AsyncNgsiClient:
    """Async client for a dosi hub (or any NGSI-LD broker).

    With `app=` requests go straight into the ASGI app through
    `httpx.ASGITransport`: no socket, same code path as over HTTP, which is how
    embedded services and the tests talk to the hub. Pass `lifespan=True` when
    nothing else runs the app's lifespan, so `async with` opens its storage.
    `context` is sent as the JSON-LD Link header; `tenant` as `NGSILD-Tenant`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        app: ASGIApp | None = None,
        tenant: str | None = None,
        context: str | None = None,
        timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
        lifespan: bool = False,
    ) -> None:
        if lifespan and app is None:
            raise ValueError("lifespan=True needs app=")
        if app is not None and http is not None:
            raise ValueError("pass either app= or http=, not both")
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.context = context
        self._owns_http = http is None
        if http is None:
            transport = httpx.ASGITransport(app=app) if app is not None else None
            http = httpx.AsyncClient(transport=transport, timeout=timeout)
        self._http = http
        self._lifespan = Lifespan(app) if lifespan and app is not None else None

    async def open(self) -> None:
        """Start the app's lifespan when asked to; a no-op otherwise."""
        if self._lifespan is not None:
            await self._lifespan.startup()

    async def aclose(self) -> None:
        try:
            if self._lifespan is not None:
                await self._lifespan.shutdown()
        finally:
            if self._owns_http:
                await self._http.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send one `Call` (see `dosi.client.calls`) and return what it reads."""
        return call.result(
            await self.transmit(call.request(self.base_url, self.tenant, self.context))
        )

    async def transmit(self, request: dict[str, Any]) -> httpx.Response:
        """Send prepared request arguments as they are; the sync client reuses this in-process."""
        return await self._http.request(**request)

    # -- entities ----------------------------------------------------------------------

    async def create_entity(self, entity: JsonObject) -> str:
        """Create one entity; returns its id (from the Location header)."""
        return await self.send(calls.create_entity(entity))

    async def get_entity(
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
        return await self.send(
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

    async def query_entities(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
        **filters: Unpack[EntityFilter],
    ) -> EntityPage:
        """One page of matching entities; `.total` holds the match count when `count=True`."""
        return await self.send(
            calls.query_entities(filters, limit=limit, offset=offset, count=count)
        )

    async def query_all(
        self, *, page_size: int = 100, **filters: Unpack[EntityFilter]
    ) -> AsyncIterator[JsonObject]:
        """Every matching entity, fetched `page_size` at a time with limit/offset."""
        offset = 0
        while True:
            page = await self.query_entities(limit=page_size, offset=offset, **filters)
            for entity in page:
                yield entity
            if len(page) < page_size:
                return
            offset += page_size

    async def count_entities(self, **filters: Unpack[EntityFilter]) -> int:
        return await self.send(calls.count_entities(filters))

    async def replace_entity(self, entity_id: str, entity: JsonObject) -> None:
        await self.send(calls.replace_entity(entity_id, entity))

    async def merge_entity(self, entity_id: str, fragment: JsonObject) -> None:
        """PATCH the entity: JSON merge-patch semantics (clause 5.6.17)."""
        await self.send(calls.merge_entity(entity_id, fragment))

    async def delete_entity(self, entity_id: str) -> None:
        await self.send(calls.delete_entity(entity_id))

    # -- attributes --------------------------------------------------------------------

    async def append_attrs(
        self, entity_id: str, attrs: JsonObject, no_overwrite: bool = False
    ) -> JsonObject | None:
        """None when every attribute was applied, else the hub's UpdateResult (207)."""
        return await self.send(calls.append_attrs(entity_id, attrs, no_overwrite))

    async def update_attrs(self, entity_id: str, attrs: JsonObject) -> JsonObject | None:
        """None when every attribute was updated, else the hub's UpdateResult (207)."""
        return await self.send(calls.update_attrs(entity_id, attrs))

    async def update_attr(self, entity_id: str, name: str, fragment: JsonObject) -> None:
        await self.send(calls.update_attr(entity_id, name, fragment))

    async def replace_attr(self, entity_id: str, name: str, attr: JsonObject) -> None:
        await self.send(calls.replace_attr(entity_id, name, attr))

    async def delete_attr(
        self, entity_id: str, name: str, dataset_id: str | None = None, delete_all: bool = False
    ) -> None:
        await self.send(calls.delete_attr(entity_id, name, dataset_id, delete_all))

    # -- batch -------------------------------------------------------------------------

    async def batch_create(self, entities: Sequence[JsonObject]) -> BatchResult:
        return await self.send(calls.batch_create(entities))

    async def batch_upsert(
        self, entities: Sequence[JsonObject], options: Literal["replace", "update"] = "replace"
    ) -> BatchResult:
        return await self.send(calls.batch_upsert(entities, options))

    async def batch_update(
        self, entities: Sequence[JsonObject], no_overwrite: bool = False
    ) -> BatchResult:
        return await self.send(calls.batch_update(entities, no_overwrite))

    async def batch_merge(self, entities: Sequence[JsonObject]) -> BatchResult:
        return await self.send(calls.batch_merge(entities))

    async def batch_delete(self, ids: Sequence[str]) -> BatchResult:
        return await self.send(calls.batch_delete(ids))

    async def post_query(
        self,
        body: JsonObject,
        *,
        limit: int | None = None,
        offset: int | None = None,
        count: bool = False,
    ) -> EntityPage:
        """POST /entityOperations/query; `"type": "Query"` is added when missing."""
        return await self.send(calls.post_query(body, limit=limit, offset=offset, count=count))

    # -- discovery, @contexts, health --------------------------------------------------

    @overload
    async def types(self, details: Literal[False] = False) -> JsonObject: ...
    @overload
    async def types(self, details: Literal[True]) -> list[JsonObject]: ...
    async def types(self, details: bool = False) -> Any:
        """The EntityTypeList, or a list of EntityType objects with `details=True`."""
        return await self.send(calls.types(details))

    async def type_info(self, type_name: str) -> JsonObject:
        return await self.send(calls.type_info(type_name))

    @overload
    async def attributes(self, details: Literal[False] = False) -> JsonObject: ...
    @overload
    async def attributes(self, details: Literal[True]) -> list[JsonObject]: ...
    async def attributes(self, details: bool = False) -> Any:
        """The AttributeList, or a list of Attribute objects with `details=True`."""
        return await self.send(calls.attributes(details))

    async def attribute_info(self, name: str) -> JsonObject:
        return await self.send(calls.attribute_info(name))

    async def add_context(self, document: JsonObject) -> str:
        """Store a `{"@context": ...}` document; returns its hub URL, usable as `context=`."""
        return await self.send(calls.add_context(document))

    async def list_contexts(self, details: bool = False, kind: str | None = None) -> list[Any]:
        return await self.send(calls.list_contexts(details, kind))

    async def get_context(self, ref: str, details: bool = False) -> JsonObject:
        """`ref` is a context id or the URL `add_context` returned."""
        return await self.send(calls.get_context(ref, details))

    async def delete_context(self, ref: str, reload: bool = False) -> None:
        await self.send(calls.delete_context(ref, reload))

    async def health(self) -> JsonObject:
        return await self.send(calls.health())

    async def wait_ready(self, within: float = 10.0, interval: float = 0.1) -> JsonObject:
        """Poll /health until the hub answers; for services started alongside it."""
        deadline = time.monotonic() + within
        while True:
            try:
                return await self.health()
            except (httpx.TransportError, NgsiClientError):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no hub at {self.base_url} after {within}s") from None
            await asyncio.sleep(interval)

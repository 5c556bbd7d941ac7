"""Every NGSI-LD operation the SDK speaks, described once.

A builder returns a `Call`: method, path, parameters, body and how to read the
answer. The async and sync clients only move the bytes, so the two cannot
drift apart, and a caller can send a hand-made `Call` for anything not
covered here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, unquote

import httpx
import orjson

from dosi.client.types import BatchResult, EntityFilter, EntityPage, JsonObject, NgsiClientError

API = "/ngsi-ld/v1"
JSON = "application/json"
JSON_LD = "application/ld+json"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'

T = TypeVar("T")

# Python keyword -> wire name, where they differ.
_WIRE_NAMES = {
    "id_pattern": "idPattern",
    "scope_q": "scopeQ",
    "geometry_property": "geometryProperty",
    "dataset_id": "datasetId",
    "delete_all": "deleteAll",
}


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the function that turns a 2xx answer into its result."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    accept: str = JSON

    def headers(self, tenant: str | None, context: str | None) -> dict[str, str]:
        """Request headers: a body carrying its own @context goes as JSON-LD, without Link."""
        headers = {"Accept": self.accept}
        if self.body is not None and _carries_context(self.body):
            headers["Content-Type"] = JSON_LD
        else:
            if self.body is not None:
                headers["Content-Type"] = JSON
            if context:
                headers["Link"] = f"<{context}>; {LINK_REL}"
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        return headers

    def request(self, base_url: str, tenant: str | None, context: str | None) -> dict[str, Any]:
        """Keyword arguments for `httpx.(Async)Client.request`."""
        return {
            "method": self.method,
            "url": base_url + self.path,
            "params": self.params,
            "headers": self.headers(tenant, context),
            "content": None if self.body is None else orjson.dumps(self.body),
        }

    def result(self, response: httpx.Response) -> T:
        """Raise `NgsiClientError` for a non-2xx answer, else read it."""
        if not response.is_success:
            raise NgsiClientError(response.status_code, _problem(response))
        return self.read(response)


def _carries_context(body: Any) -> bool:
    if isinstance(body, dict):
        return "@context" in body
    return (
        isinstance(body, list)
        and bool(body)
        and all(isinstance(item, dict) and "@context" in item for item in body)
    )


def _problem(response: httpx.Response) -> JsonObject:
    try:
        parsed = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    return {"title": response.reason_phrase, "detail": response.text[:500]}


# -- readers ---------------------------------------------------------------------------


def _nothing(response: httpx.Response) -> None:
    return None


def _json(response: httpx.Response) -> Any:
    return orjson.loads(response.content) if response.content else None


def _results_count(response: httpx.Response) -> int | None:
    raw = response.headers.get("NGSILD-Results-Count")
    return int(raw) if raw is not None else None


def _page(response: httpx.Response) -> EntityPage:
    return EntityPage(_json(response) or [], _results_count(response))


def _count(response: httpx.Response) -> int:
    total = _results_count(response)
    if total is None:
        raise NgsiClientError(response.status_code, {"title": "no NGSILD-Results-Count header"})
    return total


def _update_result(response: httpx.Response) -> JsonObject | None:
    """204 means every attribute was applied; 207 carries an UpdateResult."""
    return _json(response) if response.status_code == 207 else None


def _location(response: httpx.Response) -> str:
    return str(response.url.join(response.headers.get("Location", "")))


def _batch(ids: Iterable[Any]) -> Callable[[httpx.Response], BatchResult]:
    """201/204 mean every entity succeeded; 207 lists successes and errors."""
    sent = [i for i in ids if isinstance(i, str)]

    def read(response: httpx.Response) -> BatchResult:
        if response.status_code == 207:
            body = _json(response) or {}
            return BatchResult(list(body.get("success", [])), list(body.get("errors", [])))
        return BatchResult(sent, [])

    return read


# -- helpers ---------------------------------------------------------------------------


def seg(value: str) -> str:
    """Quote one path segment; ':' stays readable, '/' and '#' are escaped."""
    return quote(value, safe=":@")


def context_id(ref: str) -> str:
    """Accept a context id or the hub URL `add_context` returned for it."""
    marker = "/jsonldContexts/"
    return unquote(ref.rsplit(marker, 1)[1]) if marker in ref else ref


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return ",".join(str(v) for v in value)


def params(**kwargs: Any) -> dict[str, str]:
    """Drop unset values and render the rest as the API expects them."""
    out: dict[str, str] = {}
    for key, value in kwargs.items():
        if value is None or value is False:
            continue
        if key == "coordinates" and not isinstance(value, str):
            out[key] = orjson.dumps(value).decode()
        else:
            out[_WIRE_NAMES.get(key, key)] = _wire(value)
    return out


# -- entities --------------------------------------------------------------------------


def create_entity(entity: JsonObject) -> Call[str]:
    def read(response: httpx.Response) -> str:
        location = response.headers.get("Location")
        return unquote(location.rsplit("/", 1)[1]) if location else str(entity.get("id", ""))

    return Call("POST", f"{API}/entities", read, body=entity)


def get_entity(entity_id: str, *, accept: str = JSON, **query: Any) -> Call[JsonObject]:
    return Call("GET", f"{API}/entities/{seg(entity_id)}", _json, params(**query), accept=accept)


def query_entities(
    filters: EntityFilter, *, limit: int | None, offset: int | None, count: bool
) -> Call[EntityPage]:
    query = params(**filters) | params(limit=limit, offset=offset, count=count)
    return Call("GET", f"{API}/entities", _page, query)


def count_entities(filters: EntityFilter) -> Call[int]:
    query = params(**filters) | params(limit=0, count=True)
    return Call("GET", f"{API}/entities", _count, query)


def replace_entity(entity_id: str, entity: JsonObject) -> Call[None]:
    return Call("PUT", f"{API}/entities/{seg(entity_id)}", _nothing, body=entity)


def merge_entity(entity_id: str, fragment: JsonObject) -> Call[None]:
    return Call("PATCH", f"{API}/entities/{seg(entity_id)}", _nothing, body=fragment)


def delete_entity(entity_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/entities/{seg(entity_id)}", _nothing)


# -- attributes ------------------------------------------------------------------------


def append_attrs(entity_id: str, attrs: JsonObject, no_overwrite: bool) -> Call[JsonObject | None]:
    query = params(options="noOverwrite" if no_overwrite else None)
    return Call("POST", f"{API}/entities/{seg(entity_id)}/attrs", _update_result, query, attrs)


def update_attrs(entity_id: str, attrs: JsonObject) -> Call[JsonObject | None]:
    return Call("PATCH", f"{API}/entities/{seg(entity_id)}/attrs", _update_result, body=attrs)


def _attr_path(entity_id: str, name: str) -> str:
    return f"{API}/entities/{seg(entity_id)}/attrs/{seg(name)}"


def update_attr(entity_id: str, name: str, fragment: JsonObject) -> Call[None]:
    return Call("PATCH", _attr_path(entity_id, name), _nothing, body=fragment)


def replace_attr(entity_id: str, name: str, attr: JsonObject) -> Call[None]:
    return Call("PUT", _attr_path(entity_id, name), _nothing, body=attr)


def delete_attr(entity_id: str, name: str, dataset_id: str | None, delete_all: bool) -> Call[None]:
    query = params(dataset_id=dataset_id, delete_all=delete_all)
    return Call("DELETE", _attr_path(entity_id, name), _nothing, query)


# -- batch -----------------------------------------------------------------------------


def _batch_call(
    op: str, entities: Sequence[JsonObject], query: Mapping[str, str] | None = None
) -> Call[BatchResult]:
    ids = [e.get("id") for e in entities]
    return Call(
        "POST", f"{API}/entityOperations/{op}", _batch(ids), dict(query or {}), list(entities)
    )


def batch_create(entities: Sequence[JsonObject]) -> Call[BatchResult]:
    return _batch_call("create", entities)


def batch_upsert(
    entities: Sequence[JsonObject], options: Literal["replace", "update"]
) -> Call[BatchResult]:
    return _batch_call("upsert", entities, params(options=options))


def batch_update(entities: Sequence[JsonObject], no_overwrite: bool) -> Call[BatchResult]:
    return _batch_call("update", entities, params(options="noOverwrite" if no_overwrite else None))


def batch_merge(entities: Sequence[JsonObject]) -> Call[BatchResult]:
    return _batch_call("merge", entities)


def batch_delete(ids: Sequence[str]) -> Call[BatchResult]:
    return Call("POST", f"{API}/entityOperations/delete", _batch(ids), body=list(ids))


def post_query(
    body: JsonObject, *, limit: int | None, offset: int | None, count: bool
) -> Call[EntityPage]:
    query = params(limit=limit, offset=offset, count=count)
    return Call("POST", f"{API}/entityOperations/query", _page, query, {"type": "Query", **body})


# -- discovery, @contexts, health ------------------------------------------------------


def types(details: bool) -> Call[Any]:
    return Call("GET", f"{API}/types", _json, params(details=details))


def type_info(type_name: str) -> Call[JsonObject]:
    return Call("GET", f"{API}/types/{seg(type_name)}", _json)


def attributes(details: bool) -> Call[Any]:
    return Call("GET", f"{API}/attributes", _json, params(details=details))


def attribute_info(name: str) -> Call[JsonObject]:
    return Call("GET", f"{API}/attributes/{seg(name)}", _json)


def add_context(document: JsonObject) -> Call[str]:
    return Call("POST", f"{API}/jsonldContexts", _location, body=document)


def list_contexts(details: bool, kind: str | None) -> Call[list[Any]]:
    return Call("GET", f"{API}/jsonldContexts", _json, params(details=details, kind=kind))


def _context_path(ref: str) -> str:
    return f"{API}/jsonldContexts/{seg(context_id(ref))}"


def get_context(ref: str, details: bool) -> Call[JsonObject]:
    return Call("GET", _context_path(ref), _json, params(details=details))


def delete_context(ref: str, reload: bool) -> Call[None]:
    return Call("DELETE", _context_path(ref), _nothing, params(reload=reload))


def health() -> Call[JsonObject]:
    return Call("GET", "/health", _json)

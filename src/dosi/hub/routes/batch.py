"""Batch operations (clause 5.6.7-5.6.10, 5.6.20) and POST query (5.7.2 via 6.23).

Each entity of a batch is parsed and applied on its own: a bad entity is
reported in the 207 body and never half-applied, the rest still commit, all
in one store transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi.hub.http import (
    Call,
    begin_with_body,
    json_response,
    no_content,
    require_tenant,
)
from dosi.hub.query import parse_view
from dosi.hub.query_body import filter_from_body
from dosi.hub.service import (
    create_mutation,
    delete_mutation,
    existing,
    problem_of,
    query_response,
    write_many,
)
from dosi.hub.store.base import Mutation, Outcome
from dosi.ngsi.errors import BadRequestData, NgsiError
from dosi.ngsi.model import Entity
from dosi.ngsi.mutate import append_attributes, attributes_of, merge_entity, replace_entity
from dosi.ngsi.parse import parse_entity, parse_fragment
from dosi.ngsi.values import now_iso, require_uri

BASE = "/ngsi-ld/v1/entityOperations"
Builder = Callable[[Any, Call, str], Mutation]


async def _batch_body(request: Request) -> tuple[Call, list[Any]]:
    call, body = await begin_with_body(request)
    if not isinstance(body, list):
        raise BadRequestData("a batch operation needs a JSON array")
    if not body:
        raise BadRequestData("a batch operation needs at least one item")
    limit = call.state.settings.max_batch_entities
    if len(body) > limit:
        raise BadRequestData(f"a batch holds at most {limit} items, got {len(body)}")
    return call, body


def _item_id(item: Any) -> str:
    value = item.get("id") if isinstance(item, dict) else item
    return value if isinstance(value, str) else ""


async def _run_batch(
    call: Call, items: list[Any], build: Callable[[Any, str], tuple[str, Mutation]]
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Parse every item, apply the good ones, collect the per-item errors."""
    now = now_iso()
    ops: list[tuple[str, Mutation]] = []
    errors: list[dict[str, Any]] = []
    for item in items:
        try:
            ops.append(build(item, now))
        except NgsiError as exc:
            errors.append(problem_of(exc, _item_id(item)))
    outcomes = await write_many(call, ops) if ops else []
    errors += [problem_of(o.error, o.id) for o in outcomes if o.error is not None]
    return outcomes, errors


def _result(outcomes: list[Outcome], errors: list[dict[str, Any]]) -> Response:
    success = [o.id for o in outcomes if o.error is None]
    return json_response({"success": success, "errors": errors}, status=207)


async def batch_create(request: Request) -> Response:
    call, items = await _batch_body(request)

    def build(item: Any, now: str) -> tuple[str, Mutation]:
        entity = parse_entity(item, call.ctx, now=now)
        return entity["id"], create_mutation(entity)

    outcomes, errors = await _run_batch(call, items, build)
    if errors:
        return _result(outcomes, errors)
    return json_response([o.id for o in outcomes], status=201)


async def batch_upsert(request: Request) -> Response:
    call, items = await _batch_body(request)
    options = request.query_params.get("options", "replace")
    if options not in ("replace", "update"):
        raise BadRequestData("options for upsert must be replace or update")
    created: list[str] = []

    def build(item: Any, now: str) -> tuple[str, Mutation]:
        entity = parse_entity(item, call.ctx, now=now)
        eid = entity["id"]

        def upsert(old: Entity | None) -> Entity:
            if old is None:
                created.append(eid)
                return entity
            if options == "replace":
                return replace_entity(old, entity, now)
            new, _ = append_attributes(old, attributes_of(entity), now, types=entity["type"])
            return new

        return eid, upsert

    outcomes, errors = await _run_batch(call, items, build)
    if errors:
        return _result(outcomes, errors)
    if created:
        return json_response(list(dict.fromkeys(created)), status=201)
    return no_content(call)


async def batch_update(request: Request) -> Response:
    call, items = await _batch_body(request)
    no_overwrite = request.query_params.get("options") == "noOverwrite"

    def build(item: Any, now: str) -> tuple[str, Mutation]:
        eid = require_uri(_item_id(item), "entity id")
        types, attrs, scope = parse_fragment(item, call.ctx, now=now)

        def update(old: Entity | None) -> Entity:
            new, _ = append_attributes(
                existing(old, eid), attrs, now, types=types, scope=scope, no_overwrite=no_overwrite
            )
            return new

        return eid, update

    outcomes, errors = await _run_batch(call, items, build)
    return _result(outcomes, errors) if errors else no_content(call)


async def batch_merge(request: Request) -> Response:
    call, items = await _batch_body(request)

    def build(item: Any, now: str) -> tuple[str, Mutation]:
        eid = require_uri(_item_id(item), "entity id")
        types, attrs, scope = parse_fragment(item, call.ctx, now=now, allow_null=True)
        return eid, lambda old: merge_entity(
            existing(old, eid), attrs, now, types=types, scope=scope
        )

    outcomes, errors = await _run_batch(call, items, build)
    return _result(outcomes, errors) if errors else no_content(call)


async def batch_delete(request: Request) -> Response:
    call, items = await _batch_body(request)

    def build(item: Any, now: str) -> tuple[str, Mutation]:
        if not isinstance(item, str):
            raise BadRequestData("batch delete takes an array of entity ids")
        eid = require_uri(item, "entity id")
        return eid, delete_mutation(eid)

    outcomes, errors = await _run_batch(call, items, build)
    return _result(outcomes, errors) if errors else no_content(call)


async def post_query(request: Request) -> Response:
    """POST /entityOperations/query: the body carries what GET puts in the URL."""
    call, body = await begin_with_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("a query must be a JSON object")
    if body.get("type", "Query") != "Query":
        raise BadRequestData("the query body's type must be Query")
    await require_tenant(call.state, call.tenant)
    params = dict(request.query_params)
    flt = filter_from_body(body, call.ctx)
    view_params = {**params}
    if "lang" in body and "lang" not in view_params:
        view_params["lang"] = body["lang"]
    view = parse_view(view_params, call.ctx, attrs=flt.attrs)
    return await query_response(request, call, flt, view, params)


ROUTES = [
    Route(f"{BASE}/create", batch_create, methods=["POST"]),
    Route(f"{BASE}/upsert", batch_upsert, methods=["POST"]),
    Route(f"{BASE}/update", batch_update, methods=["POST"]),
    Route(f"{BASE}/delete", batch_delete, methods=["POST"]),
    Route(f"{BASE}/merge", batch_merge, methods=["POST"]),
    Route(f"{BASE}/query", post_query, methods=["POST"]),
]

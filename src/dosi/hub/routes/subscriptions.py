"""Subscriptions: create, query, retrieve, update, delete (clauses 5.8.1-5.8.5)."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi.hub.http import Call, begin, begin_with_body, entity_response, no_content
from dosi.hub.query import page_params, split_list
from dosi.hub.service import page_links
from dosi.hub.store.events import SubscriptionRow
from dosi.hub.subscriptions import status
from dosi.hub.subscriptions.model import check_members, compile_spec
from dosi.hub.subscriptions.notifier import notifier_of
from dosi.hub.subscriptions.records import Record, clean, load, merge, representation
from dosi.ngsi.errors import BadRequestData, InternalError, NgsiError, ResourceNotFound
from dosi.ngsi.values import now_iso, parse_datetime, require_uri

BASE = "/ngsi-ld/v1"
UPDATE_ATTEMPTS = 5


def _now_ms() -> int:
    return int(time.time() * 1000)


def _path_id(request: Request) -> str:
    return require_uri(request.path_params["subscriptionId"], "subscription id in the path")


def _changed(call: Call) -> None:
    notifier = notifier_of(call.state)
    if notifier is not None:
        notifier.subscriptions_changed()


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestData("a subscription must be a JSON object")
    if "type" in body and body["type"] != "Subscription":
        raise BadRequestData('a subscription\'s type must be "Subscription"')
    check_members(body)
    return body


async def create_subscription(request: Request) -> Response:
    call, body = await begin_with_body(request)
    body = _object(body)
    if body.get("type") != "Subscription":
        raise BadRequestData('a subscription needs "type": "Subscription"')
    sub_id = require_uri(body["id"], "id") if "id" in body else _new_id()
    raw = clean(body)
    compile_spec(sub_id, raw, call.ctx, now_ms=_now_ms())
    if "jsonldContext" in raw:
        await call.state.contexts.resolve(raw["jsonldContext"])  # must be retrievable
    now = now_iso()
    record = Record(raw, call.ctx.source, now, now)
    settings = call.state.settings
    await call.state.store.events.subscription_create(
        call.tenant, sub_id, record.dump(), settings.max_subscriptions_per_tenant
    )
    _changed(call)
    headers = {"Location": f"{BASE}/subscriptions/{quote(sub_id, safe=':')}"}
    if call.tenant:
        headers["NGSILD-Tenant"] = call.tenant
    return Response(status_code=201, headers=headers)


def _new_id() -> str:
    return f"urn:ngsi-ld:Subscription:{uuid.uuid4().hex}"


def _sys_attrs(request: Request) -> bool:
    options = set(split_list(request.query_params.get("options")) or [])
    unknown = options - {"sysAttrs"}
    if unknown:
        raise BadRequestData(f"unknown options: {', '.join(sorted(unknown))}")
    return "sysAttrs" in options


async def _shown(call: Call, row: SubscriptionRow, sys_attrs: bool) -> dict[str, Any]:
    record = load(row.doc)
    contexts = call.state.contexts
    try:
        own = await contexts.resolve(record.context)
    except NgsiError:
        own = contexts.core  # names are then shown as written
    notifier = notifier_of(call.state)
    counters = notifier.counters(call.tenant, row.id) if notifier is not None else None
    if counters is None:
        counters = status.parse(row.status).as_json()
    context_url = record.raw.get("jsonldContext") or contexts.url_for(
        own, call.state.settings.base_url
    )
    return representation(
        row.id,
        record,
        own=own,
        shown=call.ctx,
        status=_status(record.raw),
        counters=counters,
        context_url=context_url,
        sys_attrs=sys_attrs,
    )


def _status(raw: dict[str, Any]) -> str:
    expires = raw.get("expiresAt")
    if isinstance(expires, str) and parse_datetime(expires).timestamp() * 1000 <= _now_ms():
        return "expired"
    return "active" if raw.get("isActive", True) else "paused"


async def query_subscriptions(request: Request) -> Response:
    call = await begin(request)
    settings = call.state.settings
    limit, offset, count = page_params(
        request.query_params, default=settings.default_page_size, maximum=settings.max_page_size
    )
    sys_attrs = _sys_attrs(request)
    rows, total = await call.state.store.events.subscription_list(call.tenant, offset, limit)
    items = [await _shown(call, row, sys_attrs) for row in rows]
    headers = page_links(request, call, total, len(items))
    if count:
        headers["NGSILD-Results-Count"] = str(total)
    return await entity_response(call, items, headers=headers)


async def retrieve_subscription(request: Request) -> Response:
    call = await begin(request)
    sub_id = _path_id(request)
    sys_attrs = _sys_attrs(request)
    row = await call.state.store.events.subscription_get(call.tenant, sub_id)
    if row is None:
        raise ResourceNotFound(f"subscription {sub_id} does not exist")
    return await entity_response(call, await _shown(call, row, sys_attrs))


async def update_subscription(request: Request) -> Response:
    call, body = await begin_with_body(request, allow_merge_patch=True)
    sub_id = _path_id(request)
    fragment = _object(body)
    if "id" in fragment and fragment["id"] != sub_id:
        raise BadRequestData("the subscription id in the body differs from the one in the path")
    events = call.state.store.events
    # A context sent with the update becomes the subscription's (clients send the same one).
    switch = not call.ctx.is_core_only
    for _ in range(UPDATE_ATTEMPTS):
        row = await events.subscription_get(call.tenant, sub_id)
        if row is None:
            raise ResourceNotFound(f"subscription {sub_id} does not exist")
        record = load(row.doc)
        raw = merge(record.raw, fragment)
        own = call.ctx if switch else await call.state.contexts.resolve(record.context)
        # An expiresAt already past only matters if this update sets it.
        compile_spec(sub_id, raw, own, now_ms=_now_ms() if "expiresAt" in fragment else 0)
        if "jsonldContext" in fragment and fragment["jsonldContext"] is not None:
            await call.state.contexts.resolve(raw["jsonldContext"])
        context = call.ctx.source if switch else record.context
        new = Record(raw, context, record.created_at, now_iso())
        if await events.subscription_update(call.tenant, sub_id, row.doc, new.dump()):
            _changed(call)
            return no_content(call)
    raise InternalError(f"subscription {sub_id} kept changing; try the update again")


async def delete_subscription(request: Request) -> Response:
    call = await begin(request)
    sub_id = _path_id(request)
    await call.state.store.events.subscription_delete(call.tenant, sub_id)
    _changed(call)
    return no_content(call)


ROUTES = [
    Route(f"{BASE}/subscriptions", create_subscription, methods=["POST"]),
    Route(f"{BASE}/subscriptions", query_subscriptions, methods=["GET"]),
    Route(f"{BASE}/subscriptions/{{subscriptionId:path}}", retrieve_subscription, methods=["GET"]),
    Route(f"{BASE}/subscriptions/{{subscriptionId:path}}", update_subscription, methods=["PATCH"]),
    Route(f"{BASE}/subscriptions/{{subscriptionId:path}}", delete_subscription, methods=["DELETE"]),
]

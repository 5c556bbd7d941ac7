"""Attributes of one entity: append, update, partial update, replace, delete (5.6.2-5.6.5, 5.6.19)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dosi.hub.http import begin, begin_with_body, json_response, no_content
from dosi.hub.query import split_list
from dosi.hub.routes.entities import path_id
from dosi.hub.service import existing, write_one
from dosi.ngsi.model import Entity
from dosi.ngsi.mutate import (
    UpdateReport,
    append_attributes,
    delete_attribute,
    partial_update_attribute,
    update_attributes,
)
from dosi.ngsi.parse import parse_attribute, parse_fragment, parse_instance_patch
from dosi.ngsi.values import Expander, now_iso, require_name, require_uri


def update_result(report: UpdateReport, ctx: Expander) -> Response | None:
    """204 when everything applied, else 207 with clause 5.2.18's UpdateResult."""
    if not report.not_updated:
        return None
    body: dict[str, Any] = {
        "updated": [ctx.compact(a) for a in report.updated],
        "notUpdated": [
            {"attributeName": ctx.compact(a), "reason": reason} for a, reason in report.not_updated
        ],
    }
    return json_response(body, status=207)


async def append_attrs(request: Request) -> Response:
    call, body = await begin_with_body(request)
    entity_id = path_id(request)
    options = split_list(request.query_params.get("options")) or []
    now = now_iso()
    types, attrs, scope = parse_fragment(body, call.ctx, now=now)
    report = UpdateReport()

    def append(old: Entity | None) -> Entity:
        nonlocal report
        new, report = append_attributes(
            existing(old, entity_id),
            attrs,
            now,
            types=types,
            scope=scope,
            no_overwrite="noOverwrite" in options,
        )
        return new

    await write_one(call, entity_id, append)
    return update_result(report, call.ctx) or no_content(call)


async def update_attrs(request: Request) -> Response:
    call, body = await begin_with_body(request)
    entity_id = path_id(request)
    now = now_iso()
    _, attrs, _ = parse_fragment(body, call.ctx, now=now, allow_null=True)
    report = UpdateReport()

    def update(old: Entity | None) -> Entity:
        nonlocal report
        new, report = update_attributes(existing(old, entity_id), attrs, now)
        return new

    await write_one(call, entity_id, update)
    return update_result(report, call.ctx) or no_content(call)


def _attr_name(request: Request, call_ctx: Expander) -> tuple[str, str]:
    name = require_name(request.path_params["attrId"], "attribute name in the path")
    return name, call_ctx.expand(name)


async def partial_update_attr(request: Request) -> Response:
    return await _change_attr(request, replace=False)


async def replace_attr(request: Request) -> Response:
    return await _change_attr(request, replace=True)


async def _change_attr(request: Request, *, replace: bool) -> Response:
    call, body = await begin_with_body(request, allow_merge_patch=not replace)
    entity_id = path_id(request)
    name, iri = _attr_name(request, call.ctx)
    now = now_iso()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "@context"}
    if replace:
        fragment = parse_attribute(name, body, call.ctx, now=now)
    else:
        fragment = [parse_instance_patch(name, body, call.ctx, now=now)]
    await write_one(
        call,
        entity_id,
        lambda old: partial_update_attribute(
            existing(old, entity_id), iri, fragment, now, replace=replace
        ),
    )
    return no_content(call)


async def delete_attr(request: Request) -> Response:
    call = await begin(request)
    entity_id = path_id(request)
    _, iri = _attr_name(request, call.ctx)
    params = request.query_params
    dataset_id = params.get("datasetId")
    if dataset_id is not None:
        require_uri(dataset_id, "datasetId")
    delete_all = params.get("deleteAll") == "true"
    now = now_iso()
    await write_one(
        call,
        entity_id,
        lambda old: delete_attribute(
            existing(old, entity_id), iri, now, dataset_id=dataset_id, delete_all=delete_all
        ),
    )
    return no_content(call)

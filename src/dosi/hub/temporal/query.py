"""A temporal query from start to answer: filter -> TemporalSelection -> page -> response.

The entity filter is the one the normal query routes build (hub/query.py).
id, idPattern, type and scopeQ apply to the entity record history keeps
(deleted entities included). q and geo-queries apply to the entity as it was
at the end of the time window: the latest instance of each attribute they name
(per datasetId) with a time inside the window; a geo-query looks at the
GeoProperty named by geoproperty the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dosi.hub.http import Call, entity_response
from dosi.hub.query import EntityFilter, page_params
from dosi.hub.service import page_links
from dosi.hub.store.temporal import TemporalPage, TemporalSelection
from dosi.hub.temporal.paging import content_range
from dosi.hub.temporal.params import TemporalParams
from dosi.hub.temporal.render import render_temporal
from dosi.ngsi.model import Entity


def temporal_selection(
    flt: EntityFilter,
    tp: TemporalParams,
    call: Call,
    *,
    limit: int,
    offset: int,
    count: bool,
    require_data: bool = True,
) -> TemporalSelection:
    settings = call.state.settings
    pre = flt.prefilter()
    snapshot_check, snapshot_attrs = _snapshot_check(flt)
    return TemporalSelection(
        window=tp.window,
        ids=pre.ids,
        types=pre.types,
        record_check=_record_check(flt),
        attrs=flt.attrs,
        snapshot_check=snapshot_check,
        snapshot_attrs=snapshot_attrs,
        require_data=require_data,
        last_n=tp.last_n,
        max_instances=settings.temporal_max_instances,
        max_total=settings.temporal_max_response_instances,
        aggregation=tp.aggregation,
        offset=offset,
        limit=limit,
        count=count,
    )


def _record_check(flt: EntityFilter) -> Callable[[dict[str, Any]], bool] | None:
    checks: list[Callable[[dict[str, Any]], bool]] = []
    if flt.selectors is not None:
        alternatives = [s.identity_check() for s in flt.selectors]
        checks.append(lambda r: any(alt(r) for alt in alternatives))
    if flt.id_pattern is not None:
        pattern = flt.id_pattern
        checks.append(lambda r: pattern.search(r["id"]) is not None)
    if flt.types is not None:
        types = flt.types
        checks.append(lambda r: bool(types.matches(r["type"])))
    if flt.scope is not None:
        scope = flt.scope
        checks.append(lambda r: bool(scope.matches(r.get("scope", ()))))
    if not checks:
        return None
    return lambda r: all(check(r) for check in checks)


def _snapshot_check(
    flt: EntityFilter,
) -> tuple[Callable[[Entity], bool] | None, frozenset[str]]:
    checks: list[Callable[[Entity], bool]] = []
    attrs: set[str] = set()
    if flt.geo is not None:
        geo, prop = flt.geo, flt.geo_property
        attrs.add(prop)
        checks.append(
            lambda e: any(
                i.get("type") == "GeoProperty" and geo.matches(i["value"]) for i in e.get(prop, ())
            )
        )
    if flt.q is not None:
        q = flt.q
        attrs.update(q.attributes)
        checks.append(lambda e: bool(q.matches(e)))
    if not checks:
        return None, frozenset()
    return (lambda e: all(check(e) for check in checks)), frozenset(attrs)


async def query_answer(
    request: Request,
    call: Call,
    flt: EntityFilter,
    tp: TemporalParams,
    params: Mapping[str, Any],
) -> Response:
    """Run a temporal query; 200, or 206 with Content-Range when instances were cut."""
    settings = call.state.settings
    limit, offset, count = page_params(
        params, default=settings.default_page_size, maximum=settings.max_page_size
    )
    selection = temporal_selection(flt, tp, call, limit=limit, offset=offset, count=count)
    page = await call.state.store.temporal.query(call.tenant, selection)
    headers = page_links(request, call, page.total, len(page.entities))
    if page.total is not None:
        headers["NGSILD-Results-Count"] = str(page.total)
    return await respond(call, page, tp, headers, many=True)


async def respond(
    call: Call,
    page: TemporalPage,
    tp: TemporalParams,
    headers: dict[str, str],
    *,
    many: bool,
) -> Response:
    cut = content_range(page, tp)
    if cut is not None:
        headers["Content-Range"] = cut
    body: Any = [render_temporal(e, call.ctx, tp) for e in page.entities]
    if not many:
        body = body[0]
    return await entity_response(call, body, status=206 if cut else 200, headers=headers)

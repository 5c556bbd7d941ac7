"""Operations shared by several routes: single-entity writes, queries, rendering."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from dosi.hub.http import GEO_JSON, Call, entity_response
from dosi.hub.query import EntityFilter, page_params, selection
from dosi.hub.store.base import Mutation, Outcome, Page
from dosi.ngsi.errors import AlreadyExists, NgsiError, ResourceNotFound
from dosi.ngsi.model import Entity
from dosi.ngsi.render import View, render_entity


async def write_one(call: Call, entity_id: str, mutation: Mutation) -> Outcome:
    """Apply one mutation; its error (if any) is raised as the response."""
    (outcome,) = await call.state.store.apply(call.tenant, [(entity_id, mutation)])
    if outcome.error is not None:
        raise outcome.error
    if outcome.change is not None:
        call.state.metrics.entities_written += 1
    return outcome


async def write_many(call: Call, ops: list[tuple[str, Mutation]]) -> list[Outcome]:
    outcomes = await call.state.store.apply(call.tenant, ops)
    call.state.metrics.entities_written += sum(1 for o in outcomes if o.change is not None)
    return outcomes


def existing(entity: Entity | None, entity_id: str) -> Entity:
    """Inside a mutation: the entity must exist."""
    if entity is None:
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    return entity


def create_mutation(entity: Entity) -> Mutation:
    """Store `entity` unless one with its id exists (single and batch create)."""

    def create(old: Entity | None) -> Entity:
        if old is not None:
            raise AlreadyExists(f"entity {entity['id']} already exists")
        return entity

    return create


def delete_mutation(entity_id: str) -> Mutation:
    """Delete an entity that must exist (single and batch delete)."""

    def delete(old: Entity | None) -> None:
        existing(old, entity_id)
        return None

    return delete


async def run_query(call: Call, flt: EntityFilter, params: Mapping[str, Any]) -> Page:
    settings = call.state.settings
    limit, offset, count = page_params(
        params, default=settings.default_page_size, maximum=settings.max_page_size
    )
    return await call.state.store.select(
        call.tenant, selection(flt, limit=limit, offset=offset, count=count)
    )


async def query_response(
    request: Request, call: Call, flt: EntityFilter, view: View, params: Mapping[str, Any]
) -> Response:
    """Run a query and answer it with paging links and, when asked, the result count."""
    page = await run_query(call, flt, params)
    headers = page_links(request, call, page.total, len(page.entities))
    if page.total is not None:
        headers["NGSILD-Results-Count"] = str(page.total)
    return await entity_response(
        call, render_many(call, page.entities, view, params), headers=headers
    )


def page_links(request: Request, call: Call, total: int | None, returned: int) -> dict[str, str]:
    """Link rel=next/prev so clients can page without doing the arithmetic."""
    params = dict(request.query_params)
    limit = int(params.get("limit", call.state.settings.default_page_size))
    offset = int(params.get("offset", 0))
    links: list[str] = []
    if limit and (returned == limit if total is None else offset + limit < total):
        links.append(_link(request, params, offset + limit, "next"))
    if limit and offset > 0:
        links.append(_link(request, params, max(0, offset - limit), "prev"))
    return {"Link": ", ".join(links)} if links else {}


def _link(request: Request, params: dict[str, Any], offset: int, rel: str) -> str:
    query = urlencode({**params, "offset": str(offset)})
    return f'<{request.url.path}?{query}>; rel="{rel}"; type="application/ld+json"'


def render_many(call: Call, entities: list[Entity], view: View, params: Mapping[str, Any]) -> Any:
    rendered = [render_entity(e, call.ctx, view) for e in entities]
    if call.accept == GEO_JSON:
        return feature_collection(call, entities, rendered, params)
    return rendered


def render_one(call: Call, entity: Entity, view: View, params: Mapping[str, Any]) -> Any:
    rendered = render_entity(entity, call.ctx, view)
    if call.accept == GEO_JSON:
        return feature(call, entity, rendered, params)
    return rendered


def feature(call: Call, entity: Entity, rendered: dict[str, Any], params: Mapping[str, Any]) -> Any:
    """Clause 4.5.16: an entity as a GeoJSON Feature, geometry from `geometryProperty`."""
    prop = call.ctx.expand(params.get("geometryProperty") or "location")
    geometry = None
    for inst in entity.get(prop, ()):
        if inst.get("type") == "GeoProperty":
            geometry = inst["value"]
            break
    properties = {k: v for k, v in rendered.items() if k != "id"}
    return {"id": entity["id"], "type": "Feature", "geometry": geometry, "properties": properties}


def feature_collection(
    call: Call, entities: list[Entity], rendered: list[dict[str, Any]], params: Mapping[str, Any]
) -> Any:
    return {
        "type": "FeatureCollection",
        "features": [feature(call, e, r, params) for e, r in zip(entities, rendered, strict=True)],
    }


def problem_of(error: NgsiError, entity_id: str) -> dict[str, Any]:
    return {"entityId": entity_id, "error": error.to_problem()}

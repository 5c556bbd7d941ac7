"""Dispatch for /entities/{entityId}[/attrs[/{attrId}]].

Entity ids and attribute names are URIs that may contain '/', so these paths
are split on the *raw* (still percent-encoded) path and each segment decoded
afterwards; Starlette's decoded path would be ambiguous.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi.hub.routes import attributes, entities
from dosi.ngsi.errors import MethodNotAllowed, ResourceNotFound

Handler = Callable[[Request], Awaitable[Response]]
PREFIX = "/ngsi-ld/v1/entities/"

_ENTITY: dict[str, Handler] = {
    "GET": entities.retrieve_entity,
    "DELETE": entities.delete_entity,
    "PUT": entities.replace_entity_route,
    "PATCH": entities.merge_entity_route,
}
_ATTRS: dict[str, Handler] = {
    "POST": attributes.append_attrs,
    "PATCH": attributes.update_attrs,
}
_ATTR: dict[str, Handler] = {
    "PATCH": attributes.partial_update_attr,
    "PUT": attributes.replace_attr,
    "DELETE": attributes.delete_attr,
}


async def dispatch(request: Request) -> Response:
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    rest = path[path.index(PREFIX) + len(PREFIX) :] if PREFIX in path else ""
    parts = [unquote(p) for p in rest.split("/")]
    if len(parts) == 1 and parts[0]:
        table = _ENTITY
        params = {"entityId": parts[0]}
    elif len(parts) == 2 and parts[1] == "attrs":
        table = _ATTRS
        params = {"entityId": parts[0]}
    elif len(parts) == 3 and parts[1] == "attrs" and parts[2]:
        table = _ATTR
        params = {"entityId": parts[0], "attrId": parts[2]}
    else:
        raise ResourceNotFound(f"no such resource: {request.url.path}")
    handler = table.get(request.method)
    if handler is None:
        raise MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")
    request.scope["path_params"] = params
    return await handler(request)


ROUTES = [
    Route(
        PREFIX + "{rest:path}",
        dispatch,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
]

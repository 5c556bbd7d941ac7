"""GET /ngsi-ld/v1/stream: matching changes as server-sent events (dosi extension).

Query parameters filter and shape like GET /entities (type, id, idPattern, q,
scopeQ, georel/geometry/coordinates, attrs, options, format); each matching
change is one `event: change` whose data is the entity compacted with the
request's @context, or `{"id", "type", "deleted": true}` for a deletion.
With `attrs`, an update is sent only if it touched one of them. The client
must ask for `Accept: text/event-stream` (as EventSource does).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from dosi.hub.http import LINK_REL, request_context, require_tenant, state_of, tenant_of
from dosi.hub.query import parse_filter, parse_view
from dosi.hub.subscriptions.live import StreamClient, TooManyStreams
from dosi.hub.subscriptions.notifier import notifier_of
from dosi.ngsi.errors import InternalError, NotAcceptable

BASE = "/ngsi-ld/v1"
EVENT_STREAM = "text/event-stream"


async def stream(request: Request) -> Response:
    state = state_of(request)
    if EVENT_STREAM not in request.headers.get("accept", "").lower():
        raise NotAcceptable(f"the live stream is only served as {EVENT_STREAM}: send that Accept")
    tenant = tenant_of(request)
    await require_tenant(state, tenant)
    ctx = await request_context(request)
    params = request.query_params
    flt = parse_filter(params, ctx)
    view = parse_view(params, ctx, attrs=flt.attrs)
    notifier = notifier_of(state)
    if notifier is None or notifier.live is None:
        raise InternalError("live streams are not running")
    streams = notifier.live
    if streams.full():
        raise TooManyStreams(f"this worker already serves {state.settings.max_streams} streams")
    client = StreamClient(tenant, flt, view, ctx, state.settings.stream_queue)
    url = state.contexts.url_for(ctx, state.settings.base_url)
    await state.settle()
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # proxies must not buffer the stream
        "Link": f"<{url}>; {LINK_REL}",
    }
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    return StreamingResponse(
        client.events(streams, state.settings.stream_heartbeat_s),
        media_type=EVENT_STREAM,
        headers=headers,
    )


ROUTES = [Route(f"{BASE}/stream", stream, methods=["GET"])]

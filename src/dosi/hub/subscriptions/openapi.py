"""The subscriptions' and live stream's part of the OpenAPI document (merged by hub/openapi.py).

Parameters and schemas are plain tables; the operations are built with
hub/openapi.py's helpers, imported when the document is built (that module
imports this one).
"""

from __future__ import annotations

from typing import Any

from dosi.hub.openapi_schemas import (
    DATE_TIME,
    NAME,
    STRING,
    URI,
    Json,
    array,
    const,
    enum,
    obj,
    ref,
)
from dosi.hub.subscriptions.model import ACCEPTS, TRIGGERS

TAG = "Subscriptions"
_NUMBER: Json = {"type": "number"}
_BOOL: Json = {"type": "boolean"}

SUBSCRIPTION_PARAMETERS: dict[str, tuple[str, str, Json, str]] = {
    "subscriptionId": ("subscriptionId", "path", URI, "Id of the subscription (a URI)"),
    "subscriptionOptions": (
        "options",
        "query",
        array(enum("sysAttrs"), min_items=1),
        "sysAttrs: also show createdAt and modifiedAt",
    ),
}

_PAIRS = array(obj({"key": STRING, "value": STRING}, required=("key", "value")))
_ENDPOINT = obj(
    {
        "uri": URI,
        "accept": enum(*ACCEPTS),
        "timeout": {"type": "number", "minimum": 0},
        "cooldown": {"type": "number", "minimum": 0},
        "receiverInfo": _PAIRS,
        "notifierInfo": _PAIRS,
    },
    required=("uri",),
    description="Where notifications go: http(s) or mqtt(s) (clause 5.2.15).",
)
_NOTIFICATION = {
    "attributes": array(NAME, min_items=1),
    "format": enum("normalized", "concise", "keyValues", "simplified"),
    "showChanges": _BOOL,
    "sysAttrs": _BOOL,
    "endpoint": _ENDPOINT,
}
_STATUS = {
    "status": enum("ok", "failed"),
    "timesSent": {"type": "integer", "minimum": 0},
    "timesFailed": {"type": "integer", "minimum": 0},
    "lastNotification": DATE_TIME,
    "lastSuccess": DATE_TIME,
    "lastFailure": DATE_TIME,
}
_MEMBERS: dict[str, Json] = {
    "id": URI,
    "type": const("Subscription"),
    "subscriptionName": STRING,
    "description": STRING,
    "entities": array(ref("EntitySelector"), min_items=1),
    "watchedAttributes": array(NAME, min_items=1),
    "notificationTrigger": array(enum(*TRIGGERS), min_items=1),
    "timeInterval": {"type": "number", "minimum": 1},
    "q": STRING,
    "geoQ": ref("GeoQuery"),
    "scopeQ": STRING,
    "lang": STRING,
    "isActive": _BOOL,
    "expiresAt": DATE_TIME,
    "throttling": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
    "jsonldContext": URI,
    "@context": ref("LdContext"),
}

SUBSCRIPTION_SCHEMAS: dict[str, Json] = {
    "Subscription": obj(
        {**_MEMBERS, "notification": obj(_NOTIFICATION, required=("endpoint",))},
        required=("type", "notification"),
        description="A subscription (clause 5.2.12).",
    ),
    "SubscriptionFragment": obj(
        {**_MEMBERS, "notification": obj(_NOTIFICATION)},
        description="Members of a subscription to change; null removes one (clause 5.8.2).",
    ),
    "SubscriptionOutput": obj(
        {
            **_MEMBERS,
            "status": enum("active", "paused", "expired"),
            "notification": obj({**_NOTIFICATION, **_STATUS}),
            "createdAt": DATE_TIME,
            "modifiedAt": DATE_TIME,
        },
        required=("id", "type", "notification", "status"),
    ),
}


def subscription_operations() -> dict[str, dict[str, Any]]:
    from dosi.hub import openapi as api

    base = f"{api.API}/subscriptions"
    headers = api.HEADERS
    op = api._op
    one = ("subscriptionId", *headers)
    listed = api._ngsi("Subscriptions, oldest first", array(ref("SubscriptionOutput")))
    listed["headers"]["NGSILD-Results-Count"] = {
        "description": api._HEADER_DOCS["NGSILD-Results-Count"],
        "schema": STRING,
    }
    events = api._response(
        "Server-sent events: `event: change` per matching change, comments as heartbeats",
        {"text/event-stream": {"schema": STRING}},
    )
    return {
        base: {
            "post": op(
                "createSubscription",
                "Create Subscription (clause 5.8.1)",
                TAG,
                body=api._body("Subscription"),
                ok={201: api.CREATED},
                errors=(400, 406, 409, 413, 415, 503),
            ),
            "get": op(
                "querySubscriptions",
                "Query Subscriptions (clause 5.8.4)",
                TAG,
                params=("subscriptionOptions", *api.PAGE, *headers),
                ok={200: listed},
                errors=api.READ_ERRORS,
            ),
        },
        f"{base}/{{subscriptionId}}": {
            "get": op(
                "retrieveSubscription",
                "Retrieve Subscription (clause 5.8.3)",
                TAG,
                params=("subscriptionId", "subscriptionOptions", *headers),
                ok={200: api._ngsi("The subscription", ref("SubscriptionOutput"))},
                errors=api.READ_ERRORS,
            ),
            "patch": op(
                "updateSubscription",
                "Update Subscription (clause 5.8.2)",
                TAG,
                params=one,
                body=api._body("SubscriptionFragment", merge_patch=True),
                ok={204: api.NO_CONTENT},
                errors=api.WRITE_ERRORS,
            ),
            "delete": op(
                "deleteSubscription",
                "Delete Subscription (clause 5.8.5)",
                TAG,
                params=one,
                ok={204: api.NO_CONTENT},
                errors=(400, 404, 503),
            ),
        },
        f"{api.API}/stream": {
            "get": op(
                "liveStream",
                "Live stream of matching changes, like notifications (clause 5.11.1) but as "
                "server-sent events; a dosi extension (send Accept: text/event-stream)",
                TAG,
                params=(*api.FILTER, "attrs", "options", "format", *headers),
                ok={200: events},
                errors=(400, 404, 406, 503),
            )
        },
    }

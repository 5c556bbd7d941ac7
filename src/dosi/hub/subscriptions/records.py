"""Stored subscription documents: creation, merge of update fragments, the GET form.

A document holds the members as the client wrote them (`raw`), the @context
they were written with (its source: None for the core, a URL, or inline
JSON), and the system times. Delivery counters live beside it (see status).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson

from dosi.hub.subscriptions.model import READ_ONLY, STATUS_FIELDS, is_simple_type
from dosi.ngsi.context import Context
from dosi.ngsi.model import DEFAULT_CORE_CONTEXT


@dataclass(frozen=True)
class Record:
    raw: dict[str, Any]
    context: Any  # @context source the terms of `raw` belong to
    created_at: str
    modified_at: str

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "raw": self.raw,
                "context": self.context,
                "createdAt": self.created_at,
                "modifiedAt": self.modified_at,
            }
        )

    @property
    def notify_context(self) -> Any:
        """The @context notifications are compacted with: jsonldContext, else the subscription's."""
        return self.raw.get("jsonldContext", self.context)


def load(doc: bytes) -> Record:
    data = orjson.loads(doc)
    return Record(data["raw"], data["context"], data["createdAt"], data["modifiedAt"])


def clean(body: dict[str, Any]) -> dict[str, Any]:
    """The members worth keeping: read-only ones (id, type, status, counters) dropped."""
    raw = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}
    notification = raw.get("notification")
    if isinstance(notification, dict):
        raw["notification"] = {k: v for k, v in notification.items() if k not in STATUS_FIELDS}
    return raw


def merge(raw: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """Clause 5.8.2: members of the fragment replace those of the subscription; null
    removes one. `notification` merges member by member (its endpoint as a whole)."""
    out = copy.deepcopy(raw)
    for key, value in clean(fragment).items():
        if value is None:
            out.pop(key, None)
        elif key == "notification" and isinstance(value, dict) and isinstance(out.get(key), dict):
            for inner, member in value.items():
                if member is None:
                    out[key].pop(inner, None)
                else:
                    out[key][inner] = member
        else:
            out[key] = value
    return out


def representation(
    sub_id: str,
    record: Record,
    *,
    own: Context,
    shown: Context,
    status: str,
    counters: dict[str, Any] | None,
    context_url: str,
    sys_attrs: bool,
) -> dict[str, Any]:
    """The subscription as GET shows it: names re-compacted from the subscription's own
    @context (`own`) to the caller's (`shown`), status and delivery counters added."""
    raw = copy.deepcopy(record.raw)

    def name(term: str) -> str:
        return shown.compact(own.expand(term))

    out: dict[str, Any] = {"id": sub_id, "type": "Subscription"}
    for key, value in raw.items():
        if key == "entities":
            value = [
                {**sel, "type": name(sel["type"])} if is_simple_type(sel["type"]) else sel
                for sel in value
            ]
        elif key == "watchedAttributes":
            value = [name(v) for v in value]
        elif key == "notification" and "attributes" in value:
            value["attributes"] = [name(v) for v in value["attributes"]]
        out[key] = value
    out.setdefault("isActive", True)
    out["status"] = status
    out.setdefault("jsonldContext", context_url or DEFAULT_CORE_CONTEXT)
    notification = out.setdefault("notification", {})
    notification.update(counters or {"timesSent": 0, "timesFailed": 0})
    if sys_attrs:
        out["createdAt"] = record.created_at
        out["modifiedAt"] = record.modified_at
    return out

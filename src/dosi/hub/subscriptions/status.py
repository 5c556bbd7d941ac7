"""Delivery counters of subscriptions (timesSent, lastSuccess, ...), hot in memory.

Counting is a dict update per notification; the notifier persists the ones
that changed every second or so, never one write per notification. GET
shows the persisted values, or these live ones when the worker serving the
request is the one delivering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class Counters:
    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    ok: bool | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"timesSent": self.times_sent, "timesFailed": self.times_failed}
        for key, value in (
            ("lastNotification", self.last_notification),
            ("lastSuccess", self.last_success),
            ("lastFailure", self.last_failure),
        ):
            if value is not None:
                out[key] = value
        if self.ok is not None:
            out["status"] = "ok" if self.ok else "failed"
        return out


def parse(doc: bytes | None) -> Counters:
    if not doc:
        return Counters()
    data = orjson.loads(doc)
    status = data.get("status")
    return Counters(
        times_sent=int(data.get("timesSent", 0)),
        times_failed=int(data.get("timesFailed", 0)),
        last_notification=data.get("lastNotification"),
        last_success=data.get("lastSuccess"),
        last_failure=data.get("lastFailure"),
        ok=None if status is None else status == "ok",
    )


class StatusBook:
    """Counters per (tenant, subscription id), with the set changed since the last save."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Counters] = {}
        self._dirty: set[tuple[str, str]] = set()

    def load(self, tenant: str, sub_id: str, doc: bytes | None) -> None:
        """Seed from the store (at start, or when a subscription appears)."""
        self._items.setdefault((tenant, sub_id), parse(doc))

    def forget(self, tenant: str, sub_id: str) -> None:
        self._items.pop((tenant, sub_id), None)
        self._dirty.discard((tenant, sub_id))

    def record(self, tenant: str, sub_id: str, ok: bool, now: str) -> None:
        key = (tenant, sub_id)
        counters = self._items.get(key)
        if counters is None:
            counters = self._items[key] = Counters()
        counters.times_sent += 1
        counters.last_notification = now
        counters.ok = ok
        if ok:
            counters.last_success = now
        else:
            counters.times_failed += 1
            counters.last_failure = now
        self._dirty.add(key)

    def get(self, tenant: str, sub_id: str) -> Counters | None:
        return self._items.get((tenant, sub_id))

    def take_dirty(self) -> dict[str, list[tuple[str, bytes]]]:
        """What changed since the last call, per tenant, ready for `status_save`."""
        out: dict[str, list[tuple[str, bytes]]] = {}
        for tenant, sub_id in self._dirty:
            counters = self._items.get((tenant, sub_id))
            if counters is not None:
                out.setdefault(tenant, []).append((sub_id, orjson.dumps(counters.as_json())))
        self._dirty.clear()
        return out
